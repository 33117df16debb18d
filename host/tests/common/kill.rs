//! The kill loop shared by the crash tests of every backend: the real binary is SIGKILLed at
//! random moments while a throttled file input flows through the wasm counter into the
//! exactly-once file output, and restarted each time; then every input record's effect must
//! appear exactly once in the finalized parts and each key's final count must equal its number
//! of input records. Size: ARKFLOW_CRASH_RECORDS (default 1,000,000), ARKFLOW_CRASH_KILLS (30).
//! `kill_and_check` is the loop itself, for any input (the Kafka tests use it too).

use super::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Writes `n` JSON lines with `keys` distinct users; returns each user's record count.
pub fn write_input(path: &Path, n: u64, keys: u64) -> HashMap<String, i64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut counts = HashMap::new();
    for id in 0..n {
        let user = generated_key(77, keys, id);
        writeln!(f, "{{\"id\":{id},\"user\":\"{user}\"}}").unwrap();
        *counts.entry(user).or_default() += 1;
    }
    f.flush().unwrap();
    counts
}

/// Runs the kill loop with the given `state_management` block (indented YAML lines).
pub fn kill_loop(dir: &Dir, state_management: &str) {
    let n = env_or("ARKFLOW_CRASH_RECORDS", 1_000_000);
    let kills = env_or("ARKFLOW_CRASH_KILLS", 30);
    let keys = 10_000;
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, n, keys);
    let out_dir = dir.path("out");
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  checkpoint_interval_ms: 200
  exactly_once: true
{state_management}
streams:
  - name: crash
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 40000 }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: file, path: {out} }}
    state: {{ operator_id: crash-counter, enabled: true }}
"#,
        input = input.display(),
        counter = plugin("counter").display(),
        out = out_dir.join("out.jsonl").display()
    ));
    kill_and_check(&cfg, &out_dir, &expected, n, kills, (50, 700));
}

/// SIGKILLs the stream of `cfg` (wasm counter -> exactly-once file output in `out_dir`) at random
/// moments `kills` times, restarting it each time, then runs it to completion and checks that the
/// `n` input records' effects appear exactly once and each key's counts are 1..=expected. Each
/// run lives a random time in `window_ms` (min, max) before its kill.
pub fn kill_and_check(cfg: &Path, out_dir: &Path, expected: &HashMap<String, i64>, n: u64, kills: u64, window_ms: (u64, u64)) {
    let killed = kill_repeatedly(cfg, kills, window_ms);
    let (before, parts_before) = read_parts(out_dir);
    eprintln!("kill loop: before the final run, {parts_before} parts with {} records were finalized", before.len());
    // A final run to completion.
    let out = run(cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    let (lines, parts) = read_parts(out_dir);
    eprintln!("kill loop: {killed} kills, {parts} parts, {} output records", lines.len());
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    assert!(parts_before > 0 && !before.is_empty(), "kills landed after decided checkpoints");
    assert_eq!(lines.len() as u64, n, "every input record's effect exactly once");
    let got = counts_by_key(&lines.iter().map(|l| serde_json::json!({"key": l["key"], "count": l["count"]})).collect::<Vec<_>>());
    assert_eq!(got.len(), expected.len());
    for (k, counts) in got {
        let n = expected[&k];
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=n).collect::<Vec<_>>(), "key {k}: each count exactly once");
        assert_eq!(counts, sorted, "key {k}: counts in order across parts");
    }
    let stale: Vec<_> = std::fs::read_dir(out_dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(stale.is_empty(), "no temp files left after a clean end: {stale:?}");
}

/// Starts the stream of `cfg` and SIGKILLs it after a random time in `window_ms`, `kills` times
/// (fewer when runs keep finishing before their kill: the input is consumed); returns the kills.
pub fn kill_repeatedly(cfg: &Path, kills: u64, window_ms: (u64, u64)) -> u64 {
    kill_runs(cfg, kills, window_ms).0
}

/// [`kill_repeatedly`], also returning what each run printed on stdout, in run order (both pipes
/// are drained while a run lives, so a chatty run never blocks on a full pipe).
pub fn kill_runs(cfg: &Path, kills: u64, window_ms: (u64, u64)) -> (u64, Vec<String>) {
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill loop: {kills} kills, seed {seed}");
    let mut rand = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let (mut killed, mut finished_early, mut printed) = (0, 0, Vec::new());
    while killed < kills {
        let mut child = spawn(cfg);
        let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
        let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
        let wait = Duration::from_millis(window_ms.0 + rand() % (window_ms.1 - window_ms.0));
        let start = Instant::now();
        while start.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let ended = child.try_wait().unwrap();
        if ended.is_none() {
            signal(&child, "KILL");
            killed += 1;
        }
        let status = child.wait().unwrap();
        printed.push(out.join().unwrap());
        let log = err.join().unwrap();
        if ended.is_some() {
            assert!(status.success(), "run failed: {log}");
            finished_early += 1;
            // The input was consumed before the kill came: start over with a fresh output and
            // state would hide nothing, so just count it; later kills land on restart paths.
            if finished_early > 3 {
                break;
            }
        }
    }
    (killed, printed)
}
