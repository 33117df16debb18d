//! The `mqtt` input and output with the real binary against mosquitto on 127.0.0.1
//! (`common::mqtt`).
//! - Input: messages published at QoS 1 to the stream's persistent session while the stream is
//!   SIGKILLed at random moments and restarted: every message must reach the output (the broker
//!   redelivers what was not acknowledged, and acknowledgements wait for decided checkpoints),
//!   and what appears twice is bounded by what the stream held undecided at the kills.
//! - Output: every record of a file published at QoS 1 reaches a subscriber.
//!
//! Size: ARKFLOW_MQTT_RECORDS (default 30,000), ARKFLOW_MQTT_KILLS (5).

mod common;
use common::kill::{env_or, kill_repeatedly};
use common::mqtt::Mosquitto;
use common::*;
use std::collections::HashSet;
use std::io::Read;
use std::time::Duration;

/// Ids in the output file (the probes have none).
fn ids_in(dir: &Dir) -> Vec<u64> {
    whole_json_lines(&dir.path("out.jsonl")).iter().filter_map(|v| v["id"].as_u64()).collect()
}

#[test]
fn mqtt_input_loses_nothing_to_sigkills() {
    let broker = Mosquitto::start();
    let dir = Dir::new();
    let n = env_or("ARKFLOW_MQTT_RECORDS", 30_000);
    let kills = env_or("ARKFLOW_MQTT_KILLS", 5);
    let rate = 5_000;
    let cfg = dir.config(&format!(
        r#"
{sm}streams:
  - name: sensors
    input: {{ type: mqtt, host: 127.0.0.1, port: {port}, client_id: arkflow-kill-test, topics: ["in/#"], key_field: user }}
    pipeline: {{ thread_num: 2, processors: [] }}
    output: {{ type: file, path: {out} }}
    state: {{ operator_id: mqtt-in, enabled: true }}
"#,
        port = broker.port,
        sm = local_state(&dir, 200, false),
        out = dir.path("out.jsonl").display(),
    ));
    // The first run makes the persistent session (and its subscription) at the broker: from
    // then on the broker keeps every message for it, running or not.
    let mut first = spawn(&cfg);
    let subscribed = wait_for(Duration::from_secs(30), || {
        broker.publish("in/probe", vec!["{\"probe\":1}".into()], 1000);
        std::fs::read_to_string(dir.path("out.jsonl")).unwrap_or_default().contains("probe")
    });
    assert!(subscribed, "the first run subscribed and wrote a probe");
    signal(&first, "KILL");
    first.wait().unwrap();

    let port = broker.port;
    let payloads: Vec<String> = (0..n).map(|i| format!("{{\"id\":{i},\"user\":\"u{}\"}}", i % 97)).collect();
    let publisher = std::thread::spawn(move || common::mqtt::publish_to(port, "in/sensors", payloads, rate));
    let killed = kill_repeatedly(&cfg, kills, (400, 1500));
    let before = ids_in(&dir).len();
    publisher.join().unwrap();
    let mut last = spawn(&cfg);
    // Past its start (signal handlers in place) before it may be stopped.
    std::thread::sleep(Duration::from_secs(1));
    let all = wait_for(Duration::from_secs(90), || ids_in(&dir).into_iter().collect::<HashSet<_>>().len() as u64 == n);
    signal(&last, "TERM");
    let status = last.wait().unwrap();
    let mut log = String::new();
    last.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let ids = ids_in(&dir);
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    let missing: Vec<u64> = (0..n).filter(|i| !distinct.contains(i)).take(10).collect();
    eprintln!("mqtt input: {killed} kills, {before} records out before the final run, {} in all ({} twice)", ids.len(), ids.len() - distinct.len());
    assert!(all && missing.is_empty(), "every message published reaches the output; missing e.g. {missing:?}: {log}");
    assert!(status.success(), "the final run ends cleanly on SIGTERM: {log}");
    assert_eq!(killed, kills);
    assert!(before > 0, "messages were acknowledged and written before the kills ended");
    let bound = (kills + 1) * rate;
    assert!(((ids.len() - distinct.len()) as u64) <= bound, "{} duplicates, more than {bound}", ids.len() - distinct.len());
}

#[test]
fn mqtt_output_publishes_every_record() {
    let broker = Mosquitto::start();
    let received = broker.subscribe("out");
    let dir = Dir::new();
    let n = 2_000;
    let input = dir.path("in.jsonl");
    append_users(&input, 0, n, 10);
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: file, path: {} }}\n    pipeline: {{ processors: [] }}\n    output: {{ type: mqtt, host: 127.0.0.1, port: {}, topic: out, qos: 1 }}\n",
        input.display(),
        broker.port
    ));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut ids = HashSet::new();
    while let Ok(p) = received.recv_timeout(Duration::from_secs(10)) {
        ids.insert(serde_json::from_slice::<serde_json::Value>(&p).unwrap()["id"].as_u64().unwrap());
        if ids.len() as u64 == n {
            break;
        }
    }
    assert_eq!(ids.len() as u64, n, "every record published and acknowledged before the run ended");
}

#[test]
fn mqtt_output_loses_nothing_to_sigkills() {
    let broker = Mosquitto::start();
    let received = broker.subscribe("out");
    let dir = Dir::new();
    let n = 6_000;
    let input = dir.path("in.jsonl");
    append_users(&input, 0, n, 10);
    let cfg = dir.config(&format!(
        r#"
{sm}streams:
  - name: publish
    input: {{ type: file, path: {input}, rate_per_sec: 1000 }}
    pipeline: {{ thread_num: 2, processors: [] }}
    output: {{ type: mqtt, host: 127.0.0.1, port: {port}, topic: out, qos: 1 }}
    state: {{ operator_id: mqtt-out, enabled: true }}
"#,
        sm = local_state(&dir, 200, false),
        input = input.display(),
        port = broker.port
    ));
    let killed = kill_repeatedly(&cfg, 4, (400, 1200));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    let mut ids = HashSet::new();
    let mut total = 0u64;
    while let Ok(p) = received.recv_timeout(Duration::from_secs(5)) {
        ids.insert(serde_json::from_slice::<serde_json::Value>(&p).unwrap()["id"].as_u64().unwrap());
        total += 1;
    }
    eprintln!("mqtt output: {killed} kills, {total} messages for {} records", ids.len());
    assert_eq!(killed, 4);
    assert_eq!(ids.len() as u64, n, "every record reached the subscriber across the kills");
}
