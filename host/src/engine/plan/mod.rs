//! What one `streams:` entry compiles to: the sub-streams ("parts") that run it, each a stream
//! of its own with its stages, routing, state scope and sinks (docs/ARCHITECTURE.md, *Stream
//! plans*).
//!
//! Usually one part, the stream as written. In group mode (`assignment: group`) records stay in
//! the process that owns their input partition, so a stage keyed by something the input is not
//! partitioned by would see each key's records spread over processes. The plan then splits the
//! stream at that stage, the Kafka Streams way (docs/SCALE_OUT.md, *Repartition topics*):
//! - part 1 runs the stages before it and writes every record to the repartition topic
//!   `{operator_id}-{stage}-repartition`, keyed by the stage's key (its fields' routing key, or
//!   the record key), through the commit protocol of any Kafka output (the outbox when
//!   `exactly_once`); its state scope is the topic's name;
//! - part 2 reads that topic in its own consumer group `{group}-{stage}-repartition` with
//!   `assignment: group`, and runs the stage and everything after it under the stream's
//!   `operator_id`: a key's records share a partition, so its state sits in one key group,
//!   whichever process owns it now.
//!
//! The input is taken as partitioned by the key when it says so (`partitioned_by:`), or when the
//! keyed stage is the first and keys by the record key (Kafka partitions by the message key).

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
    pub routing: Routing,
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
    pub repartition: Option<Repartition>,
}

/// The plan of stream `cfg`, whose stages are built as `factories`.
pub fn plan(engine: &EngineConfig, cfg: &StreamConfig, factories: &[Arc<dyn ProcessorFactory>]) -> anyhow::Result<StreamPlan> {
    let needs: Vec<KeyNeed> = factories.iter().map(|f| f.key()).collect();
    let Some((at, key)) = repartition_point(cfg, factories, &needs)? else {
        let whole = Part { config: cfg.clone(), stages: 0..factories.len(), routing: super::routing::plan(cfg, &needs)? };
        return Ok(StreamPlan { parts: vec![whole], repartition: None });
    };
    let Some(input) = cfg.input.get::<KafkaInputConfig>() else { unreachable!("group mode is a kafka input setting") };
    let topic = format!("{}-{at}-repartition", cfg.state.operator_id);
    let mut up = cfg.clone();
    up.name = format!("{}-{at}-repartition", cfg.name);
    up.pipeline.processors.truncate(at);
    up.key_by = None;
    up.state.operator_id = topic.clone();
    up.output = OutputConfig::new(repartition_sink(engine, input, &topic, &key));
    let mut down = cfg.clone();
    down.pipeline.processors.drain(..at);
    down.key_by = None;
    down.input = InputConfig::new(repartition_source(input, &topic, &format!("{}-{at}-repartition", super::default_group(cfg)), &key));
    Ok(StreamPlan {
        parts: vec![
            Part { config: up, stages: 0..at, routing: Routing::Partition },
            Part { config: down, stages: at..factories.len(), routing: Routing::Repartitioned(topic.clone()) },
        ],
        repartition: Some(Repartition { topic, key, input: input.clone() }),
    })
}

/// Where a group-mode stream must be split and by which key (see the module doc): the first
/// keyed stage (or with the stream's `key_by`, the first stage keeping state).
fn repartition_point(cfg: &StreamConfig, factories: &[Arc<dyn ProcessorFactory>], needs: &[KeyNeed]) -> anyhow::Result<Option<(usize, Vec<String>)>> {
    if !cfg.group_mode() {
        return Ok(None);
    }
    let keyed = super::routing::keyed_stage(cfg, needs)?;
    let (at, key) = match (&cfg.key_by, keyed) {
        (Some(k), Some((i, _))) => (i, vec![k.clone()]),
        (Some(k), None) => match factories.iter().position(|f| f.keeps_state()) {
            Some(i) => (i, vec![k.clone()]),
            None => return Ok(None),
        },
        (None, Some((i, KeyNeed::Fields(f)))) => (i, f.clone()),
        (None, Some((i, KeyNeed::RecordKey))) if i > 0 => (i, Vec::new()),
        _ => return Ok(None),
    };
    if cfg.input.caps().partitioned_by.as_ref() == Some(&key) {
        return Ok(None);
    }
    Ok(Some((at, key)))
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
    let mut lines: Vec<String> = plan.parts.iter().map(|p| super::topology(&p.config, &factories[p.stages.clone()], &p.routing)).collect();
    if let Some(r) = &plan.repartition {
        let key = if r.key.is_empty() { "the record key".to_string() } else { format!("({})", r.key.join(", ")) };
        lines.insert(1, format!("repartition topic `{}` keyed by {key} (created with the input's partition count when missing)", r.topic));
    }
    lines
}

#[cfg(test)]
mod tests;
