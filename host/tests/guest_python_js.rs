//! The Python and JavaScript counters (`plugins/dist/counter_{python,js}.wasm`, built by
//! `plugins/python/build.sh` and `plugins/js/build.sh`) embed an interpreter whose initial linear
//! memory sets the smallest `limits.memory_mb` they start with; this pins the floor documented in
//! docs/plugins/python.md and docs/plugins/js.md. (Their output and state encoding are checked
//! against every other language by tests/languages.rs.)

mod common;
use common::*;

#[test]
fn interpreter_components_start_at_their_documented_memory_floor() {
    // The floor is the component's initial linear memory (componentize-py 0.25.1: 13.2 MiB;
    // componentize-js 0.23.0: 9.06 MiB) rounded up to whole MiB; one MiB less is refused at start.
    for (p, floor) in [("counter_python", 14), ("counter_js", 10)] {
        let dir = Dir::new();
        let yaml = |mb: u32| {
            format!(
                r#"
streams:
  - name: s
    input: {{ type: generate, count: 2000, keys: 10, seed: 1 }}
    pipeline:
      processors:
        - type: wasm
          path: {path}
          limits: {{ memory_mb: {mb} }}
    output: {{ type: file, path: {out} }}
"#,
                path = plugin(p).display(),
                out = dir.path("out.jsonl").display()
            )
        };
        let out = run(&dir.config(&yaml(floor)), &[]);
        assert!(out.status.success(), "{p} with memory_mb {floor}: {}", stderr(&out));
        assert_eq!(json_lines(&dir.path("out.jsonl")).len(), 2000);
        let out = run(&dir.config(&yaml(floor - 1)), &[]);
        let err = stderr(&out);
        assert!(!out.status.success() && err.contains("memory limit exceeded"), "{p} with memory_mb {}: {err}", floor - 1);
    }
}
