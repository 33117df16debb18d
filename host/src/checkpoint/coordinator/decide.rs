//! The coordinator's decision path, in its named steps: build and write the manifest, take the
//! decision slot (after the external decider, if any), run the sinks' commits, bookkeeping, then
//! compaction and GC.

use super::{CkptMsg, Coordinator, Pending};
use crate::checkpoint::decision::{Decision, SlotError};
use crate::checkpoint::{commit, key, manifest_key, ExternalDecision, Manifest, StateFile, MANIFEST_VERSION};
use crate::state::backend::PutOutcome;
use crate::state::snapshot;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::atomic::Ordering::SeqCst;

pub(super) enum DecideError {
    /// Not decided; the epoch is abandoned and the next one tries again.
    Retry(String),
    /// Another generation holds a slot this one needs: stop.
    Fenced(String),
    /// Decided, but a sink commit failed for good: stop (recovery replays the commit).
    Commit(String),
}

impl Coordinator {
    pub(super) fn decide(&mut self, p: &Pending) -> Result<(), DecideError> {
        let manifest = self.manifest_of(p);
        let (mkey, checksum) = self.write_manifest(&manifest)?;
        self.take_slot(p.epoch, &manifest, mkey, checksum)?;
        // Decided. Phase two of the sinks' commit protocol, before anything else is decided.
        let never = || false;
        commit::run_all(&self.s.committers, &manifest.sinks, false, &never).map_err(|e| {
            DecideError::Commit(format!(
                "epoch {} is decided but its output could not be committed: {e}; the stream stops and the next start commits it",
                p.epoch
            ))
        })?;
        let store = self.store.clone();
        let scope = self.s.scope.clone();
        crate::checkpoint::block_on(async {
            let _ = store.put_if_absent(&key(&scope, "committed", p.epoch), Bytes::from_static(b"{}")).await;
            let _ = store.put(&crate::layout::latest(&scope), Bytes::from(p.epoch.to_string())).await;
        });
        self.after_decision(p, manifest);
        self.maybe_compact();
        self.gc();
        Ok(())
    }

    /// The manifest of `p`: the decided chain (with a finished compaction's base), the carried
    /// files and pre-commits of abandoned epochs, and `p`'s own.
    fn manifest_of(&self, p: &Pending) -> Manifest {
        let mut files = match &self.compacted {
            Some((upto, base)) => {
                let mut f = vec![base.clone()];
                f.extend(self.chain.iter().filter(|x| x.epoch > *upto).cloned());
                f
            }
            None => self.chain.clone(),
        };
        files.extend(self.carry_files.iter().cloned());
        files.extend(p.files.iter().cloned());
        files.sort_by(|a, b| (a.epoch, &a.key).cmp(&(b.epoch, &b.key)));
        let mut sinks = self.carry_sink.clone();
        sinks.extend(p.sink.clone().unwrap_or_default());
        Manifest {
            version: MANIFEST_VERSION,
            operator_id: self.s.scope.clone(),
            stream: self.s.stream.clone(),
            epoch: p.epoch,
            parent: self.last_decided,
            generation: self.generation,
            key_groups: self.s.key_groups,
            routing: Some(self.s.routing.clone()),
            input_position: p.position.clone().unwrap_or_default(),
            state_files: files,
            sinks,
            ttl_clock_ms: p.ttl_clock_ms,
            created_ms: crate::util::time::now_ms(),
            event_time: p.event_time.clone(),
        }
    }

    /// Writes the manifest create-only; returns its key and checksum.
    fn write_manifest(&self, m: &Manifest) -> Result<(String, u64), DecideError> {
        let bytes = m.encode();
        let checksum = snapshot::checksum_of(&bytes);
        let mkey = manifest_key(&self.s.scope, m.epoch, self.generation);
        let store = self.store.clone();
        let created =
            crate::checkpoint::block_on(store.put_if_absent(&mkey, Bytes::from(bytes))).map_err(|e| DecideError::Retry(format!("writing manifest: {e}")))?;
        if created == PutOutcome::Exists {
            return Err(DecideError::Fenced(format!(
                "manifest {mkey} already exists: another process runs this generation of operator `{}`; stopping",
                self.s.scope
            )));
        }
        Ok((mkey, checksum))
    }

    /// Takes the decision slot of `epoch` (filling the slots of abandoned epochs first); with an
    /// external decider, it decides between the two and the slot keeps its copy.
    fn take_slot(&mut self, epoch: u64, m: &Manifest, mkey: String, checksum: u64) -> Result<(), DecideError> {
        let store = self.store.clone();
        let generation = self.generation;
        let slot_err = |e: SlotError| match e {
            SlotError::Fenced(m) => DecideError::Fenced(m),
            SlotError::Store(m) => DecideError::Retry(m),
        };
        let first = self.slots.last() + 1;
        for e in first..epoch {
            self.own_slots.insert(e);
        }
        if let Some(d) = &self.s.decider {
            // Every slot before `epoch` must be ours before the external decision.
            if epoch > first {
                let last_gap = Decision::Abandon { epoch: epoch - 1, generation };
                crate::checkpoint::block_on(self.slots.write(&*store, &last_gap)).map_err(slot_err)?;
            }
            let ext = ExternalDecision { epoch, manifest: mkey.clone(), checksum, generation };
            d.decide(&ext, &m.input_position).map_err(DecideError::Fenced)?;
        }
        let decision = Decision::Commit { epoch, manifest: mkey, checksum, generation };
        crate::checkpoint::block_on(self.slots.write(&*store, &decision)).map_err(slot_err)?;
        self.own_slots.insert(epoch);
        Ok(())
    }

    fn after_decision(&mut self, p: &Pending, manifest: Manifest) {
        let bytes: u64 = p.files.iter().map(|f| f.size).sum();
        self.chain = manifest.state_files.clone();
        if let Some(h) = &self.hybrid {
            h.decided(p.epoch, &self.chain);
        }
        self.compacted = None;
        self.last_decided = Some(p.epoch);
        self.closed_upto = self.closed_upto.max(p.epoch);
        self.carry_files.clear();
        self.carry_sink.clear();
        self.metrics.last_decided.store(p.epoch, SeqCst);
        self.metrics.decided.fetch_add(1, SeqCst);
        *self.metrics.decided_position.lock().unwrap_or_else(|x| x.into_inner()) = Some((p.epoch, manifest.input_position.clone()));
        self.consecutive_failures = 0;
        self.metrics.last_duration_ms.store(p.started.elapsed().as_millis() as u64, SeqCst);
        self.metrics.last_bytes.store(bytes, SeqCst);
        tracing::debug!(stream = %self.s.stream, epoch = p.epoch, bytes, files = self.chain.len(), "checkpoint decided");
        self.retained.push_back(manifest);
        while self.retained.len() > self.s.retained.max(1) {
            self.retained.pop_front();
        }
        self.in_flight.store(0, SeqCst);
    }

    /// Merges the decided chain into one base file in the background when it grows long.
    /// Expiry is judged at the TTL clock of the newest decided manifest, never the wall clock.
    fn maybe_compact(&mut self) {
        const MAX_CHAIN: usize = 24;
        if self.compacting.is_some() || self.chain.len() <= MAX_CHAIN {
            return;
        }
        self.compacting_flag.store(true, SeqCst);
        let files = self.chain.clone();
        let upto = files.iter().map(|f| f.epoch).max().unwrap_or(0);
        let clock = self.retained.back().map_or(0, |m| m.ttl_clock_ms);
        let store = self.store.clone();
        let key = crate::layout::base(&self.s.scope, upto, self.generation);
        self.compacting = Some(key.clone());
        let tx = self.tx.clone();
        let ttl = self.s.ttl_ms;
        crate::checkpoint::io_runtime().spawn(async move {
            // A chain that cannot be read (or is corrupted) is not compacted; the next decision retries.
            let entries = match crate::checkpoint::recovery::load_entries(store.clone(), &files).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("compaction skipped: {e:#}");
                    let _ = tx.send(CkptMsg::CompactionFailed);
                    return;
                }
            };
            // Tombstones and TTL-expired values end here.
            let live = snapshot::compact(entries, clock, ttl);
            let n = live.len() as u64;
            let bytes = tokio::task::spawn_blocking(move || snapshot::encode(upto, &live)).await.expect("encode");
            let file = StateFile { key: key.clone(), epoch: upto, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: n };
            let msg = match store.put_if_absent(&key, Bytes::from(bytes)).await {
                Ok(PutOutcome::Created) => CkptMsg::Compacted { upto, file },
                Ok(PutOutcome::Exists) => {
                    tracing::warn!("compaction skipped: {key} already exists");
                    CkptMsg::CompactionFailed
                }
                Err(e) => {
                    tracing::warn!("compaction skipped: {e:#}");
                    CkptMsg::CompactionFailed
                }
            };
            let _ = tx.send(msg);
        });
    }

    /// Deletes what no retained manifest reaches, only objects older than the grace period.
    /// Fence records are never deleted (`checkpoint::decision`, rule 3).
    fn gc(&mut self) {
        let Some(oldest) = self.retained.front().map(|m| m.epoch) else { return };
        let mut keep: HashSet<String> = self.retained.iter().flat_map(|m| m.state_files.iter().map(|f| f.key.clone())).collect();
        keep.extend(self.retained.iter().map(|m| manifest_key(&self.s.scope, m.epoch, m.generation)));
        // Also what is being or has been compacted but is not in a decided manifest yet.
        keep.extend(self.carry_files.iter().chain(self.compacted.as_ref().map(|(_, f)| f)).map(|f| f.key.clone()));
        keep.extend(self.compacting.clone());
        let store = self.store.clone();
        let scope = self.s.scope.clone();
        let grace = self.s.gc_grace;
        let own: HashSet<u64> = self.own_slots.iter().copied().filter(|e| *e < oldest).collect();
        self.own_slots.retain(|e| *e >= oldest);
        let fences = self.fences.clone();
        // Age is measured from when the keep set was taken: an object written after it survives.
        let now = crate::util::time::now_ms();
        crate::checkpoint::io_runtime().spawn(async move {
            let old = |m: &crate::state::backend::ObjectMeta| now - m.modified_ms > grace.as_millis() as i64;
            if let Err(e) = crate::checkpoint::decision::collect(&*store, &scope, oldest, grace, &own, &fences).await {
                tracing::debug!("gc of decision records: {e:#}");
            }
            for kind in ["manifests", "committed", "data"] {
                let Ok(list) = store.list(&crate::layout::prefix(&scope, kind)).await else { continue };
                for m in list {
                    // data/{e}/file: the epoch is the second-to-last segment.
                    let epoch = match kind {
                        "data" => m.key.rsplit('/').nth(1).and_then(|e| e.parse::<u64>().ok()),
                        _ => crate::checkpoint::parse_epoch(&m.key),
                    };
                    if epoch.is_some_and(|e| e < oldest) && !keep.contains(&m.key) && old(&m) {
                        let _ = store.delete(&m.key).await;
                    }
                }
            }
        });
    }
}
