//! What a new owner settles for the sessions it fenced (group mode), before its own session runs.
//!
//! Contract: for the sinks whose output becomes visible after the decision
//! (`SinkCaps::commits_after_decision`: `s3`, `postgres`):
//! 1. for each decided checkpoint the take-over continues from or fenced
//!    (`claims::TakeOver::{heads, fenced}`) whose `committed/{e}` marker is missing, that epoch's
//!    commits of those sinks run again (replayed: every such commit is idempotent, so a fenced
//!    session still finishing it, or another new owner of its other key groups doing the same,
//!    changes nothing). Without this, a session killed between its decision and its commit would
//!    lose that epoch's output: the input positions after it are decided;
//! 2. for each fenced scope, each of those sinks releases what it staged for later epochs, which no decision can
//!    name since the fence (`Committer::abandon`: aborted uploads, rolled-back prepared
//!    transactions, deleted staging rows).
//!
//! The scope's `committed/{e}` marker is not written: its other sinks (a kafka outbox) are
//! settled per key group by the take-over itself.

use super::claims::Head;
use crate::checkpoint::recovery::load_manifest;
use crate::checkpoint::{block_on, Committers};
use crate::state::backend::ObjectStore;
use anyhow::Context;
use std::collections::BTreeMap;

/// Settles what `took` found with `committers` (only the sinks that commit after the decision).
pub(super) fn settle(store: &dyn ObjectStore, took: &super::claims::TakeOver, committers: &Committers) -> anyhow::Result<()> {
    if committers.is_empty() {
        return Ok(());
    }
    // The heads the key groups continue from, and the fenced scopes' own last decisions. A head
    // reached through a claim's `from` (its session decided nothing) is replayed too: that
    // session may have died before settling it.
    let heads: BTreeMap<&str, &Head> = took.heads.values().flatten().chain(took.fenced.values().flatten()).map(|h| (h.manifest.as_str(), h)).collect();
    for h in heads.values() {
        replay(store, h, committers).with_context(|| format!("finishing the commits of {}'s decided epoch {}", h.scope, h.epoch))?;
    }
    for (scope, head) in &took.fenced {
        for (sink, c) in committers {
            c.abandon(scope, head.as_ref().map(|h| h.epoch)).with_context(|| format!("{sink}: releasing what fenced session {scope} staged"))?;
        }
    }
    Ok(())
}

/// Runs the commits of `committers`' sinks in `h`'s manifest, unless `h`'s epoch is marked done.
fn replay(store: &dyn ObjectStore, h: &Head, committers: &Committers) -> anyhow::Result<()> {
    if block_on(store.get(&crate::layout::committed(&h.scope, h.epoch)))?.is_some() {
        return Ok(());
    }
    let m = block_on(load_manifest(store, &h.manifest, Some(h.checksum)))?;
    let ours: Vec<_> = m.sinks.iter().filter(|c| committers.contains_key(&c.sink)).cloned().collect();
    if !ours.is_empty() {
        tracing::info!(scope = %h.scope, epoch = h.epoch, sinks = ?ours.iter().map(|c| &c.sink).collect::<Vec<_>>(), "group session: replaying a fenced session's last commits");
    }
    crate::checkpoint::commit::run_all(committers, &ours, true, &|| false).map_err(|e| anyhow::anyhow!(e))
}
