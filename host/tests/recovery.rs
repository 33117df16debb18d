//! Recovery with the `local` backend: a restart resumes exactly after the last decided
//! checkpoint, state TTL holds across restarts, and corrupted checkpoint objects are refused
//! with an error naming the object.

mod common;
use common::*;
use std::path::Path;

fn config(dir: &Dir, ttl: Option<u64>) -> std::path::PathBuf {
    let ttl = ttl.map(|t| format!("  state_timeout_ms: {t}\n")).unwrap_or_default();
    dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {state} }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\n{ttl}streams:\n  - name: r\n    input: {{ type: file, path: {input}, key_field: user }}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {counter} }}\n    output: {{ type: file, path: {out} }}\n    state: {{ operator_id: rec, enabled: true }}\n",
        state = dir.path("state").display(),
        input = dir.path("in.jsonl").display(),
        counter = plugin("counter").display(),
        out = dir.path("out/o.jsonl").display()
    ))
}

fn all_parts(dir: &Path) -> Vec<serde_json::Value> {
    read_parts(dir).0
}

#[test]
fn a_restart_resumes_after_the_last_decided_checkpoint() {
    let dir = Dir::new();
    let cfg = config(&dir, None);
    append_users(&dir.path("in.jsonl"), 0, 3000, 3);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(all_parts(&dir.path("out")).len(), 3000);
    // New lines appended; the second run reads only them and continues the counts.
    append_users(&dir.path("in.jsonl"), 3000, 3300, 3);
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored from the last decided checkpoint"), "{err}");
    let lines = all_parts(&dir.path("out"));
    assert_eq!(lines.len(), 3300);
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (1..=1100).collect::<Vec<i64>>(), "key {k}");
    }
}

#[test]
fn state_ttl_counts_stream_time_not_downtime() {
    let dir = Dir::new();
    let cfg = config(&dir, Some(1500));
    append_users(&dir.path("in.jsonl"), 0, 30, 3);
    assert!(run(&cfg, &[]).status.success());
    // Within the TTL: counts continue.
    append_users(&dir.path("in.jsonl"), 30, 33, 3);
    assert!(run(&cfg, &[]).status.success());
    let lines = all_parts(&dir.path("out"));
    assert_eq!(lines[30..].iter().map(|l| l["count"].as_i64().unwrap()).collect::<Vec<_>>(), [11, 11, 11]);
    // Longer than the TTL with no process running: the TTL clock (stream time, saved in the
    // checkpoint) did not move, so the values are still live (a replay sees what the first run saw).
    std::thread::sleep(std::time::Duration::from_millis(1700));
    append_users(&dir.path("in.jsonl"), 33, 36, 3);
    assert!(run(&cfg, &[]).status.success());
    let lines = all_parts(&dir.path("out"));
    assert_eq!(lines[33..].iter().map(|l| l["count"].as_i64().unwrap()).collect::<Vec<_>>(), [12, 12, 12]);
}

fn files_under(dir: &Path, part: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(part) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_corrupted_state_file_is_refused_naming_it() {
    let dir = Dir::new();
    let cfg = config(&dir, None);
    append_users(&dir.path("in.jsonl"), 0, 5000, 50);
    assert!(run(&cfg, &[]).status.success());
    let snaps = files_under(&dir.path("state"), ".snap");
    assert!(!snaps.is_empty());
    let victim = &snaps[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    let out = run(&cfg, &[]);
    assert!(!out.status.success(), "a corrupted checkpoint must not be restored");
    let err = stderr(&out);
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("checksum"), "{err}");
}

#[test]
fn a_truncated_manifest_is_refused_naming_it() {
    let dir = Dir::new();
    let cfg = config(&dir, None);
    append_users(&dir.path("in.jsonl"), 0, 2000, 5);
    assert!(run(&cfg, &[]).status.success());
    let manifests = files_under(&dir.path("state"), "/manifests/");
    let last = manifests.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&cfg, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let name = last.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.contains(&name) && err.contains("checksum"), "{err}");
}

#[test]
fn gc_keeps_the_retained_checkpoints_restorable_and_deletes_the_rest() {
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {state} }}\n  checkpoint_interval_ms: 20\n  retained_checkpoints: 2\n  gc_grace_ms: 0\n  exactly_once: true\nstreams:\n  - name: gc\n    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 20000 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {counter} }}\n    output: {{ type: file, path: {out} }}\n    state: {{ operator_id: gc, enabled: true }}\n",
        state = dir.path("state").display(),
        input = dir.path("in.jsonl").display(),
        counter = plugin("counter").display(),
        out = dir.path("out/o.jsonl").display()
    ));
    append_users(&dir.path("in.jsonl"), 0, 40_000, 500);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let decided = files_under(&dir.path("state/gc/commits"), "/");
    let manifests = files_under(&dir.path("state/gc/manifests"), "/");
    let parts = std::fs::read_dir(dir.path("out")).unwrap().count();
    assert!(parts > 30, "many checkpoints were taken: {parts}");
    // GC runs after each decision, in the background: allow the last one to lag.
    assert!(manifests.len() <= 4, "old manifests deleted: {manifests:?}");
    assert!(decided.len() <= 6, "old decisions deleted (the start's fence stays): {decided:?}");
    let snaps = files_under(&dir.path("state/gc/data"), ".snap");
    assert!(snaps.len() < parts, "state files no retained checkpoint reaches are deleted ({} files, {parts} epochs)", snaps.len());
    assert!(snaps.iter().any(|p| p.to_string_lossy().contains("base")), "the chain was compacted into a base: {snaps:?}");
    // What is left restores exactly.
    append_users(&dir.path("in.jsonl"), 40_000, 40_500, 500);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = all_parts(&dir.path("out"));
    assert_eq!(lines.len(), 40_500);
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (1..=81).collect::<Vec<i64>>(), "key {k}");
    }
}

#[test]
fn a_zombie_can_never_decide_after_a_newer_generation_started() {
    // Process A runs (throttled); process B starts on the same state: B fences the next epoch, so
    // A's next decision finds it taken and A stops with an error, while B finishes the input.
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {state} }}\n  checkpoint_interval_ms: 100\n  exactly_once: true\nstreams:\n  - name: z\n    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 5000 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {counter} }}\n    output: {{ type: file, path: {out} }}\n    state: {{ operator_id: zombie, enabled: true }}\n",
        state = dir.path("state").display(),
        input = dir.path("in.jsonl").display(),
        counter = plugin("counter").display(),
        out = dir.path("out/o.jsonl").display()
    ));
    append_users(&dir.path("in.jsonl"), 0, 15_000, 10);
    let zombie = spawn(&cfg);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let newer = spawn(&cfg);
    let z = zombie.wait_with_output().unwrap();
    let zerr = String::from_utf8_lossy(&z.stderr);
    assert!(!z.status.success(), "the older generation must stop: {zerr}");
    assert!(zerr.contains("fenced") || zerr.contains("another generation") || zerr.contains("another instance"), "{zerr}");
    let n = newer.wait_with_output().unwrap();
    assert!(n.status.success(), "{}", String::from_utf8_lossy(&n.stderr));
    let lines = all_parts(&dir.path("out"));
    assert_eq!(lines.len(), 15_000, "exactly once despite two processes on one state");
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (1..=1500).collect::<Vec<i64>>(), "key {k}");
    }
}
