//! The typed model of the `pipeline.processors` entries (`wasm`, `sql`, codecs, `native_counter`)
//! with their limits and policies. Kept apart from `model.rs` only for size; re-exported there,
//! and its defaults are written down there.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum ProcessorConfig {
    Wasm(WasmProcessorConfig),
    Sql(SqlProcessorConfig),
    /// JSON records -> one Arrow IPC record per batch (declared columns, else inferred).
    JsonToArrow {
        schema: Vec<(String, SqlType)>,
    },
    /// Arrow IPC records -> one JSON record per row.
    ArrowToJson,
    /// Built-in twin of the `counter` plugin, for benchmarks only.
    NativeCounter(NativeCounterConfig),
}

/// `type: sql` — a DataFusion query over each batch (`mode: batch`) or a continuous GROUP BY
/// aggregation over keyed state (`mode: continuous`).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlProcessorConfig {
    pub query: String,
    /// default "flow"
    pub table_name: String,
    /// default: continuous when the stream's state is enabled and the query has a GROUP BY, else batch
    pub mode: Option<SqlMode>,
    /// State store of continuous mode; default: the stream's first `custom_keys` entry, else "default"
    pub store: Option<String>,
    /// Declared columns (name, type), in order; default: inferred from each batch
    pub schema: Vec<(String, SqlType)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlMode {
    /// Each batch is a table of its own; results per batch.
    Batch,
    /// Aggregates accumulate over the whole stream in keyed state.
    Continuous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    String,
    Int,
    Float,
    Bool,
}

/// `sql` processor `table_name` default.
pub const DEFAULT_SQL_TABLE: &str = "flow";

#[derive(Debug, Clone, PartialEq)]
pub struct NativeCounterConfig {
    /// default "default"
    pub store: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WasmProcessorConfig {
    /// Path to the component; relative paths are resolved against the config file's directory.
    pub path: PathBuf,
    /// Passed to `init`; scalars as strings, nested values as JSON text. default {}
    pub config: BTreeMap<String, String>,
    pub limits: WasmLimits,
    /// Re-instantiations and retries of a failed batch before `on_failure` applies; default 2
    pub retries: u32,
    /// default Fail
    pub on_failure: FailurePolicy,
    pub grants: WasiGrants,
    /// Swap the plugin live when its file changes (checked every `watch_interval_ms`); default false
    pub watch: bool,
    /// default 1000
    pub watch_interval_ms: u64,
    pub circuit_breaker: CircuitBreaker,
    /// The top-level JSON field the plugin keeps its state by, or [`KEY_BY_RECORD_KEY`] (the
    /// record key as the input read it): the stream routes records by it (`engine::routing`);
    /// default none (the plugin's state needs no routing).
    pub key_by: Option<String>,
}

/// `key_by: record_key` of a `wasm` processor: its state is keyed by the record key.
pub const KEY_BY_RECORD_KEY: &str = "record_key";

/// Quarantine of a processor whose batches keep failing (see `processor::wasm::obs::Breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Batches in a row that failed after retries before the processor is quarantined; 0 = never; default 5
    pub failures: u32,
    /// Quarantine before one trial batch is let through; default 60000
    pub cooldown_ms: u64,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker { failures: 5, cooldown_ms: 60_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Stop the stream with an error.
    Fail,
    /// Send the batch's records to `error_output` and continue.
    ErrorOutput,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WasmLimits {
    /// Linear memory cap per instance; default 64
    pub memory_mb: u64,
    /// CPU deadline per call; default 5000
    pub batch_timeout_ms: u64,
    /// Total bytes a batch may emit (keys + values + headers); default 16 MiB
    pub max_output_bytes: u64,
    /// default 4096
    pub max_key_bytes: u64,
    /// default 1 MiB
    pub max_value_bytes: u64,
    /// Bytes of staged state writes per call; default 64 MiB
    pub max_batch_state_bytes: u64,
    /// Total bytes of this operator's state per worker; default 1 GiB
    pub max_state_bytes: u64,
    /// Log line cap; default 4096
    pub max_log_line: usize,
    /// Plugin log lines per second per processor (all workers), beyond `log_burst`; default 10
    pub log_lines_per_sec: u32,
    /// Plugin log lines let through at once; default 50
    pub log_burst: u32,
}

/// What WASI access the plugin gets. Default: nothing (no env, no files, no network, no stdio).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WasiGrants {
    /// Environment variables passed through by name.
    pub env: Vec<String>,
    /// Let the plugin write to the host's stdout/stderr.
    pub inherit_stdio: bool,
}
