use super::*;
use crate::Outcome;

fn rec(key: Option<&str>, value: &str) -> RecordIn {
    RecordIn { key: key.map(|k| k.as_bytes().to_vec()), value: Some(value.as_bytes().to_vec()), headers: vec![], timestamp_ms: 7, partition: 1, offset: 9 }
}

#[test]
fn a_batch_reads_back_the_records_it_was_built_from() {
    let mut with_header = rec(None, "b");
    with_header.headers.push(Header { key: "h".into(), value: b"v".to_vec() });
    let records = vec![rec(Some("k"), "a"), with_header, rec(Some(""), "")];
    let batch = Batch::from_records(&records);
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.to_records(), records);
    let r = batch.get(1);
    assert_eq!((r.key, r.value, r.header("h"), r.index), (None, Some(&b"b"[..]), Some(&b"v"[..]), 1));
    assert_eq!(batch.get(2).key, Some(&b""[..]), "an empty key is present, not absent");
}

#[test]
fn one_value_per_input_is_sent_without_sources() {
    let mut out = Outcomes::default();
    out.emit_value(0, b"x");
    out.emit_with(1, |b| b.extend_from_slice(b"yy"));
    let o = out.finish(2).unwrap();
    assert!(o.sources.is_empty() && o.keys.ends.is_empty() && o.values.valid.is_empty());
    assert_eq!((o.values.data.as_slice(), o.values.ends.as_slice()), (&b"xyy"[..], &[1u32, 3][..]));
}

#[test]
fn the_record_api_maps_to_sources_keys_and_failures() {
    let list = vec![
        Outcome::Emit(vec![RecordOut::new("a"), RecordOut::new("b").with_key("k").with_timestamp(5).to_output("side")]),
        Outcome::Drop,
        Outcome::Fail(Error::invalid_input("bad", "no")),
        Outcome::Emit(vec![RecordOut { value: None, ..RecordOut::new("") }]),
    ];
    let o = Outcomes::from_list(list, 4, "process_batch").unwrap().finish(4).unwrap();
    let short = Outcomes::from_list(vec![Outcome::Drop], 2, "process_batch").err().unwrap();
    assert!(short.code == "wrong-outcome-count" && short.message.contains("process_batch returned 1 outcomes for 2 inputs"), "{short:?}");
    assert_eq!(o.sources, [0, 0, 3]);
    assert_eq!(o.keys.ends.len(), 3, "keys padded to one per emitted record");
    assert_eq!(item(&o.keys, 0), None);
    assert_eq!(item(&o.keys, 1), Some(&b"k"[..]));
    assert_eq!(item(&o.values, 2), None, "a tombstone");
    assert_eq!((o.timestamps.clone(), o.outputs.clone()), (vec![(1, 5)], vec![(1, "side".to_string())]));
    assert_eq!(o.failed.len(), 1);
    assert_eq!(o.failed[0].0, 2);
}

#[test]
fn misuse_fails_the_call_instead_of_sending_what_the_host_refuses() {
    let mut out = Outcomes::default();
    out.emit_value(1, b"x");
    out.emit_value(0, b"y");
    assert_eq!(out.finish(2).unwrap_err().code, "outcomes-out-of-order");
    let mut out = Outcomes::default();
    out.emit_value(0, b"x");
    out.fail(0, Error::internal("c", "m"));
    assert_eq!(out.finish(1).unwrap_err().code, "outcomes-mixed");
}
