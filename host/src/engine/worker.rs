//! A worker: owns a range of key groups, their state and one instance of every processor.
//!
//! Records are buffered per key group and a group is processed when its buffer reaches
//! `batch_size`, or when the inbox is empty (so batches grow under load and latency stays low when
//! idle), or at a barrier. Per-key order is kept because a key's group is processed in arrival
//! order by this one thread. (For a stateless pipeline the router files all of a worker's records
//! under one of its key groups, `Router::coalesced`, so batches are whole.) At barrier `e` the worker flushes every buffer, calls
//! `on_checkpoint` for each group processed since the last barrier, and forwards the barrier.
//! After a fatal failure it stops processing but still forwards barriers and EOF so the stream
//! drains and ends cleanly.
//!
//! Timers (`super::timers`): a watermark takes effect after the records before it, and fires the
//! due event-time timers of each stage; the wall clock fires processing-time timers between
//! messages and while the inbox is idle. What fires runs through the stages after its stage.
//!
//! A worker of a tier before an exchange (`super::exchange`) runs only its tier's stages and
//! sends what they emit, and its barriers and EOF, to the next tier instead of the output (error
//! and named-output records still go to the output). A worker after an exchange aligns each
//! barrier over every upstream worker before taking it.

use super::exchange::{Alignment, Exchange, Step};
use super::msg::{OutMsg, Routed, WorkerMsg};
use super::shared::StreamShared;
use crate::processor::FailurePolicy;
use crate::processor::{BatchCtx, BatchError, Processor, StateSlot};
use crate::record::{Outcome, Record, RecordError};
use crossbeam_channel::{Receiver, Sender};
use hashbrown::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub struct Worker {
    pub id: usize,
    pub processors: Vec<Box<dyn Processor>>,
    pub state: StateSlot,
    pub batch_size: usize,
    pub out: Sender<OutMsg>,
    pub shared: Arc<StreamShared>,
    pub(super) pending: HashMap<u32, Vec<Record>>,
    pub(super) touched: HashSet<u32>,
    pub(super) epoch: u64,
    pub(super) dead: bool,
    pub(super) batch_id: u64,
    /// The checkpoint coordinator, when the stream checkpoints.
    pub ckpt: Option<crossbeam_channel::Sender<crate::checkpoint::coordinator::CkptMsg>>,
    /// The hybrid backend's RAM cache, when it is in use.
    pub hybrid: Option<Arc<crate::state::hybrid::HybridCache>>,
    /// Hybrid: the last epoch each group was written in, and when it was last used.
    dirty_epoch: HashMap<u32, u64>,
    last_used: HashMap<u32, u64>,
    tick: u64,
    /// State entries and bytes last added to the stream's gauges.
    reported: (i64, i64),
    /// The stream's TTL clock for this epoch when it checkpoints (None: the wall clock).
    pub ttl_clock: Option<i64>,
    /// The coordinator's figures: once it halts, what this worker still holds is dropped.
    pub checkpoint: Option<Arc<crate::checkpoint::coordinator::CheckpointMetrics>>,
    /// The index of this worker's first stage in the stream (its tier's start).
    pub first_stage: usize,
    /// The exchange to the next tier, unless this tier is the last.
    pub next: Option<Exchange>,
    /// Barrier alignment over the previous tier's workers, unless this is tier 0.
    pub align: Option<Alignment>,
    /// This worker's index in its tier (the `from` of the watermarks it forwards).
    pub tier_index: usize,
    /// The key groups this worker owns (loaded for stages with timers with the hybrid backend).
    pub owned: Vec<u32>,
    /// The last watermark taken (i64::MIN: none).
    pub(super) watermark: i64,
    /// The earliest processing-time timer of any stage (wall clock ms), when one is set.
    pub(super) wake: Option<i64>,
}

impl Worker {
    pub fn new(
        id: usize,
        processors: Vec<Box<dyn Processor>>,
        state: StateSlot,
        batch_size: usize,
        out: Sender<OutMsg>,
        shared: Arc<StreamShared>,
        first_epoch: u64,
    ) -> Self {
        Worker {
            id,
            processors,
            state,
            batch_size,
            out,
            shared,
            pending: HashMap::new(),
            touched: HashSet::new(),
            epoch: first_epoch,
            dead: false,
            batch_id: 0,
            ckpt: None,
            hybrid: None,
            dirty_epoch: HashMap::new(),
            last_used: HashMap::new(),
            tick: 0,
            reported: (0, 0),
            ttl_clock: None,
            checkpoint: None,
            first_stage: 0,
            next: None,
            align: None,
            tier_index: 0,
            owned: Vec::new(),
            watermark: i64::MIN,
            wake: None,
        }
    }

    /// Runs until EOF; returns the state for inspection.
    pub fn run(mut self, inbox: Receiver<WorkerMsg>) -> StateSlot {
        self.restore_timers();
        while let Some(msg) = self.next_msg(&inbox) {
            if !self.handle(msg) {
                break;
            }
            self.clock_due();
        }
        self.state
    }

    /// Takes one message (through the alignment after an exchange); false once done.
    fn handle(&mut self, msg: WorkerMsg) -> bool {
        let msg = match self.align.as_mut() {
            None => msg,
            Some(a) => match a.step(msg, self.epoch) {
                Step::Now(m) => m,
                Step::Wait => return true,
                Step::Done => return self.finish(),
                Step::Aligned { epoch, clock_ms } => {
                    self.barrier(epoch, clock_ms);
                    let held = self.align.as_mut().map(Alignment::take_held).unwrap_or_default();
                    return held.into_iter().all(|m| self.handle(m));
                }
            },
        };
        match msg {
            WorkerMsg::Data(records) | WorkerMsg::Exchanged { records, .. } => self.accept(records),
            WorkerMsg::Lines { group, lines, slot: _slot } => self.process_lines(group, lines),
            WorkerMsg::Barrier { epoch, clock_ms } => self.barrier(epoch, clock_ms),
            WorkerMsg::Watermark { time_ms, .. } => self.take_watermark(time_ms),
            WorkerMsg::Eof => return self.finish(),
        }
        true
    }

    /// Flushes and tells the next tier or the output that this worker is done.
    fn finish(&mut self) -> bool {
        self.flush_all();
        match &self.next {
            Some(x) => x.eof(),
            None => {
                let _ = self.out.send(OutMsg::Eof { worker: self.id });
            }
        }
        false
    }

    fn accept(&mut self, records: Vec<Routed>) {
        if self.dead {
            return;
        }
        for Routed { group, record } in records {
            let buf = self.pending.entry(group).or_default();
            buf.push(record);
            if buf.len() >= self.batch_size {
                let batch = std::mem::take(buf);
                self.process_group(group, batch);
            }
        }
    }

    pub(super) fn flush_all(&mut self) {
        let groups: Vec<u32> = self.pending.iter().filter(|(_, v)| !v.is_empty()).map(|(g, _)| *g).collect();
        for g in groups {
            // A fatal failure while flushing clears every buffer.
            let Some(buf) = self.pending.get_mut(&g) else { break };
            let batch = std::mem::take(buf);
            self.process_group(g, batch);
        }
    }

    /// The TTL clock of the current batch (see `engine::clock`).
    pub(super) fn now_ms(&self) -> i64 {
        self.ttl_clock.unwrap_or_else(crate::util::time::now_ms)
    }

    fn barrier(&mut self, epoch: u64, clock_ms: i64) {
        self.flush_all();
        if !self.dead && !self.halted() {
            let now = self.now_ms();
            let mut groups: Vec<u32> = self.touched.drain().collect();
            groups.sort_unstable();
            'outer: for g in groups {
                for i in 0..self.processors.len() {
                    if let Err(e) = self.processors[i].on_checkpoint(epoch, g, now, &mut self.state) {
                        self.fatal(e);
                        break 'outer;
                    }
                }
            }
        }
        if let (Some(tx), Some(st), false) = (&self.ckpt, self.state.as_mut(), self.dead) {
            // Hand the changed keys to the coordinator, which uploads them in the background. A
            // failed worker sends nothing, so no checkpoint can be decided past its lost batch.
            let entries = st.take_delta();
            let _ = tx.send(crate::checkpoint::coordinator::CkptMsg::Delta { epoch, worker: self.id, entries });
        }
        if !self.dead {
            for p in &mut self.processors {
                p.at_barrier(epoch);
            }
        }
        self.evict_cold();
        self.epoch = epoch + 1;
        if self.ttl_clock.is_some() {
            self.ttl_clock = Some(clock_ms);
        }
        match &self.next {
            Some(x) => x.barrier(epoch, clock_ms),
            None => {
                let _ = self.out.send(OutMsg::Barrier { epoch, worker: self.id });
            }
        }
    }

    /// Hybrid: loads `group` from the decided checkpoint files if it is not in RAM.
    pub(super) fn ensure_resident(&mut self, group: u32) -> bool {
        let (Some(h), Some(st)) = (&self.hybrid, self.state.as_mut()) else { return true };
        if st.is_resident(group) {
            return true;
        }
        match h.load_group(group) {
            Ok(entries) => {
                for e in entries {
                    if let Err(msg) = st.restore(e) {
                        self.shared.fail(format!("stream {}: loading key group {group}: {msg}", self.shared.name));
                        return false;
                    }
                }
                st.mark_resident(group);
                true
            }
            Err(e) => {
                let msg = format!("stream {}: hybrid state: loading key group {group} failed: {e:#}", self.shared.name);
                self.fatal(BatchError { message: msg, policy: FailurePolicy::Fail });
                false
            }
        }
    }

    /// Hybrid: evicts least recently used groups whose changes are all decided, down to 80 % of
    /// the budget, when RAM use exceeds it.
    fn evict_cold(&mut self) {
        let (Some(h), Some(st)) = (&self.hybrid, self.state.as_mut()) else { return };
        if st.bytes() <= h.budget_bytes {
            return;
        }
        let decided = h.last_decided.load(Relaxed);
        let mut cold: Vec<(u64, u32)> = st
            .resident_groups()
            .into_iter()
            .filter(|g| self.dirty_epoch.get(g).is_none_or(|e| *e <= decided))
            .map(|g| (self.last_used.get(&g).copied().unwrap_or(0), g))
            .collect();
        cold.sort_unstable();
        let target = h.budget_bytes * 8 / 10;
        for (_, g) in cold {
            if st.bytes() <= target {
                break;
            }
            st.evict(g);
            self.dirty_epoch.remove(&g);
            h.evictions.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn fatal(&mut self, e: BatchError) {
        self.dead = true;
        self.pending.clear();
        self.shared.fail(e.message);
    }

    /// The coordinator decides nothing more: processing would only delay the stop.
    pub(super) fn halted(&self) -> bool {
        self.checkpoint.as_ref().is_some_and(|c| c.halted.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn process_group(&mut self, group: u32, batch: Vec<Record>) {
        self.process_from(group, 0, batch)
    }

    /// Hybrid: `group` changes in this epoch (it may not be evicted before the epoch is decided).
    pub(super) fn mark_dirty(&mut self, group: u32) {
        if self.hybrid.is_some() {
            self.tick += 1;
            self.dirty_epoch.insert(group, self.epoch);
            self.last_used.insert(group, self.tick);
        }
    }

    /// Runs one key group's batch through the processors from `first` on and sends the results
    /// downstream: records for the main output, error records, and records a processor sent to
    /// a named output (they leave the pipeline at that processor).
    pub(super) fn process_from(&mut self, group: u32, first: usize, batch: Vec<Record>) {
        if self.dead || batch.is_empty() || self.halted() {
            return;
        }
        if !self.ensure_resident(group) {
            return;
        }
        self.mark_dirty(group);
        let shared = self.shared.clone();
        let m = &shared.metrics;
        m.batches.fetch_add(1, Relaxed);
        let started = std::time::Instant::now();
        self.touched.insert(group);
        let partition = batch[0].partition;
        let mut current = batch;
        let mut errors = Vec::new();
        let mut side = Vec::new();
        let now = self.now_ms();
        for i in first..self.processors.len() {
            self.batch_id += 1;
            let ctx = BatchCtx { batch_id: self.batch_id, key_group: group, partition, epoch: self.epoch, now_ms: now };
            let p = &mut self.processors[i];
            match p.process(&ctx, &current, &mut self.state) {
                Ok(outcomes) => {
                    let mut next = Vec::with_capacity(current.len());
                    file_outcomes(&shared, (self.first_stage + i, p.name()), &current, outcomes, (&mut next, &mut errors, &mut side));
                    current = next;
                }
                Err(e) => {
                    m.batch_failures.fetch_add(1, Relaxed);
                    match e.policy {
                        FailurePolicy::Fail => return self.fatal(e),
                        FailurePolicy::ErrorOutput => {
                            let re = RecordError { class: crate::record::ErrorClass::Batch, code: "batch-failed".into(), message: e.message };
                            errors.extend(current.iter().map(|r| error_record(&shared.name, self.first_stage + i, p.name(), r, &re)));
                            current = Vec::new();
                            break;
                        }
                    }
                }
            }
            if current.is_empty() {
                break;
            }
        }
        m.records_failed.fetch_add(errors.len() as u64, Relaxed);
        shared.batch_latency.observe(started.elapsed().as_secs_f64());
        if let Some(st) = self.state.as_ref() {
            let (e, b) = (st.entries() as i64, st.bytes() as i64);
            m.state_entries.fetch_add(e - self.reported.0, Relaxed);
            m.state_bytes.fetch_add(b - self.reported.1, Relaxed);
            self.reported = (e, b);
        }
        if let Some(x) = self.next.as_mut().filter(|_| !current.is_empty()) {
            x.send(self.epoch, std::mem::take(&mut current));
        }
        if current.is_empty() && errors.is_empty() && side.is_empty() {
            return;
        }
        let _ = self.out.send(OutMsg::Data { epoch: self.epoch, records: current, errors, side });
    }
}

/// Where a stage's outcomes go: emitted records, error records, named-output records.
pub(super) type Filed<'a> = (&'a mut Vec<Record>, &'a mut Vec<Record>, &'a mut Vec<(u16, Record)>);

/// Files the outcomes of stage `at` (index in the stream, name) for `inputs`: emitted records to
/// the next stage, records for named outputs aside, failures as error records citing their input.
pub(super) fn file_outcomes(shared: &StreamShared, at: (usize, &str), inputs: &[Record], outcomes: Vec<Outcome>, (next, errors, side): Filed<'_>) {
    for (input, outcome) in inputs.iter().zip(outcomes) {
        match outcome {
            Outcome::Emit(v) => next.extend(v),
            Outcome::Split { main, side: s } => {
                next.extend(main);
                side.extend(s);
            }
            Outcome::Drop => {
                shared.metrics.records_dropped.fetch_add(1, Relaxed);
            }
            Outcome::Fail(e) => errors.push(error_record(&shared.name, at.0, at.1, input, &e)),
        }
    }
}

/// The record sent to `error_output` for a failed input record: a JSON value with the error and
/// its provenance (stream, processor index and plugin `name@version`, the input record and its
/// partition/offset; for `file` and `stdin` inputs the offset is the line number), and the same
/// provenance as `arkflow-*` headers for Kafka.
pub fn error_record(stream: &str, processor: usize, plugin: &str, input: &Record, err: &RecordError) -> Record {
    let value = input.value.as_deref().map(|v| match serde_json::from_slice::<serde_json::Value>(v) {
        Ok(j) => j,
        Err(_) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
    });
    let body = serde_json::json!({
        "error": { "class": err.class.name(), "code": err.code, "message": err.message },
        "stream": stream,
        "processor": processor,
        "plugin": plugin,
        "key": input.key.as_deref().map(String::from_utf8_lossy),
        "value": value,
        "partition": input.partition,
        "offset": input.offset,
        "timestamp_ms": input.timestamp_ms,
    });
    let h = |k: &str, v: String| (format!("arkflow-{k}"), v.into_bytes());
    let headers = vec![
        h("error-class", err.class.name().to_string()),
        h("error-code", err.code.clone()),
        h("error-message", err.message.chars().take(1024).collect()),
        h("stream", stream.to_string()),
        h("processor", processor.to_string()),
        h("plugin", plugin.to_string()),
        h("source-partition", input.partition.to_string()),
        h("source-offset", input.offset.to_string()),
    ];
    Record {
        key: input.key.clone(),
        value: Some(body.to_string().into_bytes()),
        headers,
        timestamp_ms: input.timestamp_ms,
        partition: input.partition,
        offset: input.offset,
    }
}
