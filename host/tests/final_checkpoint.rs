//! The final checkpoint of a stream (end of input, or a drain after SIGTERM) decides everything
//! read, or the process says it did not: a backlog ahead of the final barrier that takes longer
//! than `checkpoint_timeout_ms` is progress, not a stuck checkpoint, and a final checkpoint that
//! cannot be decided ends the run with a failure naming the epoch, never with exit status 0.

mod common;
use common::*;
use std::time::Duration;

/// A keyed counter behind a plugin that sleeps `sleep_ms` per batch (slow processing), exactly
/// once, on the local backend; the file input reads `rate` records per second.
fn config(dir: &Dir, sleep_ms: u64, rate: u64, extra: &str) -> std::path::PathBuf {
    dir.config(&format!(
        r#"state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: {state} }}
  exactly_once: true
  checkpoint_interval_ms: 200
{extra}streams:
  - name: slow
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: {rate} }}
    pipeline:
      thread_num: 2
      batch_size: 10
      channel_capacity: 8
      processors:
        - {{ type: wasm, path: {evil}, config: {{ mode: sleep, sleep_ms: {sleep_ms} }} }}
        - {{ type: wasm, path: {counter} }}
    output: {{ type: file, path: {out} }}
    state: {{ operator_id: slow, enabled: true }}
"#,
        state = dir.path("state").display(),
        input = dir.path("in.jsonl").display(),
        evil = plugin("evil").display(),
        counter = plugin("counter").display(),
        out = dir.path("out/out.jsonl").display(),
    ))
}

fn check_exact(dir: &Dir, records: u64, users: u64) {
    let (lines, _) = read_parts(&dir.path("out"));
    assert_eq!(lines.len() as u64, records, "every record is in the committed output exactly once");
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (1..=(records / users) as i64).collect::<Vec<i64>>(), "key {k}");
    }
}

/// The input ends at once; ~3 s of processing are queued ahead of the final barrier while
/// `checkpoint_timeout_ms` is 500. The final checkpoint must wait for the workers, not time out.
#[test]
fn a_backlog_longer_than_the_checkpoint_timeout_still_ends_with_a_decided_final_checkpoint() {
    let dir = Dir::new();
    append_users(&dir.path("in.jsonl"), 0, 200, 10);
    let cfg = config(&dir, 150, 1_000_000, "  checkpoint_timeout_ms: 500\n");
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    check_exact(&dir, 200, 10);
}

/// The store refuses manifests from the middle of the run on: every checkpoint, the final one
/// included, is abandoned. The run must fail and say which checkpoint is missing; a restart with
/// the store back finishes the work exactly once.
#[test]
fn an_undecided_final_checkpoint_fails_the_run_and_a_restart_finishes_it() {
    let dir = Dir::new();
    append_users(&dir.path("in.jsonl"), 0, 400, 10);
    let cfg = config(&dir, 0, 100, "  checkpoint_timeout_ms: 1000\n  tolerated_checkpoint_failures: 1000\n");
    let mut child = spawn(&cfg);
    let manifests = dir.path("state/slow/manifests");
    assert!(wait_for(Duration::from_secs(30), || std::fs::read_dir(&manifests).map(|d| d.count() >= 1).unwrap_or(false)), "a first decision");
    std::fs::rename(&manifests, dir.path("manifests.aside")).unwrap();
    std::fs::write(&manifests, b"not a directory").unwrap();
    let status = (0..1200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().unwrap()
    });
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the run did not end");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "a run whose final checkpoint was not decided must not exit 0:\n{err}");
    assert!(err.contains("the final checkpoint (epoch") && err.contains("was not decided"), "{err}");
    std::fs::remove_file(&manifests).unwrap();
    std::fs::rename(dir.path("manifests.aside"), &manifests).unwrap();
    let again = run(&cfg, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    check_exact(&dir, 400, 10);
}
