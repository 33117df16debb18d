//! Starting a stream's workers: the state of each, the router of each tier, and one thread per
//! worker of every tier, the last tier first so that each tier's exchange can send to the next
//! (`super::exchange`).

use super::exchange::{Alignment, Exchange};
use super::msg::{OutMsg, WorkerMsg};
use super::routing::Router;
use super::shared::StreamShared;
use super::stream::StreamSpec;
use super::worker::Worker;
use crate::processor::ProcessorFactory;
use crate::state::{StateLimits, WorkerState};
use crossbeam_channel::{bounded, Sender};
use std::sync::Arc;

/// The state of each worker: dirty keys tracked when checkpointing, loaded lazily with the
/// hybrid backend.
pub(super) fn worker_states(n: usize, store_names: &[String], ttl_ms: Option<u64>, limits: StateLimits, checkpoints: bool, lazy: bool) -> Vec<WorkerState> {
    (0..n)
        .map(|_| {
            let mut st = WorkerState::new(store_names.to_vec(), ttl_ms, limits);
            st.set_track_dirty(checkpoints);
            if lazy {
                st.set_lazy();
            }
            st
        })
        .collect()
}

/// The router of each tier: tier 0's runs on the input thread, each later one in every worker
/// of the tier before it. A tier whose stages keep no state runs whole batches.
pub(super) fn tier_routers(spec: &StreamSpec, n: usize) -> Vec<Router> {
    let ranges = spec.tiers.ranges(spec.factories.len());
    let tiers = spec.tiers.0.iter().zip(ranges).enumerate();
    tiers
        .map(|(t, (tier, range))| {
            let r = Router::new(spec.key_groups, n, tier.routing.clone()).for_tier(t);
            if super::runs_whole_batches(&spec.config, &spec.factories[range]) {
                r.coalesced()
            } else {
                r
            }
        })
        .collect()
}

/// What every worker of a stream starts with.
pub(super) struct WorkerCtx<'a> {
    pub(super) factories: &'a [Arc<dyn ProcessorFactory>],
    pub(super) shared: &'a Arc<StreamShared>,
    pub(super) out: &'a crossbeam_channel::Sender<OutMsg>,
    pub(super) first_epoch: u64,
    pub(super) ttl_clock: Option<i64>,
    pub(super) ckpt: Option<&'a Sender<crate::checkpoint::coordinator::CkptMsg>>,
    pub(super) hybrid: Option<&'a Arc<crate::state::hybrid::HybridCache>>,
    pub(super) metrics: Option<Arc<crate::checkpoint::coordinator::CheckpointMetrics>>,
    pub(super) cap: usize,
    pub(super) batch_size: usize,
}

pub(super) type WorkerThreads = Vec<std::thread::JoinHandle<Option<Box<WorkerState>>>>;

/// Starts the workers of every tier, the last first so that each tier can send to the next;
/// `states` holds `n` per tier, tier by tier. Returns tier 0's inboxes and every thread.
pub(super) fn spawn_tiers(
    mut states: Vec<WorkerState>,
    c: &WorkerCtx<'_>,
    tiers: &super::Tiers,
    routers: &[Router],
) -> (Vec<Sender<WorkerMsg>>, WorkerThreads) {
    let n = states.len() / routers.len();
    let ranges = tiers.ranges(c.factories.len());
    let (mut next, mut threads): (Option<Vec<Sender<WorkerMsg>>>, WorkerThreads) = (None, Vec::new());
    for t in (0..routers.len()).rev() {
        let tier_states = states.split_off(t * n);
        let mut inboxes = Vec::new();
        for (w, st) in tier_states.into_iter().enumerate() {
            let (tx, rx) = bounded::<WorkerMsg>(c.cap);
            inboxes.push(tx);
            let id = t * n + w;
            let processors = instantiate(&c.factories[ranges[t].clone()], c.shared, id);
            let mut worker = Worker::new(id, processors, Some(Box::new(st)), c.batch_size, c.out.clone(), c.shared.clone(), c.first_epoch);
            worker.ttl_clock = c.ttl_clock;
            worker.ckpt = c.ckpt.cloned();
            worker.hybrid = c.hybrid.cloned();
            worker.checkpoint = c.metrics.clone();
            worker.first_stage = ranges[t].start;
            worker.next = next.as_ref().map(|inboxes| Exchange::new(routers[t + 1].clone(), inboxes.clone()));
            worker.align = (t > 0).then(|| Alignment::new(n));
            worker.tier_index = w;
            worker.owned = routers[t].groups_of(w);
            let name = format!("{}-worker-{id}", c.shared.name);
            threads.push(std::thread::Builder::new().name(name).spawn(move || worker.run(rx)).expect("spawn worker thread"));
        }
        // The next tier's inboxes now live only in this tier's exchanges.
        next = Some(inboxes);
    }
    (next.unwrap_or_default(), threads)
}

/// The processors of worker `w`; none (and the stream failed) when one cannot be instantiated.
fn instantiate(factories: &[Arc<dyn ProcessorFactory>], shared: &Arc<StreamShared>, w: usize) -> Vec<Box<dyn crate::processor::Processor>> {
    let ctx = shared.processor_context(w);
    match factories.iter().map(|f| f.instantiate(&ctx)).collect::<anyhow::Result<Vec<_>>>() {
        Ok(p) => p,
        Err(e) => {
            shared.fail(format!("stream {}: {e:#}", shared.name));
            Vec::new()
        }
    }
}
