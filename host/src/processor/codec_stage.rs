//! The `decode` and `encode` processors: Avro or Protobuf values (plain, or in the
//! schema-registry wire format) to JSON records and back, through `crate::codec`. Put `decode`
//! first in a pipeline to read an input's encoded values (any input), `encode` last to write
//! encoded values (any output).
//!
//! Contract:
//! - One record in, one record out, key, headers, time and source position kept; `decode` with
//!   `key_field` sets each record's key from that field of the decoded value (so keyed stages
//!   after it route by it). Neither keeps state.
//! - A value that does not fit the schema (or, decoding the wire format, names a schema id the
//!   registry lacks) fails that record alone: it goes to `error_output` with class
//!   `invalid-input`, code `decode` / `encode`, the codec's message and its source position, and
//!   the rest of the batch goes on. A registry that cannot be reached fails the batch and stops
//!   the stream (a restart reads again from the last checkpoint).
//! - Settings are checked, and the local schema compiled, when the config loads (errors at the
//!   YAML place); `encode` with `registry_url` registers its schema under `subject` when the stream
//!   starts.

use std::path::PathBuf;
use std::sync::Arc;

use super::registry::{BuildCx, ProcessorType};
use super::{BatchCtx, BatchError, FailurePolicy, Processor, ProcessorFactory, StateSlot};
use crate::codec::{Codec, CodecError, Format, Registry, Schema, SchemaSource};
use crate::config::http_auth::{Auth, RawAuth};
use crate::config::{ConfigError, Ctx, ProcessorCaps, YPath};
use crate::record::{ErrorClass, Outcome, Record, RecordError};

/// `type: decode` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeConfig {
    /// The local schema; None: every value names its schema in the registry.
    pub schema: Option<SchemaSource>,
    /// Decode the schema-registry wire format, schemas fetched from this URL; default none
    pub registry_url: Option<String>,
    /// Credentials sent to the registry (`{type: basic, username, password}` or `{type: bearer, token}`); default none
    pub registry_auth: Option<Auth>,
    /// Field of the decoded value to key records by; default none
    pub key_field: Option<String>,
}

/// `type: encode` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeConfig {
    pub schema: SchemaSource,
    /// Frame values in the schema-registry wire format, the schema registered at this URL
    pub registry_url: Option<String>,
    /// The registry subject (with `registry_url`)
    pub subject: Option<String>,
    /// Credentials sent to the registry; default none
    pub registry_auth: Option<Auth>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDecode {
    format: Option<String>,
    schema_file: Option<PathBuf>,
    message: Option<String>,
    registry_url: Option<String>,
    registry_auth: Option<RawAuth>,
    key_field: Option<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEncode {
    format: String,
    schema_file: PathBuf,
    message: Option<String>,
    registry_url: Option<String>,
    registry_auth: Option<RawAuth>,
    subject: Option<String>,
}

/// The local schema of `format`, `schema_file` and `message`, compiled once to check it.
fn schema_source(ctx: &Ctx, format: Option<String>, file: PathBuf, message: Option<String>, at: &YPath) -> Result<SchemaSource, ConfigError> {
    let format = ctx.named(format, &at.key("format"), "format", Format::NAMES, Format::from_name, Format::Avro)?;
    let file = ctx.resolve(crate::config::non_empty_path(ctx, file, &at.key("schema_file"))?);
    let source = match (format, message) {
        (Format::Avro, None) => SchemaSource::Avro(file),
        (Format::Avro, Some(_)) => return Err(ctx.invalid(&at.key("message"), format!("{} applies to `format: protobuf` only", at.key("message")))),
        (Format::Protobuf, Some(message)) => SchemaSource::Protobuf { file, message },
        (Format::Protobuf, None) => return Err(ctx.invalid(at, format!("{} is required with `format: protobuf` (the message's full name)", at.key("message")))),
    };
    Schema::load(&source).map_err(|e| ctx.invalid(&at.key("schema_file"), format!("{}: {e:#}", at.key("schema_file"))))?;
    Ok(source)
}

/// `registry_auth`, which needs `registry_url`.
fn registry_auth(ctx: &Ctx, raw: Option<RawAuth>, url: &Option<String>, at: &YPath) -> Result<Option<Auth>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let path = at.key("registry_auth");
    if url.is_none() {
        return Err(ctx.invalid(&path, format!("{path} needs `registry_url`")));
    }
    Auth::from_raw(ctx, raw, &path).map(Some)
}

fn registry_url(ctx: &Ctx, url: Option<String>, at: &YPath) -> Result<Option<String>, ConfigError> {
    if let Some(u) = &url {
        if !matches!(reqwest::Url::parse(u), Ok(p) if matches!(p.scheme(), "http" | "https")) {
            return Err(ctx.invalid(&at.key("registry_url"), format!("{} must be an http:// or https:// URL (got `{u}`)", at.key("registry_url"))));
        }
    }
    Ok(url)
}

impl ProcessorType for DecodeConfig {
    const NAME: &'static str = "decode";
    type Raw = RawDecode;

    fn from_raw(ctx: &Ctx, raw: RawDecode, at: &YPath) -> Result<Self, ConfigError> {
        let registry_url = registry_url(ctx, raw.registry_url, at)?;
        let registry_auth = registry_auth(ctx, raw.registry_auth, &registry_url, at)?;
        let schema = match raw.schema_file {
            Some(file) => Some(schema_source(ctx, raw.format, file, raw.message, at)?),
            None if registry_url.is_some() && raw.format.is_none() && raw.message.is_none() => None,
            None => return Err(ctx.invalid(at, format!("{} needs `schema_file` (and `format`), or `registry_url` alone", at.describe()))),
        };
        if schema.is_some() && registry_url.is_some() {
            return Err(
                ctx.invalid(&at.key("registry_url"), format!("{}: the wire format names each value's schema; leave out `schema_file`", at.key("registry_url")))
            );
        }
        Ok(DecodeConfig { schema, registry_url, registry_auth, key_field: raw.key_field })
    }

    fn capabilities(&self) -> ProcessorCaps {
        ProcessorCaps { may_rewrite_key: self.key_field.is_some(), ..ProcessorCaps::default() }
    }

    fn build(&self, _cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        let codec = match (&self.schema, &self.registry_url) {
            (Some(s), _) => Codec::Plain(Schema::load(s)?),
            (None, Some(url)) => Codec::RegistryDecode(Arc::new(Registry::new(url, self.registry_auth.as_ref())?)),
            (None, None) => anyhow::bail!("decode: no schema"),
        };
        Ok(Arc::new(CodecFactory { codec: Arc::new(codec), way: Way::Decode, key_field: self.key_field.clone() }))
    }
}

impl ProcessorType for EncodeConfig {
    const NAME: &'static str = "encode";
    type Raw = RawEncode;

    fn from_raw(ctx: &Ctx, raw: RawEncode, at: &YPath) -> Result<Self, ConfigError> {
        let schema = schema_source(ctx, Some(raw.format), raw.schema_file, raw.message, at)?;
        let registry_url = registry_url(ctx, raw.registry_url, at)?;
        let registry_auth = registry_auth(ctx, raw.registry_auth, &registry_url, at)?;
        if registry_url.is_some() != raw.subject.is_some() {
            return Err(ctx.invalid(at, format!("{}: `registry_url` and `subject` go together", at.describe())));
        }
        if let (SchemaSource::Protobuf { file, .. }, Some(_)) = (&schema, &registry_url) {
            if file.extension().is_none_or(|e| e != "proto") {
                return Err(ctx.invalid(&at.key("schema_file"), format!("{}: registering a Protobuf schema needs its .proto file", at.key("schema_file"))));
            }
        }
        Ok(EncodeConfig { schema, registry_url, subject: raw.subject, registry_auth })
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        let schema = Schema::load(&self.schema)?;
        let codec = match (&self.registry_url, &self.subject) {
            (Some(url), Some(subject)) => {
                let (format, text, path) = match (&self.schema, &schema) {
                    (SchemaSource::Avro(p), _) => (Format::Avro, std::fs::read_to_string(p)?, None),
                    (SchemaSource::Protobuf { file, .. }, Schema::Protobuf(m)) => (Format::Protobuf, std::fs::read_to_string(file)?, Some(m.index_path())),
                    _ => anyhow::bail!("encode: the schema is not of its format"),
                };
                let id =
                    Registry::new(url, self.registry_auth.as_ref())?.register(subject, format, &text).map_err(|e| anyhow::anyhow!("{}: {e:#}", cx.label))?;
                tracing::info!(subject = %subject, id, "encode: schema registered");
                Codec::RegistryEncode { schema, frame: crate::codec::registry::frame(id, path.as_deref()) }
            }
            _ => Codec::Plain(schema),
        };
        Ok(Arc::new(CodecFactory { codec: Arc::new(codec), way: Way::Encode, key_field: None }))
    }
}

/// Which way a codec stage converts: its stage name, and the error code of its failed records.
#[derive(Clone, Copy)]
enum Way {
    Decode,
    Encode,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Decode => DecodeConfig::NAME,
            Way::Encode => EncodeConfig::NAME,
        }
    }
}

struct CodecFactory {
    codec: Arc<Codec>,
    way: Way,
    key_field: Option<String>,
}

impl ProcessorFactory for CodecFactory {
    fn name(&self) -> &str {
        self.way.name()
    }
    fn keeps_state(&self) -> bool {
        false
    }
    fn instantiate(&self, _: &super::ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        Ok(Box::new(CodecStage { codec: self.codec.clone(), way: self.way, key_field: self.key_field.clone() }))
    }
}

struct CodecStage {
    codec: Arc<Codec>,
    way: Way,
    key_field: Option<String>,
}

impl CodecStage {
    fn one(&self, r: &Record) -> Result<Outcome, BatchError> {
        let code = self.way.name();
        let value = match self.way {
            Way::Decode => r.value.as_deref().map(|v| self.codec.decode(v)),
            Way::Encode => r.value.as_deref().map(|v| self.codec.encode(v)),
        };
        let fail = |message: String| Outcome::Fail(RecordError { class: ErrorClass::InvalidInput, code: code.into(), message });
        let value = match value {
            None => return Ok(fail("the record has no value".into())),
            Some(Ok(v)) => v,
            Some(Err(CodecError::Data(e))) => return Ok(fail(e)),
            Some(Err(CodecError::Unavailable(e))) => return Err(BatchError { message: format!("{code}: {e}"), policy: FailurePolicy::Fail }),
        };
        let key = match &self.key_field {
            Some(f) => crate::util::json::field_bytes(&value, f).or_else(|| r.key.clone()),
            None => r.key.clone(),
        };
        Ok(Outcome::Emit(vec![Record {
            key,
            value: Some(value),
            headers: r.headers.clone(),
            timestamp_ms: r.timestamp_ms,
            partition: r.partition,
            offset: r.offset,
        }]))
    }
}

impl Processor for CodecStage {
    fn name(&self) -> &str {
        self.way.name()
    }

    fn process(&mut self, _: &BatchCtx, records: &[Record], _: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        records.iter().map(|r| self.one(r)).collect()
    }

    fn on_checkpoint(&mut self, _: u64, _: u32, _: i64, _: &mut StateSlot) -> Result<(), BatchError> {
        Ok(())
    }
}
