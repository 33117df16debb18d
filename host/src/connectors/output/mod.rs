//! Outputs: where a stream's records go (the main output and `error_output` alike).
//!
//! Contract: `write_batch`/`write_epoch` may buffer; `flush` makes everything written so far
//! durable as far as the output can (called when the stream idles and at the end); `close`
//! flushes and releases. An exactly-once output takes part in the two-phase commit protocol of
//! `checkpoint::commit`: `pre_commit` at each aligned barrier returns a blob for the manifest,
//! its `committer` makes the blob's output visible after the decision, and `recovered` cleans up
//! after recovery replayed the last decision's commits. The outputs in this file are
//! at-least-once: after a crash, records since the last checkpoint are written again.

mod eo_file;

pub use eo_file::{EoFileOut, FileCommitter};

use crate::config::{OutputConfig, OutputFormat};
use crate::record::Record;
use anyhow::Context;
use std::io::Write;
use std::sync::Arc;

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
    fn close(&mut self) -> anyhow::Result<()> {
        self.flush()
    }
}

pub fn build(cfg: &OutputConfig) -> anyhow::Result<Box<dyn Output>> {
    Ok(match cfg {
        OutputConfig::Stdout(s) => Box::new(Stdout { format: s.format, buf: Vec::with_capacity(1 << 16) }),
        OutputConfig::File(f) => {
            if let Some(dir) = f.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("file output: creating {}", dir.display()))?;
            }
            // Appends: a restart never truncates what an earlier run wrote (at-least-once).
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&f.path)
                .with_context(|| format!("file output: cannot open {}", f.path.display()))?;
            Box::new(FileOut { format: f.format, w: std::io::BufWriter::with_capacity(1 << 20, file), path: f.path.clone() })
        }
        OutputConfig::Kafka(k) => Box::new(crate::connectors::kafka::KafkaOutput::open(k.clone())?),
        OutputConfig::Drop => Box::new(Dropping),
    })
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

struct Stdout {
    format: OutputFormat,
    buf: Vec<u8>,
}

impl Output for Stdout {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        for r in records {
            encode_line(&mut self.buf, r, self.format);
        }
        if self.buf.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf).context("stdout output")?;
        out.flush().context("stdout output")?;
        self.buf.clear();
        Ok(())
    }
}

struct FileOut {
    format: OutputFormat,
    w: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
}

impl Output for FileOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        let mut line = Vec::with_capacity(256);
        for r in records {
            line.clear();
            encode_line(&mut line, r, self.format);
            self.w.write_all(&line).with_context(|| format!("file output {}", self.path.display()))?;
        }
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        self.w.flush().with_context(|| format!("file output {}", self.path.display()))
    }
    fn close(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.w.get_ref().sync_all().with_context(|| format!("file output {}", self.path.display()))
    }
}

/// Discards everything (`type: drop`).
pub struct Dropping;

impl Output for Dropping {
    fn write_batch(&mut self, _: &[Record]) -> anyhow::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
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
}
