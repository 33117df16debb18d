//! [`TxnClient`] on rdkafka: two transactional producers (`{prefix}-0`, `{prefix}-1`), the
//! decision written as a control record to `control_topic` plus the transactional offset
//! `control_topic/0 = epoch` (metadata: the decision as JSON) in the consumer group
//! `{prefix}-decisions`, and the input offsets in the input's group. Reading the last decision
//! is an OffsetFetch of that group with `read_committed` (librdkafka then asks for stable
//! offsets, KIP-447), so an open transaction's decision is never read.

use super::output::{producer_config, send_all, DeliveryCtx};
use super::txn::{DecisionRecord, TxnClient, TxnError};
use super::KafkaOutputConfig as Config;
use crate::record::Record;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

const TXN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct RdTxnClient {
    cfg: Config,
    producers: [ThreadedProducer<DeliveryCtx>; 2],
    /// Consumer of the decision group (for its group metadata and OffsetFetch).
    decisions: BaseConsumer,
    /// Consumer of the input's group, when the input is Kafka.
    input_group: Option<BaseConsumer>,
}

fn classify(e: KafkaError) -> TxnError {
    match &e {
        KafkaError::Transaction(re) if re.is_fatal() => TxnError::Fatal(e.to_string()),
        KafkaError::Transaction(re) if re.txn_requires_abort() => TxnError::Abortable(e.to_string()),
        KafkaError::Transaction(re) if re.is_retriable() => TxnError::Retriable(e.to_string()),
        _ => TxnError::Fatal(e.to_string()),
    }
}

fn group_consumer(cfg: &Config, group: &str) -> Result<BaseConsumer, TxnError> {
    let mut cc = super::client_config(&cfg.brokers, &cfg.client_id, &cfg.options);
    cc.set("group.id", group).set("enable.auto.commit", "false").set("isolation.level", "read_committed");
    cc.create().map_err(|e| TxnError::Fatal(format!("creating a consumer of group {group}: {e}")))
}

impl RdTxnClient {
    /// `prefix` is the stable transactional id prefix (stream and operator); `input_group` is the
    /// input's consumer group when the input is Kafka.
    pub fn new(cfg: Config, prefix: &str, input_group: Option<&str>) -> Result<Self, TxnError> {
        let make = |slot: usize| -> Result<ThreadedProducer<DeliveryCtx>, TxnError> {
            let mut cc = producer_config(&cfg);
            cc.set("transactional.id", format!("{prefix}-{slot}")).set("enable.idempotence", "true").set("acks", "all").set("transaction.timeout.ms", "120000");
            cc.create_with_context(DeliveryCtx::default()).map_err(|e| TxnError::Fatal(format!("creating transactional producer {prefix}-{slot}: {e}")))
        };
        let producers = [make(0)?, make(1)?];
        let decisions = group_consumer(&cfg, &format!("{prefix}-decisions"))?;
        let input_group = input_group.map(|g| group_consumer(&cfg, g)).transpose()?;
        Ok(RdTxnClient { cfg, producers, decisions, input_group })
    }
}

impl TxnClient for RdTxnClient {
    fn init(&self, slot: usize) -> Result<(), TxnError> {
        self.producers[slot].init_transactions(TXN_TIMEOUT).map_err(classify)
    }

    fn begin(&self, slot: usize) -> Result<(), TxnError> {
        self.producers[slot].begin_transaction().map_err(classify)
    }

    fn send(&self, slot: usize, records: &[Record]) -> Result<(), TxnError> {
        send_all(&self.cfg, &self.producers[slot], records).map_err(|e| TxnError::Abortable(format!("{e:#}")))
    }

    fn flush(&self, slot: usize) -> Result<(), TxnError> {
        let p = &self.producers[slot];
        p.flush(TXN_TIMEOUT).map_err(classify)?;
        p.context().check("kafka output").map_err(|e| TxnError::Abortable(format!("{e:#}")))
    }

    fn add_decision(&self, slot: usize, d: &DecisionRecord, input_offsets: &serde_json::Value) -> Result<(), TxnError> {
        let p = &self.producers[slot];
        let json = serde_json::to_string(d).expect("decision serializes");
        let rec: BaseRecord<'_, str, str> = BaseRecord::to(&self.cfg.control_topic).key(d.stream.as_str()).payload(json.as_str()).partition(0);
        p.send(rec).map_err(|(e, _)| classify(e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.cfg.control_topic, 0, Offset::Offset(d.epoch as i64)).map_err(classify)?;
        if let Some(mut e) = tpl.find_partition(&self.cfg.control_topic, 0) {
            e.set_metadata(json.clone());
        }
        let meta = self.decisions.group_metadata().ok_or_else(|| TxnError::Fatal("no group metadata for the decision group".into()))?;
        p.send_offsets_to_transaction(&tpl, &meta, TXN_TIMEOUT).map_err(classify)?;
        if let Some(c) = &self.input_group {
            let tpl = super::epoch_offsets(input_offsets, d.epoch).map_err(classify)?;
            if tpl.count() > 0 {
                let meta = c.group_metadata().ok_or_else(|| TxnError::Fatal("no group metadata for the input group".into()))?;
                p.send_offsets_to_transaction(&tpl, &meta, TXN_TIMEOUT).map_err(classify)?;
            }
        }
        Ok(())
    }

    fn commit(&self, slot: usize) -> Result<(), TxnError> {
        self.producers[slot].commit_transaction(TXN_TIMEOUT).map_err(classify)
    }

    fn abort(&self, slot: usize) -> Result<(), TxnError> {
        self.producers[slot].abort_transaction(TXN_TIMEOUT).map_err(classify)
    }

    fn last_decision(&self) -> Result<Option<DecisionRecord>, TxnError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.cfg.control_topic, 0);
        let got = self.decisions.committed_offsets(tpl, TXN_TIMEOUT).map_err(|e| TxnError::Retriable(format!("reading the last decision: {e}")))?;
        let Some(e) = got.find_partition(&self.cfg.control_topic, 0) else { return Ok(None) };
        if !matches!(e.offset(), Offset::Offset(_)) || e.metadata().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(e.metadata()).map(Some).map_err(|err| TxnError::Fatal(format!("the decision in Kafka is unreadable ({err}): {}", e.metadata())))
    }
}
