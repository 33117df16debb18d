//! `kafka` output. At-least-once by default: an idempotent producer (no duplicates from its own
//! retries) sends every record as it comes; `prepare` (each aligned barrier) flushes and fails the
//! epoch if any delivery failed, so a checkpoint is never decided over records Kafka did not
//! acknowledge. With `exactly_once: true` the records go through the transactional sink instead
//! (`txn::TxnSink`): each epoch's records, decision and input offsets commit in one transaction.
//!
//! Message mapping: topic = the record's JSON `topic_field` when present, else `topic`; key = the
//! JSON `key_field` when set, else the record key; headers = the record's plus the configured
//! ones; timestamp = the record's.

use super::txn::{TxnClient, TxnSink};
use super::KafkaOutputConfig as Config;
use crate::connectors::output::Output;
use crate::record::Record;
use anyhow::{bail, Context};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts failed deliveries and keeps the first error.
#[derive(Default)]
pub struct DeliveryCtx {
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryCtx {}
impl ProducerContext for DeliveryCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = r {
            self.failed.fetch_add(1, SeqCst);
            let mut f = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
            f.get_or_insert_with(|| e.to_string());
        }
    }
}

impl DeliveryCtx {
    /// Fails if any delivery failed since the last check.
    pub fn check(&self, what: &str) -> anyhow::Result<()> {
        let n = self.failed.swap(0, SeqCst);
        if n > 0 {
            let e = self.first_error.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
            bail!("{what}: {n} record(s) were not delivered: {e}");
        }
        Ok(())
    }
}

/// The producer settings of `cfg` (transactional ones are added by the caller).
pub(crate) fn producer_config(cfg: &Config) -> rdkafka::ClientConfig {
    let mut cc = super::client_config(&cfg.brokers, &cfg.client_id, &Default::default());
    cc.set("compression.type", cfg.compression.name())
        .set("acks", cfg.acks.name())
        .set("enable.idempotence", cfg.idempotent.to_string())
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000");
    for (k, v) in &cfg.options {
        cc.set(k, v);
    }
    cc
}

/// The topic of a record (`topic_field` of its JSON value, else `topic`) and its message key
/// when `key_fields` or `key_field` overrides the record's key.
pub(crate) fn route(cfg: &Config, r: &Record) -> (String, Option<Vec<u8>>) {
    let value = r.value.as_deref();
    let topic_owned = cfg.topic_field.as_deref().and_then(|f| value.and_then(|v| crate::util::json::field_bytes(v, f)));
    let topic = topic_owned.as_deref().and_then(|t| std::str::from_utf8(t).ok()).unwrap_or(&cfg.topic).to_string();
    let key_owned = match &cfg.key_fields[..] {
        [] => cfg.key_field.as_deref().and_then(|f| value.and_then(|v| crate::util::json::field_bytes(v, f))),
        fields => Some(crate::util::json::fields_key(value.unwrap_or_default(), fields).0),
    };
    (topic, key_owned)
}

/// Sends one message (timestamp only when > 0), waiting while librdkafka's queue is full.
pub(crate) fn send_message<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &ThreadedProducer<C>,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: OwnedHeaders,
    timestamp_ms: i64,
) -> Result<(), KafkaError> {
    let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(headers);
    if let Some(k) = key {
        rec = rec.key(k);
    }
    if let Some(v) = value {
        rec = rec.payload(v);
    }
    if timestamp_ms > 0 {
        rec = rec.timestamp(timestamp_ms);
    }
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Sends `records` with `send`, retrying while librdkafka's queue is full.
pub(crate) fn send_all(cfg: &Config, producer: &ThreadedProducer<DeliveryCtx>, records: &[Record]) -> anyhow::Result<()> {
    for r in records {
        let value = r.value.as_deref();
        let (topic, key_owned) = route(cfg, r);
        let topic = topic.as_str();
        let key = key_owned.as_deref().or(r.key.as_deref());
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + cfg.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
        for (k, v) in &cfg.headers {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
        send_message(producer, topic, key, value, headers, r.timestamp_ms).with_context(|| format!("kafka output: sending to topic `{topic}`"))?;
    }
    Ok(())
}

pub struct KafkaOutput {
    cfg: Config,
    mode: Mode,
}

enum Mode {
    AtLeastOnce(ThreadedProducer<DeliveryCtx>),
    Transactional(Arc<TxnSink<dyn TxnClient>>),
}

impl KafkaOutput {
    /// The at-least-once output: connects and checks that the topic exists.
    pub fn open(cfg: Config) -> anyhow::Result<Self> {
        let producer: ThreadedProducer<DeliveryCtx> = producer_config(&cfg)
            .create_with_context(DeliveryCtx::default())
            .with_context(|| format!("kafka output: creating a producer for {}", cfg.brokers.join(",")))?;
        let md = producer
            .client()
            .fetch_metadata(Some(&cfg.topic), Duration::from_secs(10))
            .with_context(|| format!("kafka output: cannot read metadata of topic `{}` from {}", cfg.topic, cfg.brokers.join(",")))?;
        if !md.topics().iter().any(|t| t.name() == cfg.topic && t.error().is_none() && !t.partitions().is_empty()) {
            bail!("kafka output: topic `{}` does not exist on {} (create it first)", cfg.topic, cfg.brokers.join(","));
        }
        Ok(KafkaOutput { cfg, mode: Mode::AtLeastOnce(producer) })
    }

    /// The exactly-once output over a recovered transactional sink.
    pub fn transactional(cfg: Config, sink: Arc<TxnSink<dyn TxnClient>>) -> Self {
        KafkaOutput { cfg, mode: Mode::Transactional(sink) }
    }
}

impl Output for KafkaOutput {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        match &self.mode {
            Mode::AtLeastOnce(p) => {
                send_all(&self.cfg, p, records)?;
                p.context().check("kafka output")
            }
            Mode::Transactional(_) => bail!("kafka output: exactly-once records must carry their epoch"),
        }
    }

    fn write_epoch(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        match &self.mode {
            Mode::AtLeastOnce(_) => self.write_batch(records),
            Mode::Transactional(s) => s.write(epoch, records).map_err(anyhow::Error::msg),
        }
    }

    /// Transactional: flushes the epoch's transaction; its commit is the decision itself (the
    /// sink is the checkpoints' external decider), so there is no blob and no committer.
    fn pre_commit(&mut self, epoch: u64) -> anyhow::Result<Option<serde_json::Value>> {
        match &self.mode {
            Mode::AtLeastOnce(_) => self.close()?,
            Mode::Transactional(s) => s.prepare(epoch).map_err(anyhow::Error::msg)?,
        }
        Ok(None)
    }

    /// librdkafka sends on its own (linger 5 ms): an idle output only reports failed deliveries.
    fn flush(&mut self) -> anyhow::Result<()> {
        match &self.mode {
            Mode::AtLeastOnce(p) => p.context().check("kafka output"),
            Mode::Transactional(_) => Ok(()),
        }
    }

    /// Waits until every record sent so far is acknowledged (or failed).
    fn close(&mut self) -> anyhow::Result<()> {
        match &self.mode {
            Mode::AtLeastOnce(p) => {
                p.flush(FLUSH_TIMEOUT).context("kafka output: flushing")?;
                p.context().check("kafka output")
            }
            Mode::Transactional(_) => Ok(()),
        }
    }
}
