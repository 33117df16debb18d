//! A per-call cache over one state store, for the "one `get-many`, compute, one `put-many`"
//! pattern that keeps host calls per batch constant.
//!
//! Contract:
//! - [`StateCache::load`] dedupes the keys (first-seen order) and makes ONE `get-many` call (none
//!   when there are no keys). Reads of keys that were not loaded return `None`, as if absent.
//! - Writes stay in guest memory until [`StateCache::flush`], which makes ONE `put-many` of every
//!   written key's latest value (in first-write order), or no call when nothing was written.
//! - Counters use the 8-byte little-endian encoding of `increment` ([`crate::codec`]) and wrap on
//!   overflow like it; a stored value of another length is reported as `not-a-counter`.
//! - Like the host's staged writes, the cache is scoped to one `process-batch`/`on-checkpoint`
//!   call: build a new one per call (state is per key group, and the key group changes).

use crate::codec::{decode_i64, encode_i64};
use crate::{Error, StateError, Store};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style hasher: fast on short keys, deterministic, no `wasi:random`. The cache lives for
/// one batch, so hash flooding costs at most that batch's time.
#[derive(Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Values of a set of keys of one store, plus the writes made to them. See the module docs.
#[derive(Default)]
pub struct StateCache {
    /// Key -> slot index.
    index: Map<Vec<u8>, usize>,
    keys: Vec<Vec<u8>>,
    values: Vec<Option<Vec<u8>>>,
    dirty: Vec<bool>,
    /// Slots written, in first-write order.
    write_order: Vec<usize>,
}

impl StateCache {
    /// Loads `keys` (duplicates allowed) from `store` with one `get-many`.
    pub fn load<'k>(store: &Store, keys: impl IntoIterator<Item = &'k [u8]>) -> Result<Self, Error> {
        let distinct = distinct_keys(keys);
        if distinct.is_empty() {
            return Ok(Self::default());
        }
        let values = store.get_many(&distinct)?;
        Self::from_loaded(distinct, values)
    }

    /// Builds a cache from keys and the values `get-many` returned for them (pure; for tests).
    pub fn from_loaded(keys: Vec<Vec<u8>>, values: Vec<Option<Vec<u8>>>) -> Result<Self, Error> {
        if keys.len() != values.len() {
            return Err(Error::internal("bad-get-many", format!("get-many returned {} values for {} keys", values.len(), keys.len())));
        }
        let mut index = Map::default();
        index.reserve(keys.len());
        for (i, k) in keys.iter().enumerate() {
            index.insert(k.clone(), i);
        }
        let dirty = vec![false; keys.len()];
        Ok(StateCache { index, keys, values, dirty, write_order: Vec::new() })
    }

    fn slot(&mut self, key: &[u8]) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.keys.len();
        self.index.insert(key.to_vec(), i);
        self.keys.push(key.to_vec());
        self.values.push(None);
        self.dirty.push(false);
        i
    }

    fn mark(&mut self, i: usize) {
        if !self.dirty[i] {
            self.dirty[i] = true;
            self.write_order.push(i);
        }
    }

    /// The current value of `key` (after this cache's writes); `None` when absent or not loaded.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.index.get(key).and_then(|&i| self.values[i].as_deref())
    }

    /// Sets `key` to `value` in the cache; written by [`flush`](Self::flush).
    pub fn put(&mut self, key: &[u8], value: Vec<u8>) {
        let i = self.slot(key);
        self.values[i] = Some(value);
        self.mark(i);
    }

    /// The i64 at `key` (absent = `None`), or `not-a-counter` if it is not 8 bytes.
    pub fn get_i64(&self, key: &[u8]) -> Result<Option<i64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(bytes) => decode_i64(bytes).map(Some).ok_or_else(|| StateError::NotACounter.into()),
        }
    }

    /// Stores `v` at `key` as 8 bytes little-endian.
    pub fn put_i64(&mut self, key: &[u8], v: i64) {
        self.put(key, encode_i64(v).to_vec())
    }

    /// `increment` in the cache: adds `delta` (absent = 0, wrapping) and returns the new value.
    /// Updates the stored bytes in place: no allocation per call once a key is cached.
    pub fn increment(&mut self, key: &[u8], delta: i64) -> Result<i64, Error> {
        let i = self.slot(key);
        let v = match &mut self.values[i] {
            Some(bytes) => {
                let v = decode_i64(bytes).ok_or(StateError::NotACounter)?.wrapping_add(delta);
                bytes.copy_from_slice(&encode_i64(v));
                v
            }
            slot @ None => {
                *slot = Some(encode_i64(delta).to_vec());
                delta
            }
        };
        self.mark(i);
        Ok(v)
    }

    /// The written entries (latest value per key, first-write order), leaving the cache clean.
    pub fn take_writes(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let order = std::mem::take(&mut self.write_order);
        let mut out = Vec::with_capacity(order.len());
        for i in order {
            self.dirty[i] = false;
            let v = self.values[i].clone().expect("written key has a value");
            out.push((self.keys[i].clone(), v));
        }
        out
    }

    /// Writes every change to `store` with one `put-many` (no call when there is none).
    pub fn flush(&mut self, store: &Store) -> Result<(), Error> {
        let writes = self.take_writes();
        if !writes.is_empty() {
            store.put_many(&writes)?;
        }
        Ok(())
    }
}

/// The distinct keys of `keys`, in first-seen order.
pub fn distinct_keys<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Vec<Vec<u8>> {
    let mut seen: Map<&[u8], ()> = Map::default();
    let mut out = Vec::new();
    for k in keys {
        if seen.insert(k, ()).is_none() {
            out.push(k.to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn distinct_keeps_first_seen_order() {
        let keys: [&[u8]; 5] = [b"b", b"a", b"b", b"c", b"a"];
        assert_eq!(distinct_keys(keys), vec![b"b".to_vec(), b"a".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn counting_and_writes() {
        let mut c =
            StateCache::from_loaded(vec![b"a".to_vec(), b"b".to_vec(), b"bad".to_vec()], vec![Some(encode_i64(41).to_vec()), None, Some(b"xyz".to_vec())])
                .unwrap();
        assert_eq!(c.increment(b"b", 1).unwrap(), 1);
        assert_eq!(c.increment(b"a", 1).unwrap(), 42);
        assert_eq!(c.increment(b"b", 1).unwrap(), 2);
        let e = c.increment(b"bad", 1).unwrap_err();
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::State, "not-a-counter"));
        c.put(b"new", b"v".to_vec());
        assert_eq!(c.take_writes(), vec![(b"b".to_vec(), encode_i64(2).to_vec()), (b"a".to_vec(), encode_i64(42).to_vec()), (b"new".to_vec(), b"v".to_vec()),]);
        assert!(c.take_writes().is_empty());
        assert_eq!(c.get_i64(b"a").unwrap(), Some(42));
    }

    #[test]
    fn wraps_like_increment() {
        let mut c = StateCache::from_loaded(vec![b"m".to_vec()], vec![Some(encode_i64(i64::MAX).to_vec())]).unwrap();
        assert_eq!(c.increment(b"m", 1).unwrap(), i64::MIN);
    }

    #[test]
    fn mismatched_get_many_is_internal() {
        assert!(StateCache::from_loaded(vec![b"a".to_vec()], vec![]).is_err());
    }
}
