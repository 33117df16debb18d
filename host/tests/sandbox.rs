//! The evil-plugin set: each misbehaviour ends in a clear error or error_output routing, while the
//! host keeps running the other streams (a well-behaved counter stream runs beside them and must
//! finish exactly).

mod common;
use common::*;

fn evil_stream(name: &str, mode: &str, extra: &str, dir: &Dir) -> String {
    format!(
        r#"
  - name: {name}
    input: {{ type: generate, count: 2000, keys: 20, seed: 1 }}
    pipeline:
      processors:
        - type: wasm
          path: {evil}
          config: {{ mode: {mode} }}
          retries: 1
{extra}
    output: {{ type: file, path: {out} }}
    error_output: {{ type: file, path: {err} }}
"#,
        evil = plugin("evil").display(),
        out = dir.path(&format!("{name}.jsonl")).display(),
        err = dir.path(&format!("{name}.errors.jsonl")).display(),
    )
}

#[test]
fn evil_plugins_fail_cleanly_and_the_host_keeps_running_other_streams() {
    let dir = Dir::new();
    let mut yaml = String::from("streams:\n");
    yaml += &evil_stream("loop", "loop", "          limits: { batch_timeout_ms: 200 }", &dir);
    yaml += &evil_stream("oom", "oom", "          limits: { memory_mb: 16 }", &dir);
    yaml += &evil_stream("giant", "giant", "          limits: { max_output_bytes: 1048576 }\n          on_failure: error_output", &dir);
    yaml += &evil_stream("trap", "trap", "          on_failure: error_output", &dir);
    yaml += &evil_stream("flood", "flood", "          limits: { max_batch_state_bytes: 1048576 }", &dir);
    yaml += &evil_stream("wrongcount", "wrong-count", "", &dir);
    yaml += &format!(
        r#"
  - name: good
    input: {{ type: generate, count: 100000, keys: 100, seed: 2 }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: file, path: {out} }}
"#,
        counter = plugin("counter").display(),
        out = dir.path("good.jsonl").display()
    );
    let out = run(&dir.config(&yaml), &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "failed streams make the exit code non-zero");
    assert!(!err.contains("' panicked at"), "no host thread panicked: {err}");

    // The good stream is exact.
    let good = json_lines(&dir.path("good.jsonl"));
    assert_eq!(good.len(), 100_000);
    for (k, c) in counts_by_key(&good) {
        assert!(c.iter().enumerate().all(|(i, v)| *v == i as i64 + 1), "key {k}");
    }

    // Streams with on_failure: fail stop with a clear error naming the cause.
    let fail_line = |stream: &str| {
        err.lines()
            .find(|l| l.contains(&format!("streams[{stream}]")) && l.contains("failed after"))
            .unwrap_or_else(|| panic!("no failure reported for stream {stream}:\n{err}"))
            .to_string()
    };
    assert!(fail_line("loop").contains("deadline exceeded"), "{}", fail_line("loop"));
    assert!(fail_line("oom").contains("memory"), "{}", fail_line("oom"));
    assert!(fail_line("flood").contains("max_batch_state_bytes"), "{}", fail_line("flood"));
    assert!(fail_line("wrongcount").contains("outcomes for"), "{}", fail_line("wrongcount"));
    for s in ["loop", "oom", "flood", "wrongcount"] {
        assert!(fail_line(s).contains("evil.wasm"), "names the plugin: {}", fail_line(s));
    }

    // Streams with on_failure: error_output route every record there with the error attached.
    for (stream, cause) in [("giant", "max_output_bytes"), ("trap", "trap")] {
        let errs = json_lines(&dir.path(&format!("{stream}.errors.jsonl")));
        assert_eq!(errs.len(), 2000, "stream {stream}: all records routed to error_output");
        let msg = errs[0]["error"]["message"].as_str().unwrap();
        assert!(msg.contains(cause), "stream {stream}: {msg}");
        assert!(errs.iter().all(|e| e["value"]["id"].is_number()), "the original record is attached");
        assert!(json_lines(&dir.path(&format!("{stream}.jsonl"))).is_empty());
    }
}

#[test]
fn a_plugin_that_traps_in_init_is_refused_at_validate() {
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: generate, count: 1 }}\n    pipeline:\n      processors:\n        - type: wasm\n          path: {}\n          config: {{ mode: init-trap }}\n    output: {{ type: drop }}\n",
        plugin("evil").display()
    ));
    let out = run(&cfg, &["--validate"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("#init trapped"), "{err}");
    assert!(err.contains("evil.wasm"), "{err}");
}
