//! What a stream hands its processors: [`ProcessorContext`] at instantiation (the stream's name,
//! the worker, and the [`PipelineShared`] of the stream). Processors see no engine types; the
//! engine owns one `PipelineShared` per stream and reads its counters for `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, Weak};

use super::wasm::swap::SwapSlot;

/// One instance's context.
#[derive(Debug, Clone)]
pub struct ProcessorContext {
    /// The stream's name (logs, plugin log fields).
    pub stream: Arc<str>,
    /// The worker the instance belongs to.
    pub worker: usize,
    pub pipeline: Arc<PipelineShared>,
}

/// What the processors of one stream share with each other and with the engine.
#[derive(Debug, Default)]
pub struct PipelineShared {
    /// Plugin calls that trapped, and that were stopped at their CPU deadline.
    pub plugin_traps: AtomicU64,
    pub deadline_kills: AtomicU64,
    /// Live plugin swaps armed, reloads refused, and the longest worker stall of the last swap.
    pub plugin_swaps: AtomicU64,
    pub plugin_swaps_refused: AtomicU64,
    pub plugin_swap_pause_us: AtomicU64,
    /// The live-swap slots of the stream's `wasm` processors (see `wasm::swap`).
    pub swaps: Mutex<Vec<Weak<SwapSlot>>>,
    /// The stream injects periodic barriers (it checkpoints); set before processors are made.
    pub periodic_barriers: AtomicBool,
}

impl PipelineShared {
    /// Arms every staged plugin swap for barrier `epoch` (called just before it is injected).
    pub fn arm_swaps(&self, epoch: u64) {
        for slot in self.slots() {
            slot.arm(epoch);
        }
    }

    /// The swap slot of the `wasm` processor at `index` of the pipeline.
    pub fn swap_slot(&self, index: usize) -> Option<Arc<SwapSlot>> {
        self.slots().into_iter().find(|s| s.index == index)
    }

    /// The live swap slots, in pipeline order of registration.
    pub fn slots(&self) -> Vec<Arc<SwapSlot>> {
        self.swaps.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect()
    }
}
