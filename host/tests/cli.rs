//! The binary's handling of bad input: config errors with file:line:col, missing and wrong
//! plugins; `--validate` on a good config.

mod common;
use common::*;

#[test]
fn unknown_key_names_line_and_column_and_suggests() {
    let dir = Dir::new();
    let cfg = dir.config("streams:\n  - input:\n      type: generate\n      cuont: 5\n    pipeline: { processors: [] }\n    output: { type: drop }\n");
    let out = run(&cfg, &["--validate"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("config.yaml:4:7"), "{err}");
    assert!(err.contains("cuont"), "{err}");
    assert!(err.contains("count"), "suggests the closest key: {err}");
}

#[test]
fn bad_type_names_the_place() {
    let dir = Dir::new();
    let cfg = dir.config("streams:\n  - input: { type: generate, count: many }\n    pipeline: { thread_num: 1, processors: [] }\n    output: { type: drop }\n");
    let err = stderr(&run(&cfg, &["--validate"]));
    assert!(err.contains("config.yaml:2:"), "{err}");
    assert!(err.contains("count"), "{err}");
}

#[test]
fn missing_plugin_file_is_a_clear_error() {
    let dir = Dir::new();
    let cfg = dir.config("streams:\n  - input: { type: generate, count: 1 }\n    pipeline:\n      processors:\n        - type: wasm\n          path: nowhere/missing.wasm\n    output: { type: drop }\n");
    for args in [&["--validate"][..], &[][..]] {
        let out = run(&cfg, args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("missing.wasm") && err.contains("cannot read plugin"), "{err}");
    }
}

#[test]
fn plugin_with_the_wrong_world_is_refused() {
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: generate, count: 1 }}\n    pipeline:\n      processors:\n        - type: wasm\n          path: {}\n    output: {{ type: drop }}\n",
        plugin("wrong_world").display()
    ));
    let out = run(&cfg, &["--validate"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("wrong_world.wasm"), "{err}");
    assert!(err.contains("arkflow:plugin/processor@0.2.0"), "names the expected export: {err}");
}

#[test]
fn not_a_component_is_refused() {
    let dir = Dir::new();
    let bogus = dir.path("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").unwrap();
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: generate, count: 1 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: drop }}\n",
        bogus.display()
    ));
    let err = stderr(&run(&cfg, &["--validate"]));
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
}

#[test]
fn undeclared_state_store_is_refused() {
    // The counter declares store "default"; a stream with state disabled cannot host it.
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: generate, count: 1 }}\n    pipeline:\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: drop }}\n    state: {{ operator_id: x, enabled: false }}\n",
        plugin("counter").display()
    ));
    let err = stderr(&run(&cfg, &["--validate"]));
    assert!(err.contains("state.enabled"), "{err}");
}

#[test]
fn validate_accepts_the_quickstart() {
    let q = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml");
    let out = run(&q, &["--validate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("counter"));
}

/// `--validate` says where each stream's stages run and how records reach them: whole batches for
/// a stateless query, one batch per key group for a keyed one, and in group mode every process of
/// the consumer group, records staying in their partition's process, with a repartition topic
/// before a stage keyed otherwise than the input.
#[test]
fn validate_prints_each_streams_topology() {
    let dir = Dir::new();
    let cfg = dir.config(
        r#"streams:
  - name: filter
    input: { type: generate, count: 10 }
    pipeline: { thread_num: 2, processors: [ { type: sql, query: "SELECT * FROM flow WHERE id > 1" } ] }
    output: { type: drop }
  - name: agg
    input: { type: kafka, brokers: ["127.0.0.1:1"], topics: [orders], assignment: group, consumer_group: g1 }
    pipeline: { processors: [ { type: sql, mode: continuous, query: "SELECT user, COUNT(*) FROM flow GROUP BY user" } ] }
    output: { type: stdout }
    error_output: { type: drop }
"#,
    );
    let out = run(&cfg, &["--validate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("streams[filter]: topology: input generate -> [sql] on 2 worker(s), whole batches, routed to key groups by record key -> output drop; in this process"),
        "{text}"
    );
    // The GROUP BY's key is not the input's partitioning: a repartition topic in between.
    let agg: Vec<&str> = text.lines().filter(|l| l.starts_with("ok: streams[agg]: topology: ")).collect();
    assert_eq!(agg.len(), 3, "{text}");
    assert!(agg[0].contains("input kafka orders -> [no processors] on 1 worker(s), one batch per key group, routed to key groups by partition -> output kafka, error_output drop; in every process of consumer group `g1`"), "{text}");
    assert!(agg[1].contains("repartition topic `agg-0-repartition` keyed by (user)"), "{text}");
    assert!(agg[2].contains("input kafka agg-0-repartition -> [sql] on 1 worker(s), one batch per key group, routed to key groups by partition of repartition topic agg-0-repartition -> output stdout, error_output drop; in every process of consumer group `g1-0-repartition`"), "{text}");
}

/// A component built against `arkflow:plugin@0.1.0` (its own copy of that WIT, before timers were
/// added in 0.1.1) still loads and counts exactly: 0.1.1 only added to the package.
#[test]
fn a_plugin_built_against_the_0_1_0_package_still_runs() {
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: generate, count: 3000, keys: 10, seed: 3 }}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: file, path: {} }}\n",
        plugin("abi_0_1_0").display(),
        dir.path("out.jsonl").display()
    ));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&dir.path("out.jsonl"));
    assert_eq!(lines.len(), 3000);
    let counts = counts_by_key(&lines);
    assert_eq!(counts.len(), 10);
    for (k, c) in counts {
        assert!(c.iter().enumerate().all(|(i, v)| *v == i as i64 + 1), "key {k}: {c:?}");
    }
}
