//! `type: sql`, `json_to_arrow` and `arrow_to_json` settings (docs/CONFIG.md, "sql").
//!
//! Contract: `query` must not be empty; `table_name` is a plain identifier (default "flow");
//! `mode` accepts `SqlMode::NAMES`; `schema:` maps column names to `SqlType::NAMES`, in the
//! order of the names.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::{ConfigError, Ctx, ProcessorCaps, YPath};
use crate::processor::registry::{BuildCx, ProcessorType};
use crate::processor::ProcessorFactory;

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
    /// How long a window of a windowed continuous query waits for late records after its end,
    /// milliseconds; default 0
    pub allowed_lateness_ms: Option<i64>,
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

/// `type: json_to_arrow` — JSON records -> one Arrow IPC record per batch (declared columns,
/// else inferred).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonToArrowConfig {
    pub schema: Vec<(String, SqlType)>,
}

/// `type: arrow_to_json` — Arrow IPC records -> one JSON record per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ArrowToJsonConfig;

crate::config::named_enum!(SqlMode { "batch" => Batch, "continuous" => Continuous });
crate::config::named_enum!(SqlType { "string" => String, "int" => Int, "float" => Float, "bool" => Bool });

impl ProcessorType for SqlProcessorConfig {
    const NAME: &'static str = "sql";
    type Raw = RawSql;

    fn from_raw(ctx: &Ctx, raw: RawSql, path: &YPath) -> Result<Self, ConfigError> {
        sql(ctx, raw, path)
    }

    /// A batch query may rewrite any field; a continuous one keeps its state by its GROUP BY.
    fn capabilities(&self) -> ProcessorCaps {
        ProcessorCaps { may_rewrite_key: self.mode != Some(SqlMode::Continuous), ..ProcessorCaps::default() }
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        Ok(Arc::new(super::SqlFactory::new(self, cx.label, cx.env, cx.index)?))
    }
}

impl ProcessorType for JsonToArrowConfig {
    const NAME: &'static str = "json_to_arrow";
    type Raw = RawJsonToArrow;

    fn from_raw(ctx: &Ctx, raw: RawJsonToArrow, path: &YPath) -> Result<Self, ConfigError> {
        Ok(JsonToArrowConfig { schema: columns(ctx, raw.schema, path)? })
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        Ok(Arc::new(super::codecs::CodecFactory {
            direction: super::codecs::Direction::JsonToArrow,
            declared: super::declared_schema(&self.schema),
            label: cx.label.to_string(),
        }))
    }
}

impl ProcessorType for ArrowToJsonConfig {
    const NAME: &'static str = "arrow_to_json";
    type Raw = RawArrowToJson;

    fn from_raw(_: &Ctx, _: RawArrowToJson, _: &YPath) -> Result<Self, ConfigError> {
        Ok(ArrowToJsonConfig)
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        Ok(Arc::new(super::codecs::CodecFactory { direction: super::codecs::Direction::ArrowToJson, declared: None, label: cx.label.to_string() }))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSql {
    query: String,
    table_name: Option<String>,
    mode: Option<String>,
    store: Option<String>,
    schema: Option<BTreeMap<String, String>>,
    allowed_lateness_ms: Option<u64>,
}

fn sql(ctx: &Ctx, raw: RawSql, path: &YPath) -> Result<SqlProcessorConfig, ConfigError> {
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
    let allowed_lateness_ms = raw.allowed_lateness_ms.map(|v| v.min(i64::MAX as u64 / 4) as i64);
    Ok(SqlProcessorConfig { query: raw.query, table_name, mode, store: raw.store, schema, allowed_lateness_ms })
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
pub struct RawJsonToArrow {
    schema: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArrowToJson {}
