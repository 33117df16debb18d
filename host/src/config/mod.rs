//! Configuration: the typed model (`model`) and the YAML loader that produces it.
//!
//! Contract: `EngineConfig::from_file(path)` / `EngineConfig::from_yaml_str(text, origin)` are
//! the only ways the host turns YAML into an [`EngineConfig`]. Every error is a [`ConfigError`]
//! whose `Display` is the full message, `file:line:col: ...` when the problem has a place in
//! the file. The format is documented in `docs/CONFIG.md`; defaults live in `model.rs`.

pub mod model;
pub use model::*;

mod ctx;
mod dispatch;
mod error;
mod inputs;
mod interp;
mod load;
mod outputs;
mod processors;
mod schema;
pub use schema::json_schema;
mod spans;
mod suggest;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;

pub use error::{ConfigError, ConfigErrorKind, Location};
