//! Inputs: where a stream's records come from.
//!
//! Contract: `next_batch` returns `Ok(Some(batch))` (possibly empty when idle, so the caller can
//! check for shutdown about every 100 ms), or `Ok(None)` at the end of the input. `position` is the
//! point just after the last record returned, as JSON for checkpoint manifests, and `seek` resumes
//! from such a position. Inputs never route: the engine assigns key groups.

mod file;
mod generate;
mod stdin;

use crate::config::InputConfig;
use crate::record::Record;

pub use file::FileInput;
pub use generate::GenerateInput;
pub use stdin::StdinInput;

pub trait Input: Send {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>>;
    fn position(&self) -> serde_json::Value;
    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()>;
}

/// Builds the input described by `cfg`.
pub fn build(cfg: &InputConfig) -> anyhow::Result<Box<dyn Input>> {
    Ok(match cfg {
        InputConfig::Generate(g) => Box::new(GenerateInput::new(g.clone())),
        InputConfig::File(f) => Box::new(FileInput::open(f.clone())?),
        InputConfig::Stdin(s) => Box::new(StdinInput::new(s.clone())),
    })
}

/// Builds a record from one JSON line; `key_field` names the value field used as record key.
pub(crate) fn json_line_record(line: &[u8], key_field: Option<&str>, offset: u64, now_ms: i64) -> Record {
    let key = key_field.and_then(|f| crate::util::json::field_bytes(line, f));
    Record { key, value: Some(line.to_vec()), headers: vec![], timestamp_ms: now_ms, partition: 0, offset }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
