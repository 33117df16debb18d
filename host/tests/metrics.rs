//! The operations endpoint of a running binary: /metrics values checked against what the run did,
//! /health and /ready.

mod common;
use common::*;
use std::io::Write;
use std::time::Duration;

fn get(port: u16, path: &str) -> (u16, String) {
    http_request(port, "GET", path)
}

fn value(body: &str, metric: &str) -> Option<i64> {
    value_of(body, metric, "m")
}

fn value_of(body: &str, metric: &str, stream: &str) -> Option<i64> {
    metric_value(body, metric, stream)
}

#[test]
fn metrics_follow_the_run() {
    let dir = Dir::new();
    let port = free_port();
    let cfg = dir.config(&format!(
        "http: {{ address: \"127.0.0.1:{port}\" }}\nstatus_interval_ms: 200\nstate_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 100\nstreams:\n  - name: m\n    input: {{ type: stdin, key_field: user }}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n  - name: t\n    input: {{ type: generate, count: 300, keys: 5 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {}, config: {{ mode: trap-first-attempt }}, retries: 1 }}\n    output: {{ type: drop }}\n",
        dir.path("state").display(),
        plugin("counter").display(),
        dir.path("out.jsonl").display(),
        plugin("evil").display()
    ));
    let mut child = std::process::Command::new(bin())
        .arg("--config")
        .arg(&cfg)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..500 {
        writeln!(stdin, "{{\"user\":\"u{}\"}}", i % 7).unwrap();
    }
    stdin.flush().unwrap();
    let mut body = String::new();
    let done = wait_for(Duration::from_secs(10), || {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            drop(s);
            body = get(port, "/metrics").1;
            // The output counts a record as it takes it; the file holds it once the output
            // flushes (when it idles), a moment later.
            value(&body, "arkflow_records_out_total").or(value(&body, "arkflow_records_out")) == Some(500) && json_lines(&dir.path("out.jsonl")).len() == 500
        } else {
            false
        }
    });
    assert!(done, "records out reached 500 and the file holds them:\n{body}");
    let out_metric = if body.contains("arkflow_records_out_total") { "arkflow_records_out_total" } else { "arkflow_records_out" };
    assert_eq!(value(&body, out_metric), Some(json_lines(&dir.path("out.jsonl")).len() as i64), "records out equals records written");
    assert_eq!(value(&body, "arkflow_state_entries"), Some(7), "one counter per user");
    let written = std::fs::metadata(dir.path("out.jsonl")).unwrap().len() as i64;
    // Bytes out count keys and values: the file holds the values plus a newline each, and every
    // key ("u0".."u6") is 2 bytes.
    assert_eq!(value(&body, "arkflow_bytes_out_total"), Some(written - 500 + 500 * 2), "bytes out match what was written");
    assert!(value(&body, "arkflow_batch_latency_seconds_count").unwrap() >= 1, "{body}");
    assert_eq!(value(&body, "arkflow_plugin_traps_total"), Some(0));
    assert!(value_of(&body, "arkflow_plugin_traps_total", "t").unwrap() >= 1, "the evil stream's traps are counted: {body}");
    assert_eq!(value_of(&body, "arkflow_records_out_total", "t"), Some(300));
    assert!(body.contains("arkflow_state_backend{stream=\"m\",backend=\"local:"), "{body}");
    let e1 = value(&body, "arkflow_checkpoint_last_decided_epoch").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let body2 = get(port, "/metrics").1;
    let e2 = value(&body2, "arkflow_checkpoint_last_decided_epoch").unwrap();
    assert!(e2 > e1, "the checkpoint id advances: {e1} -> {e2}");
    assert_eq!(get(port, "/health").0, 200);
    assert_eq!(get(port, "/ready").0, 200);
    assert_eq!(get(port, "/nope").0, 404);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let status = err.lines().filter(|l| l.contains(" status ") && l.contains("records_per_sec=")).count();
    assert!(status >= 2, "periodic status lines in the log:\n{err}");
    assert!(err.lines().any(|l| l.contains(" status ") && l.contains("records_in=500") && l.contains("state_entries=7")), "{err}");
}

#[test]
fn kafka_consumer_lag_per_partition_is_exported() {
    let tansu = common::kafka::Tansu::start();
    tansu.create_topic("lag", 2);
    tansu.produce("lag", (0..20_000).map(|i| (i % 2, format!("k{i}"), format!("{{\"i\":{i}}}"))));
    let dir = Dir::new();
    let port = free_port();
    // Throttled far below the backlog, so lag stays large while the test looks.
    let cfg = dir.config(&format!(
        "http: {{ address: \"127.0.0.1:{port}\" }}\nstreams:\n  - name: k\n    input: {{ type: kafka, brokers: [\"{}\"], topics: [lag], rate_per_sec: 500 }}\n    output: {{ type: drop }}\n",
        tansu.broker
    ));
    let mut child = spawn(&cfg);
    let start = std::time::Instant::now();
    let lag = |body: &str, p: u32| -> Option<i64> {
        let head = format!("arkflow_kafka_consumer_lag{{stream=\"k\",topic=\"lag\",partition=\"{p}\"}} ");
        body.lines().find_map(|l| l.strip_prefix(&head)).and_then(|v| v.trim().parse().ok())
    };
    let body = loop {
        let body = std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| get(port, "/metrics").1).unwrap_or_default();
        if lag(&body, 0).is_some() && lag(&body, 1).is_some() {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no lag figures after 30 s:\n{body}");
        std::thread::sleep(Duration::from_millis(250));
    };
    signal(&child, "KILL");
    let _ = child.wait();
    for p in 0..2 {
        let l = lag(&body, p).unwrap();
        assert!(l > 1_000 && l <= 10_000, "partition {p}: lag {l} of a 10,000-record backlog read at 500/s");
    }
}
