//! Inputs: where a stream's records come from.
//!
//! Contract: `next_batch` returns `Ok(Some(batch))` (possibly empty when idle, so the caller can
//! check for shutdown about every 100 ms), or `Ok(None)` at the end of the input. `position` is the
//! point just after the last record returned, as JSON for checkpoint manifests, and `seek` resumes
//! from such a position. Inputs never route: the engine assigns key groups.

mod file;
mod generate;
pub mod http;
pub mod memory;
mod stdin;

use crate::record::Record;

pub use file::{FileInput, FileInputConfig};
pub use generate::{splitmix64, GenerateConfig, GenerateInput};
pub use stdin::{StdinConfig, StdinInput};

/// When an input that cannot replay (`http`, `mqtt`) acknowledges what it took to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ack {
    /// Once a decided checkpoint covers it (at once when the stream takes no checkpoints:
    /// once read). default
    #[default]
    AfterCheckpoint,
    /// On receipt.
    Immediate,
}

crate::config::named_enum!(Ack { "after_checkpoint" => AfterCheckpoint, "immediate" => Immediate });

impl Ack {
    /// The `ack` key at `path`.
    pub(crate) fn parse(ctx: &crate::config::Ctx, raw: Option<String>, path: &crate::config::YPath) -> Result<Ack, crate::config::ConfigError> {
        ctx.named(raw, path, "ack", Ack::NAMES, Ack::from_name, Ack::default())
    }
}

/// `batch_size` default of every input.
pub const DEFAULT_INPUT_BATCH_SIZE: usize = 1024;

pub trait Input: Send {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>>;
    /// The next records as one block of JSON lines (the columnar lane), for an input whose
    /// `SourceCaps::lines` is set; same contract as `next_batch` (an empty block when idle).
    fn next_lines(&mut self) -> anyhow::Result<Option<crate::lines::Lines>> {
        anyhow::bail!("this input does not read blocks of lines")
    }
    fn position(&self) -> serde_json::Value;
    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()>;
    /// Told after checkpoint `epoch` was decided, with the position it recorded (Kafka commits it
    /// to the consumer group for monitoring).
    fn decided(&mut self, _epoch: u64, _position: &serde_json::Value) {}
    /// After `next_batch` returned None: whether the data ended (a bounded input: time ends, every
    /// window and timer fires) rather than this process's share of it (a group-mode revoke: the
    /// next owner goes on, so nothing may fire early).
    fn at_end(&self) -> bool {
        true
    }
}

/// A source's position as its own type; manifests store it as JSON (`encode`), and a restart
/// reads it back (`decode`) with an error naming the input type when it is another source's.
/// (Kafka's position is read by `kafka::position_entries`, shared with group claims and offset
/// commits.)
pub trait Position: serde::Serialize + serde::de::DeserializeOwned {
    /// The input type, for messages.
    const SOURCE: &'static str;
    fn encode(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn decode(v: &serde_json::Value) -> anyhow::Result<Self> {
        <Self as serde::Deserialize>::deserialize(v).map_err(|e| {
            anyhow::anyhow!("{} input: the checkpoint's input position {v} is not a {} position ({e}); was the input type changed?", Self::SOURCE, Self::SOURCE)
        })
    }
}

/// Builds a record from one JSON line; `key_field` names the value field used as record key.
pub(crate) fn json_line_record(line: &[u8], key_field: Option<&str>, offset: u64, now_ms: i64) -> Record {
    let key = key_field.and_then(|f| crate::util::json::field_bytes(line, f));
    Record { key, value: Some(line.to_vec()), headers: vec![], timestamp_ms: now_ms, partition: 0, offset }
}

/// Caps a record rate: `allow(n)` returns how many of `n` records may go now (0 after sleeping
/// at most 100 ms when none may).
pub(crate) struct RateLimiter {
    rate: u64,
    start: std::time::Instant,
    sent: u64,
}

impl RateLimiter {
    pub fn new(rate: u64) -> Self {
        RateLimiter { rate: rate.max(1), start: std::time::Instant::now(), sent: 0 }
    }

    /// Restarts the clock (after a seek).
    pub fn reset(&mut self) {
        self.start = std::time::Instant::now();
        self.sent = 0;
    }

    pub fn allow(&mut self, n: u64) -> u64 {
        let elapsed = self.start.elapsed().as_secs_f64();
        let allowed = (elapsed * self.rate as f64) as u64 + 1;
        if allowed <= self.sent {
            let wait = (self.sent + 1) as f64 / self.rate as f64 - elapsed;
            std::thread::sleep(std::time::Duration::from_secs_f64(wait.clamp(0.0, 0.1)));
            return 0;
        }
        let n = n.min(allowed - self.sent);
        self.sent += n;
        n
    }
}
