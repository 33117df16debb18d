//! `type: wasm` settings: a WebAssembly component loaded by path (docs/CONFIG.md, "wasm").
//!
//! Contract: `path` is required and resolved against the config file's directory; `config`
//! values become strings (scalars as written, null as "", nested lists/maps as JSON text); every
//! `limits` field is optional and at least 1 (`log_lines_per_sec` may be 0); `on_failure`
//! accepts `FailurePolicy::NAMES`; `watch` (default false) and `watch_interval_ms` (default 1000,
//! at least 1) drive live swaps; `circuit_breaker` (`failures` default 5, 0 = off; `cooldown_ms`
//! default 60000, at least 1); `key_by` is a field name or `record_key`, never empty.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::config::{non_empty_path, ConfigError, ConfigErrorKind as K, Ctx, ProcessorCaps, YPath};
use crate::processor::registry::{BuildCx, ProcessorType};
use crate::processor::ProcessorFactory;

/// `wasm` processor `retries` default.
pub const DEFAULT_WASM_RETRIES: u32 = 2;

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

impl Default for WasmLimits {
    fn default() -> Self {
        WasmLimits {
            memory_mb: 64,
            batch_timeout_ms: 5_000,
            max_output_bytes: 16 * 1024 * 1024,
            max_key_bytes: 4096,
            max_value_bytes: 1024 * 1024,
            max_batch_state_bytes: 64 * 1024 * 1024,
            max_state_bytes: 1024 * 1024 * 1024,
            max_log_line: 4096,
            log_lines_per_sec: 10,
            log_burst: 50,
        }
    }
}

// Hand-written rather than derived so the type definitions above stay exactly as agreed.
#[allow(clippy::derivable_impls)]
impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy::Fail
    }
}

crate::config::named_enum!(FailurePolicy { "fail" => Fail, "error_output" => ErrorOutput });

impl ProcessorType for WasmProcessorConfig {
    const NAME: &'static str = "wasm";
    type Raw = RawWasm;

    fn from_raw(ctx: &Ctx, raw: RawWasm, path: &YPath) -> Result<Self, ConfigError> {
        wasm(ctx, raw, path)
    }

    /// A plugin may rewrite record keys; failed batches may go to the error output.
    fn capabilities(&self) -> ProcessorCaps {
        ProcessorCaps { may_rewrite_key: true, needs_error_output: self.on_failure == FailurePolicy::ErrorOutput }
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        Ok(Arc::new(super::WasmFactory::load(self, cx.label, cx.index, cx.env)?))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWasm {
    path: PathBuf,
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    config: Option<Mapping>,
    limits: Option<RawLimits>,
    retries: Option<u32>,
    on_failure: Option<String>,
    grants: Option<RawGrants>,
    watch: Option<bool>,
    watch_interval_ms: Option<u64>,
    circuit_breaker: Option<RawBreaker>,
    key_by: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failures: Option<u32>,
    cooldown_ms: Option<u64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<u64>,
    batch_timeout_ms: Option<u64>,
    max_output_bytes: Option<u64>,
    max_key_bytes: Option<u64>,
    max_value_bytes: Option<u64>,
    max_batch_state_bytes: Option<u64>,
    max_state_bytes: Option<u64>,
    max_log_line: Option<usize>,
    log_lines_per_sec: Option<u32>,
    log_burst: Option<u32>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    env: Option<Vec<String>>,
    inherit_stdio: Option<bool>,
}

fn wasm(ctx: &Ctx, raw: RawWasm, path: &YPath) -> Result<WasmProcessorConfig, ConfigError> {
    let cfg = WasmProcessorConfig {
        path: non_empty_path(ctx, raw.path, &path.key("path"))?,
        config: plugin_config(ctx, raw.config.unwrap_or_default(), &path.key("config"))?,
        limits: limits(ctx, raw.limits, &path.key("limits"))?,
        retries: raw.retries.unwrap_or(DEFAULT_WASM_RETRIES),
        on_failure: ctx.named(
            raw.on_failure,
            &path.key("on_failure"),
            "on_failure",
            FailurePolicy::NAMES,
            FailurePolicy::from_name,
            FailurePolicy::default(),
        )?,
        grants: match raw.grants {
            None => WasiGrants::default(),
            Some(g) => WasiGrants { env: g.env.unwrap_or_default(), inherit_stdio: g.inherit_stdio.unwrap_or(false) },
        },
        watch: raw.watch.unwrap_or(false),
        watch_interval_ms: raw.watch_interval_ms.unwrap_or(1000),
        key_by: match raw.key_by {
            Some(k) if k.trim().is_empty() => return Err(ctx.invalid(&path.key("key_by"), format!("{} must not be empty", path.key("key_by")))),
            k => k,
        },
        circuit_breaker: match raw.circuit_breaker {
            None => CircuitBreaker::default(),
            Some(b) => {
                let d = CircuitBreaker::default();
                CircuitBreaker { failures: b.failures.unwrap_or(d.failures), cooldown_ms: b.cooldown_ms.unwrap_or(d.cooldown_ms) }
            }
        },
    };
    ctx.at_least(&path.key("circuit_breaker").key("cooldown_ms"), cfg.circuit_breaker.cooldown_ms, 1)?;
    ctx.at_least(&path.key("watch_interval_ms"), cfg.watch_interval_ms, 1)?;
    Ok(cfg)
}

fn limits(ctx: &Ctx, raw: Option<RawLimits>, path: &YPath) -> Result<WasmLimits, ConfigError> {
    let d = WasmLimits::default();
    let Some(r) = raw else { return Ok(d) };
    let l = WasmLimits {
        memory_mb: r.memory_mb.unwrap_or(d.memory_mb),
        batch_timeout_ms: r.batch_timeout_ms.unwrap_or(d.batch_timeout_ms),
        max_output_bytes: r.max_output_bytes.unwrap_or(d.max_output_bytes),
        max_key_bytes: r.max_key_bytes.unwrap_or(d.max_key_bytes),
        max_value_bytes: r.max_value_bytes.unwrap_or(d.max_value_bytes),
        max_batch_state_bytes: r.max_batch_state_bytes.unwrap_or(d.max_batch_state_bytes),
        max_state_bytes: r.max_state_bytes.unwrap_or(d.max_state_bytes),
        max_log_line: r.max_log_line.unwrap_or(d.max_log_line),
        log_lines_per_sec: r.log_lines_per_sec.unwrap_or(d.log_lines_per_sec),
        log_burst: r.log_burst.unwrap_or(d.log_burst),
    };
    // log_lines_per_sec may be 0 (only the burst, once).
    let checks: [(&str, u64); 9] = [
        ("memory_mb", l.memory_mb),
        ("batch_timeout_ms", l.batch_timeout_ms),
        ("max_output_bytes", l.max_output_bytes),
        ("max_key_bytes", l.max_key_bytes),
        ("max_value_bytes", l.max_value_bytes),
        ("max_batch_state_bytes", l.max_batch_state_bytes),
        ("max_state_bytes", l.max_state_bytes),
        ("max_log_line", l.max_log_line as u64),
        ("log_burst", u64::from(l.log_burst)),
    ];
    for (key, v) in checks {
        ctx.at_least(&path.key(key), v, 1)?;
    }
    Ok(l)
}

/// `config:` -> string map: scalars as written, null as "", lists and mappings as JSON text.
fn plugin_config(ctx: &Ctx, map: Mapping, path: &YPath) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let key = match scalar_text(&k) {
            Some(s) => s,
            None => return Err(ctx.at_value(K::InvalidType, path, format!("keys of {path} must be scalars"))),
        };
        let at = path.key(&key);
        let text = match scalar_text(&v) {
            Some(s) => s,
            None => serde_json::to_string(&v).map_err(|e| ctx.at_value(K::InvalidType, &at, format!("{at} cannot be converted to JSON text: {e}")))?,
        };
        out.insert(key, text);
    }
    Ok(out)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => scalar_text(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}
