//! Guest calls, whichever ABI the instance speaks ([`Guest`]): each lowers the host's values into
//! that ABI and lifts the result into ABI-neutral ones (an error becomes its message text; the
//! outcomes stay raw, as [`Returned`], for `outcomes::accept` to check against the inputs).
//!
//! A 0.2.0 batch is lowered from a [`BatchBuf`]: the keys and values of every record copied into
//! one buffer each (Arrow layout), the fixed-width fields into one list each, so lowering it into
//! the guest is a handful of allocations and copies whatever the batch size.

use super::bindings::{v01, v02, Guest};
use super::columns::ColumnBuf;
use super::convert::truncate;
use super::{HostCtx, PluginInfo};
use crate::record::Record;
use wasmtime::Store;

/// A call's result: Ok(value) or the plugin's own error as text.
pub type CallResult<T> = wasmtime::Result<Result<T, String>>;

/// Outcomes as the guest returned them.
pub enum Returned {
    V01(Vec<v01::wit::RecordOutcome>),
    V02(Box<v02::wit::Outcomes>),
}

impl Returned {
    /// The outcomes of a call with no inputs, not made (either ABI's form fits; 0.1's is cheapest).
    pub fn none() -> Self {
        Returned::V01(Vec::new())
    }
}

/// The fields of a `batch-context` (the same in both ABIs).
pub struct BatchCall {
    pub batch_id: u64,
    pub key_group: u32,
    pub partition: u32,
    pub attempt: u32,
    pub epoch: u64,
}

/// The fields of a `timer-context`.
pub struct TimerCall {
    pub key_group: u32,
    pub watermark_ms: i64,
    pub now_ms: i64,
    pub attempt: u32,
    pub epoch: u64,
}

/// A fired timer: user key, time, processing (else event) domain.
pub type FiredTimer<'a> = (&'a [u8], i64, bool);

macro_rules! err_text {
    ($e:expr) => {
        format!("{:?} [{}]: {}", $e.class, $e.code, truncate(&$e.message, 1024))
    };
}

/// The columns of a 0.2.0 batch, reused across calls.
#[derive(Default)]
pub struct BatchBuf {
    keys: ColumnBuf,
    values: ColumnBuf,
    timestamps: Vec<i64>,
    partitions: Vec<u32>,
    offsets: Vec<u64>,
}

impl BatchBuf {
    fn fill(&mut self, records: &[Record]) {
        self.keys.clear();
        self.values.clear();
        self.timestamps.clear();
        self.partitions.clear();
        self.offsets.clear();
        for r in records {
            self.keys.push(r.key.as_deref());
            self.values.push(r.value.as_deref());
            self.timestamps.push(r.timestamp_ms);
            self.partitions.push(r.partition);
            self.offsets.push(r.offset);
        }
    }
}

fn column(c: &ColumnBuf) -> v02::wit::ColumnParam<'_> {
    v02::wit::ColumnParam { data: &c.data, ends: &c.ends, valid: c.valid() }
}

impl Guest {
    pub async fn describe(&self, store: &mut Store<HostCtx>) -> wasmtime::Result<PluginInfo> {
        macro_rules! info {
            ($wit:ident, $info:expr) => {{
                let info = $info;
                let state_formats = info
                    .state_formats
                    .into_iter()
                    .map(|f| {
                        let format = match f.format {
                            $wit::ValueFormat::Bytes => "bytes",
                            $wit::ValueFormat::Utf8 => "utf8",
                            $wit::ValueFormat::Json => "json",
                            $wit::ValueFormat::I64 => "i64",
                        };
                        (f.store, format.to_string())
                    })
                    .collect();
                PluginInfo { name: info.name, version: info.version, abi: info.abi, state_stores: info.state_stores, state_formats, key_by: None }
            }};
        }
        use {v01::wit as w01, v02::wit as w02};
        Ok(match self {
            Guest::V01(p, _) => info!(w01, p.call_describe(store).await?),
            Guest::V02(p, _) => {
                let info = p.call_describe(store).await?;
                let key_by = info.key_by.clone();
                PluginInfo { key_by, ..info!(w02, info) }
            }
        })
    }

    pub async fn init(&self, store: &mut Store<HostCtx>, config: &[(&str, &str)]) -> CallResult<()> {
        Ok(match self {
            Guest::V01(p, _) => p.call_init(store, config).await?.map_err(|e| err_text!(e)),
            Guest::V02(p, _) => p.call_init(store, config).await?.map_err(|e| err_text!(e)),
        })
    }

    pub async fn on_checkpoint(&self, store: &mut Store<HostCtx>, epoch: u64, key_group: u32) -> CallResult<()> {
        Ok(match self {
            Guest::V01(p, _) => p.call_on_checkpoint(store, v01::wit::CheckpointContext { epoch, key_group }).await?.map_err(|e| err_text!(e)),
            Guest::V02(p, _) => p.call_on_checkpoint(store, v02::wit::CheckpointContext { epoch, key_group }).await?.map_err(|e| err_text!(e)),
        })
    }

    pub async fn process_batch(&self, store: &mut Store<HostCtx>, c: BatchCall, records: &[Record], buf: &mut BatchBuf) -> CallResult<Returned> {
        match self {
            Guest::V01(p, _) => {
                use v01::wit;
                let headers: Vec<Vec<wit::HeaderParam<'_>>> =
                    records.iter().map(|r| r.headers.iter().map(|(k, v)| wit::HeaderParam { key: k, value: v }).collect()).collect();
                let input: Vec<wit::RecordIn<'_>> = records
                    .iter()
                    .zip(&headers)
                    .map(|(r, h)| wit::RecordIn {
                        key: r.key.as_deref(),
                        value: r.value.as_deref(),
                        headers: h,
                        timestamp_ms: r.timestamp_ms,
                        partition: r.partition,
                        offset: r.offset,
                    })
                    .collect();
                let ctx =
                    wit::BatchContext { batch_id: c.batch_id, key_group: c.key_group, partition: c.partition, attempt: c.attempt, checkpoint_epoch: c.epoch };
                Ok(p.call_process_batch(store, ctx, &input).await?.map(Returned::V01).map_err(|e| err_text!(e)))
            }
            Guest::V02(p, _) => {
                use v02::wit;
                buf.fill(records);
                let headers: Vec<(u32, wit::HeaderParam<'_>)> = records
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| r.headers.iter().map(move |(k, v)| (i as u32, wit::HeaderParam { key: k, value: v })))
                    .collect();
                let batch = wit::Batch {
                    keys: column(&buf.keys),
                    values: column(&buf.values),
                    timestamps: &buf.timestamps,
                    partitions: &buf.partitions,
                    offsets: &buf.offsets,
                    headers: &headers,
                };
                let ctx =
                    wit::BatchContext { batch_id: c.batch_id, key_group: c.key_group, partition: c.partition, attempt: c.attempt, checkpoint_epoch: c.epoch };
                Ok(p.call_process_batch(store, ctx, batch).await?.map(|o| Returned::V02(Box::new(o))).map_err(|e| err_text!(e)))
            }
        }
    }

    /// Calls `on-timers`; Err when the instance does not export `timer-handler`.
    pub async fn on_timers(&self, store: &mut Store<HostCtx>, c: TimerCall, fired: &[FiredTimer<'_>]) -> CallResult<Returned> {
        macro_rules! call {
            ($wit:path, $h:expr, $ret:expr) => {{
                use $wit as wit;
                let timers: Vec<wit::Timer<'_>> = fired
                    .iter()
                    .map(|&(key, time_ms, processing)| wit::Timer {
                        key,
                        time_ms,
                        domain: if processing { wit::TimeDomain::Processing } else { wit::TimeDomain::Event },
                    })
                    .collect();
                let ctx =
                    wit::TimerContext { key_group: c.key_group, watermark_ms: c.watermark_ms, now_ms: c.now_ms, attempt: c.attempt, checkpoint_epoch: c.epoch };
                Ok($h.call_on_timers(store, ctx, &timers).await?.map($ret).map_err(|e| err_text!(e)))
            }};
        }
        match self {
            Guest::V01(_, Some(h)) => call!(v01::wit, h, Returned::V01),
            Guest::V02(_, Some(h)) => call!(v02::wit, h, |o| Returned::V02(Box::new(o))),
            _ => Err(wasmtime::format_err!("the plugin does not export timer-handler (it was swapped for a version without timers)")),
        }
    }
}
