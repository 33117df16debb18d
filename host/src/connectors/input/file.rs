//! `file`: JSON lines from a file. Position = byte offset and line number after the last record
//! returned; `seek` reopens at that offset. Blank lines are skipped; a trailing line without a
//! newline is still a record.

use super::{json_line_record, Input, Position};
use crate::config::{non_empty_path, ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;
use crate::util::time::now_ms;
use anyhow::Context;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

/// `type: file` input settings: JSON lines; position = byte offset and line number.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInputConfig {
    pub path: PathBuf,
    /// default 1024
    pub batch_size: usize,
    /// JSON field holding the record key; default None (then the stream's key_by applies)
    pub key_field: Option<String>,
    /// Records per second at most (replay throttle); None = as fast as possible (default None)
    pub rate_per_sec: Option<u64>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    path: PathBuf,
    batch_size: Option<usize>,
    key_field: Option<String>,
    rate_per_sec: Option<u64>,
}

impl Source for FileInputConfig {
    const NAME: &'static str = "file";
    type Raw = RawFile;

    fn from_raw(ctx: &Ctx, raw: RawFile, path: &YPath) -> Result<Self, ConfigError> {
        let cfg = FileInputConfig {
            path: non_empty_path(ctx, raw.path, &path.key("path"))?,
            batch_size: raw.batch_size.unwrap_or(super::DEFAULT_INPUT_BATCH_SIZE),
            key_field: raw.key_field,
            rate_per_sec: raw.rate_per_sec,
        };
        ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
        ctx.at_least_if_set(&path.key("rate_per_sec"), cfg.rate_per_sec, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: true, key_field: self.key_field.clone(), ..SourceCaps::default() }
    }

    fn open(&self, _: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        Ok(Box::new(FileInput::open(self.clone())?))
    }
}

type Config = FileInputConfig;

/// The byte offset and line number just after the last record returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct FilePosition {
    byte_offset: u64,
    line: u64,
}

impl super::Position for FilePosition {
    const SOURCE: &'static str = "file";
}

pub struct FileInput {
    cfg: Config,
    reader: BufReader<File>,
    byte_offset: u64,
    line: u64,
    buf: Vec<u8>,
    rate: Option<super::RateLimiter>,
}

impl FileInput {
    pub fn open(cfg: Config) -> anyhow::Result<Self> {
        let f = File::open(&cfg.path).with_context(|| format!("file input: cannot open {}", cfg.path.display()))?;
        let rate = cfg.rate_per_sec.map(super::RateLimiter::new);
        Ok(FileInput { cfg, reader: BufReader::with_capacity(1 << 20, f), byte_offset: 0, line: 0, buf: Vec::new(), rate })
    }
}

impl Input for FileInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        let mut limit = self.cfg.batch_size;
        if let Some(rate) = &mut self.rate {
            limit = rate.allow(limit as u64) as usize;
            if limit == 0 {
                return Ok(Some(Vec::new()));
            }
        }
        let mut batch = Vec::with_capacity(limit);
        let now = now_ms();
        while batch.len() < limit {
            self.buf.clear();
            let n = self.reader.read_until(b'\n', &mut self.buf).with_context(|| format!("file input: reading {}", self.cfg.path.display()))?;
            if n == 0 {
                break;
            }
            self.byte_offset += n as u64;
            let line_no = self.line;
            self.line += 1;
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            batch.push(json_line_record(text, self.cfg.key_field.as_deref(), line_no, now));
        }
        if batch.is_empty() {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        FilePosition { byte_offset: self.byte_offset, line: self.line }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let FilePosition { byte_offset: off, line } = FilePosition::decode(position)?;
        self.reader.seek(SeekFrom::Start(off))?;
        self.byte_offset = off;
        self.line = line;
        if let Some(r) = &mut self.rate {
            r.reset();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_lines_with_keys_and_seeks() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "{{\"u\":\"a\",\"n\":1}}\n\n{{\"u\":\"b\",\"n\":2}}\n{{\"u\":\"c\",\"n\":3}}").unwrap();
        let cfg = Config { path: f.path().into(), batch_size: 2, key_field: Some("u".into()), rate_per_sec: None };
        let mut input = FileInput::open(cfg.clone()).unwrap();
        let b1 = input.next_batch().unwrap().unwrap();
        assert_eq!(b1.len(), 2);
        assert_eq!(b1[1].key.as_deref(), Some(&b"b"[..]));
        assert_eq!(b1[1].offset, 2, "offset is the line number");
        let pos = input.position();
        let b2 = input.next_batch().unwrap().unwrap();
        assert_eq!(b2[0].key.as_deref(), Some(&b"c"[..]));
        assert!(input.next_batch().unwrap().is_none());
        let mut again = FileInput::open(cfg).unwrap();
        again.seek(&pos).unwrap();
        assert_eq!(again.next_batch().unwrap().unwrap()[0].value, b2[0].value);
        let other = again.seek(&serde_json::json!({ "next_id": 3 })).unwrap_err().to_string();
        assert!(other.contains("is not a file position") && other.contains("input type changed"), "{other}");
    }
}
