//! Which key group each record goes to: the routing key a tier of a stream needs, derived from
//! its stages (docs/ARCHITECTURE.md, *Routing*), and the [`Router`] that applies it on the input
//! thread and in exchanges (`super::exchange`).
//!
//! Each stage says which key its state needs ([`KeyNeed`]): none (stateless, or state that is
//! not grouped by a field), fields of the record value (continuous SQL: its GROUP BY columns, all
//! of them in order; a `wasm` processor with `key_by:`, or whose plugin declares its key in
//! `describe()`), or a key the host cannot compute (a GROUP BY over an expression, refused).
//! The input routes by the stream's `key_by` when set, else by the key of tier 0's keyed stages (`super::tiers`): records then reach the key group of
//! their key whatever the input's partitioning, so a group's state is never split. When the
//! input already made the routing field the record key (`generate`, `key_field:`), the record
//! key is used as is (same key groups, no read of the value). A Kafka input in group mode keeps
//! routing by partition (a partition's key groups move with it between processes); a stage
//! keyed otherwise reads a repartition topic (`super::plan`).

use crate::config::StreamConfig;
use crate::processor::KeyNeed;

/// How the input thread routes records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// By the record key; records without one round-robin over the key groups.
    RecordKey,
    /// By the record's partition (`partition % key_groups`).
    Partition,
    /// By the partition of this repartition topic, which the plan's first part keyed by the
    /// stage's key (`super::plan`); named apart so that restoring state written under another
    /// layout is refused.
    Repartitioned(String),
    /// By these top-level fields of the JSON value, in order. A missing or null field counts as
    /// empty, unless `fallback`: then a record with none of the fields goes by its record key
    /// (the stream's explicit `key_by`).
    Fields { fields: Vec<String>, fallback: bool },
    /// By field `0`, which the input already made the record key (`generate`, or `key_field`):
    /// the same key groups as `Fields` without reading the value; no key = the empty key.
    KeyOfField(String),
}

impl Routing {
    /// How the routing is named in logs and checkpoint manifests.
    pub fn describe(&self) -> String {
        match self {
            Routing::RecordKey => "record key".into(),
            Routing::Partition => "partition".into(),
            Routing::Repartitioned(t) => format!("partition of repartition topic {t}"),
            Routing::Fields { fields, .. } => format!("fields {}", fields.join(", ")),
            Routing::KeyOfField(f) => format!("fields {f}"),
        }
    }
}

/// The routing of stream `cfg` whose stages need `needs` (in pipeline order).
pub fn plan(cfg: &StreamConfig, needs: &[KeyNeed]) -> anyhow::Result<Routing> {
    let keyed = keyed_stage(cfg, needs)?;
    if cfg.group_mode() {
        // A stage keyed otherwise than the partitions was split off by the plan (`super::plan`).
        return Ok(Routing::Partition);
    }
    if let Some(k) = &cfg.key_by {
        if let Some((i, need)) = keyed.filter(|(_, n)| **n != KeyNeed::Fields(vec![k.clone()])) {
            let by = describe_need(need);
            tracing::warn!(stream = %cfg.name, "key_by routes records by `{k}` while {} keeps state by {by}: its results are right only if equal `{k}` values imply equal groups", label(cfg, i));
        }
        return Ok(Routing::Fields { fields: vec![k.clone()], fallback: true });
    }
    let caps = cfg.input.caps();
    Ok(match keyed.map(|(_, n)| n) {
        Some(KeyNeed::Fields(f)) if f.len() == 1 && caps.key_field.as_deref() == Some(&f[0]) => Routing::KeyOfField(f[0].clone()),
        Some(KeyNeed::Fields(f)) => Routing::Fields { fields: f.clone(), fallback: false },
        Some(_) => Routing::RecordKey,
        // A Kafka partition owns its key groups.
        None if caps.partitioned => Routing::Partition,
        None => Routing::RecordKey,
    })
}

fn label(cfg: &StreamConfig, i: usize) -> String {
    cfg.stage_label(i)
}

/// "(a, b)" for fields, "the record key" for the record key.
fn describe_need(need: &KeyNeed) -> String {
    match need {
        KeyNeed::Fields(f) => format!("({})", f.join(", ")),
        _ => "the record key".into(),
    }
}

/// The first stage that keeps state by a key the host routes by (fields or the record key);
/// refuses a key the host cannot compute unless the stream's `key_by` decides. Stages keyed
/// otherwise than the first start tiers of their own (`super::tiers`), so callers pass stages
/// that share one key.
pub(crate) fn keyed_stage<'a>(cfg: &StreamConfig, needs: &'a [KeyNeed]) -> anyhow::Result<Option<(usize, &'a KeyNeed)>> {
    for (i, need) in needs.iter().enumerate() {
        match need {
            KeyNeed::None => {}
            KeyNeed::Unknown(why) if cfg.key_by.is_none() => return Err(unroutable(cfg, i, why)),
            KeyNeed::Unknown(_) => {}
            KeyNeed::Fields(_) | KeyNeed::RecordKey => return Ok(Some((i, need))),
        }
    }
    Ok(None)
}

/// The refusal of stage `i`, whose state is grouped by something the host cannot compute (`why`).
pub(crate) fn unroutable(cfg: &StreamConfig, i: usize, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: {why}; the host cannot route records by it, so a group's records would be split over key groups and its results would be wrong. Set the stream's `key_by:` to a field whose equal values imply equal groups",
        label(cfg, i)
    )
}

/// Assigns key groups and workers.
#[derive(Debug, Clone)]
pub struct Router {
    pub key_groups: u32,
    pub workers: usize,
    pub routing: Routing,
    /// The first key group of the tier routed (`super::tiers`): tier `t` owns groups
    /// `t * key_groups ..`.
    base: u32,
    unkeyed: u64,
    /// Stateless pipelines: the one key group each worker files all its records under.
    coalesce: Option<Vec<u32>>,
}

impl Router {
    pub fn new(key_groups: u32, workers: usize, routing: Routing) -> Self {
        Router { key_groups, workers, routing, base: 0, unkeyed: 0, coalesce: None }
    }

    /// The router of worker tier `tier` (its key groups start at `tier * key_groups`).
    pub fn for_tier(mut self, tier: usize) -> Self {
        self.base = tier as u32 * self.key_groups;
        self
    }

    /// For a pipeline whose stages keep no state: records still go to the worker of their key
    /// group (a key's order is kept), but each worker files them under one key group, its first,
    /// so they are processed in whole batches instead of one small batch per key group.
    pub fn coalesced(mut self) -> Self {
        let first = |w: usize| self.base + (0..self.key_groups).find(|g| self.worker_of(*g) == w).unwrap_or(0);
        self.coalesce = Some((0..self.workers).map(first).collect());
        self
    }

    /// The key group of a routing key.
    pub fn group_of(&self, key: &[u8]) -> u32 {
        self.base + (xxhash_rust::xxh3::xxh3_64(key) % self.key_groups as u64) as u32
    }

    /// The worker owning `group` (contiguous ranges, the same in every tier).
    pub fn worker_of(&self, group: u32) -> usize {
        ((group % self.key_groups) as u64 * self.workers as u64 / self.key_groups as u64) as usize
    }

    /// The key groups worker `w` owns in this router's tier.
    pub fn groups_of(&self, w: usize) -> Vec<u32> {
        (self.base..self.base + self.key_groups).filter(|g| self.worker_of(*g) == w).collect()
    }

    /// The index, over the workers of every tier (tier by tier), of the worker owning `group`.
    pub fn slot_of(&self, group: u32) -> usize {
        (group / self.key_groups) as usize * self.workers + self.worker_of(group)
    }

    /// The key group of one record.
    pub fn group(&mut self, record: &crate::record::Record) -> u32 {
        match &self.routing {
            Routing::Partition | Routing::Repartitioned(_) => self.base + record.partition % self.key_groups,
            Routing::RecordKey => self.by_record_key(record),
            Routing::KeyOfField(_) => self.group_of(record.key.as_deref().unwrap_or_default()),
            Routing::Fields { fields, fallback } => match crate::util::json::fields_key(record.value.as_deref().unwrap_or_default(), fields) {
                (_, false) if *fallback => self.by_record_key(record),
                (key, _) => self.group_of(&key),
            },
        }
    }

    pub fn route(&mut self, batch: Vec<crate::record::Record>) -> Vec<Vec<super::msg::Routed>> {
        let mut out: Vec<Vec<super::msg::Routed>> = (0..self.workers).map(|_| Vec::with_capacity(batch.len() / self.workers + 1)).collect();
        for record in batch {
            let group = self.group(&record);
            let worker = self.worker_of(group);
            let group = self.coalesce.as_ref().map_or(group, |first| first[worker]);
            out[worker].push(super::msg::Routed { group, record });
        }
        out
    }

    fn by_record_key(&mut self, record: &crate::record::Record) -> u32 {
        match &record.key {
            Some(k) => self.group_of(k),
            None => {
                self.unkeyed += 1;
                self.base + (self.unkeyed % self.key_groups as u64) as u32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn rec(value: &str, key: Option<&str>) -> Record {
        Record { key: key.map(|k| k.as_bytes().to_vec()), value: Some(value.as_bytes().to_vec()), ..Default::default() }
    }

    #[test]
    fn records_with_equal_fields_share_a_group_whatever_their_record_key_or_partition() {
        let mut r = Router::new(128, 4, Routing::Fields { fields: vec!["user".into(), "day".into()], fallback: false });
        let mut a = rec(r#"{"user":"u1","day":3,"x":1}"#, Some("k1"));
        a.partition = 1;
        let mut b = rec(r#"{"x":2,"day":3,"user":"u1"}"#, Some("k2"));
        b.partition = 2;
        assert_eq!(r.group(&a), r.group(&b));
        // Missing fields are the empty (null) group, one group for all of them.
        let (n1, n2) = (rec(r#"{"x":1}"#, Some("a")), rec(r#"{"x":2}"#, None));
        assert_eq!(r.group(&n1), r.group(&n2));
        // Different values spread over groups.
        let groups: std::collections::HashSet<u32> = (0..100).map(|i| r.group(&rec(&format!(r#"{{"user":"u{i}","day":3}}"#), None))).collect();
        assert!(groups.len() > 40, "{groups:?}");
    }

    #[test]
    fn a_record_key_taken_from_the_field_routes_like_the_field() {
        let mut by_field = Router::new(128, 2, Routing::Fields { fields: vec!["user".into()], fallback: false });
        let mut by_key = Router::new(128, 2, Routing::KeyOfField("user".into()));
        for v in [r#"{"user":"u1"}"#, r#"{"user":42}"#, r#"{"x":1}"#] {
            let key = crate::util::json::field_bytes(v.as_bytes(), "user");
            let r = Record { key, value: Some(v.as_bytes().to_vec()), ..Default::default() };
            assert_eq!(by_field.group(&r), by_key.group(&r), "{v}");
        }
    }

    #[test]
    fn a_coalesced_router_keeps_workers_and_files_each_workers_records_under_one_group() {
        let mut plain = Router::new(128, 3, Routing::RecordKey);
        let mut one = Router::new(128, 3, Routing::RecordKey).coalesced();
        let batch: Vec<Record> = (0..500).map(|i| rec("{}", Some(&format!("k{i}")))).collect();
        let (a, b) = (plain.route(batch.clone()), one.route(batch));
        for w in 0..3 {
            let keys = |v: &Vec<super::super::msg::Routed>| v.iter().map(|r| r.record.key.clone()).collect::<Vec<_>>();
            assert_eq!(keys(&a[w]), keys(&b[w]), "worker {w} gets the same records in the same order");
            let groups: std::collections::HashSet<u32> = b[w].iter().map(|r| r.group).collect();
            assert_eq!(groups.len(), 1, "worker {w}: one group");
            assert_eq!(one.worker_of(*groups.iter().next().unwrap()), w, "a group the worker owns");
        }
    }

    #[test]
    fn an_explicit_key_by_falls_back_to_the_record_key() {
        let mut r = Router::new(128, 2, Routing::Fields { fields: vec!["user".into()], fallback: true });
        let a = rec(r#"{"x":1}"#, Some("u7"));
        let b = rec(r#"{"user":"u7"}"#, Some("other"));
        assert_eq!(r.group(&a), r.group(&b), "a record without the field goes by its key");
    }
}
