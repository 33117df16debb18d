//! `generate`: deterministic synthetic JSON events.
//!
//! Record `id` (0, 1, 2, ...) has value `{"id":id,"key":"k<K>","ts":T,"payload":"..."}` and key
//! `k<K>`, where K = splitmix64(seed ^ id) % keys and T = 1_700_000_000_000 + id; the payload is
//! `payload_bytes` lowercase letters derived from seed and id. The same config always yields the
//! same records, so a position (the next id) is all a checkpoint needs.
//!
//! With `context` (ArkFlow's generate input), every record's value is that one JSON object, with
//! no key and the time it was read as its timestamp; `next_lines` then reads blocks of it (the
//! columnar lane).

use super::{Input, Position};
use crate::config::{ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;

/// `type: generate` settings: records `{"id":N,"key":"k<K>","ts":T,"payload":"..."}` with
/// record key `k<K>`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Records to produce; None = unbounded (default None)
    pub count: Option<u64>,
    /// Records per second; None = as fast as possible (default None)
    pub rate_per_sec: Option<u64>,
    /// Distinct keys; default 1000
    pub keys: u64,
    /// Bytes of the "payload" string; default 16
    pub payload_bytes: usize,
    /// default 0
    pub seed: u64,
    /// Records per input batch; default 1024
    pub batch_size: usize,
    /// The value of every record (a JSON object, compact), instead of the synthetic events.
    pub context: Option<Vec<u8>>,
}

/// `generate` input `keys` default.
pub const DEFAULT_GENERATE_KEYS: u64 = 1000;
/// `generate` input `payload_bytes` default.
pub const DEFAULT_GENERATE_PAYLOAD_BYTES: usize = 16;

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            count: None,
            rate_per_sec: None,
            keys: DEFAULT_GENERATE_KEYS,
            payload_bytes: DEFAULT_GENERATE_PAYLOAD_BYTES,
            seed: 0,
            batch_size: super::DEFAULT_INPUT_BATCH_SIZE,
            context: None,
        }
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGenerate {
    count: Option<u64>,
    rate_per_sec: Option<u64>,
    keys: Option<u64>,
    payload_bytes: Option<usize>,
    seed: Option<u64>,
    batch_size: Option<usize>,
    /// A JSON object (as text) every record carries instead of the synthetic events.
    context: Option<String>,
}

impl Source for GenerateConfig {
    const NAME: &'static str = "generate";
    type Raw = RawGenerate;

    fn from_raw(ctx: &Ctx, raw: RawGenerate, path: &YPath) -> Result<Self, ConfigError> {
        let d = GenerateConfig::default();
        let cfg = GenerateConfig {
            count: raw.count,
            rate_per_sec: raw.rate_per_sec,
            keys: raw.keys.unwrap_or(d.keys),
            payload_bytes: raw.payload_bytes.unwrap_or(d.payload_bytes),
            seed: raw.seed.unwrap_or(d.seed),
            batch_size: raw.batch_size.unwrap_or(d.batch_size),
            context: raw.context.as_deref().map(|c| context_bytes(ctx, &path.key("context"), c)).transpose()?,
        };
        ctx.at_least(&path.key("keys"), cfg.keys, 1)?;
        ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
        ctx.at_least_if_set(&path.key("rate_per_sec"), cfg.rate_per_sec, 1)?;
        Ok(cfg)
    }

    /// The record key is the value's `key` field; records of a `context` have none, and are
    /// read as blocks of lines.
    fn capabilities(&self) -> SourceCaps {
        match self.context {
            Some(_) => SourceCaps { replayable: true, lines: true, ..SourceCaps::default() },
            None => SourceCaps { replayable: true, key_field: Some("key".into()), ..SourceCaps::default() },
        }
    }

    fn open(&self, _: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        Ok(Box::new(GenerateInput::new(self.clone())))
    }
}

type Config = GenerateConfig;

/// `context` as compact JSON: it must be one JSON object.
fn context_bytes(ctx: &Ctx, at: &YPath, text: &str) -> Result<Vec<u8>, ConfigError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(serde_json::to_vec(&v).expect("a JSON value encodes")),
        Ok(_) => Err(ctx.invalid(at, "`context` must be a JSON object, e.g. '{\"value\": 10}'")),
        Err(e) => Err(ctx.invalid(at, format!("`context` is not JSON: {e}"))),
    }
}

/// The id of the next record.
#[derive(serde::Serialize, serde::Deserialize)]
struct GeneratePosition {
    next_id: u64,
}

impl super::Position for GeneratePosition {
    const SOURCE: &'static str = "generate";
}

pub const BASE_TS: i64 = 1_700_000_000_000;

pub struct GenerateInput {
    cfg: Config,
    next: u64,
    rate: Option<super::RateLimiter>,
    /// Buffers of the blocks `next_lines` made, back from the workers.
    recycler: crate::lines::Recycler,
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
    /// How many records to produce now: None at the end, 0 when the rate cap allows none yet.
    fn allowance(&mut self) -> Option<u64> {
        let remaining = self.cfg.count.map_or(u64::MAX, |c| c.saturating_sub(self.next));
        if remaining == 0 {
            return None;
        }
        let n = (self.cfg.batch_size as u64).min(remaining);
        Some(self.rate.as_mut().map_or(n, |rate| rate.allow(n)))
    }

    pub fn new(cfg: Config) -> Self {
        let rate = cfg.rate_per_sec.map(super::RateLimiter::new);
        GenerateInput { cfg, next: 0, rate, recycler: Default::default() }
    }

    fn record(&self, id: u64) -> Record {
        if let Some(c) = &self.cfg.context {
            return Record { key: None, value: Some(c.clone()), headers: vec![], timestamp_ms: crate::util::time::now_ms(), partition: 0, offset: id };
        }
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
        let Some(n) = self.allowance() else { return Ok(None) };
        let batch = (self.next..self.next + n).map(|id| self.record(id)).collect();
        self.next += n;
        Ok(Some(batch))
    }

    fn next_lines(&mut self) -> anyhow::Result<Option<crate::lines::Lines>> {
        let Some(n) = self.allowance() else { return Ok(None) };
        let Some(context) = self.cfg.context.as_deref() else { anyhow::bail!("generate reads blocks of lines only with `context`") };
        let mut text = self.recycler.text((context.len() + 1) * n as usize);
        for _ in 0..n {
            text.extend_from_slice(context);
            text.push(b'\n');
        }
        let block = crate::lines::Lines {
            text,
            partition: 0,
            first_line: self.next,
            records: n as usize,
            value_bytes: context.len() * n as usize,
            last_line: (self.next + n).saturating_sub(1),
            timestamp_ms: crate::util::time::now_ms(),
            // `context` is one compact JSON object.
            objects: true,
        };
        self.next += n;
        Ok(Some(block))
    }

    fn position(&self) -> serde_json::Value {
        GeneratePosition { next_id: self.next }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        self.next = GeneratePosition::decode(position)?.next_id;
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
        Config { count: Some(count), rate_per_sec: None, keys: 10, payload_bytes: 20, seed: 7, batch_size: 4, context: None }
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

    #[test]
    fn a_context_is_every_record_and_reads_as_blocks_of_lines() {
        let context = br#"{"value":10,"sensor":"temp_1"}"#.to_vec();
        let c = Config { count: Some(10), context: Some(context.clone()), ..cfg(10) };
        assert!(c.capabilities().lines && c.capabilities().key_field.is_none());
        let (mut by_records, mut by_lines) = (GenerateInput::new(c.clone()), GenerateInput::new(c));
        let mut blocks = 0;
        while let Some(block) = by_lines.next_lines().unwrap() {
            let mut expected = by_records.next_batch().unwrap().unwrap();
            expected.iter_mut().for_each(|r| r.timestamp_ms = block.timestamp_ms);
            assert_eq!(block.to_records(), expected, "block {blocks}");
            assert!(expected.iter().all(|r| r.key.is_none() && r.value.as_deref() == Some(&context[..])));
            assert_eq!(by_lines.position(), by_records.position());
            blocks += 1;
        }
        assert_eq!(blocks, 3, "10 records in blocks of 4");
        assert!(by_records.next_batch().unwrap().is_none());
    }
}
