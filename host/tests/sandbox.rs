//! The evil-plugin set: each misbehaviour ends in a clear error or error_output routing, while the
//! host keeps running the other streams (a well-behaved counter stream runs beside them and must
//! finish exactly). The same holds when the evil plugin runs in the second tier of an exchange
//! (behind a counter keyed differently): its failure ends its stream, it never hangs the tier
//! feeding it.

mod common;
use common::*;

fn evil_stream(name: &str, mode: &str, extra: &str, dir: &Dir) -> String {
    evil_stream_after(name, "", mode, extra, dir)
}

/// An evil stream whose evil stage follows the processors `before` (YAML list items).
fn evil_stream_after(name: &str, before: &str, mode: &str, extra: &str, dir: &Dir) -> String {
    format!(
        r#"
  - name: {name}
    input: {{ type: generate, count: 2000, keys: 20, seed: 1 }}
    pipeline:
      thread_num: 2
      processors:
{before}        - type: wasm
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

/// Stream name, evil mode, extra lines of the evil stage.
const MODES: [(&str, &str, &str); 6] = [
    ("loop", "loop", "          limits: { batch_timeout_ms: 200 }"),
    ("oom", "oom", "          limits: { memory_mb: 16 }"),
    ("giant", "giant", "          limits: { max_output_bytes: 1048576 }\n          on_failure: error_output"),
    ("trap", "trap", "          on_failure: error_output"),
    ("flood", "flood", "          limits: { max_batch_state_bytes: 1048576 }"),
    ("wrongcount", "wrong-count", ""),
];

#[test]
fn evil_plugins_fail_cleanly_and_the_host_keeps_running_other_streams() {
    let dir = Dir::new();
    let mut yaml = String::from("streams:\n");
    for (name, mode, extra) in MODES {
        yaml += &evil_stream(name, mode, extra, &dir);
    }
    check_evil_outcomes(&dir, &yaml, "", 0);
}

/// The same misbehaviours in tier 1 of an exchange: a counter keyed by the record key runs in
/// tier 0, the evil plugin keyed by the count it emits in tier 1, checkpoints every 50 ms so
/// barriers cross the exchange. A failing tier 1 worker must end its stream (no tier 0 worker
/// left blocked on a full exchange inbox), within a bound.
#[test]
fn evil_plugins_behind_an_exchange_fail_their_stream_without_hanging_the_tier_before() {
    let dir = Dir::new();
    let before = format!("        - {{ type: wasm, path: {}, key_by: record_key }}\n", plugin("counter").display());
    let keyed = "          key_by: count\n";
    let mut yaml = String::from("state_management: { enabled: true, checkpoint_interval_ms: 50 }\nstreams:\n");
    for (name, mode, extra) in MODES {
        yaml += &evil_stream_after(name, &before, mode, &format!("{keyed}{extra}"), &dir);
        yaml += &format!("    state: {{ operator_id: {name}, enabled: true }}\n");
    }
    check_evil_outcomes(&dir, &yaml, "    state: { operator_id: good, enabled: true }\n", MODES.len());
}

/// Runs `yaml` (evil streams) plus a good counter stream (with `good_extra`), bounded in time,
/// and checks each evil stream ended as its misbehaviour requires while the good one is exact.
/// `--validate` must show `exchanges` exchanges.
fn check_evil_outcomes(dir: &Dir, yaml: &str, good_extra: &str, exchanges: usize) {
    let mut yaml = yaml.to_string();
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
{good_extra}"#,
        counter = plugin("counter").display(),
        out = dir.path("good.jsonl").display()
    );
    let cfg = dir.config(&yaml);
    let topology = String::from_utf8_lossy(&run(&cfg, &["--validate"]).stdout).into_owned();
    assert_eq!(topology.matches("-> exchange ->").count(), exchanges, "{topology}");
    let child = spawn(&cfg);
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            if !wait_for(std::time::Duration::from_secs(240), || done.load(std::sync::atomic::Ordering::SeqCst)) {
                let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    let err = stderr(&out);
    assert!(out.status.code().is_some(), "the host ended by itself within 240 s (it was killed: a hang):\n{err}");
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
        assert!(errs.iter().all(|e| e["value"]["id"].is_number() || e["value"]["count"].is_number()), "the record the stage got is attached");
        assert!(json_lines(&dir.path(&format!("{stream}.jsonl"))).is_empty());
    }
}

/// A plugin replying with 0.2.0 outcomes that do not fit its batch, or sending a malformed state
/// column, fails that batch (retried, then `on_failure`), never the host: every record reaches
/// error_output with the violation named, none reaches the output.
#[test]
fn malformed_batch_replies_fail_the_batch_not_the_host() {
    let dir = Dir::new();
    let cases = [
        ("sources", "bad-sources", "sources[0] = "),
        ("ends", "bad-ends", "values: item 0 ends at 1000"),
        ("both", "emit-and-fail", "input 0 both emitted records and failed"),
        ("column", "bad-column", "store.get-column keys: item 0 ends at 5"),
    ];
    let mut yaml = String::from("streams:\n");
    for (name, mode, _) in cases {
        yaml += &evil_stream(name, mode, "          on_failure: error_output", &dir);
        yaml += &format!("    state: {{ operator_id: {name}, enabled: true }}\n");
    }
    let out = run(&dir.config(&yaml), &[]);
    let err = stderr(&out);
    assert!(!err.contains("' panicked at"), "no host thread panicked: {err}");
    for (name, _, cause) in cases {
        let errs = json_lines(&dir.path(&format!("{name}.errors.jsonl")));
        assert_eq!(errs.len(), 2000, "stream {name}: every record routed to error_output");
        let msg = errs[0]["error"]["message"].as_str().unwrap();
        assert!(msg.contains(cause) && msg.contains("evil.wasm"), "stream {name}: {msg}");
        assert!(json_lines(&dir.path(&format!("{name}.jsonl"))).is_empty(), "stream {name}: nothing half-applied reached the output");
    }
}

/// The config of one stream: a file of `lines` through the evil plugin with the stage settings
/// `stage` (YAML under the stage, indented to it), then `tail` (the stream's outputs and state).
fn one_evil_stage(dir: &Dir, lines: &str, stage: &str, tail: &str) -> std::path::PathBuf {
    std::fs::write(dir.path("in.jsonl"), lines).unwrap();
    dir.config(&format!(
        "streams:\n  - input: {{ type: file, path: {} }}\n    pipeline:\n      processors:\n        - type: wasm\n          path: {}\n          {stage}\n    {tail}\n",
        dir.path("in.jsonl").display(),
        plugin("evil").display(),
    ))
}

/// A plugin whose host call lists the same guest bytes over and over (16 KiB of guest memory that
/// would lift into 200 GB of keys and values) is stopped by the host's copy bound: its records
/// reach error_output with the cause named, and the host never holds more than a few hundred MB.
#[test]
fn a_plugin_amplifying_a_host_call_is_refused_without_the_host_allocating_it() {
    let dir = Dir::new();
    let cfg = one_evil_stage(
        &dir,
        "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n",
        r#"config: { mode: amplify, amplify_entries: "100000", amplify_bytes: "1048576" }
          retries: 1
          on_failure: error_output"#,
        &format!(
            "output: {{ type: file, path: {} }}\n    error_output: {{ type: file, path: {} }}\n    state: {{ operator_id: amplify, enabled: true }}",
            dir.path("out.jsonl").display(),
            dir.path("errors.jsonl").display()
        ),
    );
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--config").arg(&cfg).stdin(std::process::Stdio::null());
    let (peak_kb, out) = peak_rss_kb(cmd);
    let err = stderr(&out);
    assert!(!err.contains("' panicked at"), "no host thread panicked: {err}");
    let errs = json_lines(&dir.path("errors.jsonl"));
    assert_eq!(errs.len(), 3, "every record routed to error_output: {err}");
    let msg = errs[0]["error"]["message"].as_str().unwrap();
    assert!(msg.contains("too much data is being copied between the host and the guest") && msg.contains("evil.wasm"), "{msg}");
    assert!(peak_kb < 1_000_000, "the host peaked at {peak_kb} kB");
}

/// The copy bound follows the plugin's memory limit: a plugin given 512 MiB may return a 150 MiB
/// value (past wasmtime's 128 MiB default), and it reaches the output.
#[test]
fn a_plugin_with_a_large_memory_limit_may_return_more_than_the_default_copy_bound() {
    let dir = Dir::new();
    let cfg = one_evil_stage(
        &dir,
        "{\"id\":1}\n",
        r#"config: { mode: giant, giant_bytes: "157286400" }
          limits: { memory_mb: 512, max_output_bytes: 268435456 }"#,
        "output: { type: drop }",
    );
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
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

/// A trap in a running stream names the record that causes it: the batch's records go to the
/// plugin again one at a time (dry runs, state untouched) and the failure message says which one
/// traps on its own (index in the batch, partition, offset, first bytes), beside the guest
/// function. Only the trapping batch reaches error_output.
#[test]
fn a_trap_in_a_stream_names_the_record_that_causes_it() {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let lines: Vec<String> = (0..30).map(|i| if i == 15 { format!("{{\"id\":{i},\"say\":\"boom\"}}") } else { format!("{{\"id\":{i}}}") }).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let yaml = format!(
        r#"
streams:
  - name: boom
    input: {{ type: file, path: {input}, batch_size: 10 }}
    pipeline:
      thread_num: 1
      processors:
        - type: wasm
          path: {evil}
          config: {{ mode: trap-on-boom }}
          retries: 1
          on_failure: error_output
    output: {{ type: file, path: {out} }}
    error_output: {{ type: file, path: {err} }}
"#,
        input = input.display(),
        evil = plugin("evil").display(),
        out = dir.path("boom.jsonl").display(),
        err = dir.path("boom.errors.jsonl").display(),
    );
    let out = run(&dir.config(&yaml), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let errs = json_lines(&dir.path("boom.errors.jsonl"));
    let ids: Vec<i64> = errs.iter().map(|e| e["value"]["id"].as_i64().unwrap()).collect();
    assert!(ids.contains(&15) && ids.len() < 30, "the trapping batch, not the others: {ids:?}");
    assert_eq!(json_lines(&dir.path("boom.jsonl")).len() + errs.len(), 30);
    let msg = errs[0]["error"]["message"].as_str().unwrap();
    let index = ids.iter().position(|&id| id == 15).unwrap();
    assert!(msg.contains(&format!("the record at index {index} of the batch")) && msg.contains("traps on its own"), "{msg}");
    assert!(msg.contains(r#"{"id":15,"say":"boom"}"#), "the record's first bytes: {msg}");
    assert!(msg.contains("(in the guest: "), "the guest function: {msg}");
}
