//! Bench binary: generate -> counter -> drop, 100,000 distinct keys, 1 worker; the wasm `counter`
//! plugin against the built-in `native_counter`, interleaved in one run so both see the same
//! machine load. Prints records/s for each and the ratio.
//!
//! Run: `bash plugins/build.sh && cargo bench --bench counter` (env: BENCH_RECORDS, default
//! 2,000,000 per run; BENCH_ROUNDS, default 3; BENCH_PLUGIN, another counter component to run as
//! a third contender in the same rounds, e.g. one built against an older WIT package).

#[path = "common/mod.rs"]
mod common;

use arkflow::config::EngineConfig;

fn config(processor: &str, records: u64) -> EngineConfig {
    let bs: usize = std::env::var("BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let yaml = format!(
        r#"
streams:
  - name: bench
    input: {{ type: generate, count: {records}, keys: 100000, payload_bytes: 16, seed: 1, batch_size: 1024 }}
    pipeline:
      thread_num: 1
      batch_size: {bs}
      processors:
        - {processor}
    output: {{ type: drop }}
"#
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

fn run(cfg: &EngineConfig) -> (f64, u64) {
    let (rate, report) = common::run_stream(cfg);
    assert_eq!(report.records_out, report.records_in);
    (rate, report.state_entries)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench binaries; nothing to list.
    }
    let records: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let plugin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/counter.wasm");
    assert!(plugin.exists(), "{} missing: run `bash plugins/build.sh` first", plugin.display());
    let wasm = config(&format!("{{ type: wasm, path: {} }}", plugin.display()), records);
    let native = config("{ type: native_counter }", records);
    let other = std::env::var("BENCH_PLUGIN").ok().map(|p| config(&format!("{{ type: wasm, path: {p} }}"), records));
    let (mut w, mut n, mut o) = (Vec::new(), Vec::new(), Vec::new());
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        // For profiling one side: BENCH_ONLY=wasm|native.
        let (r, _) = run(if only == "wasm" { &wasm } else { &native });
        println!("{only}: {r:.0} rec/s");
        return;
    }
    for round in 0..rounds {
        let (rw, kw) = run(&wasm);
        let (rn, kn) = run(&native);
        assert_eq!(kw, kn, "both counters must hold the same number of keys");
        println!("round {round}: wasm {rw:>12.0} rec/s   native {rn:>12.0} rec/s   ratio {:.3}", rw / rn);
        if let Some(cfg) = &other {
            let (ro, ko) = run(cfg);
            assert_eq!(ko, kn, "BENCH_PLUGIN must hold as many keys");
            println!("         BENCH_PLUGIN {ro:>12.0} rec/s   ratio to native {:.3}", ro / rn);
            o.push(ro / rn);
        }
        w.push(rw);
        n.push(rn);
    }
    let (mw, mn) = (common::median(&mut w), common::median(&mut n));
    println!("median: wasm {mw:.0} rec/s, native {mn:.0} rec/s, wasm/native = {:.3} ({records} records/run, 100000 keys, 1 worker)", mw / mn);
    if !o.is_empty() {
        println!("median: BENCH_PLUGIN/native = {:.3}", common::median(&mut o));
    }
}
