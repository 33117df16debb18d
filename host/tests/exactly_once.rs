//! Exactly-once against the faults that a plain kill loop does not play, each reproduced with the
//! real binary on the `local` backend: a paused process whose checkpoints were abandoned while a
//! newer one ran; `error_output` across restarts; output parts of another run; restarts after a
//! downtime longer than the state TTL; `stdin` with and without exactly-once.

mod common;
use common::*;
use std::io::Write;
use std::time::Duration;

/// A counter stream on the local backend; `extra` goes under `state_management`.
fn config(dir: &Dir, extra: &str, input: &str, error_output: bool) -> std::path::PathBuf {
    let errors = if error_output { format!("    error_output: {{ type: file, path: {} }}\n", dir.path("err/errors.jsonl").display()) } else { String::new() };
    dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {state} }}\n  exactly_once: true\n{extra}streams:\n  - name: eo\n    input: {input}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {counter} }}\n    output: {{ type: file, path: {out} }}\n{errors}    state: {{ operator_id: eo, enabled: true }}\n",
        state = dir.path("state").display(),
        counter = plugin("counter").display(),
        out = dir.path("out/out.jsonl").display(),
    ))
}

fn file_input(dir: &Dir, rate: Option<u64>) -> String {
    let rate = rate.map(|r| format!(", rate_per_sec: {r}")).unwrap_or_default();
    format!("{{ type: file, path: {}, key_field: user{rate} }}", dir.path("in.jsonl").display())
}

fn check_counts(lines: &[serde_json::Value], per_key: i64) {
    for (k, c) in counts_by_key(lines) {
        assert_eq!(c, (1..=per_key).collect::<Vec<i64>>(), "key {k}");
    }
}

/// Issue 15, item 1: process A decided some epochs, then its manifest writes failed (the store
/// was unreachable) so it abandoned epochs one after another, and it was paused. Process B
/// started on the same state and ran to the end. When A resumes and the store is back, A must
/// stop at its next decision instead of deciding again (which doubled the output).
#[test]
fn a_paused_process_with_abandoned_epochs_never_decides_after_a_newer_one() {
    let dir = Dir::new();
    let cfg = config(&dir, "  checkpoint_interval_ms: 300\n  tolerated_checkpoint_failures: 1000\n", &file_input(&dir, Some(4000)), false);
    append_users(&dir.path("in.jsonl"), 0, 20_000, 10);
    let mut a = spawn(&cfg);
    let manifests = dir.path("state/eo/manifests");
    assert!(wait_for(Duration::from_secs(20), || std::fs::read_dir(&manifests).map(|d| d.count() >= 2).unwrap_or(false)), "A decided epochs");
    // The store's manifest directory becomes unwritable: A abandons epoch after epoch.
    std::fs::rename(&manifests, dir.path("manifests.aside")).unwrap();
    std::fs::write(&manifests, b"not a directory").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&a, "STOP");
    std::fs::remove_file(&manifests).unwrap();
    std::fs::rename(dir.path("manifests.aside"), &manifests).unwrap();
    // B runs to the end on the same state.
    let b = run(&cfg, &[]);
    assert!(b.status.success(), "{}", stderr(&b));
    signal(&a, "CONT");
    let status = (0..600).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        a.try_wait().unwrap()
    });
    let Some(status) = status else {
        signal(&a, "KILL");
        panic!("A kept running after it was fenced");
    };
    let a_err = {
        let mut s = String::new();
        std::io::Read::read_to_string(a.stderr.as_mut().unwrap(), &mut s).unwrap();
        s
    };
    assert!(!status.success() && a_err.contains("fenced"), "A must stop, fenced: {a_err}");
    let (lines, _) = read_parts(&dir.path("out"));
    assert_eq!(lines.len(), 20_000, "every record's effect exactly once");
    check_counts(&lines, 2000);
}

/// Issue 15, item 2: a file `error_output` is never truncated at start, and its records are
/// exactly-once: two runs with 100 failing records each leave 200 error records.
#[test]
fn error_output_keeps_every_error_across_restarts() {
    let dir = Dir::new();
    let cfg = config(&dir, "  checkpoint_interval_ms: 100\n", &file_input(&dir, None), true);
    let write = |from: u64, to: u64| {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.path("in.jsonl")).unwrap();
        for id in from..to {
            match id % 10 {
                0 => writeln!(f, "{{\"id\":{id},\"bad\":true}}").unwrap(),
                _ => writeln!(f, "{{\"id\":{id},\"user\":\"u{}\"}}", id % 3).unwrap(),
            }
        }
    };
    write(0, 1000);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_parts(&dir.path("err")).0.len(), 100);
    write(1000, 2000);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (errors, _) = read_parts(&dir.path("err"));
    let mut ids: Vec<u64> = errors.iter().map(|e| e["value"]["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..2000).step_by(10).collect::<Vec<_>>(), "each failing record exactly once");
    let e = &errors[0];
    assert_eq!((e["error"]["class"].as_str(), e["error"]["code"].as_str()), (Some("invalid-input"), Some("no-key")), "{e}");
    assert_eq!(e["stream"], "eo");
    assert_eq!(e["processor"], 0);
    assert!(e["plugin"].as_str().unwrap().starts_with("counter@"), "{e}");
    assert!(e["offset"].as_u64().is_some() && e["partition"].as_u64().is_some(), "{e}");
    assert_eq!(read_parts(&dir.path("out")).0.len(), 1800);
}

/// Issue 15, item 3: when epoch numbers start over (here: the memory backend restarted with
/// exactly_once), the parts of the earlier run are refused at start, naming the file, instead of
/// being taken for this run's and silently dropping its output.
#[test]
fn parts_of_another_run_are_refused_not_taken_for_this_one() {
    let dir = Dir::new();
    append_users(&dir.path("in.jsonl"), 0, 600, 3);
    let cfg = dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: memory\n  checkpoint_interval_ms: 100\n  exactly_once: true\nstreams:\n  - name: m\n    input: {}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: m, enabled: true }}\n",
        file_input(&dir, None),
        plugin("counter").display(),
        dir.path("out/out.jsonl").display()
    ));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = read_parts(&dir.path("out"));
    let out = run(&cfg, &[]);
    assert!(!out.status.success(), "a second run over the first run's parts must not start");
    let err = stderr(&out);
    assert!(err.contains("out.jsonl.000000000") && err.contains("another run"), "{err}");
    assert_eq!(read_parts(&dir.path("out")), before, "nothing was changed or deleted");
}

/// Two outputs writing one file are refused when the config is validated.
#[test]
fn two_streams_with_one_output_path_are_refused_at_validation() {
    let dir = Dir::new();
    let out = dir.path("same.jsonl");
    let cfg = dir.config(&format!(
        "streams:\n  - name: a\n    input: {{ type: generate, count: 1 }}\n    output: {{ type: file, path: {p} }}\n  - name: b\n    input: {{ type: generate, count: 1 }}\n    output: {{ type: file, path: {p} }}\n",
        p = out.display()
    ));
    let o = run(&cfg, &["--validate"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("config.yaml:7:") && err.contains("streams[1].output.path") && err.contains("streams[0].output.path"), "{err}");
}

/// Issue 15, state TTL: a restart after a downtime longer than `state_timeout_ms` replays the
/// epoch after the last decided checkpoint with the clock the first run gave it, so values that
/// were live for the first run are live for the replay: the counts continue, 1..n, exactly once.
#[test]
fn a_replay_after_downtime_expires_exactly_what_the_first_run_did() {
    let dir = Dir::new();
    let cfg = config(&dir, "  checkpoint_interval_ms: 100\n  state_timeout_ms: 3000\n", &file_input(&dir, Some(4000)), false);
    append_users(&dir.path("in.jsonl"), 0, 16_000, 50);
    let a = spawn(&cfg);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&a, "KILL");
    let _ = a.wait_with_output();
    assert!(!read_parts(&dir.path("out")).0.is_empty(), "epochs were decided before the kill");
    std::thread::sleep(Duration::from_millis(4000));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (lines, _) = read_parts(&dir.path("out"));
    assert_eq!(lines.len(), 16_000);
    check_counts(&lines, 320);
}

/// Within a run, values expire after `state_timeout_ms` of stream time.
#[test]
fn state_ttl_expires_values_within_a_run() {
    let dir = Dir::new();
    let cfg = config(&dir, "  checkpoint_interval_ms: 50\n  state_timeout_ms: 1000\n", &file_input(&dir, Some(20)), false);
    // u0..u2, then 50 records of another user (2.5 s at 20/s), then u0..u2 again.
    let mut f = std::fs::File::create(dir.path("in.jsonl")).unwrap();
    for id in 0..56u64 {
        let user = if !(3..53).contains(&id) { format!("u{}", id % 3) } else { "filler".into() };
        writeln!(f, "{{\"id\":{id},\"user\":\"{user}\"}}").unwrap();
    }
    drop(f);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (lines, _) = read_parts(&dir.path("out"));
    let counts = counts_by_key(&lines);
    for u in ["u0", "u1", "u2"] {
        assert_eq!(counts[u], [1, 1], "{u} expired between its records");
    }
    assert_eq!(counts["filler"], (1..=50).collect::<Vec<i64>>(), "a key written every 50 ms stays live");
}

/// Issue 15: `stdin` cannot be replayed: exactly-once is refused (at --validate and at start);
/// without it a restart restores the state and reads the new stdin (at-least-once).
#[test]
fn stdin_is_refused_with_exactly_once_and_restores_state_without_it() {
    let dir = Dir::new();
    let yaml = |eo: bool| {
        format!(
            "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 100\n  exactly_once: {eo}\nstreams:\n  - name: s\n    input: {{ type: stdin, key_field: user }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: s, enabled: true }}\n",
            dir.path("state").display(),
            plugin("counter").display(),
            dir.path("out.jsonl").display()
        )
    };
    let cfg = dir.config(&yaml(true));
    let o = run(&cfg, &["--validate"]);
    assert!(!o.status.success() && stderr(&o).contains("stdin cannot be replayed"), "{}", stderr(&o));
    let cfg = dir.config(&yaml(false));
    let feed = |lines: &str| {
        let mut c = std::process::Command::new(bin())
            .arg("--config")
            .arg(&cfg)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    feed("{\"user\":\"a\"}\n{\"user\":\"a\"}\n");
    feed("{\"user\":\"a\"}\n");
    let lines = json_lines(&dir.path("out.jsonl"));
    let counts: Vec<i64> = lines.iter().map(|l| l["count"].as_i64().unwrap()).collect();
    assert_eq!(counts, [1, 2, 3], "the second run continued from the restored state and the file was appended to");
}
