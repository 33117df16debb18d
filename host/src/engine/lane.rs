//! The columnar lane (docs/ARCHITECTURE.md, *The columnar lane*): a worker's side of a block of
//! JSON lines, and the output stage's.
//!
//! Contract: the worker hands a block whole to its last stage (`Processor::process_lines`; the
//! stages before it only let lines pass, `ProcessorFactory::passes_lines`) and
//! sends the result batches to the output as they are (`OutMsg::Columns`); a block the stage
//! declines takes the record path (`Worker::process_from` over `Lines::to_records`), so its
//! outcomes, errors included, are the record path's. The output stage counts the rows of a
//! `drop` output without encoding them, and turns them into JSON records (nulls omitted, as the
//! record path encodes query results) for any other sink. The input side (`input_loop`) deals
//! the input's blocks to the workers in turn.

use super::msg::{OutMsg, RowMeta, WorkerMsg};
use super::routing::Router;
use super::shared::StreamShared;
use super::stream::Barriers;
use super::worker::Worker;
use crate::connectors::input::Input;
use crate::lines::Lines;
use crate::processor::BatchCtx;
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

impl Worker {
    /// Runs block `lines` of key group `group` through the worker's last stage.
    pub(super) fn process_lines(&mut self, group: u32, lines: Lines) {
        if self.dead || self.halted() {
            return;
        }
        let started = std::time::Instant::now();
        self.batch_id += 1;
        let ctx = BatchCtx { batch_id: self.batch_id, key_group: group, partition: lines.partition, epoch: self.epoch, now_ms: self.now_ms() };
        let last = self.processors.len() - 1;
        let Some(batches) = self.processors[last].process_lines(&ctx, &lines) else {
            return self.process_from(group, 0, lines.to_records());
        };
        let m = &self.shared.metrics;
        m.batches.fetch_add(1, Relaxed);
        m.records_columnar.fetch_add(lines.records as u64, Relaxed);
        self.shared.batch_latency.observe(started.elapsed().as_secs_f64());
        // As the record path counts a batch query, no record is dropped: its results stand for
        // the block's last record, the others emit nothing.
        if batches.iter().all(|b| b.num_rows() == 0) {
            return;
        }
        let meta = RowMeta { timestamp_ms: lines.timestamp_ms, partition: lines.partition, offset: lines.last_line };
        let _ = self.out.send(OutMsg::Columns { epoch: self.epoch, batches, meta });
    }
}

/// A block of the lane in flight between the input and a worker: it no longer counts when this
/// is dropped (the worker is done with the block, or the message was dropped).
pub struct InFlight {
    bytes: usize,
    flight: Arc<Flight>,
}

/// The lane's blocks in flight, and the input thread to wake when one lands.
struct Flight {
    bytes: AtomicUsize,
    blocks: AtomicUsize,
    input: std::thread::Thread,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.flight.bytes.fetch_sub(self.bytes, Relaxed);
        self.flight.blocks.fetch_sub(1, Relaxed);
        self.flight.input.unpark();
    }
}

/// Bytes of blocks in flight per worker before the input waits, once each worker has two blocks
/// (one being processed, one queued). More only held memory (100,000-line blocks are ~6 MB), and a
/// reader whose buffers all sit in queues allocates fresh ones, which cost a page fault per 4 KiB:
/// most of the reader's time. Small blocks stay bounded by the channels' capacity.
const IN_FLIGHT_BYTES_PER_WORKER: usize = 4 << 20;

/// The input loop of the columnar lane: blocks of lines, dealt to the workers in turn, each
/// filed under its worker's first key group (the stage keeps no state), the bytes in flight
/// bounded (`IN_FLIGHT_BYTES_PER_WORKER`); barriers as in `input_loop` (no event time in the
/// lane, so no watermarks).
pub(super) fn input_loop(
    input: &mut dyn Input,
    router: &Router,
    inboxes: &[Sender<WorkerMsg>],
    shared: &StreamShared,
    stop: &AtomicBool,
    barriers: &mut Barriers<'_>,
) {
    let groups: Vec<u32> = (0..inboxes.len()).map(|w| router.groups_of(w).first().copied().unwrap_or(0)).collect();
    let flight = Arc::new(Flight { bytes: AtomicUsize::new(0), blocks: AtomicUsize::new(0), input: std::thread::current() });
    let full = || flight.blocks.load(Relaxed) >= 2 * inboxes.len() && flight.bytes.load(Relaxed) >= IN_FLIGHT_BYTES_PER_WORKER * inboxes.len();
    let stopped = || stop.load(Relaxed) || shared.stop.load(Relaxed);
    let mut turn = 0;
    while !stopped() {
        if !barriers.between_reads(input, inboxes, shared) {
            break;
        }
        // Wait for a block to land first, so the reader refills a buffer it gave back.
        if full() {
            std::thread::park_timeout(Duration::from_millis(20));
            continue;
        }
        match input.next_lines() {
            Ok(Some(lines)) if lines.records == 0 => continue,
            Ok(Some(lines)) => {
                shared.metrics.records_in.fetch_add(lines.records as u64, Relaxed);
                shared.metrics.bytes_in.fetch_add(lines.value_bytes as u64, Relaxed);
                let bytes = lines.text.len();
                flight.bytes.fetch_add(bytes, Relaxed);
                flight.blocks.fetch_add(1, Relaxed);
                let slot = InFlight { bytes, flight: flight.clone() };
                let w = turn % inboxes.len();
                turn += 1;
                if inboxes[w].send(WorkerMsg::Lines { group: groups[w], lines, slot }).is_err() {
                    return;
                }
            }
            Ok(None) => break,
            Err(e) => {
                shared.fail(format!("stream {}: input failed: {e:#}", shared.name));
                break;
            }
        }
    }
}
