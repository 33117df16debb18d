//! The context of the `kafka` input's consumer: partition end offsets from librdkafka statistics
//! go to the stream's Kafka metrics (and each partition's fetch figures are kept for the stall
//! guard, `stall.rs`), and rebalances (group mode) are recorded as events for the
//! group driver instead of being applied (see `input.rs`).

use super::stall::PartStats;
use super::KafkaMetrics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::Arc;

/// A consumer-group rebalance, as recorded by the consumer's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    Assign(Vec<(String, i32)>),
    Revoke(Vec<(String, i32)>),
}

/// Reports partition end offsets from librdkafka statistics into the stream's Kafka metrics, and
/// records rebalances (group mode) for the group driver instead of applying them.
pub struct StatsContext {
    pub(super) metrics: Arc<KafkaMetrics>,
    pub(super) group: bool,
    pub(super) events: std::sync::Mutex<std::collections::VecDeque<GroupEvent>>,
    /// Set when the consumer closes: the revoke of leaving the group is applied at once.
    pub(super) closing: std::sync::atomic::AtomicBool,
    /// The last statistics of each partition.
    pub(super) partitions: std::sync::Mutex<std::collections::HashMap<(String, i32), PartStats>>,
}

impl ClientContext for StatsContext {
    fn stats(&self, stats: rdkafka::Statistics) {
        let mut kept = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for (topic, t) in stats.topics {
            for (p, s) in t.partitions {
                if p < 0 {
                    continue; // librdkafka's internal "unassigned" partition
                }
                if s.hi_offset >= 0 {
                    let end = if s.ls_offset >= 0 { s.ls_offset } else { s.hi_offset };
                    self.metrics.set_end(&topic, p, end);
                }
                let part = PartStats {
                    fetch_state: s.fetch_state,
                    next_offset: s.next_offset,
                    app_offset: s.app_offset,
                    hi_offset: s.hi_offset,
                    fetchq_cnt: s.fetchq_cnt,
                };
                kept.insert((topic.clone(), p), part);
            }
        }
    }
}
impl ConsumerContext for StatsContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: rdkafka::types::RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        use rdkafka::types::RDKafkaRespErr as E;
        if !self.group {
            return; // partitions are assigned explicitly; a group rebalance never reaches here
        }
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = consumer.unassign();
            return;
        }
        let list: Vec<(String, i32)> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let ev = match err {
            E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => GroupEvent::Assign(list),
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => GroupEvent::Revoke(list),
            other => {
                tracing::warn!("kafka input: consumer group rebalance error {other:?}; releasing partitions");
                let _ = consumer.unassign();
                return;
            }
        };
        tracing::info!("kafka input: consumer group {ev:?}");
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push_back(ev);
    }
}

impl StatsContext {
    pub(super) fn new(metrics: Arc<KafkaMetrics>, group: bool) -> StatsContext {
        StatsContext { metrics, group, events: Default::default(), closing: Default::default(), partitions: Default::default() }
    }

    /// What the last statistics said about `topic`/`partition`.
    pub(super) fn partition_stats(&self, topic: &str, partition: i32) -> Option<PartStats> {
        self.partitions.lock().unwrap_or_else(|p| p.into_inner()).get(&(topic.to_string(), partition)).cloned()
    }

    pub(super) fn next_event(&self) -> Option<GroupEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    pub(super) fn revoke_pending(&self) -> bool {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|e| matches!(e, GroupEvent::Revoke(_)))
    }
}
