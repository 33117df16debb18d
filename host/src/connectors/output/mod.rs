//! Outputs: where a stream's records go (the main output and `error_output` alike).
//!
//! Contract: `write_batch`/`write_epoch` may buffer; `flush` makes everything written so far
//! durable as far as the output can (called when the stream idles and at the end); `close`
//! flushes and releases. An exactly-once output takes part in the two-phase commit protocol of
//! `checkpoint::commit`: `pre_commit` at each aligned barrier returns a blob for the manifest,
//! its `committer` makes the blob's output visible after the decision, and `recovered` cleans up
//! after recovery replayed the last decision's commits. The outputs in this file are
//! at-least-once: after a crash, records since the last checkpoint are written again.

mod drop;
mod eo_file;
mod file;
pub mod http;
mod parquet_part;
pub mod postgres;
pub mod redis;
pub mod s3;
mod stdout;

pub use drop::{DropConfig, Dropping};
pub use eo_file::{EoFileOut, FileCommitter};
pub use file::FileOutputConfig;
pub use http::HttpOutputConfig;
pub use postgres::PostgresOutputConfig;
pub use redis::RedisOutputConfig;
pub use s3::S3OutputConfig;
pub use stdout::StdoutConfig;

use crate::config::{ConfigError, Ctx, YPath};
use crate::record::Record;
use std::sync::Arc;

/// How a file or stdout output writes each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// One JSON object per record: the value if it is JSON, else the value as a JSON string. default
    #[default]
    Json,
    /// The raw value bytes followed by a newline.
    Raw,
}

crate::config::named_enum!(OutputFormat { "json" => Json, "raw" => Raw });

/// The `format` key of a stdout or file output at `path`.
pub(crate) fn parse_format(ctx: &Ctx, raw: Option<String>, path: &YPath) -> Result<OutputFormat, ConfigError> {
    ctx.named(raw, &path.key("format"), "format", OutputFormat::NAMES, OutputFormat::from_name, OutputFormat::default())
}

pub trait Output: Send {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()>;
    /// Writes records of `epoch` (exactly-once outputs keep epochs apart).
    fn write_epoch(&mut self, _epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        self.write_batch(records)
    }
    /// Phase one of the commit protocol for every epoch up to `epoch`, at its aligned barrier:
    /// makes what was written durable (invisible until committed) and returns what the
    /// committer needs, stored in the manifest; None when there is nothing to commit.
    fn pre_commit(&mut self, _epoch: u64) -> anyhow::Result<Option<serde_json::Value>> {
        self.flush()?;
        Ok(None)
    }
    /// Phase two: the committer of this output's blobs (None: it never returns one).
    fn committer(&self) -> Option<Arc<dyn crate::checkpoint::Committer>> {
        None
    }
    /// Called once at start, after recovery committed what the last decision (`last_decided`)
    /// left: deletes what earlier runs prepared that no decision covers, and refuses output
    /// that belongs to no decision of this state.
    fn recovered(&mut self, _last_decided: Option<u64>) -> anyhow::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()>;
    /// It writes nothing anywhere (`drop`): records need not even be encoded for it.
    fn discards(&self) -> bool {
        false
    }
    fn close(&mut self) -> anyhow::Result<()> {
        self.flush()
    }
}

/// Appends one line for `r`: JSON values verbatim, other values as a JSON string (json format);
/// the raw value bytes (raw format).
pub fn encode_line(out: &mut Vec<u8>, r: &Record, format: OutputFormat) {
    let v = r.value.as_deref().unwrap_or_default();
    match format {
        OutputFormat::Raw => out.extend_from_slice(v),
        OutputFormat::Json => {
            let first = v.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{') | Some(b'[')) {
                out.extend_from_slice(v);
            } else {
                crate::util::json::write_str(out, &String::from_utf8_lossy(v));
            }
        }
    }
    out.push(b'\n');
}

/// The idempotency key of each record an output writes: `<stream>/<sink>/<partition>-<offset>-<rank>`,
/// the record's source position and its rank among the records of that position. It is the same
/// when a restart replays a replayable input through a record-by-record pipeline, so a receiver
/// that remembers keys (an HTTP `Idempotency-Key`, a JetStream `Nats-Msg-Id`) gets each record
/// once. (Keys of records a window or a batch query emits follow the batching, which a restart
/// can change.)
pub(crate) struct RecordKeys {
    /// `<stream>/<sink>`
    prefix: String,
    /// The source position of the last record keyed, and how many records before it had it.
    last: Option<(u32, u64)>,
    rank: u64,
}

impl RecordKeys {
    pub fn new(stream: &str, sink: &str) -> Self {
        RecordKeys { prefix: format!("{stream}/{sink}"), last: None, rank: 0 }
    }

    /// The key of `r`, the next record written.
    pub fn next(&mut self, r: &Record) -> String {
        let pos = (r.partition, r.offset);
        self.rank = if self.last == Some(pos) { self.rank + 1 } else { 0 };
        self.last = Some(pos);
        format!("{}/{}-{}-{}", self.prefix, pos.0, pos.1, self.rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_raw_lines() {
        let mut out = Vec::new();
        let r = |v: &str| Record { value: Some(v.as_bytes().to_vec()), ..Default::default() };
        encode_line(&mut out, &r("{\"a\":1}"), OutputFormat::Json);
        encode_line(&mut out, &r("plain \"text\""), OutputFormat::Json);
        encode_line(&mut out, &r("plain"), OutputFormat::Raw);
        assert_eq!(String::from_utf8(out).unwrap(), "{\"a\":1}\n\"plain \\\"text\\\"\"\nplain\n");
    }

    #[test]
    fn record_keys_rank_records_of_one_position() {
        let mut keys = RecordKeys::new("s", "output");
        let at = |partition, offset| Record { partition, offset, ..Default::default() };
        let got: Vec<String> = [at(0, 5), at(0, 5), at(1, 5), at(0, 6)].iter().map(|r| keys.next(r)).collect();
        assert_eq!(got, ["s/output/0-5-0", "s/output/0-5-1", "s/output/1-5-0", "s/output/0-6-0"]);
    }
}
