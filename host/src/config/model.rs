//! The typed configuration model: what a YAML file means once it is parsed and resolved.
//!
//! Every default lives here, in one place, and `docs/CONFIG.md` documents the same values.
//! The loader (`super::load`) turns YAML text into these types and reports errors with
//! file:line:col; nothing else in the host parses YAML.

use std::path::PathBuf;

pub use super::connector::{InputConfig, OutputConfig, ProcessorConfig};

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub state_management: StateManagementConfig,
    pub streams: Vec<StreamConfig>,
    /// The file the config was read from (None when built from a string).
    pub source: Option<PathBuf>,
    /// `http: {address}` — serve /metrics, /health and /ready; default None (no server)
    pub http: Option<HttpConfig>,
    /// A status line per stream in the log this often; 0 = never; default 10000
    pub status_interval_ms: u64,
    /// After SIGINT/SIGTERM, how long the streams may take to drain before the process exits
    /// with an error (the last decided checkpoint stands); 0 = no limit; default 60000
    pub shutdown_timeout_ms: u64,
    /// `plugin_cache: {enabled, path}` — where compiled plugins are cached. None: the default
    /// (`$ARKFLOW_PLUGIN_CACHE`, else the user's cache dir); Some(None): disabled.
    pub plugin_cache: Option<Option<PathBuf>>,
}

/// The operations endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// e.g. 127.0.0.1:9464
    pub address: std::net::SocketAddr,
}

/// Which backend keeps checkpointed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendType {
    Memory,
    Local,
    S3,
    Hybrid,
}

/// `state_management:` — global state and checkpoint settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StateManagementConfig {
    /// default false
    pub enabled: bool,
    /// default memory
    pub backend_type: BackendType,
    /// default 30000
    pub checkpoint_interval_ms: u64,
    /// default 5
    pub retained_checkpoints: u32,
    /// default false
    pub exactly_once: bool,
    /// default None (no expiry)
    pub state_timeout_ms: Option<u64>,
    pub s3_config: Option<S3Config>,
    /// `local_config: {path}`; default path `./arkflow-state`
    pub local_config: LocalConfig,
    /// default 128; fixed for the life of the state
    pub key_groups: u32,
    /// A checkpoint not decided after this long is abandoned; default None = 10 x interval,
    /// clamped to 10 s .. 10 min
    pub checkpoint_timeout_ms: Option<u64>,
    /// Consecutive failed checkpoints after which the stream stops with an error; default 10
    pub tolerated_checkpoint_failures: u32,
    /// GC deletes only objects older than this; default 60000
    pub gc_grace_ms: u64,
    /// `hybrid_config: {cache_kb}`; default 262144 (256 MiB) per worker
    pub hybrid_config: HybridConfig,
    /// Start from this savepoint instead of the last decided checkpoint (command line
    /// `--from-savepoint`, not YAML); default None
    pub from_savepoint: Option<String>,
}

/// RAM cache of the hybrid backend.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridConfig {
    /// Keys + values held in RAM per worker before cold key groups are evicted (KiB).
    pub cache_kb: u64,
}

impl Default for HybridConfig {
    fn default() -> Self {
        HybridConfig { cache_kb: 256 * 1024 }
    }
}

#[derive(Clone, PartialEq)]
pub struct S3Config {
    pub bucket: String,
    /// default "us-east-1"
    pub region: String,
    /// default ""
    pub prefix: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    pub path: PathBuf,
}

/// One entry of `streams:`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// default "stream-{index}"
    pub name: String,
    pub input: InputConfig,
    pub pipeline: PipelineConfig,
    pub output: OutputConfig,
    pub error_output: Option<OutputConfig>,
    /// Named outputs (`outputs: {name: ...}`), in file order: a processor routes a record to one
    /// by name (WIT `record-out.output`); default none.
    pub outputs: Vec<(String, OutputConfig)>,
    /// default: enabled, operator_id = name, custom_keys = []
    pub state: StreamStateConfig,
    /// JSON field of the record value used as routing key when the record has no key; default None
    pub key_by: Option<String>,
    /// `event_time:` — where event time comes from and how the watermark trails it; default None
    /// (no watermark: time-based stages refuse the stream).
    pub event_time: Option<EventTimeConfig>,
}

/// `event_time:` of a stream (docs/CONFIG.md, *Event time*).
#[derive(Debug, Clone, PartialEq)]
pub struct EventTimeConfig {
    /// Top-level JSON field of the value holding the event time (milliseconds since the Unix
    /// epoch, a number); default None: the record's timestamp (Kafka timestamp, read time).
    pub field: Option<String>,
    /// Bounded out-of-orderness: the watermark trails the highest event time seen by this much;
    /// default 0
    pub max_delay_ms: u64,
    /// A partition that produced nothing for this long stops holding the watermark back until
    /// it produces again; default None (never idle)
    pub idle_timeout_ms: Option<u64>,
    /// How often an advanced watermark is sent down the pipeline; default 200
    pub interval_ms: u64,
}

impl Default for EventTimeConfig {
    fn default() -> Self {
        EventTimeConfig { field: None, max_delay_ms: 0, idle_timeout_ms: None, interval_ms: 200 }
    }
}

impl StreamConfig {
    /// A `kafka` input with `assignment: group`: partitions (and their key groups) move between
    /// processes.
    pub fn group_mode(&self) -> bool {
        self.input.caps().group_assignment
    }

    /// The stream's state stores: "default" then its `custom_keys`.
    pub fn store_names(&self) -> Vec<String> {
        let mut names = vec!["default".to_string()];
        names.extend(self.state.custom_keys.iter().cloned());
        names
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// default 1
    pub thread_num: usize,
    /// Max records per `process-batch` call; default 256
    pub batch_size: usize,
    /// Capacity, in batches, of each channel between stages; default 16
    pub channel_capacity: usize,
    /// The stages in order: an input's `codec:` first, then `processors:`, then the output's
    /// `codec:` (see `codecs`).
    pub processors: Vec<ProcessorConfig>,
    /// Whether `processors` starts with the input's `codec:` stage and ends with the output's;
    /// default neither.
    pub codecs: (bool, bool),
}

impl StreamConfig {
    /// Where stage `i` of the pipeline is configured, for messages: `pipeline.processors[j]`
    /// (its index in the file), `input.codec` or `output.codec`.
    pub fn stage_label(&self, i: usize) -> String {
        let (input, output) = self.pipeline.codecs;
        let n = self.pipeline.processors.len();
        match i {
            0 if input => format!("streams[{}].input.codec", self.name),
            _ if output && i + 1 == n => format!("streams[{}].output.codec", self.name),
            _ => format!("streams[{}].pipeline.processors[{}]", self.name, i - usize::from(input)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamStateConfig {
    /// default: the stream name
    pub operator_id: String,
    /// default true
    pub enabled: bool,
    /// default []
    pub custom_keys: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Defaults. These are the only place default values are written down (besides docs/CONFIG.md).
// ---------------------------------------------------------------------------------------------

/// `state_management.checkpoint_interval_ms` default.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 30_000;
/// `http.address` default: loopback only.
pub const DEFAULT_HTTP_ADDRESS: &str = "127.0.0.1:9464";
/// `state_management.retained_checkpoints` default.
pub const DEFAULT_RETAINED_CHECKPOINTS: u32 = 5;
/// `state_management.key_groups` default.
pub const DEFAULT_KEY_GROUPS: u32 = 128;
/// `state_management.local_config.path` default (resolved against the config file's directory).
pub const DEFAULT_LOCAL_STATE_PATH: &str = "./arkflow-state";
/// `state_management.s3_config.region` default.
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// `pipeline.thread_num` default.
pub const DEFAULT_THREAD_NUM: usize = 1;
/// `pipeline.batch_size` default.
pub const DEFAULT_PIPELINE_BATCH_SIZE: usize = 256;
/// `pipeline.channel_capacity` default.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 16;
/// The reserved name of a stream's implicit store (also `native_counter`'s default store).
pub const DEFAULT_STORE: &str = "default";

/// The name of a stream that has no `name:` (`index` is its position in `streams:`, from 0).
pub fn default_stream_name(index: usize) -> String {
    format!("stream-{index}")
}

impl Default for StateManagementConfig {
    fn default() -> Self {
        StateManagementConfig {
            enabled: false,
            backend_type: BackendType::Memory,
            checkpoint_interval_ms: DEFAULT_CHECKPOINT_INTERVAL_MS,
            retained_checkpoints: DEFAULT_RETAINED_CHECKPOINTS,
            exactly_once: false,
            state_timeout_ms: None,
            s3_config: None,
            local_config: LocalConfig::default(),
            key_groups: DEFAULT_KEY_GROUPS,
            checkpoint_timeout_ms: None,
            tolerated_checkpoint_failures: 10,
            gc_grace_ms: 60_000,
            hybrid_config: HybridConfig::default(),
            from_savepoint: None,
        }
    }
}

impl S3Config {
    /// An S3 config for `bucket` with every optional field at its default.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            region: DEFAULT_S3_REGION.to_string(),
            prefix: String::new(),
            access_key_id: None,
            secret_access_key: None,
            endpoint_url: None,
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { path: PathBuf::from(DEFAULT_LOCAL_STATE_PATH) }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            thread_num: DEFAULT_THREAD_NUM,
            batch_size: DEFAULT_PIPELINE_BATCH_SIZE,
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            processors: Vec::new(),
            codecs: (false, false),
        }
    }
}

impl StreamStateConfig {
    /// The state section a stream gets when it has no `state:`.
    pub fn for_stream(stream_name: &str) -> Self {
        StreamStateConfig { operator_id: stream_name.to_string(), enabled: true, custom_keys: Vec::new() }
    }
}

/// Lowercase YAML names of enum-like settings, parsed and printed through one table each.
macro_rules! named_enum {
    ($ty:ident { $($name:literal => $variant:ident),+ $(,)? }) => {
        impl $ty {
            /// Every accepted YAML spelling, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];
            /// Parses the lowercase YAML name; None if unknown.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some($ty::$variant),)+ _ => None }
            }
            /// The YAML name of this value.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name,)+ }
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(BackendType { "memory" => Memory, "s3" => S3, "hybrid" => Hybrid, "local" => Local });

/// Credentials never appear in logs or errors: Debug redacts them.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &redact(&self.access_key_id))
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}
