//! The checkpoint coordinator of one stream: a thread that collects, per epoch, the input
//! position, every worker's state delta (uploaded in the background) and the sink's prepared
//! files; then writes the manifest (create-only), decides (`commits/{e}`, create-only), runs the
//! post-commit actions (finalize output files, `committed/{e}`, `latest`), compacts and GCs.
//!
//! One checkpoint is in flight at a time (`in_flight`, read by the input before injecting a
//! barrier). A checkpoint that fails or times out before its decision is abandoned without
//! stopping the stream: its uploaded files, not-yet-uploaded entries and prepared output files
//! carry over into the next epoch's manifest, so nothing it covered is lost. A decision conflict
//! means a newer generation fenced this one: the stream stops with an error.

use super::{data_key, key, CheckpointSettings, Decision, Manifest, SinkFile, StateFile};
use crate::state::backend::{ObjectStore, PutOutcome};
use crate::state::snapshot::{self, SnapshotEntry};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages from the stream's threads (and the coordinator's own upload tasks).
pub enum CkptMsg {
    Injected { epoch: u64, position: serde_json::Value, ttl_clock_ms: i64 },
    Delta { epoch: u64, worker: usize, entries: Vec<SnapshotEntry> },
    Uploaded { epoch: u64, result: Result<StateFile, (String, Vec<SnapshotEntry>)> },
    SinkPrepared { epoch: u64, files: Vec<SinkFile> },
    Compacted { upto: u64, file: StateFile },
    /// Compaction could not read or write; it is tried again after the next decision.
    CompactionFailed,
    /// No more barriers: finish (or abandon) the epoch in flight, then exit.
    Shutdown,
}

/// Metrics of the coordinator (the seed's: current and last decided checkpoint, duration, size).
#[derive(Debug, Default)]
pub struct CheckpointMetrics {
    pub current_epoch: AtomicU64,
    pub last_decided: AtomicU64,
    pub last_duration_ms: AtomicU64,
    pub last_bytes: AtomicU64,
    pub failures: AtomicU64,
    pub decided: AtomicU64,
    /// Set when another generation decided or fenced an epoch of this one (group mode ends the
    /// session instead of the stream).
    pub fenced: std::sync::atomic::AtomicBool,
    /// The input position of the last decided checkpoint, until the input takes it.
    pub decided_position: std::sync::Mutex<Option<(u64, serde_json::Value)>>,
}

pub struct Coordinator {
    store: Arc<dyn ObjectStore>,
    s: CheckpointSettings,
    generation: u64,
    workers: usize,
    rx: Receiver<CkptMsg>,
    tx: Sender<CkptMsg>,
    in_flight: Arc<AtomicU64>,
    metrics: Arc<CheckpointMetrics>,
    /// Chain of the last decided manifest.
    chain: Vec<StateFile>,
    last_decided: Option<u64>,
    /// Carried over from abandoned epochs.
    carry_files: Vec<StateFile>,
    carry_entries: Vec<SnapshotEntry>,
    carry_sink: Vec<SinkFile>,
    current: Option<Pending>,
    /// Decided manifests kept restorable (newest last).
    retained: VecDeque<Manifest>,
    /// The key of the base a background compaction is writing: GC must not delete it.
    compacting: Option<String>,
    /// Mirrors `compacting` for the stream: a clean stop waits for it before the final barrier,
    /// so the last decision names the new base.
    compacting_flag: Arc<std::sync::atomic::AtomicBool>,
    compacted: Option<(u64, StateFile)>,
    /// Set when the stream must stop (fenced by a newer generation).
    pub fatal: Arc<std::sync::Mutex<Option<String>>>,
    upload_seq: u32,
    /// Failed checkpoints since the last decided one.
    consecutive_failures: u32,
    /// The hybrid backend's cache, told about every decision.
    hybrid: Option<Arc<crate::state::hybrid::HybridCache>>,
    /// Highest epoch already decided or abandoned: late messages for it only carry over.
    closed_upto: u64,
    /// Uploads of abandoned epochs still in flight; no epoch is decided before they finish.
    carry_uploads: usize,
}

struct Pending {
    epoch: u64,
    started: Instant,
    position: Option<serde_json::Value>,
    ttl_clock_ms: i64,
    deltas: usize,
    uploads: usize,
    files: Vec<StateFile>,
    sink: Option<Vec<SinkFile>>,
    failed: Option<String>,
}

/// What the stream keeps to talk to its coordinator.
pub struct CoordinatorHandle {
    pub tx: Sender<CkptMsg>,
    pub in_flight: Arc<AtomicU64>,
    /// A background compaction is running.
    pub compacting: Arc<std::sync::atomic::AtomicBool>,
    pub metrics: Arc<CheckpointMetrics>,
    pub fatal: Arc<std::sync::Mutex<Option<String>>>,
    pub join: std::thread::JoinHandle<()>,
}

impl Coordinator {
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        store: Arc<dyn ObjectStore>,
        s: CheckpointSettings,
        generation: u64,
        workers: usize,
        decided: Option<&Manifest>,
        metrics: Arc<CheckpointMetrics>,
        hybrid: Option<Arc<crate::state::hybrid::HybridCache>>,
        carry: Vec<SnapshotEntry>,
    ) -> CoordinatorHandle {
        let (tx, rx) = crossbeam_channel::unbounded();
        let in_flight = Arc::new(AtomicU64::new(0));
        let compacting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fatal = Arc::new(std::sync::Mutex::new(None));
        if let Some(m) = decided {
            metrics.last_decided.store(m.epoch, SeqCst);
        }
        let c = Coordinator {
            store,
            s,
            generation,
            workers,
            rx,
            tx: tx.clone(),
            in_flight: in_flight.clone(),
            metrics: metrics.clone(),
            chain: decided.map(|m| m.state_files.clone()).unwrap_or_default(),
            last_decided: decided.map(|m| m.epoch),
            carry_files: Vec::new(),
            // State restored from other generations' checkpoints (group mode): written as part of
            // the first checkpoint, so this generation's chain stands on its own.
            carry_entries: carry,
            carry_sink: Vec::new(),
            current: None,
            retained: decided.cloned().into_iter().collect(),
            compacting: None,
            compacting_flag: compacting.clone(),
            compacted: None,
            fatal: fatal.clone(),
            upload_seq: 0,
            consecutive_failures: 0,
            hybrid,
            closed_upto: decided.map_or(0, |m| m.epoch),
            carry_uploads: 0,
        };
        let name = format!("{}-checkpoint", c.s.stream);
        let join = std::thread::Builder::new().name(name).spawn(move || c.run()).expect("spawn coordinator");
        CoordinatorHandle { tx, in_flight, compacting, metrics, fatal, join }
    }

    fn run(mut self) {
        let mut shutting_down = false;
        loop {
            let msg = match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                Some(CkptMsg::Injected { epoch, position, ttl_clock_ms }) => {
                    self.metrics.current_epoch.store(epoch, SeqCst);
                    let p = self.pending(epoch);
                    p.position = Some(position);
                    p.ttl_clock_ms = ttl_clock_ms;
                }
                Some(CkptMsg::Delta { epoch, worker, entries }) => self.upload(epoch, worker, entries),
                Some(CkptMsg::Uploaded { epoch, result }) => self.uploaded(epoch, result),
                Some(CkptMsg::SinkPrepared { epoch, files }) => match self.current.as_mut().filter(|p| p.epoch == epoch) {
                    Some(p) => p.sink = Some(files),
                    None => self.carry_sink.extend(files),
                },
                Some(CkptMsg::CompactionFailed) => {
                    self.compacting = None;
                    self.compacting_flag.store(false, SeqCst);
                }
                Some(CkptMsg::Compacted { upto, file }) => {
                    self.compacting = None;
                    self.compacting_flag.store(false, SeqCst);
                    self.compacted = Some((upto, file));
                }
                Some(CkptMsg::Shutdown) => {
                    // Every stream thread has ended: what the epoch in flight still lacks will not come.
                    shutting_down = true;
                    if self.current.as_ref().is_some_and(|p| p.position.is_none() || p.deltas > 0 || p.sink.is_none()) {
                        self.abandon("the stream ended before the checkpoint was complete".into());
                    }
                }
                None => {}
            }
            self.try_complete();
            if shutting_down && self.current.is_none() {
                break;
            }
            if self.fatal.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                break;
            }
        }
    }

    fn pending(&mut self, epoch: u64) -> &mut Pending {
        if self.current.as_ref().is_some_and(|p| p.epoch != epoch) {
            self.abandon(format!("superseded by epoch {epoch}"));
        }
        let workers = self.workers;
        self.current.get_or_insert_with(|| Pending {
            epoch,
            started: Instant::now(),
            position: None,
            ttl_clock_ms: 0,
            deltas: workers,
            uploads: 0,
            files: Vec::new(),
            sink: None,
            failed: None,
        })
    }

    /// Takes one worker's delta for `epoch` and uploads it in the background. A delta of an epoch
    /// already abandoned is still uploaded; its file carries over into the next decision.
    fn upload(&mut self, epoch: u64, worker: usize, entries: Vec<SnapshotEntry>) {
        let open = epoch > self.closed_upto;
        if open {
            let p = self.pending(epoch);
            p.deltas = p.deltas.saturating_sub(1);
        }
        if entries.is_empty() {
            return;
        }
        match open {
            true => self.pending(epoch).uploads += 1,
            false => self.carry_uploads += 1,
        }
        self.spawn_upload(epoch, &format!("w{worker}"), entries);
    }

    fn spawn_upload(&mut self, epoch: u64, name: &str, entries: Vec<SnapshotEntry>) {
        self.upload_seq += 1;
        let store = self.store.clone();
        let key = data_key(&self.s.scope, epoch, name, self.upload_seq);
        let tx = self.tx.clone();
        super::io_runtime().spawn(async move {
            let (bytes, n) = tokio::task::spawn_blocking(move || {
                let b = snapshot::encode(epoch, &entries);
                (b, entries)
            })
            .await
            .expect("encode task");
            let file = StateFile { key: key.clone(), epoch, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: n.len() as u64 };
            let result = match store.put_if_absent(&key, Bytes::from(bytes)).await {
                Ok(_) => Ok(file),
                Err(e) => Err((e.to_string(), n)),
            };
            let _ = tx.send(CkptMsg::Uploaded { epoch, result });
        });
    }

    fn uploaded(&mut self, epoch: u64, result: Result<StateFile, (String, Vec<SnapshotEntry>)>) {
        let current = self.current.as_mut().filter(|p| p.epoch == epoch);
        match (current, result) {
            (Some(p), Ok(f)) => {
                p.uploads -= 1;
                p.files.push(f);
            }
            (Some(p), Err((e, entries))) => {
                p.uploads -= 1;
                p.failed.get_or_insert(format!("state upload failed: {e}"));
                self.carry_entries.extend(entries);
            }
            (None, r) => {
                self.carry_uploads = self.carry_uploads.saturating_sub(1);
                match r {
                    Ok(f) => self.carry_files.push(f),
                    Err((_, entries)) => self.carry_entries.extend(entries),
                }
            }
        }
    }

    fn abandon(&mut self, why: String) {
        if let Some(p) = self.current.take() {
            self.closed_upto = self.closed_upto.max(p.epoch);
            tracing::warn!(stream = %self.s.stream, epoch = p.epoch, "checkpoint abandoned: {why}");
            self.metrics.failures.fetch_add(1, SeqCst);
            self.consecutive_failures += 1;
            if self.consecutive_failures > self.s.tolerated_failures {
                let msg = format!(
                    "{} consecutive checkpoints failed (state_management.tolerated_checkpoint_failures = {}); last: epoch {}: {why}",
                    self.consecutive_failures, self.s.tolerated_failures, p.epoch
                );
                *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(msg);
            }
            self.carry_files.extend(p.files);
            self.carry_sink.extend(p.sink.unwrap_or_default());
            // Its uploads still in flight land in carry_files (or carry_entries) when they finish.
            self.carry_uploads += p.uploads;
            let _ = self.in_flight.compare_exchange(p.epoch, 0, SeqCst, SeqCst);
        }
    }

    fn try_complete(&mut self) {
        let Some(p) = self.current.as_ref() else { return };
        if let Some(why) = &p.failed {
            if p.uploads == 0 {
                let why = why.clone();
                self.abandon(why);
            }
            return;
        }
        if p.started.elapsed() > self.s.timeout {
            let t = self.s.timeout;
            self.abandon(format!("timed out after {t:?}"));
            return;
        }
        if p.position.is_none() || p.deltas > 0 || p.uploads > 0 || p.sink.is_none() {
            return;
        }
        // Everything of abandoned epochs must be durable first: this epoch's position covers it.
        if self.carry_uploads > 0 {
            return;
        }
        if !self.carry_entries.is_empty() {
            let epoch = p.epoch;
            let entries = std::mem::take(&mut self.carry_entries);
            self.current.as_mut().expect("checked").uploads += 1;
            self.spawn_upload(epoch, "carry", entries);
            return;
        }
        let p = self.current.take().expect("checked");
        match self.decide(&p) {
            Ok(()) => {}
            Err(DecideError::Retry(e)) => {
                self.current = Some(p);
                self.abandon(e);
            }
            Err(DecideError::Fenced(e)) => {
                tracing::error!(stream = %self.s.stream, "{e}");
                self.metrics.fenced.store(true, SeqCst);
                *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
                self.in_flight.store(0, SeqCst);
            }
        }
    }

    fn decide(&mut self, p: &Pending) -> Result<(), DecideError> {
        let scope = self.s.scope.clone();
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
        let mut sink_files = self.carry_sink.clone();
        sink_files.extend(p.sink.clone().unwrap_or_default());
        let manifest = Manifest {
            version: 1,
            operator_id: scope.clone(),
            stream: self.s.stream.clone(),
            epoch: p.epoch,
            parent: self.last_decided,
            generation: self.generation,
            key_groups: self.s.key_groups,
            input_position: p.position.clone().unwrap_or_default(),
            state_files: files,
            sink_files,
            ttl_clock_ms: p.ttl_clock_ms,
            created_ms: crate::input::now_ms(),
        };
        let mbytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let checksum = snapshot::checksum_of(&mbytes);
        let mkey = key(&scope, "manifests", p.epoch);
        let store = self.store.clone();
        let created = super::block_on(store.put_if_absent(&mkey, Bytes::from(mbytes))).map_err(|e| DecideError::Retry(format!("writing manifest: {e}")))?;
        if created == PutOutcome::Exists {
            return Err(DecideError::Fenced(format!("manifest {mkey} already exists: another instance runs this operator; stopping")));
        }
        if let Some(d) = &self.s.decider {
            // The external decider (a Kafka transaction) decides; `commits/{e}` below is its copy.
            let ext = super::ExternalDecision { epoch: p.epoch, manifest: mkey.clone(), checksum, generation: self.generation };
            d.decide(&ext, &manifest.input_position).map_err(DecideError::Fenced)?;
        }
        let decision = Decision::Commit { epoch: p.epoch, manifest: mkey.clone(), checksum, generation: self.generation };
        let dbytes = Bytes::from(serde_json::to_vec(&decision).expect("decision serializes"));
        let ckey = key(&scope, "commits", p.epoch);
        let outcome = super::block_on(async {
            for attempt in 0..5u32 {
                match store.put_if_absent(&ckey, dbytes.clone()).await {
                    Ok(o) => return Ok(o),
                    Err(e) => {
                        // The write may have landed: look before trying again.
                        if let Ok(Some(existing)) = store.get(&ckey).await {
                            return Ok(if existing == dbytes { PutOutcome::Created } else { PutOutcome::Exists });
                        }
                        if attempt == 4 {
                            return Err(e);
                        }
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
            unreachable!()
        });
        match outcome {
            Ok(PutOutcome::Created) => {}
            Ok(PutOutcome::Exists) => {
                return Err(DecideError::Fenced(format!(
                    "epoch {} of operator `{scope}` was decided by another generation (this one is {}): this instance was fenced and stops",
                    p.epoch, self.generation
                )))
            }
            Err(e) => return Err(DecideError::Retry(format!("writing decision: {e}"))),
        }
        // Decided. Post-commit actions; failures here are retried by recovery (idempotent).
        let bytes: u64 = p.files.iter().map(|f| f.size).sum();
        if let Err(e) = super::recovery::finalize_sink_files(&manifest.sink_files) {
            tracing::error!(stream = %self.s.stream, epoch = p.epoch, "finalizing output files: {e:#}");
        }
        super::block_on(async {
            let _ = store.put_if_absent(&key(&scope, "committed", p.epoch), Bytes::from_static(b"{}")).await;
            let _ = store.put(&format!("{scope}/latest"), Bytes::from(p.epoch.to_string())).await;
        });
        if let Some(pc) = &self.s.post_commit {
            if let Err(e) = pc.decided(p.epoch) {
                tracing::warn!(stream = %self.s.stream, epoch = p.epoch, "post-commit action failed (retried after the next decision): {e}");
            }
        }
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
        self.maybe_compact();
        self.gc();
        Ok(())
    }

    /// Merges the decided chain into one base file in the background when it grows long.
    fn maybe_compact(&mut self) {
        const MAX_CHAIN: usize = 24;
        if self.compacting.is_some() || self.chain.len() <= MAX_CHAIN {
            return;
        }
        self.compacting_flag.store(true, SeqCst);
        let files = self.chain.clone();
        let upto = files.iter().map(|f| f.epoch).max().unwrap_or(0);
        let store = self.store.clone();
        let key = format!("{}/data/{upto:020}/base-g{}.snap", self.s.scope, self.generation);
        self.compacting = Some(key.clone());
        let tx = self.tx.clone();
        let ttl = self.s.ttl_ms;
        super::io_runtime().spawn(async move {
            // A chain that cannot be read (or is corrupted) is not compacted; the next decision retries.
            let entries = match super::recovery::load_entries(store.clone(), &files).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("compaction skipped: {e:#}");
                    let _ = tx.send(CkptMsg::CompactionFailed);
                    return;
                }
            };
            // Tombstones and TTL-expired values end here.
            let live = snapshot::compact(entries, crate::input::now_ms(), ttl);
            let n = live.len() as u64;
            let bytes = tokio::task::spawn_blocking(move || snapshot::encode(upto, &live)).await.expect("encode");
            let file = StateFile { key: key.clone(), epoch: upto, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: n };
            let msg = match store.put_if_absent(&key, Bytes::from(bytes)).await {
                Ok(_) => CkptMsg::Compacted { upto, file },
                Err(e) => {
                    tracing::warn!("compaction skipped: {e:#}");
                    CkptMsg::CompactionFailed
                }
            };
            let _ = tx.send(msg);
        });
    }

    /// Deletes what no retained manifest reaches, only objects older than the grace period.
    fn gc(&self) {
        let Some(oldest) = self.retained.front().map(|m| m.epoch) else { return };
        let mut keep: HashMap<&str, ()> = HashMap::new();
        for m in &self.retained {
            for f in &m.state_files {
                keep.insert(&f.key, ());
            }
        }
        // Also what is being or has been compacted but is not in a decided manifest yet.
        let in_use: Vec<String> = self
            .carry_files
            .iter()
            .chain(self.compacted.as_ref().map(|(_, f)| f))
            .map(|f| f.key.clone())
            .chain(self.compacting.clone())
            .collect();
        let keep: std::collections::HashSet<String> = keep.keys().map(|k| k.to_string()).chain(in_use).collect();
        let store = self.store.clone();
        let scope = self.s.scope.clone();
        let grace = self.s.gc_grace.as_millis() as i64;
        // Age is measured from when the keep set was taken: an object written after it survives.
        let now = crate::input::now_ms();
        super::io_runtime().spawn(async move {
            let old = |m: &crate::state::backend::ObjectMeta| now - m.modified_ms > grace;
            for kind in ["manifests", "commits", "committed"] {
                if let Ok(list) = store.list(&format!("{scope}/{kind}/")).await {
                    for m in list.iter().filter(|m| super::parse_tail(&m.key).is_some_and(|e| e < oldest) && old(m)) {
                        let _ = store.delete(&m.key).await;
                    }
                }
            }
            if let Ok(list) = store.list(&format!("{scope}/data/")).await {
                for m in list {
                    let epoch = m.key.split('/').rev().nth(1).and_then(|e| e.parse::<u64>().ok());
                    if epoch.is_some_and(|e| e < oldest) && !keep.contains(&m.key) && old(&m) {
                        let _ = store.delete(&m.key).await;
                    }
                }
            }
        });
    }
}

enum DecideError {
    /// Not decided; try again with the next epoch.
    Retry(String),
    /// Another generation decided: stop.
    Fenced(String),
}
