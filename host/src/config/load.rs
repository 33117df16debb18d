//! Entry points: `EngineConfig::from_file` / `from_yaml_str`, and the top-level sections.
//!
//! Contract: text -> `${VAR}` interpolation -> span map (yaml-rust2) -> `serde_yaml::Value` ->
//! raw structs (`deny_unknown_fields`, via `Ctx::de`) -> typed model with defaults applied and
//! relative paths resolved -> cross-stream validation. The first problem found is returned as a
//! `ConfigError` located in the file as written.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::connector::{ProcessorConfig, Tables};
use super::ctx::Ctx;
use super::dispatch::{dispatch, Entry};
use super::error::{ConfigError, ConfigErrorKind as K};
use super::interp::{interpolate, LineIndex};
use super::model::*;
use super::spans::{self, SpanMap, YPath};
use super::validate;

/// The root as the schema generator sees it.
pub(crate) type RawRootSchema = RawRoot;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoot {
    state_management: Option<RawStateManagement>,
    streams: Vec<RawStream>,
    http: Option<RawHttp>,
    status_interval_ms: Option<u64>,
    shutdown_timeout_ms: Option<u64>,
    plugin_cache: Option<RawPluginCache>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// default 127.0.0.1:9464
    address: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPluginCache {
    /// default true
    enabled: Option<bool>,
    /// default $ARKFLOW_PLUGIN_CACHE, else ~/.cache/arkflow/plugins
    path: Option<PathBuf>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStateManagement {
    enabled: Option<bool>,
    backend_type: Option<String>,
    checkpoint_interval_ms: Option<u64>,
    retained_checkpoints: Option<u32>,
    exactly_once: Option<bool>,
    state_timeout_ms: Option<u64>,
    s3_config: Option<RawS3>,
    local_config: Option<RawLocal>,
    key_groups: Option<u32>,
    checkpoint_timeout_ms: Option<u64>,
    tolerated_checkpoint_failures: Option<u32>,
    gc_grace_ms: Option<u64>,
    hybrid_config: Option<RawHybrid>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHybrid {
    cache_kb: Option<u64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawS3 {
    pub(crate) bucket: String,
    pub(crate) region: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) endpoint_url: Option<String>,
}

/// The S3 settings of `raw` at `at` (`state_management.s3_config`, an `s3` output): defaults
/// applied, an empty bucket refused.
pub(crate) fn s3_config(ctx: &Ctx, raw: RawS3, at: &YPath) -> Result<S3Config, ConfigError> {
    if raw.bucket.trim().is_empty() {
        let at = at.key("bucket");
        return Err(ctx.invalid(&at, format!("{at} must not be empty")));
    }
    let d = S3Config::new(raw.bucket);
    Ok(S3Config {
        region: raw.region.unwrap_or(d.region.clone()),
        prefix: raw.prefix.unwrap_or(d.prefix.clone()),
        access_key_id: raw.access_key_id,
        secret_access_key: raw.secret_access_key,
        endpoint_url: raw.endpoint_url,
        ..d
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawLocal {
    path: Option<PathBuf>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: Option<String>,
    #[schemars(with = "serde_json::Value")]
    input: Value,
    pipeline: Option<RawPipeline>,
    #[schemars(with = "serde_json::Value")]
    output: Value,
    #[schemars(with = "Option<serde_json::Value>")]
    error_output: Option<Value>,
    #[schemars(with = "Option<serde_json::Value>")]
    outputs: Option<Value>,
    key_by: Option<String>,
    state: Option<RawStreamState>,
    event_time: Option<RawEventTime>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawEventTime {
    field: Option<String>,
    max_delay_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    interval_ms: Option<u64>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    thread_num: Option<usize>,
    batch_size: Option<usize>,
    channel_capacity: Option<usize>,
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    processors: Option<Vec<Value>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawStreamState {
    operator_id: Option<String>,
    enabled: Option<bool>,
    custom_keys: Option<Vec<String>>,
}

/// Reads and loads the config file at `path` (relative paths inside resolve against its
/// directory), dispatching connector and processor types on `tables` (see `EngineConfig::from_file`).
pub(crate) fn load_file(path: &Path, tables: &Tables) -> Result<EngineConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(K::Io, &path.display().to_string(), format!("cannot read config file: {e}")))?;
    load(&text, Some(path), &|name| std::env::var(name).ok(), tables)
}

/// Loads config text (see `EngineConfig::from_yaml_str`) with an injectable environment and
/// the registries' `tables`.
pub(crate) fn load(text: &str, origin: Option<&Path>, env: &dyn Fn(&str) -> Option<String>, tables: &Tables) -> Result<EngineConfig, ConfigError> {
    let file = origin.map_or_else(|| "<config>".to_string(), |p| p.display().to_string());
    let base_dir = origin.map(|p| p.parent().unwrap_or(Path::new("")).to_path_buf());
    let interp = interpolate(text, env).map_err(|e| ConfigError::new(K::Interpolation, &file, e.message).at(Some(LineIndex::new(text).position(e.index))))?;
    let expanded_lines = LineIndex::new(&interp.text);
    let spans = spans::build(&interp.text);
    let parsed = serde_yaml::from_str::<Value>(&interp.text);
    let (span_map, span_err) = match spans {
        Ok(m) => (m, None),
        Err(e) => (SpanMap::default(), Some(e)),
    };
    let ctx = Ctx::new(file.clone(), base_dir, span_map, interp, text);
    if let Some(e) = span_err {
        let msg = format!("invalid YAML: {}", e.message);
        return Err(ConfigError::new(K::Syntax, &file, msg).at(Some(ctx.position(e.index))));
    }
    let mut value = parsed.map_err(|e| {
        let loc = e.location().map(|l| ctx.position(expanded_lines.index(l.line(), l.column())));
        ConfigError::new(K::Syntax, &file, format!("invalid YAML: {e}")).at(loc)
    })?;
    value.apply_merge().map_err(|e| ConfigError::new(K::Syntax, &file, format!("invalid YAML merge key (<<): {e}")))?;
    if value.is_null() {
        let msg = "the configuration is empty: expected a mapping with at least a `streams:` list";
        return Err(ConfigError::new(K::MissingKey, &file, msg));
    }
    let root: RawRoot = ctx.de(value, &YPath::root(), &[])?;
    let state_management = state_management(&ctx, root.state_management)?;
    let streams = (root.streams.into_iter().enumerate()).map(|(i, raw)| stream(&ctx, tables, i, raw)).collect::<Result<Vec<_>, _>>()?;
    let http = match root.http {
        Some(h) => {
            let at = YPath::root().key("http").key("address");
            let address: std::net::SocketAddr = h
                .address
                .as_deref()
                .unwrap_or(DEFAULT_HTTP_ADDRESS)
                .parse()
                .map_err(|e| ctx.invalid(&at, format!("{at} must be IP:port, e.g. 127.0.0.1:9464 ({e})")))?;
            Some(HttpConfig { address })
        }
        None => None,
    };
    let cfg = EngineConfig {
        state_management,
        streams,
        source: origin.map(Path::to_path_buf),
        http,
        status_interval_ms: root.status_interval_ms.unwrap_or(10_000),
        shutdown_timeout_ms: root.shutdown_timeout_ms.unwrap_or(60_000),
        plugin_cache: root.plugin_cache.map(|c| match c.enabled.unwrap_or(true) {
            false => None,
            true => c.path.map(|p| ctx.resolve(p)).or_else(crate::util::dirs::plugin_cache),
        }),
    };
    validate::check(&ctx, &cfg)?;
    Ok(cfg)
}

fn state_management(ctx: &Ctx, raw: Option<RawStateManagement>) -> Result<StateManagementConfig, ConfigError> {
    let path = YPath::root().key("state_management");
    let d = StateManagementConfig::default();
    let Some(r) = raw else {
        return Ok(StateManagementConfig { local_config: LocalConfig { path: ctx.resolve(d.local_config.path) }, ..d });
    };
    let backend_path = path.key("backend_type");
    let backend_type = ctx.named(r.backend_type, &backend_path, "backend_type", BackendType::NAMES, BackendType::from_name, d.backend_type)?;
    let s3_config = r.s3_config.map(|s| s3_config(ctx, s, &path.key("s3_config"))).transpose()?;
    if s3_config.is_none() && matches!(backend_type, BackendType::S3 | BackendType::Hybrid) {
        let msg = format!("state_management.s3_config is required when backend_type is `{}` (add s3_config: {{bucket: ...}})", backend_type.name());
        return Err(ctx.at_value(K::MissingKey, &backend_path, msg));
    }
    let local_path = r.local_config.and_then(|l| l.path).unwrap_or(d.local_config.path);
    let cfg = StateManagementConfig {
        enabled: r.enabled.unwrap_or(d.enabled),
        backend_type,
        checkpoint_interval_ms: r.checkpoint_interval_ms.unwrap_or(d.checkpoint_interval_ms),
        retained_checkpoints: r.retained_checkpoints.unwrap_or(d.retained_checkpoints),
        exactly_once: r.exactly_once.unwrap_or(d.exactly_once),
        state_timeout_ms: r.state_timeout_ms,
        s3_config,
        local_config: LocalConfig { path: super::ctx::non_empty_path(ctx, local_path, &path.key("local_config").key("path"))? },
        key_groups: r.key_groups.unwrap_or(d.key_groups),
        checkpoint_timeout_ms: r.checkpoint_timeout_ms,
        tolerated_checkpoint_failures: r.tolerated_checkpoint_failures.unwrap_or(d.tolerated_checkpoint_failures),
        gc_grace_ms: r.gc_grace_ms.unwrap_or(d.gc_grace_ms),
        hybrid_config: HybridConfig { cache_kb: r.hybrid_config.and_then(|h| h.cache_kb).unwrap_or(d.hybrid_config.cache_kb) },
        from_savepoint: None,
    };
    ctx.at_least(&path.key("hybrid_config").key("cache_kb"), cfg.hybrid_config.cache_kb, 1)?;
    ctx.at_least_if_set(&path.key("checkpoint_timeout_ms"), cfg.checkpoint_timeout_ms, 1)?;
    ctx.at_least(&path.key("checkpoint_interval_ms"), cfg.checkpoint_interval_ms, 1)?;
    ctx.at_least(&path.key("retained_checkpoints"), cfg.retained_checkpoints, 1)?;
    ctx.at_least(&path.key("key_groups"), cfg.key_groups, 1)?;
    ctx.at_least_if_set(&path.key("state_timeout_ms"), cfg.state_timeout_ms, 1)?;
    Ok(cfg)
}

fn stream(ctx: &Ctx, tables: &Tables, index: usize, raw: RawStream) -> Result<StreamConfig, ConfigError> {
    let path = YPath::root().key("streams").index(index);
    let name = raw.name.unwrap_or_else(|| default_stream_name(index));
    let (mut raw_input, mut raw_output) = (raw.input, raw.output);
    let decode = take_codec(ctx, &mut raw_input, &path.key("input"), tables.codecs.map(|c| c.decode))?;
    let encode = take_codec(ctx, &mut raw_output, &path.key("output"), tables.codecs.map(|c| c.encode))?;
    let input = dispatch(ctx, raw_input, &path.key("input"), "input", &tables.inputs)?;
    let mut pipeline = pipeline(ctx, tables, raw.pipeline, &path.key("pipeline"))?;
    pipeline.codecs = (decode.is_some(), encode.is_some());
    pipeline.processors.splice(0..0, decode);
    pipeline.processors.extend(encode);
    let output = dispatch(ctx, raw_output, &path.key("output"), "output", &tables.outputs)?;
    let error_output = match raw.error_output {
        Some(v) => {
            no_codec(ctx, &v, &path.key("error_output"), "error records are JSON")?;
            Some(dispatch(ctx, v, &path.key("error_output"), "output", &tables.outputs)?)
        }
        None => None,
    };
    let outputs = named_outputs(ctx, tables, raw.outputs, &path.key("outputs"))?;
    let state = match raw.state {
        None => StreamStateConfig::for_stream(&name),
        Some(s) => StreamStateConfig {
            operator_id: s.operator_id.unwrap_or_else(|| name.clone()),
            enabled: s.enabled.unwrap_or(true),
            custom_keys: s.custom_keys.unwrap_or_default(),
        },
    };
    let event_time = event_time(ctx, raw.event_time, &path.key("event_time"))?;
    Ok(StreamConfig { name, input, pipeline, output, error_output, outputs, state, key_by: raw.key_by, event_time })
}

/// Takes `codec:` out of an input or output section (`at`): the stage it stands for (`stage`:
/// `decode` for an input, `encode` for an output), built from the `codec:` mapping as that
/// stage's settings, so its errors point into the mapping.
fn take_codec(ctx: &Ctx, section: &mut Value, at: &YPath, stage: Option<&'static Entry<ProcessorConfig>>) -> Result<Option<ProcessorConfig>, ConfigError> {
    let Value::Mapping(m) = section else { return Ok(None) };
    let Some(codec) = m.remove("codec") else { return Ok(None) };
    let at = at.key("codec");
    let Some(stage) = stage else { return Err(ctx.unknown_key(&at, &[])) };
    let Value::Mapping(c) = codec else {
        let msg = format!("invalid value for {at}: expected a mapping of `{}` settings (`{{format: avro, schema_file: ...}}`)", stage.name);
        return Err(ctx.at_value(K::InvalidType, &at, msg));
    };
    if c.contains_key("type") {
        let msg = format!(
            "{}: a codec has no `type`; its keys are the `type: {}` stage's (`format`, `schema_file`, `registry_url`, ...)",
            at.key("type"),
            stage.name
        );
        return Err(ctx.at_key(K::Invalid, &at.key("type"), msg));
    }
    (stage.build)(ctx, Value::Mapping(c), &at).map(Some)
}

/// Refuses `codec:` on an output section other than the main `output:`.
fn no_codec(ctx: &Ctx, section: &Value, at: &YPath, why: &str) -> Result<(), ConfigError> {
    match section.get("codec") {
        Some(_) => Err(ctx.at_key(K::Invalid, &at.key("codec"), format!("{}: only `input:` and the main `output:` take a codec ({why})", at.key("codec")))),
        None => Ok(()),
    }
}

fn event_time(ctx: &Ctx, raw: Option<RawEventTime>, path: &YPath) -> Result<Option<EventTimeConfig>, ConfigError> {
    let Some(r) = raw else { return Ok(None) };
    let d = EventTimeConfig::default();
    if r.field.as_deref().is_some_and(str::is_empty) {
        return Err(ctx.invalid(&path.key("field"), "`field` must name a JSON field (omit it to use the record timestamp)"));
    }
    let cfg = EventTimeConfig {
        field: r.field,
        max_delay_ms: r.max_delay_ms.unwrap_or(d.max_delay_ms),
        idle_timeout_ms: r.idle_timeout_ms,
        interval_ms: r.interval_ms.unwrap_or(d.interval_ms),
    };
    ctx.at_least_if_set(&path.key("idle_timeout_ms"), cfg.idle_timeout_ms, 1)?;
    ctx.at_least(&path.key("interval_ms"), cfg.interval_ms, 1)?;
    Ok(Some(cfg))
}

/// `outputs: {name: {type: ...}, ...}`: the stream's named outputs, in file order. A name is
/// 1-64 characters of `[A-Za-z0-9_-]` (it is part of object paths and metric labels).
fn named_outputs(ctx: &Ctx, tables: &Tables, raw: Option<Value>, path: &YPath) -> Result<Vec<(String, OutputConfig)>, ConfigError> {
    let map = match raw {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(m)) => m,
        Some(_) => {
            let msg =
                format!("invalid value for {path}: expected a mapping of output names to outputs (`outputs: {{audit: {{type: file, path: audit.jsonl}}}}`)");
            return Err(ctx.at_value(K::InvalidType, path, msg));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let Value::String(name) = k else {
            let msg = format!("{path}: output names must be strings");
            return Err(ctx.invalid(path, msg));
        };
        let at = path.key(&name);
        let valid = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            let msg = format!("{at}: output name `{name}` must be 1-64 characters of letters, digits, `_` and `-`");
            return Err(ctx.at_key(K::Invalid, &at, msg));
        }
        no_codec(ctx, &v, &at, "records routed to a named output leave the pipeline where they are routed; put an `encode` stage before that one")?;
        out.push((name, dispatch(ctx, v, &at, "output", &tables.outputs)?));
    }
    Ok(out)
}

fn pipeline(ctx: &Ctx, tables: &Tables, raw: Option<RawPipeline>, path: &YPath) -> Result<PipelineConfig, ConfigError> {
    let d = PipelineConfig::default();
    let Some(r) = raw else { return Ok(d) };
    let procs_path = path.key("processors");
    let processors = (r.processors.unwrap_or_default().into_iter().enumerate())
        .map(|(j, v)| dispatch(ctx, v, &procs_path.index(j), "processor", &tables.processors))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = PipelineConfig {
        thread_num: r.thread_num.unwrap_or(d.thread_num),
        batch_size: r.batch_size.unwrap_or(d.batch_size),
        channel_capacity: r.channel_capacity.unwrap_or(d.channel_capacity),
        processors,
        codecs: (false, false),
    };
    ctx.at_least(&path.key("thread_num"), cfg.thread_num, 1)?;
    ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
    ctx.at_least(&path.key("channel_capacity"), cfg.channel_capacity, 1)?;
    Ok(cfg)
}
