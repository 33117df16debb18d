use super::*;
use crate::engine::Tiers;
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
    let r = p.repartitions.first().expect("a repartition topic");
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
    assert_eq!(down.tiers, Tiers::one(Routing::Repartitioned("op-1-repartition".into())));
    assert_eq!(up.tiers, Tiers::one(Routing::Partition));
    let lines = describe(&p, &f);
    assert!(lines.len() == 3 && lines[1].contains("repartition topic `op-1-repartition` keyed by (user)"), "{lines:?}");
}

#[test]
fn no_split_when_the_input_is_partitioned_by_the_key_or_not_shared_by_a_group() {
    let f = stages(&[(user(), true)]);
    let declared = config(", partitioned_by: [user]", "");
    assert!(plan(&declared, &declared.streams[0], &f).unwrap().repartitions.is_empty(), "declared partitioning");
    let by_other = config(", partitioned_by: [account]", "");
    assert!(plan(&by_other, &by_other.streams[0], &f).unwrap().repartitions.len() == 1, "partitioned by another key");
    let mut single = config("", "");
    single.streams[0].input =
        InputConfig::new(KafkaInputConfig { assignment: Assignment::All, ..single.streams[0].input.get::<KafkaInputConfig>().unwrap().clone() });
    let p = plan(&single, &single.streams[0], &f).unwrap();
    assert!(p.repartitions.is_empty() && p.parts.len() == 1, "one process routes by fields itself");
    assert_eq!(p.parts[0].tiers, Tiers::one(Routing::Fields { fields: vec!["user".into()], fallback: false }));
    let stateless = stages(&[(KeyNeed::None, false)]);
    let engine = config("", "");
    assert!(plan(&engine, &engine.streams[0], &stateless).unwrap().repartitions.is_empty(), "no keyed stage");
}

#[test]
fn the_record_key_is_repartitioned_only_after_a_stage_that_may_rewrite_it() {
    let engine = config("", "");
    let first = stages(&[(KeyNeed::RecordKey, true)]);
    assert!(plan(&engine, &engine.streams[0], &first).unwrap().repartitions.is_empty(), "Kafka partitions by the message key");
    let later = stages(&[(KeyNeed::None, false), (KeyNeed::RecordKey, true)]);
    let r = plan(&engine, &engine.streams[0], &later).unwrap().repartitions.first().cloned().expect("split");
    assert!(r.key.is_empty(), "{r:?}");
}

#[test]
fn the_streams_key_by_splits_before_the_first_stage_keeping_state() {
    let engine = config("", "    key_by: user\n");
    let f = stages(&[(KeyNeed::None, false), (KeyNeed::None, true)]);
    let p = plan(&engine, &engine.streams[0], &f).unwrap();
    assert_eq!(p.repartitions.first().map(|r| r.key.clone()), Some(vec!["user".to_string()]));
    assert_eq!(p.parts[1].stages, 1..2);
    assert!(p.parts.iter().all(|p| p.config.key_by.is_none()), "the topic applied it");
}

fn item() -> KeyNeed {
    KeyNeed::Fields(vec!["item".into()])
}

#[test]
fn group_mode_splits_at_every_key_boundary_into_a_chain_of_topics() {
    let engine = config("", "");
    let f = stages(&[(user(), true), (KeyNeed::None, false), (item(), true)]);
    let p = plan(&engine, &engine.streams[0], &f).unwrap();
    let topics: Vec<&str> = p.repartitions.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(topics, ["op-0-repartition", "op-2-repartition"]);
    let [a, b, c] = &p.parts[..] else { panic!("{p:?}") };
    assert_eq!((a.stages.clone(), b.stages.clone(), c.stages.clone()), (0..0, 0..2, 2..3));
    let mid_in = b.config.input.get::<KafkaInputConfig>().unwrap();
    let mid_out = b.config.output.get::<KafkaOutputConfig>().unwrap();
    assert_eq!((mid_in.topics[0].as_str(), mid_in.consumer_group.as_deref()), ("op-0-repartition", Some("g-0-repartition")));
    assert_eq!((mid_out.topic.as_str(), &mid_out.key_fields[..]), ("op-2-repartition", &["item".to_string()][..]));
    assert_eq!(b.config.state.operator_id, "op-2-repartition", "a middle part's state is scoped by the topic it writes");
    assert_eq!(c.config.input.get::<KafkaInputConfig>().unwrap().partitioned_by, Some(vec!["item".to_string()]));
    assert_eq!((c.config.state.operator_id.as_str(), c.tiers.first()), ("op", &Routing::Repartitioned("op-2-repartition".into())));
    assert_eq!(describe(&p, &f).len(), 5, "three parts and two topics");
}

/// A stream in one process with the given processors (YAML flow list) over a generate input.
fn local(processors: &str) -> EngineConfig {
    let y = format!("streams:\n  - name: s\n    input: {{ type: generate, count: 1 }}\n    pipeline: {{ thread_num: 2, processors: [{processors}] }}\n    output: {{ type: drop }}\n");
    EngineConfig::from_yaml_str(&y, None).unwrap()
}

const CONTINUOUS: &str = "{ type: sql, mode: continuous, query: \"SELECT user, COUNT(*) FROM flow GROUP BY user\" }";
const BATCH: &str = "{ type: sql, query: \"SELECT * FROM flow\" }";

#[test]
fn in_one_process_a_stage_keyed_otherwise_starts_a_tier_behind_an_exchange() {
    let two_keys = local(&format!("{CONTINUOUS}, {CONTINUOUS}"));
    let p = plan(&two_keys, &two_keys.streams[0], &stages(&[(user(), true), (item(), true)])).unwrap();
    let tiers = &p.parts[0].tiers;
    assert!(p.repartitions.is_empty());
    assert_eq!(tiers.0.iter().map(|t| t.start).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(tiers.0[1].routing, Routing::Fields { fields: vec!["item".into()], fallback: false });
    assert_eq!(tiers.ranges(2), [0..1, 1..2]);
    assert!(tiers.describe().ends_with(", exchange before stage 1 by fields item"), "{}", tiers.describe());
    // The same key twice, with nothing in between that may rewrite it: one tier.
    let same = plan(&two_keys, &two_keys.streams[0], &stages(&[(user(), true), (user(), true)])).unwrap();
    assert_eq!(same.parts[0].tiers.0.len(), 1);
    // A batch query may rewrite the key: the keyed stage after it is exchanged to, even by the
    // same key, and tier 0 is not keyed by it.
    let rewrite = local(&format!("{BATCH}, {CONTINUOUS}"));
    let p = plan(&rewrite, &rewrite.streams[0], &stages(&[(KeyNeed::None, false), (user(), true)])).unwrap();
    assert_eq!(p.parts[0].tiers.0.iter().map(|t| t.start).collect::<Vec<_>>(), [0, 1]);
    assert_ne!(p.parts[0].tiers.0[0].routing, Routing::Fields { fields: vec!["user".into()], fallback: false });
    let p = plan(&rewrite, &rewrite.streams[0], &stages(&[(user(), true), (user(), true)])).unwrap();
    assert_eq!(p.parts[0].tiers.0.len(), 2, "a stage keyed by user that may rewrite user");
    // The stream's key_by decides for every stage: one tier.
    let mut by = local(&format!("{CONTINUOUS}, {CONTINUOUS}"));
    by.streams[0].key_by = Some("user".into());
    assert_eq!(plan(&by, &by.streams[0], &stages(&[(user(), true), (item(), true)])).unwrap().parts[0].tiers.0.len(), 1);
}
