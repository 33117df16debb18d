use super::*;

fn col(items: &[Option<&str>]) -> wit::ColumnResult {
    let mut b = crate::processor::wasm::columns::ColumnBuf::default();
    items.iter().for_each(|i| b.push(i.map(str::as_bytes)));
    b.into_column()
}

fn outcomes(values: &[Option<&str>], sources: &[u32]) -> wit::Outcomes {
    wit::Outcomes { values: col(values), sources: sources.to_vec(), keys: col(&[]), timestamps: vec![], headers: vec![], outputs: vec![], failed: vec![] }
}

fn inputs(n: usize) -> Vec<Record> {
    (0..n).map(|i| Record { key: Some(format!("k{i}").into_bytes()), timestamp_ms: i as i64, offset: i as u64, ..Default::default() }).collect()
}

fn values(o: &Outcome) -> Vec<Option<String>> {
    o.emitted().map(|r| r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())).collect()
}

#[test]
fn one_per_input_keeps_each_inputs_key_and_time() {
    let got = from_outcomes(outcomes(&[Some("a"), None, Some("c")], &[]), &inputs(3), &[]).unwrap();
    assert_eq!(values(&got[1]), [None], "an absent value is a tombstone");
    let Outcome::Emit(v) = &got[2] else { panic!("{:?}", got[2]) };
    assert_eq!((v[0].key.as_deref(), v[0].timestamp_ms, v[0].offset), (Some(&b"k2"[..]), 2, 2));
    let none = from_outcomes(outcomes(&[], &[]), &inputs(3), &[]).unwrap();
    assert!(none.iter().all(|o| matches!(o, Outcome::Drop)), "no values: every input dropped");
}

#[test]
fn sources_spread_records_over_inputs_with_their_own_keys_times_headers_and_routes() {
    let mut o = outcomes(&[Some("x"), Some("y"), Some("z"), Some("w")], &[0, 0, 2, 2]);
    o.keys = col(&[None, Some("own"), None, None]);
    o.timestamps = vec![(1, 99)];
    o.headers = vec![(0, wit::HeaderResult { key: "h".into(), value: b"1".to_vec() }), (0, wit::HeaderResult { key: "h".into(), value: b"2".to_vec() })];
    o.outputs = vec![(3, "audit".into())];
    o.failed = vec![(1, wit::Error { class: wit::ErrorClass::InvalidInput, code: "bad".into(), message: "no".into() })];
    let got = from_outcomes(o, &inputs(3), &["audit".to_string()]).unwrap();
    let Outcome::Emit(first) = &got[0] else { panic!("{:?}", got[0]) };
    assert_eq!(
        first.iter().map(|r| (r.key.clone().unwrap(), r.timestamp_ms, r.headers.len())).collect::<Vec<_>>(),
        [(b"k0".to_vec(), 0, 2), (b"own".to_vec(), 99, 0)]
    );
    assert!(matches!(&got[1], Outcome::Fail(e) if e.code == "bad" && e.class == crate::record::ErrorClass::InvalidInput));
    let Outcome::Split { main, side } = &got[2] else { panic!("{:?}", got[2]) };
    assert_eq!((main.len(), side.len(), side[0].0), (1, 1, 0));
}

#[test]
fn an_unknown_output_fails_its_input_with_all_its_records() {
    let mut o = outcomes(&[Some("x"), Some("y")], &[0, 0]);
    o.outputs = vec![(1, "nope".into())];
    let got = from_outcomes(o, &inputs(1), &["audit".to_string()]).unwrap();
    assert!(matches!(&got[0], Outcome::Fail(e) if e.code == "invalid-output" && e.message.contains("`nope`")), "{:?}", got[0]);
}

#[test]
fn outcomes_that_do_not_fit_the_batch_are_refused_with_the_reason() {
    let refused = |o: wit::Outcomes, n: usize| from_outcomes(o, &inputs(n), &[]).unwrap_err();
    assert!(refused(outcomes(&[Some("a")], &[]), 2).contains("1 values without sources"));
    assert!(refused(outcomes(&[Some("a"), Some("b")], &[1, 0]), 2).contains("sources[1] = 0"));
    assert!(refused(outcomes(&[Some("a")], &[5]), 2).contains("sources[0] = 5"));
    assert!(refused(outcomes(&[Some("a")], &[0, 1]), 2).contains("2 sources for 1 values"));
    let mut o = outcomes(&[Some("a")], &[]);
    o.values.ends = vec![7];
    assert!(refused(o, 1).contains("values: item 0 ends at 7"));
    let mut o = outcomes(&[Some("a"), Some("b")], &[]);
    o.failed = vec![(0, wit::Error { class: wit::ErrorClass::Internal, code: "c".into(), message: "m".into() })];
    assert!(refused(o, 2).contains("input 0 both emitted records and failed"));
    let mut o = outcomes(&[], &[]);
    o.failed = vec![(1, wit::Error { class: wit::ErrorClass::Internal, code: "c".into(), message: "m".into() }); 2];
    assert!(refused(o, 2).contains("failed[1] names index 1 (must ascend strictly"));
    let mut o = outcomes(&[Some("a")], &[]);
    o.keys = col(&[Some("a"), Some("b")]);
    assert!(refused(o, 1).contains("keys has 2 items for 1 emitted records"));
}
