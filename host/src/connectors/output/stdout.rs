//! `stdout`: one line per record on standard output (json or raw). At-least-once: after a crash
//! the records since the last checkpoint are printed again.

use super::{encode_line, parse_format, Output, OutputFormat};
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use anyhow::Context;
use std::io::Write;

/// `type: stdout` settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StdoutConfig {
    pub format: OutputFormat,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStdout {
    format: Option<String>,
}

impl Sink for StdoutConfig {
    const NAME: &'static str = "stdout";
    type Raw = RawStdout;

    fn from_raw(ctx: &Ctx, raw: RawStdout, path: &YPath) -> Result<Self, ConfigError> {
        Ok(StdoutConfig { format: parse_format(ctx, raw.format, path)? })
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { at_least_once: true, ..SinkCaps::default() }
    }

    fn open(&self, _: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        Ok(Box::new(Stdout { format: self.format, buf: Vec::with_capacity(1 << 16) }))
    }
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
