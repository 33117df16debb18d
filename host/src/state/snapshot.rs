//! State snapshot files: the changed entries of one checkpoint (a delta) or all entries (a base).
//!
//! Layout (little-endian): magic `AFS2`, epoch u64, store-name table (u16 count, then u16 length +
//! UTF-8 name each), group count u32, then one index row per key group (group u32, block offset
//! u64 from the start of the file, compressed length u32, raw length u32, entry count u32, xxh3 of
//! the compressed block u64), an xxh3 of the header so far, the LZ4 blocks (one per key group,
//! groups ascending), and an xxh3 of everything before it. Block entries: store index u16, kind u8
//! (0 = put, 1 = delete), written_ms i64, key (u32 length + bytes), value (u32 length + bytes,
//! puts only). Store names, not ids, are recorded so a changed `custom_keys` order cannot mix
//! stores up. Per-group blocks let the hybrid backend read one key group with ranged reads
//! ([`Header::parse`], [`decode_block`]).
//!
//! Every read verifies checksums before decoding: a corrupted or truncated file is an error
//! naming the object, never a partial restore.

use super::{Entry, WorkerState};

const MAGIC: &[u8; 4] = b"AFS2";
const INDEX_ROW: usize = 4 + 8 + 4 + 4 + 4 + 8;

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

fn err(name: &str, problem: impl Into<String>) -> SnapshotError {
    SnapshotError { name: name.to_string(), problem: problem.into() }
}

/// Where one key group's block is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    pub group: u32,
    pub offset: u64,
    pub clen: u32,
    pub rawlen: u32,
    pub count: u32,
    pub sum: u64,
}

/// The parsed header of a file: epoch, stores and the block index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub epoch: u64,
    pub stores: Vec<String>,
    pub blocks: Vec<BlockRef>,
    /// Bytes of the header (where the first block starts).
    pub len: usize,
}

/// Encodes `entries` of `epoch` (any order; stable within a key group).
pub fn encode(epoch: u64, entries: &[SnapshotEntry]) -> Vec<u8> {
    let mut stores: Vec<&str> = Vec::new();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].group);
    let mut blocks: Vec<(u32, Vec<u8>, u32, u32)> = Vec::new(); // group, compressed, rawlen, count
    let mut body = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let group = entries[order[i]].group;
        body.clear();
        let mut count = 0u32;
        while i < order.len() && entries[order[i]].group == group {
            let e = &entries[order[i]];
            let sid = match stores.iter().position(|s| *s == e.store) {
                Some(x) => x,
                None => {
                    stores.push(&e.store);
                    stores.len() - 1
                }
            };
            body.extend_from_slice(&(sid as u16).to_le_bytes());
            body.push(u8::from(e.value.is_none()));
            body.extend_from_slice(&e.written_ms.to_le_bytes());
            body.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
            body.extend_from_slice(&e.key);
            if let Some(v) = &e.value {
                body.extend_from_slice(&(v.len() as u32).to_le_bytes());
                body.extend_from_slice(v);
            }
            count += 1;
            i += 1;
        }
        blocks.push((group, lz4_flex::block::compress(&body), body.len() as u32, count));
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&(stores.len() as u16).to_le_bytes());
    for s in &stores {
        out.extend_from_slice(&(s.len() as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    let header_len = out.len() + blocks.len() * INDEX_ROW + 8;
    let mut offset = header_len as u64;
    for (group, c, rawlen, count) in &blocks {
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(&rawlen.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(c).to_le_bytes());
        offset += c.len() as u64;
    }
    let hsum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&hsum.to_le_bytes());
    for (_, c, _, _) in &blocks {
        out.extend_from_slice(c);
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The checksum recorded in manifests for an encoded file.
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

/// Why a header could not be parsed from a prefix of a file.
#[derive(Debug)]
pub enum HeaderError {
    /// The prefix is too short: read at least this many bytes and try again.
    Need(usize),
    Bad(SnapshotError),
}

impl Header {
    /// Parses the header from the first bytes of a file (verifying its checksum).
    pub fn parse(prefix: &[u8], name: &str) -> Result<Header, HeaderError> {
        let bad = |p: &str| HeaderError::Bad(err(name, p));
        if prefix.len() >= 4 && &prefix[..4] != MAGIC {
            return Err(bad("not a state snapshot (bad magic)"));
        }
        let mut r = Reader { b: prefix, pos: 4 };
        let need = |r: &Reader, more: usize| HeaderError::Need(r.pos + more + 1024);
        let epoch = r.u64().ok_or_else(|| need(&r, 8))?;
        let nstores = r.u16().ok_or_else(|| need(&r, 2))?;
        let mut stores = Vec::with_capacity(nstores as usize);
        for _ in 0..nstores {
            let len = r.u16().ok_or_else(|| need(&r, 2))? as usize;
            let s = r.take(len).ok_or_else(|| need(&r, len))?;
            stores.push(std::str::from_utf8(s).map_err(|_| bad("malformed store name"))?.to_string());
        }
        let n = r.u32().ok_or_else(|| need(&r, 4))? as usize;
        let rows = r.take(n * INDEX_ROW).ok_or_else(|| need(&r, n * INDEX_ROW + 8))?;
        let hsum = r.u64().ok_or_else(|| need(&r, 8))?;
        if xxhash_rust::xxh3::xxh3_64(&prefix[..r.pos - 8]).to_le_bytes() != hsum.to_le_bytes() {
            return Err(bad("header checksum mismatch: the file is corrupted"));
        }
        let mut rr = Reader { b: rows, pos: 0 };
        let blocks = (0..n)
            .map(|_| -> Option<BlockRef> {
                Some(BlockRef { group: rr.u32()?, offset: rr.u64()?, clen: rr.u32()?, rawlen: rr.u32()?, count: rr.u32()?, sum: rr.u64()? })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("malformed index"))?;
        Ok(Header { epoch, stores, blocks, len: r.pos })
    }
}

/// Decodes one group's compressed block (checksum verified).
pub fn decode_block(h: &Header, b: &BlockRef, block: &[u8], name: &str) -> Result<Vec<SnapshotEntry>, SnapshotError> {
    if block.len() != b.clen as usize || xxhash_rust::xxh3::xxh3_64(block) != b.sum {
        return Err(err(name, format!("checksum mismatch in the block of key group {}: the file is corrupted or truncated", b.group)));
    }
    let raw = lz4_flex::block::decompress(block, b.rawlen as usize).map_err(|e| err(name, format!("decompression failed: {e}")))?;
    let mut r = Reader { b: &raw, pos: 0 };
    let bad = || err(name, "malformed entry");
    // An entry takes at least 19 bytes: a count beyond that is a lie, not an allocation.
    let mut out = Vec::with_capacity((b.count as usize).min(raw.len() / 19 + 1));
    for _ in 0..b.count {
        let sid = r.u16().ok_or_else(bad)? as usize;
        let kind = *r.take(1).ok_or_else(bad)?.first().ok_or_else(bad)?;
        let written_ms = r.u64().ok_or_else(bad)? as i64;
        let klen = r.u32().ok_or_else(bad)? as usize;
        let key = r.take(klen).ok_or_else(bad)?.to_vec();
        let value = match kind {
            0 => {
                let vlen = r.u32().ok_or_else(bad)? as usize;
                Some(r.take(vlen).ok_or_else(bad)?.to_vec())
            }
            1 => None,
            _ => return Err(bad()),
        };
        let store = h.stores.get(sid).ok_or_else(bad)?.clone();
        out.push(SnapshotEntry { group: b.group, store, key, value, written_ms });
    }
    Ok(out)
}

/// Decodes a whole file; `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<(u64, Vec<SnapshotEntry>), SnapshotError> {
    if bytes.len() < 8 + 4 || &bytes[..4] != MAGIC {
        return Err(err(name, "not a state snapshot (bad magic or truncated)"));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(content).to_le_bytes() != sum {
        return Err(err(name, "checksum mismatch: the file is corrupted or truncated"));
    }
    let h = match Header::parse(content, name) {
        Ok(h) => h,
        Err(HeaderError::Bad(e)) => return Err(e),
        Err(HeaderError::Need(_)) => return Err(err(name, "truncated header")),
    };
    let mut out = Vec::new();
    for b in &h.blocks {
        let end = (b.offset as usize).checked_add(b.clen as usize).ok_or_else(|| err(name, "block out of range"))?;
        let block = content.get(b.offset as usize..end).ok_or_else(|| err(name, "block out of range"))?;
        out.extend(decode_block(&h, b, block, name)?);
    }
    Ok((h.epoch, out))
}

/// Merges entries in restore order into the live state: the last write of each (group, store,
/// key) wins; tombstones and values expired at `now_ms` under `ttl_ms` are dropped. Used by
/// background compaction and savepoints.
pub fn compact(entries: Vec<SnapshotEntry>, now_ms: i64, ttl_ms: Option<u64>) -> Vec<SnapshotEntry> {
    let mut merged: std::collections::BTreeMap<(u32, String, Vec<u8>), SnapshotEntry> = Default::default();
    for e in entries {
        merged.insert((e.group, e.store.clone(), e.key.clone()), e);
    }
    merged
        .into_values()
        .filter(|e| e.value.is_some() && (super::internal_store(&e.store) || ttl_ms.is_none_or(|t| now_ms.saturating_sub(e.written_ms) < t as i64)))
        .collect()
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
        let store =
            self.store_id(&e.store).ok_or_else(|| format!("checkpointed state store `{}` is not declared by the stream (state.custom_keys)", e.store))?;
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

/// One state file referenced by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateFile {
    pub key: String,
    pub epoch: u64,
    pub size: u64,
    pub checksum: u64,
    pub entries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Staging, StateLimits};

    fn entry(g: u32, k: &str, v: Option<&str>) -> SnapshotEntry {
        SnapshotEntry { group: g, store: "default".into(), key: k.into(), value: v.map(Into::into), written_ms: 7 }
    }

    #[test]
    fn roundtrip_and_checksum() {
        let entries = vec![entry(1, "a", Some("x")), entry(2, "b", None), SnapshotEntry { store: "other".into(), ..entry(3, "c", Some("")) }];
        let bytes = encode(42, &entries);
        assert_eq!(decode(&bytes, "f").unwrap(), (42, entries.clone()));
        // One group through the index, as a ranged read would.
        let h = match Header::parse(&bytes[..10], "f") {
            Err(HeaderError::Need(n)) => Header::parse(&bytes[..n.min(bytes.len())], "f").unwrap(),
            other => panic!("{other:?}"),
        };
        let b = h.blocks.iter().find(|b| b.group == 2).unwrap();
        let block = &bytes[b.offset as usize..(b.offset + b.clen as u64) as usize];
        assert_eq!(decode_block(&h, b, block, "f").unwrap(), vec![entries[1].clone()]);
        let mut flipped = block.to_vec();
        flipped[0] ^= 1;
        assert!(decode_block(&h, b, &flipped, "f").is_err());
        let mut bad = bytes.clone();
        let last = bad.len() - 10;
        bad[last] ^= 1;
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

    use proptest::prelude::*;

    fn arb_entry() -> impl Strategy<Value = SnapshotEntry> {
        (
            0u32..8,
            prop::sample::select(vec!["default", "other"]),
            prop::collection::vec(any::<u8>(), 0..12),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..24)),
            any::<i64>(),
        )
            .prop_map(|(group, store, key, value, written_ms)| SnapshotEntry { group, store: store.into(), key, value, written_ms })
    }

    proptest! {
        /// Random, truncated and bit-flipped files: an error naming the file, never a panic or
        /// a different set of entries accepted.
        #[test]
        fn decoding_never_accepts_damage(entries in prop::collection::vec(arb_entry(), 0..20), epoch in any::<u64>(), cut in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, noise in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut sorted = entries.clone();
            sorted.sort_by_key(|e| e.group);
            let bytes = encode(epoch, &sorted);
            let (e2, got) = decode(&bytes, "f").unwrap();
            prop_assert_eq!(e2, epoch);
            prop_assert_eq!(got.len(), sorted.len());
            let i = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..i], "data/cut").unwrap_err().to_string().contains("data/cut"));
            let mut flipped = bytes.clone();
            flipped[pos.index(bytes.len())] ^= 1 << bit;
            prop_assert!(decode(&flipped, "data/flip").unwrap_err().to_string().contains("data/flip"));
            let _ = decode(&noise, "noise");
            let mut framed = b"AFS2".to_vec();
            framed.extend_from_slice(&noise);
            let _ = decode(&framed, "noise");
            let _ = Header::parse(&framed, "noise");
        }
    }
}
