//! `generate`: deterministic synthetic JSON events.
//!
//! Record `id` (0, 1, 2, ...) has value `{"id":id,"key":"k<K>","ts":T,"payload":"..."}` and key
//! `k<K>`, where K = splitmix64(seed ^ id) % keys and T = 1_700_000_000_000 + id; the payload is
//! `payload_bytes` lowercase letters derived from seed and id. The same config always yields the
//! same records, so a position (the next id) is all a checkpoint needs.

use super::Input;
use crate::config::GenerateInput as Config;
use crate::record::Record;

pub const BASE_TS: i64 = 1_700_000_000_000;

pub struct GenerateInput {
    cfg: Config,
    next: u64,
    rate: Option<super::RateLimiter>,
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The key index of record `id`.
pub fn key_of(seed: u64, keys: u64, id: u64) -> u64 {
    splitmix64(seed ^ id) % keys.max(1)
}

impl GenerateInput {
    pub fn new(cfg: Config) -> Self {
        let rate = cfg.rate_per_sec.map(super::RateLimiter::new);
        GenerateInput { cfg, next: 0, rate }
    }

    fn record(&self, id: u64) -> Record {
        let k = key_of(self.cfg.seed, self.cfg.keys, id);
        let key = format!("k{k}");
        let ts = BASE_TS + id as i64;
        let mut v = Vec::with_capacity(64 + self.cfg.payload_bytes);
        v.extend_from_slice(format!("{{\"id\":{id},\"key\":\"{key}\",\"ts\":{ts},\"payload\":\"").as_bytes());
        let mut h = splitmix64(self.cfg.seed.wrapping_add(id));
        for i in 0..self.cfg.payload_bytes {
            if i % 8 == 0 && i > 0 {
                h = splitmix64(h);
            }
            v.push(b'a' + ((h >> ((i % 8) * 8)) & 0xff) as u8 % 26);
        }
        v.extend_from_slice(b"\"}");
        Record { key: Some(key.into_bytes()), value: Some(v), headers: vec![], timestamp_ms: ts, partition: 0, offset: id }
    }
}

impl Input for GenerateInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        let remaining = self.cfg.count.map_or(u64::MAX, |c| c.saturating_sub(self.next));
        if remaining == 0 {
            return Ok(None);
        }
        let mut n = (self.cfg.batch_size as u64).min(remaining);
        if let Some(rate) = &mut self.rate {
            n = rate.allow(n);
            if n == 0 {
                return Ok(Some(Vec::new()));
            }
        }
        let batch = (self.next..self.next + n).map(|id| self.record(id)).collect();
        self.next += n;
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "next_id": self.next })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let next = position.get("next_id").and_then(serde_json::Value::as_u64).ok_or_else(|| anyhow::anyhow!("generate input: bad position {position}"))?;
        self.next = next;
        if let Some(r) = &mut self.rate {
            r.reset();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn cfg(count: u64) -> Config {
        Config { count: Some(count), rate_per_sec: None, keys: 10, payload_bytes: 20, seed: 7, batch_size: 4 }
    }

    #[test]
    fn deterministic_and_seekable() {
        let mut a = GenerateInput::new(cfg(10));
        let mut all = Vec::new();
        while let Some(b) = a.next_batch().unwrap() {
            all.extend(b);
        }
        assert_eq!(all.len(), 10);
        let v: serde_json::Value = serde_json::from_slice(all[3].value.as_ref().unwrap()).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["payload"].as_str().unwrap().len(), 20);
        assert_eq!(all[3].key.as_deref().unwrap(), v["key"].as_str().unwrap().as_bytes());
        let mut b = GenerateInput::new(cfg(10));
        b.seek(&serde_json::json!({"next_id": 6})).unwrap();
        let rest = b.next_batch().unwrap().unwrap();
        assert_eq!(rest, all[6..10].to_vec());
        assert_eq!(b.position(), serde_json::json!({"next_id": 10}));
    }

    #[test]
    fn rate_limit_holds_back() {
        let mut c = cfg(1_000_000);
        c.rate_per_sec = Some(100);
        c.batch_size = 1000;
        let mut g = GenerateInput::new(c);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_millis(300) {
            n += g.next_batch().unwrap().unwrap().len();
        }
        assert!(n <= 40, "100/s for 0.3 s must not give {n} records");
        assert!(n >= 10, "got only {n}");
    }
}
