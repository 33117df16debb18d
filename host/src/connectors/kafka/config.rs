//! The `kafka` input and output settings: their YAML (raw structs, defaults, checks),
//! capabilities and how they open (documented in `docs/CONFIG.md` under "kafka").

use super::{KafkaInput, KafkaOutput};
use crate::config::{non_empty_list, ConfigError, Ctx, SinkCaps, SourceCaps, YPath};
use crate::connectors::input::{Input, DEFAULT_INPUT_BATCH_SIZE};
use crate::connectors::output::Output;
use crate::connectors::registry::{Decider, DeciderCx, Sink, SinkCx, Source, SourceCx};
use std::collections::BTreeMap;

/// `type: kafka` input — records from Kafka topics, one key group per partition.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaInputConfig {
    /// Bootstrap brokers, e.g. ["127.0.0.1:9092"].
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    /// Group for offset commits (monitoring, lag) and, later, partition assignment;
    /// default "arkflow-{operator_id}".
    pub consumer_group: Option<String>,
    /// default "arkflow"
    pub client_id: String,
    /// Where a partition without a checkpointed position starts; default Earliest
    pub start_from: StartFrom,
    /// default ReadCommitted
    pub isolation_level: IsolationLevel,
    /// Records per input batch at most; default 1024
    pub batch_size: usize,
    /// Bytes (keys + values) per input batch at most; default 1 MiB
    pub max_batch_bytes: usize,
    /// How long a batch may wait to fill up once it has its first record; default 50
    pub max_wait_ms: u64,
    /// End the stream once every partition reached the end offset it had at start
    /// (a bounded backfill); default false
    pub stop_at_end: bool,
    /// Records per second at most (replay throttle); None = as fast as possible (default None)
    pub rate_per_sec: Option<u64>,
    /// Who reads which partition: `All` (this process reads every partition, default) or
    /// `Group` (several processes share the partitions through the consumer group; docs/SCALE_OUT.md).
    pub assignment: Assignment,
    /// Extra librdkafka settings (security, timeouts), passed through verbatim.
    pub options: BTreeMap<String, String>,
    /// The JSON value fields the producer keyed the messages by, so each of their keys lives in
    /// one partition; in group mode a stage keyed by them needs no repartition topic. Empty = by
    /// the message key. default None (unknown)
    pub partitioned_by: Option<Vec<String>>,
}

/// How a `kafka` input's partitions are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// This process reads every partition (explicit assignment).
    All,
    /// The consumer group assigns partitions among every process running this stream.
    Group,
}

/// How an exactly-once `kafka` output makes an epoch's records visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactlyOnceMode {
    /// One Kafka transaction per epoch decides it (needs the broker's transaction APIs).
    Transactions,
    /// The state store decides; the epoch's records are kept in the store (the outbox) and
    /// published after the decision, deduplicated on recovery (any broker).
    Outbox,
}

/// Where a partition without a checkpointed position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Earliest,
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadCommitted,
    ReadUncommitted,
}

/// `type: kafka` output.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaOutputConfig {
    pub brokers: Vec<String>,
    /// Topic of every record, unless `topic_field` names a field present in the record's JSON value.
    pub topic: String,
    pub topic_field: Option<String>,
    /// JSON field used as message key; default None (the record's own key)
    pub key_field: Option<String>,
    /// The message key is these JSON fields' routing key (`util::json::fields_key`), also when
    /// they are missing: set by the engine for a repartition topic, not in YAML; default empty
    pub key_fields: Vec<String>,
    /// Headers added to every message (the record's own headers are kept).
    pub headers: BTreeMap<String, String>,
    /// default None
    pub compression: Compression,
    /// default All
    pub acks: Acks,
    /// Idempotent producer (no duplicates from producer retries); default true (needs acks all)
    pub idempotent: bool,
    /// Kafka transactions decide each epoch (docs/ARCHITECTURE.md, "The commit protocol"); default false
    pub exactly_once: bool,
    /// How `exactly_once` is achieved; default Transactions
    pub exactly_once_mode: ExactlyOnceMode,
    /// Topic of the per-epoch control records of `exactly_once`; default "arkflow-control"
    pub control_topic: String,
    /// default "arkflow"
    pub client_id: String,
    /// Extra librdkafka settings, passed through verbatim.
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    All,
    One,
    Zero,
}

/// `kafka` input `max_batch_bytes` default.
pub const DEFAULT_KAFKA_MAX_BATCH_BYTES: usize = 1 << 20;
/// `kafka` input `max_wait_ms` default.
pub const DEFAULT_KAFKA_MAX_WAIT_MS: u64 = 50;
/// `kafka` `client_id` default.
pub const DEFAULT_KAFKA_CLIENT_ID: &str = "arkflow";
/// `kafka` output `control_topic` default.
pub const DEFAULT_KAFKA_CONTROL_TOPIC: &str = "arkflow-control";

crate::config::named_enum!(StartFrom { "earliest" => Earliest, "latest" => Latest });
crate::config::named_enum!(IsolationLevel { "read_committed" => ReadCommitted, "read_uncommitted" => ReadUncommitted });
crate::config::named_enum!(Compression { "none" => None, "gzip" => Gzip, "snappy" => Snappy, "lz4" => Lz4, "zstd" => Zstd });
crate::config::named_enum!(Assignment { "all" => All, "group" => Group });
crate::config::named_enum!(ExactlyOnceMode { "transactions" => Transactions, "outbox" => Outbox });
crate::config::named_enum!(Acks { "all" => All, "1" => One, "0" => Zero });

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaInput {
    brokers: Vec<String>,
    topics: Vec<String>,
    consumer_group: Option<String>,
    client_id: Option<String>,
    start_from: Option<String>,
    isolation_level: Option<String>,
    batch_size: Option<usize>,
    max_batch_bytes: Option<usize>,
    max_wait_ms: Option<u64>,
    stop_at_end: Option<bool>,
    rate_per_sec: Option<u64>,
    assignment: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
    partitioned_by: Option<Vec<String>>,
}

impl Source for KafkaInputConfig {
    const NAME: &'static str = "kafka";
    type Raw = RawKafkaInput;

    fn from_raw(ctx: &Ctx, raw: RawKafkaInput, path: &YPath) -> Result<Self, ConfigError> {
        let cfg = KafkaInputConfig {
            brokers: non_empty_list(ctx, raw.brokers, &path.key("brokers"))?,
            topics: non_empty_list(ctx, raw.topics, &path.key("topics"))?,
            consumer_group: raw.consumer_group,
            client_id: raw.client_id.unwrap_or_else(|| DEFAULT_KAFKA_CLIENT_ID.into()),
            start_from: ctx.named(raw.start_from, &path.key("start_from"), "start_from", StartFrom::NAMES, StartFrom::from_name, StartFrom::Earliest)?,
            isolation_level: ctx.named(
                raw.isolation_level,
                &path.key("isolation_level"),
                "isolation_level",
                IsolationLevel::NAMES,
                IsolationLevel::from_name,
                IsolationLevel::ReadCommitted,
            )?,
            batch_size: raw.batch_size.unwrap_or(DEFAULT_INPUT_BATCH_SIZE),
            max_batch_bytes: raw.max_batch_bytes.unwrap_or(DEFAULT_KAFKA_MAX_BATCH_BYTES),
            max_wait_ms: raw.max_wait_ms.unwrap_or(DEFAULT_KAFKA_MAX_WAIT_MS),
            stop_at_end: raw.stop_at_end.unwrap_or(false),
            rate_per_sec: raw.rate_per_sec,
            assignment: ctx.named(raw.assignment, &path.key("assignment"), "assignment", Assignment::NAMES, Assignment::from_name, Assignment::All)?,
            options: raw.options.unwrap_or_default(),
            partitioned_by: raw.partitioned_by,
        };
        ctx.at_least_if_set(&path.key("rate_per_sec"), cfg.rate_per_sec, 1)?;
        ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
        ctx.at_least(&path.key("max_batch_bytes"), cfg.max_batch_bytes, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SourceCaps {
        SourceCaps {
            replayable: true,
            key_field: None,
            partitioned: true,
            group_assignment: self.assignment == Assignment::Group,
            group_offsets: true,
            consumer_group: self.consumer_group.clone(),
            partitioned_by: self.partitioned_by.clone(),
            lines: false,
        }
    }

    fn open(&self, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        Ok(Box::new(KafkaInput::open(self.clone(), cx.default_group, cx.kafka.clone())?))
    }
}

/// `acks: all` and `acks: 1` are both natural YAML.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum NameOrNumber {
    Name(String),
    Number(i64),
}

impl NameOrNumber {
    fn into_name(self) -> String {
        match self {
            NameOrNumber::Name(s) => s,
            NameOrNumber::Number(n) => n.to_string(),
        }
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaOutput {
    brokers: Vec<String>,
    topic: String,
    topic_field: Option<String>,
    key_field: Option<String>,
    headers: Option<std::collections::BTreeMap<String, String>>,
    compression: Option<String>,
    acks: Option<NameOrNumber>,
    idempotent: Option<bool>,
    exactly_once: Option<bool>,
    exactly_once_mode: Option<String>,
    control_topic: Option<String>,
    client_id: Option<String>,
    options: Option<std::collections::BTreeMap<String, String>>,
}

impl Sink for KafkaOutputConfig {
    const NAME: &'static str = "kafka";
    type Raw = RawKafkaOutput;

    fn from_raw(ctx: &Ctx, raw: RawKafkaOutput, path: &YPath) -> Result<Self, ConfigError> {
        let acks = ctx.named(raw.acks.map(NameOrNumber::into_name), &path.key("acks"), "acks", Acks::NAMES, Acks::from_name, Acks::All)?;
        let idempotent = raw.idempotent.unwrap_or(acks == Acks::All);
        let exactly_once = raw.exactly_once.unwrap_or(false);
        if idempotent && acks != Acks::All {
            return Err(ctx.invalid(
                &path.key("idempotent"),
                format!("{} needs acks: all (an idempotent producer waits for all in-sync replicas)", path.key("idempotent")),
            ));
        }
        if exactly_once && acks != Acks::All {
            return Err(ctx.invalid(&path.key("exactly_once"), format!("{} needs acks: all", path.key("exactly_once"))));
        }
        let topic = non_empty_list(ctx, vec![raw.topic], &path.key("topic"))?.remove(0);
        Ok(KafkaOutputConfig {
            brokers: non_empty_list(ctx, raw.brokers, &path.key("brokers"))?,
            topic,
            topic_field: raw.topic_field,
            key_field: raw.key_field,
            key_fields: Vec::new(),
            headers: raw.headers.unwrap_or_default(),
            compression: ctx.named(raw.compression, &path.key("compression"), "compression", Compression::NAMES, Compression::from_name, Compression::None)?,
            acks,
            idempotent: idempotent || exactly_once,
            exactly_once,
            exactly_once_mode: ctx.named(
                raw.exactly_once_mode,
                &path.key("exactly_once_mode"),
                "exactly_once_mode",
                ExactlyOnceMode::NAMES,
                ExactlyOnceMode::from_name,
                ExactlyOnceMode::Transactions,
            )?,
            control_topic: raw.control_topic.unwrap_or_else(|| DEFAULT_KAFKA_CONTROL_TOPIC.into()),
            client_id: raw.client_id.unwrap_or_else(|| DEFAULT_KAFKA_CLIENT_ID.into()),
            options: raw.options.unwrap_or_default(),
        })
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps {
            file: None,
            needs_checkpoints: self.exactly_once,
            at_least_once: !self.exactly_once,
            decides: self.exactly_once && self.exactly_once_mode == ExactlyOnceMode::Transactions,
            commits_after_decision: false,
        }
    }

    /// A checkpointing stream's exactly-once output in outbox mode publishes through the store
    /// (the main output's outbox is the checkpoint scope, any other's `{scope}/{sink}`); in
    /// transactions mode the engine builds the main output itself, as the decider.
    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        match cx.place {
            Some(at) if self.exactly_once && self.exactly_once_mode == ExactlyOnceMode::Outbox => {
                let producer = match at.producer {
                    Some(p) => p.clone(),
                    None => super::outbox::Outbox::shared_producer(self)?,
                };
                let scope = crate::layout::sink_scope(at.scope, cx.sink);
                Ok(Box::new(super::outbox::OutboxOutput::attach(self, producer, at.store.clone(), &scope, at.generation, at.key_groups)))
            }
            Some(_) if self.exactly_once && cx.sink != "output" => {
                anyhow::bail!("an exactly-once kafka output other than the main one needs exactly_once_mode: outbox (the stream's Kafka transactions carry the main output only)")
            }
            _ => Ok(Box::new(KafkaOutput::open(self.clone())?)),
        }
    }

    /// In transactions mode: refuses brokers without the transaction APIs, fences older
    /// producers of the stream's transactional ids and reads the last decision from Kafka.
    fn decider(&self, cx: &DeciderCx<'_>) -> anyhow::Result<Option<Decider>> {
        if !self.capabilities().decides {
            return Ok(None);
        }
        super::probe::require_transactions(&self.brokers)?;
        let prefix = format!("arkflow-{}", cx.operator_id);
        let client = super::RdTxnClient::new(self.clone(), &prefix, cx.input_group).map_err(|e| anyhow::anyhow!("{e}"))?;
        let client: Box<dyn super::txn::TxnClient> = Box::new(client);
        let (sink, last) =
            super::txn::TxnSink::recover(client, cx.stream, cx.kafka.clone()).map_err(|e| anyhow::anyhow!("recovering Kafka transactions: {e}"))?;
        let sink = std::sync::Arc::new(sink);
        let output = Box::new(KafkaOutput::transactional(self.clone(), sink.clone()));
        Ok(Some(Decider { decider: sink, last: last.map(Into::into), output }))
    }
}
