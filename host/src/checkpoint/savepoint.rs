//! Savepoints: a self-contained, compacted copy of a decided checkpoint under
//! `{scope}/savepoints/{name}/` (one state file and a manifest). GC never lists `savepoints/`,
//! so a savepoint stays until deleted by hand; `--from-savepoint NAME` starts a new generation
//! from it (any `thread_num`: state is keyed by key group, not by worker).

use super::recovery::{last_decided, load_entries};
use super::{Manifest, StateFile};
use crate::state::backend::{ObjectStore, PutOutcome};
use crate::state::snapshot;
use bytes::Bytes;
use std::sync::Arc;

/// Takes a savepoint of the last decided checkpoint of `scope`.
pub async fn take(store: Arc<dyn ObjectStore>, scope: &str, name: &str) -> anyhow::Result<Manifest> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        anyhow::bail!("savepoint name `{name}`: use letters, digits, `-` and `_`");
    }
    let m = last_decided(&*store, scope).await?.ok_or_else(|| anyhow::anyhow!("operator `{scope}` has no decided checkpoint in {}", store.describe()))?;
    let entries = load_entries(store.clone(), &m.state_files).await?;
    // Expired values stay: the run started from the savepoint judges expiry at its own clock.
    let live = snapshot::compact(entries, crate::util::time::now_ms(), None);
    let bytes = snapshot::encode(m.epoch, &live);
    let fkey = crate::layout::savepoint_state(scope, name);
    let file = StateFile { key: fkey.clone(), epoch: m.epoch, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: live.len() as u64 };
    if store.put_if_absent(&fkey, Bytes::from(bytes)).await? == PutOutcome::Exists {
        anyhow::bail!("savepoint `{name}` of operator `{scope}` already exists in {}", store.describe());
    }
    let sp = Manifest { state_files: vec![file], sinks: vec![], created_ms: crate::util::time::now_ms(), ..m };
    store.put_if_absent(&crate::layout::savepoint_manifest(scope, name), Bytes::from(sp.encode())).await?;
    Ok(sp)
}
