//! A per-call cache over one state store, for the "one read of every key, compute, one write"
//! pattern that keeps host calls per batch constant.
//!
//! Contract:
//! - [`StateCache::load`] dedupes the keys (first-seen order) and makes ONE `get-column` call
//!   (none when there are no keys). Reads of keys that were not loaded return `None`, as if absent.
//! - Writes stay in guest memory until [`StateCache::flush`], which makes ONE `put-column` of every
//!   written key's latest value (in first-write order), or no call when nothing was written.
//! - Counters use the 8-byte little-endian encoding of `increment` ([`crate::codec`]) and wrap on
//!   overflow like it; a stored value of another length is reported as `not-a-counter`.
//! - Like the host's staged writes, the cache is scoped to one `process-batch`/`on-checkpoint`
//!   call: build a new one per call (state is per key group, and the key group changes).

use crate::batch::Column;
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

fn hash(key: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(key);
    h.finish() | 1 // never 0: 0 marks an empty table slot
}

/// Values of a set of keys of one store, plus the writes made to them. See the module docs.
///
/// Nothing is allocated per key: keys live back to back in one buffer (which is also the
/// `get-column` request), values in another (initially the `get-column` reply itself), found
/// through an open-addressing table of slot numbers.
#[derive(Default)]
pub struct StateCache {
    /// Slot keys, back to back; slot `i` ends at `key_ends[i]`.
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    hashes: Vec<u64>,
    /// Values: slot `i` is `vals[span.0 .. span.0 + span.1]`, None when absent.
    vals: Vec<u8>,
    spans: Vec<Option<(u32, u32)>>,
    /// Open addressing: slot + 1, 0 = empty; a power of two at least twice the slots.
    table: Vec<u32>,
    dirty: Vec<bool>,
    /// Slots written, in first-write order.
    write_order: Vec<u32>,
}

impl StateCache {
    /// Loads `keys` (duplicates allowed) from `store` with one `get-column`.
    pub fn load<'k>(store: &Store, keys: impl IntoIterator<Item = &'k [u8]>) -> Result<Self, Error> {
        let mut cache = StateCache::default();
        keys.into_iter().for_each(|k| {
            cache.slot(k);
        });
        if cache.key_ends.is_empty() {
            return Ok(cache);
        }
        let request = crate::bindings::arkflow::plugin::types::Column {
            data: std::mem::take(&mut cache.keys),
            ends: std::mem::take(&mut cache.key_ends),
            valid: Vec::new(),
        };
        let got = store.get_column(&request);
        (cache.keys, cache.key_ends) = (request.data, request.ends);
        let got = got?;
        let n = cache.key_ends.len();
        if got.ends.len() != n || got.ends.last().is_some_and(|&e| e as usize > got.data.len()) {
            return Err(Error::internal("bad-get-column", format!("get-column returned {} values for {n} keys", got.ends.len())));
        }
        for i in 0..n {
            let start = if i == 0 { 0 } else { got.ends[i - 1] };
            cache.spans[i] = crate::batch::item(&got, i).map(|v| (start, v.len() as u32));
        }
        cache.vals = got.data;
        Ok(cache)
    }

    /// Builds a cache from keys and the values a read returned for them (pure; for tests).
    pub fn from_loaded(keys: Vec<Vec<u8>>, values: Vec<Option<Vec<u8>>>) -> Result<Self, Error> {
        if keys.len() != values.len() {
            return Err(Error::internal("bad-get-column", format!("get-column returned {} values for {} keys", values.len(), keys.len())));
        }
        let mut cache = StateCache::default();
        for (k, v) in keys.iter().zip(values) {
            let i = cache.slot(k);
            cache.spans[i] = v.map(|v| cache.append(&v));
        }
        Ok(cache)
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] as usize };
        &self.keys[start..self.key_ends[i] as usize]
    }

    /// The slot of `key`, if cached.
    fn find(&self, key: &[u8], h: u64) -> Result<usize, usize> {
        if self.table.is_empty() {
            return Err(0);
        }
        let mask = self.table.len() - 1;
        let mut at = h as usize & mask;
        loop {
            match self.table[at] {
                0 => return Err(at),
                s if self.hashes[s as usize - 1] == h && self.key(s as usize - 1) == key => return Ok(s as usize - 1),
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let cap = (self.table.len() * 2).max(64);
        self.table = vec![0; cap];
        for (i, &h) in self.hashes.iter().enumerate() {
            let mut at = h as usize & (cap - 1);
            while self.table[at] != 0 {
                at = (at + 1) & (cap - 1);
            }
            self.table[at] = i as u32 + 1;
        }
    }

    /// The slot of `key`, added (absent) when new.
    fn slot(&mut self, key: &[u8]) -> usize {
        let h = hash(key);
        let at = match self.find(key, h) {
            Ok(i) => return i,
            Err(at) if (self.hashes.len() + 1) * 2 <= self.table.len() => at,
            Err(_) => {
                self.grow();
                self.find(key, h).expect_err("new key")
            }
        };
        let i = self.hashes.len();
        self.table[at] = i as u32 + 1;
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len() as u32);
        self.hashes.push(h);
        self.spans.push(None);
        self.dirty.push(false);
        i
    }

    fn append(&mut self, value: &[u8]) -> (u32, u32) {
        let start = self.vals.len() as u32;
        self.vals.extend_from_slice(value);
        (start, value.len() as u32)
    }

    fn value(&self, i: usize) -> Option<&[u8]> {
        self.spans[i].map(|(s, n)| &self.vals[s as usize..(s + n) as usize])
    }

    fn mark(&mut self, i: usize) {
        if !self.dirty[i] {
            self.dirty[i] = true;
            self.write_order.push(i as u32);
        }
    }

    /// The current value of `key` (after this cache's writes); `None` when absent or not loaded.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.find(key, hash(key)).ok().and_then(|i| self.value(i))
    }

    /// Sets `key` to `value` in the cache; written by [`flush`](Self::flush).
    pub fn put(&mut self, key: &[u8], value: Vec<u8>) {
        let i = self.slot(key);
        self.set(i, &value);
        self.mark(i);
    }

    /// Overwrites slot `i` in place when the length is unchanged, else appends.
    fn set(&mut self, i: usize, value: &[u8]) {
        match self.spans[i] {
            Some((s, n)) if n as usize == value.len() => self.vals[s as usize..(s + n) as usize].copy_from_slice(value),
            _ => self.spans[i] = Some(self.append(value)),
        }
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
    /// Updates the stored bytes in place: no allocation per call.
    pub fn increment(&mut self, key: &[u8], delta: i64) -> Result<i64, Error> {
        let i = self.slot(key);
        let v = match self.value(i) {
            Some(bytes) => decode_i64(bytes).ok_or(StateError::NotACounter)?.wrapping_add(delta),
            None => delta,
        };
        self.set(i, &encode_i64(v));
        self.mark(i);
        Ok(v)
    }

    /// The written entries (latest value per key, first-write order), leaving the cache clean.
    pub fn take_writes(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let order = std::mem::take(&mut self.write_order);
        order
            .into_iter()
            .map(|i| {
                self.dirty[i as usize] = false;
                (self.key(i as usize).to_vec(), self.value(i as usize).expect("written key has a value").to_vec())
            })
            .collect()
    }

    /// Writes every change to `store` with one `put-column` (no call when there is none).
    pub fn flush(&mut self, store: &Store) -> Result<(), Error> {
        let order = std::mem::take(&mut self.write_order);
        if order.is_empty() {
            return Ok(());
        }
        let (mut keys, mut values) = (Column::with_capacity(order.len(), self.keys.len()), Column::with_capacity(order.len(), order.len() * 8));
        for &i in &order {
            self.dirty[i as usize] = false;
            keys.push(Some(self.key(i as usize)));
            values.push(self.value(i as usize));
        }
        store.put_column(&keys.finish(), &values.finish())?;
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
    fn mismatched_values_are_internal() {
        assert!(StateCache::from_loaded(vec![b"a".to_vec()], vec![]).is_err());
    }

    #[test]
    fn thousands_of_keys_survive_table_growth_and_values_change_size() {
        let mut c = StateCache::default();
        for i in 0..5000u32 {
            assert_eq!(c.increment(&i.to_le_bytes(), i as i64).unwrap(), i as i64);
        }
        c.put(b"x", b"short".to_vec());
        c.put(b"x", b"much longer".to_vec());
        c.put(b"x", b"same length".to_vec());
        assert_eq!(c.get(b"x"), Some(&b"same length"[..]));
        assert_eq!(c.get_i64(&4321u32.to_le_bytes()).unwrap(), Some(4321));
        assert_eq!(c.take_writes().len(), 5001);
    }
}
