//! Processor types: `wasm`, `sql`, `json_to_arrow`, `arrow_to_json`, `native_counter`.
//!
//! Contract: [`TYPES`] maps each `type:` name to a builder (`dispatch::Entry`), like the connector registry's tables. For `wasm`:
//! `path` is required and resolved against the config file's directory; `config` values become
//! strings (scalars as written, null as "", nested lists/maps as JSON text); every `limits`
//! field is optional and must be >= 1; `on_failure` accepts `FailurePolicy::NAMES`; `watch`
//! (default false) and `watch_interval_ms` (default 1000, >= 1) drive live swaps;
//! `circuit_breaker` (`failures` default 5, 0 = off; `cooldown_ms` default 60000, >= 1).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use super::ctx::non_empty_path;
use super::ctx::Ctx;
use super::dispatch::{schema_of, Entry};
use super::error::{ConfigError, ConfigErrorKind as K};
use super::model::*;
use super::spans::YPath;

/// Known processor types, in documentation order: name, schema, builder (see `dispatch::Entry`).
pub(crate) const TYPES: &[Entry<ProcessorConfig>] = &[
    Entry { name: "wasm", schema: schema_of::<RawWasm>, build: wasm },
    Entry { name: "sql", schema: schema_of::<RawSql>, build: sql },
    Entry { name: "json_to_arrow", schema: schema_of::<RawJsonToArrow>, build: json_to_arrow },
    Entry { name: "arrow_to_json", schema: schema_of::<RawArrowToJson>, build: arrow_to_json },
    Entry { name: "native_counter", schema: schema_of::<RawNativeCounter>, build: native_counter },
];

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawWasm {
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

fn wasm(ctx: &Ctx, value: Value, path: &YPath) -> Result<ProcessorConfig, ConfigError> {
    let raw: RawWasm = ctx.de(value, path, &["type"])?;
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
    Ok(ProcessorConfig::Wasm(cfg))
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

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawNativeCounter {
    store: Option<String>,
}

fn native_counter(ctx: &Ctx, value: Value, path: &YPath) -> Result<ProcessorConfig, ConfigError> {
    let raw: RawNativeCounter = ctx.de(value, path, &["type"])?;
    Ok(ProcessorConfig::NativeCounter(NativeCounterConfig { store: raw.store.unwrap_or_else(|| DEFAULT_STORE.to_string()) }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawSql {
    query: String,
    table_name: Option<String>,
    mode: Option<String>,
    store: Option<String>,
    schema: Option<BTreeMap<String, String>>,
}

fn sql(ctx: &Ctx, value: Value, path: &YPath) -> Result<ProcessorConfig, ConfigError> {
    let raw: RawSql = ctx.de(value, path, &["type"])?;
    if raw.query.trim().is_empty() {
        return Err(ctx.invalid(&path.key("query"), format!("{} must not be empty", path.key("query"))));
    }
    let table_name = raw.table_name.unwrap_or_else(|| DEFAULT_SQL_TABLE.to_string());
    if table_name.is_empty() || !table_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ctx.invalid(&path.key("table_name"), format!("{} must be a plain identifier (letters, digits, _)", path.key("table_name"))));
    }
    let mode = match raw.mode {
        None => None,
        Some(m) => Some(SqlMode::from_name(&m).ok_or_else(|| ctx.unknown_name(&path.key("mode"), "mode", &m, SqlMode::NAMES))?),
    };
    let schema = columns(ctx, raw.schema, path)?;
    Ok(ProcessorConfig::Sql(SqlProcessorConfig { query: raw.query, table_name, mode, store: raw.store, schema }))
}

/// A `schema:` map of column name -> type.
fn columns(ctx: &Ctx, raw: Option<BTreeMap<String, String>>, path: &YPath) -> Result<Vec<(String, SqlType)>, ConfigError> {
    let mut schema = Vec::new();
    for (field, ty) in raw.unwrap_or_default() {
        let t = SqlType::from_name(&ty).ok_or_else(|| ctx.unknown_name(&path.key("schema").key(&field), "type", &ty, SqlType::NAMES))?;
        schema.push((field, t));
    }
    Ok(schema)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawJsonToArrow {
    schema: Option<BTreeMap<String, String>>,
}

fn json_to_arrow(ctx: &Ctx, value: Value, path: &YPath) -> Result<ProcessorConfig, ConfigError> {
    let raw: RawJsonToArrow = ctx.de(value, path, &["type"])?;
    Ok(ProcessorConfig::JsonToArrow { schema: columns(ctx, raw.schema, path)? })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawArrowToJson {}

fn arrow_to_json(ctx: &Ctx, value: Value, path: &YPath) -> Result<ProcessorConfig, ConfigError> {
    let RawArrowToJson {} = ctx.de(value, path, &["type"])?;
    Ok(ProcessorConfig::ArrowToJson)
}
