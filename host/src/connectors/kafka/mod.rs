//! Kafka: the `kafka` input and output (rdkafka / librdkafka), the transactional sink protocol
//! (docs/ARCHITECTURE.md, "The commit protocol"), the broker capability probe, and the Kafka figures of a stream.
//!
//! Contract: nothing here is on the path of a stream without a Kafka input or output. The probe
//! speaks the Kafka protocol's ApiVersions request itself, so a missing transaction API is
//! reported by name before any producer is created.

pub mod admin;
mod config;
mod consumer_ctx;
mod input;
pub mod outbox;
mod outbox_codec;
mod output;
pub mod probe;
mod stall;
pub mod txn;
mod txn_rdkafka;

pub use config::*;
pub use consumer_ctx::GroupEvent;
pub use input::KafkaInput;
pub use output::KafkaOutput;
pub use txn_rdkafka::RdTxnClient;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::Mutex;

/// Kafka figures of one stream, read by the metrics endpoint.
#[derive(Debug)]
pub struct KafkaMetrics {
    /// (topic, partition) -> (end offset from the broker's statistics, next offset read).
    partitions: Mutex<BTreeMap<(String, i32), (i64, i64)>>,
    /// Set when the stream's output runs Kafka transactions.
    pub transactional: AtomicBool,
    pub active_transactions: AtomicI64,
    pub transactions_committed: AtomicU64,
    pub transactions_aborted: AtomicU64,
    /// Seconds from the commit request to its acknowledgement.
    pub commit_latency: prometheus_client::metrics::histogram::Histogram,
}

impl Default for KafkaMetrics {
    fn default() -> Self {
        KafkaMetrics {
            partitions: Mutex::default(),
            transactional: AtomicBool::new(false),
            active_transactions: AtomicI64::new(0),
            transactions_committed: AtomicU64::new(0),
            transactions_aborted: AtomicU64::new(0),
            commit_latency: prometheus_client::metrics::histogram::Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 14)),
        }
    }
}

impl KafkaMetrics {
    fn update(&self, topic: &str, partition: i32, f: impl FnOnce(&mut (i64, i64))) {
        let mut m = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry((topic.to_string(), partition)).or_insert((-1, -1)));
    }

    pub fn set_end(&self, topic: &str, partition: i32, end: i64) {
        self.update(topic, partition, |v| v.0 = end);
    }

    pub fn set_position(&self, topic: &str, partition: i32, next: i64) {
        self.update(topic, partition, |v| v.1 = next);
    }

    /// Consumer lag per partition: end offset minus next offset to read (known pairs only).
    pub fn lag(&self) -> Vec<(String, i32, i64)> {
        let m = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().filter(|(_, (end, pos))| *end >= 0 && *pos >= 0).map(|((t, p), (end, pos))| (t.clone(), *p, (end - pos).max(0))).collect()
    }
}

/// The entries of a Kafka input position `{"kafka": {topic: {partition: next offset}}}` (None when
/// `position` is not a Kafka position); a malformed entry is an error naming it.
pub(crate) fn position_entries(position: &serde_json::Value) -> Option<impl Iterator<Item = Result<(String, i32, i64), String>> + '_> {
    let topics = position.get("kafka")?.as_object()?;
    Some(topics.iter().flat_map(|(topic, ps)| {
        ps.as_object().into_iter().flatten().map(move |(p, off)| match (p.parse::<i32>(), off.as_i64()) {
            (Ok(p), Some(off)) => Ok((topic.clone(), p, off)),
            _ => Err(format!("{topic}/{p}: {off}")),
        })
    }))
}

/// The well-formed offsets of a position, each with the metadata `arkflow epoch=N`: what is
/// committed to a consumer group for epoch `epoch`.
pub(crate) fn epoch_offsets(position: &serde_json::Value, epoch: u64) -> rdkafka::error::KafkaResult<rdkafka::TopicPartitionList> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (topic, p, off) in position_entries(position).into_iter().flatten().flatten() {
        tpl.add_partition_offset(&topic, p, rdkafka::Offset::Offset(off))?;
        if let Some(mut e) = tpl.find_partition(&topic, p) {
            e.set_metadata(format!("arkflow epoch={epoch}"));
        }
    }
    Ok(tpl)
}

/// The librdkafka settings every client of a section shares.
pub(crate) fn client_config(brokers: &[String], client_id: &str, options: &BTreeMap<String, String>) -> rdkafka::ClientConfig {
    let mut cc = rdkafka::ClientConfig::new();
    cc.set("bootstrap.servers", brokers.join(",")).set("client.id", client_id);
    for (k, v) in options {
        cc.set(k, v);
    }
    cc
}
