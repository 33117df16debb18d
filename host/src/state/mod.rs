//! Keyed state owned by one worker.
//!
//! Contract:
//! - State belongs to a stream's operator and is split into named stores (`default` plus the
//!   stream's `custom_keys`) and, orthogonally, into key groups. A worker owns a set of key groups
//!   and is the only thread that touches their state: no locks on the hot path.
//! - Every read and write happens through a [`Scope`]: one key group, one staged write set. Writes
//!   are visible to later reads of the same scope, applied by [`WorkerState::commit`] and dropped by
//!   [`Staging::discard`]. That is what makes a retried batch exact.
//! - Values carry their last write time; with a state timeout, expired values are never returned
//!   and are purged lazily when touched. Stores whose names start with `$` are the host's own
//!   (`TIMER_STORE`): plugins cannot open them and their entries never expire.
//! - When dirty tracking is on, every committed write or delete records its key in the group's
//!   dirty set, so a checkpoint can take exactly the changed keys.

pub mod backend;
pub mod hybrid;
mod scope;
pub mod snapshot;
#[cfg(test)]
mod tests;

use hashbrown::{HashMap, HashSet};

pub use scope::{ScanPage, Scope, StateError};

/// The host's store of plugin timers (`processor::wasm::timers`), last in every stream's stores.
pub const TIMER_STORE: &str = "$timers";

/// Whether a store is the host's own (its name starts with `$`).
pub fn internal_store(name: &str) -> bool {
    name.starts_with('$')
}

/// Limits on keys, values and quotas, from the processor's YAML `limits`.
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    pub max_key_bytes: u64,
    pub max_value_bytes: u64,
    /// Staged bytes per scope (keys + values).
    pub max_batch_state_bytes: u64,
    /// Total bytes of this worker's state.
    pub max_state_bytes: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits { max_key_bytes: 4096, max_value_bytes: 1 << 20, max_batch_state_bytes: 64 << 20, max_state_bytes: 1 << 30 }
    }
}

/// A stored value as text, by its store's declared value format (`describe()`'s state-formats):
/// `i64` the 8-byte little-endian counter, `utf8` / `json` the text; anything else, or bytes that
/// do not fit the format, as hex.
pub fn show_value(format: &str, v: &[u8]) -> String {
    let hex = || v.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match format {
        "i64" => <[u8; 8]>::try_from(v).map_or_else(|_| hex(), |b| i64::from_le_bytes(b).to_string()),
        "utf8" | "json" => std::str::from_utf8(v).map_or_else(|_| hex(), str::to_string),
        _ => hex(),
    }
}

/// One committed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    /// Time of the last write, milliseconds on the TTL clock.
    pub written_ms: i64,
}

/// The state of one key group: one map per store, and the keys changed since the last checkpoint.
#[derive(Debug, Default)]
pub struct GroupState {
    pub(crate) maps: Vec<HashMap<Vec<u8>, Entry>>,
    pub(crate) dirty: HashSet<(u16, Vec<u8>)>,
}

/// All state of one worker's key groups.
#[derive(Debug)]
pub struct WorkerState {
    store_names: Vec<String>,
    groups: HashMap<u32, GroupState>,
    ttl_ms: Option<u64>,
    track_dirty: bool,
    limits: StateLimits,
    bytes: u64,
    entries: u64,
    /// With the hybrid backend: the groups held in RAM (None = every group is resident).
    resident: Option<HashSet<u32>>,
}

/// Writes staged by one scope: `None` is a delete.
#[derive(Debug, Default)]
pub struct Staging {
    pub(crate) writes: HashMap<(u16, Vec<u8>), Option<Vec<u8>>>,
    pub(crate) bytes: u64,
    /// Set when a write broke a quota; the caller must fail the batch even if the plugin ignored
    /// the error it was given.
    pub(crate) violation: Option<String>,
}

impl Staging {
    /// Drops every staged write.
    pub fn discard(&mut self) {
        self.writes.clear();
        self.bytes = 0;
        self.violation = None;
    }

    /// The quota violation of this scope, if any.
    pub fn violation(&self) -> Option<&str> {
        self.violation.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

impl WorkerState {
    /// `store_names[0]` must be "default"; the index of a name is its store id.
    pub fn new(store_names: Vec<String>, ttl_ms: Option<u64>, limits: StateLimits) -> Self {
        debug_assert_eq!(store_names.first().map(String::as_str), Some("default"));
        WorkerState { store_names, groups: HashMap::new(), ttl_ms, track_dirty: false, limits, bytes: 0, entries: 0, resident: None }
    }

    /// Hybrid backend: no group is resident until loaded.
    pub fn set_lazy(&mut self) {
        self.resident = Some(HashSet::new());
    }

    pub fn is_resident(&self, group: u32) -> bool {
        self.resident.as_ref().is_none_or(|r| r.contains(&group))
    }

    pub fn mark_resident(&mut self, group: u32) {
        if let Some(r) = self.resident.as_mut() {
            r.insert(group);
        }
    }

    /// Groups held in RAM (hybrid only).
    pub fn resident_groups(&self) -> Vec<u32> {
        self.resident.as_ref().map(|r| r.iter().copied().collect()).unwrap_or_default()
    }

    /// Drops a clean group from RAM (hybrid); returns the bytes freed.
    pub fn evict(&mut self, group: u32) -> u64 {
        let Some(g) = self.groups.remove(&group) else {
            if let Some(r) = self.resident.as_mut() {
                r.remove(&group);
            }
            return 0;
        };
        debug_assert!(g.dirty.is_empty(), "only clean groups are evicted");
        let (mut bytes, mut entries) = (0u64, 0u64);
        for m in &g.maps {
            for (k, e) in m {
                bytes += (k.len() + e.value.len()) as u64;
                entries += 1;
            }
        }
        self.bytes = self.bytes.saturating_sub(bytes);
        self.entries = self.entries.saturating_sub(entries);
        if let Some(r) = self.resident.as_mut() {
            r.remove(&group);
        }
        bytes
    }

    /// Record changed keys for incremental checkpoints.
    pub fn set_track_dirty(&mut self, on: bool) {
        self.track_dirty = on;
    }

    /// The id of a store name, if the stream declared it.
    pub fn store_id(&self, name: &str) -> Option<u16> {
        self.store_names.iter().position(|n| n == name).map(|i| i as u16)
    }

    pub fn store_names(&self) -> &[String] {
        &self.store_names
    }

    pub fn limits(&self) -> &StateLimits {
        &self.limits
    }

    /// Opens a scope on `group` at TTL-clock time `now_ms`.
    pub fn scope<'a>(&'a mut self, staging: &'a mut Staging, group: u32, now_ms: i64) -> Scope<'a> {
        Scope::new(self, staging, group, now_ms)
    }

    /// Applies a scope's staged writes to `group`.
    pub fn commit(&mut self, staging: &mut Staging, group: u32, now_ms: i64) {
        if staging.writes.is_empty() {
            staging.discard();
            return;
        }
        let nstores = self.store_names.len();
        let track = self.track_dirty;
        let g = self.groups.entry(group).or_default();
        if g.maps.len() < nstores {
            g.maps.resize_with(nstores, HashMap::new);
        }
        let (mut bytes, mut entries) = (self.bytes as i64, self.entries as i64);
        for ((store, key), value) in staging.writes.drain() {
            let map = &mut g.maps[store as usize];
            let klen = key.len() as i64;
            match value {
                Some(value) => {
                    let vlen = value.len() as i64;
                    // Hot keys are already dirty: look before cloning the key.
                    if track && !g.dirty.contains(&scope::KeyRef(store, &key)) {
                        g.dirty.insert((store, key.clone()));
                    }
                    match map.insert(key, Entry { value, written_ms: now_ms }) {
                        Some(old) => bytes += vlen - old.value.len() as i64,
                        None => {
                            bytes += klen + vlen;
                            entries += 1;
                        }
                    }
                }
                None => {
                    if let Some(old) = map.remove(&key) {
                        bytes -= klen + old.value.len() as i64;
                        entries -= 1;
                    }
                    if track {
                        g.dirty.insert((store, key));
                    }
                }
            }
        }
        self.bytes = bytes.max(0) as u64;
        self.entries = entries.max(0) as u64;
        staging.discard();
    }

    /// The state timeout, when values expire.
    pub(crate) fn ttl_ms(&self) -> Option<u64> {
        self.ttl_ms
    }

    /// Whether `entry` is expired at `now_ms`.
    pub(crate) fn expired(&self, store: u16, entry: &Entry, now_ms: i64) -> bool {
        if self.store_names.get(store as usize).is_some_and(|n| internal_store(n)) {
            return false;
        }
        match self.ttl_ms {
            Some(ttl) => now_ms.saturating_sub(entry.written_ms) >= ttl as i64,
            None => false,
        }
    }

    /// Removes an expired entry found by a read (lazy purge).
    pub(crate) fn purge(&mut self, group: u32, store: u16, key: &[u8]) {
        if let Some(g) = self.groups.get_mut(&group) {
            if let Some(old) = g.maps.get_mut(store as usize).and_then(|m| m.remove(key)) {
                self.bytes = self.bytes.saturating_sub((key.len() + old.value.len()) as u64);
                self.entries = self.entries.saturating_sub(1);
                if self.track_dirty {
                    g.dirty.insert((store, key.to_vec()));
                }
            }
        }
    }

    pub(crate) fn committed(&self, group: u32, store: u16, key: &[u8]) -> Option<&Entry> {
        self.groups.get(&group)?.maps.get(store as usize)?.get(key)
    }

    pub(crate) fn group(&self, group: u32) -> Option<&GroupState> {
        self.groups.get(&group)
    }

    /// Number of live entries (expired but not yet purged ones included).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes of keys and values held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Key groups that hold state.
    pub fn groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.groups.keys().copied()
    }

    /// Takes the set of keys changed in `group` since the last call (for a delta snapshot).
    pub fn take_dirty(&mut self, group: u32) -> HashSet<(u16, Vec<u8>)> {
        self.groups.get_mut(&group).map(|g| std::mem::take(&mut g.dirty)).unwrap_or_default()
    }

    /// Reads a committed value, ignoring TTL (for snapshots, tests and inspection).
    pub fn peek(&self, group: u32, store: &str, key: &[u8]) -> Option<&Entry> {
        self.committed(group, self.store_id(store)?, key)
    }

    /// Iterates every committed entry of `group` as (store id, key, entry).
    pub fn iter_group(&self, group: u32) -> impl Iterator<Item = (u16, &[u8], &Entry)> + '_ {
        self.groups.get(&group).into_iter().flat_map(|g| g.maps.iter().enumerate().flat_map(|(s, m)| m.iter().map(move |(k, e)| (s as u16, k.as_slice(), e))))
    }
}
