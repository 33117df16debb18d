//! One stream: input -> router -> `thread_num` workers -> output, on bounded channels.
//!
//! Threads: the caller's thread runs the input and routes each record to the worker owning its key
//! group (`group = xxh3(routing key) % key_groups`; workers own contiguous group ranges); one
//! thread per worker; one output thread. A stream whose stages change key runs a tier of
//! `thread_num` workers per key, joined by exchanges (`super::tiers`, `super::exchange`).
//! Backpressure: every channel is bounded, so a slow output stalls the workers and then the
//! input. The input injects barriers (periodically when checkpointing is enabled, and always once
//! at the end) into every worker's channel of tier 0; each exchange broadcasts and aligns them;
//! the output stage sees a barrier as aligned when all workers of the last tier forwarded it, and
//! flushes the sinks.
//! Shutdown (EOF, signal, or a failure) ends with a final barrier then EOF, which drains
//! everything in flight.

use super::msg::{OutMsg, WorkerMsg};
use super::routing::Router;
use super::shared::StreamShared;
use crate::config::StreamConfig;
use crate::connectors::input::Input;
use crate::processor::ProcessorFactory;
use crate::state::{StateLimits, WorkerState};
use crossbeam_channel::{bounded, Sender};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A built, ready-to-run stream (one part of a stream's plan, `super::plan`): what every run of
/// it shares, and how it runs.
pub struct Stream {
    pub(crate) spec: StreamSpec,
    pub(crate) runner: Runner,
}

/// What every session of a stream shares: its config, built stages and key layout.
pub struct StreamSpec {
    pub config: StreamConfig,
    pub(crate) factories: Vec<Arc<dyn ProcessorFactory>>,
    pub(crate) store_names: Vec<String>,
    pub(crate) key_groups: u32,
    /// The worker tiers and how records are routed to each (`super::tiers`).
    pub(crate) tiers: super::Tiers,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) state_limits: StateLimits,
    pub(crate) barrier_interval: Option<Duration>,
    pub shared: Arc<StreamShared>,
    /// The columnar lane: the input sends blocks of lines (`Input::next_lines`), dealt to the
    /// workers in turn (`super::build_part` decides).
    pub(crate) lane: bool,
}

/// How a built stream runs.
pub(crate) enum Runner {
    /// One session, on the input, sinks and checkpointing opened at build time.
    Once(Box<Session>),
    /// `assignment: group`: a session per partition assignment, each opened by the group driver
    /// from the spec when the consumer group hands this process partitions (`crate::engine::group`).
    Group(Box<crate::engine::group::GroupSetup>),
}

/// What one run of a stream owns: input -> router -> workers -> output.
pub(crate) struct Session {
    pub(crate) input: Box<dyn Input>,
    /// The main output, `error_output` and the named outputs.
    pub(crate) sinks: super::Sinks,
    pub(crate) checkpoint: Option<CheckpointSetup>,
}

/// Checkpointing of a stream, prepared by recovery at build time.
pub struct CheckpointSetup {
    pub store: Arc<dyn crate::state::backend::ObjectStore>,
    pub settings: crate::checkpoint::CheckpointSettings,
    pub recovered: crate::checkpoint::recovery::Recovered,
    pub metrics: Arc<crate::checkpoint::coordinator::CheckpointMetrics>,
    /// The hybrid backend's RAM cache.
    pub hybrid: Option<Arc<crate::state::hybrid::HybridCache>>,
    /// The restored entries come from other generations' checkpoints (group mode): the first
    /// checkpoint writes them again, under this generation.
    pub carry_restored: bool,
}

/// How a stream ended.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    pub name: String,
    pub records_in: u64,
    pub records_out: u64,
    pub records_dropped: u64,
    pub records_failed: u64,
    /// Of `records_in`, those the columnar lane ran as whole blocks.
    pub records_columnar: u64,
    /// Bytes written to the main and named outputs (keys, values, headers; `arkflow_bytes_out`).
    pub bytes_out: u64,
    pub last_aligned_epoch: u64,
    /// The error that stopped the stream, if any.
    pub failure: Option<String>,
    /// Entries of keyed state held at the end, summed over workers.
    pub state_entries: u64,
    /// Bytes of keyed state (keys + values) held at the end, summed over workers.
    pub state_bytes: u64,
    /// Checkpoint figures (the seed's metrics); None when checkpointing is off.
    pub checkpoints: Option<CheckpointReport>,
    /// The stream ended without another failure but its final checkpoint was not decided (the
    /// `failure` says so). A group session whose partitions were revoked may end this way.
    pub final_undecided: bool,
}

/// What the checkpoint coordinator did during the run.
#[derive(Debug, Clone, Default)]
pub struct CheckpointReport {
    pub backend: String,
    pub current_epoch: u64,
    pub last_decided: u64,
    pub decided: u64,
    pub failures: u64,
    pub last_duration_ms: u64,
    pub last_bytes: u64,
    pub restore_ms: u64,
    /// Hybrid backend: key groups read back from S3, and evicted from RAM.
    pub hybrid_loads: u64,
    pub hybrid_evictions: u64,
}

impl StreamReport {
    /// The report of a stream that processed nothing.
    pub fn empty(name: &str, failure: Option<String>) -> Self {
        StreamReport { name: name.to_string(), failure, ..Default::default() }
    }
}

impl Stream {
    pub fn name(&self) -> &str {
        &self.spec.shared.name
    }

    pub fn config(&self) -> &StreamConfig {
        &self.spec.config
    }

    /// The stream's counters and failure flag.
    pub fn shared(&self) -> &Arc<StreamShared> {
        &self.spec.shared
    }

    /// What the operations endpoint reads while the stream runs.
    pub fn probe(&self) -> super::StreamProbe {
        let checkpoint = match &self.runner {
            Runner::Once(s) => s.checkpoint.as_ref().map(|c| (c.store.describe(), c.metrics.clone())),
            Runner::Group(_) => None,
        };
        super::StreamProbe { shared: self.spec.shared.clone(), checkpoint }
    }

    /// Runs to completion on the calling thread. `stop` is the process-wide shutdown flag.
    pub fn run(self, stop: Arc<AtomicBool>) -> StreamReport {
        match self.runner {
            Runner::Once(session) => session.run(&self.spec, stop),
            Runner::Group(g) => crate::engine::group::run(self.spec, *g, stop),
        }
    }
}

impl Session {
    /// Runs this session of `spec` to completion on the calling thread.
    pub(crate) fn run(self, spec: &StreamSpec, stop: Arc<AtomicBool>) -> StreamReport {
        let Session { mut input, sinks, checkpoint } = self;
        let StreamSpec { config, factories, store_names, tiers, ttl_ms, state_limits, barrier_interval, shared, lane, .. } = spec;
        let (ttl_ms, state_limits, barrier_interval) = (*ttl_ms, *state_limits, *barrier_interval);
        let n = config.pipeline.thread_num.max(1);
        let cap = config.pipeline.channel_capacity.max(1);
        shared.pipeline.periodic_barriers.store(barrier_interval.is_some(), Relaxed);
        let routers = super::workers::tier_routers(spec, n);
        let mut router = routers[0].clone();
        let hybrid = checkpoint.as_ref().and_then(|c| c.hybrid.clone());
        let mut states = super::workers::worker_states(n * routers.len(), store_names, ttl_ms, state_limits, checkpoint.is_some(), hybrid.is_some());
        let clock = super::clock::StreamClock::new(checkpoint.as_ref().and_then(|c| c.recovered.clock_ms));
        let mut report = StreamReport::empty(&shared.name, None);
        report.checkpoints =
            checkpoint.as_ref().map(|c| CheckpointReport { backend: c.store.describe(), restore_ms: c.recovered.restore_ms, ..Default::default() });
        let recovered_event_time = checkpoint.as_ref().and_then(|c| c.recovered.manifest.as_ref()).and_then(|m| m.event_time.clone());
        let (coordinator, first_epoch) = match checkpoint {
            Some(c) => {
                let next = c.recovered.next_epoch;
                (Some(start_coordinator(c, &router, &mut states, shared)), next)
            }
            None => (None, 1),
        };
        let ckpt_tx = coordinator.as_ref().map(|c| c.tx.clone());
        let (out_tx, out_rx) = bounded::<OutMsg>(cap * n);
        let (out_shared, out_ckpt) = (shared.clone(), ckpt_tx.clone());
        let out_thread = std::thread::Builder::new()
            .name(format!("{}-output", shared.name))
            .spawn(move || super::output_stage::OutputStage::new(sinks, n, &out_shared, out_ckpt).run(out_rx))
            .expect("spawn output thread");
        let ttl_clock = coordinator.as_ref().map(|_| clock.current());
        let metrics = coordinator.as_ref().map(|c| c.metrics.clone());
        let ctx = super::workers::WorkerCtx {
            factories,
            shared,
            out: &out_tx,
            first_epoch,
            ttl_clock,
            ckpt: ckpt_tx.as_ref(),
            hybrid: hybrid.as_ref(),
            metrics,
            cap,
            batch_size: config.pipeline.batch_size,
        };
        let (inboxes, workers) = super::workers::spawn_tiers(states, &ctx, tiers, &routers);
        drop(out_tx);
        let watermarks = config.event_time.clone().map(|c| super::watermark::Watermarks::new(c, recovered_event_time.as_ref()));
        let mut barriers =
            Barriers { interval: barrier_interval, coordinator: coordinator.as_ref(), next: first_epoch, last: Instant::now(), shared, clock, watermarks };
        match lane {
            true => super::lane::input_loop(&mut *input, &router, &inboxes, shared, &stop, &mut barriers),
            false => input_loop(&mut *input, &mut router, &inboxes, shared, &stop, &mut barriers),
        }
        // The final barrier: wait for the checkpoint in flight, then checkpoint everything read.
        barriers.wait_idle(shared);
        barriers.inject(&*input, &inboxes, true);
        let final_epoch = barriers.next - 1;
        for tx in &inboxes {
            let _ = tx.send(WorkerMsg::Eof);
        }
        drop(inboxes);
        join_threads(workers, out_thread, shared, &mut report);
        if let Some(c) = coordinator {
            finish_checkpoints(c, shared, final_epoch, hybrid.as_deref(), &mut report);
        }
        let m = &shared.metrics;
        report.records_in = m.records_in.load(Relaxed);
        report.records_out = m.records_out.load(Relaxed);
        report.records_dropped = m.records_dropped.load(Relaxed);
        report.records_failed = m.records_failed.load(Relaxed);
        report.records_columnar = m.records_columnar.load(Relaxed);
        report.bytes_out = m.bytes_out.load(Relaxed);
        report.last_aligned_epoch = m.last_aligned_epoch.load(Relaxed);
        report.failure = shared.failure();
        report
    }
}

/// Gives the restored state to the workers that now own each key group (tier `group /
/// key_groups`, see `super::tiers`) and starts the checkpoint coordinator.
fn start_coordinator(
    c: CheckpointSetup,
    router: &Router,
    states: &mut [WorkerState],
    shared: &StreamShared,
) -> crate::checkpoint::coordinator::CoordinatorHandle {
    shared.restore_ms.store(c.recovered.restore_ms, Relaxed);
    let carry = if c.carry_restored { c.recovered.entries.clone() } else { Vec::new() };
    let workers = states.len();
    for e in c.recovered.entries {
        let restored = match states.get_mut(router.slot_of(e.group)) {
            Some(st) => st.restore(e),
            None => Err(format!("key group {} belongs to no worker tier of this stream (its routing changed)", e.group)),
        };
        if let Err(msg) = restored {
            shared.fail(format!("stream {}: restoring state: {msg}", shared.name));
        }
    }
    crate::checkpoint::coordinator::Coordinator::spawn(
        c.store,
        c.settings,
        c.recovered.generation,
        c.recovered.last_slot,
        workers,
        c.recovered.manifest.as_ref(),
        c.metrics,
        c.hybrid,
        carry,
    )
}

/// Waits for the workers (summing the state they hold at the end) and the output thread.
fn join_threads(
    workers: Vec<std::thread::JoinHandle<Option<Box<WorkerState>>>>,
    out_thread: std::thread::JoinHandle<()>,
    shared: &StreamShared,
    report: &mut StreamReport,
) {
    for w in workers {
        match w.join() {
            Ok(Some(st)) => {
                report.state_entries += st.entries();
                report.state_bytes += st.bytes();
            }
            Ok(None) => {}
            Err(_) => shared.fail(format!("stream {}: a worker thread panicked", shared.name)),
        }
    }
    if out_thread.join().is_err() {
        shared.fail(format!("stream {}: the output thread panicked", shared.name));
    }
}

/// Ends the coordinator (it finishes or abandons the final checkpoint), records its failure or
/// a final checkpoint not decided, and fills the checkpoint figures of the report.
fn finish_checkpoints(
    c: crate::checkpoint::coordinator::CoordinatorHandle,
    shared: &StreamShared,
    final_epoch: u64,
    hybrid: Option<&crate::state::hybrid::HybridCache>,
    report: &mut StreamReport,
) {
    use std::sync::atomic::Ordering::SeqCst;
    let _ = c.tx.send(crate::checkpoint::coordinator::CkptMsg::Shutdown);
    if c.join.join().is_err() {
        shared.fail(format!("stream {}: the checkpoint coordinator panicked", shared.name));
    }
    if let Some(msg) = c.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        shared.fail(format!("stream {}: {msg}", shared.name));
    }
    report.final_undecided = final_checkpoint_missed(shared, &c.metrics, final_epoch);
    let Some(r) = report.checkpoints.as_mut() else { return };
    if let Some(h) = hybrid {
        r.hybrid_loads = h.loads.load(SeqCst);
        r.hybrid_evictions = h.evictions.load(SeqCst);
    }
    let m = &c.metrics;
    r.current_epoch = m.current_epoch.load(SeqCst);
    r.last_decided = m.last_decided.load(SeqCst);
    r.decided = m.decided.load(SeqCst);
    r.failures = m.failures.load(SeqCst);
    r.last_duration_ms = m.last_duration_ms.load(SeqCst);
    r.last_bytes = m.last_bytes.load(SeqCst);
}

/// A stream that ended without a failure but whose final checkpoint was not decided did not
/// finish its work: what it read after the last decided checkpoint is not committed (the next
/// start replays it). That is a failure of the run, named as such, never a clean exit.
fn final_checkpoint_missed(shared: &StreamShared, m: &crate::checkpoint::coordinator::CheckpointMetrics, final_epoch: u64) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    let decided = m.last_decided.load(SeqCst);
    if shared.failed() || decided >= final_epoch {
        return false;
    }
    let why = match m.last_abandoned.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        Some((e, why)) if e == final_epoch => format!(": {why}"),
        _ => String::new(),
    };
    shared.fail(format!(
        "stream {}: the final checkpoint (epoch {final_epoch}) was not decided{why}; what was read after checkpoint {decided} is not committed, and the next start resumes from there",
        shared.name
    ));
    true
}

/// Injects barriers: periodically when checkpointing (one checkpoint in flight at a time), and
/// once at the end.
pub(super) struct Barriers<'a> {
    interval: Option<Duration>,
    coordinator: Option<&'a crate::checkpoint::coordinator::CoordinatorHandle>,
    next: u64,
    last: Instant,
    shared: &'a StreamShared,
    clock: super::clock::StreamClock,
    /// The stream's watermark, when it has `event_time:`.
    watermarks: Option<super::watermark::Watermarks>,
}

impl Barriers<'_> {
    fn due(&self) -> bool {
        let idle = self.coordinator.is_none_or(|c| c.in_flight.load(Relaxed) == 0);
        self.interval.is_some_and(|iv| self.last.elapsed() >= iv) && idle
    }

    /// Sends barrier `next` to every worker (and tells the coordinator where the input is).
    /// `last`: the stream's final barrier.
    fn inject(&mut self, input: &dyn Input, inboxes: &[Sender<WorkerMsg>], last: bool) {
        let epoch = self.next;
        let clock_ms = self.clock.tick();
        if let Some(c) = self.coordinator {
            c.in_flight.store(epoch, Relaxed);
            let event_time = self.watermarks.as_ref().map(super::watermark::Watermarks::snapshot);
            let _ =
                c.tx.send(crate::checkpoint::coordinator::CkptMsg::Injected { epoch, position: input.position(), ttl_clock_ms: clock_ms, event_time, last });
        }
        // A staged plugin swap takes effect at this barrier on every worker.
        self.shared.pipeline.arm_swaps(epoch);
        for tx in inboxes {
            let _ = tx.send(WorkerMsg::Barrier { epoch, clock_ms });
        }
        self.next += 1;
        self.last = Instant::now();
    }

    /// Waits (at most 60 s) until no checkpoint and no compaction is in flight, so that the final
    /// checkpoint covers everything read and names a compacted chain.
    fn wait_idle(&self, shared: &StreamShared) {
        let Some(c) = self.coordinator else { return };
        let start = Instant::now();
        let busy = || c.in_flight.load(Relaxed) != 0 || c.compacting.load(Relaxed);
        while busy() && start.elapsed() < Duration::from_secs(60) && !shared.failed() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Before each read: a due barrier, and the input told of a decided checkpoint; false when
    /// checkpointing failed for good (the stream is then failed and the input must stop).
    pub(super) fn between_reads(&mut self, input: &mut dyn Input, inboxes: &[Sender<WorkerMsg>], shared: &StreamShared) -> bool {
        if self.due() {
            self.inject(&*input, inboxes, false);
        }
        if let Some(msg) = self.fatal() {
            shared.fail(format!("stream {}: {msg}", shared.name));
            return false;
        }
        if let Some((epoch, position)) = self.take_decided() {
            input.decided(epoch, &position);
        }
        true
    }

    /// The position of a checkpoint decided since the last call.
    fn take_decided(&self) -> Option<(u64, serde_json::Value)> {
        self.coordinator.and_then(|c| c.metrics.decided_position.lock().unwrap_or_else(|p| p.into_inner()).take())
    }

    /// Sends watermark `time_ms` to every worker of tier 0, behind what was sent before it.
    fn send_watermark(&self, inboxes: &[Sender<WorkerMsg>], time_ms: i64) {
        for tx in inboxes {
            let _ = tx.send(WorkerMsg::Watermark { from: 0, epoch: self.next, time_ms });
        }
    }

    /// After a batch: the watermark, if it is due (`super::watermark`).
    fn watermark_after(&mut self, batch: &mut [crate::record::Record]) -> Option<i64> {
        let w = self.watermarks.as_mut()?;
        w.observe(batch);
        w.due()
    }

    fn fatal(&self) -> Option<String> {
        self.coordinator.and_then(|c| c.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Reads the input until EOF, shutdown or failure.
fn input_loop(
    input: &mut dyn Input,
    router: &mut Router,
    inboxes: &[Sender<WorkerMsg>],
    shared: &StreamShared,
    stop: &AtomicBool,
    barriers: &mut Barriers<'_>,
) {
    // The restored watermark first: the workers judge lateness against it from the first record.
    if let Some(w) = barriers.watermarks.as_ref().map(|w| w.sent()).filter(|w| *w > i64::MIN) {
        barriers.send_watermark(inboxes, w);
    }
    while !stop.load(Relaxed) && !shared.stop.load(Relaxed) {
        if !barriers.between_reads(input, inboxes, shared) {
            break;
        }
        match input.next_batch() {
            Ok(Some(mut batch)) => {
                if batch.is_empty() {
                    // Idle: a watermark held back by a partition now idle may be due.
                    if let Some(t) = barriers.watermark_after(&mut []) {
                        barriers.send_watermark(inboxes, t);
                    }
                    continue;
                }
                shared.metrics.records_in.fetch_add(batch.len() as u64, Relaxed);
                shared.metrics.bytes_in.fetch_add(batch.iter().map(|r| r.size() as u64).sum(), Relaxed);
                let watermark = barriers.watermark_after(&mut batch);
                for (w, routed) in router.route(batch).into_iter().enumerate() {
                    if !routed.is_empty() && inboxes[w].send(WorkerMsg::Data(routed)).is_err() {
                        return;
                    }
                }
                if let Some(t) = watermark {
                    barriers.send_watermark(inboxes, t);
                }
            }
            Ok(None) => {
                // A bounded input ended: time ends on both clocks, every timer fires.
                if input.at_end() {
                    barriers.send_watermark(inboxes, super::watermark::END);
                }
                break;
            }
            Err(e) => {
                shared.fail(format!("stream {}: input failed: {e:#}", shared.name));
                break;
            }
        }
    }
}
