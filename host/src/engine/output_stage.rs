//! The output stage: the thread that takes what workers send (records, error records,
//! named-output records, barriers, EOFs) and writes it to the stream's sinks.
//!
//! Contract: data is written to the sinks in arrival order, tagged with its epoch; sinks are
//! flushed whenever the inbox runs dry, so sparse output is never held back waiting for a barrier
//! or a full buffer. When barrier `e` has arrived from every worker, phase one of the commit
//! protocol runs on every sink and the blobs go to the checkpoint coordinator together. The
//! first sink failure fails the stream; from then on everything is dropped (nothing after it
//! could be committed). The stage ends after every worker's EOF and closes the sinks.

use super::msg::OutMsg;
use super::{Sinks, StreamShared};
use crate::checkpoint::coordinator::CkptMsg;
use crate::record::Record;
use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

pub(super) struct OutputStage<'a> {
    sinks: Sinks,
    workers: usize,
    shared: &'a StreamShared,
    ckpt: Option<Sender<CkptMsg>>,
    /// Barriers seen per epoch, until every worker's has arrived.
    aligned: BTreeMap<u64, usize>,
    eofs: usize,
    /// A sink failed: the stream has failed and everything else is dropped.
    broken: bool,
    /// Written since the last flush.
    dirty: bool,
}

impl<'a> OutputStage<'a> {
    pub fn new(sinks: Sinks, workers: usize, shared: &'a StreamShared, ckpt: Option<Sender<CkptMsg>>) -> Self {
        OutputStage { sinks, workers, shared, ckpt, aligned: BTreeMap::new(), eofs: 0, broken: false, dirty: false }
    }

    /// Runs until every worker's EOF (or every sender is gone), then closes the sinks.
    pub fn run(mut self, rx: Receiver<OutMsg>) {
        while let Some(msg) = super::msg::next_or_idle(&rx, || self.flush()) {
            match msg {
                OutMsg::Data { epoch, records, errors, side } => self.on_data(epoch, records, errors, side),
                OutMsg::Columns { epoch, batches, meta } => self.on_columns(epoch, batches, meta),
                OutMsg::Barrier { epoch, .. } => self.on_barrier(epoch),
                OutMsg::Eof { .. } => {
                    self.eofs += 1;
                    if self.eofs == self.workers {
                        break;
                    }
                }
            }
        }
        if !self.broken {
            let r = self.sinks.close();
            self.check(r);
        }
    }

    fn check(&mut self, r: anyhow::Result<()>) {
        if let Err(e) = r {
            if !self.broken {
                self.shared.fail(format!("stream {}: output failed: {e:#}", self.shared.name));
            }
            self.broken = true;
        }
    }

    fn flush(&mut self) {
        if self.dirty && !self.broken {
            let r = self.sinks.flush();
            self.check(r);
        }
        self.dirty = false;
    }

    fn on_data(&mut self, epoch: u64, records: Vec<Record>, errors: Vec<Record>, side: Vec<(u16, Record)>) {
        if self.broken {
            return;
        }
        self.dirty = true;
        let m = &self.shared.metrics;
        if !records.is_empty() {
            m.records_out.fetch_add(records.len() as u64, Relaxed);
            m.bytes_out.fetch_add(records.iter().map(|r| r.size() as u64).sum(), Relaxed);
            let r = self.sinks.output.write_epoch(epoch, &records);
            self.check(r);
        }
        if !side.is_empty() {
            m.records_out.fetch_add(side.len() as u64, Relaxed);
            m.bytes_out.fetch_add(side.iter().map(|(_, r)| r.size() as u64).sum(), Relaxed);
            let r = self.sinks.write_side(epoch, side);
            self.check(r);
        }
        if !errors.is_empty() {
            match self.sinks.errors.as_mut() {
                Some(e) => {
                    let r = e.write_epoch(epoch, &errors).map_err(|e| e.context("error_output"));
                    self.check(r);
                }
                None => {
                    for r in &errors {
                        let text = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                        tracing::warn!(stream = %self.shared.name, "failed record (no error_output): {text}");
                    }
                }
            }
        }
    }

    /// Result rows of the columnar lane: counted for a `drop` output, else written as records.
    fn on_columns(&mut self, epoch: u64, batches: Vec<datafusion::arrow::array::RecordBatch>, meta: super::msg::RowMeta) {
        if self.broken {
            return;
        }
        if self.sinks.output.discards() {
            // Counted as the record path counts them: rows, and the bytes of their JSON lines.
            let m = &self.shared.metrics;
            m.records_out.fetch_add(batches.iter().map(|b| b.num_rows() as u64).sum(), Relaxed);
            match crate::processor::sql::json_rows_size(&batches) {
                Ok(bytes) => m.bytes_out.fetch_add(bytes, Relaxed),
                Err(e) => return self.check(Err(anyhow::Error::new(e).context("sizing query results"))),
            };
            return;
        }
        match crate::processor::sql::result_records(&batches, (meta.timestamp_ms, meta.partition, meta.offset)) {
            Ok(records) => self.on_data(epoch, records, vec![], vec![]),
            Err(e) => self.check(Err(anyhow::Error::new(e).context("encoding query results"))),
        }
    }

    fn on_barrier(&mut self, epoch: u64) {
        let c = self.aligned.entry(epoch).or_default();
        *c += 1;
        if *c < self.workers {
            return;
        }
        self.aligned.remove(&epoch);
        if !self.broken {
            // Phase one of the commit protocol for every sink, reported together.
            match self.sinks.pre_commit(epoch) {
                Ok(commits) => {
                    if let Some(tx) = &self.ckpt {
                        let _ = tx.send(CkptMsg::SinkPrepared { epoch, commits });
                    }
                }
                Err(e) => self.check(Err(e)),
            }
        }
        self.shared.metrics.last_aligned_epoch.store(epoch, Relaxed);
        tracing::debug!(stream = %self.shared.name, epoch, "barrier aligned at the output");
    }
}
