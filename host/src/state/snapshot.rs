//! State snapshot files: the changed entries of one checkpoint (a delta) or all entries (a base).
//!
//! Layout (little-endian): magic `AFS1`, epoch u64, store-name table (u16 count, then u16 length +
//! UTF-8 name each), entry count u64, uncompressed body length u64, LZ4 block of the body, then an
//! xxh3-64 checksum of everything before it. Body entries: key group u32, store index u16, kind u8
//! (0 = put, 1 = delete), written_ms i64, key (u32 length + bytes), value (u32 length + bytes, puts
//! only). Store names, not ids, are recorded so a changed `custom_keys` order cannot mix stores up.
//! [`decode`] verifies the checksum before anything else: a corrupted or truncated file is an
//! error naming the object, never a partial restore.

use super::{Entry, WorkerState};

const MAGIC: &[u8; 4] = b"AFS1";

/// One changed entry; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub group: u32,
    pub store: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub written_ms: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("state file {name}: {problem}")]
pub struct SnapshotError {
    pub name: String,
    pub problem: String,
}

/// Encodes `entries` of `epoch`.
pub fn encode(epoch: u64, entries: &[SnapshotEntry]) -> Vec<u8> {
    let mut stores: Vec<&str> = Vec::new();
    let mut body = Vec::with_capacity(entries.len() * 48);
    for e in entries {
        let sid = match stores.iter().position(|s| *s == e.store) {
            Some(i) => i,
            None => {
                stores.push(&e.store);
                stores.len() - 1
            }
        };
        body.extend_from_slice(&e.group.to_le_bytes());
        body.extend_from_slice(&(sid as u16).to_le_bytes());
        body.push(u8::from(e.value.is_none()));
        body.extend_from_slice(&e.written_ms.to_le_bytes());
        body.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        body.extend_from_slice(&e.key);
        if let Some(v) = &e.value {
            body.extend_from_slice(&(v.len() as u32).to_le_bytes());
            body.extend_from_slice(v);
        }
    }
    let mut out = Vec::with_capacity(body.len() / 2 + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&(stores.len() as u16).to_le_bytes());
    for s in &stores {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&lz4_flex::block::compress(&body));
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The checksum of an encoded file (its trailing 8 bytes), as recorded in manifests.
pub fn checksum_of(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Decodes a file; `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<(u64, Vec<SnapshotEntry>), SnapshotError> {
    let err = |problem: &str| SnapshotError { name: name.to_string(), problem: problem.to_string() };
    if bytes.len() < 4 + 8 + 2 + 8 + 8 + 8 || &bytes[..4] != MAGIC {
        return Err(err("not a state snapshot (bad magic or truncated)"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(content).to_le_bytes() != sum {
        return Err(err("checksum mismatch: the file is corrupted or truncated"));
    }
    let mut r = Reader { b: content, pos: 4 };
    let bad = || err("malformed header");
    let epoch = r.u64().ok_or_else(bad)?;
    let nstores = r.u16().ok_or_else(bad)?;
    let mut stores = Vec::with_capacity(nstores as usize);
    for _ in 0..nstores {
        let len = r.u16().ok_or_else(bad)? as usize;
        let s = std::str::from_utf8(r.take(len).ok_or_else(bad)?).map_err(|_| bad())?;
        stores.push(s.to_string());
    }
    let count = r.u64().ok_or_else(bad)?;
    let body_len = r.u64().ok_or_else(bad)? as usize;
    let body = lz4_flex::block::decompress(&content[r.pos..], body_len).map_err(|e| err(&format!("decompression failed: {e}")))?;
    let mut b = Reader { b: &body, pos: 0 };
    let bad = || err("malformed entry");
    let mut entries = Vec::with_capacity(count.min(1 << 24) as usize);
    for _ in 0..count {
        let group = b.u32().ok_or_else(bad)?;
        let sid = b.u16().ok_or_else(bad)? as usize;
        let kind = *b.take(1).ok_or_else(bad)?.first().ok_or_else(bad)?;
        let written_ms = b.u64().ok_or_else(bad)? as i64;
        let klen = b.u32().ok_or_else(bad)? as usize;
        let key = b.take(klen).ok_or_else(bad)?.to_vec();
        let value = match kind {
            0 => {
                let vlen = b.u32().ok_or_else(bad)? as usize;
                Some(b.take(vlen).ok_or_else(bad)?.to_vec())
            }
            1 => None,
            _ => return Err(bad()),
        };
        let store = stores.get(sid).ok_or_else(bad)?.clone();
        entries.push(SnapshotEntry { group, store, key, value, written_ms });
    }
    Ok((epoch, entries))
}

impl WorkerState {
    /// The changed entries of every group since the last call, with current values (tombstones
    /// for deleted keys), in a deterministic order.
    pub fn take_delta(&mut self) -> Vec<SnapshotEntry> {
        let mut groups: Vec<u32> = self.groups.keys().copied().collect();
        groups.sort_unstable();
        let mut out = Vec::new();
        for g in groups {
            let dirty = self.take_dirty(g);
            let mut keys: Vec<(u16, Vec<u8>)> = dirty.into_iter().collect();
            keys.sort_unstable();
            for (store, key) in keys {
                let cur = self.committed(g, store, &key);
                out.push(SnapshotEntry {
                    group: g,
                    store: self.store_names()[store as usize].clone(),
                    value: cur.map(|e| e.value.clone()),
                    written_ms: cur.map_or(0, |e| e.written_ms),
                    key,
                });
            }
        }
        out
    }

    /// Every committed entry (a base snapshot).
    pub fn full_snapshot(&self) -> Vec<SnapshotEntry> {
        let mut out: Vec<SnapshotEntry> = self
            .groups()
            .flat_map(|g| {
                self.iter_group(g).map(move |(s, k, e)| SnapshotEntry {
                    group: g,
                    store: self.store_names()[s as usize].clone(),
                    key: k.to_vec(),
                    value: Some(e.value.clone()),
                    written_ms: e.written_ms,
                })
            })
            .collect();
        out.sort_unstable_by(|a, b| (a.group, &a.store, &a.key).cmp(&(b.group, &b.store, &b.key)));
        out
    }

    /// Applies a restored entry (later files override earlier ones). Entries of stores the
    /// stream no longer declares are reported as an error.
    pub fn restore(&mut self, e: SnapshotEntry) -> Result<(), String> {
        let store = self
            .store_id(&e.store)
            .ok_or_else(|| format!("checkpointed state store `{}` is not declared by the stream (state.custom_keys)", e.store))?;
        let nstores = self.store_names.len();
        let g = self.groups.entry(e.group).or_default();
        if g.maps.len() < nstores {
            g.maps.resize_with(nstores, Default::default);
        }
        let map = &mut g.maps[store as usize];
        let klen = e.key.len() as u64;
        let old = match e.value {
            Some(value) => {
                let vlen = value.len() as u64;
                self.bytes += klen + vlen;
                self.entries += 1;
                map.insert(e.key, Entry { value, written_ms: e.written_ms })
            }
            None => map.remove(&e.key),
        };
        if let Some(old) = old {
            self.bytes = self.bytes.saturating_sub(klen + old.value.len() as u64);
            self.entries = self.entries.saturating_sub(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{StateLimits, Staging};

    fn entry(g: u32, k: &str, v: Option<&str>) -> SnapshotEntry {
        SnapshotEntry { group: g, store: "default".into(), key: k.into(), value: v.map(Into::into), written_ms: 7 }
    }

    #[test]
    fn roundtrip_and_checksum() {
        let entries = vec![entry(1, "a", Some("x")), entry(2, "b", None), SnapshotEntry { store: "other".into(), ..entry(3, "c", Some("")) }];
        let bytes = encode(42, &entries);
        assert_eq!(decode(&bytes, "f").unwrap(), (42, entries));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(decode(&bad, "data/1/w0").unwrap_err().to_string().contains("data/1/w0: checksum mismatch"));
        assert!(decode(&bytes[..bytes.len() - 3], "t").unwrap_err().to_string().contains("checksum"));
        assert!(decode(b"nope", "n").unwrap_err().to_string().contains("bad magic"));
    }

    #[test]
    fn delta_then_restore_reproduces_state() {
        let names = vec!["default".to_string(), "other".to_string()];
        let mut st = WorkerState::new(names.clone(), None, StateLimits::default());
        st.set_track_dirty(true);
        let mut stg = Staging::default();
        {
            let mut s = st.scope(&mut stg, 5, 100);
            s.put(0, b"k1".to_vec(), b"v1".to_vec()).unwrap();
            s.put(1, b"k2".to_vec(), b"v2".to_vec()).unwrap();
        }
        st.commit(&mut stg, 5, 100);
        let base = st.take_delta();
        assert_eq!(base.len(), 2);
        st.scope(&mut stg, 5, 200).delete(0, b"k1".to_vec()).unwrap();
        st.commit(&mut stg, 5, 200);
        let delta = st.take_delta();
        assert_eq!(delta, vec![entry(5, "k1", None)].into_iter().map(|e| SnapshotEntry { written_ms: 0, ..e }).collect::<Vec<_>>());
        let mut restored = WorkerState::new(names, None, StateLimits::default());
        for f in [encode(1, &base), encode(2, &delta)] {
            for e in decode(&f, "x").unwrap().1 {
                restored.restore(e).unwrap();
            }
        }
        assert_eq!(restored.entries(), 1);
        assert_eq!(restored.peek(5, "other", b"k2").unwrap().value, b"v2");
        assert!(restored.peek(5, "default", b"k1").is_none());
        assert_eq!(restored.full_snapshot(), st.full_snapshot());
    }
}
