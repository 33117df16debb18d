//! Bench binary: typed fields decoded by the host (`arkflow:plugin/fields`) against the same
//! plugin parsing each JSON value itself, side by side in one run.
//!
//! 1. Per language with a built counter (`plugins/dist/counter.wasm`, `counter_<lang>.wasm`):
//!    file of unkeyed JSON lines `{"id","user","name"}` → counter keyed by the `user` field →
//!    drop, with config `read: json` (the guest parses) and `read: fields` (the host's typed
//!    column), the two alternating in every round; the ratio fields / json per language.
//! 2. `sensor_stats` (Rust): file of `{"timestamp","value","sensor"}` lines → per-sensor count,
//!    sum, min, max → drop, reading two fields (a string and a number) both ways.
//!
//! Run: `bash plugins/build.sh && bash plugins/build-guests.sh && cargo bench --bench fields`
//! (env: BENCH_RECORDS, default 200,000 per run; BENCH_ROUNDS, default 3; BENCH_LANGS, default
//! "rust c zig go python js"; BENCH_KEYS, default 10,000).

#[path = "common/mod.rs"]
mod common;

use arkflow::config::EngineConfig;
use std::path::{Path, PathBuf};

fn dist(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist").join(file)
}

fn config(input: &Path, key_by: &str, plugin: &Path, config: &str) -> EngineConfig {
    let yaml = format!(
        r#"
streams:
  - name: bench
    input: {{ type: file, path: "{}" }}
    key_by: {key_by}
    pipeline:
      thread_num: 1
      batch_size: 256
      processors:
        - {{ type: wasm, path: "{}", config: {config}, limits: {{ memory_mb: 512 }} }}
    output: {{ type: drop }}
    state: {{ operator_id: bench, enabled: true }}
"#,
        input.display(),
        plugin.display()
    );
    EngineConfig::from_yaml_str(&yaml, None).expect("bench config")
}

/// Runs `json` and `fields` configs alternately for `rounds`; (median rec/s of each, median ratio).
fn side_by_side(what: &str, rounds: u64, json: &EngineConfig, fields: &EngineConfig) -> (f64, f64, f64) {
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let run = |cfg: &EngineConfig| {
            let (rate, report) = common::run_stream(cfg);
            assert_eq!(report.records_failed, 0, "{what}: no record may fail");
            (rate, report.records_out)
        };
        let ((j, jn), (f, fnum)) = common::alternate(round, || run(json), || run(fields));
        assert_eq!(jn, fnum, "{what}: both ways emit the same records");
        println!("{what} round {round}: json {j:.0}  fields {f:.0} rec/s  ratio {:.2}", f / j);
        a.push(j);
        b.push(f);
        ratios.push(f / j);
    }
    (common::median(&mut a), common::median(&mut b), common::median(&mut ratios))
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let records = common::env_u64("BENCH_RECORDS", 200_000);
    let rounds = common::env_u64("BENCH_ROUNDS", 3);
    let keys = common::env_u64("BENCH_KEYS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    common::write_lines(&users, records, |i| format!(r#"{{"id":{i},"user":"u{}","name":"name {i}"}}"#, i.wrapping_mul(2_654_435_761) % keys));
    let sensors = dir.path().join("sensors.json");
    common::write_lines(&sensors, records, |i| {
        format!(r#"{{"timestamp":{},"value":{}.{},"sensor":"temp_{}"}}"#, 1_625_000_000_000 + i, i % 97, i % 10, i % 100)
    });

    let wanted = std::env::var("BENCH_LANGS").unwrap_or_else(|_| "rust c zig go python js".into());
    let mut table = Vec::new();
    for lang in wanted.split_whitespace() {
        let p = dist(&if lang == "rust" { "counter.wasm".to_string() } else { format!("counter_{lang}.wasm") });
        if !p.exists() {
            println!("{lang}: {} not built; skipped", p.display());
            continue;
        }
        let json = config(&users, "user", &p, "{ key_field: user, read: json }");
        let fields = config(&users, "user", &p, "{ key_field: user, read: fields }");
        table.push((format!("counter {lang}"), side_by_side(lang, rounds, &json, &fields)));
    }
    let p = dist("sensor_stats.wasm");
    if p.exists() {
        let json = config(&sensors, "sensor", &p, "{ read: json }");
        let fields = config(&sensors, "sensor", &p, "{ read: fields }");
        table.push(("sensor_stats rust".into(), side_by_side("sensor_stats", rounds, &json, &fields)));
    }
    println!("\n| plugin | read: json rec/s | read: fields rec/s | fields / json (median of rounds) |\n|---|---|---|---|");
    for (name, (j, f, r)) in table {
        println!("| {name} | {j:.0} | {f:.0} | {r:.2} |");
    }
    println!("({records} records/run, {keys} keys, 1 worker, batch 256, {rounds} rounds)");
}
