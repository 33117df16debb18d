//! Configuration: the typed model (`model`) and the YAML loader that produces it.
//!
//! Contract: `EngineConfig::from_file(path)` / `EngineConfig::from_yaml_str(text, origin)`
//! (defined in `crate::registry`, which hands the connector and processor tables to
//! [`load_file`] / [`load_str`]) are the only ways the host turns YAML into an [`EngineConfig`]. Every error is a [`ConfigError`]
//! whose `Display` is the full message, `file:line:col: ...` when the problem has a place in
//! the file. The format is documented in `docs/CONFIG.md`; defaults live in `model.rs`.

pub mod http_auth;
pub mod model;
pub use model::*;

mod connector;
mod ctx;
mod dispatch;
mod error;
mod interp;
mod load;
mod schema;
mod spans;

pub(crate) use connector::{Codecs, Tables};
pub use connector::{DynEq, ProcessorCaps, ProcessorSpec, SinkCaps, SinkSpec, SourceCaps, SourceSpec};
pub(crate) use ctx::{non_empty_list, non_empty_path, Ctx};
pub(crate) use dispatch::{schema_of, Entry};
pub(crate) use load::{load as load_str, load_file, s3_config, RawS3};
pub(crate) use model::named_enum;
pub(crate) use schema::json_schema_of;
pub(crate) use spans::YPath;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_codec;
#[cfg(test)]
mod tests_errors;

pub use error::{ConfigError, ConfigErrorKind, Location};
