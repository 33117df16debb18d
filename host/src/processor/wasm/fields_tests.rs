use super::*;

fn declared(fields: &[(&str, FieldType)]) -> Declared {
    Declared::new(fields.iter().map(|(n, t)| Field { name: n.to_string(), type_: *t }).collect()).unwrap()
}

fn records(values: &[Option<&str>]) -> Vec<Record> {
    values.iter().map(|v| Record { value: v.map(|s| s.as_bytes().to_vec()), ..Default::default() }).collect()
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits[i / 8] & (1 << (i % 8)) != 0
}

/// Column `c` of `d` as one readable item per record (None: invalid).
fn items(d: &Decoded, c: usize) -> Vec<Option<String>> {
    let col = &d.columns[c];
    let n = match &col.values {
        TypedValues::Int64(v) => v.len(),
        TypedValues::Float64(v) => v.len(),
        TypedValues::Utf8(t) => t.ends.len(),
        TypedValues::Boolean(_) => col.valid.len() * 8,
    };
    (0..n)
        .map(|i| {
            bit(&col.valid, i).then(|| match &col.values {
                TypedValues::Int64(v) => v[i].to_string(),
                TypedValues::Float64(v) => v[i].to_string(),
                TypedValues::Boolean(v) => bit(v, i).to_string(),
                TypedValues::Utf8(t) => {
                    let start = if i == 0 { 0 } else { t.ends[i - 1] as usize };
                    String::from_utf8(t.data[start..t.ends[i] as usize].to_vec()).unwrap()
                }
            })
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn each_type_reads_its_values_and_leaves_missing_and_null_invalid() {
    let d = declared(&[("n", FieldType::Int64), ("x", FieldType::Float64), ("s", FieldType::Utf8), ("b", FieldType::Boolean)]);
    let rs = records(&[
        Some(r#"{"n": -7, "x": 2.5, "s": "a\"b\u00e9", "b": true, "other": {"n": 1}}"#),
        Some(r#"{"x": 3, "n": null, "b": false}"#),
        None,
        Some(r#"{"s": "plain", "n": 9223372036854775807, "x": 1e3}"#),
        Some("{}"),
    ]);
    let out = decode(&d, &rs);
    assert!(out.mismatched.is_empty(), "{:?}", out.mismatched);
    assert_eq!(items(&out, 0), [s("-7"), None, None, s("9223372036854775807"), None]);
    assert_eq!(items(&out, 1), [s("2.5"), s("3"), None, s("1000"), None]);
    assert_eq!(items(&out, 2), [s("a\"bé"), None, None, s("plain"), None]);
    assert_eq!(items(&out, 3)[..5], [s("true"), s("false"), None, None, None]);
}

#[test]
fn a_value_of_another_type_or_not_an_object_lists_the_record_and_clears_its_items() {
    let d = declared(&[("n", FieldType::Int64), ("s", FieldType::Utf8), ("x", FieldType::Float64)]);
    let rs = records(&[
        Some(r#"{"s": "ok", "n": 1.5}"#),
        Some(r#"{"n": 2, "s": 3}"#),
        Some("[1, 2]"),
        Some("not json"),
        Some(r#"{"n": 3} trailing"#),
        Some(r#"{"n": 18446744073709551615}"#),
        Some(r#"{"n": {"deep": 1}}"#),
        Some(r#"{"x": 1e400}"#),
        Some(r#"{"x": "1.5"}"#),
        Some(r#"{"n": 4, "s": "fine"}"#),
    ]);
    let out = decode(&d, &rs);
    let listed: Vec<u32> = out.mismatched.iter().map(|(i, _)| *i).collect();
    assert_eq!(listed, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let reason = |i: usize| out.mismatched[i].1.as_str();
    assert!(reason(0).starts_with("field `n`: a number with a fraction or an exponent where int64 was declared"), "{}", reason(0));
    assert!(reason(1).starts_with("field `s`: a number where utf8 was declared"), "{}", reason(1));
    assert!(reason(2).contains("expected a JSON object"), "{}", reason(2));
    assert!(reason(5).contains("beyond the int64 range"), "{}", reason(5));
    assert!(reason(6).contains("an object where int64"), "{}", reason(6));
    assert!(reason(7).starts_with("field `x`: a number beyond the float64 range"), "{}", reason(7));
    assert!(reason(8).starts_with("field `x`: a string where float64"), "{}", reason(8));
    let none = |last: &str| [None, None, None, None, None, None, None, None, None, s(last)];
    assert_eq!(items(&out, 0), none("4"), "a mismatched record's valid fields are cleared too");
    assert_eq!(items(&out, 1), none("fine"));
}

#[test]
fn floats_are_the_nearest_f64_of_their_text() {
    let d = declared(&[("x", FieldType::Float64)]);
    let texts = ["0.1", "2.2250738585072011e-308", "9007199254740993", "-0.0", "1.7976931348623157e308", "123456789012345678901234567890", "5e-324"];
    let values: Vec<String> = texts.iter().map(|t| format!(r#"{{"x": {t}}}"#)).collect();
    let out = decode(&d, &records(&values.iter().map(|v| Some(v.as_str())).collect::<Vec<_>>()));
    let TypedValues::Float64(got) = &out.columns[0].values else { panic!() };
    let want: Vec<f64> = texts.iter().map(|t| t.parse().unwrap()).collect();
    assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
}

#[test]
fn the_first_of_repeated_members_wins() {
    let d = declared(&[("n", FieldType::Int64)]);
    let out = decode(&d, &records(&[Some(r#"{"n": 1, "n": 2}"#), Some(r#"{"n": null, "n": 2}"#), Some(r#"{"n": 1, "n": "x"}"#)]));
    assert_eq!(items(&out, 0), [s("1"), None, s("1")]);
    assert!(out.mismatched.is_empty(), "a later repeat is skipped unread: {:?}", out.mismatched);
}

#[test]
fn declarations_are_checked() {
    let f = |n: &str| Field { name: n.to_string(), type_: FieldType::Int64 };
    assert!(Declared::new(vec![f("a"), f("a")]).unwrap_err().contains("`a` is declared twice"));
    assert!(Declared::new(vec![f("")]).unwrap_err().contains("field 0 has a name of 0 bytes"));
    assert!(Declared::new((0..=MAX_FIELDS).map(|i| f(&i.to_string())).collect()).unwrap_err().contains("at most 64"));
    assert!(Declared::new(vec![f(&"x".repeat(MAX_NAME + 1))]).is_err());
    assert!(Declared::new(Vec::new()).unwrap().is_empty());
}

/// A random record built from pieces the fast path reads and pieces only serde_json reads.
fn random_record(seed: &mut u64) -> Vec<u8> {
    let mut next = |n: u64| {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed % n
    };
    const NAMES: [&str; 7] = [r#""a""#, r#""b""#, r#""s""#, r#""x""#, r#""\u0061""#, r#""é""#, r#""a\"""#];
    const VALUES: [&str; 30] = [
        "1",
        "-7",
        "0",
        "-0",
        "01",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "1.5",
        "-2.25e3",
        "1e400",
        "1E-2",
        "1.",
        ".5",
        r#""text""#,
        r#""esc\"aped""#,
        r#""é😀""#,
        "\"ctl\u{1}\"",
        "true",
        "false",
        "null",
        "tru",
        "{}",
        r#"{"a":1}"#,
        "[1,2]",
        "[]",
        "-",
        "+1",
        r#""a\u00e9""#,
        "nul",
    ];
    const SPACE: [&str; 4] = ["", " ", "\n\t", "\r "];
    let mut out = Vec::new();
    match next(20) {
        0 => return b"[1]".to_vec(),
        1 => return b"\"str\"".to_vec(),
        2 => return vec![b'{', b'"', b'a', b'"', b':', b'"', 0xff, b'"', b'}'],
        _ => {}
    }
    out.extend_from_slice(SPACE[next(4) as usize].as_bytes());
    out.push(b'{');
    let members = next(5);
    for m in 0..members {
        if m > 0 {
            out.extend_from_slice(if next(30) == 0 { b" " } else { b"," });
        }
        out.extend_from_slice(SPACE[next(4) as usize].as_bytes());
        out.extend_from_slice(NAMES[next(NAMES.len() as u64) as usize].as_bytes());
        out.extend_from_slice(SPACE[next(4) as usize].as_bytes());
        out.push(b':');
        out.extend_from_slice(SPACE[next(4) as usize].as_bytes());
        out.extend_from_slice(VALUES[next(VALUES.len() as u64) as usize].as_bytes());
        out.extend_from_slice(SPACE[next(4) as usize].as_bytes());
    }
    if next(25) != 0 {
        out.push(b'}');
    }
    if next(25) == 0 {
        out.extend_from_slice(b" x");
    }
    out.extend_from_slice(SPACE[next(4) as usize].as_bytes());
    out
}

#[test]
fn the_fast_path_reads_exactly_what_serde_json_reads() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for types in [
        [FieldType::Int64, FieldType::Utf8, FieldType::Float64, FieldType::Boolean],
        [FieldType::Utf8, FieldType::Boolean, FieldType::Int64, FieldType::Float64],
        [FieldType::Float64, FieldType::Int64, FieldType::Boolean, FieldType::Utf8],
    ] {
        let d = declared(&[("a", types[0]), ("b", types[1]), ("s", types[2]), ("é", types[3])]);
        let records: Vec<Record> = (0..20_000).map(|_| Record { value: Some(random_record(&mut seed)), ..Default::default() }).collect();
        let (fast, slow) = (decode_with(&d, &records, true), decode_with(&d, &records, false));
        assert_eq!(format!("{:?}", fast.mismatched), format!("{:?}", slow.mismatched));
        for (c, (f, s)) in fast.columns.iter().zip(&slow.columns).enumerate() {
            let (a, b) = (items(&fast, c), items(&slow, c));
            for i in 0..records.len() {
                assert_eq!(a[i], b[i], "column {c}, record {}", String::from_utf8_lossy(records[i].value.as_ref().unwrap()));
            }
            assert_eq!(format!("{f:?}"), format!("{s:?}"), "column {c}");
        }
        let valid = slow.columns.iter().map(|c| c.valid.iter().map(|b| b.count_ones()).sum::<u32>()).sum::<u32>();
        let fields: Vec<(String, FieldType)> = d.0.clone();
        let scanned = records
            .iter()
            .filter(|r| {
                let mut slots: Vec<Slot<'_>> = fields.iter().map(|_| Slot::Unset).collect();
                crate::processor::wasm::fields_scan::scan(r.value.as_deref().unwrap(), &fields, &mut slots).is_some()
            })
            .count();
        assert!(
            valid > 500 && slow.mismatched.len() > 2_000 && scanned > 1_000,
            "the mix exercises every outcome: {valid} valid items, {} mismatched records, {scanned} read by the fast path",
            slow.mismatched.len()
        );
    }
}
