//! `arkflow schema` prints a JSON Schema generated from the parser's own structs: it accepts every
//! file in examples/ and rejects unknown keys and unknown types.

mod common;
use common::*;

fn schema() -> serde_json::Value {
    let out = std::process::Command::new(bin()).arg("schema").output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn yaml(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn schema_accepts_the_examples_and_rejects_unknown_keys() {
    let validator = jsonschema::validator_for(&schema()).expect("a valid JSON Schema");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let doc = yaml(&std::fs::read_to_string(&p).unwrap());
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", p.display());
            checked += 1;
        }
    }
    assert!(checked >= 2);
    let base =
        "streams:\n  - input: { type: generate, count: 5 }\n    pipeline: { processors: [ { type: wasm, path: x.wasm } ] }\n    output: { type: drop }\n";
    assert!(validator.is_valid(&yaml(base)));
    for bad in [
        base.replace("count: 5", "cuont: 5"),
        base.replace("type: generate", "type: kafka"),
        base.replace("path: x.wasm", "path: x.wasm, limitz: {}"),
        base.replace("type: drop", "type: drop, path: x"),
        format!("{base}extra_top_level: 1\n"),
        base.replace("pipeline: {", "pipeline: { threads: 2,"),
    ] {
        assert!(!validator.is_valid(&yaml(&bad)), "must be rejected:\n{bad}");
    }
}
