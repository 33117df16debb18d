//! Bench binary: the cost of checkpoints.
//!
//! State is preloaded with K keys (a decided checkpoint written straight into a `local` store),
//! then `generate` -> wasm `counter` -> `drop` runs over a hot set of 10,000 of those keys (1 % of
//! 1,000,000: the churn per interval), 1 worker, with checkpoints every second ("on") or never
//! during the run ("off": same restore, no periodic checkpoint). Runs are paired per round in
//! alternating order (on/off, then off/on, ...) and the ratio is the median of the per-round
//! ratios, which cancels the machine's slow drifts. Also reports the process CPU time per record
//! (all threads: input, worker, output, checkpoint I/O) of each variant: the checkpoint's CPU cost,
//! which unlike wall-clock throughput does not depend on how busy the shared machine is.
//! And checkpoint bytes/duration for each K.
//!
//! Run: `bash plugins/build.sh && cargo bench --bench checkpoint`
//! (env: BENCH_KEYS="100000,1000000,5000000", BENCH_RECORDS per run (default 4,000,000), BENCH_ROUNDS (2)).

#[path = "common/mod.rs"]
mod common;

use arkflow::checkpoint::{Decision, Manifest, StateFile};
use arkflow::config::EngineConfig;
use arkflow::engine::{self, Router};
use arkflow::state::backend::{LocalStore, ObjectStore};
use arkflow::state::snapshot::{self, SnapshotEntry};
use bytes::Bytes;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

const SCOPE: &str = "bench";

/// Writes a decided checkpoint holding `keys` counters into a local store at `dir`.
fn preload(dir: &Path, keys: u64) {
    let store = LocalStore::new(dir).unwrap();
    let router = Router::new(128, 1, arkflow::engine::Routing::RecordKey);
    let now = arkflow::util::time::now_ms();
    let entries: Vec<SnapshotEntry> = (0..keys)
        .map(|k| {
            let key = format!("k{k}").into_bytes();
            SnapshotEntry { group: router.group_of(&key), store: "default".into(), key, value: Some(1i64.to_le_bytes().to_vec()), written_ms: now }
        })
        .collect();
    let bytes = snapshot::encode(1, &entries);
    let fkey = format!("{SCOPE}/data/{:020}/base.snap", 1);
    let file = StateFile { key: fkey.clone(), epoch: 1, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: keys };
    let manifest = Manifest {
        version: arkflow::checkpoint::MANIFEST_VERSION,
        operator_id: SCOPE.into(),
        stream: "bench".into(),
        epoch: 1,
        parent: None,
        generation: 1,
        key_groups: 128,
        routing: None,
        input_position: serde_json::json!({"next_id": 0}),
        state_files: vec![file],
        sinks: vec![],
        ttl_clock_ms: now,
        created_ms: now,
        event_time: None,
    };
    let mbytes = manifest.encode();
    let decision =
        Decision::Commit { epoch: 1, manifest: arkflow::checkpoint::manifest_key(SCOPE, 1, 1), checksum: snapshot::checksum_of(&mbytes), generation: 1 };
    arkflow::checkpoint::block_on(async {
        store.put_if_absent(&fkey, Bytes::from(bytes)).await.unwrap();
        store.put_if_absent(&arkflow::checkpoint::manifest_key(SCOPE, 1, 1), Bytes::from(mbytes)).await.unwrap();
        store.put_if_absent(&format!("{SCOPE}/commits/{:020}", 1), decision.encode()).await.unwrap();
    });
}

fn config(state_dir: &Path, interval_ms: u64, records: u64) -> EngineConfig {
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/counter.wasm");
    assert!(plugin.exists(), "{} missing: run `bash plugins/build.sh` first", plugin.display());
    let yaml = format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: {state} }}
  checkpoint_interval_ms: {interval_ms}
  exactly_once: true
streams:
  - name: bench
    input: {{ type: generate, count: {records}, keys: 10000, seed: 3 }}
    pipeline:
      thread_num: 1
      processors:
        - {{ type: wasm, path: {plugin} }}
    output: {{ type: drop }}
    state: {{ operator_id: {SCOPE}, enabled: true }}
"#,
        state = state_dir.display(),
        plugin = plugin.display()
    );
    EngineConfig::from_yaml_str(&yaml, None).unwrap()
}

struct Run {
    rate: f64,
    /// CPU microseconds per record, whole process.
    cpu_us: f64,
    report: arkflow::engine::StreamReport,
}

fn run(template: &Path, interval_ms: u64, records: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp").arg("-a").arg(template).arg(dir.path().join("s")).status().unwrap();
    assert!(status.success());
    let cfg = config(&dir.path().join("s"), interval_ms, records);
    let stream = engine::build_stream(&cfg, &cfg.streams[0]).expect("build");
    let (start, (u0, s0)) = (Instant::now(), common::cpu_user_sys());
    let report = stream.run(Arc::new(AtomicBool::new(false)));
    let secs = start.elapsed().as_secs_f64();
    let (u1, s1) = common::cpu_user_sys();
    let cpu_us = (u1 - u0 + s1 - s0) * 1e6 / report.records_in as f64;
    eprintln!("  interval {interval_ms} ms: user {:.2} s, system {:.2} s, wall {secs:.2} s", u1 - u0, s1 - s0);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    Run { rate: report.records_in as f64 / secs, cpu_us, report }
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let keys: Vec<u64> =
        std::env::var("BENCH_KEYS").unwrap_or_else(|_| "100000,1000000,5000000".into()).split(',').map(|k| k.trim().parse().unwrap()).collect();
    let records: u64 = std::env::var("BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(4_000_000);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    println!("| state keys | on: rec/s | off: rec/s | on/off (median of rounds) | CPU us/rec on | off | CPU on/off | checkpoints | bytes/checkpoint | ms/checkpoint | restore ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for k in keys {
        let template = tempfile::tempdir().unwrap();
        preload(template.path(), k);
        let (mut on, mut off, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cpu_on, mut cpu_off, mut cpu_ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = None;
        if let Ok(only) = std::env::var("BENCH_ONLY") {
            // For profiling one variant: BENCH_ONLY=on|off.
            let r = run(template.path(), if only == "on" { 1000 } else { 3_600_000 }, records);
            println!("{only}: {:.0} rec/s, {:.3} CPU us/rec", r.rate, r.cpu_us);
            continue;
        }
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = run(template.path(), 1000, records);
                (a, run(template.path(), 3_600_000, records))
            } else {
                let b = run(template.path(), 3_600_000, records);
                (run(template.path(), 1000, records), b)
            };
            eprintln!("keys {k} round {round}: on {:.0} rec/s {:.3} us/rec, off {:.0} rec/s {:.3} us/rec", a.rate, a.cpu_us, b.rate, b.cpu_us);
            ratios.push(a.rate / b.rate);
            cpu_ratios.push(a.cpu_us / b.cpu_us);
            on.push(a.rate);
            off.push(b.rate);
            cpu_on.push(a.cpu_us);
            cpu_off.push(b.cpu_us);
            last = Some(a.report);
        }
        let (mon, moff) = (common::median(&mut on), common::median(&mut off));
        let r = last.unwrap();
        let c = r.checkpoints.unwrap();
        println!(
            "| {k} | {mon:.0} | {moff:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {} |",
            common::median(&mut ratios),
            common::median(&mut cpu_on),
            common::median(&mut cpu_off),
            common::median(&mut cpu_ratios),
            c.decided,
            c.last_bytes,
            c.last_duration_ms,
            c.restore_ms
        );
    }
}
