//! Input types: `generate`, `file`, `stdin`, `kafka`.
//!
//! Contract: [`TYPES`] maps each `type:` name to a builder that deserializes the section's
//! raw struct (unknown keys rejected), applies the defaults from `model.rs`, resolves paths and
//! checks ranges. To add an input: a raw struct, a builder, and one entry in `TYPES`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use super::ctx::{non_empty_list, non_empty_path, Ctx};
use super::dispatch::{schema_of, Entry};
use super::error::ConfigError;
use super::model::*;
use super::spans::YPath;

/// Known input types, in documentation order: name, schema, builder (see `dispatch::Entry`).
pub(crate) const TYPES: &[Entry<InputConfig>] = &[
    Entry { name: "generate", schema: schema_of::<RawGenerate>, build: generate },
    Entry { name: "file", schema: schema_of::<RawFile>, build: file },
    Entry { name: "stdin", schema: schema_of::<RawStdin>, build: stdin },
    Entry { name: "kafka", schema: schema_of::<RawKafka>, build: kafka },
];

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawGenerate {
    count: Option<u64>,
    rate_per_sec: Option<u64>,
    keys: Option<u64>,
    payload_bytes: Option<usize>,
    seed: Option<u64>,
    batch_size: Option<usize>,
}

fn generate(ctx: &Ctx, value: Value, path: &YPath) -> Result<InputConfig, ConfigError> {
    let raw: RawGenerate = ctx.de(value, path, &["type"])?;
    let d = GenerateInput::default();
    let cfg = GenerateInput {
        count: raw.count,
        rate_per_sec: raw.rate_per_sec,
        keys: raw.keys.unwrap_or(d.keys),
        payload_bytes: raw.payload_bytes.unwrap_or(d.payload_bytes),
        seed: raw.seed.unwrap_or(d.seed),
        batch_size: raw.batch_size.unwrap_or(d.batch_size),
    };
    ctx.at_least(&path.key("keys"), cfg.keys, 1)?;
    ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
    if let Some(rate) = cfg.rate_per_sec {
        ctx.at_least(&path.key("rate_per_sec"), rate, 1)?;
    }
    Ok(InputConfig::Generate(cfg))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: PathBuf,
    batch_size: Option<usize>,
    key_field: Option<String>,
    rate_per_sec: Option<u64>,
}

fn file(ctx: &Ctx, value: Value, path: &YPath) -> Result<InputConfig, ConfigError> {
    let raw: RawFile = ctx.de(value, path, &["type"])?;
    let cfg = FileInput {
        path: non_empty_path(ctx, raw.path, &path.key("path"))?,
        batch_size: raw.batch_size.unwrap_or(DEFAULT_INPUT_BATCH_SIZE),
        key_field: raw.key_field,
        rate_per_sec: raw.rate_per_sec,
    };
    ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
    if let Some(rate) = cfg.rate_per_sec {
        ctx.at_least(&path.key("rate_per_sec"), rate, 1)?;
    }
    Ok(InputConfig::File(cfg))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStdin {
    batch_size: Option<usize>,
    key_field: Option<String>,
}

fn stdin(ctx: &Ctx, value: Value, path: &YPath) -> Result<InputConfig, ConfigError> {
    let raw: RawStdin = ctx.de(value, path, &["type"])?;
    let cfg = StdinInput { batch_size: raw.batch_size.unwrap_or(DEFAULT_INPUT_BATCH_SIZE), key_field: raw.key_field };
    ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
    Ok(InputConfig::Stdin(cfg))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Vec<String>,
    topics: Vec<String>,
    consumer_group: Option<String>,
    client_id: Option<String>,
    start_from: Option<String>,
    isolation_level: Option<String>,
    batch_size: Option<usize>,
    max_batch_bytes: Option<usize>,
    max_wait_ms: Option<u64>,
    stop_at_end: Option<bool>,
    rate_per_sec: Option<u64>,
    assignment: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
}

fn kafka(ctx: &Ctx, value: Value, path: &YPath) -> Result<InputConfig, ConfigError> {
    let raw: RawKafka = ctx.de(value, path, &["type"])?;
    let cfg = KafkaInput {
        brokers: non_empty_list(ctx, raw.brokers, &path.key("brokers"))?,
        topics: non_empty_list(ctx, raw.topics, &path.key("topics"))?,
        consumer_group: raw.consumer_group,
        client_id: raw.client_id.unwrap_or_else(|| DEFAULT_KAFKA_CLIENT_ID.into()),
        start_from: ctx.named(raw.start_from, &path.key("start_from"), "start_from", StartFrom::NAMES, StartFrom::from_name, StartFrom::Earliest)?,
        isolation_level: ctx.named(
            raw.isolation_level,
            &path.key("isolation_level"),
            "isolation_level",
            IsolationLevel::NAMES,
            IsolationLevel::from_name,
            IsolationLevel::ReadCommitted,
        )?,
        batch_size: raw.batch_size.unwrap_or(DEFAULT_INPUT_BATCH_SIZE),
        max_batch_bytes: raw.max_batch_bytes.unwrap_or(DEFAULT_KAFKA_MAX_BATCH_BYTES),
        max_wait_ms: raw.max_wait_ms.unwrap_or(DEFAULT_KAFKA_MAX_WAIT_MS),
        stop_at_end: raw.stop_at_end.unwrap_or(false),
        rate_per_sec: raw.rate_per_sec,
        assignment: ctx.named(raw.assignment, &path.key("assignment"), "assignment", Assignment::NAMES, Assignment::from_name, Assignment::All)?,
        options: raw.options.unwrap_or_default(),
    };
    if let Some(rate) = cfg.rate_per_sec {
        ctx.at_least(&path.key("rate_per_sec"), rate, 1)?;
    }
    ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
    ctx.at_least(&path.key("max_batch_bytes"), cfg.max_batch_bytes, 1)?;
    Ok(InputConfig::Kafka(cfg))
}
