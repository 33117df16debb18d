//! The `hybrid` backend's RAM cache: key groups live in RAM only while they are used; cold groups
//! are evicted, and a group that is needed again is read back from the S3-resident checkpoint
//! files with ranged reads of its blocks (see `snapshot::Header`).
//!
//! Contract: a group may be evicted only when every change to it is in a *decided* checkpoint
//! (its last dirty epoch <= the last decided epoch), so reading it back from the latest decided
//! chain gives exactly its current state. Loading applies the chain's blocks for the group in
//! chain order (base, then deltas). Evicting never loses data; a failed load fails the stream.

use crate::state::backend::ObjectStore;
use crate::state::snapshot::StateFile;
use crate::state::snapshot::{decode_block, Header, HeaderError, SnapshotEntry};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

/// Shared by the workers of a stream and its coordinator.
pub struct HybridCache {
    store: Arc<dyn ObjectStore>,
    /// The state files of the last decided checkpoint (published by the coordinator).
    pub chain: RwLock<Vec<StateFile>>,
    /// The last decided epoch (published by the coordinator).
    pub last_decided: AtomicU64,
    /// RAM budget per worker, bytes of keys and values.
    pub budget_bytes: u64,
    headers: Mutex<HashMap<String, Arc<Header>>>,
    pub loads: AtomicU64,
    pub evictions: AtomicU64,
}

impl HybridCache {
    pub fn new(store: Arc<dyn ObjectStore>, chain: Vec<StateFile>, last_decided: u64, budget_bytes: u64) -> Self {
        HybridCache {
            store,
            chain: RwLock::new(chain),
            last_decided: AtomicU64::new(last_decided),
            budget_bytes,
            headers: Mutex::new(HashMap::new()),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// Publishes a decided checkpoint.
    pub fn decided(&self, epoch: u64, chain: &[StateFile]) {
        *self.chain.write().unwrap_or_else(|p| p.into_inner()) = chain.to_vec();
        self.last_decided.store(epoch, Relaxed);
    }

    async fn header(&self, f: &StateFile) -> anyhow::Result<Arc<Header>> {
        if let Some(h) = self.headers.lock().unwrap_or_else(|p| p.into_inner()).get(&f.key) {
            return Ok(h.clone());
        }
        let mut want = 4096u64;
        let h = loop {
            let bytes = self
                .store
                .get_range(&f.key, 0, want.min(f.size))
                .await?
                .ok_or_else(|| anyhow::anyhow!("state file {} is missing from {}", f.key, self.store.describe()))?;
            match Header::parse(&bytes, &f.key) {
                Ok(h) => break h,
                Err(HeaderError::Need(n)) if (want as usize) < n && want < f.size => want = n as u64,
                Err(HeaderError::Need(_)) => anyhow::bail!("state file {}: truncated header", f.key),
                Err(HeaderError::Bad(e)) => return Err(e.into()),
            }
        };
        let h = Arc::new(h);
        self.headers.lock().unwrap_or_else(|p| p.into_inner()).insert(f.key.clone(), h.clone());
        Ok(h)
    }

    /// Reads every entry of `group` from the decided chain, oldest file first. The files are
    /// read concurrently (one round trip for a chain of any length, not one per file).
    pub fn load_group(&self, group: u32) -> anyhow::Result<Vec<SnapshotEntry>> {
        let chain = self.chain.read().unwrap_or_else(|p| p.into_inner()).clone();
        self.loads.fetch_add(1, Relaxed);
        crate::state::backend::block_on(async {
            let reads = chain.iter().map(|f| async move {
                let h = self.header(f).await?;
                let Some(b) = h.blocks.iter().find(|b| b.group == group) else { return Ok(Vec::new()) };
                // A transient store error is retried: failing here stops the stream.
                let (key, from, to) = (&f.key, b.offset, b.offset + b.clen as u64);
                let block = crate::util::retry::retry_async(crate::util::retry::STORE, |_| self.store.get_range(key, from, to))
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("state file {} is missing from {}", f.key, self.store.describe()))?;
                Ok::<_, anyhow::Error>(decode_block(&h, b, &block, &f.key)?)
            });
            // try_join_all keeps the chain's order: later files override earlier ones.
            let parts: Vec<Vec<SnapshotEntry>> = futures::future::try_join_all(reads).await?;
            Ok(parts.into_iter().flatten().collect())
        })
    }
}
