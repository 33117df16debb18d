//! What the threads of one stream share: stop flag, first failure, counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct StreamMetrics {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub records_dropped: AtomicU64,
    /// Records sent to error_output (or logged when there is none).
    pub records_failed: AtomicU64,
    pub batches: AtomicU64,
    /// Records the columnar lane ran as whole blocks (not through the record path).
    pub records_columnar: AtomicU64,
    /// Batches that failed after retries.
    pub batch_failures: AtomicU64,
    /// Highest epoch whose barrier reached the output from every worker.
    pub last_aligned_epoch: AtomicU64,
    /// Keyed state held, summed over workers (updated after every batch).
    pub state_entries: std::sync::atomic::AtomicI64,
    pub state_bytes: std::sync::atomic::AtomicI64,
    /// Bytes (keys + values + headers) read and written.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

#[derive(Debug)]
pub struct StreamShared {
    pub name: String,
    /// Set when the stream must stop early (failure); the input stops reading.
    pub stop: AtomicBool,
    failure: Mutex<Option<String>>,
    pub metrics: StreamMetrics,
    /// Seconds per batch through the pipeline.
    pub batch_latency: prometheus_client::metrics::histogram::Histogram,
    /// Time to restore state at start, when the stream restored a checkpoint.
    pub restore_ms: AtomicU64,
    /// Kafka figures (lag per partition, transactions); empty without Kafka.
    pub kafka: std::sync::Arc<crate::connectors::kafka::KafkaMetrics>,
    /// What the stream's processors share (plugin counters, live-swap slots).
    pub pipeline: std::sync::Arc<crate::processor::PipelineShared>,
}

impl StreamShared {
    pub fn new(name: String) -> Self {
        StreamShared {
            name,
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            metrics: StreamMetrics::default(),
            batch_latency: prometheus_client::metrics::histogram::Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 4.0, 10)),
            restore_ms: AtomicU64::new(0),
            kafka: Default::default(),
            pipeline: Default::default(),
        }
    }

    /// The context of the processors instantiated for `worker`.
    pub fn processor_context(&self, worker: usize) -> crate::processor::ProcessorContext {
        crate::processor::ProcessorContext { stream: self.name.as_str().into(), worker, pipeline: self.pipeline.clone() }
    }

    /// Records the first failure and asks the stream to stop.
    pub fn fail(&self, msg: String) {
        tracing::error!(stream = %self.name, "{msg}");
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(msg);
        }
        self.stop.store(true, Relaxed);
    }

    /// Forgets a failure that ended one group session only (fenced by a newer owner): the
    /// stream goes on with its next session.
    pub fn clear_failure(&self) -> Option<String> {
        self.stop.store(false, Relaxed);
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn failed(&self) -> bool {
        self.stop.load(Relaxed) && self.failure().is_some()
    }
}

/// What the operations endpoint (`crate::metrics`) reads of one running stream.
#[derive(Clone, Debug)]
pub struct StreamProbe {
    pub shared: std::sync::Arc<StreamShared>,
    /// (backend description, checkpoint metrics) when the stream checkpoints.
    pub checkpoint: Option<(String, std::sync::Arc<crate::checkpoint::coordinator::CheckpointMetrics>)>,
}
