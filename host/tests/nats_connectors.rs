//! The `nats` input and output with the real binary against nats-server (JetStream) on
//! 127.0.0.1 (`common::nats`).
//! - Input: a JetStream stream read through the wasm counter into the exactly-once file output
//!   while the stream is SIGKILLed at random moments: every message's effect appears exactly once
//!   and each key's counts are 1..=n in order (the input replays from the checkpoint's sequence).
//! - A second process with the same `durable` takes the consumer over; the first stops, naming it.
//! - A stream that does not exist stops the run with an error naming it.
//! - Output: records published to JetStream under SIGKILLs: the stream holds each record once
//!   (the `Nats-Msg-Id` dedupe drops what a restart publishes again).
//!
//! Size: ARKFLOW_NATS_RECORDS (default 60,000), ARKFLOW_CRASH_KILLS (8).

mod common;
use common::kill::{env_or, kill_and_check, kill_repeatedly};
use common::nats::Nats;
use common::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Publishes `n` JSON records with `keys` users to `subject`; returns each user's count.
fn publish_users(nats: &Nats, subject: &str, n: u64, keys: u64) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    let payloads: Vec<String> = (0..n)
        .map(|id| {
            let user = generated_key(77, keys, id);
            *counts.entry(user.clone()).or_default() += 1;
            format!("{{\"id\":{id},\"user\":\"{user}\"}}")
        })
        .collect();
    nats.publish(subject, payloads);
    counts
}

fn counting_config(dir: &Dir, input: &str) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
{sm}streams:
  - name: nats-crash
    input: {input}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: file, path: {out} }}
    state: {{ operator_id: nats-counter, enabled: true }}
"#,
        sm = local_state(dir, 200, true),
        counter = plugin("counter").display(),
        out = dir.path("out").join("out.jsonl").display()
    ))
}

#[test]
fn nats_input_counts_exactly_once_across_sigkills() {
    let nats = Nats::start();
    let n = env_or("ARKFLOW_NATS_RECORDS", 60_000);
    let kills = env_or("ARKFLOW_CRASH_KILLS", 8);
    nats.create_stream("ORDERS", &["orders.>"]);
    let expected = publish_users(&nats, "orders.new", n, 2_000);
    let dir = Dir::new();
    let input = format!("{{ type: nats, url: '{}', stream: ORDERS, key_field: user, stop_at_end: true, rate_per_sec: 5000, batch_size: 256 }}", nats.url());
    let cfg = counting_config(&dir, &input);
    kill_and_check(&cfg, &dir.path("out"), &expected, n, kills, (300, 1500));
}

#[test]
fn a_second_process_with_the_same_durable_stops_the_first() {
    let nats = Nats::start();
    nats.create_stream("EVENTS", &["events"]);
    publish_users(&nats, "events", 1_000, 10);
    let (a, b) = (Dir::new(), Dir::new());
    let input = format!("{{ type: nats, url: '{}', stream: EVENTS, durable: shared, key_field: user }}", nats.url());
    let first = spawn(&counting_config(&a, &input));
    let committed = || a.path("out").exists() && !read_parts(&a.path("out")).0.is_empty();
    assert!(wait_for(Duration::from_secs(30), committed), "the first process read and committed");
    let mut second = spawn(&counting_config(&b, &input));
    let mut first = first;
    let ended = wait_for(Duration::from_secs(30), || first.try_wait().unwrap().is_some());
    signal(&second, "TERM");
    second.wait().unwrap();
    if !ended {
        signal(&first, "KILL");
    }
    let out = first.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(ended && !out.status.success(), "the first process stopped with an error once its consumer was taken: {log}");
    assert!(log.contains("consumer shared was deleted"), "the error names the consumer: {log}");
}

#[test]
fn a_missing_stream_is_named() {
    let nats = Nats::start();
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: nats, url: '{}', stream: NOPE }}\n    pipeline: {{ processors: [] }}\n    output: {{ type: drop }}\n",
        nats.url()
    ));
    let out = run(&cfg, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stream NOPE: no such JetStream stream"), "{}", stderr(&out));
}

#[test]
fn nats_output_stores_each_record_once_across_sigkills() {
    let nats = Nats::start();
    nats.create_stream("OUT", &["out"]);
    let dir = Dir::new();
    let n = env_or("ARKFLOW_NATS_RECORDS", 60_000) / 2;
    let input = dir.path("in.jsonl");
    append_users(&input, 0, n, 100);
    let cfg = dir.config(&format!(
        r#"
{sm}streams:
  - name: publish
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 4000 }}
    pipeline: {{ thread_num: 2, processors: [] }}
    output: {{ type: nats, url: '{url}', subject: out }}
    state: {{ operator_id: nats-out, enabled: true }}
"#,
        sm = local_state(&dir, 300, false),
        input = input.display(),
        url = nats.url()
    ));
    let killed = kill_repeatedly(&cfg, 4, (400, 1200));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    let stored = nats.read_all("OUT");
    let ids: Vec<u64> = stored.iter().map(|(p, _)| serde_json::from_slice::<serde_json::Value>(p).unwrap()["id"].as_u64().unwrap()).collect();
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    eprintln!("nats output: {killed} kills, {} messages stored", stored.len());
    assert_eq!(killed, 4);
    assert_eq!(distinct.len() as u64, n, "every record stored");
    assert_eq!(ids.len() as u64, n, "each record stored once: the replays' messages were dropped by their Nats-Msg-Id");
    assert!(
        stored.iter().all(|(_, id)| id.as_deref().is_some_and(|i| i.starts_with("publish/output/0-"))),
        "every message carries its record's id, e.g. {:?}",
        stored.first().map(|s| &s.1)
    );
}
