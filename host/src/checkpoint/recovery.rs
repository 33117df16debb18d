//! Recovery at start: claim a generation, find the last decided epoch, fence the next one, load
//! its manifest and state files, and replay its post-commit actions (finalize output files).
//!
//! Never "the newest manifest": only `commits/{e}` records decide. Fencing: the new generation
//! creates a `Fence` decision for the epoch after the highest decided one, so an older
//! generation (a zombie still running) that tries to decide that epoch finds it taken and stops;
//! its later epochs are never reached because epochs are decided in order.

use super::{key, parse_tail, CheckpointSettings, Decision, Manifest, SinkFile, StateFile};
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
    /// Restored entries, oldest file first.
    pub entries: Vec<SnapshotEntry>,
    /// Time spent loading state files.
    pub restore_ms: u64,
}

/// Every decision record of `scope`, ascending, and the highest epoch seen.
pub async fn decisions(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<(Vec<(u64, Decision)>, u64)> {
    let mut out = Vec::new();
    let mut highest = 0;
    for m in store.list(&format!("{scope}/commits/")).await? {
        let Some(e) = parse_tail(&m.key) else { continue };
        highest = highest.max(e);
        let Some(bytes) = store.get(&m.key).await? else { continue }; // deleted by GC meanwhile
        let d: Decision = serde_json::from_slice(&bytes)
            .map_err(|err| anyhow::anyhow!("decision record {} in {} is unreadable: {err}", m.key, store.describe()))?;
        out.push((e, d));
    }
    Ok((out, highest))
}

/// The newest `Commit` decision of `scope`, and the highest epoch with any decision. Reads the
/// decision records newest first and stops at the first `Commit`: usually one read, however many
/// records the grace period keeps.
pub async fn last_commit(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<(Option<(u64, Decision)>, u64)> {
    let mut listed: Vec<(u64, String)> = store.list(&format!("{scope}/commits/")).await?.into_iter().filter_map(|m| Some((parse_tail(&m.key)?, m.key))).collect();
    listed.sort_unstable();
    let highest = listed.last().map_or(0, |(e, _)| *e);
    for (e, k) in listed.into_iter().rev() {
        let Some(bytes) = store.get(&k).await? else { continue }; // deleted by GC meanwhile
        let d: Decision =
            serde_json::from_slice(&bytes).map_err(|err| anyhow::anyhow!("decision record {k} in {} is unreadable: {err}", store.describe()))?;
        if matches!(d, Decision::Commit { .. }) {
            return Ok((Some((e, d)), highest));
        }
    }
    Ok((None, highest))
}

/// The last decided epoch's manifest (read-only: claims nothing, fences nothing).
pub async fn last_decided(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<Option<Manifest>> {
    match last_commit(store, scope).await?.0 {
        Some((_, Decision::Commit { manifest, checksum, .. })) => Ok(Some(load_manifest(store, &manifest, Some(checksum)).await?)),
        _ => Ok(None),
    }
}

/// Reads a manifest, verified against `checksum` when given.
pub async fn load_manifest(store: &dyn ObjectStore, mkey: &str, checksum: Option<u64>) -> anyhow::Result<Manifest> {
    let mbytes = store
        .get(mkey)
        .await?
        .ok_or_else(|| anyhow::anyhow!("manifest {mkey} is missing from {}", store.describe()))?;
    if checksum.is_some_and(|c| snapshot::checksum_of(&mbytes) != c) {
        anyhow::bail!("manifest {mkey} in {}: checksum mismatch with its decision record (corrupted)", store.describe());
    }
    serde_json::from_slice(&mbytes).map_err(|e| anyhow::anyhow!("manifest {mkey} in {}: unreadable: {e}", store.describe()))
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
    let gens = store.list(&format!("{scope}/generations/")).await?;
    let mut generation = gens.iter().filter_map(|m| parse_tail(&m.key)).max().unwrap_or(0) + 1;
    while store.put_if_absent(&key(scope, "generations", generation), Bytes::from(generation.to_string())).await? == PutOutcome::Exists {
        generation += 1;
    }
    Ok(generation)
}

/// Burns the epoch after the highest decision of `scope` with a `Fence` of `generation`, so no
/// older generation can decide again; returns the last `Commit` decision and the fenced epoch.
pub async fn fence_next(store: &dyn ObjectStore, scope: &str, generation: u64) -> anyhow::Result<(Option<(u64, Decision)>, u64)> {
    loop {
        let (decided, highest) = last_commit(store, scope).await?;
        let fence = highest + 1;
        let rec = serde_json::to_vec(&Decision::Fence { epoch: fence, generation })?;
        if store.put_if_absent(&key(scope, "commits", fence), Bytes::from(rec)).await? == PutOutcome::Created {
            return Ok((decided, fence));
        }
        // Another instance decided `fence` meanwhile: read again.
    }
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
        let rec = serde_json::to_vec(&Decision::Commit { epoch: x.epoch, manifest: x.manifest.clone(), checksum: x.checksum, generation: x.generation })?;
        if store.put_if_absent(&key(scope, "commits", x.epoch), Bytes::from(rec.clone())).await? == PutOutcome::Exists {
            let have = store.get(&key(scope, "commits", x.epoch)).await?.unwrap_or_default();
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
            anyhow::bail!("the state store's last decision of operator `{scope}` is epoch {e}, Kafka's is {}: the decider is Kafka, so the store must not be ahead of it", x.epoch);
        }
    }
    let mut out = Recovered { generation, manifest: None, next_epoch: fence + 1, entries: Vec::new(), restore_ms: 0 };
    // 4. Load the manifest to start from, verified.
    let manifest = match (from_savepoint, decided) {
        (Some(name), _) => load_manifest(&*store, &super::savepoint::manifest_key(scope, name), None).await?,
        (None, Some((_, Decision::Commit { manifest, checksum, .. }))) => load_manifest(&*store, &manifest, Some(checksum)).await?,
        (None, _) => return Ok(out),
    };
    if manifest.key_groups != s.key_groups {
        anyhow::bail!(
            "manifest of epoch {} was written with key_groups = {}, the config says {}: key groups are fixed for the life of the state",
            manifest.epoch,
            manifest.key_groups,
            s.key_groups
        );
    }
    // 5. Fetch and check every state file in parallel, apply in chain order (unless the hybrid
    //    backend reads key groups back on first use).
    let started = std::time::Instant::now();
    if !s.lazy_restore {
        out.entries = load_entries(store.clone(), &manifest.state_files).await?;
    }
    out.restore_ms = started.elapsed().as_millis() as u64;
    // 6. Post-commit actions of the decided epoch (idempotent).
    finalize_sink_files(&manifest.sink_files)?;
    let _ = store.put_if_absent(&key(scope, "committed", manifest.epoch), Bytes::from_static(b"{}")).await;
    out.manifest = Some(manifest);
    Ok(out)
}

/// Renames prepared output files to their final names. Idempotent: a file already renamed is
/// skipped; a temp file longer than prepared is cut back to the prepared length.
pub fn finalize_sink_files(files: &[SinkFile]) -> anyhow::Result<()> {
    for f in files {
        let fin = std::path::Path::new(&f.final_path);
        if fin.exists() {
            continue;
        }
        let tmp = std::path::Path::new(&f.temp);
        let len = match std::fs::metadata(tmp) {
            Ok(m) => m.len(),
            // Another process (an older generation finishing its post-commit) renamed it meanwhile.
            Err(_) if fin.exists() => continue,
            Err(e) => anyhow::bail!("prepared output file {} is missing ({e}); cannot finalize {}", f.temp, f.final_path),
        };
        if len < f.len {
            anyhow::bail!("prepared output file {} has {len} bytes, {} were fsynced: refusing to finalize", f.temp, f.len);
        }
        if len > f.len {
            let file = std::fs::OpenOptions::new().write(true).open(tmp)?;
            file.set_len(f.len)?;
            file.sync_all()?;
        }
        if let Err(e) = std::fs::rename(tmp, fin) {
            if !fin.exists() {
                anyhow::bail!("finalizing {} -> {}: {e}", f.temp, f.final_path);
            }
        }
        if let Some(dir) = fin.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
    }
    Ok(())
}
