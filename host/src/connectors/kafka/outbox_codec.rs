//! The outbox's stored format: one epoch's messages, encoded as magic `AFO1`, a count, each
//! message (key group, timestamp, topic, key, value, headers; length-prefixed byte strings with
//! -1 for none), and an xxh3 of everything before it. [`decode`] verifies the checksum first: a
//! truncated or damaged object is an error naming it, never a partial or wrong epoch.

const MAGIC: &[u8; 4] = b"AFO1";

/// One message as it will be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
    /// The key group of the input record it came from.
    pub group: u32,
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_le_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
    }
}

/// Encodes an epoch's messages (magic, count, messages, xxh3 of everything before it).
pub fn encode(msgs: &[OutMessage]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msgs.len() * 64 + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(msgs.len() as u32).to_le_bytes());
    for m in msgs {
        out.extend_from_slice(&m.group.to_le_bytes());
        out.extend_from_slice(&m.timestamp_ms.to_le_bytes());
        put_bytes(&mut out, Some(m.topic.as_bytes()));
        put_bytes(&mut out, m.key.as_deref());
        put_bytes(&mut out, m.value.as_deref());
        out.extend_from_slice(&(m.headers.len() as u32).to_le_bytes());
        for (k, v) in &m.headers {
            put_bytes(&mut out, Some(k.as_bytes()));
            put_bytes(&mut out, Some(v));
        }
    }
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes [`encode`]'s output, verifying its checksum; `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> anyhow::Result<Vec<OutMessage>> {
    let bad = || anyhow::anyhow!("outbox object {name} is corrupted or truncated");
    if bytes.len() < 16 || &bytes[..4] != MAGIC {
        return Err(bad());
    }
    let (content, sum) = bytes.split_at(bytes.len() - 8);
    if xxhash_rust::xxh3::xxh3_64(content).to_le_bytes() != sum {
        return Err(bad());
    }
    let mut r = Cursor { b: content, pos: 4 };
    let n = r.u32().ok_or_else(bad)?;
    // A message takes at least 24 bytes: a count beyond that is a lie, not an allocation.
    let mut out = Vec::with_capacity((n as usize).min(content.len() / 24 + 1));
    for _ in 0..n {
        let group = r.u32().ok_or_else(bad)?;
        let timestamp_ms = i64::from_le_bytes(r.take(8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let topic = String::from_utf8(r.bytes().ok_or_else(bad)?.ok_or_else(bad)?).map_err(|_| bad())?;
        let key = r.bytes().ok_or_else(bad)?;
        let value = r.bytes().ok_or_else(bad)?;
        let nh = r.u32().ok_or_else(bad)?;
        let mut headers = Vec::with_capacity(nh as usize);
        for _ in 0..nh {
            let k = String::from_utf8(r.bytes().ok_or_else(bad)?.ok_or_else(bad)?).map_err(|_| bad())?;
            headers.push((k, r.bytes().ok_or_else(bad)?.unwrap_or_default()));
        }
        out.push(OutMessage { topic, key, value, headers, timestamp_ms, group });
    }
    Ok(out)
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    /// A length-prefixed byte string; -1 is None.
    fn bytes(&mut self) -> Option<Option<Vec<u8>>> {
        let len = i32::from_le_bytes(self.take(4)?.try_into().ok()?);
        Some(if len < 0 { None } else { Some(self.take(len as usize)?.to_vec()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip_and_corruption() {
        let m = OutMessage { topic: "t".into(), key: Some(b"k".to_vec()), value: None, headers: vec![("h".into(), b"v".to_vec())], timestamp_ms: 5, group: 3 };
        let m2 = OutMessage { key: None, value: Some(b"{}".to_vec()), headers: vec![], ..m.clone() };
        let b = encode(&[m.clone(), m2.clone()]);
        assert_eq!(decode(&b, "x").unwrap(), vec![m, m2]);
        let mut bad = b.clone();
        bad[10] ^= 1;
        assert!(decode(&bad, "outbox/1").unwrap_err().to_string().contains("outbox/1"));
        assert!(decode(&b[..b.len() - 1], "x").is_err());
    }

    use proptest::prelude::*;

    proptest! {
        /// Random, truncated and bit-flipped outbox objects: an error naming the object.
        #[test]
        fn decoding_never_accepts_damage(values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..40)), 0..10), cut in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, noise in prop::collection::vec(any::<u8>(), 0..200)) {
            let msgs: Vec<OutMessage> = values.into_iter().enumerate().map(|(i, value)| OutMessage { topic: "t".into(), key: Some(vec![i as u8]), value, headers: vec![("h".into(), vec![1])], timestamp_ms: i as i64, group: i as u32 }).collect();
            let b = encode(&msgs);
            prop_assert_eq!(decode(&b, "x").unwrap(), msgs);
            prop_assert!(decode(&b[..cut.index(b.len())], "outbox/cut").unwrap_err().to_string().contains("outbox/cut"));
            let mut f = b.clone();
            f[pos.index(b.len())] ^= 1 << bit;
            prop_assert!(decode(&f, "outbox/flip").is_err());
            let _ = decode(&noise, "noise");
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&noise);
            let _ = decode(&framed, "noise");
        }
    }
}
