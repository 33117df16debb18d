//! The programmatic API of the seed guide: `EngineConfig::from_file`, `EngineBuilder::new`,
//! `build_streams().await`, then `run`.

mod common;
use arkflow::config::EngineConfig;
use arkflow::engine_builder::EngineBuilder;
use common::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_and_runs_streams_from_a_file() {
    let dir = Dir::new();
    let path = dir.config(&format!(
        "state_management:\n  enabled: true\n  backend_type: memory\n  checkpoint_interval_ms: 50\nstreams:\n  - name: api\n    input: {{ type: generate, count: 20000, keys: 7 }}\n    pipeline:\n      thread_num: 2\n      processors:\n        - {{ type: wasm, path: {} }}\n    output: {{ type: drop }}\n    state: {{ operator_id: api-counter, enabled: true, custom_keys: [user_counts] }}\n",
        plugin("counter").display()
    ));
    let config = EngineConfig::from_file(&path).unwrap();
    let mut engine_builder = EngineBuilder::new(config);
    let streams = engine_builder.build_streams().await.unwrap();
    assert_eq!(streams.len(), 1);
    let reports = EngineBuilder::run_with_stop(streams, Arc::new(AtomicBool::new(false))).await.unwrap();
    let r = &reports[0];
    assert_eq!((r.name.as_str(), r.records_in, r.records_out), ("api", 20000, 20000));
    assert_eq!(r.state_entries, 7, "one counter per key");
    assert!(r.last_aligned_epoch >= 1, "barriers reached the output");
    let c = r.checkpoints.as_ref().expect("checkpointing is on");
    assert_eq!(c.backend, "memory");
    assert!(c.decided >= 1 && c.last_decided >= 2, "{c:?}");
    assert_eq!(c.current_epoch, c.last_decided, "the final checkpoint was decided: {c:?}");
}

#[tokio::test]
async fn config_errors_surface_through_the_api() {
    let dir = Dir::new();
    let path = dir.config("streams:\n  - input: { type: generate }\n    pipeline: { thread_nmu: 2 }\n    output: { type: drop }\n");
    let err = EngineConfig::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("config.yaml:3:17") && err.contains("thread_num"), "{err}");
}
