//! `file` output: JSON lines (or raw values) in one file. Without checkpoints it appends
//! (at-least-once: a restart never truncates what an earlier run wrote); with
//! `state_management.exactly_once` it writes per-epoch parts committed after each decision
//! (`eo_file.rs`).

use super::{encode_line, parse_format, EoFileOut, Output, OutputFormat};
use crate::config::{non_empty_path, ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// `type: file` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutputConfig {
    pub path: PathBuf,
    pub format: OutputFormat,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    path: PathBuf,
    format: Option<String>,
}

impl Sink for FileOutputConfig {
    const NAME: &'static str = "file";
    type Raw = RawFile;

    fn from_raw(ctx: &Ctx, raw: RawFile, path: &YPath) -> Result<Self, ConfigError> {
        let out_path = non_empty_path(ctx, raw.path, &path.key("path"))?;
        Ok(FileOutputConfig { path: out_path, format: parse_format(ctx, raw.format, path)? })
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { file: Some(self.path.clone()), ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        if let (true, Some(at)) = (cx.exactly_once, cx.place) {
            return Ok(Box::new(EoFileOut::open(&self.path, self.format, at.generation)?));
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("file output: creating {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("file output: cannot open {}", self.path.display()))?;
        Ok(Box::new(FileOut { format: self.format, w: std::io::BufWriter::with_capacity(1 << 20, file), path: self.path.clone() }))
    }
}

struct FileOut {
    format: OutputFormat,
    w: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
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
