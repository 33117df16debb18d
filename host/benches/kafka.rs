//! Bench binary: Kafka in, records produced one at a time (one record per Kafka batch, the case
//! where ArkFlow makes one pipeline batch per message), through a SQL filter (the `sql` processor,
//! keeps about half), out to (A) Kafka at-least-once, (B) a file at-least-once, (C) a file exactly-once
//! (checkpoints decided in the local state store). Interleaved per round so all see the same
//! machine load; prints records/s and the ratios, next to a plain rdkafka consumer reading the same
//! topic (the broker's ceiling). The broker is a real `tansu` (sqlite storage) started on
//! 127.0.0.1 by this binary through the tests' harness, so the figures include its cost (it
//! serves about 2 MB/s of fetches here).
//!
//! Run: `bash tests/servers/install.sh && cargo bench --bench kafka`
//! (env: BENCH_RECORDS, default 200,000; BENCH_ROUNDS, default 3; TANSU, the broker binary).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/mod.rs"]
mod t;

use arkflow::config::EngineConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::time::{Duration, Instant};

/// Produces `n` records one at a time (no lingering: one record per Kafka batch); returns rec/s.
fn produce_one_at_a_time(broker: &str, n: u64) -> f64 {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let key = format!("u{}", i % 10_000);
        let value = format!("{{\"id\":{i},\"user\":\"{key}\",\"amount\":{}}}", i % 100);
        let mut rec = BaseRecord::to("in").key(&key).payload(&value).partition((i % 4) as i32);
        while let Err((_, back)) = p.send(rec) {
            rec = back;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    p.flush(Duration::from_secs(300)).unwrap();
    n as f64 / start.elapsed().as_secs_f64()
}

/// Reads every record of `in` with a plain consumer (same fetch settings as the pipeline): the
/// broker's own ceiling for the runs below; returns rec/s.
fn read_ceiling(broker: &str, n: u64) -> f64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "bench-ceiling")
        .set("fetch.max.bytes", "262144")
        .set("message.max.bytes", "200000")
        .set("queued.min.messages", "100000")
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset("in", p, rdkafka::Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut got = 0;
    while got < n {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m.unwrap();
            got += 1;
        }
        assert!(start.elapsed() < Duration::from_secs(600), "read {got} of {n}");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn config(broker: &str, output: &str, exactly_once: bool, state: &std::path::Path) -> EngineConfig {
    let yaml = format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: {state} }}
  checkpoint_interval_ms: 1000
  exactly_once: {exactly_once}
streams:
  - name: bench
    input: {{ type: kafka, brokers: ["{broker}"], topics: [in], stop_at_end: true, options: {{ fetch.max.bytes: "262144", message.max.bytes: "200000" }} }}
    pipeline:
      thread_num: 2
      processors:
        - {{ type: sql, query: "SELECT id, user, amount FROM flow WHERE amount >= 50" }}
    output: {output}
"#,
        state = state.display(),
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

fn run(cfg: &EngineConfig) -> f64 {
    common::run_stream(cfg).0
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n = common::env_u64("BENCH_RECORDS", 200_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 3);
    let broker = t::kafka::Tansu::start();
    broker.create_topic("in", 4);
    broker.create_topic("out", 4);
    let produced = produce_one_at_a_time(&broker.broker, n);
    println!("produced {n} records one at a time: {produced:.0} rec/s");
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut ceil = Vec::new();
    for round in 0..rounds {
        let d = |name: &str| dir.path().join(format!("{name}-{round}"));
        let kafka_out = format!("{{ type: kafka, brokers: [\"{}\"], topic: out }}", broker.broker);
        let file_out = |name: &str| format!("{{ type: file, path: {} }}", d(name).join("out.jsonl").display());
        let rr = read_ceiling(&broker.broker, n);
        let ra = run(&config(&broker.broker, &kafka_out, false, &d("state-a")));
        let rb = run(&config(&broker.broker, &file_out("b"), false, &d("state-b")));
        let rc = run(&config(&broker.broker, &file_out("c"), true, &d("state-c")));
        println!("round {round}: plain consumer {rr:.0} rec/s | kafka->filter->kafka (at-least-once) {ra:.0} rec/s | ->file at-least-once {rb:.0} rec/s | ->file exactly-once {rc:.0} rec/s | eo/alo {:.2}", rc / rb);
        ceil.push(rr);
        a.push(ra);
        b.push(rb);
        c.push(rc);
    }
    let med = common::median;
    let (ma, mb, mc, mr) = (med(&mut a), med(&mut b), med(&mut c), med(&mut ceil));
    println!("median of {rounds}: plain consumer (the broker's ceiling) {mr:.0} rec/s; kafka->kafka / ceiling {:.2}", ma / mr);
    println!(
        "median of {rounds}: kafka->kafka {ma:.0} rec/s ({:.1}x ArkFlow's 6.6 k msg/s for one-message batches); file at-least-once {mb:.0}; file exactly-once {mc:.0} (eo/alo {:.2})",
        ma / 6600.0,
        mc / mb
    );
}
