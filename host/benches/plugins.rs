//! Bench binary: the `counter` plugin in every guest language, and live swaps.
//!
//! 1. Per language with a built `plugins/dist/counter_<lang>.wasm` (Rust is `counter.wasm`):
//!    compile time without the cache, load time from the compiled-artifact cache, instantiate +
//!    `init` time, and throughput of generate -> counter -> drop (1 worker, 10,000 keys),
//!    languages interleaved per round so all see the same machine load; ratio to Rust.
//! 2. Swap pause: a checkpointing stream (100 ms) running the Rust counter is swapped between v1
//!    and v2 `BENCH_SWAPS` times through the swap slot (what the watcher and the control endpoint
//!    call); each swap's longest worker stall (`arkflow_plugin_swap_pause_us`) is reported.
//!
//! Run: `bash plugins/build.sh && bash plugins/<lang>/build.sh ... && cargo bench --bench plugins`
//! (env: BENCH_RECORDS, default 200,000 per run; BENCH_ROUNDS, default 3; BENCH_SWAPS, default 10, 0 skips the swaps;
//! BENCH_LANGS, default "rust python js c go zig").

#[path = "common/mod.rs"]
mod common;

use arkflow::config::EngineConfig;
use arkflow::processor::wasm::{cache, shared_engine, WasmFactory};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(file)
}

fn counter_config(plugin: &Path, records: u64) -> EngineConfig {
    let yaml = format!(
        r#"
streams:
  - name: bench
    input: {{ type: generate, count: {records}, keys: 10000, payload_bytes: 16, seed: 1, batch_size: 1024 }}
    pipeline:
      thread_num: 1
      batch_size: 256
      processors:
        - {{ type: wasm, path: "{}", limits: {{ memory_mb: 512 }} }}
    output: {{ type: drop }}
    state: {{ operator_id: bench, enabled: true }}
"#,
        plugin.display()
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (compile ms, cached load ms, instantiate + init ms).
fn load_times(plugin: &Path) -> (f64, f64, f64) {
    let bytes = std::fs::read(plugin).unwrap();
    let engine = shared_engine();
    let compiled = cache::load(engine, &bytes, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    cache::load(engine, &bytes, Some(dir.path())).unwrap();
    let hit = cache::load(engine, &bytes, Some(dir.path())).unwrap();
    assert_eq!(hit.outcome, cache::CacheOutcome::Hit);
    let cfg = counter_config(plugin, 1);
    let w = cfg.streams[0].pipeline.processors[0].get::<arkflow::processor::wasm::WasmProcessorConfig>().expect("a wasm processor");
    cache::set_dir(Some(dir.path().to_path_buf()));
    let factory = WasmFactory::load(
        w,
        "bench",
        0,
        &arkflow::processor::StreamEnv { store_names: vec!["default".to_string()], state_enabled: true, outputs: vec![], event_time: None },
    )
    .unwrap();
    let start = Instant::now();
    factory.check_init().unwrap();
    let init = start.elapsed();
    cache::set_dir(None);
    (ms(compiled.elapsed), ms(hit.elapsed), ms(init))
}

fn languages() {
    let records = common::env_u64("BENCH_RECORDS", 200_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 3) as usize;
    let wanted = std::env::var("BENCH_LANGS").unwrap_or_else(|_| "rust python js c go zig".into());
    let langs: Vec<(String, PathBuf)> = wanted
        .split_whitespace()
        .map(|l| (l.to_string(), dist(if l == "rust" { "counter.wasm".into() } else { format!("counter_{l}.wasm") }.as_str())))
        .filter(|(l, p)| {
            let ok = p.exists();
            if !ok {
                println!("{l}: {} not built (bash plugins/{l}/build.sh); skipped", p.display());
            }
            ok
        })
        .collect();
    println!("language   .wasm KB  compile ms  cached load ms  instantiate+init ms");
    for (l, p) in &langs {
        let (c, h, i) = load_times(p);
        println!("{l:<10} {:>8.0}  {c:>10.1}  {h:>14.1}  {i:>19.2}", std::fs::metadata(p).unwrap().len() as f64 / 1024.0);
    }
    let cfgs: Vec<EngineConfig> = langs.iter().map(|(_, p)| counter_config(p, records)).collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); langs.len()];
    let mut keys: Vec<u64> = vec![0; langs.len()];
    for round in 0..rounds {
        let mut line = format!("round {round}:");
        for (i, cfg) in cfgs.iter().enumerate() {
            let (r, report) = common::run_stream(cfg);
            assert_eq!(report.records_out, report.records_in, "{}: one output per record", langs[i].0);
            keys[i] = report.state_entries;
            rates[i].push(r);
            line += &format!("  {} {r:.0}", langs[i].0);
        }
        println!("{line} rec/s");
    }
    assert!(keys.iter().all(|k| *k == keys[0]), "every language must hold the same keys: {keys:?}");
    let medians: Vec<f64> = rates.iter_mut().map(|v| common::median(v)).collect();
    let rust = langs.iter().position(|(l, _)| l == "rust").map(|i| medians[i]);
    for (i, (l, _)) in langs.iter().enumerate() {
        let ratio = rust.map(|r| format!("{:.3}", medians[i] / r)).unwrap_or_else(|| "-".into());
        println!("median {l:<10} {:>10.0} rec/s   ratio to Rust {ratio}", medians[i]);
    }
    println!("({records} records/run, 10000 keys, 1 worker, batch 256)");
}

fn swaps() {
    let n = common::env_u64("BENCH_SWAPS", 10);
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("plugin.wasm");
    let versions = [dist("counter.wasm"), dist("counter_v2.wasm")];
    std::fs::copy(&versions[0], &live).unwrap();
    let yaml = format!(
        r#"
state_management: {{ enabled: true, backend_type: memory, checkpoint_interval_ms: 100 }}
streams:
  - name: bench
    input: {{ type: generate, keys: 10000, payload_bytes: 16, seed: 1, batch_size: 1024, rate_per_sec: 200000 }}
    pipeline:
      thread_num: 2
      processors:
        - {{ type: wasm, path: "{}" }}
    output: {{ type: drop }}
    state: {{ operator_id: bench, enabled: true }}
"#,
        live.display()
    );
    let cfg = EngineConfig::from_yaml_str(&yaml, None).unwrap();
    let stream = arkflow::engine::build_stream(&cfg, &cfg.streams[0]).unwrap();
    let shared = stream.shared().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || stream.run(stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    let slot = shared.pipeline.swap_slot(0).expect("wasm processor registered");
    let mut pauses = Vec::new();
    for i in 1..=n {
        let tmp = live.with_extension("incoming");
        std::fs::copy(&versions[i as usize % 2], &tmp).unwrap();
        std::fs::rename(&tmp, &live).unwrap();
        let checked = Instant::now();
        slot.reload().expect("reload");
        let check_ms = ms(checked.elapsed());
        let start = Instant::now();
        while shared.pipeline.plugin_swaps.load(SeqCst) < i || shared.pipeline.plugin_swap_pause_us.load(SeqCst) == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "swap {i} never took effect");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(150)); // both workers pass the barrier
        let pause = shared.pipeline.plugin_swap_pause_us.load(SeqCst) as f64 / 1000.0;
        println!("swap {i}: checks off the data path {check_ms:.1} ms, longest worker stall {pause:.2} ms");
        pauses.push(pause);
    }
    stop.store(true, SeqCst);
    let report = runner.join().unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    let max = pauses.iter().cloned().fold(0.0, f64::max);
    println!(
        "swap pause: median {:.2} ms, max {max:.2} ms over {n} swaps (target <= 50 ms); {} records processed",
        common::median(&mut pauses),
        report.records_in
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    languages();
    if common::env_u64("BENCH_SWAPS", 10) > 0 {
        swaps();
    }
}
