//! Checkpoints: aligned barriers, incremental state files, manifests, gapless decisions, the
//! sinks' two-phase commit, recovery and GC (docs/ARCHITECTURE.md).
//!
//! Invariant: nothing of epoch `e` (finalized output, published records, committed markers)
//! becomes visible before the state files and the manifest of `e` are durable and `e` is decided
//! by a record in its slot `commits/{e}` (see [`decision`]). Recovery trusts only decisions.
//!
//! Object layout under `{operator_id}/`: `data/{e}/g{gen}-{writer}-{seq}.snap` (immutable state
//! files), `manifests/{e}-g{gen}`, `commits/{e}` (the decision slot), `committed/{e}` (every sink
//! commit of `e` done), `generations/{g}`, `latest` (a hint, the only overwritten object).
//! Epochs and generations are zero-padded to 20 digits so listings sort numerically. The
//! generation in data and manifest names keeps a fenced process from ever writing an object a
//! newer one uses.

pub mod commit;
pub mod coordinator;
pub mod decision;
pub mod recovery;
pub mod savepoint;
pub mod sealed;
#[cfg(test)]
mod tests;

#[cfg(test)]
use crate::state::snapshot;
pub use commit::{CommitError, Committer, Committers, SinkCommit};
pub use decision::Decision;
use serde::{Deserialize, Serialize};

// Object keys live in `crate::layout`; these names are kept for the checkpoint code's callers.
pub use crate::layout::{data as data_key, key, manifest as manifest_key, parse_epoch, parse_tail};

pub use crate::state::backend::{block_on, io_runtime};
pub use crate::state::snapshot::StateFile;

/// The manifest format written by this version (sealed JSON, see [`sealed`]).
pub const MANIFEST_VERSION: u32 = 2;

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
    /// How records were routed to key groups (absent in manifests of earlier versions).
    #[serde(default)]
    pub routing: Option<String>,
    /// Input position just after the last record of this epoch.
    pub input_position: serde_json::Value,
    /// The full chain to restore, oldest first (base, then deltas in epoch order).
    pub state_files: Vec<StateFile>,
    /// The sinks' pre-commits to commit once this epoch is decided (carried-over epochs included).
    pub sinks: Vec<SinkCommit>,
    /// The TTL clock (stream time, ms) at this barrier: the clock of the epoch after it.
    pub ttl_clock_ms: i64,
    pub created_ms: i64,
    /// The input's event-time state at this barrier (`engine::watermark`), when the stream has
    /// `event_time:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<serde_json::Value>,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        sealed::seal(self)
    }

    /// Decodes manifest `name` (its key and store), refusing other format versions.
    pub fn decode(bytes: &[u8], name: &str) -> anyhow::Result<Manifest> {
        let m: Manifest = sealed::open(bytes, &format!("manifest {name}"))?;
        if m.version != MANIFEST_VERSION {
            anyhow::bail!("manifest {name} has format version {}, this host reads {MANIFEST_VERSION}", m.version);
        }
        Ok(m)
    }
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
    /// How the stream routes records to key groups (`engine::Routing::describe`): recorded in
    /// each manifest, and a restore under another routing is refused.
    pub routing: String,
    /// Hybrid backend: do not load state at start (groups are read back on first use).
    pub lazy_restore: bool,
    /// State TTL: compaction drops values older than this.
    pub ttl_ms: Option<u64>,
    /// Objects younger than this are never deleted by GC.
    pub gc_grace: std::time::Duration,
    /// Decides epochs instead of the store's slot alone (a transactional Kafka sink); the store
    /// then keeps a copy of each decision, written after it.
    pub decider: Option<std::sync::Arc<dyn ExternalDecider>>,
    /// The last decision the external decider holds, read at start (recovery trusts it over the
    /// store's copies).
    pub external_last: Option<ExternalDecision>,
    /// Phase two of the sinks' commit protocol, by sink name.
    pub committers: Committers,
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
/// durable and every slot before it is this generation's; Ok means decided; Err means not decided
/// and the stream must stop (it restarts from the last decision).
pub trait ExternalDecider: Send + Sync {
    fn decide(&self, d: &ExternalDecision, input_position: &serde_json::Value) -> Result<(), String>;
}

impl std::fmt::Debug for dyn ExternalDecider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalDecider")
    }
}
