//! `stdin`: JSON lines from standard input. A reader thread feeds a bounded channel so that
//! `next_batch` never blocks longer than 100 ms (shutdown stays responsive). Position = lines read.
//! Stdin cannot be replayed: with checkpoints a restart restores the state and reads the new
//! stdin from its start (at-least-once); `exactly_once` is refused for it (config validation).

use super::{json_line_record, Input};
use crate::config::StdinInput as Config;
use crate::record::Record;
use crate::util::time::now_ms;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use std::io::BufRead;
use std::time::Duration;

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
        serde_json::json!({ "line": self.line })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        tracing::warn!(%position, "stdin input: state restored; stdin cannot be replayed, so reading the new stdin from its start (at-least-once)");
        Ok(())
    }
}
