//! Bench binary: wasmtime engine settings and plugin builds, side by side. Each engine setting
//! runs in its own process (the engine is process-wide), with `ARKFLOW_WASMTIME` set to it; the
//! settings are interleaved per round, in an order rotated every round, so all see the same
//! machine load (the plugins within a process rotate too). Per setting and plugin it measures:
//! - compile ms (no artifact cache);
//! - instantiate + `init` ms (median of 20 fresh instances);
//! - generate -> plugin -> drop (1 worker, batch 256, 100,000 keys): records per second of wall
//!   time and per CPU second of the process (less sensitive to a noisy neighbour).
//!
//! Ratios are to the first setting (the host's chosen one, written `chosen`). A plugin labelled
//! `X-base` is also compared with the plugin `X` (e.g. the same plugin built from an older
//! commit): `X / X-base`, per round.
//!
//! Run: `bash plugins/build.sh && bash plugins/python/build.sh counter && cargo bench --bench wasmtime`
//! (env: BENCH_ROUNDS, default 3; BENCH_RECORDS, default 2,000,000 for compiled plugins and a
//! tenth for Python and JavaScript; BENCH_SETTINGS, `;`-separated, default
//! "chosen;pooling=on;inlining=on;opt=size;epoch=off"; BENCH_PLUGINS, space-separated
//! `label=path.wasm`, default the Rust and Python counters; a plugin whose file name starts with
//! `dedupe` runs with `id_field: key, ttl_ms: "0"`).

#[path = "common/mod.rs"]
mod common;

use arkflow::config::EngineConfig;
use arkflow::processor::wasm::{cache, shared_engine, WasmFactory, WasmProcessorConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const CHILD: &str = "BENCH_WASMTIME_CHILD";

/// (label, path) of every plugin.
fn plugins() -> Vec<(String, PathBuf)> {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    match std::env::var("BENCH_PLUGINS") {
        Ok(list) => list
            .split_whitespace()
            .map(|p| {
                let (label, path) = p.split_once('=').expect("BENCH_PLUGINS items are label=path");
                (label.to_string(), PathBuf::from(path))
            })
            .collect(),
        Err(_) => vec![("rust".into(), dist.join("counter.wasm")), ("python".into(), dist.join("counter_python.wasm"))],
    }
}

fn config(plugin: &Path, label: &str) -> EngineConfig {
    let interpreted = ["python", "js"].iter().any(|l| label.contains(l));
    let records = common::env_u64("BENCH_RECORDS", 2_000_000) / if interpreted { 10 } else { 1 };
    let name = plugin.file_name().unwrap().to_string_lossy();
    let extra = if name.starts_with("dedupe") { r#", config: { id_field: key, ttl_ms: "0" }"# } else { "" };
    let yaml = format!(
        r#"
streams:
  - name: bench
    input: {{ type: generate, count: {records}, keys: 100000, payload_bytes: 16, seed: 1, batch_size: 1024 }}
    pipeline:
      thread_num: 1
      batch_size: 256
      processors:
        - {{ type: wasm, path: "{}", limits: {{ memory_mb: 512 }}{extra} }}
    output: {{ type: drop }}
    state: {{ operator_id: bench, enabled: true }}
"#,
        plugin.display()
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

/// One setting, in this process: prints `<label> <figure> <value>` lines.
fn child() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = plugins();
    let by = common::env_u64("BENCH_ROUND", 0) as usize % all.len().max(1);
    all.rotate_left(by);
    for (label, path) in all {
        let bytes = std::fs::read(&path).unwrap();
        let compiled = cache::load(shared_engine(), &bytes, Some(dir.path())).unwrap();
        println!("{label} compile_ms {:.1}", compiled.elapsed.as_secs_f64() * 1e3);
        cache::set_dir(Some(dir.path().to_path_buf()));
        let cfg = config(&path, &label);
        let w = cfg.streams[0].pipeline.processors[0].get::<WasmProcessorConfig>().expect("a wasm processor");
        let env = arkflow::processor::StreamEnv { store_names: vec!["default".into()], state_enabled: true, outputs: vec![], event_time: None };
        let factory = WasmFactory::load(w, "bench", 0, &env).unwrap();
        let mut inits: Vec<f64> = (0..20)
            .map(|_| {
                let start = Instant::now();
                factory.check_init().unwrap();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        println!("{label} instantiate_ms {:.3}", common::median(&mut inits));
        let cpu = common::cpu_secs();
        let (rate, report) = common::run_stream(&cfg);
        let cpu = common::cpu_secs() - cpu;
        assert_eq!(report.records_out, report.records_in);
        println!("{label} records_per_s {rate:.0}");
        println!("{label} records_per_cpu_s {:.0}", report.records_in as f64 / cpu);
    }
}

type Figures = BTreeMap<(usize, String, String), Vec<f64>>;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    for (_, p) in plugins() {
        assert!(p.exists(), "{} missing: build it first (plugins/build.sh, plugins/<lang>/build.sh)", p.display());
    }
    let settings: Vec<String> = std::env::var("BENCH_SETTINGS")
        .unwrap_or_else(|_| "chosen;pooling=on;inlining=on;opt=size;epoch=off".into())
        .split(';')
        .map(|s| s.trim().to_string())
        .collect();
    let rounds = common::env_u64("BENCH_ROUNDS", 3) as usize;
    let mut figures: Figures = BTreeMap::new();
    let me = std::env::current_exe().unwrap();
    for round in 0..rounds {
        for k in 0..settings.len() {
            let i = (k + round) % settings.len();
            let s = &settings[i];
            let spec = if s == "chosen" { "" } else { s.as_str() };
            let out = std::process::Command::new(&me).env(CHILD, "1").env("BENCH_ROUND", round.to_string()).env("ARKFLOW_WASMTIME", spec).output().unwrap();
            assert!(out.status.success(), "{s}: {}", String::from_utf8_lossy(&out.stderr));
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let [label, figure, value] = line.split_whitespace().collect::<Vec<_>>()[..] {
                    figures.entry((i, label.into(), figure.into())).or_default().push(value.parse().unwrap());
                }
            }
            println!("round {round}: {s} done");
        }
    }
    report(&settings, &figures);
}

fn ratios(a: &[f64], b: &[f64]) -> (f64, String) {
    let mut r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    let shown = r.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
    (common::median(&mut r), shown)
}

fn report(settings: &[String], figures: &Figures) {
    let get = |i: usize, label: &str, f: &str| figures.get(&(i, label.to_string(), f.to_string())).cloned().unwrap_or_default();
    println!(
        "{:<16} {:<14} {:>10} {:>14} {:>11} {:>9} {:>13} {:>9}  per-round CPU ratio",
        "setting", "plugin", "compile ms", "instantiate ms", "records/s", "ratio", "rec/CPU s", "ratio"
    );
    let labels: Vec<String> = plugins().into_iter().map(|(l, _)| l).collect();
    for label in &labels {
        for (i, s) in settings.iter().enumerate() {
            let (wall, cpu) = (get(i, label, "records_per_s"), get(i, label, "records_per_cpu_s"));
            let (wr, _) = ratios(&wall, &get(0, label, "records_per_s"));
            let (cr, shown) = ratios(&cpu, &get(0, label, "records_per_cpu_s"));
            println!(
                "{s:<16} {label:<14} {:>10.1} {:>14.3} {:>11.0} {wr:>9.3} {:>13.0} {cr:>9.3}  {shown}",
                common::median(&mut get(i, label, "compile_ms")),
                common::median(&mut get(i, label, "instantiate_ms")),
                common::median(&mut wall.clone()),
                common::median(&mut cpu.clone()),
            );
        }
    }
    for label in labels.iter().filter(|l| labels.contains(&format!("{l}-base"))) {
        for (i, s) in settings.iter().enumerate() {
            let base = format!("{label}-base");
            let (wr, ws) = ratios(&get(i, label, "records_per_s"), &get(i, &base, "records_per_s"));
            let (cr, cs) = ratios(&get(i, label, "records_per_cpu_s"), &get(i, &base, "records_per_cpu_s"));
            println!("{s:<16} {label} / {base}: wall {wr:.3} ({ws}), CPU {cr:.3} ({cs})");
        }
    }
}
