//! `file`: JSON lines from a file. Position = byte offset and line number after the last record
//! returned; `seek` reopens at that offset. Blank lines are skipped; a trailing line without a
//! newline is still a record. `next_lines` reads the same lines as one block (the columnar lane,
//! when the file has no `key_field`): `batch_size` lines, blank ones included.

use super::{json_line_record, Input, Position};
use crate::config::{non_empty_path, ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::registry::{Source, SourceCx};
use crate::lines::Lines;
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
        SourceCaps { replayable: true, key_field: self.key_field.clone(), lines: self.key_field.is_none(), ..SourceCaps::default() }
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
    /// Buffers of the blocks `next_lines` read, back from the workers.
    recycler: crate::lines::Recycler,
}

impl FileInput {
    pub fn open(cfg: Config) -> anyhow::Result<Self> {
        let f = File::open(&cfg.path).with_context(|| format!("file input: cannot open {}", cfg.path.display()))?;
        let rate = cfg.rate_per_sec.map(super::RateLimiter::new);
        Ok(FileInput { cfg, reader: BufReader::with_capacity(1 << 20, f), byte_offset: 0, line: 0, buf: Vec::new(), rate, recycler: Default::default() })
    }
}

impl FileInput {
    /// How many records may be read now (the rate cap; 0 after a short sleep when none may).
    fn allowance(&mut self) -> usize {
        match &mut self.rate {
            Some(rate) => rate.allow(self.cfg.batch_size as u64) as usize,
            None => self.cfg.batch_size,
        }
    }

    /// Appends the next line (newline included) to `buf`; false at the end of the file.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<bool> {
        let n = self.reader.read_until(b'\n', buf).with_context(|| format!("file input: reading {}", self.cfg.path.display()))?;
        self.byte_offset += n as u64;
        self.line += (n > 0) as u64;
        Ok(n > 0)
    }
}

impl Input for FileInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        let limit = self.allowance();
        if limit == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut batch = Vec::with_capacity(limit);
        let now = now_ms();
        let mut buf = std::mem::take(&mut self.buf);
        while batch.len() < limit {
            buf.clear();
            let line_no = self.line;
            if !self.read_line(&mut buf)? {
                break;
            }
            let text = buf.trim_ascii();
            if !text.is_empty() {
                batch.push(json_line_record(text, self.cfg.key_field.as_deref(), line_no, now));
            }
        }
        self.buf = buf;
        Ok((!batch.is_empty()).then_some(batch))
    }

    fn next_lines(&mut self) -> anyhow::Result<Option<Lines>> {
        let limit = self.allowance();
        if limit == 0 {
            return Ok(Some(Lines::default()));
        }
        let mut block = Lines { text: self.recycler.text(limit * 64), first_line: self.line, timestamp_ms: now_ms(), objects: true, ..Lines::default() };
        // Where the line not ended yet starts in the block's text.
        let mut line_start = 0;
        while block.records < limit {
            let read = self.reader.fill_buf().with_context(|| format!("file input: reading {}", self.cfg.path.display()))?;
            if read.is_empty() {
                // The last line, without a newline.
                if line_start < block.text.len() {
                    let line = block.text[line_start..].trim_ascii();
                    block.count(crate::lines::shape(line), self.line);
                    self.line += 1;
                }
                break;
            }
            // One pass over what was read: each line is looked at where it lies (a line begun in
            // an earlier read is completed in the block first), and the block takes the bytes up
            // to its last line in one copy.
            let old = block.text.len();
            let (mut copied, mut from, mut cut) = (0, 0, None);
            for p in crate::lines::newlines(read) {
                let line = if line_start < old {
                    block.text.extend_from_slice(&read[..=p]);
                    copied = p + 1;
                    &block.text[line_start..old + p]
                } else {
                    &read[from..p]
                }
                .trim_ascii();
                block.count(crate::lines::shape(line), self.line);
                self.line += 1;
                from = p + 1;
                line_start = old + from;
                if block.records == limit {
                    cut = Some(from);
                    break;
                }
            }
            let took = cut.unwrap_or(read.len());
            block.text.extend_from_slice(&read[copied.min(took)..took]);
            self.reader.consume(took);
            self.byte_offset += took as u64;
        }
        Ok((block.records > 0).then_some(block))
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

    /// Lines cut by the reader's buffer anywhere (capacities 1 to 40 bytes): blocks still hold
    /// exactly what `next_batch` returns, at the same positions.
    #[test]
    fn blocks_are_exact_whatever_the_reads_cut() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let text = "{\"n\":1}\n\n  {\"n\":22} \r\n{\"n\":333}\n\n\n[4]\n{\"a\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n{\"n\":5}\n \n{\"n\":6}";
        write!(f, "{text}").unwrap();
        for cap in 1..=40 {
            for batch_size in [1, 2, 3, 100] {
                let cfg = Config { path: f.path().into(), batch_size, key_field: None, rate_per_sec: None };
                let (mut by_lines, mut by_records) = (FileInput::open(cfg.clone()).unwrap(), FileInput::open(cfg).unwrap());
                by_lines.reader = BufReader::with_capacity(cap, File::open(f.path()).unwrap());
                let (mut lines, mut records) = (vec![], vec![]);
                while let Some(block) = by_lines.next_lines().unwrap() {
                    assert!(block.records <= batch_size);
                    assert_eq!(block.value_bytes, block.to_records().iter().map(Record::size).sum::<usize>());
                    assert_eq!(block.objects, block.each().all(|(_, l)| l.starts_with(b"{") && l.ends_with(b"}")), "cap {cap}");
                    lines.extend(block.to_records().into_iter().map(|r| (r.offset, r.value)));
                }
                while let Some(batch) = by_records.next_batch().unwrap() {
                    records.extend(batch.into_iter().map(|r| (r.offset, r.value)));
                }
                assert_eq!(lines, records, "cap {cap}, batch_size {batch_size}");
                assert_eq!(lines.len(), 7);
                assert_eq!(by_lines.position(), by_records.position(), "cap {cap}, batch_size {batch_size}");
            }
        }
    }

    #[test]
    fn blocks_of_lines_hold_the_records_next_batch_returns() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "{{\"n\":1}}\n\n{{\"n\":2}}\n{{\"n\":3}}\n{{\"n\":4}}").unwrap();
        let cfg = Config { path: f.path().into(), batch_size: 2, key_field: None, rate_per_sec: None };
        let (mut by_lines, mut by_records) = (FileInput::open(cfg.clone()).unwrap(), FileInput::open(cfg).unwrap());
        let mut blocks = 0;
        while let Some(block) = by_lines.next_lines().unwrap() {
            blocks += 1;
            let mut expected = by_records.next_batch().unwrap().unwrap();
            let got = block.to_records();
            for r in &mut expected {
                r.timestamp_ms = block.timestamp_ms;
            }
            assert_eq!(got, expected, "block {blocks}");
            assert_eq!(block.value_bytes, expected.iter().map(Record::size).sum::<usize>());
            assert_eq!(by_lines.position(), by_records.position(), "the same position after block {blocks}");
        }
        assert_eq!(blocks, 2, "2 records per block, the blank line not counted");
        assert!(by_records.next_batch().unwrap().is_none());
        let mut again = FileInput::open(Config { path: f.path().into(), batch_size: 10, key_field: None, rate_per_sec: None }).unwrap();
        again.seek(&by_lines.position()).unwrap();
        assert!(again.next_lines().unwrap().is_none(), "the position is after the last line");
    }
}
