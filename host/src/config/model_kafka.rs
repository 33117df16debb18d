//! The typed model of the `kafka` input and output sections, with their defaults (documented in
//! `docs/CONFIG.md` under "kafka"). Kept apart from `model.rs` only for size; re-exported there.

use std::collections::BTreeMap;

/// `type: kafka` input — records from Kafka topics, one key group per partition.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaInput {
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
pub struct KafkaOutput {
    pub brokers: Vec<String>,
    /// Topic of every record, unless `topic_field` names a field present in the record's JSON value.
    pub topic: String,
    pub topic_field: Option<String>,
    /// JSON field used as message key; default None (the record's own key)
    pub key_field: Option<String>,
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

named_enum!(StartFrom { "earliest" => Earliest, "latest" => Latest });
named_enum!(IsolationLevel { "read_committed" => ReadCommitted, "read_uncommitted" => ReadUncommitted });
named_enum!(Compression { "none" => None, "gzip" => Gzip, "snappy" => Snappy, "lz4" => Lz4, "zstd" => Zstd });
named_enum!(Assignment { "all" => All, "group" => Group });
named_enum!(ExactlyOnceMode { "transactions" => Transactions, "outbox" => Outbox });
named_enum!(Acks { "all" => All, "1" => One, "0" => Zero });
