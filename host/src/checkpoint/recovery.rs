//! Recovery at start: claim a generation, start its range of decision slots with a fence, find
//! the last decided epoch, load its manifest and state files; then (once the sinks are built)
//! [`replay_commits`] finishes that epoch's sink commits if its `committed/{e}` marker is missing.
//!
//! Never "the newest manifest": only `Commit` records in the decision slots decide. Fencing is
//! the slot rule of `checkpoint::decision`: an older generation, however long paused, can never
//! write past the fence, so it can never decide again.

use super::decision::{fence_next, slot_key, Decision};
use super::{parse_tail, CheckpointSettings, Committers, Manifest, StateFile};
use crate::state::backend::{ObjectStore, PutOutcome};
use crate::state::snapshot::{self, SnapshotEntry};
use bytes::Bytes;
use std::sync::Arc;

/// What a new generation starts from.
#[derive(Debug)]
pub struct Recovered {
    pub generation: u64,
    /// The last decided manifest, if any.
    pub manifest: Option<Manifest>,
    /// The first epoch this generation may decide.
    pub next_epoch: u64,
    /// The last decision slot this generation holds (its fence; 0 for a fresh group session).
    pub last_slot: u64,
    /// The TTL clock recorded by the checkpoint restored from (`engine::clock`).
    pub clock_ms: Option<i64>,
    /// Restored entries, oldest file first.
    pub entries: Vec<SnapshotEntry>,
    /// Time spent loading state files.
    pub restore_ms: u64,
}

/// The last decided epoch's manifest (read-only: claims nothing, fences nothing).
pub async fn last_decided(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<Option<Manifest>> {
    match super::decision::last_commit(store, scope).await?.0 {
        Some((_, Decision::Commit { manifest, checksum, .. })) => Ok(Some(load_manifest(store, &manifest, Some(checksum)).await?)),
        _ => Ok(None),
    }
}

/// Refuses to restore from `m` (named `what` in messages) when it was written with another
/// key-group count or another routing: a key's restored state would sit in another key group
/// than its records. Recovery and group take-over both check here.
pub fn check_layout(m: &Manifest, what: &str, key_groups: u32, routing: &str) -> anyhow::Result<()> {
    if m.key_groups != key_groups {
        anyhow::bail!("{what} was written with key_groups = {}, the config says {key_groups}: key groups are fixed for the life of the state", m.key_groups);
    }
    if let Some(r) = m.routing.as_ref().filter(|r| *r != routing) {
        anyhow::bail!(
            "{what} was written with records routed to key groups by {r}; this stream routes them by {routing}, so a key's restored state would sit in another key group than its records. Start the changed stream on new state (another state.operator_id), or restore the routing (docs/CONFIG.md, Routing) or the repartition topics (docs/SCALE_OUT.md)"
        );
    }
    Ok(())
}

/// Reads a manifest, verified against `checksum` when given.
pub async fn load_manifest(store: &dyn ObjectStore, mkey: &str, checksum: Option<u64>) -> anyhow::Result<Manifest> {
    let mbytes = store.get(mkey).await?.ok_or_else(|| anyhow::anyhow!("manifest {mkey} is missing from {}", store.describe()))?;
    if checksum.is_some_and(|c| snapshot::checksum_of(&mbytes) != c) {
        anyhow::bail!("manifest {mkey} in {}: checksum mismatch with its decision record (corrupted)", store.describe());
    }
    Manifest::decode(&mbytes, &format!("{mkey} in {}", store.describe()))
}

/// Fetches and checks (size and checksum against the manifest) every state file in parallel;
/// entries in chain order.
pub async fn load_entries(store: Arc<dyn ObjectStore>, files: &[StateFile]) -> anyhow::Result<Vec<SnapshotEntry>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, f) in files.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let bytes = store.get(&f.key).await?.ok_or_else(|| anyhow::anyhow!("state file {} is missing from {}", f.key, store.describe()))?;
            if bytes.len() as u64 != f.size || snapshot::checksum_of(&bytes) != f.checksum {
                anyhow::bail!("state file {} in {}: size or checksum differs from the manifest (corrupted or truncated)", f.key, store.describe());
            }
            let (_, entries) = tokio::task::spawn_blocking(move || snapshot::decode(&bytes, &f.key)).await??;
            Ok::<_, anyhow::Error>((i, entries))
        });
    }
    let mut parts: Vec<(usize, Vec<SnapshotEntry>)> = Vec::with_capacity(files.len());
    while let Some(r) = tasks.join_next().await {
        parts.push(r??);
    }
    parts.sort_by_key(|(i, _)| *i);
    Ok(parts.into_iter().flat_map(|(_, e)| e).collect())
}

/// Claims the next free generation number of `scope` (create-only `generations/{g}`).
pub async fn claim_generation(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<u64> {
    let gens = store.list(&crate::layout::prefix(scope, "generations")).await?;
    let mut generation = gens.iter().filter_map(|m| parse_tail(&m.key)).max().unwrap_or(0) + 1;
    while store.put_if_absent(&crate::layout::generation(scope, generation), Bytes::from(generation.to_string())).await? == PutOutcome::Exists {
        generation += 1;
    }
    Ok(generation)
}

/// Claims a new generation, fences the next epoch, and loads the last decided checkpoint — or,
/// with `from_savepoint`, the savepoint of that name.
pub async fn recover(store: Arc<dyn ObjectStore>, s: &CheckpointSettings, from_savepoint: Option<&str>) -> anyhow::Result<Recovered> {
    let scope = &s.scope;
    // 1. Claim a generation.
    let generation = claim_generation(&*store, scope).await?;
    // 2. An external decider (Kafka) holds the decisions: copy its last one into the store if the
    //    copy was not written before the crash.
    if let Some(x) = &s.external_last {
        let rec = Decision::Commit { epoch: x.epoch, manifest: x.manifest.clone(), checksum: x.checksum, generation: x.generation }.encode();
        if store.put_if_absent(&slot_key(scope, x.epoch), rec.clone()).await? == PutOutcome::Exists {
            let have = store.get(&slot_key(scope, x.epoch)).await?.unwrap_or_default();
            if have != rec {
                anyhow::bail!(
                    "Kafka holds decision {} of operator `{scope}`, but the state store's record of that epoch differs (a fence or another decision): the state store and the Kafka cluster do not belong together",
                    x.epoch
                );
            }
        }
    }
    // 3. Find the last decided epoch and fence the one after the highest decision.
    let (decided, fence) = fence_next(&*store, scope, generation).await?;
    if let (Some(x), Some((e, _))) = (&s.external_last, &decided) {
        if *e != x.epoch {
            anyhow::bail!(
                "the state store's last decision of operator `{scope}` is epoch {e}, Kafka's is {}: the decider is Kafka, so the store must not be ahead of it",
                x.epoch
            );
        }
    }
    let mut out = Recovered { generation, manifest: None, next_epoch: fence + 1, last_slot: fence, clock_ms: None, entries: Vec::new(), restore_ms: 0 };
    // 4. Load the manifest to start from, verified.
    let manifest = match (from_savepoint, decided) {
        (Some(name), _) => load_manifest(&*store, &crate::layout::savepoint_manifest(scope, name), None).await?,
        (None, Some((_, Decision::Commit { manifest, checksum, .. }))) => load_manifest(&*store, &manifest, Some(checksum)).await?,
        (None, _) => return Ok(out),
    };
    check_layout(&manifest, &format!("the state of operator `{scope}` (epoch {})", manifest.epoch), s.key_groups, &s.routing)?;
    // 5. Fetch and check every state file in parallel, apply in chain order (unless the hybrid
    //    backend reads key groups back on first use).
    let started = std::time::Instant::now();
    if !s.lazy_restore {
        out.entries = load_entries(store.clone(), &manifest.state_files).await?;
    }
    out.restore_ms = started.elapsed().as_millis() as u64;
    out.clock_ms = Some(manifest.ttl_clock_ms);
    out.manifest = Some(manifest);
    Ok(out)
}

/// Finishes the sink commits of the decided manifest `m` unless its `committed/{e}` marker says
/// they are done (phase two of `checkpoint::commit`, replayed: every committer is idempotent),
/// then writes the marker. Runs after the sinks are built, before they clean up.
pub fn replay_commits(store: &dyn crate::state::backend::ObjectStore, scope: &str, m: &Manifest, committers: &Committers) -> anyhow::Result<()> {
    let marker = crate::layout::committed(scope, m.epoch);
    if super::block_on(store.get(&marker))?.is_some() {
        return Ok(());
    }
    let never = || false;
    super::commit::run_all(committers, &m.sinks, true, &never).map_err(|e| anyhow::anyhow!("finishing the commits of decided epoch {}: {e}", m.epoch))?;
    super::block_on(store.put_if_absent(&marker, Bytes::from_static(b"{}")))?;
    Ok(())
}
