//! The fast decoder against arrow-json: the same batch whenever it decodes, and a decline (None)
//! for what it leaves to arrow-json.

use super::decode;
use crate::processor::sql::codec::decode_rows;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>()))
}

fn sensors() -> SchemaRef {
    schema(&[("timestamp", DataType::Int64), ("value", DataType::Float64), ("sensor", DataType::Utf8), ("ok", DataType::Boolean), ("none", DataType::Null)])
}

fn rows(text: &str) -> usize {
    text.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Decodes `text` both ways; asserts the fast decoder took it and agrees with arrow-json.
fn same(text: &str, schema: &SchemaRef, strict: bool) {
    let fast = decode(text.as_bytes(), schema, strict, rows(text)).unwrap_or_else(|| panic!("declined: {text}"));
    let slow = decode_rows(text.as_bytes(), schema.clone(), strict, rows(text)).expect("arrow-json decodes it");
    assert_eq!(fast, slow, "{text}");
}

#[test]
fn flat_objects_decode_as_arrow_json_does() {
    let s = sensors();
    same("{\"timestamp\":1700000000000,\"value\":4,\"sensor\":\"s-0\",\"ok\":true}\n", &s, true);
    same("{\"sensor\":\"b\",\"timestamp\":-9223372036854775808,\"value\":-0.5e-3}\n\n  {} \r\n{\"ok\":false,\"none\":null}", &s, true);
    same("{ \"timestamp\" : 9223372036854775807 , \"value\" : 1E+308 ,\"sensor\":null}", &s, true);
    same("{\"value\":0.1,\"sensor\":\"\\\"q\\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 é 漢\"}", &s, true);
    same("{\"value\":123456789012345678901234567890}\n{\"value\":-0}", &s, true);
    // Not strict: a field the schema lacks is skipped, whatever scalar it holds.
    same("{\"extra\":\"x\\n\",\"timestamp\":1,\"more\":-1.5e3,\"t\":true,\"n\":null}", &s, false);
}

#[test]
fn leaves_to_arrow_json_what_it_does_not_read() {
    let s = sensors();
    let declined = |text: &str, strict: bool| assert!(decode(text.as_bytes(), &s, strict, rows(text)).is_none(), "{text}");
    declined("{\"timestamp\":1.5}", true);
    declined("{\"timestamp\":1e3}", true);
    declined("{\"timestamp\":9223372036854775808}", true);
    declined("{\"timestamp\":01}", true);
    declined("{\"value\":1.}", true);
    declined("{\"value\":-}", true);
    declined("{\"value\":1e400}", true);
    declined("{\"value\":\"1\"}", true);
    declined("{\"sensor\":1}", true);
    declined("{\"sensor\":\"\\ud800\"}", true);
    declined("{\"sensor\":\"a\tb\"}", true);
    declined("{\"ok\":1}", true);
    declined("{\"none\":1}", true);
    declined("{\"timestamp\":1,\"timestamp\":2}", true);
    declined("{\"sens\\u006fr\":\"a\"}", true);
    declined("{\"extra\":1}", true);
    declined("{\"extra\":{\"a\":1}}", false);
    declined("{\"extra\":[1]}", false);
    declined("{\"timestamp\":1}{\"timestamp\":2}", true);
    declined("{\"timestamp\":1,}", true);
    declined("{\"timestamp\":1", true);
    // The row count must be the block's.
    assert!(decode(b"{}\n{}", &s, true, 1).is_none() && decode(b"{}\n{}", &s, true, 3).is_none());
    let quoted = schema(&[("a\"b", DataType::Int64)]);
    assert!(decode(b"{\"a\"b\":1}", &quoted, true, 1).is_none(), "a name no plain key spells");
    // Keys out of the schema's order are still found.
    same("{\"none\":null,\"sensor\":\"x\",\"timestamp\":2}\n{\"timestamp\":3,\"timestamp2\":1}\n{\"value2\":1,\"ok\":true,\"o\":1,\"okk\":2}", &s, false);
    let bad_utf8 = b"{\"sensor\":\"\xff\"}";
    assert!(decode(bad_utf8, &s, true, 1).is_none());
}

/// A random block of flat objects: fields in any order, some missing, nulls, escapes, unicode,
/// integers over the whole i64 range and floats in every notation.
fn random_block(seed: u64, lines: usize) -> String {
    let mut x = seed.max(1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let strings = ["", "a", "sensor-01", "é漢😀", "q\\\"uote", "\\n\\t\\\\", "\\u0041\\u00e9", "sp ace"];
    let mut out = String::new();
    for _ in 0..lines {
        let mut fields = vec![
            format!("\"timestamp\":{}", next() as i64 >> (next() % 64)),
            format!("\"value\":{}", ["1.5", "-0.25", "3", "2e10", "-7E-3", "0", "1e-300"][(next() % 7) as usize]),
            format!("\"sensor\":\"{}\"", strings[(next() % strings.len() as u64) as usize]),
            format!("\"ok\":{}", ["true", "false"][(next() % 2) as usize]),
            "\"none\":null".to_string(),
        ];
        for f in fields.iter_mut() {
            if next() % 6 == 0 {
                *f = format!("{}:null", f.split(':').next().unwrap());
            }
        }
        fields.retain(|_| next() % 5 != 0);
        let n = fields.len();
        for i in (1..n).rev() {
            fields.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let sep = [",", " , ", ",\t"][(next() % 3) as usize];
        out.push_str(&format!("{{{}}}\n", fields.join(sep)));
    }
    out
}

#[test]
fn random_blocks_decode_as_arrow_json_does() {
    let s = sensors();
    for seed in 1..200 {
        same(&random_block(seed, 1 + (seed as usize % 40)), &s, seed % 2 == 0);
    }
}

#[test]
fn integers_of_every_length_anywhere_in_the_block() {
    let s = sensors();
    let mut numbers: Vec<String> = (1..=19).map(|k| "1234567890123456789"[..k].to_string()).collect();
    numbers.extend(["0", "-0", "9223372036854775807", "-9223372036854775808", "1000000000000000000", "10000000"].map(String::from));
    for n in &numbers {
        // Last in the block (fewer than eight bytes after it), and followed by more fields.
        same(&format!("{{\"timestamp\":{n}}}"), &s, true);
        same(&format!("{{\"timestamp\":{n},\"sensor\":\"x\"}}\n{{\"timestamp\":{n} }}"), &s, true);
    }
    let declined = |n: &str| assert!(decode(format!("{{\"timestamp\":{n}}}").as_bytes(), &s, true, 1).is_none(), "{n}");
    ["9223372036854775808", "-9223372036854775809", "12345678901234567890", "00", "012345678", "-", "1.0", "1e5"].iter().for_each(|n| declined(n));
}
