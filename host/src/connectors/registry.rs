//! The connector registry: every input and output type, one line each.
//!
//! Contract: a connector is one file that defines its settings type and implements [`Source`]
//! or [`Sink`] for it: its `type:` name, the raw YAML struct (unknown keys refused; its JSON
//! Schema is what `arkflow schema` prints), the checks that turn the raw struct into settings
//! (errors located by the config `Ctx`), its capabilities, and how it opens. Adding a connector
//! is that file plus one line in [`INPUTS`] or [`OUTPUTS`]; the loader
//! (`EngineConfig::from_file`, in `crate::registry`), `arkflow schema` and the engine all read
//! these tables, and
//! `host/tests/docs.rs` checks that docs/CONFIG.md documents every key of every entry.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::config::{schema_of, ConfigError, Ctx, Entry, InputConfig, OutputConfig, SinkCaps, SinkSpec, SourceCaps, SourceSpec, YPath};
use crate::connectors::input::Input;
use crate::connectors::output::Output;

/// What an input gets when it opens.
pub struct SourceCx<'a> {
    /// The stream's name (for messages).
    pub stream: &'a str,
    /// `state_management.enabled`: the stream takes checkpoints and tells the input of decisions.
    pub checkpoints: bool,
    /// The consumer group of an input that names none (`arkflow-{operator_id}`).
    pub default_group: &'a str,
    /// Kafka figures of the stream.
    pub kafka: Arc<crate::connectors::kafka::KafkaMetrics>,
}

/// Where a sink of a checkpointing stream decides and commits.
pub struct SinkPlace<'a> {
    pub store: &'a Arc<dyn crate::state::backend::ObjectStore>,
    /// The checkpoint scope (the operator id, or a group session's scope).
    pub scope: &'a str,
    pub generation: u64,
    pub key_groups: u32,
    /// The outbox producer shared by a group's sessions.
    pub producer: Option<&'a Arc<rdkafka::producer::ThreadedProducer<crate::connectors::kafka::outbox::OutboxCtx>>>,
}

/// What an output gets when it opens.
pub struct SinkCx<'a> {
    /// The stream's name.
    pub stream: &'a str,
    /// The sink's id in its stream: `output`, `error_output`, `outputs.<name>`.
    pub sink: &'a str,
    /// `state_management.exactly_once` (with `place`: the sink opens in its exactly-once form).
    pub exactly_once: bool,
    /// Where a checkpointing stream's sink decides and commits; None when the stream does not
    /// checkpoint (outputs append, at-least-once).
    pub place: Option<&'a SinkPlace<'a>>,
}

/// One input type.
pub(crate) trait Source: std::fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The `type:` name.
    const NAME: &'static str;
    /// The section as written (without `type`), with `#[serde(deny_unknown_fields)]`.
    type Raw: DeserializeOwned + schemars::JsonSchema;
    /// Applies defaults, resolves paths and checks ranges; `at` is the section's place.
    fn from_raw(ctx: &Ctx, raw: Self::Raw, at: &YPath) -> Result<Self, ConfigError>;
    /// Default: replayable, unpartitioned, no key field.
    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: true, ..SourceCaps::default() }
    }
    fn open(&self, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>>;
}

/// One output type.
pub(crate) trait Sink: std::fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    const NAME: &'static str;
    type Raw: DeserializeOwned + schemars::JsonSchema;
    fn from_raw(ctx: &Ctx, raw: Self::Raw, at: &YPath) -> Result<Self, ConfigError>;
    fn capabilities(&self) -> SinkCaps {
        SinkCaps::default()
    }
    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>>;
    /// A sink whose capabilities say it `decides`: opens it as the stream's decider (only for
    /// the main output of a checkpointing, exactly-once stream), before recovery.
    fn decider(&self, _cx: &DeciderCx<'_>) -> anyhow::Result<Option<Decider>> {
        Ok(None)
    }
}

/// What a deciding sink gets when it opens.
pub struct DeciderCx<'a> {
    pub stream: &'a str,
    pub operator_id: &'a str,
    /// The consumer group whose offsets the decisions carry (an input with `group_offsets`).
    pub input_group: Option<&'a str>,
    pub kafka: Arc<crate::connectors::kafka::KafkaMetrics>,
}

/// A sink that decides each epoch: the decider the coordinator asks, the last decision it
/// holds (recovery trusts it over the store), and the stream's main output.
pub struct Decider {
    pub decider: Arc<dyn crate::checkpoint::ExternalDecider>,
    pub last: Option<crate::checkpoint::ExternalDecision>,
    pub output: Box<dyn Output>,
}

impl<T: Source> SourceSpec for T {
    fn type_name(&self) -> &'static str {
        T::NAME
    }
    fn caps(&self) -> SourceCaps {
        self.capabilities()
    }
}

impl<T: Sink> SinkSpec for T {
    fn type_name(&self) -> &'static str {
        T::NAME
    }
    fn caps(&self) -> SinkCaps {
        self.capabilities()
    }
}

type OpenDecider = fn(&OutputConfig, &DeciderCx<'_>) -> anyhow::Result<Option<Decider>>;
type OpenSource = fn(&InputConfig, &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>>;
type OpenSink = fn(&OutputConfig, &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>>;

/// An input type as the loader (`config`) and the engine (`open`) see it.
pub struct SourceEntry {
    pub(crate) config: Entry<InputConfig>,
    open: OpenSource,
}

/// An output type as the loader and the engine see it.
pub struct SinkEntry {
    pub(crate) config: Entry<OutputConfig>,
    open: OpenSink,
    decider: OpenDecider,
}

impl SourceEntry {
    /// The `type:` name.
    pub fn name(&self) -> &'static str {
        self.config.name
    }
}

impl SinkEntry {
    /// The `type:` name.
    pub fn name(&self) -> &'static str {
        self.config.name
    }
}

/// The entry of input type `T`.
pub(crate) const fn source<T: Source>() -> SourceEntry {
    SourceEntry { config: Entry { name: T::NAME, schema: schema_of::<T::Raw>, build: parse_source::<T> }, open: open_source::<T> }
}

/// The entry of output type `T`.
pub(crate) const fn sink<T: Sink>() -> SinkEntry {
    SinkEntry { config: Entry { name: T::NAME, schema: schema_of::<T::Raw>, build: parse_sink::<T> }, open: open_sink::<T>, decider: decider_of::<T> }
}

fn parse_source<T: Source>(ctx: &Ctx, value: Value, at: &YPath) -> Result<InputConfig, ConfigError> {
    let raw: T::Raw = ctx.de(value, at, &["type"])?;
    Ok(InputConfig::new(T::from_raw(ctx, raw, at)?))
}

fn parse_sink<T: Sink>(ctx: &Ctx, value: Value, at: &YPath) -> Result<OutputConfig, ConfigError> {
    let raw: T::Raw = ctx.de(value, at, &["type"])?;
    Ok(OutputConfig::new(T::from_raw(ctx, raw, at)?))
}

fn open_source<T: Source>(cfg: &InputConfig, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
    match cfg.get::<T>() {
        Some(t) => t.open(cx),
        None => anyhow::bail!("input type {} was opened as {}", cfg.type_name(), T::NAME),
    }
}

fn open_sink<T: Sink>(cfg: &OutputConfig, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
    match cfg.get::<T>() {
        Some(t) => t.open(cx),
        None => anyhow::bail!("output type {} was opened as {}", cfg.type_name(), T::NAME),
    }
}

fn decider_of<T: Sink>(cfg: &OutputConfig, cx: &DeciderCx<'_>) -> anyhow::Result<Option<Decider>> {
    match cfg.get::<T>() {
        Some(t) => t.decider(cx),
        None => anyhow::bail!("output type {} was opened as {}", cfg.type_name(), T::NAME),
    }
}

/// Every input type, in documentation order.
pub static INPUTS: &[SourceEntry] = &[
    source::<crate::connectors::input::GenerateConfig>(),
    source::<crate::connectors::input::FileInputConfig>(),
    source::<crate::connectors::input::StdinConfig>(),
    source::<crate::connectors::input::memory::MemoryConfig>(),
    source::<crate::connectors::kafka::KafkaInputConfig>(),
    source::<crate::connectors::input::http::HttpInputConfig>(),
    source::<crate::connectors::mqtt::MqttInputConfig>(),
    source::<crate::connectors::nats::NatsInputConfig>(),
];

/// Every output type, in documentation order (for `output:`, `error_output:` and `outputs:`).
pub static OUTPUTS: &[SinkEntry] = &[
    sink::<crate::connectors::output::StdoutConfig>(),
    sink::<crate::connectors::output::FileOutputConfig>(),
    sink::<crate::connectors::kafka::KafkaOutputConfig>(),
    sink::<crate::connectors::output::S3OutputConfig>(),
    sink::<crate::connectors::output::HttpOutputConfig>(),
    sink::<crate::connectors::output::PostgresOutputConfig>(),
    sink::<crate::connectors::mqtt::MqttOutputConfig>(),
    sink::<crate::connectors::nats::NatsOutputConfig>(),
    sink::<crate::connectors::output::RedisOutputConfig>(),
    sink::<crate::connectors::output::DropConfig>(),
];

/// Opens the input `cfg` describes.
pub fn open_input(cfg: &InputConfig, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
    let entry = INPUTS.iter().find(|e| e.config.name == cfg.type_name());
    let Some(entry) = entry else { anyhow::bail!("input type {} is not registered", cfg.type_name()) };
    (entry.open)(cfg, cx)
}

fn sink_entry(cfg: &OutputConfig) -> anyhow::Result<&'static SinkEntry> {
    let entry = OUTPUTS.iter().find(|e| e.config.name == cfg.type_name());
    entry.ok_or_else(|| anyhow::anyhow!("output type {} is not registered", cfg.type_name()))
}

/// Opens the output `cfg` describes.
pub fn open_output(cfg: &OutputConfig, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
    (sink_entry(cfg)?.open)(cfg, cx)
}

/// Opens the output `cfg` describes as its stream's decider (None: it does not decide).
pub fn open_decider(cfg: &OutputConfig, cx: &DeciderCx<'_>) -> anyhow::Result<Option<Decider>> {
    (sink_entry(cfg)?.decider)(cfg, cx)
}
