//! Bench binary: this host's `arkflow` against ArkFlow's own binary (built from source, see
//! BENCHMARKS.md), whole processes side by side, the runs of a round interleaved so all see the
//! same load. Two pipelines, each on both:
//! (A) a file of `BENCH_RECORDS` JSON lines `{"timestamp","value","sensor"}` (value 0..19) →
//!     `SELECT * FROM flow WHERE value >= 10` → drop, `thread_num: 2`; ours also with the
//!     columnar lane off (`ARKFLOW_COLUMNAR_LANE=off`, the record path);
//! (B) ArkFlow's own `generate` (one JSON object, 100,000-record batches) → `json_to_arrow` →
//!     the same query → drop, `thread_num: 2`.
//! Ours is timed from spawn to exit (it ends at the end of its input, after its final
//! checkpoint). ArkFlow does not exit at the end of its input: it is timed from spawn until
//! `arkflow_stream_output_messages` on its metrics endpoint (127.0.0.1) reaches the expected row
//! count, polled every 2 ms, then this bench kills it (its own child). Both counts are checked.
//!
//! Run: `ARKFLOW_UPSTREAM=<ArkFlow binary> cargo bench --bench vs_arkflow` (env: BENCH_RECORDS,
//! default 2,000,000; BENCH_ROUNDS, default 5; BENCH_ONLY=a|b). Without ARKFLOW_UPSTREAM only
//! this host's runs are timed. `ARKFLOW_BASELINE=<this host's binary from another commit>` adds
//! its lane runs to every round ("... baseline"), to measure a change.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const QUERY: &str = "SELECT * FROM flow WHERE value >= 10";
const CONTEXT: &str = r#"{ "timestamp": 1625000000000, "value": 10, "sensor": "temp_1" }"#;

/// Writes the input of (A); returns the number of rows the query keeps.
fn write_data(path: &Path, n: u64) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut kept = 0;
    for i in 0..n {
        let value = arkflow::connectors::input::splitmix64(i) % 20;
        kept += (value >= 10) as u64;
        writeln!(f, r#"{{"timestamp":{},"value":{value},"sensor":"sensor-{:03}"}}"#, 1_700_000_000_000 + i, i % 100).unwrap();
    }
    f.flush().unwrap();
    kept
}

/// Runs our binary on `yaml` to its end; (seconds, records_out from its final report).
fn ours(dir: &Path, name: &str, yaml: &str, lane: bool) -> (f64, u64) {
    ours_with(Path::new(env!("CARGO_BIN_EXE_arkflow")), dir, name, yaml, lane)
}

/// `ours` with the binary `bin`.
fn ours_with(bin: &Path, dir: &Path, name: &str, yaml: &str, lane: bool) -> (f64, u64) {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .env("ARKFLOW_COLUMNAR_LANE", if lane { "on" } else { "off" })
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.contains("columnar lane"), lane, "{log}");
    let rows = log.split("records_out=").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()).unwrap_or(0);
    (secs, rows)
}

/// Runs ArkFlow's binary on `yaml` until it has output `expected` rows; (seconds, rows).
fn upstream(bin: &Path, dir: &Path, name: &str, yaml: &str, port: u16, expected: u64) -> (f64, u64) {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    let start = Instant::now();
    let mut child = Command::new(bin).arg("--config").arg(&cfg).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut rows = 0;
    while rows < expected && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(2));
        rows = output_messages(port).unwrap_or(0);
        assert!(child.try_wait().unwrap().is_none(), "ArkFlow exited early");
    }
    let secs = start.elapsed().as_secs_f64();
    child.kill().unwrap();
    child.wait().unwrap();
    (secs, rows)
}

/// The sum of `arkflow_stream_output_messages` on ArkFlow's metrics endpoint.
fn output_messages(port: u16) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.lines().filter(|l| l.starts_with("arkflow_stream_output_messages")).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum())
}

fn upstream_yaml(port: u16, input: &str, processors: &str) -> String {
    format!(
        "logging:\n  level: error\nhealth_check:\n  enabled: true\n  address: \"127.0.0.1:{port}\"\nstreams:\n  - input:\n{input}    pipeline:\n      thread_num: 2\n      processors:\n{processors}    output:\n      type: drop\n"
    )
}

fn main() {
    let n = common::env_u64("BENCH_RECORDS", 2_000_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 5);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let theirs: Option<PathBuf> = std::env::var_os("ARKFLOW_UPSTREAM").map(PathBuf::from);
    let baseline: Option<PathBuf> = std::env::var_os("ARKFLOW_BASELINE").map(PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    let kept = write_data(&data, n);
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let sql = format!("        - type: sql\n          query: \"{QUERY}\"\n");
    let a_ours = format!(
        "streams:\n  - name: a\n    input: {{ type: file, path: {} }}\n    pipeline:\n      thread_num: 2\n      processors:\n{sql}    output: {{ type: drop }}\n",
        data.display()
    );
    let a_theirs = upstream_yaml(port, &format!("      type: file\n      input_type:\n        type: json\n        path: {}\n", data.display()), &sql);
    let b_processors = format!("        - type: json_to_arrow\n{sql}");
    let b_ours = format!(
        "streams:\n  - name: b\n    input: {{ type: generate, count: {n}, batch_size: 100000, context: '{CONTEXT}' }}\n    pipeline:\n      thread_num: 2\n      processors:\n{b_processors}    output: {{ type: drop }}\n"
    );
    let b_theirs = upstream_yaml(
        port,
        &format!("      type: generate\n      context: '{CONTEXT}'\n      interval: 1ns\n      batch_size: 100000\n      count: {n}\n"),
        &b_processors,
    );

    let mut times: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for round in 0..=rounds {
        let mut runs: Vec<(&str, (f64, u64), u64)> = vec![];
        if only.is_empty() || only == "a" {
            runs.push(("A ours, columnar lane", ours(dir.path(), "a", &a_ours, true), kept));
            runs.push(("A ours, record path", ours(dir.path(), "a", &a_ours, false), kept));
            if let Some(bin) = &baseline {
                runs.push(("A ours, lane, baseline", ours_with(bin, dir.path(), "a", &a_ours, true), kept));
            }
            if let Some(bin) = &theirs {
                runs.push(("A ArkFlow", upstream(bin, dir.path(), "a-theirs", &a_theirs, port, kept), kept));
            }
        }
        if only.is_empty() || only == "b" {
            runs.push(("B ours", ours(dir.path(), "b", &b_ours, true), n));
            if let Some(bin) = &baseline {
                runs.push(("B ours, baseline", ours_with(bin, dir.path(), "b", &b_ours, true), n));
            }
            if let Some(bin) = &theirs {
                runs.push(("B ArkFlow", upstream(bin, dir.path(), "b-theirs", &b_theirs, port, n), n));
            }
        }
        for (name, (secs, rows), expected) in runs {
            assert_eq!(rows, expected, "{name}: rows out");
            eprintln!("round {round}: {name}: {secs:.3} s");
            if round > 0 {
                times.entry(name).or_default().push(secs);
            }
        }
    }
    println!("{n} records, {rounds} rounds after a warm-up round; wall seconds min / median / max; ratio = ArkFlow's median / ours");
    let median = |name: &str| times.get(name).map(|v| common::median(&mut v.clone()));
    for (name, v) in &times {
        let mut s = v.clone();
        s.sort_by(f64::total_cmp);
        println!("{name:24} {:.3} / {:.3} / {:.3}", s[0], common::median(&mut s.clone()), s[s.len() - 1]);
    }
    if baseline.is_some() {
        for (now, before) in [("A ours, columnar lane", "A ours, lane, baseline"), ("B ours", "B ours, baseline")] {
            if let (Some(n), Some(b)) = (median(now), median(before)) {
                println!("{now}: {:.2}x the baseline's throughput", b / n);
            }
        }
    }
    for w in ["A", "B"] {
        let t = median(&format!("{w} ArkFlow"));
        for (name, _) in times.iter().filter(|(k, _)| k.starts_with(w) && !k.ends_with("ArkFlow")) {
            if let (Some(t), Some(o)) = (t, median(name)) {
                println!("{name}: {:.2}x ArkFlow's throughput", t / o);
            }
        }
    }
}
