//! Sealed JSON: the encoding of every small control object in the state store (manifests,
//! decision records, group claims, outbox markers).
//!
//! Contract: `seal(v)` is the JSON of `v` followed by one trailer line `#xxh3=<16 hex digits>`
//! holding the xxh3-64 of the JSON bytes; `open(bytes, name)` accepts exactly that shape and
//! nothing else. A truncated, bit-flipped or foreign object is an error naming `name`, never a
//! wrong value accepted (a flipped digit inside the JSON still parses, so the checksum is what
//! refuses it) and never a panic. The objects stay readable with `cat`.

use serde::de::DeserializeOwned;
use serde::Serialize;

const TRAILER: &[u8] = b"\n#xxh3=";
/// `\n#xxh3=` + 16 hex digits + `\n`.
const TRAILER_LEN: usize = 7 + 16 + 1;

/// The sealed encoding of `v`.
pub fn seal<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("control objects serialize");
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(TRAILER);
    out.extend_from_slice(format!("{sum:016x}\n").as_bytes());
    out
}

/// Verifies and decodes a sealed object; `name` (its key and store) goes into every error.
pub fn open<T: DeserializeOwned>(bytes: &[u8], name: &str) -> anyhow::Result<T> {
    let json = verified(bytes).ok_or_else(|| anyhow::anyhow!("{name} is corrupted or truncated (its checksum trailer does not match its content)"))?;
    serde_json::from_slice(json).map_err(|e| anyhow::anyhow!("{name} is unreadable: {e}"))
}

/// The JSON part of a sealed object whose trailer matches, or None.
fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let cut = bytes.len().checked_sub(TRAILER_LEN)?;
    let (json, trailer) = bytes.split_at(cut);
    if !trailer.starts_with(TRAILER) || trailer.last() != Some(&b'\n') {
        return None;
    }
    let hex = std::str::from_utf8(&trailer[TRAILER.len()..TRAILER_LEN - 1]).ok()?;
    if !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let sum = u64::from_str_radix(hex, 16).ok()?;
    (xxhash_rust::xxh3::xxh3_64(json) == sum).then_some(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct T {
        epoch: u64,
        name: String,
    }

    #[test]
    fn roundtrip_and_refusals() {
        let v = T { epoch: 42, name: "op".into() };
        let b = seal(&v);
        assert_eq!(open::<T>(&b, "x").unwrap(), v);
        assert!(std::str::from_utf8(&b).unwrap().contains("\"epoch\": 42"));
        // A flipped digit still parses as JSON; the trailer refuses it.
        let flipped: Vec<u8> = String::from_utf8(b.clone()).unwrap().replace("42", "43").into_bytes();
        assert!(open::<T>(&flipped, "obj/1").unwrap_err().to_string().contains("obj/1"));
        assert!(open::<T>(&b[..b.len() - 1], "x").is_err());
        assert!(open::<T>(b"{\"epoch\":1,\"name\":\"a\"}", "legacy").is_err(), "unsealed JSON is refused");
        assert!(open::<T>(b"", "empty").is_err());
    }

    proptest! {
        #[test]
        fn bit_flips_never_pass(epoch in any::<u64>(), name in "[a-z]{0,12}", pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let v = T { epoch, name };
            let mut b = seal(&v);
            let i = pos.index(b.len());
            b[i] ^= 1 << bit;
            prop_assert!(open::<T>(&b, "x").is_err(), "flipped bit {} of byte {} accepted", bit, i);
        }

        #[test]
        fn truncations_and_garbage_are_errors(bytes in prop::collection::vec(any::<u8>(), 0..200), cut in any::<prop::sample::Index>()) {
            let _ = open::<T>(&bytes, "random");
            let b = seal(&T { epoch: 1, name: "n".into() });
            let i = cut.index(b.len());
            prop_assert!(open::<T>(&b[..i], "cut").is_err());
        }
    }
}
