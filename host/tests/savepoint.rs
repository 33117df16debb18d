//! `arkflow state list|show|savepoint` and `--from-savepoint`: a savepoint taken from one run
//! restores into a new run with a different `thread_num` and gives identical results.

mod common;
use common::*;

fn config(dir: &Dir, name: &str, threads: usize, out: &str) -> std::path::PathBuf {
    let p = dir.path(name);
    std::fs::write(
        &p,
        format!(
            "state_management:\n  enabled: true\n  backend_type: local\n  local_config: {{ path: {} }}\n  checkpoint_interval_ms: 50\n  exactly_once: true\nstreams:\n  - name: sp\n    input: {{ type: file, path: {}, key_field: user }}\n    pipeline:\n      thread_num: {threads}\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n    state: {{ operator_id: sp-op, enabled: true }}\n",
            dir.path("state").display(),
            dir.path("in.jsonl").display(),
            plugin("counter").display(),
            dir.path(out).join("o.jsonl").display()
        ),
    )
    .unwrap();
    p
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin()).args(args).output().unwrap()
}

#[test]
fn a_savepoint_restores_into_a_run_with_another_thread_num() {
    let dir = Dir::new();
    append_users(&dir.path("in.jsonl"), 0, 4000, 10);
    let c1 = config(&dir, "c1.yaml", 2, "out1");
    let out = run(&c1, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let c1s = c1.to_str().unwrap();

    let list = cli(&["state", "list", "--config", c1s]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("stream sp (operator sp-op") && text.contains("epoch") && text.contains("byte_offset"), "{text}");

    let show = cli(&["state", "show", "--config", c1s, "--key", "u3"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("store default (i64)") && text.contains("u3\t400"), "decoded as the counter declares: {text}");

    let sp = cli(&["state", "savepoint", "--config", c1s, "--name", "sp1"]);
    assert!(sp.status.success(), "{}", String::from_utf8_lossy(&sp.stderr));
    assert!(String::from_utf8_lossy(&sp.stdout).contains("10 entries"));
    let again = cli(&["state", "savepoint", "--config", c1s, "--name", "sp1"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // New input, a new run with 3 workers started from the savepoint.
    append_users(&dir.path("in.jsonl"), 4000, 6000, 10);
    let c2 = config(&dir, "c2.yaml", 3, "out2");
    let out = run(&c2, &["--from-savepoint", "sp1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (lines, _) = read_parts(&dir.path("out2"));
    assert_eq!(lines.len(), 2000, "only the records after the savepoint");
    for (k, c) in counts_by_key(&lines) {
        assert_eq!(c, (401..=600).collect::<Vec<i64>>(), "key {k}: the counts continue from the savepoint");
    }
    let missing = run(&c2, &["--from-savepoint", "nope"]);
    assert!(!missing.status.success() && stderr(&missing).contains("savepoints/nope/manifest"), "{}", stderr(&missing));
}
