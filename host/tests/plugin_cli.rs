//! `arkflow plugin test` with the real binary and plugins built from source: a fixture's outcomes
//! and state changes; `--expect` passing, and failing with a readable diff; `--checkpoint-every`
//! passing for a plugin that keeps its counts in state and catching one that keeps them in guest
//! memory; `--state` as where both runs start; a trap report naming the guest function and the
//! record; the exit codes for a failing batch and bad arguments; `plugin bench`'s report.

mod common;
use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `n` records over 7 users, every 10th without a `user`; returns the counter's expected
/// output lines (one per keyed record) and the number of keyless records.
fn fixture(path: &Path, n: u64) -> (Vec<String>, u64) {
    let mut lines = String::new();
    let mut counts: HashMap<String, u64> = HashMap::new();
    let (mut expected, mut keyless) = (vec![], 0);
    for i in 0..n {
        if i % 10 == 9 {
            lines += &format!("{{\"id\":{i}}}\n");
            keyless += 1;
            continue;
        }
        let user = format!("u{}", (i * 7919) % 7);
        lines += &format!("{{\"id\":{i},\"user\":\"{user}\"}}\n");
        let c = counts.entry(user.clone()).or_default();
        *c += 1;
        expected.push(format!("{{\"key\":\"{user}\",\"count\":{c}}}"));
    }
    std::fs::write(path, lines).unwrap();
    (expected, keyless)
}

fn plugin_test(plugin: &Path, args: &[&str]) -> Output {
    plugin_test_cmd("test", plugin, args)
}

fn plugin_test_cmd(cmd: &str, plugin: &Path, args: &[&str]) -> Output {
    Command::new(bin()).args(["plugin", cmd]).arg(plugin).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setup(n: u64) -> (Dir, PathBuf, Vec<String>, u64) {
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let (expected, keyless) = fixture(&input, n);
    (dir, input, expected, keyless)
}

#[test]
fn a_fixture_shows_outcomes_and_state_and_matches_its_expectation() {
    let (dir, input, expected, keyless) = setup(300);
    let want = dir.path("want.jsonl");
    std::fs::write(&want, expected.join("\n") + "\n").unwrap();
    let o =
        plugin_test(&plugin("counter"), &["--input", input.to_str().unwrap(), "--key-field", "user", "--expect", want.to_str().unwrap(), "--batch-size", "64"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains(&format!("300 records: {} emitted", 300 - keyless)), "{out}");
    assert!(out.contains(&format!("{keyless} failed")), "{out}");
    assert!(out.contains("#9 key=- {\"id\":9} -> FAIL invalid-input [no-key]"), "the keyless record's failure with class and code: {out}");
    // u0's count after the first batch (64 records), as a state change decoded as i64.
    let u0_first = expected[..].iter().take(64 - 6).filter(|l| l.contains("\"u0\"")).count();
    assert!(out.contains(&format!("  state default u0: (none) -> {u0_first}")), "{out}");
    assert!(out.contains("expected output") && out.contains(&format!("same ({} records)", expected.len())), "{out}");
    assert!(out.trim_end().ends_with("PASS"), "{out}");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff_naming_the_line() {
    let (dir, input, mut expected, _) = setup(50);
    expected[6] = expected[6].replace("\"count\":", "\"count\":1");
    let want = dir.path("want.jsonl");
    std::fs::write(&want, expected.join("\n")).unwrap();
    let o = plugin_test(&plugin("counter"), &["--input", input.to_str().unwrap(), "--key-field", "user", "--expect", want.to_str().unwrap(), "--quiet"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("  line 7:\n    - expected {}\n    + got      ", expected[6])), "{out}");
    assert!(out.contains(&format!("1 of {} lines differ", expected.len())), "{out}");
    assert!(out.trim_end().ends_with("FAIL"), "{out}");
}

#[test]
fn checkpoint_every_passes_state_kept_in_state_and_catches_state_kept_in_guest_memory() {
    let (_dir, input, _, _) = setup(200);
    let args = ["--input", input.to_str().unwrap(), "--key-field", "user", "--checkpoint-every", "16", "--quiet"];
    let o = plugin_test(&plugin("counter"), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("checkpoint + restore every 16 records: same outcomes"), "{}", stdout(&o));
    let mut cached = vec!["-C", "mode=memory-counter"];
    cached.extend(args);
    let o = plugin_test(&plugin("evil"), &cached);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    // The first record after the first restore whose user was seen before it.
    assert!(out.contains("checkpoint + restore every 16 records CHANGED the outcomes, first at record 16:"), "{out}");
    assert!(out.contains("keeps something in guest memory"), "{out}");
}

#[test]
fn a_failing_batch_and_bad_arguments_exit_non_zero_with_the_reason() {
    let (dir, input, _, _) = setup(5);
    let o = plugin_test(&plugin("evil"), &["-C", "mode=trap", "--input", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("batch failed (records 0..5)") && stdout(&o).contains("evil: trap in process-batch"), "{}", stdout(&o));
    // The trap names the plugin's own function from the guest backtrace (the name section is kept).
    assert!(stdout(&o).contains("(in the guest: <evil::Evil as arkflow_plugin_sdk::Processor>::process <- "), "{}", stdout(&o));
    // The record a trap happens on, found by running the failed batch again one record at a time.
    let boom = dir.path("boom.jsonl");
    std::fs::write(&boom, "{\"id\":0}\n{\"id\":1}\n{\"id\":2,\"boom\":true}\n{\"id\":3}\n").unwrap();
    let o = plugin_test(&plugin("evil"), &["-C", "mode=trap-on-boom", "--input", boom.to_str().unwrap(), "--batch-size", "2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("#1 key=- {\"id\":1} -> emit {\"id\":1}"), "the first batch passed: {}", stdout(&o));
    assert!(stdout(&o).contains("batch failed (records 2..4)"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("the batch fails at record 2 (index 0 in its batch), run alone after the ones before it: {\"id\":2,\"boom\":true}"),
        "{}",
        stdout(&o)
    );
    let missing = dir.path("missing.wasm");
    let o = plugin_test(&missing, &["--input", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&format!("cannot read plugin {}", missing.display())), "{}", stderr(&o));
    let o = plugin_test(&input, &["--input", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not a valid WebAssembly component"), "{}", stderr(&o));
    let o = plugin_test(&plugin("counter"), &["--input", input.to_str().unwrap(), "-C", "no-equals-sign"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--config-entry no-equals-sign: expected KEY=VALUE"), "{}", stderr(&o));
}

#[test]
fn a_state_file_is_where_both_runs_start() {
    let (dir, input, expected, _) = setup(40);
    // u3 starts at 100: each of its counts moves up by 100, the other users' stay.
    let state = dir.path("before.json");
    std::fs::write(&state, r#"{"default": {"u3": 100, "nobody": 7}}"#).unwrap();
    let shifted: Vec<String> = expected
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let n = v["count"].as_i64().unwrap() + if v["key"] == "u3" { 100 } else { 0 };
            format!("{{\"key\":\"{}\",\"count\":{n}}}", v["key"].as_str().unwrap())
        })
        .collect();
    let want = dir.path("want.jsonl");
    std::fs::write(&want, shifted.join("\n")).unwrap();
    let args = [
        "--input",
        input.to_str().unwrap(),
        "--key-field",
        "user",
        "--state",
        state.to_str().unwrap(),
        "--expect",
        want.to_str().unwrap(),
        "--checkpoint-every",
        "8",
    ];
    let o = plugin_test(&plugin("counter"), &args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("  state default u3: 100 -> "), "{}", stdout(&o));
    std::fs::write(&state, r#"{"default": {"u3": "many"}}"#).unwrap();
    let o = plugin_test(&plugin("counter"), &args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains(&format!("--state {}: store `default` key `u3`: \"many\" is not a i64 value", state.display())), "{}", stderr(&o));
}

#[test]
fn bench_reports_the_plugins_figures_and_the_ratio_to_a_baseline() {
    let (dir, input, _, _) = setup(2000);
    let o = plugin_test_cmd(
        "bench",
        &plugin("counter"),
        &["--input", input.to_str().unwrap(), "--key-field", "user", "--seconds", "0.3", "--baseline", plugin("evil").to_str().unwrap()],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].contains("(counter@0.1.0): ") && lines[1].contains("(evil@0.1.0): "), "{out}");
    for l in &lines[..2] {
        let rate: f64 = l.split(" records/s").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(rate > 0.0, "{l}");
        assert!(l.contains("bytes in") && l.contains("linear memory high water"), "{l}");
    }
    assert!(lines[2].starts_with("ratio: ") && lines[2].ends_with(" of the baseline's records/s"), "{out}");
    let empty = dir.path("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let o = plugin_test_cmd("bench", &plugin("counter"), &["--input", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("--input {}: no records", empty.display())), "{}", stderr(&o));
}

/// `plugin test` shows what the plugin reported: its metrics after the report, its log lines on
/// stderr (with the plugin named).
#[test]
fn the_plugins_metrics_and_logs_are_shown() {
    let (_dir, input, _, _) = setup(50);
    let o = plugin_test(&plugin("evil"), &["-C", "mode=metrics", "--input", input.to_str().unwrap(), "--batch-size", "20", "--quiet"]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.contains("metric evil_records: counter 50"), "{out}");
    assert!(out.contains("metric evil_last_batch: gauge 10"), "the last batch had 10 records: {out}");
    assert!(out.contains("metric evil_batch_size: histogram count 3 sum 50"), "{out}");

    let o = plugin_test(&plugin("evil"), &["-C", "mode=log-flood", "-C", "log_bytes=12", "--input", input.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("evil: {}", "x".repeat(12))) && err.contains("evil@"), "the plugin's log lines, naming it: {err}");
}
