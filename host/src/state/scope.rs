//! A scope: reads and staged writes on one key group of a [`WorkerState`].
//!
//! Reads see the scope's own staged writes first, then committed state (expired values are
//! invisible and purged). Writes only touch the [`Staging`] set; limits on key size, value size and
//! quotas are checked here, and a broken quota is remembered in the staging so the caller fails the
//! batch even when the plugin ignores the error.

use super::{Staging, WorkerState};

/// Why a state operation failed; mirrors the WIT `state-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("unknown state store `{0}`")]
    UnknownStore(String),
    #[error("state call outside a batch or checkpoint")]
    NoScope,
    #[error("state key larger than {0} bytes")]
    KeyTooLarge(u64),
    #[error("state value larger than {0} bytes")]
    ValueTooLarge(u64),
    #[error("state quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("value is not an 8-byte counter")]
    NotACounter,
    #[error("state is disabled for this stream")]
    Disabled,
    /// `increment` would leave the i64 range (nothing is written).
    #[error("increment overflows i64: {0} + {1}")]
    Overflow(i64, i64),
}

/// One page of a prefix scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    pub next: Option<Vec<u8>>,
}

/// Borrowed form of a staging key `(store, key)`; hashes exactly like the owned tuple.
#[derive(Hash)]
pub(crate) struct KeyRef<'k>(pub u16, pub &'k [u8]);

impl hashbrown::Equivalent<(u16, Vec<u8>)> for KeyRef<'_> {
    fn equivalent(&self, k: &(u16, Vec<u8>)) -> bool {
        self.0 == k.0 && self.1 == k.1.as_slice()
    }
}

/// Largest page a scan returns.
pub const MAX_SCAN_PAGE: u32 = 1024;

pub struct Scope<'a> {
    state: &'a mut WorkerState,
    staging: &'a mut Staging,
    group: u32,
    now_ms: i64,
}

impl<'a> Scope<'a> {
    pub(super) fn new(state: &'a mut WorkerState, staging: &'a mut Staging, group: u32, now_ms: i64) -> Self {
        Scope { state, staging, group, now_ms }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), StateError> {
        let max = self.state.limits.max_key_bytes;
        if key.len() as u64 > max {
            return Err(StateError::KeyTooLarge(max));
        }
        Ok(())
    }

    /// The current value of `key`: staged, else committed and unexpired.
    pub fn get(&mut self, store: u16, key: &[u8]) -> Result<Option<&[u8]>, StateError> {
        self.check_key(key)?;
        // contains_key then get: returning the first borrow directly trips the borrow checker.
        if self.staging.writes.contains_key(&KeyRef(store, key)) {
            return Ok(self.staging.writes.get(&KeyRef(store, key)).and_then(|v| v.as_deref()));
        }
        self.committed_live(store, key)
    }

    fn committed_live(&mut self, store: u16, key: &[u8]) -> Result<Option<&[u8]>, StateError> {
        if self.state.ttl_ms().is_none() {
            // Nothing expires: one lookup.
            return Ok(self.state.committed(self.group, store, key).map(|e| e.value.as_slice()));
        }
        let expired = match self.state.committed(self.group, store, key) {
            None => return Ok(None),
            Some(e) => self.state.expired(store, e, self.now_ms),
        };
        if expired {
            self.state.purge(self.group, store, key);
            return Ok(None);
        }
        Ok(self.state.committed(self.group, store, key).map(|e| e.value.as_slice()))
    }

    fn stage(&mut self, store: u16, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StateError> {
        self.check_key(&key)?;
        let limits = *self.state.limits();
        let vlen = value.as_ref().map_or(0, Vec::len) as u64;
        if vlen > limits.max_value_bytes {
            return Err(StateError::ValueTooLarge(limits.max_value_bytes));
        }
        let added = key.len() as u64 + vlen;
        if self.staging.bytes + added > limits.max_batch_state_bytes {
            return Err(self.violate(format!("staged writes of one call exceed {} bytes (limits.max_batch_state_bytes)", limits.max_batch_state_bytes)));
        }
        if self.state.bytes() + self.staging.bytes + added > limits.max_state_bytes {
            return Err(self.violate(format!("operator state would exceed {} bytes (limits.max_state_bytes)", limits.max_state_bytes)));
        }
        self.staging.bytes += added;
        self.staging.writes.insert((store, key), value);
        Ok(())
    }

    fn violate(&mut self, msg: String) -> StateError {
        if self.staging.violation.is_none() {
            self.staging.violation = Some(msg.clone());
        }
        StateError::QuotaExceeded(msg)
    }

    pub fn put(&mut self, store: u16, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        self.stage(store, key, Some(value))
    }

    /// Deletes `key`; returns whether it was present.
    pub fn delete(&mut self, store: u16, key: Vec<u8>) -> Result<bool, StateError> {
        let present = self.get(store, &key)?.is_some();
        self.stage(store, key, None)?;
        Ok(present)
    }

    /// Adds `delta` to the 8-byte little-endian counter at `key` and returns the new value.
    pub fn increment(&mut self, store: u16, key: Vec<u8>, delta: i64) -> Result<i64, StateError> {
        let current = match self.get(store, &key)? {
            None => 0,
            Some(v) => i64::from_le_bytes(v.try_into().map_err(|_| StateError::NotACounter)?),
        };
        let next = current.checked_add(delta).ok_or(StateError::Overflow(current, delta))?;
        self.stage(store, key, Some(next.to_le_bytes().to_vec()))?;
        Ok(next)
    }

    /// Up to `limit` live entries whose key starts with `prefix` and sorts after `start_after`.
    pub fn scan_prefix(&mut self, store: u16, prefix: &[u8], start_after: Option<&[u8]>, limit: u32) -> Result<ScanPage, StateError> {
        let limit = limit.clamp(1, MAX_SCAN_PAGE) as usize;
        let after = |k: &[u8]| start_after.is_none_or(|s| k > s);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        if let Some(g) = self.state.group(self.group) {
            if let Some(map) = g.maps.get(store as usize) {
                keys.extend(map.keys().filter(|k| k.starts_with(prefix) && after(k)).cloned());
            }
        }
        keys.extend(self.staging.writes.keys().filter(|(s, k)| *s == store && k.starts_with(prefix) && after(k)).map(|(_, k)| k.clone()));
        keys.sort_unstable();
        keys.dedup();
        let mut page = ScanPage::default();
        for key in keys {
            if page.entries.len() == limit {
                page.next = page.entries.last().map(|(k, _)| k.clone());
                break;
            }
            if let Some(v) = self.get(store, &key)? {
                let v = v.to_vec();
                page.entries.push((key, v));
            }
        }
        Ok(page)
    }
}
