//! The s3 output's commit protocol on an in-memory object store.
use super::*;
use crate::checkpoint::CommitError;
use crate::state::backend::MemoryStore;

fn rec(v: &str) -> Record {
    Record { value: Some(v.as_bytes().to_vec()), ..Default::default() }
}

fn out(store: &Arc<MemoryStore>, generation: u64) -> S3Out {
    S3Out {
        store: store.clone(),
        uploads: store.clone(),
        chunk: MIN_PART_BYTES,
        format: S3Format::Json,
        schema: None,
        mode: Mode::Epochs { scope: "op".into(), generation },
        open: BTreeMap::new(),
        line: Vec::new(),
        lines: Vec::new(),
    }
}

fn get(store: &MemoryStore, key: &str) -> Option<String> {
    block_on(store.get(key)).unwrap().map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn keys(store: &MemoryStore, prefix: &str) -> Vec<String> {
    block_on(store.list(prefix)).unwrap().into_iter().map(|m| m.key).collect()
}

#[test]
fn a_part_is_uploaded_before_the_decision_and_visible_only_once_its_marker_is_written() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 3);
    o.write_epoch(1, &[rec(r#"{"a":1}"#), rec("plain")]).unwrap();
    o.write_epoch(2, &[rec(r#"{"a":2}"#)]).unwrap();
    let blob = o.pre_commit(1).unwrap().expect("epoch 1 has records");
    assert_eq!(get(&store, "parts/op/000000000001-g3.jsonl").as_deref(), Some("{\"a\":1}\n\"plain\"\n"));
    assert!(keys(&store, "committed/").is_empty(), "nothing visible before the decision");
    let c = o.committer().unwrap();
    c.commit(1, &blob, false).unwrap();
    let m: Marker = serde_json::from_str(&get(&store, "committed/op/000000000001.json").unwrap()).unwrap();
    assert_eq!((m.part.as_str(), m.records, m.bytes), ("parts/op/000000000001-g3.jsonl", 2, 16));
    c.commit(1, &blob, true).expect("a replayed commit finds its own marker");
    assert!(o.pre_commit(1).unwrap().is_none(), "epoch 2 waits for its own barrier");
    assert!(o.pre_commit(2).unwrap().is_some());
}

#[test]
fn a_missing_part_or_a_foreign_marker_stops_the_commit() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 1);
    o.write_epoch(5, &[rec("x")]).unwrap();
    let blob = o.pre_commit(5).unwrap().unwrap();
    block_on(store.delete("parts/op/000000000005-g1.jsonl")).unwrap();
    let e = o.committer().unwrap().commit(5, &blob, false).unwrap_err();
    assert!(matches!(&e, CommitError::Fatal(m) if m.contains("missing")), "{e}");

    o.write_epoch(6, &[rec("y")]).unwrap();
    let blob = o.pre_commit(6).unwrap().unwrap();
    block_on(store.put("committed/op/000000000006.json", Bytes::from_static(b"{}"))).unwrap();
    let e = o.committer().unwrap().commit(6, &blob, false).unwrap_err();
    assert!(matches!(&e, CommitError::Fatal(m) if m.contains("another run")), "{e}");
}

#[test]
fn recovery_refuses_another_runs_output_and_deletes_older_undecided_parts() {
    let store = Arc::new(MemoryStore::new());
    let put = |k: &str| block_on(store.put(k, Bytes::from_static(b"x"))).unwrap();
    put("parts/op/000000000002-g1.jsonl"); // decided, kept
    put("parts/op/000000000004-g1.jsonl"); // undecided, older generation: deleted
    put("parts/op/000000000004-g7.jsonl"); // a newer generation's live part: kept
    put("committed/op/000000000002.json");
    out(&store, 5).recovered(Some(3)).unwrap();
    assert_eq!(keys(&store, "parts/"), ["parts/op/000000000002-g1.jsonl", "parts/op/000000000004-g7.jsonl"]);

    let e = out(&store, 5).recovered(None).unwrap_err().to_string();
    assert!(e.contains("committed/op/000000000002.json") && e.contains("another run"), "{e}");
    let e = out(&store, 5).recovered(Some(1)).unwrap_err().to_string();
    assert!(e.contains("last decided: 1"), "{e}");
}

#[test]
fn at_least_once_every_flush_uploads_a_part_and_its_marker() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 0);
    o.mode = Mode::AtLeastOnce { run: "r".into(), seq: 0 };
    o.write_batch(&[rec("1"), rec("2")]).unwrap();
    o.flush().unwrap();
    o.flush().unwrap(); // nothing new: nothing uploaded
    o.write_batch(&[rec("3")]).unwrap();
    o.close().unwrap();
    assert_eq!(keys(&store, "committed/"), ["committed/at-least-once/r-00000001.json", "committed/at-least-once/r-00000002.json"]);
    assert_eq!(
        get(&store, "parts/at-least-once/r-00000002.jsonl").as_deref(),
        Some("\"3\"\n"),
        "a value that is not a JSON object or array is written as a JSON string"
    );
}

#[test]
fn a_parquet_part_refuses_a_record_that_is_not_a_json_object() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 1);
    o.format = S3Format::Parquet;
    o.write_epoch(1, &[rec("{\"a\":1}"), rec("{\"a\":2.5,\"b\":\"x\"}")]).unwrap();
    let blob = o.pre_commit(1).unwrap().unwrap();
    let part = blob["parts"][0][1]["part"].as_str().unwrap().to_string();
    assert!(part.ends_with("-g1.parquet"), "{part}");
    let body = block_on(store.get(&part)).unwrap().unwrap();
    assert_eq!((&body[..4], blob["parts"][0][1]["bytes"].as_u64().unwrap()), (&b"PAR1"[..], body.len() as u64));
    let bad = Record { partition: 2, offset: 9, ..rec("[1,2]") };
    let err = o.write_epoch(2, &[bad]).unwrap_err().to_string();
    assert!(err.contains("partition 2 offset 9 is not a JSON object"), "{err}");
}

/// `n` records of about 1 KiB, numbered from `from`, their text hard to compress.
fn kib_records(from: u64, n: u64) -> Vec<Record> {
    (from..from + n)
        .map(|i| {
            let noise: String =
                (0..60).map(|j| format!("{:016x}", xxh3_64(&(i * 100 + j).to_le_bytes()))).collect::<Vec<_>>().join("").chars().take(1000).collect();
            rec(&format!("{{\"id\":{i},\"noise\":\"{noise}\"}}"))
        })
        .collect()
}

#[test]
fn a_large_epoch_goes_up_in_chunks_while_it_arrives_and_appears_only_after_the_decision() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 2);
    let mut expected = Vec::new();
    for b in 0..12 {
        let batch = kib_records(b * 1000, 1000);
        for r in &batch {
            expected.extend_from_slice(r.value.as_deref().unwrap());
            expected.push(b'\n');
        }
        o.write_epoch(1, &batch).unwrap();
    }
    let pending = block_on(store.pending("parts/")).unwrap();
    assert_eq!(pending.len(), 1, "chunks went up while the epoch was open");
    assert!(o.open[&1].buf.len() < MIN_PART_BYTES, "memory holds less than a chunk");
    let blob = o.pre_commit(1).unwrap().unwrap();
    assert!(keys(&store, "parts/").is_empty() && keys(&store, "committed/").is_empty(), "nothing visible before the decision");
    let tags = blob["uploads"]["1"]["tags"].as_array().unwrap().len();
    assert!(tags >= 2, "12 MiB in 5 MiB chunks: {blob}");

    // The decision's commit, run by a fresh process (the one that staged it was killed).
    let c = out(&store, 3).committer().unwrap();
    c.commit(1, &blob, true).unwrap();
    let part = block_on(store.get("parts/op/000000000001-g2.jsonl")).unwrap().expect("completed");
    assert!(part[..] == expected[..], "the part is the epoch's lines, in order");
    let m: Marker = serde_json::from_str(&get(&store, "committed/op/000000000001.json").unwrap()).unwrap();
    assert_eq!((m.records, m.bytes, m.xxh3), (12_000, expected.len() as u64, xxh3_64(&expected)));
    c.commit(1, &blob, true).expect("a repeated commit finds the upload completed and its own marker");
    assert!(block_on(store.pending("parts/")).unwrap().is_empty());
}

#[test]
fn a_large_parquet_part_is_uploaded_in_chunks_at_the_barrier() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 1);
    o.format = S3Format::Parquet;
    for b in 0..14 {
        o.write_epoch(4, &kib_records(b * 1000, 1000)).unwrap();
    }
    assert!(block_on(store.pending("parts/")).unwrap().is_empty(), "a Parquet part is built whole at the barrier");
    let blob = o.pre_commit(4).unwrap().unwrap();
    assert!(blob["uploads"]["4"]["tags"].as_array().unwrap().len() >= 2, "{blob}");
    o.committer().unwrap().commit(4, &blob, false).unwrap();
    let body = block_on(store.get("parts/op/000000000004-g1.parquet")).unwrap().unwrap();
    assert_eq!(body.len() as u64, blob["parts"][0][1]["bytes"].as_u64().unwrap());
    let rows: usize =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 14_000);
}

#[test]
fn recovery_aborts_the_uploads_no_commit_will_complete() {
    let store = Arc::new(MemoryStore::new());
    let begin = |k: &str| block_on(store.begin(k)).unwrap();
    begin("parts/op/000000000002-g1.jsonl"); // decided and marked: a leftover of a fenced run
    begin("parts/op/000000000003-g1.jsonl"); // decided, not marked yet: its replayed commit completes it
    begin("parts/op/000000000004-g1.jsonl"); // undecided, older generation: staged again by the replay
    begin("parts/op/000000000004-g7.jsonl"); // a newer generation's
    block_on(store.put("parts/op/000000000002-g6.jsonl", Bytes::from_static(b"x"))).unwrap();
    block_on(store.put("committed/op/000000000002.json", Bytes::from_static(b"{}"))).unwrap();
    out(&store, 5).recovered(Some(3)).unwrap();
    let left: Vec<String> = block_on(store.pending("parts/")).unwrap().into_iter().map(|u| u.key).collect();
    assert_eq!(left, ["parts/op/000000000003-g1.jsonl", "parts/op/000000000004-g7.jsonl"]);
}

#[test]
fn at_least_once_flushes_whenever_a_chunk_is_full() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 0);
    o.mode = Mode::AtLeastOnce { run: "r".into(), seq: 0 };
    for b in 0..6 {
        o.write_batch(&kib_records(b * 1000, 1000)).unwrap();
    }
    assert_eq!(keys(&store, "committed/").len(), 1, "5 MiB reached once in 6,000 KiB records, without a flush");
}

fn declared(o: &mut S3Out) {
    o.format = S3Format::Parquet;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let fields = [("id", DataType::Int64), ("noise", DataType::Utf8), ("missing", DataType::Float64)];
    o.schema = Some(Arc::new(Schema::new(fields.map(|(n, t)| Field::new(n, t, true)).to_vec())));
}

#[test]
fn a_declared_parquet_schema_streams_the_part_in_chunks_while_the_epoch_is_open() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 1);
    declared(&mut o);
    for b in 0..140 {
        o.write_epoch(4, &kib_records(b * 100, 100)).unwrap();
    }
    let pending = block_on(store.pending("parts/")).unwrap();
    assert_eq!(pending.len(), 1, "row groups went up while the epoch was open");
    let blob = o.pre_commit(4).unwrap().unwrap();
    o.committer().unwrap().commit(4, &blob, false).unwrap();
    let body = block_on(store.get("parts/op/000000000004-g1.parquet")).unwrap().unwrap();
    assert_eq!(body.len() as u64, blob["parts"][0][1]["bytes"].as_u64().unwrap());
    use datafusion::arrow::array::RecordBatchReader;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap();
    let names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "noise", "missing"], "the declared columns, in order, a field no record has included");
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 14_000);
}

#[test]
fn a_record_that_does_not_fit_the_declared_schema_is_named() {
    let store = Arc::new(MemoryStore::new());
    let mut o = out(&store, 1);
    declared(&mut o);
    let mut bad = rec(r#"{"id":"seven"}"#);
    (bad.partition, bad.offset) = (2, 41);
    let e = o.write_epoch(1, &[rec(r#"{"id":1,"other":[1]}"#), bad]).unwrap_err();
    assert!(format!("{e:#}").contains("the record at partition 2 offset 41 does not fit `parquet_schema`"), "{e:#}");
}

#[test]
fn abandon_releases_a_fenced_scopes_uploads_and_parts_after_its_last_decision() {
    let store = Arc::new(MemoryStore::new());
    for key in ["parts/op/sessions/1/000000000003-g1.jsonl", "parts/op/sessions/1/000000000004-g1.jsonl", "parts/op/sessions/2/000000000009-g2.jsonl"] {
        block_on(store.put(key, Bytes::from_static(b"x\n"))).unwrap();
        block_on(store.begin(&key.replace(".jsonl", ".txt"))).unwrap();
    }
    let c = out(&store, 1).committer().unwrap();
    c.abandon("op/sessions/1", Some(3)).unwrap();
    assert_eq!(keys(&store, "parts/"), ["parts/op/sessions/1/000000000003-g1.jsonl", "parts/op/sessions/2/000000000009-g2.jsonl"]);
    let pending: Vec<String> = block_on(store.pending("parts/")).unwrap().into_iter().map(|u| u.key).collect();
    assert_eq!(pending, ["parts/op/sessions/1/000000000003-g1.txt", "parts/op/sessions/2/000000000009-g2.txt"], "the decided epoch and other scopes are kept");
    c.abandon("op/sessions/2", None).unwrap();
    assert_eq!(keys(&store, "parts/"), ["parts/op/sessions/1/000000000003-g1.jsonl"], "a scope that decided nothing releases everything");
    c.abandon("op/sessions/2", None).expect("idempotent");
}
