//! `type:` dispatch for inputs, processors and outputs.
//!
//! Contract: a section such as `input:` must be a mapping with a string `type` key. [`dispatch`]
//! removes `type`, finds the builder registered under that name in the section's table (the
//! connector and processor registries' tables, handed to the loader as `connector::Tables`) and
//! hands it the remaining mapping. Unknown types list the known ones.
//! (serde's internally tagged enums are avoided: they lose error locations.)

use serde_yaml::Value;

use super::ctx::Ctx;
use super::error::{ConfigError, ConfigErrorKind as K};
use super::spans::YPath;
use super::suggest::closest;

/// Builds a typed section from its mapping (without `type`) found at the given path.
pub(crate) type Build<T> = fn(&Ctx, Value, &YPath) -> Result<T, ConfigError>;

/// The JSON Schema of a section's mapping (see `schema.rs`).
pub(crate) type SchemaFn = fn() -> serde_json::Value;

/// One `type:` of a section: its name, the schema of its mapping (from the raw struct its
/// builder deserializes) and its builder. Each section has one table of these, in
/// documentation order; the loader and `arkflow schema` both read it.
pub(crate) struct Entry<T: 'static> {
    pub name: &'static str,
    pub schema: SchemaFn,
    pub build: Build<T>,
}

/// The inline JSON Schema of one raw struct.
pub(crate) fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    let mut v = settings.into_generator().into_root_schema_for::<T>().to_value();
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("title");
    }
    v
}

/// Dispatches the `what` section (e.g. "input") at `path` on its `type`.
pub(crate) fn dispatch<T>(ctx: &Ctx, value: Value, path: &YPath, what: &str, table: &[&Entry<T>]) -> Result<T, ConfigError> {
    let known: Vec<&str> = table.iter().map(|e| e.name).collect();
    let mut map = match value {
        Value::Mapping(m) => m,
        other => {
            let found = match other {
                Value::Null => "an empty value".to_string(),
                Value::String(s) => format!("string \"{s}\""),
                Value::Sequence(_) => "a list".to_string(),
                v => format!("`{}`", serde_yaml::to_string(&v).unwrap_or_default().trim()),
            };
            let msg = format!("invalid value for {path}: expected a mapping with a `type` key (one of: {}), found {found}", known.join(", "));
            return Err(ctx.at_value(K::InvalidType, path, msg));
        }
    };
    let Some(ty) = map.remove("type") else {
        // A misspelt `type` is more likely than a missing one: point at it.
        for key in map.keys().filter_map(Value::as_str) {
            if closest(key, &["type"]).is_some() {
                return Err(ctx.unknown_key(&path.key(key), &["type"]));
            }
        }
        let msg = format!("missing required key `type` in {path} (known {what} types: {})", known.join(", "));
        return Err(ctx.at_value(K::MissingKey, path, msg));
    };
    let type_path = path.key("type");
    let Value::String(ty) = ty else {
        let msg = format!("invalid value for {type_path}: expected a string (one of: {})", known.join(", "));
        return Err(ctx.at_value(K::InvalidType, &type_path, msg));
    };
    match table.iter().find(|e| e.name == ty) {
        Some(e) => (e.build)(ctx, Value::Mapping(map), path),
        None => Err(ctx.unknown_name(&type_path, &format!("{what} type"), &ty, &known)),
    }
}
