//! End-to-end Kafka with the real `arkflow` binary and a real Kafka-protocol broker (`tansu`,
//! sqlite storage) on 127.0.0.1, state on a real S3 server (moto) where the test says so:
//! - Kafka -> wasm counter -> exactly-once file output, SIGKILLed at random moments: exact.
//! - Kafka -> wasm counter -> at-least-once Kafka output with kills: nothing lost, state exact,
//!   and every duplicate is a replay since the last decided checkpoint.
//! - Kafka -> wasm counter -> exactly-once Kafka output in outbox mode (no transactions needed)
//!   with kills: every count exactly once.
//! - `exactly_once: true` on a Kafka output is refused against a broker without EndTxn, by name.
//! - Kafka -> Kafka exactly-once kill loop: runs when the broker advertises the transaction APIs,
//!   reported as skipped (with the reason) otherwise (tansu 0.6.0 has no EndTxn).
//!
//! Sizes: ARKFLOW_KAFKA_RECORDS (default 500,000), ARKFLOW_CRASH_KILLS (30).

mod common;
use common::kafka::{partition_of, Tansu};
use common::kill::{env_or, kill_and_check};
use common::s3::Moto;
use common::*;
use std::collections::HashMap;

/// Produces `n` JSON records `{"id","user"}` keyed by user onto `topic` (partition by key);
/// returns each user's record count.
fn produce_users(t: &Tansu, topic: &str, partitions: i32, n: u64, keys: u64) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    let records: Vec<(i32, String, String)> = (0..n)
        .map(|id| {
            let user = generated_key(91, keys, id);
            *counts.entry(user.clone()).or_default() += 1;
            (partition_of(&user, partitions), user.clone(), format!("{{\"id\":{id},\"user\":\"{user}\"}}"))
        })
        .collect();
    t.produce(topic, records);
    counts
}

/// A bounded Kafka input. tansu 0.6.0 answers a fetch with up to `fetch.max.bytes` whatever the
/// per-partition limit and serves about 2 MB/s from sqlite, so small fetches keep the first
/// records of each run within ~200 ms.
/// The counter's `(key, count)` outputs on `topic`, in each partition's order.
fn key_counts(t: &Tansu, topic: &str) -> Vec<(String, i64)> {
    t.read_all(topic)
        .into_iter()
        .map(|(_, _, v)| {
            let j: serde_json::Value = serde_json::from_str(&v).unwrap();
            (j["key"].as_str().unwrap().to_string(), j["count"].as_i64().unwrap())
        })
        .collect()
}

fn kafka_input(t: &Tansu, topic: &str, rate: u64) -> String {
    format!(
        "{{ type: kafka, brokers: [\"{}\"], topics: [{topic}], stop_at_end: true, rate_per_sec: {rate}, options: {{ fetch.max.bytes: \"262144\", message.max.bytes: \"200000\" }} }}",
        t.broker
    )
}

#[test]
fn kafka_to_file_exactly_once_survives_kills_with_state_on_s3() {
    let tansu = Tansu::start();
    let moto = Moto::start();
    let n = env_or("ARKFLOW_KAFKA_RECORDS", 500_000);
    let kills = env_or("ARKFLOW_CRASH_KILLS", 30);
    tansu.create_topic("orders", 4);
    let expected = produce_users(&tansu, "orders", 4, n, 10_000);
    let dir = Dir::new();
    let out_dir = dir.path("out");
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: s3
  checkpoint_interval_ms: 200
  exactly_once: true
{s3}
streams:
  - name: kafka-crash
    input: {input}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: file, path: {out} }}
    state: {{ operator_id: kafka-counter, enabled: true }}
"#,
        s3 = moto.target.yaml_block(2, "kafka/"),
        input = kafka_input(&tansu, "orders", 25_000),
        counter = plugin("counter").display(),
        out = out_dir.join("out.jsonl").display()
    ));
    // Runs live longer than in the file test: each restart first reaches the broker and S3.
    kill_and_check(&cfg, &out_dir, &expected, n, kills, (300, 1500));
}

/// Starts the stream `kills` times and SIGKILLs it 300–800 ms in, then runs it to the end of its
/// bounded input; returns how many kills landed while it ran (at least half must).
fn kill_then_finish(cfg: &std::path::Path, kills: u64) -> u64 {
    let mut killed = 0;
    for i in 0..kills {
        let mut child = spawn(cfg);
        std::thread::sleep(std::time::Duration::from_millis(300 + (i * 137) % 500));
        if child.try_wait().unwrap().is_none() {
            signal(&child, "KILL");
            killed += 1;
        }
        let _ = child.wait();
    }
    let out = run(cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    assert!(killed >= kills / 2, "kills landed while the stream ran ({killed} of {kills})");
    killed
}

#[test]
fn kafka_to_kafka_exactly_once_outbox_survives_kills_on_a_broker_without_transactions() {
    let tansu = Tansu::start();
    let n = env_or("ARKFLOW_KAFKA_RECORDS", 500_000) / 5;
    let kills = env_or("ARKFLOW_CRASH_KILLS", 30) / 3;
    tansu.create_topic("in", 4);
    tansu.create_topic("counts", 4);
    let expected = produce_users(&tansu, "in", 4, n, 1_000);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: {state} }}
  checkpoint_interval_ms: 200
  exactly_once: true
streams:
  - name: outbox
    input: {input}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: kafka, brokers: ["{broker}"], topic: counts, exactly_once: true, exactly_once_mode: outbox }}
    state: {{ operator_id: outbox-counter, enabled: true }}
"#,
        state = dir.path("state").display(),
        input = kafka_input(&tansu, "in", 20_000),
        counter = plugin("counter").display(),
        broker = tansu.broker,
    ));
    let killed = kill_then_finish(&cfg, kills);
    // Exactly once: per key the counts are exactly 1..=n, however the kills fell.
    let mut counts: HashMap<String, Vec<i64>> = HashMap::new();
    let out = key_counts(&tansu, "counts");
    for (k, c) in &out {
        counts.entry(k.clone()).or_default().push(*c);
    }
    assert_eq!(counts.len(), expected.len(), "every key has output");
    for (k, mut c) in counts {
        c.sort_unstable();
        assert_eq!(c, (1..=expected[&k]).collect::<Vec<_>>(), "key {k}: each count exactly once ({killed} kills)");
    }
    assert_eq!(out.len() as u64, n, "output records");
}

#[test]
fn kafka_to_kafka_at_least_once_loses_nothing_and_duplicates_are_replays() {
    let tansu = Tansu::start();
    let n = env_or("ARKFLOW_KAFKA_RECORDS", 500_000) / 5;
    let kills = env_or("ARKFLOW_CRASH_KILLS", 30) / 3;
    tansu.create_topic("in", 4);
    tansu.create_topic("counts", 4);
    let expected = produce_users(&tansu, "in", 4, n, 1_000);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: {state} }}
  checkpoint_interval_ms: 200
streams:
  - name: alo
    input: {input}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: kafka, brokers: ["{broker}"], topic: counts }}
    state: {{ operator_id: alo-counter, enabled: true }}
"#,
        state = dir.path("state").display(),
        input = kafka_input(&tansu, "in", 20_000),
        counter = plugin("counter").display(),
        broker = tansu.broker,
    ));
    let killed = kill_then_finish(&cfg, kills);
    // Per key, in output order (one key -> one partition -> ordered): runs of consecutive counts;
    // a run after a restart starts at or before where the previous one ended + 1 (a replay from
    // the last decided checkpoint), the first at 1, the last ends at the key's true count.
    let mut runs: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let mut total = 0;
    for (k, c) in key_counts(&tansu, "counts") {
        total += 1;
        let r = runs.entry(k).or_default();
        match r.last_mut() {
            Some((_, end)) if c == *end + 1 => *end = c,
            _ => r.push((c, c)),
        }
    }
    assert_eq!(runs.len(), expected.len(), "every key has output");
    let mut duplicates = 0;
    for (k, r) in &runs {
        assert_eq!(r[0].0, 1, "key {k}: counting starts at 1: {r:?}");
        for w in r.windows(2) {
            assert!(w[1].0 <= w[0].1 + 1, "key {k}: a gap between runs {w:?} (lost records)");
            duplicates += w[0].1 - w[1].0 + 1;
        }
        let max = r.iter().map(|x| x.1).max().unwrap();
        assert_eq!(max, expected[k], "key {k}: state counted each record exactly once: {r:?}");
        assert_eq!(r.last().unwrap().1, expected[k], "key {k}: the last run reaches the true count");
    }
    eprintln!("at-least-once: {killed} kills, {total} output records for {n} inputs, {duplicates} replayed");
    assert_eq!(total as i64, n as i64 + duplicates, "every output record is an original or a replay");
}

#[test]
fn exactly_once_kafka_output_is_refused_without_end_txn() {
    let tansu = Tansu::start();
    tansu.create_topic("src", 1);
    tansu.create_topic("dst", 1);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: {state} }}
  exactly_once: true
streams:
  - name: eo
    input: {{ type: kafka, brokers: ["{b}"], topics: [src] }}
    pipeline: {{ processors: [] }}
    output: {{ type: kafka, brokers: ["{b}"], topic: dst, exactly_once: true }}
"#,
        state = dir.path("state").display(),
        b = tansu.broker
    ));
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "must refuse: {err}");
    assert!(err.contains("does not support transactions") && err.contains("EndTxn (API key 26)"), "names the missing API: {err}");
    assert!(err.contains(&tansu.broker), "names the broker: {err}");
}

#[test]
fn kafka_to_kafka_exactly_once_kill_loop_when_the_broker_has_transactions() {
    let tansu = Tansu::start();
    if let Err(e) = arkflow::connectors::kafka::probe::require_transactions(std::slice::from_ref(&tansu.broker)) {
        eprintln!("SKIPPED kafka_to_kafka_exactly_once_kill_loop: {e:#}");
        return;
    }
    let n = env_or("ARKFLOW_KAFKA_RECORDS", 500_000) / 5;
    tansu.create_topic("in", 4);
    tansu.create_topic("out", 4);
    tansu.create_topic("arkflow-control", 1);
    let expected = produce_users(&tansu, "in", 4, n, 1_000);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 200\n  exactly_once: true\nstreams:\n  - name: eo\n    input: {}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: kafka, brokers: [\"{}\"], topic: out, exactly_once: true }}\n",
        dir.path("state").display(),
        kafka_input(&tansu, "in", 20_000),
        plugin("counter").display(),
        tansu.broker
    ));
    for i in 0..10 {
        let mut child = spawn(&cfg);
        std::thread::sleep(std::time::Duration::from_millis(300 + i * 97));
        if child.try_wait().unwrap().is_none() {
            signal(&child, "KILL");
        }
        let _ = child.wait();
    }
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut counts: HashMap<String, Vec<i64>> = HashMap::new();
    for (k, c) in key_counts(&tansu, "out") {
        counts.entry(k).or_default().push(c);
    }
    for (k, c) in counts {
        assert_eq!(c, (1..=expected[&k]).collect::<Vec<_>>(), "key {k}: exactly once");
    }
}

/// Issue 15, item 4: a publish that fails after the decision (here a record over the producer's
/// `message.max.bytes`) stops the stream with an error naming the epoch — it used to be logged and
/// the epoch skipped for good. After the config is fixed, the restart publishes the decided epoch
/// from the outbox: every record exactly once.
#[test]
fn an_outbox_epoch_that_fails_to_publish_stops_the_stream_and_is_published_on_restart() {
    use std::io::Write;
    let tansu = Tansu::start();
    tansu.create_topic("big-counts", 1);
    let dir = Dir::new();
    let big = "x".repeat(3000);
    let mut f = std::fs::File::create(dir.path("in.jsonl")).unwrap();
    for id in 0..1000u64 {
        let user = if id == 500 { big.clone() } else { format!("u{}", id % 10) };
        writeln!(f, "{{\"id\":{id},\"user\":\"{user}\"}}").unwrap();
    }
    drop(f);
    let yaml = |options: &str| {
        format!(
            "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {state} }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\nstreams:\n  - name: big\n    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 2000 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {counter} }}\n    output: {{ type: kafka, brokers: [\"{broker}\"], topic: big-counts, exactly_once: true, exactly_once_mode: outbox{options} }}\n    state: {{ operator_id: big, enabled: true }}\n",
            state = dir.path("state").display(),
            input = dir.path("in.jsonl").display(),
            counter = plugin("counter").display(),
            broker = tansu.broker,
        )
    };
    let cfg = dir.config(&yaml(", options: { message.max.bytes: \"2000\", batch.size: \"2000\" }"));
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "a failed publish must stop the stream: {err}");
    assert!(err.contains("publishing epoch") && err.to_ascii_lowercase().contains("too large"), "{err}");
    let before = key_counts(&tansu, "big-counts");
    assert!(before.len() < 1000 && !before.iter().any(|(k, _)| k == &big), "the failing epoch is not out yet");
    // The decided epoch stays pending across restarts until it can be published.
    let cfg = dir.config(&yaml(""));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = key_counts(&tansu, "big-counts");
    assert_eq!(out.len(), 1000, "every record exactly once");
    assert_eq!(out.iter().filter(|(k, _)| k == &big).count(), 1);
    let mut per: HashMap<String, Vec<i64>> = HashMap::new();
    for (k, c) in out {
        per.entry(k).or_default().push(c);
    }
    for (k, mut c) in per {
        c.sort_unstable();
        // id 500 would have been u0's: the big user took it.
        let n = if k == big {
            1
        } else if k == "u0" {
            99
        } else {
            100
        };
        assert_eq!(c, (1..=n).collect::<Vec<_>>(), "key {k}");
    }
}
