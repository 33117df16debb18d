//! The seed's examples with the real binary, a real Kafka-protocol broker (tansu) and a real S3
//! server (moto) on 127.0.0.1: the basic example's `SELECT user_id, COUNT(*) FROM flow GROUP BY
//! user_id` over JSON orders from Kafka prints per-user running totals, and those totals survive a
//! SIGKILL + restart exactly (compared with counts computed from the input); the example files
//! validate; the programmatic example builds and runs.

mod common;
use common::kafka::{partition_of, Tansu};
use common::s3::{repo_root, Moto};
use common::*;
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

/// Orders `{"order_id","user_id","amount"}`; returns each user's order count. `keyed`: keyed by
/// user (a user's orders share a partition); else without keys, round-robin over the 4
/// partitions (every user's orders spread over all of them).
fn produce_orders(t: &Tansu, n: u64, users: u64, keyed: bool) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    let orders: Vec<(String, String)> = (0..n)
        .map(|i| {
            let user = format!("user-{}", generated_key(5, users, i));
            *counts.entry(user.clone()).or_default() += 1;
            let v = format!("{{\"order_id\":{i},\"user_id\":\"{user}\",\"amount\":{}}}", i % 50);
            (user, v)
        })
        .collect();
    match keyed {
        true => t.produce("orders", orders.into_iter().map(|(u, v)| (partition_of(&u, 4), u, v))),
        false => common::kafka::produce_unkeyed(&t.broker, "orders", orders.into_iter().enumerate().map(|(i, (_, v))| ((i % 4) as i32, v))),
    }
    counts
}

/// (user, count) of every printed line.
fn printed(stdout: &str) -> Vec<(String, i64)> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|j| (j["user_id"].as_str().unwrap().to_string(), j["count(*)"].as_i64().unwrap()))
        .collect()
}

#[test]
fn seed_example_running_counts_survive_a_kill_exactly() {
    seed_example_with_a_kill(true);
}

/// The seed's file, unchanged but for the broker and the bounded read, over a topic whose
/// producer did not key by user_id: the engine routes by the GROUP BY key itself.
#[test]
fn seed_example_counts_exactly_over_an_unkeyed_round_robin_topic() {
    seed_example_with_a_kill(false);
}

/// The seed's basic example verbatim but for: state on S3 (so it survives kills), checkpoints
/// every 200 ms, the broker's address, and a bounded read throttled to `rate` records/s so kills
/// land mid-stream.
fn seed_config(tansu: &Tansu, moto: &Moto, rate: u64) -> String {
    let seed = std::fs::read_to_string(repo_root().join("examples/stateful_example.yaml")).unwrap();
    let cfg = seed
        .replace("backend_type: memory  # memory, s3, hybrid", &format!("backend_type: s3\n{}", moto.target.yaml_block(2, "seed/")))
        .replace("checkpoint_interval_ms: 30000  # 30秒", "checkpoint_interval_ms: 200")
        .replace("127.0.0.1:9092", &tansu.broker)
        .replace(
            "topics: [\"orders\"]",
            &format!("topics: [\"orders\"]\n      stop_at_end: true\n      rate_per_sec: {rate}\n      options: {{ fetch.max.bytes: \"262144\", message.max.bytes: \"200000\" }}"),
        );
    assert!(cfg.contains("stop_at_end") && cfg.contains("backend_type: s3"), "{cfg}");
    cfg
}

fn seed_example_with_a_kill(keyed: bool) {
    let tansu = Tansu::start();
    let moto = Moto::start();
    tansu.create_topic("orders", 4);
    let n = 30_000;
    let expected = produce_orders(&tansu, n, 300, keyed);
    let dir = Dir::new();
    let cfg = dir.config(&seed_config(&tansu, &moto, 6000));
    let mut first = spawn(&cfg);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(first.try_wait().unwrap().is_none(), "still running when killed");
    signal(&first, "KILL");
    let _ = first.wait();
    let mut out1 = String::new();
    first.stdout.take().unwrap().read_to_string(&mut out1).unwrap();
    let before = printed(&out1);
    assert!(!before.is_empty(), "the first run printed counts before the kill");

    let second = run(&cfg, &[]);
    let err = stderr(&second);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("restored from the last decided checkpoint"), "the restart restored state: {err}");
    let after = printed(&String::from_utf8_lossy(&second.stdout));
    let mut last: HashMap<String, i64> = HashMap::new();
    for (u, c) in before.iter().chain(after.iter()) {
        assert!(c <= &expected[u], "{u}: printed {c} > its {} orders (counted twice)", expected[u]);
        last.insert(u.clone(), *c);
    }
    let mut resumed = 0;
    let mut first_after: HashMap<&str, i64> = HashMap::new();
    for (u, c) in &after {
        first_after.entry(u.as_str()).or_insert(*c);
    }
    for (u, c) in &first_after {
        if *c > 1 {
            resumed += 1;
        }
        let _ = u;
    }
    assert!(resumed > 0, "after the restart, totals continue from the checkpoint instead of starting at 1");
    assert_eq!(last.len(), expected.len(), "every user printed");
    for (u, c) in &expected {
        assert_eq!(last[u], *c, "{u}: the final running total equals its number of orders");
    }
}

/// The seed's GROUP BY over an unkeyed round-robin topic, SIGKILLed at random moments
/// (ARKFLOW_SEED_KILLS, default 20) and restarted each time, then run to the end: the last total
/// printed for every user (stdout is at-least-once: totals after a restart repeat) is its true
/// number of orders, and no total ever exceeds it (a record counted twice would).
#[test]
fn seed_example_over_an_unkeyed_topic_is_exact_across_a_kill_loop() {
    let tansu = Tansu::start();
    let moto = Moto::start();
    tansu.create_topic("orders", 4);
    let n = common::kill::env_or("ARKFLOW_SEED_RECORDS", 90_000);
    let kills = common::kill::env_or("ARKFLOW_SEED_KILLS", 20);
    let expected = produce_orders(&tansu, n, 500, false);
    let dir = Dir::new();
    let cfg = dir.config(&seed_config(&tansu, &moto, 5000));
    let (killed, runs) = common::kill::kill_runs(&cfg, kills, (300, 1200));
    assert_eq!(killed, kills, "the input was consumed after {killed} kills: raise ARKFLOW_SEED_RECORDS");
    let mut printed_all: Vec<(String, i64)> = runs.iter().flat_map(|out| printed(out)).collect();
    let last_run = run(&cfg, &[]);
    assert!(last_run.status.success(), "{}", stderr(&last_run));
    printed_all.extend(printed(&String::from_utf8_lossy(&last_run.stdout)));
    let mut last: HashMap<String, i64> = HashMap::new();
    for (u, c) in printed_all {
        assert!(c <= expected[&u], "{u}: printed {c} > its {} orders (counted twice)", expected[&u]);
        last.insert(u, c);
    }
    assert_eq!(last.len(), expected.len(), "every user printed");
    for (u, c) in &expected {
        assert_eq!(last[u], *c, "{u}: the final running total equals its number of orders after {kills} kills");
    }
}

#[test]
fn seed_example_files_validate() {
    for f in ["examples/stateful_example.yaml", "examples/stateful_s3_example.yaml"] {
        let out = run(&repo_root().join(f), &["--validate"]);
        assert!(out.status.success(), "{f}: {}", stderr(&out));
    }
}

#[test]
fn programmatic_example_runs() {
    let example = bin().parent().unwrap().join("examples/run_stateful_example");
    assert!(
        example.exists(),
        "{} is missing: `cargo test --workspace` (tests/run.sh) builds the examples, or run `cargo build --release --examples`",
        example.display()
    );
    let dir = Dir::new();
    dir.config(&format!(
        "streams:\n  - input: {{ type: generate, count: 1000, keys: 10 }}\n    pipeline:\n      processors:\n        - type: sql\n          query: \"SELECT key, COUNT(*) AS n FROM flow GROUP BY key\"\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: prog, enabled: true }}\n",
        dir.path("out.jsonl").display()
    ));
    let out = std::process::Command::new(&example).current_dir(dir.0.path()).env("RUST_LOG", "info").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.path("out.jsonl")).unwrap();
    assert!(!text.is_empty(), "the programmatic run wrote the query's results");
}
