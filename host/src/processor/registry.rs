//! The processor registry: every `pipeline.processors` type, one line each.
//!
//! Contract: a processor type is one module that defines its settings type and implements
//! [`ProcessorType`] for it: its `type:` name, the raw YAML struct (unknown keys refused; its
//! JSON Schema is what `arkflow schema` prints), the checks that turn the raw struct into
//! settings (errors located by the config `Ctx`), its capabilities, and how it builds the
//! factory of its per-worker instances. Adding a processor type is that module plus one line in
//! [`PROCESSORS`]; the loader, `arkflow schema`, the engine and `host/tests/docs.rs` read it.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use super::{ProcessorFactory, StreamEnv};
use crate::config::{schema_of, ConfigError, Ctx, Entry, ProcessorCaps, ProcessorConfig, ProcessorSpec, YPath};

/// What a processor type gets when its stage is built.
pub struct BuildCx<'a> {
    /// `streams[<name>].pipeline.processors[<i>]`, for messages.
    pub label: &'a str,
    /// The stage's index in the stream's processors.
    pub index: usize,
    pub env: &'a StreamEnv,
}

/// One processor type.
pub(crate) trait ProcessorType: std::fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The `type:` name.
    const NAME: &'static str;
    /// The section as written (without `type`), with `#[serde(deny_unknown_fields)]`.
    type Raw: DeserializeOwned + schemars::JsonSchema;
    /// Applies defaults, resolves paths and checks ranges; `at` is the section's place.
    fn from_raw(ctx: &Ctx, raw: Self::Raw, at: &YPath) -> Result<Self, ConfigError>;
    /// Default: keeps record keys, never needs an error output.
    fn capabilities(&self) -> ProcessorCaps {
        ProcessorCaps::default()
    }
    /// Compiles and checks the stage (a plugin is loaded and validated here).
    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>>;
}

impl<T: ProcessorType> ProcessorSpec for T {
    fn type_name(&self) -> &'static str {
        T::NAME
    }
    fn caps(&self) -> ProcessorCaps {
        self.capabilities()
    }
}

type Build = fn(&ProcessorConfig, &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>>;

/// A processor type as the loader (`config`) and the engine (`build`) see it.
pub struct ProcessorEntry {
    pub(crate) config: Entry<ProcessorConfig>,
    build: Build,
}

impl ProcessorEntry {
    /// The `type:` name.
    pub fn name(&self) -> &'static str {
        self.config.name
    }
}

/// The entry of processor type `T`.
pub(crate) const fn processor<T: ProcessorType>() -> ProcessorEntry {
    ProcessorEntry { config: Entry { name: T::NAME, schema: schema_of::<T::Raw>, build: parse::<T> }, build: build_of::<T> }
}

fn parse<T: ProcessorType>(ctx: &Ctx, value: Value, at: &YPath) -> Result<ProcessorConfig, ConfigError> {
    let raw: T::Raw = ctx.de(value, at, &["type"])?;
    Ok(ProcessorConfig::new(T::from_raw(ctx, raw, at)?))
}

fn build_of<T: ProcessorType>(cfg: &ProcessorConfig, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
    match cfg.get::<T>() {
        Some(t) => t.build(cx),
        None => anyhow::bail!("processor type {} was built as {}", cfg.type_name(), T::NAME),
    }
}

/// Every processor type, in documentation order.
pub static PROCESSORS: &[ProcessorEntry] = &[
    processor::<super::wasm::WasmProcessorConfig>(),
    processor::<super::sql::SqlProcessorConfig>(),
    processor::<super::sql::JsonToArrowConfig>(),
    processor::<super::sql::ArrowToJsonConfig>(),
    processor::<super::native_counter::NativeCounterConfig>(),
    processor::<super::window::WindowConfig>(),
    processor::<super::codec_stage::DecodeConfig>(),
    processor::<super::codec_stage::EncodeConfig>(),
];

/// Builds the stage `cfg` describes.
pub fn build(cfg: &ProcessorConfig, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
    let entry = PROCESSORS.iter().find(|e| e.config.name == cfg.type_name());
    let Some(entry) = entry else { anyhow::bail!("processor type {} is not registered", cfg.type_name()) };
    (entry.build)(cfg, cx)
}
