//! Messages on the stream's channels. Barriers are a message kind of their own in every channel,
//! ordered with the data: everything before barrier `e` belongs to epoch `e`.

use crate::record::Record;

/// A record with its key group, as the router sends it to the group's worker.
pub struct Routed {
    pub group: u32,
    pub record: Record,
}

/// Input -> worker of tier 0, and worker of one tier -> worker of the next (`super::exchange`).
pub enum WorkerMsg {
    /// Records read by the input.
    Data(Vec<Routed>),
    /// A block of JSON lines read by the input (the columnar lane), for key group `group`.
    Lines {
        group: u32,
        lines: crate::lines::Lines,
        /// Freed when the worker is done with the block (`super::lane::InFlight`).
        slot: super::lane::InFlight,
    },
    /// Records an upstream worker produced in epoch `epoch`.
    Exchanged {
        epoch: u64,
        records: Vec<Routed>,
    },
    /// The watermark (`super::watermark`) rose to `time_ms`: no record at or before it is
    /// expected any more. `from` is the sender's index in its tier (0 for the input), `epoch`
    /// the epoch it was sent in (for alignment after an exchange).
    Watermark {
        from: usize,
        epoch: u64,
        time_ms: i64,
    },
    /// End of epoch `epoch`; `clock_ms` is the TTL clock of the epoch that follows it.
    Barrier {
        epoch: u64,
        clock_ms: i64,
    },
    Eof,
}

/// Worker -> output. The epoch of data and the worker of barriers/EOF are carried for the
/// checkpoint coordinator; the output stage of this version only counts them.
#[allow(dead_code)]
pub enum OutMsg {
    /// Output, error and named-output records (index into the stream's `outputs`) of one
    /// processed batch, tagged with the epoch they belong to.
    Data {
        epoch: u64,
        records: Vec<Record>,
        errors: Vec<Record>,
        side: Vec<(u16, Record)>,
    },
    /// The result rows of one block of the columnar lane (`super::worker`), as Arrow batches:
    /// records for the main output with no key, `meta`'s timestamp, partition and offset.
    Columns {
        epoch: u64,
        batches: Vec<datafusion::arrow::array::RecordBatch>,
        meta: RowMeta,
    },
    Barrier {
        epoch: u64,
        worker: usize,
    },
    Eof {
        worker: usize,
    },
}

/// What every record of a columnar result carries besides its value.
#[derive(Debug, Clone, Copy)]
pub struct RowMeta {
    pub timestamp_ms: i64,
    pub partition: u32,
    pub offset: u64,
}

/// How long no message must arrive before the stream counts as idle. A channel that is empty
/// for a moment between two batches is not idle: flushing there would end an output's open
/// write (a COPY, a run of unacknowledged publishes) once every few batches.
pub const IDLE_AFTER: std::time::Duration = std::time::Duration::from_millis(5);

/// The next message of `rx`; when none arrives within [`IDLE_AFTER`], runs `idle` first (the
/// moment to flush what is buffered), then blocks. None once every sender is gone.
pub fn next_or_idle<T>(rx: &crossbeam_channel::Receiver<T>, idle: impl FnOnce()) -> Option<T> {
    match rx.recv_timeout(IDLE_AFTER) {
        Ok(m) => Some(m),
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
            idle();
            rx.recv().ok()
        }
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => None,
    }
}
