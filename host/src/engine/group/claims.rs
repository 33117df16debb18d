//! Key-group ownership in the state store (group mode), and what a new owner restores.
//!
//! Layout under `{operator_id}/`: `sessions/{g}/...` is session `g`'s own checkpoint scope
//! (`data/`, `manifests/`, `commits/`, `outbox/`, `published/`, as in `checkpoint`), and
//! `keygroups/{k}/{n}` is the `n`-th claim of key group `k` (create-only), naming the session
//! that owns it from then on and the decided checkpoint it started from. This is the per-key-group
//! manifest index: the latest state of `k` is the last decision of the session of `k`'s newest
//! claim, or, when that session decided nothing, the checkpoint its claim started from.
//!
//! Taking over `k` (a session starts with `k` among its partitions' key groups):
//! 1. read `k`'s newest claim `n` and fence its session (a `Fence` decision after its highest
//!    epoch, exactly as recovery fences an older generation), so it can never decide again; its
//!    last decision is now final. Without claims, `k` continues the single-process checkpoints
//!    of the operator (`{operator_id}/commits/`), fenced the same way.
//! 2. publish that checkpoint's decided but unpublished outbox records of `k` (outbox mode);
//! 3. create claim `n + 1`; if another session created it first, start again from 1.
//!
//! The sessions fenced on the way are reported (`TakeOver::fenced`), so the new owner can finish
//! what their sinks decided and release what they staged past it (`settle`).
//!
//! Two sessions therefore never decide state of the same key group after one another's claim:
//! durability before visibility and one decision per epoch hold per session, and each key
//! group's history is a chain of sessions.

use crate::checkpoint::decision::{fence_next, Decision};
use crate::checkpoint::parse_tail;
use crate::checkpoint::recovery::{check_layout, load_entries, load_manifest};
use crate::state::backend::{ObjectStore, PutOutcome};
use crate::state::snapshot::SnapshotEntry;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A decided checkpoint holding some key groups' state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub scope: String,
    pub epoch: u64,
    pub generation: u64,
    pub manifest: String,
    pub checksum: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claim {
    pub session: u64,
    pub from: Option<Head>,
}

impl Claim {
    pub fn encode(&self) -> Bytes {
        Bytes::from(crate::checkpoint::sealed::seal(self))
    }

    /// Decodes claim `key` of `store` (sealed: a corrupted claim is an error naming it).
    pub fn decode(bytes: &[u8], key: &str, store: &str) -> anyhow::Result<Claim> {
        crate::checkpoint::sealed::open(bytes, &format!("claim {key} in {store}"))
    }
}

use crate::layout::claims_prefix;
pub use crate::layout::session_scope;

fn head_of(scope: &str, d: Option<(u64, Decision)>) -> Option<Head> {
    match d {
        Some((_, Decision::Commit { epoch, manifest, checksum, generation })) => Some(Head { scope: scope.to_string(), epoch, generation, manifest, checksum }),
        _ => None,
    }
}

/// What a session starts from.
#[derive(Debug, Default)]
pub struct TakeOver {
    /// Restored entries of the session's key groups, in chain order per group.
    pub entries: Vec<SnapshotEntry>,
    /// Input position of the session's partitions (`{"kafka": {topic: {partition: offset}}}`).
    pub position: serde_json::Value,
    /// Key group -> the checkpoint it was restored from (None = fresh).
    pub heads: BTreeMap<u32, Option<Head>>,
    pub restore_ms: u64,
    /// Outbox messages the previous owners had not published, published now.
    pub leftovers: usize,
    /// The newest TTL clock of the checkpoints restored from.
    pub clock_ms: Option<i64>,
    /// Every scope fenced on the way, with its last decision: what their sinks decided but may
    /// not have committed, and staged past it, is settled by the new owner (`settle`).
    pub fenced: BTreeMap<String, Option<Head>>,
}

/// Claims `groups` for session `g` and loads their latest state (see the module contract).
pub async fn take_over(
    store: Arc<dyn ObjectStore>,
    op: &str,
    g: u64,
    groups: &BTreeSet<u32>,
    key_groups: u32,
    routing: &str,
    outbox: Option<&crate::connectors::kafka::KafkaOutputConfig>,
) -> anyhow::Result<TakeOver> {
    let mut out = TakeOver::default();
    let mut todo: BTreeSet<u32> = groups.clone();
    // Each fenced scope's last decision, so a session is fenced once however many groups it had.
    let mut fenced: HashMap<String, Option<Head>> = HashMap::new();
    while !todo.is_empty() {
        // 1. Resolve every group's head, fencing its current owner.
        let next = resolve_heads(&*store, op, g, &todo, &mut fenced).await?;
        // 2. Publish what the previous owners decided but did not publish, per head.
        if let Some(cfg) = outbox {
            for (h, ks) in by_head(next.iter().map(|(k, (_, h))| (*k, h))).values() {
                let l = crate::connectors::kafka::outbox::Leftovers { scope: &h.scope, generation: h.generation, upto: h.epoch, groups: Some(ks), mark: false };
                out.leftovers += crate::connectors::kafka::outbox::publish_leftovers(cfg, store.clone(), l).await?.0;
            }
        }
        // 3. Claim; a group someone else claimed meanwhile goes round again.
        for (k, (n, head)) in next {
            let claim = Claim { session: g, from: head.clone() }.encode();
            let ck = crate::layout::claim(op, k, n);
            if store.put_if_absent(&ck, claim).await? == PutOutcome::Created {
                todo.remove(&k);
                out.heads.insert(k, head);
            } else {
                tracing::warn!(key_group = k, "another session claimed key group {k} at the same time; resolving again");
                out.fenced.extend(fenced.drain());
            }
        }
    }
    out.fenced.extend(fenced);
    // 4. Restore each head's groups from its manifest.
    restore(store, &mut out, key_groups, routing).await?;
    Ok(out)
}

/// Each group's next claim number and head (the decided checkpoint it continues from); the
/// current owner of each group is fenced once per scope (`fenced` remembers).
async fn resolve_heads(
    store: &dyn ObjectStore,
    op: &str,
    g: u64,
    todo: &BTreeSet<u32>,
    fenced: &mut HashMap<String, Option<Head>>,
) -> anyhow::Result<BTreeMap<u32, (u64, Option<Head>)>> {
    let mut next = BTreeMap::new();
    for &k in todo {
        let list = store.list(&claims_prefix(op, k)).await?;
        let (n, scope, from) = match list.iter().filter_map(|m| parse_tail(&m.key)).max() {
            None if store.list(&crate::layout::prefix(op, "commits")).await?.is_empty() => (0, None, None),
            None => (0, Some(op.to_string()), None),
            Some(n) => {
                let ck = crate::layout::claim(op, k, n);
                let bytes = store.get(&ck).await?.ok_or_else(|| anyhow::anyhow!("claim {ck} vanished from {}", store.describe()))?;
                let c = Claim::decode(&bytes, &ck, &store.describe())?;
                (n, Some(session_scope(op, c.session)), c.from)
            }
        };
        let head = match scope {
            None => None,
            Some(scope) => {
                if !fenced.contains_key(&scope) {
                    let (d, _) = fence_next(store, &scope, g).await?;
                    fenced.insert(scope.clone(), head_of(&scope, d));
                }
                fenced[&scope].clone().or(from)
            }
        };
        next.insert(k, (n + 1, head));
    }
    Ok(next)
}

/// Groups by the manifest of their head (groups without a head left out).
fn by_head<'a>(heads: impl Iterator<Item = (u32, &'a Option<Head>)>) -> BTreeMap<String, (Head, BTreeSet<u32>)> {
    let mut by: BTreeMap<String, (Head, BTreeSet<u32>)> = BTreeMap::new();
    for (k, h) in heads {
        if let Some(h) = h {
            by.entry(h.manifest.clone()).or_insert_with(|| (h.clone(), BTreeSet::new())).1.insert(k);
        }
    }
    by
}

/// Loads the state entries and the input positions of `out.heads`' groups; refuses state whose
/// records were routed otherwise than by `routing` (their keys would sit in other key groups).
async fn restore(store: Arc<dyn ObjectStore>, out: &mut TakeOver, key_groups: u32, routing: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut position: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (h, ks) in by_head(out.heads.iter().map(|(k, h)| (*k, h))).values() {
        let m = load_manifest(&*store, &h.manifest, Some(h.checksum)).await?;
        out.clock_ms = out.clock_ms.max(Some(m.ttl_clock_ms));
        check_layout(&m, &format!("checkpoint {}", h.manifest), key_groups, routing)?;
        out.entries.extend(load_entries(store.clone(), &m.state_files).await?.into_iter().filter(|e| ks.contains(&e.group)));
        for (topic, p, off) in crate::connectors::kafka::position_entries(&m.input_position).into_iter().flatten().flatten() {
            if ks.contains(&(p as u32 % key_groups)) {
                position.entry(topic).or_default().insert(p.to_string(), off);
            }
        }
    }
    out.position = serde_json::json!({ "kafka": position });
    out.restore_ms = started.elapsed().as_millis() as u64;
    Ok(())
}
