//! Unit tests of the sql processor: both modes, the codecs, refusals and windows.

use super::*;
use crate::state::WorkerState;

fn cfg(query: &str, mode: Option<SqlMode>) -> SqlProcessorConfig {
    SqlProcessorConfig { query: query.into(), table_name: "flow".into(), mode, store: None, schema: vec![], allowed_lateness_ms: None }
}

fn stores() -> Vec<String> {
    vec!["default".into(), "user_counts".into()]
}

fn env(state_enabled: bool) -> crate::processor::StreamEnv {
    crate::processor::StreamEnv { store_names: stores(), state_enabled, ..Default::default() }
}

fn processor(query: &str, mode: Option<SqlMode>) -> (SqlFactory, Box<dyn Processor>) {
    let f = SqlFactory::new(&cfg(query, mode), "p", &env(true), 0).unwrap();
    let p = f.instantiate(&crate::processor::ProcessorContext { stream: "t".into(), worker: 0, pipeline: Default::default() }).unwrap();
    (f, p)
}

fn recs(vals: &[&str]) -> Vec<Record> {
    vals.iter()
        .enumerate()
        .map(|(i, v)| Record { key: Some(b"k".to_vec()), value: Some(v.as_bytes().to_vec()), offset: i as u64, ..Default::default() })
        .collect()
}

fn ctx(batch_id: u64) -> BatchCtx {
    BatchCtx { batch_id, key_group: 3, partition: 0, epoch: 1, now_ms: 1000 }
}

fn emitted(out: &[Outcome]) -> Vec<serde_json::Value> {
    out.iter()
        .flat_map(|o| match o {
            Outcome::Emit(v) => v.iter().map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()).collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn batch_mode_projects_and_filters_each_batch_with_metadata_columns() {
    let (f, mut p) = processor("SELECT user_id, amount * 2 AS double, __offset FROM flow WHERE amount > 10", None);
    assert_eq!(f.mode(), SqlMode::Batch, "no GROUP BY: batch mode");
    let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
    let batch = recs(&[r#"{"user_id":"a","amount":5}"#, r#"{"user_id":"b","amount":20}"#, "not json", r#"{"user_id":"c","amount":11.5}"#]);
    let out = p.process(&ctx(1), &batch, &mut slot).unwrap();
    assert_eq!(out.len(), 4, "one outcome per input record");
    assert!(matches!(&out[2], Outcome::Fail(e) if e.code == "bad-json"), "{:?}", out[2]);
    let rows = emitted(&out);
    assert_eq!(rows, vec![serde_json::json!({"user_id":"b","double":40.0,"__offset":1}), serde_json::json!({"user_id":"c","double":23.0,"__offset":3})]);
    // A second batch with another schema is planned again and still right.
    let out = p.process(&ctx(2), &recs(&[r#"{"user_id":"d","amount":30,"extra":true}"#]), &mut slot).unwrap();
    assert_eq!(emitted(&out), vec![serde_json::json!({"user_id":"d","double":60,"__offset":0})]);
}

#[test]
fn continuous_group_by_accumulates_in_state_across_batches() {
    let (f, mut p) = processor("SELECT user_id, COUNT(*), SUM(amount) AS total, AVG(amount) AS mean FROM flow GROUP BY user_id", None);
    assert_eq!(f.mode(), SqlMode::Continuous, "state on + GROUP BY: continuous");
    let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
    p.process(&ctx(1), &recs(&[r#"{"user_id":"a","amount":1}"#, r#"{"user_id":"b","amount":2}"#, r#"{"user_id":"a","amount":3}"#]), &mut slot).unwrap();
    let out = p.process(&ctx(2), &recs(&[r#"{"user_id":"a","amount":6}"#]), &mut slot).unwrap();
    let rows = emitted(&out);
    assert_eq!(rows.len(), 1, "only the changed group is emitted: {rows:?}");
    assert_eq!(rows[0]["user_id"], "a");
    assert_eq!(rows[0]["count(*)"], 3, "running total over both batches: {}", rows[0]);
    assert_eq!(rows[0]["total"], 10);
    assert_eq!(rows[0]["mean"].as_f64().unwrap(), 10.0 / 3.0);
    let st = slot.as_ref().unwrap();
    assert!(st.peek(3, "user_counts", br#"["a"]"#).is_some(), "kept in the custom_keys store, under the batch's key group");
}

fn codec(direction: codecs::Direction) -> Box<dyn Processor> {
    let f = codecs::CodecFactory { direction, declared: None, label: "c".into() };
    f.instantiate(&crate::processor::ProcessorContext { stream: "t".into(), worker: 0, pipeline: Default::default() }).unwrap()
}

fn records_out(out: Vec<Outcome>) -> Vec<Record> {
    out.into_iter()
        .flat_map(|o| match o {
            Outcome::Emit(v) => v,
            _ => vec![],
        })
        .collect()
}

#[test]
fn json_to_arrow_and_back_round_trips_and_sql_reads_arrow_records() {
    let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
    let input = recs(&[r#"{"user_id":"a","amount":5}"#, r#"{"user_id":"b","amount":20.5}"#, "[1]"]);
    let out = codec(codecs::Direction::JsonToArrow).process(&ctx(1), &input, &mut slot).unwrap();
    assert!(matches!(&out[2], Outcome::Fail(e) if e.code == "bad-json"));
    let arrow = records_out(out);
    assert_eq!(arrow.len(), 1, "one Arrow record per batch");
    assert!(codec::is_arrow(&arrow[0]));
    let back = records_out(codec(codecs::Direction::ArrowToJson).process(&ctx(2), &arrow, &mut slot).unwrap());
    let vals: Vec<serde_json::Value> = back.iter().map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap()).collect();
    assert_eq!(vals, vec![serde_json::json!({"user_id":"a","amount":5.0}), serde_json::json!({"user_id":"b","amount":20.5})]);
    assert_eq!((back[1].key.as_deref(), back[1].offset), (Some(&b"k"[..]), 1), "metadata columns restore key and offset");
    let not_arrow = codec(codecs::Direction::ArrowToJson).process(&ctx(3), &input[..1], &mut slot).unwrap();
    assert!(matches!(&not_arrow[0], Outcome::Fail(e) if e.code == "not-arrow"));
    let (_, mut p) = processor("SELECT user_id FROM flow WHERE amount > 10", None);
    let rows = emitted(&p.process(&ctx(4), &arrow, &mut slot).unwrap());
    assert_eq!(rows, vec![serde_json::json!({"user_id":"b"})]);
}

#[test]
fn continuous_mode_refuses_what_it_cannot_keep_naming_the_clause() {
    for (q, clause) in [
        ("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id HAVING COUNT(*) > 1", "HAVING"),
        ("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id ORDER BY user_id", "ORDER BY"),
        ("SELECT user_id, COUNT(DISTINCT amount) FROM flow GROUP BY user_id", "COUNT(DISTINCT"),
        ("SELECT user_id, MEDIAN(amount) FROM flow GROUP BY user_id", "MEDIAN()"),
        ("SELECT user_id, COUNT(*) + 1 FROM flow GROUP BY user_id", "expression over the aggregates"),
        ("SELECT COUNT(*) FROM flow", "needs GROUP BY"),
    ] {
        let e = SqlFactory::new(&cfg(q, Some(SqlMode::Continuous)), "streams[s].pipeline.processors[0]", &env(true), 0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(clause) && e.contains("processors[0]"), "{q}: {e}");
    }
    let e = SqlFactory::new(&cfg("DROP TABLE flow", None), "p", &env(true), 0).err().unwrap().to_string();
    assert!(e.contains("not allowed"), "{e}");
    let e = SqlFactory::new(&cfg("SELEC user_id FROM flow", None), "p", &env(true), 0).err().unwrap().to_string();
    assert!(e.contains("does not parse"), "{e}");
    let e =
        SqlFactory::new(&cfg("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id", Some(SqlMode::Continuous)), "p", &env(false), 0).err().unwrap().to_string();
    assert!(e.contains("state is disabled"), "{e}");
    // Batch mode keeps any query.
    SqlFactory::new(&cfg("SELECT user_id, COUNT(*) FROM flow GROUP BY user_id ORDER BY user_id LIMIT 3", Some(SqlMode::Batch)), "p", &env(true), 0).unwrap();
    let _ = SqlType::Int;
}

fn windowed(query: &str, lateness: Option<i64>) -> Result<SqlFactory, String> {
    let mut c = cfg(query, None);
    c.allowed_lateness_ms = lateness;
    let env = crate::processor::StreamEnv { event_time: Some(Default::default()), ..env(true) };
    SqlFactory::new(&c, "streams[s].pipeline.processors[1]", &env, 1).map_err(|e| e.to_string())
}

fn at(ts: &[(i64, &str)]) -> Vec<Record> {
    ts.iter().enumerate().map(|(i, (t, v))| Record { value: Some(v.as_bytes().to_vec()), timestamp_ms: *t, offset: i as u64, ..Default::default() }).collect()
}

fn fired(p: &mut Box<dyn Processor>, wm: i64, slot: &mut StateSlot) -> Vec<(String, serde_json::Value, i64)> {
    let mut out: Vec<_> = p
        .fire(Clock::Event(wm), 1, 0, slot)
        .unwrap()
        .into_iter()
        .flat_map(|f| f.outcomes)
        .flat_map(|o| match o {
            Outcome::Emit(v) => v,
            _ => vec![],
        })
        .map(|r| {
            (String::from_utf8(r.key.unwrap()).unwrap(), serde_json::from_slice::<serde_json::Value>(r.value.as_deref().unwrap()).unwrap(), r.timestamp_ms)
        })
        .collect();
    out.sort_by_key(|(k, v, _)| (k.clone(), v.to_string()));
    out
}

#[test]
fn tumbling_sql_windows_emit_once_when_the_watermark_closes_them_and_refuse_late_records() {
    let q = "SELECT user_id, tumble(INTERVAL '1 second') AS w, COUNT(*) AS n, SUM(amount) AS total FROM flow GROUP BY user_id, w";
    let f = windowed(q, None).unwrap();
    assert_eq!(f.key(), KeyNeed::Fields(vec!["user_id".into()]), "routed by the key columns, not the window");
    let ctxp = crate::processor::ProcessorContext { stream: "t".into(), worker: 0, pipeline: Default::default() };
    let mut p = f.instantiate(&ctxp).unwrap();
    assert!(p.has_timers());
    let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
    let batch = at(&[
        (100, r#"{"user_id":"a","amount":1}"#),
        (900, r#"{"user_id":"a","amount":2}"#),
        (1500, r#"{"user_id":"a","amount":4}"#),
        (200, r#"{"user_id":"b","amount":8}"#),
    ]);
    let out = p.process(&ctx(1), &batch, &mut slot).unwrap();
    assert!(emitted(&out).is_empty(), "nothing before a window closes");
    assert!(fired(&mut p, 998, &mut slot).is_empty(), "the window [0, 1000) is open until the watermark reaches 999");
    let first = fired(&mut p, 999, &mut slot);
    assert_eq!(
        first,
        vec![
            ("a".into(), serde_json::json!({"user_id":"a","w":0,"n":2,"total":3}), 999),
            ("b".into(), serde_json::json!({"user_id":"b","w":0,"n":1,"total":8}), 999)
        ]
    );
    let late = p.process(&ctx(2), &at(&[(500, r#"{"user_id":"a","amount":16}"#), (1999, r#"{"user_id":"a","amount":32}"#)]), &mut slot).unwrap();
    assert!(matches!(&late[0], Outcome::Fail(e) if e.code == "late"), "{:?}", late[0]);
    // A restart: a new instance rebuilds its index from the state and fires the open window.
    let mut again = f.instantiate(&ctxp).unwrap();
    again.on_restore(slot.as_deref().unwrap());
    assert_eq!(fired(&mut again, i64::MAX, &mut slot), vec![("a".into(), serde_json::json!({"user_id":"a","w":1000,"n":2,"total":36}), 1999)]);
    assert!(fired(&mut again, i64::MAX, &mut slot).is_empty(), "a window fires once");
    assert_eq!(slot.as_ref().unwrap().iter_group(3).count(), 0, "fired windows leave no state");
}

#[test]
fn hopping_sql_windows_count_a_record_in_every_window_it_falls_in_and_wait_for_lateness() {
    let q = "SELECT user_id, hop(INTERVAL '1 second', INTERVAL '2 seconds') AS w, COUNT(*) AS n FROM flow GROUP BY user_id, hop(INTERVAL '1 second', INTERVAL '2 seconds')";
    let f = windowed(q, Some(500)).unwrap();
    let mut p = f.instantiate(&crate::processor::ProcessorContext { stream: "t".into(), worker: 0, pipeline: Default::default() }).unwrap();
    let mut slot: StateSlot = Some(Box::new(WorkerState::new(stores(), None, Default::default())));
    p.process(&ctx(1), &at(&[(1500, r#"{"user_id":"a"}"#), (2500, r#"{"user_id":"a"}"#)]), &mut slot).unwrap();
    assert!(fired(&mut p, 2000, &mut slot).is_empty(), "[0, 2000) waits 500 ms after its end");
    let w0 = fired(&mut p, 2499, &mut slot);
    assert_eq!(w0, vec![("a".into(), serde_json::json!({"user_id":"a","w":0,"n":1}), 1999)]);
    let all = fired(&mut p, i64::MAX, &mut slot);
    let mut counts: Vec<(i64, i64)> = all.iter().map(|(_, v, _)| (v["w"].as_i64().unwrap(), v["n"].as_i64().unwrap())).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![(1000, 2), (2000, 1)]);
}

#[test]
fn sql_windows_are_refused_where_they_cannot_work_naming_the_fix() {
    let base = "SELECT user_id, COUNT(*) FROM flow";
    for (q, lateness, want) in [
        ("SELECT COUNT(*) FROM flow GROUP BY tumble(INTERVAL '1 minute')".to_string(), None, "needs a key column"),
        (format!("{base} WHERE tumble(INTERVAL '1 minute') > 0 GROUP BY user_id"), None, "GROUP BY expression of its own"),
        (format!("{base} GROUP BY user_id, tumble(INTERVAL '1 month')"), None, "months"),
        (format!("{base} GROUP BY user_id, hop(INTERVAL '2 minutes', INTERVAL '1 minute')"), None, "slide must be at most the size"),
        (format!("{base} GROUP BY user_id, tumble(INTERVAL '1 minute'), tumble(INTERVAL '2 minutes')"), None, "one window function"),
        (format!("{base} GROUP BY user_id"), Some(5), "applies to a windowed"),
    ] {
        let e = windowed(&q, lateness).err().unwrap_or_default();
        assert!(e.contains(want) && e.contains("processors[1]"), "{q}: {e}");
    }
    let mut c = cfg("SELECT user_id, tumble(INTERVAL '1 minute') FROM flow", None);
    let e = SqlFactory::new(&c, "p", &env(true), 0).err().unwrap().to_string();
    assert!(e.contains("batch mode"), "{e}");
    c.query = "SELECT user_id, COUNT(*) FROM flow GROUP BY user_id, tumble(INTERVAL '1 minute')".into();
    let e = SqlFactory::new(&c, "p", &env(true), 0).err().unwrap().to_string();
    assert!(e.contains("event_time"), "{e}");
}

fn block(lines: &[&str]) -> crate::lines::Lines {
    let text = lines.join("\n").into_bytes();
    let records = lines.iter().filter(|l| !l.trim().is_empty()).count();
    crate::lines::Lines { value_bytes: text.len(), text: text.into(), records, last_line: lines.len() as u64 - 1, ..Default::default() }
}

/// The rows a block's results hold, as JSON, numbers compared as f64.
fn lane_rows(p: &mut Box<dyn Processor>, b: &crate::lines::Lines) -> Option<Vec<serde_json::Value>> {
    let batches = p.process_lines(&ctx(1), b)?;
    Some(codec::to_json_rows(&batches).unwrap().iter().map(|r| as_f64(serde_json::from_slice(r).unwrap())).collect())
}

fn as_f64(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        serde_json::Value::Object(m) => serde_json::Value::Object(m.into_iter().map(|(k, v)| (k, as_f64(v))).collect()),
        other => other,
    }
}

#[test]
fn a_block_of_lines_gives_the_rows_its_records_give() {
    let (f, mut p) = processor("SELECT id, value, note FROM flow WHERE value >= 10", Some(SqlMode::Batch));
    assert!(f.takes_lines());
    let (_, mut by_records) = processor("SELECT id, value, note FROM flow WHERE value >= 10", Some(SqlMode::Batch));
    let blocks = [
        // Integers type the field; the next blocks bring a fraction, a new field and a null.
        block(&[r#"{"id":1,"value":12}"#, "", r#"{"id":2,"value":3}"#]),
        block(&[r#"{"id":3,"value":12.5}"#, r#"{"id":4,"value":11}"#]),
        block(&[r#"{"id":5,"value":40,"note":"late"}"#, r#"{"id":6,"value":null}"#]),
        block(&[r#"{"id":7,"value":10}"#]),
    ];
    for (i, b) in blocks.iter().enumerate() {
        let lane = lane_rows(&mut p, b).unwrap_or_else(|| panic!("block {i} runs whole"));
        let mut slot: StateSlot = None;
        let records = emitted(&by_records.process(&ctx(1), &b.to_records(), &mut slot).unwrap());
        assert_eq!(lane, records.into_iter().map(as_f64).collect::<Vec<_>>(), "block {i}");
    }
    // The integers of the last block came back as integers, not floats.
    let batches = p.process_lines(&ctx(1), &blocks[3]).unwrap();
    assert_eq!(codec::to_json_rows(&batches).unwrap(), vec![br#"{"id":7,"value":10}"#.to_vec()]);
}

#[test]
fn a_block_the_lane_cannot_type_takes_the_record_path() {
    let (_, mut p) = processor("SELECT id, value FROM flow", Some(SqlMode::Batch));
    assert!(lane_rows(&mut p, &block(&[r#"{"id":1,"value":12}"#])).is_some());
    for (why, b) in [
        ("a line that is not an object", block(&[r#"{"id":2}"#, "not json"])),
        ("a nested value", block(&[r#"{"id":3,"tags":{"a":1}}"#])),
        ("a string where a number was", block(&[r#"{"id":4,"value":"twelve"}"#])),
        ("an integer beyond f64's exact range beside a fraction", block(&[r#"{"id":9007199254740993,"value":1.5}"#])),
        ("two objects on one line", block(&[r#"{"id":5} {"id":6}"#])),
    ] {
        assert!(p.process_lines(&ctx(1), &b).is_none(), "{why}");
    }
    assert_eq!(
        lane_rows(&mut p, &block(&[r#"{"id":7,"value":13}"#])).unwrap(),
        vec![as_f64(serde_json::json!({"id":7,"value":13}))],
        "the schema survives a declined block"
    );
    // A block without fractions decodes its integers as integers: exact to the full i64 range.
    let big = p.process_lines(&ctx(1), &block(&[r#"{"id":9007199254740993,"value":1}"#])).unwrap();
    assert_eq!(codec::to_json_rows(&big).unwrap(), vec![br#"{"id":9007199254740993,"value":1}"#.to_vec()]);
}
