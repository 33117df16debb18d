//! The checkpoint coordinator of one stream: a thread that collects, per epoch, the input
//! position, every worker's state delta (uploaded in the background) and the sinks'
//! pre-commits; then writes the manifest (create-only), decides (its slot, see
//! `checkpoint::decision`), runs the sinks' commits, marks `committed/{e}`, compacts and GCs
//! (`decide.rs`).
//!
//! One checkpoint is in flight at a time (`in_flight`, read by the input before injecting a
//! barrier). A checkpoint that fails or times out before its decision is abandoned without
//! stopping the stream: its uploaded files, not-yet-uploaded entries and pre-commits carry over
//! into the next epoch's manifest, so nothing it covered is lost, and its slot is filled with an
//! `Abandon` record before the next decision. Finding a slot taken means a newer generation
//! fenced this one: the stream stops with an error. A sink commit that fails for good stops the
//! stream too (recovery replays it).

mod decide;

use decide::DecideError;

use super::{data_key, CheckpointSettings, Manifest, SinkCommit, StateFile};
use crate::state::backend::{ObjectStore, PutOutcome};
use crate::state::snapshot::{self, SnapshotEntry};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages from the stream's threads (and the coordinator's own upload tasks).
pub enum CkptMsg {
    Injected {
        epoch: u64,
        position: serde_json::Value,
        ttl_clock_ms: i64,
        /// The input's event-time state (`engine::watermark`), when the stream has one.
        event_time: Option<serde_json::Value>,
        /// The final barrier of the stream (end of input or a drain). Its checkpoint timeout
        /// counts from `Shutdown`, when every worker has reached it: the backlog ahead of the
        /// barrier is progress, not a stuck checkpoint.
        last: bool,
    },
    Delta {
        epoch: u64,
        worker: usize,
        entries: Vec<SnapshotEntry>,
    },
    Uploaded {
        epoch: u64,
        /// The epoch the entries belong to (older than `epoch` for carried-over entries).
        file_epoch: u64,
        result: Result<StateFile, (String, Vec<SnapshotEntry>)>,
    },
    /// The sinks' pre-commits of an aligned barrier (phase one of the commit protocol).
    SinkPrepared {
        epoch: u64,
        commits: Vec<SinkCommit>,
    },
    Compacted {
        upto: u64,
        file: StateFile,
    },
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
    /// Set when the coordinator decides nothing more (fenced, a commit failed for good, too many
    /// failed checkpoints): workers drop what they still hold, none of it could be committed, and
    /// the next start replays it from the last decided checkpoint.
    pub halted: std::sync::atomic::AtomicBool,
    /// Why the last checkpoint was abandoned (the stream's report names it when the final one is).
    pub last_abandoned: std::sync::Mutex<Option<(u64, String)>>,
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
    /// Entries whose upload failed, by the epoch they belong to: re-uploaded with the next
    /// checkpoint as files of that epoch, so a restore applies them before anything newer of
    /// the same key (a later epoch's value must win over a carried older one).
    carry_entries: std::collections::BTreeMap<u64, Vec<SnapshotEntry>>,
    carry_sink: Vec<SinkCommit>,
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
    /// This generation's decision slots (gapless, see `checkpoint::decision`).
    slots: super::decision::Slots,
    /// When the next slot was last read for a fence (see `Slots::probe`).
    last_probe: Instant,
    /// Slots this generation wrote (GC deletes them without reading them back).
    own_slots: std::collections::HashSet<u64>,
    /// Slots read as fences by GC (never deleted, never read again).
    fences: Arc<std::sync::Mutex<std::collections::HashSet<u64>>>,
}

struct Pending {
    epoch: u64,
    started: Instant,
    /// The stream's final barrier (see `CkptMsg::Injected::last`), and when the stream ended.
    last: bool,
    ended: Option<Instant>,
    position: Option<serde_json::Value>,
    ttl_clock_ms: i64,
    event_time: Option<serde_json::Value>,
    deltas: usize,
    uploads: usize,
    files: Vec<StateFile>,
    sink: Option<Vec<SinkCommit>>,
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
        last_slot: u64,
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
        let slots_scope = s.scope.clone();
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
            carry_entries: if carry.is_empty() { Default::default() } else { std::collections::BTreeMap::from([(0, carry)]) },
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
            closed_upto: decided.map_or(0, |m| m.epoch).max(last_slot),
            carry_uploads: 0,
            slots: super::decision::Slots::new(&slots_scope, generation, last_slot),
            last_probe: Instant::now(),
            own_slots: Default::default(),
            fences: Default::default(),
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
                Some(CkptMsg::Injected { epoch, position, ttl_clock_ms, event_time, last }) => {
                    self.metrics.current_epoch.store(epoch, SeqCst);
                    let p = self.pending(epoch);
                    p.position = Some(position);
                    p.ttl_clock_ms = ttl_clock_ms;
                    p.event_time = event_time;
                    p.last = last;
                }
                Some(CkptMsg::Delta { epoch, worker, entries }) => self.upload(epoch, worker, entries),
                Some(CkptMsg::Uploaded { epoch, file_epoch, result }) => self.uploaded(epoch, file_epoch, result),
                Some(CkptMsg::SinkPrepared { epoch, commits }) => match self.current.as_mut().filter(|p| p.epoch == epoch) {
                    Some(p) => p.sink = Some(commits),
                    None => self.carry_sink.extend(commits),
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
                    if let Some(p) = self.current.as_mut() {
                        p.ended = Some(Instant::now());
                    }
                }
                None => {}
            }
            self.try_complete();
            self.probe_fence();
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
            last: false,
            ended: None,
            position: None,
            ttl_clock_ms: 0,
            event_time: None,
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
        self.spawn_upload(epoch, epoch, &format!("w{worker}"), entries);
    }

    /// Uploads `entries` of epoch `file_epoch` as part of checkpoint `epoch`.
    fn spawn_upload(&mut self, epoch: u64, file_epoch: u64, name: &str, entries: Vec<SnapshotEntry>) {
        self.upload_seq += 1;
        let store = self.store.clone();
        let key = data_key(&self.s.scope, epoch, self.generation, name, self.upload_seq);
        let tx = self.tx.clone();
        super::io_runtime().spawn(async move {
            let (bytes, n) = tokio::task::spawn_blocking(move || {
                let b = snapshot::encode(file_epoch, &entries);
                (b, entries)
            })
            .await
            .expect("encode task");
            let file =
                StateFile { key: key.clone(), epoch: file_epoch, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: n.len() as u64 };
            let result = match store.put_if_absent(&key, Bytes::from(bytes)).await {
                Ok(PutOutcome::Created) => Ok(file),
                // Names carry the generation: only a zombie of this generation could be there.
                Ok(PutOutcome::Exists) => Err((format!("state file {key} already exists"), n)),
                Err(e) => Err((e.to_string(), n)),
            };
            let _ = tx.send(CkptMsg::Uploaded { epoch, file_epoch, result });
        });
    }

    fn uploaded(&mut self, epoch: u64, file_epoch: u64, result: Result<StateFile, (String, Vec<SnapshotEntry>)>) {
        let current = self.current.as_mut().filter(|p| p.epoch == epoch);
        match (current, result) {
            (Some(p), Ok(f)) => {
                p.uploads -= 1;
                p.files.push(f);
            }
            (Some(p), Err((e, entries))) => {
                p.uploads -= 1;
                p.failed.get_or_insert(format!("state upload failed: {e}"));
                self.carry_entries.entry(file_epoch).or_default().extend(entries);
            }
            (None, r) => {
                self.carry_uploads = self.carry_uploads.saturating_sub(1);
                match r {
                    Ok(f) => self.carry_files.push(f),
                    Err((_, entries)) => self.carry_entries.entry(file_epoch).or_default().extend(entries),
                }
            }
        }
    }

    fn abandon(&mut self, why: String) {
        if let Some(p) = self.current.take() {
            self.closed_upto = self.closed_upto.max(p.epoch);
            tracing::warn!(stream = %self.s.stream, epoch = p.epoch, "checkpoint abandoned: {why}");
            *self.metrics.last_abandoned.lock().unwrap_or_else(|x| x.into_inner()) = Some((p.epoch, why.clone()));
            self.metrics.failures.fetch_add(1, SeqCst);
            self.consecutive_failures += 1;
            if self.consecutive_failures > self.s.tolerated_failures {
                let msg = format!(
                    "{} consecutive checkpoints failed (state_management.tolerated_checkpoint_failures = {}); last: epoch {}: {why}",
                    self.consecutive_failures, self.s.tolerated_failures, p.epoch
                );
                *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(msg);
                self.metrics.halted.store(true, SeqCst);
            }
            self.carry_files.extend(p.files);
            self.carry_sink.extend(p.sink.unwrap_or_default());
            // Its uploads still in flight land in carry_files (or carry_entries) when they finish.
            self.carry_uploads += p.uploads;
            let _ = self.in_flight.compare_exchange(p.epoch, 0, SeqCst, SeqCst);
        }
    }

    /// Every checkpoint timeout without a decision, looks whether a newer generation fenced this
    /// one, and stops the stream at once if so.
    fn probe_fence(&mut self) {
        if self.last_probe.elapsed() < self.s.timeout || self.fatal.lock().unwrap_or_else(|x| x.into_inner()).is_some() {
            return;
        }
        self.last_probe = Instant::now();
        if let Err(super::decision::SlotError::Fenced(e)) = crate::checkpoint::block_on(self.slots.probe(&*self.store)) {
            tracing::error!(stream = %self.s.stream, "{e}");
            self.metrics.fenced.store(true, SeqCst);
            *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
            self.metrics.halted.store(true, SeqCst);
            self.in_flight.store(0, SeqCst);
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
        // The final checkpoint's clock starts when the stream has ended (see `CkptMsg::Injected`).
        let since = if p.last { p.ended } else { Some(p.started) };
        if since.is_some_and(|t| t.elapsed() > self.s.timeout) {
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
            for (file_epoch, entries) in std::mem::take(&mut self.carry_entries) {
                self.current.as_mut().expect("checked").uploads += 1;
                self.spawn_upload(epoch, file_epoch, &format!("carry{file_epoch}"), entries);
            }
            return;
        }
        let p = self.current.take().expect("checked");
        match self.decide(&p) {
            Ok(()) => self.last_probe = Instant::now(),
            Err(DecideError::Retry(e)) => {
                self.current = Some(p);
                self.abandon(e);
            }
            Err(DecideError::Fenced(e)) => {
                tracing::error!(stream = %self.s.stream, "{e}");
                self.metrics.fenced.store(true, SeqCst);
                *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
                self.metrics.halted.store(true, SeqCst);
                self.in_flight.store(0, SeqCst);
            }
            Err(DecideError::Commit(e)) => {
                // Decided, but its output could not be made visible: stop; recovery commits it.
                tracing::error!(stream = %self.s.stream, "{e}");
                *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
                self.metrics.halted.store(true, SeqCst);
                self.in_flight.store(0, SeqCst);
            }
        }
    }
}
