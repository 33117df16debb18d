//! Output types: `stdout`, `file`, `drop` (used for both `output:` and `error_output:`).
//!
//! Contract: [`TYPES`] maps each `type:` name to a builder, as in `inputs.rs`. `format` accepts
//! the names in `OutputFormat::NAMES`. To add an output: a raw struct, a builder, one entry.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use super::ctx::Ctx;
use super::dispatch::Build;
use super::error::ConfigError;
use super::inputs::non_empty_path;
use super::model::*;
use super::spans::YPath;

/// Known output types, in documentation order.
pub(crate) const TYPES: &[(&str, Build<OutputConfig>)] =
    &[("stdout", stdout), ("file", file), ("drop", drop_output)];

/// The schema of each type's section, from the raw structs below (see `schema.rs`).
pub(crate) const SCHEMAS: &[(&str, super::schema::SchemaFn)] =
    &[("stdout", super::schema::of::<RawStdout>), ("file", super::schema::of::<RawFile>), ("drop", super::schema::of::<RawDrop>)];

fn format(ctx: &Ctx, raw: Option<String>, path: &YPath) -> Result<OutputFormat, ConfigError> {
    ctx.named(
        raw,
        &path.key("format"),
        "format",
        OutputFormat::NAMES,
        OutputFormat::from_name,
        OutputFormat::default(),
    )
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStdout {
    format: Option<String>,
}

fn stdout(ctx: &Ctx, value: Value, path: &YPath) -> Result<OutputConfig, ConfigError> {
    let raw: RawStdout = ctx.de(value, path, &["type"])?;
    Ok(OutputConfig::Stdout(StdoutOutput {
        format: format(ctx, raw.format, path)?,
    }))
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
    Ok(OutputConfig::File(FileOutput {
        path: out_path,
        format: format(ctx, raw.format, path)?,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDrop {}

fn drop_output(ctx: &Ctx, value: Value, path: &YPath) -> Result<OutputConfig, ConfigError> {
    let RawDrop {} = ctx.de(value, path, &["type"])?;
    Ok(OutputConfig::Drop)
}
