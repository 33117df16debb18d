//! Live plugin swap with the real binary: counter v1 under load replaced by v2 (which adds `"v":2`
//! to its output) under exactly-once with the file sink, by the file watcher and by a control
//! request; broken versions (wrong world, trap in `init`, another declared key) refused while v2
//! keeps running; the compiled-artifact cache used on a restart.
//!
//! What "swapped at a barrier" means here, checked on the finalized output parts: every part (one
//! epoch) holds one version only, v1 parts all precede v2 parts, every input record has exactly
//! one output, and each key's counts run 1..=n across the switch (v2 continued v1's state).

mod common;
use common::s3::free_port;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const RECORDS: u64 = 240_000;
const KEYS: u64 = 500;

/// Replaces `dst` by a copy of `src` atomically (write beside, rename), as a deploy would.
fn install(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("incoming");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

fn config(dir: &Dir, port: u16, watch: bool) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
http: {{ address: "127.0.0.1:{port}" }}
plugin_cache: {{ path: ./cache }}
state_management:
  enabled: true
  backend_type: local
  local_config: {{ path: ./state }}
  checkpoint_interval_ms: 100
  exactly_once: true
streams:
  - name: s
    input: {{ type: file, path: in.jsonl, key_field: user, batch_size: 500, rate_per_sec: 30000 }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: plugin.wasm
          watch: {watch}
          watch_interval_ms: 50
    output: {{ type: file, path: out/out.jsonl }}
    state: {{ operator_id: swap, enabled: true }}
"#
    ))
}

/// The version of one output line: 1 without `v`, else its value.
fn version(l: &serde_json::Value) -> i64 {
    l.get("v").and_then(|v| v.as_i64()).unwrap_or(1)
}

fn output_versions(out: &Path) -> Vec<i64> {
    read_parts(out).0.iter().map(version).collect()
}

fn metric(port: u16, name: &str) -> i64 {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|_| metric_value(&http_request(port, "GET", "/metrics").1, name, "s")).unwrap_or(-1)
}

/// The checks of the module doc, on the finished run.
fn check_output(out: &Path, expected: &HashMap<String, i64>) {
    let mut parts: Vec<_> = std::fs::read_dir(out).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).collect();
    parts.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
    parts.sort();
    let mut seen_v2 = false;
    let (mut v1_parts, mut v2_parts) = (0, 0);
    let mut lines = Vec::new();
    for p in &parts {
        let part = json_lines(p);
        let vs: std::collections::BTreeSet<i64> = part.iter().map(version).collect();
        assert!(vs.len() <= 1, "{} mixes versions {vs:?}: the swap did not happen at a barrier", p.display());
        match vs.into_iter().next() {
            Some(2) => {
                seen_v2 = true;
                v2_parts += 1;
            }
            Some(_) => {
                assert!(!seen_v2, "{}: a v1 part after a v2 part", p.display());
                v1_parts += 1;
            }
            None => {}
        }
        lines.extend(part);
    }
    assert!(v1_parts > 0 && v2_parts > 0, "expected parts of both versions, got v1 {v1_parts}, v2 {v2_parts}");
    assert_eq!(lines.len() as u64, RECORDS, "every input record has exactly one output");
    let by_key = counts_by_key(&lines);
    assert_eq!(by_key.len(), expected.len());
    for (k, counts) in by_key {
        let n = expected[&k];
        assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "key {k}: counts must run 1..={n} across the swap");
    }
}

/// The binary running v1 from `plugin.wasm` on the test input, past its first 20,000 outputs.
struct Running {
    dir: Dir,
    expected: HashMap<String, i64>,
    live: std::path::PathBuf,
    out: std::path::PathBuf,
    port: u16,
    child: std::process::Child,
}

fn start(watch: bool) -> Running {
    start_with("counter", watch)
}

/// `start` with the plugin `first` (a `plugins/dist` name) as v1.
fn start_with(first: &str, watch: bool) -> Running {
    let dir = Dir::new();
    let expected = kill::write_input(&dir.path("in.jsonl"), RECORDS, KEYS);
    std::fs::create_dir_all(dir.path("out")).unwrap();
    let live = dir.path("plugin.wasm");
    install(&plugin(first), &live);
    let port = free_port();
    let child = spawn(&config(&dir, port, watch));
    let out = dir.path("out");
    assert!(wait_for(Duration::from_secs(30), || output_versions(&out).len() > 20_000), "v1 produced no output");
    Running { dir, expected, live, out, port, child }
}

#[test]
fn watched_file_swaps_at_a_barrier_and_broken_versions_are_refused() {
    let Running { dir: _dir, expected, live, out, port, child } = start(true);
    install(&plugin("counter_v2"), &live);
    assert!(wait_for(Duration::from_secs(20), || output_versions(&out).contains(&2)), "v2 never took over");
    assert_eq!(metric(port, "arkflow_plugin_swaps_total"), 1);
    // Broken versions: another world, then a trap in init. Both refused, v2 keeps running.
    install(&plugin("wrong_world"), &live);
    assert!(wait_for(Duration::from_secs(20), || metric(port, "arkflow_plugin_swaps_refused_total") == 1), "wrong world not refused");
    install(&plugin("counter_init_trap"), &live);
    assert!(wait_for(Duration::from_secs(20), || metric(port, "arkflow_plugin_swaps_refused_total") == 2), "init trap not refused");
    assert_eq!(metric(port, "arkflow_plugin_swaps_total"), 1, "a refused plugin must not be armed");
    let done = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "arkflow failed: {log}");
    assert!(
        log.contains("does not export arkflow:plugin/processor@0.2.0") || log.contains("imports something the host does not provide"),
        "wrong world refusal not logged: {log}"
    );
    assert!(
        log.contains("arkflow:plugin/processor@0.2.0#init trapped") && log.contains("counter-init-trap: init traps on purpose"),
        "init trap refusal not logged: {log}"
    );
    check_output(&out, &expected);
    assert!(log.contains("switching to counter@0.2.0 at checkpoint barrier"), "{log}");
    let after: Vec<i64> = output_versions(&out);
    assert_eq!(*after.last().unwrap(), 2, "v2 must keep running after the refusals");
}

/// A swap across ABIs: the Go counter (a component of arkflow:plugin@0.1.1, which the host calls
/// through its 0.1 bindings) replaced under load by the Rust counter v2 (0.2.0, the batch ABI).
/// The same checks: the switch at a barrier, every record once, each key's counts continuing
/// across it (the state is the host's, whichever ABI wrote it).
#[test]
fn a_swap_from_a_0_1_plugin_to_a_0_2_plugin_switches_at_a_barrier_and_keeps_state() {
    let Running { dir: _dir, expected, live, out, port, child } = start_with("counter_go", true);
    install(&plugin("counter_v2"), &live);
    assert!(wait_for(Duration::from_secs(20), || output_versions(&out).contains(&2)), "v2 never took over");
    assert_eq!(metric(port, "arkflow_plugin_swaps_total"), 1);
    let done = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "arkflow failed: {log}");
    check_output(&out, &expected);
}

#[test]
fn control_request_swaps_and_reports_refusals() {
    let Running { dir: _dir, expected, live, out, port, child } = start(false);
    let reload = "/streams/s/processors/0/reload";
    // A broken file first: refused with the reason, v1 keeps running.
    install(&plugin("wrong_world"), &live);
    let (code, body) = http_request(port, "POST", reload);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("plugin.wasm") && body.contains("arkflow:plugin"), "the refusal names the file and the WIT world: {body}");
    // A plugin whose state needs another key (declared in describe()): the stream is routed by
    // the running one's, so it is refused too.
    install(&plugin("counter_by_user"), &live);
    let (code, body) = http_request(port, "POST", reload);
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("keyed by `user_id`") && body.contains("running one's by none"), "the refusal names both keys: {body}");
    install(&plugin("counter_v2"), &live);
    let (code, body) = http_request(port, "POST", reload);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("counter@0.1.0") && body.contains("counter@0.2.0") && body.contains("next checkpoint barrier"), "{body}");
    let (code, body) = http_request(port, "POST", reload);
    assert!(code == 200 && body.contains("unchanged"), "{code} {body}");
    assert_eq!(http_request(port, "POST", "/streams/s/processors/7/reload").0, 404);
    assert_eq!(http_request(port, "POST", "/streams/nope/processors/0/reload").0, 404);
    assert!(wait_for(Duration::from_secs(20), || output_versions(&out).contains(&2)), "v2 never took over");
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "arkflow failed: {}", String::from_utf8_lossy(&done.stderr));
    check_output(&out, &expected);
}

#[test]
fn restart_loads_the_compiled_plugin_from_the_cache() {
    let dir = Dir::new();
    std::fs::write(dir.path("in.jsonl"), "{\"user\":\"a\"}\n").unwrap();
    std::fs::create_dir_all(dir.path("out")).unwrap();
    install(&plugin("counter"), &dir.path("plugin.wasm"));
    let cfg = config(&dir, free_port(), false);
    let validate = || {
        let o = std::process::Command::new(bin()).arg("--config").arg(&cfg).arg("--validate").env("RUST_LOG", "arkflow=debug").output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let first = validate();
    assert!(first.contains("outcome=Compiled"), "{first}");
    let cached: Vec<_> = std::fs::read_dir(dir.path("cache")).unwrap().collect();
    assert_eq!(cached.len(), 1, "one compiled artifact in plugin_cache.path");
    let second = validate();
    assert!(second.contains("outcome=Hit"), "the second start must not recompile: {second}");
}
