//! Checkpoints: aligned barriers, incremental state files, manifests, one decision per epoch,
//! recovery and GC (DESIGN.md sections 5-7).
//!
//! Invariant: nothing of epoch `e` (finalized output files, committed markers) becomes visible
//! before the state files and the manifest of `e` are durable, and each epoch has exactly one
//! decision record (`commits/{e}`, create-only). Recovery trusts only decisions.
//!
//! Object layout under `{operator_id}/`: `data/{e}/w{worker}.snap` (immutable state files),
//! `manifests/{e}`, `commits/{e}` (the decision), `committed/{e}` (post-commit marker),
//! `generations/{g}`, `latest` (a hint, the only overwritten object). Epochs and generations are
//! zero-padded to 20 digits so listings sort numerically.

pub mod coordinator;
pub mod recovery;
pub mod savepoint;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
#[cfg(test)]
use crate::state::snapshot;

/// Key of an object of `scope` (the operator id).
pub fn key(scope: &str, kind: &str, n: u64) -> String {
    format!("{scope}/{kind}/{n:020}")
}

/// Key of a state file of `epoch`; `name` tells who wrote it (`w3`, `carry`).
pub fn data_key(scope: &str, epoch: u64, name: &str, seq: u32) -> String {
    format!("{scope}/data/{epoch:020}/{name}-{seq}.snap")
}

/// The number at the end of a listed key (`.../00000000000000000042` -> 42).
pub fn parse_tail(k: &str) -> Option<u64> {
    k.rsplit('/').next()?.parse().ok()
}

/// One state file referenced by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub key: String,
    pub epoch: u64,
    pub size: u64,
    pub checksum: u64,
    pub entries: u64,
}

/// One output file prepared for an epoch: fsynced at `temp` with `len` bytes, renamed to `final`
/// by the post-commit step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkFile {
    pub temp: String,
    #[serde(rename = "final")]
    pub final_path: String,
    pub len: u64,
}

/// Everything needed to restore epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub operator_id: String,
    pub stream: String,
    pub epoch: u64,
    /// The previous decided epoch this one builds on.
    pub parent: Option<u64>,
    pub generation: u64,
    pub key_groups: u32,
    /// Input position just after the last record of this epoch.
    pub input_position: serde_json::Value,
    /// The full chain to restore, oldest first (base, then deltas in epoch order).
    pub state_files: Vec<StateFile>,
    /// Output files to finalize when this epoch is decided (including carried-over epochs).
    pub sink_files: Vec<SinkFile>,
    /// The TTL clock (wall clock, ms) at the barrier.
    pub ttl_clock_ms: i64,
    pub created_ms: i64,
}

/// The content of `commits/{e}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// Epoch decided: restore from this manifest.
    Commit { epoch: u64, manifest: String, checksum: u64, generation: u64 },
    /// Epoch burned by a newer generation at start so an older one can never decide it.
    Fence { epoch: u64, generation: u64 },
}

/// Checkpoint settings of one stream.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    pub scope: String,
    pub stream: String,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    /// Consecutive failed checkpoints tolerated before the stream stops.
    pub tolerated_failures: u32,
    pub retained: usize,
    pub exactly_once: bool,
    pub key_groups: u32,
    /// Hybrid backend: do not load state at start (groups are read back on first use).
    pub lazy_restore: bool,
    /// State TTL: compaction drops values older than this.
    pub ttl_ms: Option<u64>,
    /// Objects younger than this are never deleted by GC.
    pub gc_grace: std::time::Duration,
    /// Decides epochs instead of `commits/{e}` (a transactional Kafka sink); the store then keeps
    /// a copy of each decision, written after it.
    pub decider: Option<std::sync::Arc<dyn ExternalDecider>>,
    /// The last decision the external decider holds, read at start (recovery trusts it over the
    /// store's copies).
    pub external_last: Option<ExternalDecision>,
    /// Runs after each decision (the outbox publishes the decided epochs' records).
    pub post_commit: Option<std::sync::Arc<dyn PostCommit>>,
}

/// A post-commit action: told after epoch `epoch` was decided (every prepared epoch up to it is
/// covered by the decision). Failures are logged; the next decision or recovery repeats the work,
/// so the action must be idempotent.
pub trait PostCommit: Send + Sync {
    fn decided(&self, epoch: u64) -> Result<(), String>;
}

impl std::fmt::Debug for dyn PostCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostCommit")
    }
}

/// An epoch decided outside the state store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalDecision {
    pub epoch: u64,
    pub manifest: String,
    pub checksum: u64,
    pub generation: u64,
}

/// Decides epochs outside the state store. `decide` is called once the manifest of `epoch` is
/// durable; Ok means decided; Err means not decided and the stream must stop (it restarts from the
/// last decision).
pub trait ExternalDecider: Send + Sync {
    fn decide(&self, d: &ExternalDecision, input_position: &serde_json::Value) -> Result<(), String>;
}

impl std::fmt::Debug for dyn ExternalDecider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalDecider")
    }
}

/// The process-wide runtime for checkpoint I/O (object stores are async; the data path is not).
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("checkpoint-io")
            .enable_all()
            .build()
            .expect("checkpoint I/O runtime")
    })
}

/// Runs `fut` to completion from synchronous code (never from inside an async task).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    io_runtime().block_on(fut)
}
