//! `stdin`: JSON lines from standard input. A reader thread feeds a bounded channel so that
//! `next_batch` never blocks longer than 100 ms (shutdown stays responsive). Position = lines read.
//! Stdin cannot be replayed: with checkpoints a restart restores the state and reads the new
//! stdin from its start (at-least-once); `exactly_once` is refused for it (config validation).

use super::{json_line_record, Input, Position};
use crate::config::{ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;
use crate::util::time::now_ms;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use std::io::BufRead;
use std::time::Duration;

/// `type: stdin` settings: JSON lines; position = lines read (not replayable).
#[derive(Debug, Clone, PartialEq)]
pub struct StdinConfig {
    /// default 1024
    pub batch_size: usize,
    /// JSON field holding the record key; default None
    pub key_field: Option<String>,
}

impl Default for StdinConfig {
    fn default() -> Self {
        StdinConfig { batch_size: super::DEFAULT_INPUT_BATCH_SIZE, key_field: None }
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStdin {
    batch_size: Option<usize>,
    key_field: Option<String>,
}

impl Source for StdinConfig {
    const NAME: &'static str = "stdin";
    type Raw = RawStdin;

    fn from_raw(ctx: &Ctx, raw: RawStdin, path: &YPath) -> Result<Self, ConfigError> {
        let cfg = StdinConfig { batch_size: raw.batch_size.unwrap_or(super::DEFAULT_INPUT_BATCH_SIZE), key_field: raw.key_field };
        ctx.at_least(&path.key("batch_size"), cfg.batch_size, 1)?;
        Ok(cfg)
    }

    /// Not replayable: exactly-once is refused for it.
    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: false, key_field: self.key_field.clone(), ..SourceCaps::default() }
    }

    fn open(&self, _: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        Ok(Box::new(StdinInput::new(self.clone())))
    }
}

type Config = StdinConfig;

/// Lines read (for the record; stdin is not replayed).
#[derive(serde::Serialize, serde::Deserialize)]
struct StdinPosition {
    line: u64,
}

impl super::Position for StdinPosition {
    const SOURCE: &'static str = "stdin";
}

pub struct StdinInput {
    cfg: Config,
    rx: Option<Receiver<std::io::Result<Vec<u8>>>>,
    line: u64,
}

impl StdinInput {
    pub fn new(cfg: Config) -> Self {
        StdinInput { cfg, rx: None, line: 0 }
    }

    fn start(&mut self) -> Receiver<std::io::Result<Vec<u8>>> {
        let (tx, rx) = bounded(8192);
        std::thread::Builder::new()
            .name("stdin-reader".into())
            .spawn(move || {
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                loop {
                    let mut buf = Vec::new();
                    match lock.read_until(b'\n', &mut buf) {
                        Ok(0) => break,
                        Ok(_) => {
                            if tx.send(Ok(buf)).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
            })
            .expect("spawn stdin reader");
        rx
    }
}

impl Input for StdinInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        if self.rx.is_none() {
            self.rx = Some(self.start());
        }
        let rx = self.rx.as_ref().expect("started");
        let mut batch = Vec::new();
        let now = now_ms();
        let mut timeout = Duration::from_millis(100);
        while batch.len() < self.cfg.batch_size {
            match rx.recv_timeout(timeout) {
                Ok(line) => {
                    let line = line.map_err(|e| anyhow::anyhow!("stdin input: {e}"))?;
                    let n = self.line;
                    self.line += 1;
                    let text = line.trim_ascii();
                    if !text.is_empty() {
                        batch.push(json_line_record(text, self.cfg.key_field.as_deref(), n, now));
                    }
                    // Once data flows, take what is already queued without waiting.
                    timeout = Duration::ZERO;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(if batch.is_empty() { None } else { Some(batch) });
                }
            }
        }
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        StdinPosition { line: self.line }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        tracing::warn!(%position, "stdin input: state restored; stdin cannot be replayed, so reading the new stdin from its start (at-least-once)");
        Ok(())
    }
}
