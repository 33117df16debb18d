//! Value encodings shared with the host.
//!
//! Contract: a counter (and any i64 the plugins store, e.g. dedupe timestamps) is exactly 8 bytes,
//! little-endian, two's complement — the encoding `state.store.increment` reads and writes.

/// Encodes `v` as the 8-byte little-endian form `increment` uses.
pub fn encode_i64(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Decodes an 8-byte little-endian i64; `None` when `bytes` is not exactly 8 bytes long
/// (what `increment` reports as `not-a-counter`).
pub fn decode_i64(bytes: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(bytes).ok().map(i64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in [0, 1, -1, 42, i64::MIN, i64::MAX] {
            assert_eq!(decode_i64(&encode_i64(v)), Some(v));
        }
        assert_eq!(encode_i64(1), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_i64(-2), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn wrong_length_is_not_a_counter() {
        assert_eq!(decode_i64(&[]), None);
        assert_eq!(decode_i64(&[1, 2, 3]), None);
        assert_eq!(decode_i64(&[0; 9]), None);
    }
}
