//! Bench binary: inputs against their servers' own client tools, on 127.0.0.1, the same messages
//! both ways, interleaved per round (the order alternating) so both see the same machine load:
//! - (M) `mqtt` input at QoS 1 vs `mosquitto_sub -q 1 -C N`: two persistent sessions subscribed
//!   to one topic, N messages published once and queued by the mosquitto this binary starts for
//!   both; each side then connects and is timed until it has all N;
//! - (N) `nats` input (a durable JetStream pull consumer, acknowledging as it reads,
//!   `stop_at_end`) vs the async-nats client reading the same stream through a durable pull
//!   consumer of its own, acknowledging every message (no NATS command-line tool is packaged
//!   here), from one nats-server.
//!
//! Each arkflow figure is one built stream (input → drop) in this process, from its start until
//! it has read every message; each tool is its whole process (mosquitto_sub) or its client's
//! first connection until the last message (async-nats). Prints records/s and arkflow / tool.
//!
//! Run: `bash tests/servers/install.sh && apt-get install mosquitto-clients && cargo bench --bench inputs`
//! (env: BENCH_RECORDS, default 200,000; BENCH_ROUNDS, default 3).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/common/mod.rs"]
mod t;

use arkflow::config::EngineConfig;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn stream(input: &str) -> EngineConfig {
    let yaml = format!("streams:\n  - name: bench\n    input: {input}\n    pipeline: {{ processors: [] }}\n    output: {{ type: drop }}\n");
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

/// Records/s of a stream of `input` → drop, from its start until it has read `n` records.
fn read_until(input: &str, n: u64) -> f64 {
    let cfg = stream(input);
    let start = Instant::now();
    let s = arkflow::engine::build_stream(&cfg, &cfg.streams[0]).expect("build");
    let shared = s.shared().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || s.run(stop))
    };
    while shared.metrics.records_in.load(Relaxed) < n {
        assert!(start.elapsed() < Duration::from_secs(300), "{input}: {} of {n} records", shared.metrics.records_in.load(Relaxed));
        std::thread::sleep(Duration::from_millis(1));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    let report = runner.join().unwrap();
    assert!(report.failure.is_none(), "{input}: {:?}", report.failure);
    rate
}

/// Registers a persistent QoS 1 session `id` subscribed to `topic` (mosquitto_sub, `-E`: exits
/// once subscribed), so the broker queues what is published there for it.
fn register(port: u16, id: &str, topic: &str) {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "-i", id, "-q", "1", "-t", topic, "-E"])
        .output()
        .expect("run mosquitto_sub");
    assert!(out.status.success(), "register {id}: {}", String::from_utf8_lossy(&out.stderr));
}

/// (arkflow, mosquitto_sub) records/s over `n` queued messages.
fn mqtt(broker: &t::mqtt::Mosquitto, round: u64, payloads: &[String]) -> (f64, f64) {
    let (n, port, topic) = (payloads.len() as u64, broker.port, format!("bench/in{round}"));
    let (ark_id, sub_id) = (format!("ark-{round}"), format!("sub-{round}"));
    register(port, &ark_id, &topic);
    register(port, &sub_id, &topic);
    t::mqtt::publish_to(port, &topic, payloads.to_vec(), u64::MAX);
    let ark = || read_until(&format!("{{ type: mqtt, host: 127.0.0.1, port: {port}, topics: ['{topic}'], client_id: {ark_id}, qos: 1 }}"), n);
    let sub = || {
        let start = Instant::now();
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "-i", &sub_id, "-q", "1", "-t", &topic, "-C", &n.to_string()])
            .stdout(Stdio::null())
            .output()
            .expect("run mosquitto_sub");
        assert!(out.status.success(), "mosquitto_sub: {}", String::from_utf8_lossy(&out.stderr));
        n as f64 / start.elapsed().as_secs_f64()
    };
    common::alternate(round, ark, sub)
}

/// Records/s of the async-nats client reading `n` messages of stream `name` through a new
/// durable pull consumer `durable`, acknowledging each.
fn nats_client(url: &str, name: &str, durable: &str, n: u64) -> f64 {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let js = async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"));
        let stream = js.get_stream(name).await.expect("stream");
        let config = pull::Config { durable_name: Some(durable.into()), ack_policy: AckPolicy::Explicit, ..Default::default() };
        let consumer = stream.create_consumer(config).await.expect("consumer");
        let mut messages = consumer.messages().await.expect("messages");
        for _ in 0..n {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next()).await.expect("a message within 10 s").unwrap().unwrap();
            m.ack().await.expect("ack");
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n = common::env_u64("BENCH_RECORDS", 200_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 3);
    let payloads: Vec<String> = (0..n).map(|i| format!("{{\"id\":{i},\"who\":\"u{}\",\"amount\":{}}}", i % 10_000, i % 100)).collect();
    let broker = t::mqtt::Mosquitto::start();
    let nats = t::nats::Nats::start();
    nats.create_stream("IN", &["bench.in"]);
    nats.publish("bench.in", payloads.iter().cloned());
    let (mut m_ark, mut m_sub, mut n_ark, mut n_cli) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let (ark, sub) = mqtt(&broker, round, &payloads);
        let input = format!("{{ type: nats, url: '{}', stream: IN, durable: ark-{round}, stop_at_end: true }}", nats.url());
        let nark = || common::run_stream(&stream(&input)).0;
        let ncli = || nats_client(&nats.url(), "IN", &format!("raw-{round}"), n);
        let (na, nc) = common::alternate(round, nark, ncli);
        println!(
            "round {round}: mqtt input {ark:.0} rec/s vs mosquitto_sub {sub:.0} ({:.2}) | nats input {na:.0} vs async-nats {nc:.0} ({:.2})",
            ark / sub,
            na / nc
        );
        m_ark.push(ark);
        m_sub.push(sub);
        n_ark.push(na);
        n_cli.push(nc);
    }
    let med = common::median;
    let (ma, ms, na, nc) = (med(&mut m_ark), med(&mut m_sub), med(&mut n_ark), med(&mut n_cli));
    println!("median of {rounds}: mqtt input {ma:.0} rec/s, mosquitto_sub {ms:.0} rec/s: {:.2}", ma / ms);
    println!("median of {rounds}: nats input {na:.0} rec/s, async-nats client {nc:.0} rec/s: {:.2}", na / nc);
}
