//! What one `streams:` entry compiles to: the sub-streams ("parts") that run it, each a stream
//! of its own with its stages, routing, state scope and sinks (docs/ARCHITECTURE.md, *Stream
//! plans*).
//!
//! Usually one part, the stream as written, whose key boundaries become in-process exchanges
//! between worker tiers (`super::tiers`, `super::exchange`). In group mode (`assignment: group`)
//! records stay in the process that owns their input partition, so a stage keyed by something
//! the records are not partitioned by would see each key's records spread over processes. The
//! plan then splits the stream at every key boundary, the Kafka Streams way (docs/SCALE_OUT.md,
//! *Repartition topics*):
//! - the part before a boundary at stage `i` runs its stages and writes every record to the
//!   repartition topic `{operator_id}-{i}-repartition`, keyed by stage `i`'s key (its fields'
//!   routing key, or the record key), through the commit protocol of any Kafka output (the
//!   outbox when `exactly_once`); its state scope is the topic's name;
//! - the part after it reads that topic in its own consumer group `{group}-{i}-repartition`
//!   with `assignment: group`, and runs stage `i` up to the next boundary; the last part runs
//!   under the stream's `operator_id` and writes its outputs. A key's records share a
//!   partition, so its state sits in one key group, whichever process owns it now.
//!
//! The first boundary needs no topic when the input says it is partitioned by that key
//! (`partitioned_by:`), or when the stage keys by the record key and no stage before it may
//! rewrite it (Kafka partitions by the message key).

use super::tiers::Tiers;
use super::Routing;
use crate::config::{EngineConfig, InputConfig, OutputConfig, StreamConfig};
use crate::connectors::kafka::{Acks, Assignment, Compression, ExactlyOnceMode, IsolationLevel, KafkaInputConfig, KafkaOutputConfig, StartFrom};
use crate::processor::{KeyNeed, ProcessorFactory};
use std::ops::Range;
use std::sync::Arc;

/// One sub-stream of a plan.
#[derive(Debug, Clone)]
pub struct Part {
    /// The part as a stream of its own (its input, stages, outputs and state scope).
    pub config: StreamConfig,
    /// Its stages: indices into the written stream's processors.
    pub stages: Range<usize>,
    /// Its worker tiers (one in group mode), starts relative to `stages`.
    pub tiers: Tiers,
}

/// A repartition topic between two parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Repartition {
    pub topic: String,
    /// The fields whose routing key is the message key; empty = the record key.
    pub key: Vec<String>,
    /// The written stream's input, whose topics give the new topic its partition count.
    pub input: KafkaInputConfig,
}

#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub parts: Vec<Part>,
    /// The topic between part `i` and part `i + 1`.
    pub repartitions: Vec<Repartition>,
}

/// The plan of stream `cfg`, whose stages are built as `factories`.
pub fn plan(engine: &EngineConfig, cfg: &StreamConfig, factories: &[Arc<dyn ProcessorFactory>]) -> anyhow::Result<StreamPlan> {
    let needs: Vec<KeyNeed> = factories.iter().map(|f| f.key()).collect();
    let splits = repartition_points(cfg, factories, &needs)?;
    if splits.is_empty() {
        let whole = Part { config: cfg.clone(), stages: 0..factories.len(), tiers: super::tiers::plan(cfg, &needs)? };
        return Ok(StreamPlan { parts: vec![whole], repartitions: Vec::new() });
    }
    let Some(input) = cfg.input.get::<KafkaInputConfig>() else { unreachable!("group mode is a kafka input setting") };
    let (mut parts, mut repartitions) = (Vec::new(), Vec::new());
    let mut from: Option<(usize, Repartition)> = None;
    let ends = splits.iter().map(|(at, key)| (*at, Some(key))).chain([(factories.len(), None)]);
    for (end, key) in ends {
        let start = from.as_ref().map_or(0, |(s, _)| *s);
        let mut part = cfg.clone();
        part.pipeline.processors = cfg.pipeline.processors[start..end].to_vec();
        part.key_by = None;
        let routing = match &from {
            Some((at, r)) => {
                part.input = InputConfig::new(repartition_source(input, &r.topic, &format!("{}-{at}-repartition", super::default_group(cfg)), &r.key));
                Routing::Repartitioned(r.topic.clone())
            }
            None => Routing::Partition,
        };
        let next = key.map(|key| Repartition { topic: format!("{}-{end}-repartition", cfg.state.operator_id), key: key.clone(), input: input.clone() });
        if let Some(r) = &next {
            part.name = format!("{}-{end}-repartition", cfg.name);
            part.state.operator_id = r.topic.clone();
            part.output = OutputConfig::new(repartition_sink(engine, input, &r.topic, &r.key));
            repartitions.push(r.clone());
        }
        parts.push(Part { config: part, stages: start..end, tiers: Tiers::one(routing) });
        from = next.map(|r| (end, r));
    }
    Ok(StreamPlan { parts, repartitions })
}

/// Where a group-mode stream is split and by which key (see the module doc): every key
/// boundary (`super::tiers::boundaries`), the first one unless the input is partitioned by its
/// key; with the stream's `key_by`, once before the first stage keeping state.
fn repartition_points(cfg: &StreamConfig, factories: &[Arc<dyn ProcessorFactory>], needs: &[KeyNeed]) -> anyhow::Result<Vec<(usize, Vec<String>)>> {
    if !cfg.group_mode() {
        return Ok(Vec::new());
    }
    let mut points: Vec<(usize, Vec<String>)> = match &cfg.key_by {
        Some(k) => {
            let keyed = super::routing::keyed_stage(cfg, needs)?.map(|(i, _)| i);
            keyed.or_else(|| factories.iter().position(|f| f.keeps_state())).map(|i| (i, vec![k.clone()])).into_iter().collect()
        }
        None => super::tiers::boundaries(cfg, needs)?
            .into_iter()
            .map(|(i, need)| match need {
                KeyNeed::Fields(f) => (i, f),
                _ => (i, Vec::new()),
            })
            .collect(),
    };
    // Kafka partitions by the message key: a first stage keyed by it needs no topic, nor does
    // one after stages that keep the key.
    let by_key = |i: usize, key: &[String]| key.is_empty() && !super::tiers::rewritten_before(cfg, i);
    if let Some((i, key)) = points.first() {
        if cfg.input.caps().partitioned_by.as_deref() == Some(&key[..]) || (cfg.key_by.is_none() && by_key(*i, key)) {
            points.remove(0);
        }
    }
    Ok(points)
}

/// Part 1's output: the repartition topic, keyed by `key`, on the input's brokers.
fn repartition_sink(engine: &EngineConfig, input: &KafkaInputConfig, topic: &str, key: &[String]) -> KafkaOutputConfig {
    let mut options = input.options.clone();
    // Java's partitioner: every key, the empty one included, always to the same partition.
    options.insert("partitioner".into(), "murmur2".into());
    let exactly_once = engine.state_management.exactly_once;
    KafkaOutputConfig {
        brokers: input.brokers.clone(),
        topic: topic.to_string(),
        topic_field: None,
        key_field: None,
        key_fields: key.to_vec(),
        headers: Default::default(),
        compression: Compression::None,
        acks: Acks::All,
        idempotent: true,
        exactly_once,
        exactly_once_mode: ExactlyOnceMode::Outbox,
        control_topic: crate::connectors::kafka::DEFAULT_KAFKA_CONTROL_TOPIC.into(),
        client_id: input.client_id.clone(),
        options,
    }
}

/// Part 2's input: the repartition topic from its start, shared by the group `group`.
fn repartition_source(input: &KafkaInputConfig, topic: &str, group: &str, key: &[String]) -> KafkaInputConfig {
    KafkaInputConfig {
        topics: vec![topic.to_string()],
        consumer_group: Some(group.to_string()),
        start_from: StartFrom::Earliest,
        isolation_level: IsolationLevel::ReadCommitted,
        stop_at_end: false,
        rate_per_sec: None,
        assignment: Assignment::Group,
        partitioned_by: Some(key.to_vec()),
        ..input.clone()
    }
}

/// One line per part saying where its stages run and how records reach them (`--validate`).
pub fn describe(plan: &StreamPlan, factories: &[Arc<dyn ProcessorFactory>]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, p) in plan.parts.iter().enumerate() {
        lines.push(super::topology(&p.config, &factories[p.stages.clone()], &p.tiers));
        if let Some(r) = plan.repartitions.get(i) {
            let key = if r.key.is_empty() { "the record key".to_string() } else { format!("({})", r.key.join(", ")) };
            lines.push(format!("repartition topic `{}` keyed by {key} (created with the input's partition count when missing)", r.topic));
        }
    }
    lines
}

#[cfg(test)]
mod tests;
