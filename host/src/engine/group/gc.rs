//! Garbage collection for group mode: the objects of sessions that ended.
//!
//! A session's scope (`{op}/sessions/{g}/`: checkpoints, outbox, markers) is deleted once
//! 1. the session is fenced (a newer owner took one of its key groups: it can never decide again), and
//! 2. no key group's state leads to it any more. Key group `k`'s state leads to session `S` when
//!    `k`'s newest claim names `S`, or names a session that has not decided yet and whose claim's
//!    `from` lies in `S` (`claims::take_over` falls back to it). A session that has decided stands
//!    on its own: its first checkpoint wrote again everything it restored.
//!
//! The fence itself stays (one small object per ended session): a paused process that wakes up
//! must still find its next epoch taken, or it would decide and publish again.
//!
//! By the time a scope goes, its decided outbox records were published: each new owner publishes
//! them for its key groups before claiming. Also deleted: claims below each key group's newest,
//! and generation markers below the newest. Nothing reads those: take-over and the watchdog
//! read the newest claim only, and `claim_generation` needs only the highest marker. The
//! single-process checkpoints under `{op}/` that group mode continued from are kept, as are
//! the scopes in `keep` (this process's own sessions).
//!
//! Several processes may collect at once: every step only deletes, and only what no reader
//! can reach.

use super::claims::{session_scope, Claim};
use crate::checkpoint::decision::{decisions, last_commit, slot_key, Decision};
use crate::checkpoint::parse_tail;
use crate::state::backend::ObjectStore;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What one collection deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub sessions: Vec<u64>,
    pub objects: usize,
}

/// Deletes what ended sessions left behind (see the module contract).
pub async fn collect(store: &dyn ObjectStore, op: &str, keep: &BTreeSet<u64>) -> anyhow::Result<Collected> {
    let mut out = Collected::default();
    // Sessions are listed before claims. A session writes objects only after its claim, so every
    // listed session's claim is in the claim listing below (or was superseded before it), and
    // what the claims lead to can only move on to newer sessions after that listing.
    let mut scopes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for m in store.list(&crate::layout::prefix(op, "sessions")).await? {
        let rest = &m.key[op.len() + "/sessions/".len()..];
        if let Some(g) = rest.split('/').next().and_then(|g| g.parse().ok()) {
            scopes.entry(g).or_default().push(m.key);
        }
    }
    // Claims per key group, in order.
    let mut claims: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for m in store.list(&crate::layout::prefix(op, "keygroups")).await? {
        let rest = &m.key[op.len() + "/keygroups/".len()..];
        let (Some(k), Some(n)) = (rest.split('/').next().and_then(|k| k.parse().ok()), parse_tail(&m.key)) else { continue };
        claims.entry(k).or_default().push((n, m.key));
    }
    // The scopes some key group's state leads to.
    let mut needed: BTreeSet<String> = keep.iter().map(|g| session_scope(op, *g)).collect();
    let mut decided: HashMap<String, bool> = HashMap::new();
    for list in claims.values_mut() {
        list.sort_unstable();
        let Some((_, newest)) = list.last() else { continue };
        let Some(bytes) = store.get(newest).await? else { continue };
        let c = Claim::decode(&bytes, newest, &store.describe())?;
        let owner = session_scope(op, c.session);
        if !decided.contains_key(&owner) {
            decided.insert(owner.clone(), last_commit(store, &owner).await?.0.is_some());
        }
        if !decided[&owner] {
            needed.extend(c.from.map(|h| h.scope));
        }
        needed.insert(owner);
    }
    // Fenced sessions nobody needs: delete their scopes.
    for (g, keys) in scopes {
        let scope = session_scope(op, g);
        if needed.contains(&scope) {
            continue;
        }
        let (all, _) = decisions(store, &scope).await?;
        let fences: BTreeSet<String> = all.iter().filter(|(_, d)| matches!(d, Decision::Fence { .. })).map(|(e, _)| slot_key(&scope, *e)).collect();
        if fences.is_empty() {
            continue; // not ended (or just starting): never touched
        }
        let doomed: Vec<&String> = keys.iter().filter(|k| !fences.contains(*k)).collect();
        for k in &doomed {
            store.delete(k).await?;
        }
        if !doomed.is_empty() {
            out.objects += doomed.len();
            out.sessions.push(g);
        }
    }
    // Superseded claims and generation markers.
    for list in claims.values() {
        for (_, k) in list.iter().rev().skip(1) {
            store.delete(k).await?;
            out.objects += 1;
        }
    }
    let mut gens: Vec<(u64, String)> =
        store.list(&crate::layout::prefix(op, "generations")).await?.into_iter().filter_map(|m| Some((parse_tail(&m.key)?, m.key))).collect();
    gens.sort_unstable();
    gens.pop();
    for (_, k) in gens {
        store.delete(&k).await?;
        out.objects += 1;
    }
    Ok(out)
}
