//! Output types: `stdout`, `file`, `kafka`, `drop` (used for both `output:` and `error_output:`).
//!
//! Contract: [`TYPES`] maps each `type:` name to a builder, as in `inputs.rs`. `format` accepts
//! the names in `OutputFormat::NAMES`. To add an output: a raw struct, a builder, one entry.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use super::ctx::Ctx;
use super::ctx::{non_empty_list, non_empty_path};
use super::dispatch::{schema_of, Entry};
use super::error::ConfigError;
use super::model::*;
use super::spans::YPath;

/// Known output types, in documentation order: name, schema, builder (see `dispatch::Entry`).
pub(crate) const TYPES: &[Entry<OutputConfig>] = &[
    Entry { name: "stdout", schema: schema_of::<RawStdout>, build: stdout },
    Entry { name: "file", schema: schema_of::<RawFile>, build: file },
    Entry { name: "kafka", schema: schema_of::<RawKafka>, build: kafka },
    Entry { name: "drop", schema: schema_of::<RawDrop>, build: drop_output },
];

fn format(ctx: &Ctx, raw: Option<String>, path: &YPath) -> Result<OutputFormat, ConfigError> {
    ctx.named(raw, &path.key("format"), "format", OutputFormat::NAMES, OutputFormat::from_name, OutputFormat::default())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStdout {
    format: Option<String>,
}

fn stdout(ctx: &Ctx, value: Value, path: &YPath) -> Result<OutputConfig, ConfigError> {
    let raw: RawStdout = ctx.de(value, path, &["type"])?;
    Ok(OutputConfig::Stdout(StdoutOutput { format: format(ctx, raw.format, path)? }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawFile {
    path: PathBuf,
    format: Option<String>,
}

fn file(ctx: &Ctx, value: Value, path: &YPath) -> Result<OutputConfig, ConfigError> {
    let raw: RawFile = ctx.de(value, path, &["type"])?;
    let out_path = non_empty_path(ctx, raw.path, &path.key("path"))?;
    Ok(OutputConfig::File(FileOutput { path: out_path, format: format(ctx, raw.format, path)? }))
}

/// `acks: all` and `acks: 1` are both natural YAML.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum NameOrNumber {
    Name(String),
    Number(i64),
}

impl NameOrNumber {
    fn into_name(self) -> String {
        match self {
            NameOrNumber::Name(s) => s,
            NameOrNumber::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Vec<String>,
    topic: String,
    topic_field: Option<String>,
    key_field: Option<String>,
    headers: Option<std::collections::BTreeMap<String, String>>,
    compression: Option<String>,
    acks: Option<NameOrNumber>,
    idempotent: Option<bool>,
    exactly_once: Option<bool>,
    exactly_once_mode: Option<String>,
    control_topic: Option<String>,
    client_id: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
}

fn kafka(ctx: &Ctx, value: Value, path: &YPath) -> Result<OutputConfig, ConfigError> {
    let raw: RawKafka = ctx.de(value, path, &["type"])?;
    let acks = ctx.named(raw.acks.map(NameOrNumber::into_name), &path.key("acks"), "acks", Acks::NAMES, Acks::from_name, Acks::All)?;
    let idempotent = raw.idempotent.unwrap_or(acks == Acks::All);
    let exactly_once = raw.exactly_once.unwrap_or(false);
    if idempotent && acks != Acks::All {
        return Err(
            ctx.invalid(&path.key("idempotent"), format!("{} needs acks: all (an idempotent producer waits for all in-sync replicas)", path.key("idempotent")))
        );
    }
    if exactly_once && acks != Acks::All {
        return Err(ctx.invalid(&path.key("exactly_once"), format!("{} needs acks: all", path.key("exactly_once"))));
    }
    let topic = non_empty_list(ctx, vec![raw.topic], &path.key("topic"))?.remove(0);
    Ok(OutputConfig::Kafka(KafkaOutput {
        brokers: non_empty_list(ctx, raw.brokers, &path.key("brokers"))?,
        topic,
        topic_field: raw.topic_field,
        key_field: raw.key_field,
        headers: raw.headers.unwrap_or_default(),
        compression: ctx.named(raw.compression, &path.key("compression"), "compression", Compression::NAMES, Compression::from_name, Compression::None)?,
        acks,
        idempotent: idempotent || exactly_once,
        exactly_once,
        exactly_once_mode: ctx.named(
            raw.exactly_once_mode,
            &path.key("exactly_once_mode"),
            "exactly_once_mode",
            ExactlyOnceMode::NAMES,
            ExactlyOnceMode::from_name,
            ExactlyOnceMode::Transactions,
        )?,
        control_topic: raw.control_topic.unwrap_or_else(|| DEFAULT_KAFKA_CONTROL_TOPIC.into()),
        client_id: raw.client_id.unwrap_or_else(|| DEFAULT_KAFKA_CLIENT_ID.into()),
        options: raw.options.unwrap_or_default(),
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDrop {}

fn drop_output(ctx: &Ctx, value: Value, path: &YPath) -> Result<OutputConfig, ConfigError> {
    let RawDrop {} = ctx.de(value, path, &["type"])?;
    Ok(OutputConfig::Drop)
}
