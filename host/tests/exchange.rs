//! In-process exchanges: a stream whose stages keep state by different keys runs a worker tier
//! per key, and each stage's state sees every record of its key whatever the input's order or
//! the first tier's key. Pipeline: the wasm counter keyed by `user` (emits `{"key": user,
//! "count": n}`), then the counter keyed by `count`, which counts how many users reached each
//! count: for count `c` its outputs must be exactly 1..M(c), in order, where M(c) is the number
//! of users with at least `c` records (computed here from the input, not by the host). Without
//! the exchange the second counter's state for `c` would be split over the first tier's key
//! groups and its counts would restart per group. Checked with 1, 2 and 4 workers, across a
//! SIGKILL loop, across restarts with another `thread_num` on the hybrid backend, and a restore
//! under another tier layout is refused.

mod common;
use common::kill::{env_or, kill_repeatedly, write_input};
use common::*;
use std::collections::HashMap;
use std::path::Path;

/// M(c) for every count c reached by some user.
fn users_reaching(per_user: &HashMap<String, i64>) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for n in per_user.values() {
        for c in 1..=*n {
            *m.entry(c.to_string()).or_insert(0) += 1;
        }
    }
    m
}

fn two_counters(c: &Path) -> String {
    format!(
        "        - {{ type: wasm, path: {c}, config: {{ key_field: user }}, key_by: user }}\n        - {{ type: wasm, path: {c}, config: {{ key_field: count }}, key_by: count }}\n",
        c = c.display()
    )
}

fn config(dir: &Dir, threads: usize, state_management: &str, input_extra: &str, processors: &str, output: &str) -> std::path::PathBuf {
    dir.config(&format!(
        "{state_management}streams:\n  - name: s\n    input: {{ type: file, path: {input}, batch_size: 97{input_extra} }}\n    pipeline:\n      thread_num: {threads}\n      processors:\n{processors}    output: {output}\n    state: {{ operator_id: two-keys, enabled: true }}\n",
        input = dir.path("in.jsonl").display(),
    ))
}

/// Each count key's outputs are exactly 1..M(c), in order.
fn check(lines: &[serde_json::Value], expected: &HashMap<String, i64>, what: &str) {
    let got = counts_by_key(lines);
    assert_eq!(got.len(), expected.len(), "{what}: every count reached is counted");
    for (c, counts) in got {
        assert_eq!(counts, (1..=expected[&c]).collect::<Vec<i64>>(), "{what}: count {c} is reached by {} users", expected[&c]);
    }
}

#[test]
fn two_stages_keyed_differently_count_exactly_with_1_2_and_4_threads() {
    for threads in [1, 2, 4] {
        let dir = Dir::new();
        let expected = users_reaching(&write_input(&dir.path("in.jsonl"), 6_000, 60));
        let out = format!("{{ type: file, path: {} }}", dir.path("out.jsonl").display());
        let cfg = config(&dir, threads, "", "", &two_counters(&plugin("counter")), &out);
        let v = run(&cfg, &["--validate"]);
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(v.status.success(), "{text}{}", stderr(&v));
        assert!(
            text.contains(&format!("[counter@0.1.0] on {threads} worker(s), one batch per key group, routed to key groups by fields user -> exchange -> [counter@0.1.0] on {threads} worker(s), one batch per key group, routed to key groups by fields count -> output file")),
            "{text}"
        );
        let o = run(&cfg, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        check(&json_lines(&dir.path("out.jsonl")), &expected, &format!("thread_num {threads}"));
    }
}

/// SIGKILLed at random moments while records flow through both tiers, then run to the end:
/// the exactly-once parts hold every record's effect once and the second tier's counts exact,
/// so barriers aligned over the exchange made each checkpoint one cut of both tiers' state.
#[test]
fn a_kill_loop_over_an_exchange_stays_exactly_once() {
    let n = env_or("ARKFLOW_EXCHANGE_RECORDS", 120_000);
    let kills = env_or("ARKFLOW_EXCHANGE_KILLS", 20);
    let dir = Dir::new();
    let expected = users_reaching(&write_input(&dir.path("in.jsonl"), n, 500));
    let sm = format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\n",
        dir.path("state").display()
    );
    let out_dir = dir.path("out");
    let out = format!("{{ type: file, path: {} }}", out_dir.join("out.jsonl").display());
    let cfg = config(&dir, 2, &sm, ", rate_per_sec: 8000", &two_counters(&plugin("counter")), &out);
    let killed = kill_repeatedly(&cfg, kills, (150, 600));
    let (before, _) = read_parts(&out_dir);
    let o = run(&cfg, &[]);
    assert!(o.status.success(), "final run: {}", stderr(&o));
    let (lines, parts) = read_parts(&out_dir);
    eprintln!("exchange kill loop: {killed} kills, {} records finalized before the final run, {parts} parts", before.len());
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    assert!(!before.is_empty(), "kills landed after decided checkpoints");
    assert_eq!(lines.len() as u64, n, "every input record's effect exactly once");
    check(&lines, &expected, "after the kill loop");
}

/// The state of a two-tier stream is refused by the same stream without the exchange (its
/// second stage's state would sit in key groups no record reaches), and restored by itself.
#[test]
fn adding_or_removing_an_exchange_between_runs_is_refused() {
    let dir = Dir::new();
    write_input(&dir.path("in.jsonl"), 300, 10);
    let sm = format!("state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n", dir.path("state").display());
    let out = format!("{{ type: file, path: {} }}", dir.path("out.jsonl").display());
    let first = run(&config(&dir, 2, &sm, "", &two_counters(&plugin("counter")), &out), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let one_key = format!("        - {{ type: wasm, path: {}, config: {{ key_field: user }}, key_by: user }}\n", plugin("counter").display());
    let changed = run(&config(&dir, 2, &sm, "", &one_key, &out), &[]);
    let err = stderr(&changed);
    assert!(!changed.status.success(), "restored under another tier layout");
    assert!(err.contains("routed to key groups by fields user, exchange before stage 1 by fields count; this stream routes them by fields user, so"), "{err}");
    let again = run(&config(&dir, 2, &sm, "", &two_counters(&plugin("counter")), &out), &[]);
    assert!(again.status.success(), "the same layout restores: {}", stderr(&again));
}

/// Both tiers' state on the hybrid backend (a 1 KiB cache: key groups of both tiers are evicted
/// and read back from moto), SIGKILLed under `thread_num: 2`, then under 4, then run to the end
/// with 1: each restart maps every tier's key groups to the new workers, and the counts stay
/// exact with every record's effect once.
#[test]
fn restarts_with_another_thread_num_on_the_hybrid_backend_keep_both_tiers_exact() {
    let moto = common::s3::Moto::start();
    let n = 40_000;
    let dir = Dir::new();
    let expected = users_reaching(&write_input(&dir.path("in.jsonl"), n, 300));
    let sm = format!(
        "state_management:\n  enabled: true\n  backend_type: hybrid\n  checkpoint_interval_ms: 100\n  exactly_once: true\n{}  hybrid_config: {{ cache_kb: 1 }}\n",
        moto.target.yaml_block(2, "exchange/")
    );
    let out_dir = dir.path("out");
    let out = format!("{{ type: file, path: {} }}", out_dir.join("out.jsonl").display());
    for threads in [2, 4] {
        let cfg = config(&dir, threads, &sm, ", rate_per_sec: 8000", &two_counters(&plugin("counter")), &out);
        let parts = || if out_dir.exists() { read_parts(&out_dir).1 } else { 0 };
        let had = parts();
        let mut child = spawn(&cfg);
        // Killed once this run has finalized an epoch of its own.
        let progressed = wait_for(std::time::Duration::from_secs(30), || parts() > had);
        assert!(progressed && child.try_wait().unwrap().is_none(), "thread_num {threads}: no epoch finalized, or the run ended before its kill");
        signal(&child, "KILL");
        let _ = child.wait();
    }
    let (before, _) = read_parts(&out_dir);
    assert!(!before.is_empty() && (before.len() as u64) < n, "the killed runs finalized part of the output ({})", before.len());
    let o = run(&config(&dir, 1, &sm, "", &two_counters(&plugin("counter")), &out), &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "final run: {err}");
    let line = err.lines().find(|l| l.contains("hybrid_loads=")).expect("checkpoint report");
    let loads: u64 = line.split("hybrid_loads=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(loads > 0, "key groups were read back from the store: {line}");
    let (lines, _) = read_parts(&out_dir);
    assert_eq!(lines.len() as u64, n, "every input record's effect exactly once");
    check(&lines, &expected, "after restarts with 2, 4 and 1 workers");
}
