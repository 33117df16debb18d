//! Group mode end to end (docs/SCALE_OUT.md): several `arkflow` processes with one config share
//! an 8-partition Kafka input through the consumer group of a real broker (`tansu`), with state
//! on a real S3 server (moto) and an exactly-once Kafka output in outbox mode.
//!
//! While records flow: 3 processes start, one is SIGKILLed, another starts (tansu reassigns a
//! dead member's partitions only when the group changes), one stops gracefully (SIGTERM). At the
//! end a read_committed consumer of the output must see every `(key, count)` exactly once — for
//! each key the counts are exactly 1..=n where n is the key's number of input records — which
//! proves that state moved with its partitions and that no output was lost or doubled.
//!
//! The processes use `session.timeout.ms` 10000, so the watchdog and the collection of ended
//! sessions (every 20 s) run within the test; the exactly-once check covers them.
//!
//! The same runs with unkeyed records spread round-robin over the partitions and a counter with
//! `key_by: user`: the stream then reads a repartition topic keyed by user (docs/SCALE_OUT.md),
//! and the counts must be just as exact.
//!
//! A chain of two repartition topics (two key boundaries) is checked the same way, with one
//! process SIGKILLed and another taking over.
//!
//! Size: ARKFLOW_GROUP_RECORDS (default 100,000), produced in 40 slices a second apart;
//! ARKFLOW_CHAIN_RECORDS (default 20,000) for the chain.

mod common;
use common::kafka::{partition_of, Tansu};
use common::kill::env_or;
use common::s3::Moto;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const PARTITIONS: i32 = 8;

/// How many sessions of stream `stream` the log shows started (each process's assignments so far).
fn sessions(log: &std::path::Path, stream: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains("group session started") && l.contains(&format!("stream={stream} "))).count()
}

/// Whether every part of the stream has had a session in the process logging to `log`.
fn in_group(log: &std::path::Path, keying: Keying) -> bool {
    sessions(log, "scaled") >= 1 && (keying == Keying::ByProducer || sessions(log, "scaled-0-repartition") >= 1)
}

/// How the input is keyed, and so how the config keys the counter.
#[derive(Clone, Copy, PartialEq)]
enum Keying {
    /// The producer keys every record by its user (each user on one partition).
    ByProducer,
    /// Unkeyed records round-robin over the partitions; the counter says `key_by: user`, so the
    /// stream reads a repartition topic keyed by user.
    Repartitioned,
}

/// The two scenarios share one broker-heavy shape: run them one after the other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn three_processes_share_partitions_and_state_moves_exactly_once() {
    scenario(Keying::ByProducer)
}

#[test]
fn an_unkeyed_input_is_repartitioned_by_the_key_and_counts_stay_exact_across_processes() {
    scenario(Keying::Repartitioned)
}

fn scenario(keying: Keying) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tansu = Tansu::start_logging("tansu_broker::coordinator=info,warn");
    let moto = Moto::start();
    let n = env_or("ARKFLOW_GROUP_RECORDS", 100_000);
    let keys = 500;
    tansu.create_topic("in", PARTITIONS);
    tansu.create_topic("out", PARTITIONS);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: s3
  checkpoint_interval_ms: 300
  exactly_once: true
{s3}
streams:
  - name: scaled
    input:
      type: kafka
      brokers: ["{b}"]
      topics: [in]
      consumer_group: scaled-counter
      assignment: group
      options: {{ fetch.max.bytes: "262144", message.max.bytes: "200000", session.timeout.ms: "10000" }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}{key_by}
    output: {{ type: kafka, brokers: ["{b}"], topic: out, exactly_once: true, exactly_once_mode: outbox }}
    state: {{ operator_id: scaled-counter, enabled: true }}
"#,
        s3 = moto.target.yaml_block(2, "group/"),
        b = tansu.broker,
        counter = plugin("counter").display(),
        key_by = if keying == Keying::Repartitioned { "\n          key_by: user\n          config: { key_field: user }" } else { "" },
    ));

    // The input: n records, produced in 40 slices while the processes come and go; keyed by
    // user (each user on one partition), or unkeyed round-robin (every user on every partition).
    let mut expected: HashMap<String, i64> = HashMap::new();
    let records: Vec<(i32, String, String)> = (0..n)
        .map(|id| {
            let user = generated_key(17, keys, id);
            *expected.entry(user.clone()).or_default() += 1;
            let partition = match keying {
                Keying::ByProducer => partition_of(&user, PARTITIONS),
                Keying::Repartitioned => (id % PARTITIONS as u64) as i32,
            };
            (partition, user.clone(), format!("{{\"id\":{id},\"user\":\"{user}\"}}"))
        })
        .collect();
    let broker = tansu.broker.clone();
    let producer = std::thread::spawn(move || {
        let t = TansuClient(broker);
        for slice in records.chunks(records.len().div_ceil(40)) {
            match keying {
                Keying::ByProducer => t.produce("in", slice.to_vec()),
                Keying::Repartitioned => common::kafka::produce_unkeyed(&t.0, "in", slice.iter().map(|(p, _, v)| (*p, v.clone()))),
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    });

    let logs_at: Vec<_> = (1..=4).map(|i| dir.path(&format!("p{i}.log"))).collect();
    let mut p1 = start_logged(&cfg, &logs_at[0]);
    let mut p2 = start_logged(&cfg, &logs_at[1]);
    let mut p3 = start_logged(&cfg, &logs_at[2]);
    // All three own partitions (the last rebalance gives each a session).
    let all_in = wait_for(Duration::from_secs(60), || logs_at[..3].iter().all(|l| in_group(l, keying)));
    assert!(all_in, "three processes did not all get partitions:\n{}", logs_of(&logs_at));
    std::thread::sleep(Duration::from_secs(4));

    // SIGKILL one while records flow, then start another (that join reassigns the dead one's share).
    signal(&p1, "KILL");
    let _ = p1.wait();
    std::thread::sleep(Duration::from_secs(2));
    let mut p4 = start_logged(&cfg, &logs_at[3]);
    let joined = wait_for(Duration::from_secs(90), || in_group(&logs_at[3], keying));
    assert!(joined, "the fourth process never got partitions:\n{}", logs_of(&logs_at));
    std::thread::sleep(Duration::from_secs(4));

    // A graceful stop: the last checkpoint is published before the partitions are released.
    signal(&p2, "TERM");
    let status = p2.wait().unwrap();
    assert!(status.success(), "graceful stop failed ({status}):\n{}", logs_of(&logs_at));
    producer.join().unwrap();

    // The survivors finish the input; then they stop gracefully.
    let out_total = || TansuClient(tansu.broker.clone()).end_offsets("out");
    let done = wait_for(Duration::from_secs(300), || out_total() >= n as i64);
    for p in [&p3, &p4] {
        signal(p, "TERM");
    }
    for p in [&mut p3, &mut p4] {
        let status = p.wait().unwrap();
        assert!(status.success(), "graceful stop failed ({status}):\n{}", logs_of(&logs_at));
    }
    if !done {
        // Where the output falls short, per input partition (diagnostics for the failure below).
        let out = tansu.read_all_isolated("out", "read_uncommitted");
        let mut per_part: HashMap<i32, (i64, usize)> = HashMap::new();
        for (k, c) in &expected {
            per_part.entry(partition_of(k, PARTITIONS)).or_default().0 += c;
        }
        for (_, _, v) in &out {
            let j: serde_json::Value = serde_json::from_str(v).unwrap();
            per_part.entry(partition_of(j["key"].as_str().unwrap(), PARTITIONS)).or_default().1 += 1;
        }
        eprintln!("input vs output records per input partition: {per_part:?}");
        eprintln!("the input topic holds {} of the {n} records produced", TansuClient(tansu.broker.clone()).end_offsets("in"));
        if keying == Keying::Repartitioned {
            repartition_diagnostics(&tansu, &expected, &out);
        }
    }
    let group_log = || tansu.log().lines().filter(|l| l.contains("heartbeat") || l.contains("member") || l.contains("leave")).collect::<Vec<_>>().join("\n");
    assert!(done, "the output has {} of {n} records after 300 s:\n{}\n==== tansu\n{}", out_total(), logs_of(&logs_at), group_log());

    // Every output exactly once: per key, the counts are exactly 1..=n.
    let out = tansu.read_all("out");
    let mut counts: HashMap<String, Vec<i64>> = HashMap::new();
    for (_, _, v) in &out {
        let j: serde_json::Value = serde_json::from_str(v).unwrap();
        counts.entry(j["key"].as_str().unwrap().to_string()).or_default().push(j["count"].as_i64().unwrap());
    }
    assert_eq!(out.len() as u64, n, "output records: {} for {n} input records", out.len());
    assert_eq!(counts.len(), expected.len(), "keys in the output");
    for (k, mut c) in counts {
        c.sort_unstable();
        assert_eq!(c, (1..=expected[&k]).collect::<Vec<_>>(), "key {k}: each count exactly once");
    }
    // The moves really happened: the killed process's partitions were taken over from its
    // checkpoints, and the graceful stop handed its key groups on.
    let all = logs_of(&logs_at);
    assert!(all.matches("group session: key groups taken over").count() >= 6, "sessions:\n{all}");
    // Ended sessions' objects were collected while the survivors ran (every 2 × 10 s), and the
    // exactly-once check above held with it.
    assert!(all.contains("group gc: deleted what ended sessions left behind"), "no collection:\n{all}");
}

/// Where records went missing between the two stages: ids absent from (or doubled in) the
/// repartition topic are the first stage's; per key, a repartition count above the output's
/// highest count is the second stage's.
fn repartition_diagnostics(tansu: &Tansu, expected: &HashMap<String, i64>, out: &[(i32, String, String)]) {
    let rep = tansu.read_all_isolated("scaled-counter-0-repartition", "read_uncommitted");
    let mut ids: HashMap<u64, usize> = HashMap::new();
    let mut per_key: HashMap<String, i64> = HashMap::new();
    let mut per_part: HashMap<i32, usize> = HashMap::new();
    for (p, _, v) in &rep {
        let j: serde_json::Value = serde_json::from_str(v).unwrap_or_default();
        if let (Some(id), Some(user)) = (j["id"].as_u64(), j["user"].as_str()) {
            *ids.entry(id).or_default() += 1;
            *per_key.entry(user.to_string()).or_default() += 1;
        }
        *per_part.entry(*p).or_default() += 1;
    }
    let n: i64 = expected.values().sum();
    let missing: Vec<u64> = (0..n as u64).filter(|id| !ids.contains_key(id)).collect();
    let doubled = ids.values().filter(|&&c| c > 1).count();
    eprintln!(
        "repartition topic: {} records, {} distinct ids, {} missing (first {:?}, by id % 8: {:?}), {doubled} doubled; per partition {per_part:?}",
        rep.len(),
        ids.len(),
        missing.len(),
        &missing[..missing.len().min(20)],
        (0..8).map(|r| missing.iter().filter(|&&id| id % 8 == r).count()).collect::<Vec<_>>()
    );
    let mut top: HashMap<String, i64> = HashMap::new();
    for (_, _, v) in out {
        let j: serde_json::Value = serde_json::from_str(v).unwrap();
        let e = top.entry(j["key"].as_str().unwrap().to_string()).or_default();
        *e = (*e).max(j["count"].as_i64().unwrap());
    }
    let behind: i64 = per_key.iter().map(|(k, c)| (c - top.get(k).copied().unwrap_or(0)).max(0)).sum();
    eprintln!("second stage: the output's highest counts are {behind} records behind the repartition topic's");
}

/// A producer / offset reader on the test's broker (the `Tansu` handle stays with the test).
struct TansuClient(String);

impl TansuClient {
    fn produce(&self, topic: &str, records: Vec<(i32, String, String)>) {
        common::kafka::produce_to(&self.0, topic, records);
    }

    /// The sum of the end offsets of every partition of `topic`.
    fn end_offsets(&self, topic: &str) -> i64 {
        common::kafka::end_offsets(&self.0, topic)
    }
}

/// Two key boundaries in group mode: a counter keyed by `user` over unkeyed records, then a
/// counter keyed by the `count` it emits. The stream runs as a chain of three parts joined by
/// `chain-0-repartition` (keyed by user) and `chain-1-repartition` (keyed by count). One process
/// is SIGKILLed mid-run and another takes over; for each count `c` the read_committed output
/// must hold exactly 1..M(c), M(c) being the number of users with at least `c` records (computed
/// here from the input).
#[test]
fn a_chain_of_two_repartition_topics_counts_exactly_across_a_kill() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tansu = Tansu::start_logging("warn");
    let moto = Moto::start();
    let (n, users) = (env_or("ARKFLOW_CHAIN_RECORDS", 20_000), 200);
    tansu.create_topic("in", PARTITIONS);
    tansu.create_topic("out", PARTITIONS);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: s3
  checkpoint_interval_ms: 300
  exactly_once: true
{s3}
streams:
  - name: chain
    input:
      type: kafka
      brokers: ["{b}"]
      topics: [in]
      consumer_group: chain
      assignment: group
      rate_per_sec: 2000
      options: {{ session.timeout.ms: "10000" }}
    pipeline:
      thread_num: 2
      processors:
        - {{ type: wasm, path: {c}, config: {{ key_field: user }}, key_by: user }}
        - {{ type: wasm, path: {c}, config: {{ key_field: count }}, key_by: count }}
    output: {{ type: kafka, brokers: ["{b}"], topic: out, exactly_once: true, exactly_once_mode: outbox }}
    state: {{ operator_id: chain, enabled: true }}
"#,
        s3 = moto.target.yaml_block(2, "chain/"),
        b = tansu.broker,
        c = plugin("counter").display(),
    ));
    let v = run(&cfg, &["--validate"]);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains("repartition topic `chain-0-repartition` keyed by (user)") && text.contains("repartition topic `chain-1-repartition` keyed by (count)"),
        "{text}{}",
        stderr(&v)
    );
    let mut per_user: HashMap<String, i64> = HashMap::new();
    let records: Vec<(i32, String)> = (0..n)
        .map(|id| {
            let user = generated_key(23, users, id);
            *per_user.entry(user.clone()).or_default() += 1;
            ((id % PARTITIONS as u64) as i32, format!("{{\"id\":{id},\"user\":\"{user}\"}}"))
        })
        .collect();
    common::kafka::produce_unkeyed(&tansu.broker, "in", records);
    let mut expected: HashMap<String, i64> = HashMap::new();
    for c in per_user.values() {
        for i in 1..=*c {
            *expected.entry(i.to_string()).or_default() += 1;
        }
    }

    let logs_at: Vec<_> = (1..=2).map(|i| dir.path(&format!("c{i}.log"))).collect();
    let out_total = || TansuClient(tansu.broker.clone()).end_offsets("out");
    let mut p1 = start_logged(&cfg, &logs_at[0]);
    let some = wait_for(Duration::from_secs(120), || out_total() > 0);
    assert!(some, "no output from the last part:\n{}", logs_of(&logs_at));
    let at_kill = out_total();
    signal(&p1, "KILL");
    let _ = p1.wait();
    let mut p2 = start_logged(&cfg, &logs_at[1]);
    let done = wait_for(Duration::from_secs(240), || out_total() >= n as i64);
    signal(&p2, "TERM");
    let status = p2.wait().unwrap();
    assert!(done, "the output has {} of {n} records:\n{}", out_total(), logs_of(&logs_at));
    assert!(at_kill < n as i64, "the kill landed mid-run ({at_kill} of {n} records out)");
    assert!(status.success(), "graceful stop failed ({status}):\n{}", logs_of(&logs_at));
    let mut counts: HashMap<String, Vec<i64>> = HashMap::new();
    for (_, _, v) in tansu.read_all("out") {
        let j: serde_json::Value = serde_json::from_str(&v).unwrap();
        counts.entry(j["key"].as_str().unwrap().to_string()).or_default().push(j["count"].as_i64().unwrap());
    }
    assert_eq!(counts.len(), expected.len(), "every count reached is counted");
    for (c, mut got) in counts {
        got.sort_unstable();
        assert_eq!(got, (1..=expected[&c]).collect::<Vec<_>>(), "count {c}: reached by {} users, each once", expected[&c]);
    }
}
