//! State follows the key: a stage that keeps state by a key gets every record of that key in one
//! key group, whatever the input's record keys and partitioning. The seed's
//! `SELECT user_id, COUNT(*) FROM flow GROUP BY user_id` over unkeyed records gives the true count
//! of every user with `thread_num` 1, 2 and 4; a wasm counter with `key_by:` counts every key
//! 1..n, and so does one whose plugin declares its key in `describe()` (a YAML key naming another
//! is refused); a GROUP BY the host cannot route by is refused at `--validate` and at start,
//! naming the stage and the fix. (Kafka: `sql_e2e.rs` runs the seed's file over an unkeyed topic; two keys in
//! one stream: `exchange.rs`.)

mod common;
use common::*;
use std::collections::HashMap;

/// `n` orders `{"order_id","user_id","amount"}` over `users` users in a scrambled order, with no
/// record key; returns each user's count.
fn unkeyed_orders(dir: &Dir, n: u64, users: u64) -> HashMap<String, i64> {
    use std::io::Write;
    let mut counts = HashMap::new();
    let mut f = std::fs::File::create(dir.path("in.jsonl")).unwrap();
    for i in 0..n {
        let user = format!("u{}", generated_key(7, users, i));
        *counts.entry(user.clone()).or_default() += 1;
        writeln!(f, r#"{{"order_id":{i},"user_id":"{user}","amount":{}}}"#, i % 50).unwrap();
    }
    counts
}

fn seed_like(dir: &Dir, threads: usize, processor: &str, key_by: &str) -> std::path::PathBuf {
    dir.config(&format!(
        r#"state_management:
  enabled: true
  backend_type: memory
  checkpoint_interval_ms: 200
streams:
  - input: {{ type: file, path: {input}, batch_size: 97 }}
{key_by}    pipeline:
      thread_num: {threads}
      processors:
        - {processor}
    output: {{ type: file, path: {out} }}
    state:
      operator_id: "order-aggregator"
      enabled: true
      custom_keys:
        - "user_counts"
"#,
        input = dir.path("in.jsonl").display(),
        out = dir.path("out.jsonl").display(),
    ))
}

#[test]
fn the_seed_group_by_counts_every_user_exactly_on_unkeyed_records_with_1_2_and_4_threads() {
    for threads in [1, 2, 4] {
        let dir = Dir::new();
        let expected = unkeyed_orders(&dir, 20_000, 100);
        let cfg = seed_like(&dir, threads, r#"{ type: sql, query: "SELECT user_id, COUNT(*) FROM flow GROUP BY user_id" }"#, "");
        let out = run(&cfg, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("routed to key groups by fields user_id"), "{}", stderr(&out));
        // Running totals: each user's last printed total is its count.
        let mut last: HashMap<String, i64> = HashMap::new();
        for l in json_lines(&dir.path("out.jsonl")) {
            let (u, c) = (l["user_id"].as_str().unwrap().to_string(), l["count(*)"].as_i64().unwrap());
            let prev = last.insert(u.clone(), c).unwrap_or(0);
            assert!(c > prev, "thread_num {threads}: {u}'s running total went from {prev} to {c}");
        }
        assert_eq!(last.len(), expected.len(), "thread_num {threads}: every user printed");
        for (u, c) in &expected {
            assert_eq!(last[u], *c, "thread_num {threads}: {u}'s final running total equals its number of orders");
        }
    }
}

/// Runs `cfg` (a counter into `out.jsonl`) to the end: every key is counted 1..n, in order.
fn run_and_check_counter(dir: &Dir, cfg: &std::path::Path, expected: &HashMap<String, i64>) {
    let out = run(cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let counts = counts_by_key(&json_lines(&dir.path("out.jsonl")));
    assert_eq!(counts.len(), expected.len());
    for (k, c) in counts {
        assert_eq!(c, (1..=expected[&k]).collect::<Vec<i64>>(), "key {k}: counted 1..n, in order, once each");
    }
}

#[test]
fn a_wasm_counter_keyed_by_a_field_counts_every_key_once_on_unkeyed_records() {
    let dir = Dir::new();
    let expected = unkeyed_orders(&dir, 6_000, 40);
    let counter = format!("{{ type: wasm, path: {}, config: {{ key_field: user_id }}, key_by: user_id }}", plugin("counter").display());
    let cfg = seed_like(&dir, 4, &counter, "");
    run_and_check_counter(&dir, &cfg, &expected);
}

#[test]
fn a_plugin_that_declares_its_key_in_describe_is_routed_by_it_without_key_by() {
    let dir = Dir::new();
    let expected = unkeyed_orders(&dir, 6_000, 40);
    let counter = format!("{{ type: wasm, path: {} }}", plugin("counter_by_user").display());
    let cfg = seed_like(&dir, 4, &counter, "");
    let validate = run(&cfg, &["--validate"]);
    assert!(validate.status.success(), "{}", stderr(&validate));
    assert!(String::from_utf8_lossy(&validate.stdout).contains("user_id"), "the plan names the declared key: {}", String::from_utf8_lossy(&validate.stdout));
    run_and_check_counter(&dir, &cfg, &expected);
    assert!(stderr(&run(&cfg, &[])).contains("routed to key groups by fields user_id"));
    // A YAML key naming another field is refused, at --validate and at start, naming both.
    let other = format!("{{ type: wasm, path: {}, key_by: order_id }}", plugin("counter_by_user").display());
    let cfg = seed_like(&dir, 2, &other, "");
    for args in [&["--validate"][..], &[]] {
        let out = run(&cfg, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: refused");
        assert!(err.contains("pipeline.processors[0]") && err.contains("key_by: order_id") && err.contains("(`user_id`)"), "{args:?}: {err}");
    }
}

#[test]
fn a_group_by_the_host_cannot_route_by_is_refused_with_the_fix_and_accepted_with_key_by() {
    let dir = Dir::new();
    unkeyed_orders(&dir, 100, 5);
    let sql = r#"{ type: sql, query: "SELECT lower(user_id) AS u, COUNT(*) FROM flow GROUP BY lower(user_id)" }"#;
    let cfg = seed_like(&dir, 2, sql, "");
    for args in [&["--validate"][..], &[]] {
        let out = run(&cfg, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: refused");
        assert!(err.contains("pipeline.processors[0]") && err.contains("lower(") && err.contains("key_by"), "{args:?}: {err}");
    }
    let cfg = seed_like(&dir, 2, sql, "    key_by: user_id\n");
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run(&cfg, &["--validate"]).status.success());
}

#[test]
fn restoring_state_written_under_another_routing_is_refused() {
    let dir = Dir::new();
    unkeyed_orders(&dir, 500, 10);
    let cfg = |key_by: &str| {
        dir.config(&format!(
            "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {state} }}\n  checkpoint_interval_ms: 100\nstreams:\n  - name: s\n    input: {{ type: file, path: {input} }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {counter}, config: {{ key_field: user_id }}{key_by} }}\n    output: {{ type: file, path: {out} }}\n    state: {{ operator_id: s, enabled: true }}\n",
            state = dir.path("state").display(),
            input = dir.path("in.jsonl").display(),
            counter = plugin("counter").display(),
            out = dir.path("out.jsonl").display(),
        ))
    };
    let first = run(&cfg(", key_by: user_id"), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = run(&cfg(""), &[]);
    let err = stderr(&second);
    assert!(!second.status.success(), "state routed by user_id is not restored under another routing");
    assert!(err.contains("routed to key groups by fields user_id") && err.contains("this stream routes them by record key"), "{err}");
    let again = run(&cfg(", key_by: user_id"), &[]);
    assert!(again.status.success(), "the same routing restores: {}", stderr(&again));
}

/// A plugin may rewrite what a keyed stage after it groups by, so that stage reads an exchange
/// keyed by its own key (here the `key` field the counter emits, which the input never had).
#[test]
fn a_plugin_before_a_keyed_stage_is_exchanged_to_by_its_key() {
    let dir = Dir::new();
    let expected = unkeyed_orders(&dir, 2_000, 20);
    let two = format!(
        "{{ type: wasm, path: {}, config: {{ key_field: user_id }} }}\n        - {{ type: sql, mode: continuous, query: \"SELECT key, COUNT(*) AS n FROM flow GROUP BY key\" }}",
        plugin("counter").display()
    );
    let cfg = seed_like(&dir, 2, &two, "");
    let v = run(&cfg, &["--validate"]);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains("routed to key groups by record key -> exchange -> [sql] on 2 worker(s), one batch per key group, routed to key groups by fields key"),
        "{text}{}",
        stderr(&v)
    );
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut last: HashMap<String, i64> = HashMap::new();
    for l in json_lines(&dir.path("out.jsonl")) {
        last.insert(l["key"].as_str().unwrap().to_string(), l["n"].as_i64().unwrap());
    }
    assert_eq!(last, expected, "each user's last total is its number of orders");
}

/// `key_by: record_key`: the plugin keeps state by the record key the input set (here the file
/// input's `key_field`), so the stream routes by the record key; a second stage keyed by a field
/// runs behind an exchange.
#[test]
fn a_wasm_counter_keyed_by_the_record_key_routes_by_it_and_a_field_keyed_stage_after_it_is_exchanged_to() {
    let dir = Dir::new();
    let expected = unkeyed_orders(&dir, 3_000, 30);
    let counter = format!("{{ type: wasm, path: {}, key_by: record_key }}", plugin("counter").display());
    let keyed_input = |cfg: std::path::PathBuf| {
        let text = std::fs::read_to_string(&cfg).unwrap().replace("batch_size: 97 }", "batch_size: 97, key_field: user_id }");
        std::fs::write(&cfg, text).unwrap();
        cfg
    };
    let cfg = keyed_input(seed_like(&dir, 4, &counter, ""));
    let v = run(&cfg, &["--validate"]);
    assert!(String::from_utf8_lossy(&v.stdout).contains("routed to key groups by record key"), "{}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));
    run_and_check_counter(&dir, &cfg, &expected);
    let two = format!("{counter}\n        - {{ type: wasm, path: {c}, config: {{ key_field: amount }}, key_by: amount }}", c = plugin("counter").display());
    let out = run(&keyed_input(seed_like(&dir, 2, &two, "")), &["--validate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("routed to key groups by record key -> exchange -> [counter@0.1.0]") && text.contains("by fields amount"), "{text}");
}
