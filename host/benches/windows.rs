//! Bench binary: a one-minute tumbling windowed count against the plain keyed counter, both over
//! generate -> ... -> drop, 10,000 keys, event time = the generated `ts` (one ms per record, so
//! 1,000,000 records span about 17 windows), 1 worker. Two pairs, interleaved per round so each
//! pair sees the same machine load:
//! - host: `type: window` (count) against `type: native_counter`;
//! - wasm: the `window_count` plugin (host timers) against the `counter` plugin;
//! - sql: a continuous query grouped by `key, tumble(INTERVAL '1 minute')` against the same query
//!   grouped by `key` alone.
//!
//! Prints records/s for each and the ratios, and the peak of keyed state entries during a run
//! (sampled every 2 ms): a window's state is its open windows (with their timers), not every
//! window it ever had. Run: `bash plugins/build.sh && cargo bench --bench
//! windows` (env: BENCH_RECORDS, default 1,000,000 per run; BENCH_ROUNDS, default 3).

#[path = "common/mod.rs"]
mod common;

use arkflow::config::EngineConfig;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

const KEYS: u64 = 10_000;
const SIZE_MS: i64 = 60_000;

fn config(processor: &str, records: u64) -> EngineConfig {
    let yaml = format!(
        r#"
streams:
  - name: bench
    input: {{ type: generate, count: {records}, keys: {KEYS}, payload_bytes: 16, seed: 1, batch_size: 1024 }}
    event_time: {{ field: ts, max_delay_ms: 0, interval_ms: 50 }}
    pipeline:
      thread_num: 1
      processors:
        - {processor}
    output: {{ type: drop }}
"#
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

/// Runs the stream to its end: records in per second, the report, and the peak state entries.
fn run(cfg: &EngineConfig) -> (f64, arkflow::engine::StreamReport, i64) {
    let stream = arkflow::engine::build_stream(cfg, &cfg.streams[0]).expect("build");
    let shared = stream.shared().clone();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Relaxed) {
                peak = peak.max(shared.metrics.state_entries.load(Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            peak
        })
    };
    let start = std::time::Instant::now();
    let report = stream.run(Arc::new(AtomicBool::new(false)));
    let secs = start.elapsed().as_secs_f64();
    done.store(true, Relaxed);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    (report.records_in as f64 / secs, report, sampler.join().expect("sampler"))
}

fn plugin(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/dist/{name}.wasm"));
    assert!(p.exists(), "{} missing: run `bash plugins/build.sh` first", p.display());
    p.display().to_string()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench binaries; nothing to list.
    }
    let records: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let cases = [
        ("native_counter", config("{ type: native_counter }", records)),
        ("window", config(&format!("{{ type: window, size_ms: {SIZE_MS}, aggregates: {{ n: count }} }}"), records)),
        ("counter.wasm", config(&format!("{{ type: wasm, path: {} }}", plugin("counter")), records)),
        ("window_count.wasm", config(&format!("{{ type: wasm, path: {}, config: {{ size_ms: {SIZE_MS} }} }}", plugin("window_count")), records)),
        ("sql", config(r#"{ type: sql, mode: continuous, query: "SELECT \"key\", COUNT(*) AS n FROM flow GROUP BY \"key\"" }"#, records)),
        (
            "sql_tumble",
            config(r#"{ type: sql, query: "SELECT \"key\", tumble(INTERVAL '1 minute') AS w, COUNT(*) AS n FROM flow GROUP BY \"key\", w" }"#, records),
        ),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut peaks = vec![0i64; cases.len()];
    let mut emitted = vec![0u64; cases.len()];
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, (name, cfg)) in cases.iter().enumerate() {
            let (rate, report, peak) = run(cfg);
            peaks[i] = peaks[i].max(peak);
            emitted[i] = report.records_out;
            if name.contains("window") || name.contains("tumble") {
                // One record per (key, window): every window fired, none twice.
                let windows = report.records_out;
                assert!(windows >= KEYS && windows <= KEYS * (records / SIZE_MS as u64 + 2), "{name}: {windows} windows emitted");
                assert_eq!(report.state_entries, 0, "{name}: every window's state is gone after the end");
            }
            rates[i].push(rate);
            line.push_str(&format!("  {name} {rate:>10.0}"));
        }
        println!("{line}");
    }
    let m: Vec<f64> = rates.iter_mut().map(|r| common::median(r)).collect();
    println!(
        "median rec/s: native_counter {:.0}, window {:.0} (window/native_counter = {:.3}); counter.wasm {:.0}, window_count.wasm {:.0} (window_count/counter = {:.3}); sql {:.0}, sql_tumble {:.0} (sql_tumble/sql = {:.3}) ({records} records/run, {KEYS} keys, {SIZE_MS} ms tumbling, 1 worker)",
        m[0],
        m[1],
        m[1] / m[0],
        m[2],
        m[3],
        m[3] / m[2],
        m[4],
        m[5],
        m[5] / m[4]
    );
    for (i, (name, _)) in cases.iter().enumerate() {
        println!("{name}: peak state entries {} for {} records emitted", peaks[i], emitted[i]);
    }
}
