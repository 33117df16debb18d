//! The sandbox's bounds on plugins that misbehave without crashing: a plugin that sleeps in a
//! blocking WASI call, one that fails every batch (circuit breaker), one that floods the log, one
//! that defines metrics (exported at /metrics), one that overflows a counter, and one that emits to
//! an output the stream does not have, ones that misuse timers (a storm of re-armed timers, a trap
//! or a wrong outcome count in `on-timers`); and a SIGTERM drain that would never end is cut at
//! shutdown_timeout_ms. Each runs the real binary with `evil` built from source.

mod common;
use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn evil(mode: &str, extra: &str, count: u64, dir: &Dir, name: &str) -> String {
    format!(
        r#"
  - name: {name}
    input: {{ type: generate, count: {count}, keys: 10, seed: 1 }}
    pipeline:
      processors:
        - type: wasm
          path: {evil}
          config: {{ mode: {mode} }}
{extra}
    output: {{ type: file, path: {out} }}
    error_output: {{ type: file, path: {err} }}
"#,
        evil = plugin("evil").display(),
        out = dir.path(&format!("{name}.jsonl")).display(),
        err = dir.path(&format!("{name}.errors.jsonl")).display(),
    )
}

fn good(dir: &Dir) -> String {
    format!(
        "\n  - name: good\n    input: {{ type: generate, count: 20000, keys: 50, seed: 2 }}\n    pipeline:\n      processors:\n        - type: wasm\n          path: {}\n    output: {{ type: file, path: {} }}\n",
        plugin("counter").display(),
        dir.path("good.jsonl").display()
    )
}

fn assert_good_exact(dir: &Dir) {
    let lines = json_lines(&dir.path("good.jsonl"));
    assert_eq!(lines.len(), 20000);
    for (k, c) in counts_by_key(&lines) {
        assert!(c.iter().enumerate().all(|(i, v)| *v == i as i64 + 1), "key {k}");
    }
}

/// Runs `cfg` to its end within `limit` (killing it and failing the test otherwise).
fn run_within(cfg: &std::path::Path, limit: Duration) -> (std::process::ExitStatus, String, Duration) {
    let started = Instant::now();
    let log = cfg.with_extension("log");
    let mut child = std::process::Command::new(bin())
        .arg("--config")
        .arg(cfg)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let done = wait_for(limit, || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        signal(&child, "KILL");
        let _ = child.wait();
        panic!("the run did not end within {limit:?}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    let status = child.wait().unwrap();
    (status, std::fs::read_to_string(&log).unwrap(), started.elapsed())
}

#[test]
fn a_sleeping_plugin_fails_its_batches_at_the_deadline_and_the_stream_finishes() {
    let dir = Dir::new();
    let extra =
        "          limits: { batch_timeout_ms: 400 }\n          retries: 0\n          on_failure: error_output\n          circuit_breaker: { failures: 0 }";
    let yaml = format!("streams:\n{}{}", evil("sleep", extra, 40, &dir, "sleepy"), good(&dir));
    let (status, log, elapsed) = run_within(&dir.config(&yaml), Duration::from_secs(120));
    assert!(status.success(), "{log}");
    assert_good_exact(&dir);
    let errs = json_lines(&dir.path("sleepy.errors.jsonl"));
    assert_eq!(errs.len(), 40, "every record of the sleeping plugin's batches is in error_output");
    assert!(errs.iter().all(|e| e["error"]["message"].as_str().unwrap().contains("deadline exceeded")), "{}", errs[0]);
    // Each failed call ended within 2x its deadline: the run took at most that per call.
    let calls = log.lines().filter(|l| l.contains("sleepy") && l.contains("deadline exceeded") && l.contains("WARN")).count() as u32;
    assert!(calls >= 1, "{log}");
    assert!(elapsed < Duration::from_millis(800) * calls + Duration::from_secs(10), "{calls} calls took {elapsed:?}");
}

#[test]
fn the_circuit_breaker_quarantines_a_processor_after_n_failed_batches() {
    let dir = Dir::new();
    let extra = "          retries: 0\n          on_failure: error_output\n          circuit_breaker: { failures: 3, cooldown_ms: 600000 }";
    let yaml = format!("streams:\n{}{}", evil("trap", extra, 2000, &dir, "trapper"), good(&dir));
    let (status, log, _) = run_within(&dir.config(&yaml), Duration::from_secs(120));
    assert!(status.success(), "{log}");
    assert_good_exact(&dir);
    let errs = json_lines(&dir.path("trapper.errors.jsonl"));
    assert_eq!(errs.len(), 2000, "every record is in error_output, none lost");
    let trapped = log.lines().filter(|l| l.contains("WARN") && l.contains("trap:")).count();
    assert_eq!(trapped, 3, "the plugin was called for 3 batches only:\n{log}");
    assert_eq!(log.matches("quarantined for 600000 ms after 3 failed batches").count(), 1, "{log}");
    let quarantined = errs.iter().filter(|e| e["error"]["message"].as_str().unwrap().contains("is quarantined")).count();
    assert!(quarantined > 0 && quarantined < 2000, "{quarantined}");
}

#[test]
fn a_log_flooding_plugin_is_rate_limited() {
    let dir = Dir::new();
    // Spread over 2 s: the suppression is reported with the next line let through.
    let flood = evil("log-flood", "", 20000, &dir, "flood").replace("seed: 1 }", "seed: 1, rate_per_sec: 10000 }");
    let yaml = format!("streams:\n{flood}{}", good(&dir));
    let (status, log, _) = run_within(&dir.config(&yaml), Duration::from_secs(120));
    assert!(status.success(), "{}", &log[log.len().saturating_sub(3000)..]);
    assert_good_exact(&dir);
    assert_eq!(json_lines(&dir.path("flood.jsonl")).len(), 20000, "the records still pass");
    assert!(log.len() < 1 << 20, "20,000 flooding records gave {} bytes of log", log.len());
    assert!(log.contains("plugin log lines suppressed"), "the suppression is reported");
    let line = log.lines().find(|l| l.contains("evil: xxxx")).expect("some plugin lines are kept");
    for field in ["plugin=\"evil@", "stream=\"flood\"", "worker=", "batch="] {
        assert!(line.contains(field), "{field} in ...{}", &line[line.len().saturating_sub(200)..]);
    }
}

#[test]
fn plugin_metrics_are_exported_with_their_labels() {
    let dir = Dir::new();
    let port = free_port();
    let yaml = format!(
        "http: {{ address: \"127.0.0.1:{port}\" }}\nstreams:\n  - name: m\n    input: {{ type: generate, count: 1000000, keys: 10, rate_per_sec: 2000 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {}, config: {{ mode: metrics }} }}\n    output: {{ type: drop }}\n",
        plugin("evil").display()
    );
    let mut child = spawn(&dir.config(&yaml));
    let labels = "{stream=\"m\",processor=\"0\",plugin=\"evil@";
    let mut body = String::new();
    let seen = wait_for(Duration::from_secs(30), || {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            return false;
        }
        body = http_request(port, "GET", "/metrics").1;
        let dropped = body.lines().find(|l| l.starts_with("arkflow_processor_plugin_metrics_dropped_total{stream=\"m\""));
        dropped.is_some_and(|l| !l.ends_with(" 0"))
    });
    signal(&child, "KILL");
    let _ = child.wait();
    assert!(seen, "the per-batch series went over the cap and were counted as dropped:\n{body}");
    for m in [
        "arkflow_plugin_evil_records_total",
        "arkflow_plugin_evil_last_batch",
        "arkflow_plugin_evil_batch_size_count",
        "arkflow_processor_calls_total",
        "arkflow_processor_records_in_total",
        "arkflow_processor_bytes_lowered_total",
        "arkflow_processor_bytes_lifted_total",
        "arkflow_processor_memory_high_water_bytes",
    ] {
        let line = body.lines().find(|l| l.starts_with(&format!("{m}{labels}"))).unwrap_or_else(|| panic!("{m} with labels {labels}:\n{body}"));
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v > 0.0, "{line}");
    }
    let total: f64 =
        body.lines().find(|l| l.starts_with(&format!("arkflow_plugin_evil_records_total{labels}"))).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let sum: f64 =
        body.lines().find(|l| l.starts_with(&format!("arkflow_plugin_evil_batch_size_sum{labels}"))).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(total, sum, "a histogram of batch sizes sums to the records counted");
    assert!(body.contains("arkflow_plugin_evil_batch_size_bucket{") && body.contains("le=\"+Inf\""), "a real histogram");
    let series = body.lines().filter(|l| l.starts_with("arkflow_plugin_evil_series_")).count();
    assert!(series > 0 && series <= 64, "{series} per-batch series kept (cap 64 per processor)");
}

#[test]
fn counter_overflow_and_unknown_outputs_fail_the_record() {
    let dir = Dir::new();
    let yaml = format!("streams:\n{}{}", evil("overflow", "", 100, &dir, "overflow"), evil("bad-output", "", 100, &dir, "badout"));
    let (status, log, _) = run_within(&dir.config(&yaml), Duration::from_secs(60));
    assert!(status.success(), "{log}");
    assert!(json_lines(&dir.path("overflow.jsonl")).is_empty(), "no wrapped sum was emitted");
    let errs = json_lines(&dir.path("overflow.errors.jsonl"));
    assert_eq!(errs.len(), 100);
    assert!(errs.iter().all(|e| e["error"]["code"] == "overflow" && e["error"]["message"].as_str().unwrap().contains("increment overflows")), "{}", errs[0]);
    assert!(json_lines(&dir.path("badout.jsonl")).is_empty(), "nothing fell through to the main output");
    let errs = json_lines(&dir.path("badout.errors.jsonl"));
    assert_eq!(errs.len(), 100);
    assert!(errs.iter().all(|e| e["error"]["code"] == "invalid-output" && e["error"]["message"].as_str().unwrap().contains("`nope`")), "{}", errs[0]);
}

#[test]
fn sigterm_drain_is_bounded_by_shutdown_timeout_ms() {
    let dir = Dir::new();
    // The plugin sleeps far past any drain: only shutdown_timeout_ms can end the process.
    let extra = "          limits: { batch_timeout_ms: 600000 }\n          retries: 0\n          circuit_breaker: { failures: 0 }";
    let yaml = format!("shutdown_timeout_ms: 1500\nstreams:\n{}", evil("sleep", extra, 40, &dir, "stuck"));
    let cfg = dir.config(&yaml);
    let child = spawn(&cfg);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "TERM");
    let signalled = Instant::now();
    let out = child.wait_with_output().unwrap();
    let waited = signalled.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit non-zero with the reason: {err}");
    assert!(err.contains("did not drain within shutdown_timeout_ms = 1500"), "{err}");
    assert!(waited >= Duration::from_millis(1400) && waited < Duration::from_secs(10), "the drain waited {waited:?} for a 1.5 s limit");
}

/// Timers misused three ways beside a good stream: a processing-time timer re-armed at "now" on
/// every fire (the stream still ends, its records pass), `on-timers` trapping (its stream fails
/// naming the export and the panic), `on-timers` returning no outcomes with `on_failure:
/// error_output` (the timers land in error_output with code `timers-failed`).
#[test]
fn plugins_that_misuse_timers_fail_or_end_their_stream_and_the_host_keeps_running() {
    let dir = Dir::new();
    let to_errors = "          retries: 1\n          on_failure: error_output";
    let yaml = format!(
        "streams:\n{}{}{}{}",
        evil("timer-storm", "", 5000, &dir, "storm"),
        evil("timer-trap", "          retries: 1", 300, &dir, "trap"),
        evil("timer-wrong-count", to_errors, 300, &dir, "wrong"),
        good(&dir)
    );
    let (status, log, _) = run_within(&dir.config(&yaml), Duration::from_secs(120));
    assert!(!status.success(), "a failed stream fails the run: {log}");
    assert_good_exact(&dir);
    assert_eq!(json_lines(&dir.path("storm.jsonl")).len(), 5000, "the storm's records pass and its stream ends");
    assert!(log.contains("timer-handler@0.2.0#on-timers") && log.contains("evil: trap in on-timers"), "{log}");
    let errs = json_lines(&dir.path("wrong.errors.jsonl"));
    assert!(!errs.is_empty(), "the wrong-count timers are in error_output: {log}");
    for e in &errs {
        assert_eq!(e["error"]["code"], "timers-failed", "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("returned 0 outcomes"), "{e}");
        assert!(e["value"]["timer"]["time_ms"].is_i64(), "the error record names its timer: {e}");
    }
}
