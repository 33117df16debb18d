//! Processors: what a worker runs on each batch.
//!
//! Contract: a [`Processor`] instance belongs to one worker and is called with batches whose
//! records all belong to one key group. It returns exactly one [`Outcome`] per input record, or a
//! [`BatchError`] when the batch as a whole failed after the processor's own retries; then the
//! error's policy decides between failing the stream and routing the batch to `error_output`.
//! State is passed in as the worker's `WorkerState` (moved, never shared); a processor stages its
//! writes and commits them only when the batch succeeds.
//!
//! A [`ProcessorFactory`] is built once per stream (compilation, validation) and makes one
//! instance per worker.

pub mod codec_stage;
mod context;
pub mod native_counter;
pub mod registry;
pub mod sql;
pub mod wasm;
pub mod window;

use crate::config::{ProcessorConfig, StreamConfig};
use crate::record::{Outcome, Record};
use crate::state::WorkerState;
use std::sync::Arc;

pub use context::{PipelineShared, ProcessorContext};
pub use wasm::FailurePolicy;

/// Context of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchCtx {
    pub batch_id: u64,
    pub key_group: u32,
    pub partition: u32,
    /// The epoch the batch belongs to (next checkpoint number).
    pub epoch: u64,
    /// TTL clock, milliseconds.
    pub now_ms: i64,
}

/// A batch failed for good (after retries).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    pub message: String,
    pub policy: FailurePolicy,
}

/// The worker's state, lent to a processor for one call.
pub type StateSlot = Option<Box<WorkerState>>;

pub trait Processor: Send {
    /// For logs and error records.
    fn name(&self) -> &str;

    /// Processes `records` (one key group) and returns one outcome per record.
    fn process(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> Result<Vec<Outcome>, BatchError>;

    /// The columnar lane (its factory's [`ProcessorFactory::takes_lines`]): processes a whole
    /// block of JSON lines and returns the result rows as Arrow batches, every row standing for
    /// a record the stage emits (no key; the block's timestamp and partition, its last line's
    /// offset). None: the block must take the record path instead (`lines.to_records()` through
    /// [`Processor::process`]), which gives it the record path's exact outcomes, per-record
    /// errors included; so this may decline any block it cannot run as one (a line that is not
    /// a JSON object, a decode or query error).
    fn process_lines(&mut self, _ctx: &BatchCtx, _lines: &crate::lines::Lines) -> Option<Vec<datafusion::arrow::array::RecordBatch>> {
        None
    }

    /// Called at a checkpoint barrier for each key group processed since the last one.
    fn on_checkpoint(&mut self, epoch: u64, key_group: u32, now_ms: i64, state: &mut StateSlot) -> Result<(), BatchError>;

    /// Called once per barrier after every `on_checkpoint` of that barrier, before the barrier is
    /// forwarded: the point where a live plugin swap takes effect.
    fn at_barrier(&mut self, _epoch: u64) {}

    /// Whether it keeps timers: then the worker calls [`Processor::on_restore`] once with all
    /// of its restored state before the first record, [`Processor::fire`] with
    /// [`Clock::Event`] as the watermark rises and with [`Clock::Processing`] once the wall
    /// clock reaches [`Processor::next_processing_timer`].
    fn has_timers(&self) -> bool {
        false
    }

    /// The restored state of the worker (every key group it owns is resident): rebuild the
    /// timer index from it.
    fn on_restore(&mut self, _state: &WorkerState) {}

    /// The key groups with timers due at `clock` (the worker makes them resident before calling
    /// [`Processor::fire`]).
    fn due_groups(&self, _clock: Clock) -> Vec<u32> {
        Vec::new()
    }

    /// The earliest processing-time timer (wall clock, ms since the Unix epoch), if any.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }

    /// `clock` reached a time (for [`Clock::Event`]: everything before it in the stream was
    /// processed): fire the timers due, returning per key group what they produced (emitted
    /// records go through the stages after this one). Called for every watermark rise, due timers
    /// or not.
    fn fire(&mut self, _clock: Clock, _epoch: u64, _now_ms: i64, _state: &mut StateSlot) -> Result<Vec<Fired>, BatchError> {
        Ok(Vec::new())
    }
}

/// A clock timers follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The stream's watermark rose to this time.
    Event(i64),
    /// The wall clock reached this time (ms since the Unix epoch).
    Processing(i64),
}

/// What the timers of one key group produced: per fired timer (or per group of them), the record
/// standing for it, which error records cite, and its outcome.
#[derive(Debug, Default)]
pub struct Fired {
    pub group: u32,
    pub inputs: Vec<Record>,
    pub outcomes: Vec<Outcome>,
}

/// What a processor learns about its stream when it is built.
#[derive(Debug, Clone, Default)]
pub struct StreamEnv {
    /// The stream's state stores ("default" first).
    pub store_names: Vec<String>,
    /// `state.enabled` of the stream.
    pub state_enabled: bool,
    /// The stream's named outputs in order: `Outcome::Split` side records index into it.
    pub outputs: Vec<String>,
    /// The stream's `event_time:` (time-based stages need it).
    pub event_time: Option<crate::config::EventTimeConfig>,
}

impl StreamEnv {
    pub fn of(stream: &StreamConfig) -> Self {
        StreamEnv {
            store_names: stream.store_names(),
            state_enabled: stream.state.enabled,
            outputs: stream.outputs.iter().map(|(n, _)| n.clone()).collect(),
            event_time: stream.event_time.clone(),
        }
    }
}

/// The key a stage's state is grouped by, which records must be routed by (see
/// `engine::routing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyNeed {
    /// Stateless, or state not grouped by a field of the record.
    None,
    /// These top-level fields of the JSON value, in order.
    Fields(Vec<String>),
    /// The record key as the input read it (a `wasm` processor's `key_by: record_key`).
    RecordKey,
    /// Grouped by something the host cannot compute (said why, naming it).
    Unknown(String),
}

/// Builds per-worker instances of one configured processor.
pub trait ProcessorFactory: Send + Sync {
    fn name(&self) -> &str;
    /// The key this stage's state needs its records routed by.
    fn key(&self) -> KeyNeed {
        KeyNeed::None
    }
    /// Whether its instances read or write keyed state (default: they may). When no stage of a
    /// stream does, a worker runs all its records as one batch instead of one per key group.
    fn keeps_state(&self) -> bool {
        true
    }
    /// Whether its instances run whole blocks of JSON lines (`Processor::process_lines`): a
    /// stream whose last stage does, on an input that reads blocks, runs the columnar lane.
    fn takes_lines(&self) -> bool {
        false
    }
    /// Whether a block of JSON lines may skip it on the way to a stage that takes lines: the
    /// later stage gives the same results from the lines themselves (`json_to_arrow` with no
    /// schema before `sql`: the query decodes the JSON just as the codec would).
    fn passes_lines(&self) -> bool {
        false
    }
    /// One instance for `ctx.worker`; `ctx.pipeline` receives its counters (plugin traps,
    /// deadline kills).
    fn instantiate(&self, ctx: &ProcessorContext) -> anyhow::Result<Box<dyn Processor>>;
}

/// Compiles and validates every processor of a stream's pipeline.
/// `store_names` are the stream's state stores ("default" first).
pub fn build_factories(stream: &StreamConfig, store_names: &[String]) -> anyhow::Result<Vec<Arc<dyn ProcessorFactory>>> {
    let env = StreamEnv { store_names: store_names.to_vec(), ..StreamEnv::of(stream) };
    stream.pipeline.processors.iter().enumerate().map(|(i, p)| build_factory(stream, i, p, &env)).collect()
}

/// Compiles and validates processor `i` (`p`) of `stream`, whose environment is `env`.
pub fn build_factory(stream: &StreamConfig, i: usize, p: &ProcessorConfig, env: &StreamEnv) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
    let label = stream.stage_label(i);
    registry::build(p, &registry::BuildCx { label: &label, index: i, env })
}
