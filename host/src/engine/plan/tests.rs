use super::*;
use crate::processor::{Processor, ProcessorContext};

/// A stage that only declares its key and whether it keeps state.
struct Stage(KeyNeed, bool);

impl ProcessorFactory for Stage {
    fn name(&self) -> &str {
        "stage"
    }
    fn key(&self) -> KeyNeed {
        self.0.clone()
    }
    fn keeps_state(&self) -> bool {
        self.1
    }
    fn instantiate(&self, _: &ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        anyhow::bail!("not run")
    }
}

fn config(input_extra: &str, stream_extra: &str) -> EngineConfig {
    let y = format!(
        "state_management: {{ enabled: true, exactly_once: true }}\nstreams:\n  - name: s\n    input: {{ type: kafka, brokers: [\"127.0.0.1:1\"], topics: [orders], consumer_group: g, assignment: group, options: {{ security.protocol: plaintext }}{input_extra} }}\n    pipeline: {{ processors: [{q}, {q}, {q}] }}\n    output: {{ type: drop }}\n    state: {{ operator_id: op, enabled: true }}\n{stream_extra}",
        q = "{ type: sql, query: \"SELECT * FROM flow\" }"
    );
    EngineConfig::from_yaml_str(&y, None).unwrap()
}

fn stages(s: &[(KeyNeed, bool)]) -> Vec<Arc<dyn ProcessorFactory>> {
    s.iter().map(|(k, st)| Arc::new(Stage(k.clone(), *st)) as Arc<dyn ProcessorFactory>).collect()
}

fn user() -> KeyNeed {
    KeyNeed::Fields(vec!["user".into()])
}

#[test]
fn a_group_mode_stage_keyed_by_a_field_reads_a_repartition_topic_keyed_by_it() {
    let engine = config("", "");
    let f = stages(&[(KeyNeed::None, false), (user(), true), (KeyNeed::None, false)]);
    let p = plan(&engine, &engine.streams[0], &f).unwrap();
    let r = p.repartition.as_ref().expect("a repartition topic");
    assert_eq!((r.topic.as_str(), &r.key[..]), ("op-1-repartition", &["user".to_string()][..]));
    let [up, down] = &p.parts[..] else { panic!("{p:?}") };
    assert_eq!((up.stages.clone(), down.stages.clone()), (0..1, 1..3));
    assert_eq!((up.config.pipeline.processors.len(), down.config.pipeline.processors.len()), (1, 2));
    assert_eq!(up.config.state.operator_id, "op-1-repartition");
    assert_eq!(up.config.input, engine.streams[0].input, "part 1 reads the stream's input");
    let out = up.config.output.get::<KafkaOutputConfig>().expect("a kafka output");
    assert_eq!(
        (out.topic.as_str(), &out.key_fields[..], out.exactly_once, out.exactly_once_mode),
        ("op-1-repartition", &["user".to_string()][..], true, ExactlyOnceMode::Outbox)
    );
    assert_eq!(out.options.get("partitioner").map(String::as_str), Some("murmur2"));
    assert_eq!(out.options.get("security.protocol").map(String::as_str), Some("plaintext"), "the input's client settings");
    let input = down.config.input.get::<KafkaInputConfig>().expect("a kafka input");
    assert_eq!(input.topics, vec!["op-1-repartition".to_string()]);
    assert_eq!((input.consumer_group.as_deref(), input.assignment, input.start_from), (Some("g-1-repartition"), Assignment::Group, StartFrom::Earliest));
    assert_eq!(input.partitioned_by, Some(vec!["user".to_string()]));
    assert_eq!((down.config.state.operator_id.as_str(), down.config.name.as_str()), ("op", "s"), "the keyed stages keep the stream's state scope");
    assert_eq!(down.routing, Routing::Repartitioned("op-1-repartition".into()));
    assert_eq!(up.routing, Routing::Partition);
    let lines = describe(&p, &f);
    assert!(lines.len() == 3 && lines[1].contains("repartition topic `op-1-repartition` keyed by (user)"), "{lines:?}");
}

#[test]
fn no_split_when_the_input_is_partitioned_by_the_key_or_not_shared_by_a_group() {
    let f = stages(&[(user(), true)]);
    let declared = config(", partitioned_by: [user]", "");
    assert!(plan(&declared, &declared.streams[0], &f).unwrap().repartition.is_none(), "declared partitioning");
    let by_other = config(", partitioned_by: [account]", "");
    assert!(plan(&by_other, &by_other.streams[0], &f).unwrap().repartition.is_some(), "partitioned by another key");
    let mut single = config("", "");
    single.streams[0].input =
        InputConfig::new(KafkaInputConfig { assignment: Assignment::All, ..single.streams[0].input.get::<KafkaInputConfig>().unwrap().clone() });
    let p = plan(&single, &single.streams[0], &f).unwrap();
    assert!(p.repartition.is_none() && p.parts.len() == 1, "one process routes by fields itself");
    assert_eq!(p.parts[0].routing, Routing::Fields { fields: vec!["user".into()], fallback: false });
    let stateless = stages(&[(KeyNeed::None, false)]);
    let engine = config("", "");
    assert!(plan(&engine, &engine.streams[0], &stateless).unwrap().repartition.is_none(), "no keyed stage");
}

#[test]
fn the_record_key_is_repartitioned_only_after_a_stage_that_may_rewrite_it() {
    let engine = config("", "");
    let first = stages(&[(KeyNeed::RecordKey, true)]);
    assert!(plan(&engine, &engine.streams[0], &first).unwrap().repartition.is_none(), "Kafka partitions by the message key");
    let later = stages(&[(KeyNeed::None, false), (KeyNeed::RecordKey, true)]);
    let r = plan(&engine, &engine.streams[0], &later).unwrap().repartition.expect("split");
    assert!(r.key.is_empty(), "{r:?}");
}

#[test]
fn the_streams_key_by_splits_before_the_first_stage_keeping_state() {
    let engine = config("", "    key_by: user\n");
    let f = stages(&[(KeyNeed::None, false), (KeyNeed::None, true)]);
    let p = plan(&engine, &engine.streams[0], &f).unwrap();
    assert_eq!(p.repartition.as_ref().map(|r| r.key.clone()), Some(vec!["user".to_string()]));
    assert_eq!(p.parts[1].stages, 1..2);
    assert!(p.parts.iter().all(|p| p.config.key_by.is_none()), "the topic applied it");
}
