//! Input types: `generate`, `file`, `stdin`.
//!
//! Contract: [`TYPES`] maps each `type:` name to a builder that deserializes the section's
//! raw struct (unknown keys rejected), applies the defaults from `model.rs`, resolves paths and
//! checks ranges. To add an input: a raw struct, a builder, and one entry in `TYPES`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use super::ctx::Ctx;
use super::dispatch::Build;
use super::error::ConfigError;
use super::model::*;
use super::spans::YPath;

/// Known input types, in documentation order.
pub(crate) const TYPES: &[(&str, Build<InputConfig>)] =
    &[("generate", generate), ("file", file), ("stdin", stdin)];

/// The schema of each type's section, from the raw structs below (see `schema.rs`).
pub(crate) const SCHEMAS: &[(&str, super::schema::SchemaFn)] =
    &[("generate", super::schema::of::<RawGenerate>), ("file", super::schema::of::<RawFile>), ("stdin", super::schema::of::<RawStdin>)];

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
    let cfg = StdinInput {
        batch_size: raw.batch_size.unwrap_or(DEFAULT_INPUT_BATCH_SIZE),
        key_field: raw.key_field,
    };
    ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
    Ok(InputConfig::Stdin(cfg))
}

/// Rejects an empty path and resolves a relative one against the config file's directory.
pub(crate) fn non_empty_path(ctx: &Ctx, p: PathBuf, at: &YPath) -> Result<PathBuf, ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(ctx.invalid(at, format!("{at} must not be empty")));
    }
    Ok(ctx.resolve(p))
}
