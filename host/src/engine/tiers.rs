//! Where a stream's stages change key (docs/ARCHITECTURE.md, *Exchanges*): the boundaries the
//! host puts an exchange at, and the worker tiers they cut a stream into.
//!
//! Records are partitioned by one key per tier. A new tier starts at a stage that keeps state by
//! a key (fields of the value, or the record key) when the records reaching it are not known to
//! be partitioned by that key: either the key differs from the tier's, or a stage since the
//! tier's key was last needed may have rewritten records (a `wasm` plugin, a batch query; the
//! codecs and a continuous query keep their group's key). A stateless stage never starts a tier.
//!
//! In one process each boundary after the first is an in-process exchange between two tiers of
//! `thread_num` workers (`super::exchange`); tier 0 is routed by the input thread. In group mode
//! each boundary is a repartition topic between two parts of the plan (`super::plan`), and the
//! first one too unless the input is already partitioned by its key.
//!
//! Tier `t` keeps its state in key groups `t * key_groups ..` so that two tiers' groups never
//! share a snapshot entry, and a restore under another tier layout is refused by the routing
//! named in every manifest ([`Tiers::describe`]).

use super::Routing;
use crate::config::StreamConfig;
use crate::processor::KeyNeed;

/// One tier: the stages from `start` (index into the stream's stages) to the next tier's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub start: usize,
    pub routing: Routing,
}

/// A stream's tiers, tier 0 first; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers(pub Vec<Tier>);

impl Tiers {
    /// One tier routed by `routing`.
    pub fn one(routing: Routing) -> Self {
        Tiers(vec![Tier { start: 0, routing }])
    }

    /// Tier 0's routing (the input's).
    pub fn first(&self) -> &Routing {
        &self.0[0].routing
    }

    /// How the layout is named in logs and checkpoint manifests: tier 0's routing as before
    /// exchanges existed, then each exchange.
    pub fn describe(&self) -> String {
        let mut s = self.first().describe();
        for t in &self.0[1..] {
            s.push_str(&format!(", exchange before stage {} by {}", t.start, t.routing.describe()));
        }
        s
    }

    /// The stage ranges of the tiers, for a stream of `stages` stages.
    pub fn ranges(&self, stages: usize) -> Vec<std::ops::Range<usize>> {
        let ends = self.0.iter().skip(1).map(|t| t.start).chain([stages]);
        self.0.iter().zip(ends).map(|(t, end)| t.start..end).collect()
    }
}

/// The stages where a key starts being needed, with that key: the first keyed stage, then every
/// stage that starts a new tier (see the module doc). A key the host cannot compute is refused,
/// naming the stage and the fix. Not for a stream with `key_by` (one key for every stage).
pub fn boundaries(cfg: &StreamConfig, needs: &[KeyNeed]) -> anyhow::Result<Vec<(usize, KeyNeed)>> {
    let mut out: Vec<(usize, KeyNeed)> = Vec::new();
    let mut rewritten = false;
    for (i, need) in needs.iter().enumerate() {
        match need {
            KeyNeed::None => {}
            KeyNeed::Unknown(why) => return Err(super::routing::unroutable(cfg, i, why)),
            KeyNeed::Fields(_) | KeyNeed::RecordKey => {
                let same = out.last().is_some_and(|(_, k)| k == need);
                if !same || rewritten {
                    out.push((i, need.clone()));
                }
                rewritten = false;
            }
        }
        rewritten |= cfg.pipeline.processors.get(i).is_some_and(|p| p.caps().may_rewrite_key);
    }
    Ok(out)
}

/// The routing of an exchange to a stage keyed by `need`.
pub fn exchange_routing(need: &KeyNeed) -> Routing {
    match need {
        KeyNeed::Fields(f) => Routing::Fields { fields: f.clone(), fallback: false },
        _ => Routing::RecordKey,
    }
}

/// The tiers of a stream that runs in one process: tier 0 routed by the input (by the key of
/// its keyed stages, `super::routing::plan`), one more per later boundary. A stream with
/// `key_by`, or in group mode (where the plan made each part one tier), is one tier.
pub fn plan(cfg: &StreamConfig, needs: &[KeyNeed]) -> anyhow::Result<Tiers> {
    if cfg.key_by.is_some() || cfg.group_mode() {
        return Ok(Tiers::one(super::routing::plan(cfg, needs)?));
    }
    let bounds = boundaries(cfg, needs)?;
    // Tier 0 ends at the second boundary, or at the first when a stage before it may have
    // rewritten the records (then tier 0 is keyless and the first keyed stage starts tier 1).
    let first_keyed_in_tier0 = bounds.first().is_some_and(|(i, _)| !rewritten_before(cfg, *i));
    let cut = if first_keyed_in_tier0 { 1 } else { 0 };
    let end0 = bounds.get(cut).map_or(needs.len(), |(i, _)| *i);
    let mut tiers = vec![Tier { start: 0, routing: super::routing::plan(cfg, &needs[..end0])? }];
    tiers.extend(bounds[cut..].iter().map(|(i, need)| Tier { start: *i, routing: exchange_routing(need) }));
    Ok(Tiers(tiers))
}

/// A stage before `i` may rewrite the records' key or value.
pub fn rewritten_before(cfg: &StreamConfig, i: usize) -> bool {
    cfg.pipeline.processors[..i].iter().any(|p| p.caps().may_rewrite_key)
}
