//! Loader tests: the documented format parses, defaults apply, paths resolve, `${VAR}` expands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::connectors::input::{FileInputConfig, GenerateConfig, StdinConfig, DEFAULT_INPUT_BATCH_SIZE};
use crate::connectors::kafka::{
    Acks, Assignment, Compression, IsolationLevel, KafkaInputConfig, KafkaOutputConfig, StartFrom, DEFAULT_KAFKA_CONTROL_TOPIC, DEFAULT_KAFKA_MAX_BATCH_BYTES,
    DEFAULT_KAFKA_MAX_WAIT_MS,
};
use crate::connectors::output::{DropConfig, FileOutputConfig, OutputFormat, StdoutConfig};
use crate::processor::native_counter::NativeCounterConfig;
use crate::processor::sql::{ArrowToJsonConfig, JsonToArrowConfig, SqlType, DEFAULT_SQL_TABLE};
use crate::processor::wasm::{FailurePolicy, WasiGrants, WasmLimits, WasmProcessorConfig};

/// The loader with the registry's connector tables.
pub(super) fn load(text: &str, origin: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<EngineConfig, ConfigError> {
    super::load::load(text, origin, env, &crate::registry::tables())
}

pub(super) fn env(name: &str) -> Option<String> {
    match name {
        "ARK_BUCKET" => Some("env-bucket".into()),
        "ARK_THREADS" => Some("3".into()),
        _ => None,
    }
}

pub(super) fn parse(text: &str) -> Result<EngineConfig, ConfigError> {
    load(text, Some(Path::new("config.yaml")), &env)
}

pub(super) const SEED: &str = r#"state_management:
  enabled: true
  backend_type: memory  # memory, s3, hybrid, local
  checkpoint_interval_ms: 30000
  retained_checkpoints: 5
  exactly_once: true
  state_timeout_ms: 3600000
  s3_config:
    bucket: "my-arkflow-state"
    region: "us-east-1"
    prefix: "checkpoints/"
    # access_key_id, secret_access_key, endpoint_url optional
  local_config: { path: ./state }   # optional
  key_groups: 128                   # optional
streams:
  - name: orders          # optional, default "stream-<index>"
    input:
      type: generate       # generate | file | stdin
      count: 1000
      keys: 10
    pipeline:
      thread_num: 4
      batch_size: 256        # optional
      channel_capacity: 16   # optional
      processors:
        - type: wasm
          path: ../plugins/dist/counter.wasm
          config: { key_field: user_id, nested: {a: 1} }   # values -> strings
          limits: { memory_mb: 64, batch_timeout_ms: 5000, max_output_bytes: 16777216 }  # all optional
          retries: 2
          on_failure: fail     # fail | error_output
          grants: { env: [HOME], inherit_stdio: false }
        - type: native_counter
          store: default
    output:
      type: stdout       # stdout {format: json|raw} | file {path, format} | drop
    error_output:
      type: file
      path: errors.jsonl
    key_by: user_id      # optional
    state:
      operator_id: "order-aggregator"
      enabled: true
      custom_keys: ["user_counts"]
"#;

#[test]
fn seed_parses() {
    let cfg = load(SEED, Some(Path::new("/etc/arkflow/config.yaml")), &env).unwrap();
    assert_eq!(cfg.source.as_deref(), Some(Path::new("/etc/arkflow/config.yaml")));
    let sm = &cfg.state_management;
    assert!(sm.enabled && sm.exactly_once);
    assert_eq!(sm.backend_type, BackendType::Memory);
    assert_eq!((sm.checkpoint_interval_ms, sm.retained_checkpoints, sm.key_groups), (30000, 5, 128));
    assert_eq!(sm.state_timeout_ms, Some(3_600_000));
    let s3 = sm.s3_config.as_ref().unwrap();
    assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.prefix.as_str()), ("my-arkflow-state", "us-east-1", "checkpoints/"));
    assert_eq!(s3.access_key_id, None);
    assert_eq!(sm.local_config.path, PathBuf::from("/etc/arkflow/state"));

    let s = &cfg.streams[0];
    assert_eq!(s.name, "orders");
    assert_eq!(s.input, InputConfig::new(GenerateConfig { count: Some(1000), keys: 10, ..GenerateConfig::default() }));
    assert_eq!((s.pipeline.thread_num, s.pipeline.batch_size, s.pipeline.channel_capacity), (4, 256, 16));
    let w = s.pipeline.processors[0].get::<WasmProcessorConfig>().expect("wasm");
    assert_eq!(w.path, PathBuf::from("/etc/arkflow/../plugins/dist/counter.wasm"));
    let expected: BTreeMap<String, String> = [("key_field".to_string(), "user_id".to_string()), ("nested".to_string(), r#"{"a":1}"#.to_string())].into();
    assert_eq!(w.config, expected);
    assert_eq!(w.limits, WasmLimits::default());
    assert_eq!((w.retries, w.on_failure), (2, FailurePolicy::Fail));
    assert_eq!(w.grants, WasiGrants { env: vec!["HOME".into()], inherit_stdio: false });
    assert_eq!(s.pipeline.processors[1], ProcessorConfig::new(NativeCounterConfig { store: "default".into() }));
    assert_eq!(s.output, OutputConfig::new(StdoutConfig { format: OutputFormat::Json }));
    assert_eq!(s.error_output, Some(OutputConfig::new(FileOutputConfig { path: "/etc/arkflow/errors.jsonl".into(), format: OutputFormat::Json })));
    assert_eq!(s.key_by.as_deref(), Some("user_id"));
    assert_eq!(s.state, StreamStateConfig { operator_id: "order-aggregator".into(), enabled: true, custom_keys: vec!["user_counts".into()] });
}

#[test]
fn defaults_applied() {
    let cfg = load("streams:\n  - input: {type: stdin}\n    output: {type: drop}\n", None, &env).unwrap();
    assert_eq!(cfg.source, None);
    assert_eq!(cfg.state_management, StateManagementConfig::default());
    assert_eq!(cfg.state_management.local_config.path, PathBuf::from("./arkflow-state"));
    assert_eq!(cfg.state_management.key_groups, 128);
    let s = &cfg.streams[0];
    assert_eq!(s.name, "stream-0");
    assert_eq!(s.input, InputConfig::new(StdinConfig { batch_size: 1024, key_field: None }));
    assert_eq!(s.pipeline, PipelineConfig { thread_num: 1, batch_size: 256, channel_capacity: 16, processors: vec![], codecs: (false, false) });
    assert_eq!(s.output, OutputConfig::new(DropConfig));
    assert_eq!(s.error_output, None);
    assert_eq!(s.key_by, None);
    assert_eq!(s.state, StreamStateConfig { operator_id: "stream-0".into(), enabled: true, custom_keys: vec![] });

    let text = "state_management: {enabled: true}\nstreams:\n  - name: a\n    input: {type: generate}\n    pipeline:\n      processors:\n        - {type: wasm, path: p.wasm}\n        - {type: native_counter}\n    output: {type: stdout, format: raw}\n    state: {custom_keys: [x]}\n";
    let cfg = parse(text).unwrap();
    let sm = &cfg.state_management;
    assert!(sm.enabled && !sm.exactly_once);
    assert_eq!((sm.checkpoint_interval_ms, sm.retained_checkpoints, sm.state_timeout_ms), (30_000, 5, None));
    let s = &cfg.streams[0];
    assert_eq!(s.input, InputConfig::new(GenerateConfig::default()));
    assert_eq!(GenerateConfig::default().keys, 1000);
    let w = s.pipeline.processors[0].get::<WasmProcessorConfig>().expect("wasm");
    assert_eq!(w.limits.max_output_bytes, 16 * 1024 * 1024);
    assert_eq!((w.retries, w.on_failure, w.config.len()), (2, FailurePolicy::Fail, 0));
    assert_eq!(w.grants, WasiGrants::default());
    assert_eq!(s.pipeline.processors[1], ProcessorConfig::new(NativeCounterConfig::default()));
    assert_eq!(s.output, OutputConfig::new(StdoutConfig { format: OutputFormat::Raw }));
    assert_eq!(s.state.operator_id, "a", "operator_id defaults to the stream name");
    assert!(s.state.enabled);
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let text = "state_management: {local_config: {path: ./st}}\nstreams:\n  - input: {type: file, path: in/data.jsonl}\n    pipeline: {processors: [{type: wasm, path: ./p.wasm}, {type: wasm, path: /abs/q.wasm}]}\n    output: {type: file, path: out.jsonl}\n";
    let cfg = load(text, Some(Path::new("conf/dir/c.yaml")), &env).unwrap();
    assert_eq!(cfg.state_management.local_config.path, PathBuf::from("conf/dir/st"));
    let s = &cfg.streams[0];
    let f = &s.input.get::<FileInputConfig>().unwrap();
    assert_eq!(f.path, PathBuf::from("conf/dir/in/data.jsonl"));
    let paths = s.pipeline.processors.iter().map(|p| p.get::<WasmProcessorConfig>().expect("wasm").path.clone());
    assert_eq!(paths.collect::<Vec<_>>(), vec![PathBuf::from("conf/dir/p.wasm"), PathBuf::from("/abs/q.wasm")]);
    assert_eq!(s.output, OutputConfig::new(FileOutputConfig { path: "conf/dir/out.jsonl".into(), format: OutputFormat::Json }));
    // Without an origin, paths stay as written.
    let cfg = load(text, None, &env).unwrap();
    let f = &cfg.streams[0].input.get::<FileInputConfig>().unwrap();
    assert_eq!(f.path, PathBuf::from("in/data.jsonl"));
    assert_eq!(cfg.state_management.local_config.path, PathBuf::from("./st"));
}

#[test]
fn env_interpolation() {
    let text = "state_management:\n  backend_type: s3\n  s3_config: {bucket: ${ARK_BUCKET}, prefix: \"$${NOT_A_VAR}\"}\nstreams:\n  - name: ${ARK_NAME:-fallback}\n    input: {type: stdin}\n    pipeline: {thread_num: ${ARK_THREADS}}\n    output: {type: drop}\n";
    let cfg = parse(text).unwrap();
    let s3 = cfg.state_management.s3_config.unwrap();
    assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("env-bucket", "${NOT_A_VAR}"));
    assert_eq!(cfg.streams[0].name, "fallback");
    assert_eq!(cfg.streams[0].pipeline.thread_num, 3);

    let e = parse("streams:\n  - name: x\n    key_by: ${ARK_MISSING}\n").unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::Interpolation);
    assert_eq!(e.location(), Some(("config.yaml".into(), 3, 13)));
    assert!(e.to_string().starts_with("config.yaml:3:13: environment variable `ARK_MISSING` is not set"), "{e}");

    // The real process environment is used by the public entry point.
    std::env::set_var("ARKFLOW_CONFIG_TEST_THREADS", "2");
    let cfg =
        EngineConfig::from_yaml_str("streams: [{input: {type: stdin}, output: {type: drop}, pipeline: {thread_num: ${ARKFLOW_CONFIG_TEST_THREADS}}}]", None)
            .unwrap();
    assert_eq!(cfg.streams[0].pipeline.thread_num, 2);
}

#[test]
fn locations_survive_interpolation() {
    // `${ARK_BUCKET}` expands to 10 characters; the bad value after it must still be reported
    // at its column in the file as written.
    let text = "streams:\n  - {name: \"${ARK_BUCKET}\", input: {type: generate, count: abc}, output: {type: drop}}\n";
    let e = parse(text).unwrap_err();
    assert_eq!(e.location(), Some(("config.yaml".into(), 2, 60)), "{e}");
}

#[test]
fn from_file_reads_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, "streams:\n  - input: {type: file, path: data.jsonl}\n    output: {type: drop}\n").unwrap();
    let cfg = EngineConfig::from_file(&p).unwrap();
    assert_eq!(cfg.source.as_deref(), Some(p.as_path()));
    let f = &cfg.streams[0].input.get::<FileInputConfig>().unwrap();
    assert_eq!(f.path, dir.path().join("data.jsonl"));
    let e = EngineConfig::from_file(dir.path().join("nope.yaml")).unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::Io);
    assert!(e.to_string().contains("nope.yaml: cannot read config file"), "{e}");
}

#[test]
fn kafka_input_and_output_defaults() {
    let text = "streams:\n  - input: {type: kafka, brokers: [\"localhost:9092\"], topics: [orders]}\n    output: {type: kafka, brokers: [\"localhost:9092\"], topic: counts, acks: 1, idempotent: false, headers: {src: arkflow}}\n";
    let cfg = parse(text).unwrap();
    let i = cfg.streams[0].input.get::<KafkaInputConfig>().expect("kafka input");
    assert_eq!(
        *i,
        KafkaInputConfig {
            brokers: vec!["localhost:9092".into()],
            topics: vec!["orders".into()],
            consumer_group: None,
            client_id: "arkflow".into(),
            start_from: StartFrom::Earliest,
            isolation_level: IsolationLevel::ReadCommitted,
            batch_size: DEFAULT_INPUT_BATCH_SIZE,
            max_batch_bytes: DEFAULT_KAFKA_MAX_BATCH_BYTES,
            max_wait_ms: DEFAULT_KAFKA_MAX_WAIT_MS,
            stop_at_end: false,
            assignment: Assignment::All,
            rate_per_sec: None,
            options: BTreeMap::new(),
            partitioned_by: None,
        }
    );
    let o = cfg.streams[0].output.get::<KafkaOutputConfig>().expect("kafka output");
    assert_eq!((o.acks, o.idempotent, o.exactly_once, o.compression), (Acks::One, false, false, Compression::None));
    assert_eq!(o.headers.get("src").map(String::as_str), Some("arkflow"));
    assert_eq!(o.control_topic, DEFAULT_KAFKA_CONTROL_TOPIC);
    let text = text.replace(", acks: 1, idempotent: false", "");
    let parsed = parse(&text).unwrap();
    let o = parsed.streams[0].output.get::<KafkaOutputConfig>().unwrap();
    assert_eq!((o.acks, o.idempotent), (Acks::All, true), "idempotent by default with acks all");
}

#[test]
fn sql_processor_section() {
    let text = "streams:\n  - input: {type: stdin}\n    pipeline:\n      processors:\n        - type: sql\n          query: \"SELECT user_id, COUNT(*) FROM flow GROUP BY user_id\"\n          schema: {user_id: string, amount: float}\n    output: {type: stdout}\n";
    let cfg = parse(text).unwrap();
    let s = cfg.streams[0].pipeline.processors[0].get::<crate::processor::sql::SqlProcessorConfig>().expect("sql");
    assert_eq!((s.table_name.as_str(), s.mode, s.store.as_deref()), (DEFAULT_SQL_TABLE, None, None));
    assert_eq!(s.schema, vec![("amount".to_string(), SqlType::Float), ("user_id".to_string(), SqlType::String)]);
    let bad = text.replace("user_id: string", "user_id: text");
    assert!(parse(&bad).unwrap_err().to_string().contains("unknown type `text`"));
    let bad = text.replace("          schema", "          mode: streaming\n          schema");
    assert!(parse(&bad).unwrap_err().to_string().contains("unknown mode `streaming`"));
}

#[test]
fn codec_processor_sections() {
    let text = "streams:\n  - input: {type: stdin}\n    pipeline:\n      processors:\n        - {type: json_to_arrow, schema: {n: int}}\n        - type: arrow_to_json\n    output: {type: stdout}\n";
    let cfg = parse(text).unwrap();
    assert_eq!(
        cfg.streams[0].pipeline.processors,
        vec![ProcessorConfig::new(JsonToArrowConfig { schema: vec![("n".into(), SqlType::Int)] }), ProcessorConfig::new(ArrowToJsonConfig)]
    );
    assert!(parse(&text.replace("type: arrow_to_json", "{type: arrow_to_json, x: 1}")).unwrap_err().to_string().contains("unknown key"));
}
