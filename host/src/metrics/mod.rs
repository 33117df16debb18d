//! The operations endpoint: Prometheus metrics at `/metrics`, liveness at `/health`, readiness at
//! `/ready`, on the address of the YAML's `http:` section (loopback in every example).
//!
//! Contract: metrics are read from the streams' shared counters at scrape time through a
//! `prometheus-client` collector (labels: `stream`; per `wasm` processor also `processor` and
//! `plugin`, see `processors`); nothing on the data path waits for a scrape. `/ready` answers 200 while every stream runs and none has failed, 503 otherwise.
//! Credentials never appear: the backend is described by `ObjectStore::describe`.

mod http;
mod processors;

pub use http::serve;

use crate::checkpoint::coordinator::CheckpointMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

pub use crate::engine::StreamProbe;

/// The streams being served, plus whether they are all up.
#[derive(Debug, Default)]
pub struct Probes {
    pub streams: RwLock<Vec<StreamProbe>>,
    /// Set once the streams are built and running; cleared when they end.
    pub running: std::sync::atomic::AtomicBool,
}

impl Probes {
    pub fn ready(&self) -> bool {
        self.running.load(Relaxed) && self.streams.read().unwrap_or_else(|p| p.into_inner()).iter().all(|s| !s.shared.failed())
    }
}

#[derive(Debug)]
struct StreamsCollector(Arc<Probes>);

type Getter = fn(&StreamProbe) -> Option<i64>;

const METRICS: &[(&str, &str, MetricType, Getter)] = &[
    ("arkflow_records_in", "Records read from the input.", MetricType::Counter, |s| Some(s.shared.metrics.records_in.load(Relaxed) as i64)),
    ("arkflow_records_out", "Records written to the main and named outputs.", MetricType::Counter, |s| Some(s.shared.metrics.records_out.load(Relaxed) as i64)),
    ("arkflow_records_dropped", "Records dropped by processors.", MetricType::Counter, |s| Some(s.shared.metrics.records_dropped.load(Relaxed) as i64)),
    (
        "arkflow_records_failed",
        "Records sent to error_output (or logged).",
        MetricType::Counter,
        |s| Some(s.shared.metrics.records_failed.load(Relaxed) as i64),
    ),
    ("arkflow_records_columnar", "Records the columnar lane ran as whole blocks.", MetricType::Counter, |s| {
        Some(s.shared.metrics.records_columnar.load(Relaxed) as i64)
    }),
    ("arkflow_batches", "Batches processed.", MetricType::Counter, |s| Some(s.shared.metrics.batches.load(Relaxed) as i64)),
    ("arkflow_batch_failures", "Batches that failed after retries.", MetricType::Counter, |s| Some(s.shared.metrics.batch_failures.load(Relaxed) as i64)),
    ("arkflow_bytes_in", "Bytes (keys, values, headers) read from the input.", MetricType::Counter, |s| Some(s.shared.metrics.bytes_in.load(Relaxed) as i64)),
    ("arkflow_bytes_out", "Bytes (keys, values, headers) written to the output.", MetricType::Counter, |s| {
        Some(s.shared.metrics.bytes_out.load(Relaxed) as i64)
    }),
    ("arkflow_plugin_traps", "Plugin calls that trapped (each attempt).", MetricType::Counter, |s| Some(s.shared.pipeline.plugin_traps.load(Relaxed) as i64)),
    ("arkflow_plugin_deadline_kills", "Plugin calls stopped at limits.batch_timeout_ms.", MetricType::Counter, |s| {
        Some(s.shared.pipeline.deadline_kills.load(Relaxed) as i64)
    }),
    ("arkflow_plugin_swaps", "Live plugin swaps armed (each takes effect at a checkpoint barrier).", MetricType::Counter, |s| {
        Some(s.shared.pipeline.plugin_swaps.load(Relaxed) as i64)
    }),
    ("arkflow_plugin_swaps_refused", "Plugin reloads refused (the running version kept).", MetricType::Counter, |s| {
        Some(s.shared.pipeline.plugin_swaps_refused.load(Relaxed) as i64)
    }),
    ("arkflow_plugin_swap_pause_us", "Longest worker stall of the last plugin swap, microseconds.", MetricType::Gauge, |s| {
        Some(s.shared.pipeline.plugin_swap_pause_us.load(Relaxed) as i64)
    }),
    ("arkflow_restore_ms", "Time spent restoring state at start.", MetricType::Gauge, |s| Some(s.shared.restore_ms.load(Relaxed) as i64)),
    (
        "arkflow_last_aligned_epoch",
        "Last barrier aligned at the output.",
        MetricType::Gauge,
        |s| Some(s.shared.metrics.last_aligned_epoch.load(Relaxed) as i64),
    ),
    ("arkflow_state_entries", "Keyed state entries held in RAM (local state count).", MetricType::Gauge, |s| {
        Some(s.shared.metrics.state_entries.load(Relaxed))
    }),
    ("arkflow_state_bytes", "Bytes of keys and values of keyed state held in RAM.", MetricType::Gauge, |s| Some(s.shared.metrics.state_bytes.load(Relaxed))),
    ("arkflow_checkpoint_current_epoch", "Epoch of the checkpoint in progress (current checkpoint id).", MetricType::Gauge, |s| {
        ck(s, |m| m.current_epoch.load(Relaxed))
    }),
    ("arkflow_checkpoint_last_decided_epoch", "Last decided checkpoint.", MetricType::Gauge, |s| ck(s, |m| m.last_decided.load(Relaxed))),
    ("arkflow_checkpoints_decided", "Checkpoints decided.", MetricType::Counter, |s| ck(s, |m| m.decided.load(Relaxed))),
    ("arkflow_checkpoints_failed", "Checkpoints abandoned before their decision.", MetricType::Counter, |s| ck(s, |m| m.failures.load(Relaxed))),
    ("arkflow_checkpoint_last_duration_ms", "Duration of the last decided checkpoint.", MetricType::Gauge, |s| ck(s, |m| m.last_duration_ms.load(Relaxed))),
    ("arkflow_checkpoint_last_bytes", "State bytes uploaded by the last decided checkpoint.", MetricType::Gauge, |s| ck(s, |m| m.last_bytes.load(Relaxed))),
];

fn ck(s: &StreamProbe, f: impl Fn(&CheckpointMetrics) -> u64) -> Option<i64> {
    s.checkpoint.as_ref().map(|(_, m)| f(m) as i64)
}

impl Collector for StreamsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let streams = self.0.streams.read().unwrap_or_else(|p| p.into_inner()).clone();
        for (name, help, kind, get) in METRICS {
            let values: Vec<(&str, i64)> = streams.iter().filter_map(|s| get(s).map(|v| (s.shared.name.as_str(), v))).collect();
            if values.is_empty() {
                continue;
            }
            let mut metric = encoder.encode_descriptor(name, help, None, *kind)?;
            for (stream, v) in values {
                let labels = [("stream", stream)];
                let mut family = metric.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => family.encode_counter::<NoLabelSet, _, u64>(&(v.max(0) as u64), None)?,
                    _ => family.encode_gauge(&v)?,
                }
            }
        }
        {
            let mut metric =
                encoder.encode_descriptor("arkflow_batch_latency_seconds", "Time of one batch through the pipeline.", None, MetricType::Histogram)?;
            for s in &streams {
                let labels = [("stream", s.shared.name.as_str())];
                prometheus_client::encoding::EncodeMetric::encode(&s.shared.batch_latency, metric.encode_family(&labels)?)?;
            }
        }
        encode_kafka(&mut encoder, &streams)?;
        processors::encode(&mut encoder, &streams)?;
        // The seed's "backend type", as an info-style gauge.
        let backends: Vec<(String, String)> = streams.iter().filter_map(|s| s.checkpoint.as_ref().map(|(b, _)| (s.shared.name.clone(), b.clone()))).collect();
        if !backends.is_empty() {
            let mut metric = encoder.encode_descriptor("arkflow_state_backend", "State backend of the stream (value 1).", None, MetricType::Gauge)?;
            for (stream, backend) in &backends {
                let labels = [("stream", stream.as_str()), ("backend", backend.as_str())];
                metric.encode_family(&labels)?.encode_gauge(&1i64)?;
            }
        }
        Ok(())
    }
}

/// Kafka figures: consumer lag per partition; transactions of exactly-once Kafka outputs.
fn encode_kafka(encoder: &mut DescriptorEncoder, streams: &[StreamProbe]) -> Result<(), std::fmt::Error> {
    type Lags = Vec<(String, i32, i64)>;
    let lags: Vec<(&str, Lags)> = streams.iter().map(|s| (s.shared.name.as_str(), s.shared.kafka.lag())).filter(|(_, l)| !l.is_empty()).collect();
    if !lags.is_empty() {
        let mut metric = encoder.encode_descriptor(
            "arkflow_kafka_consumer_lag",
            "Records between the input's position and the partition's end offset.",
            None,
            MetricType::Gauge,
        )?;
        for (stream, parts) in &lags {
            for (topic, p, lag) in parts {
                let p = p.to_string();
                let labels = [("stream", *stream), ("topic", topic.as_str()), ("partition", p.as_str())];
                metric.encode_family(&labels)?.encode_gauge(lag)?;
            }
        }
    }
    let txn: Vec<&StreamProbe> = streams.iter().filter(|s| s.shared.kafka.transactional.load(Relaxed)).collect();
    if txn.is_empty() {
        return Ok(());
    }
    type KGet = fn(&crate::connectors::kafka::KafkaMetrics) -> i64;
    const TXN: &[(&str, &str, MetricType, KGet)] = &[
        ("arkflow_kafka_active_transactions", "Open Kafka transactions of the output.", MetricType::Gauge, |k| k.active_transactions.load(Relaxed)),
        ("arkflow_kafka_transactions_committed", "Kafka transactions committed (epochs decided).", MetricType::Counter, |k| {
            k.transactions_committed.load(Relaxed) as i64
        }),
        ("arkflow_kafka_transactions_aborted", "Kafka transactions aborted.", MetricType::Counter, |k| k.transactions_aborted.load(Relaxed) as i64),
    ];
    for (name, help, kind, get) in TXN {
        let mut metric = encoder.encode_descriptor(name, help, None, *kind)?;
        for s in &txn {
            let labels = [("stream", s.shared.name.as_str())];
            let v = get(&s.shared.kafka);
            let mut family = metric.encode_family(&labels)?;
            match kind {
                MetricType::Counter => family.encode_counter::<NoLabelSet, _, u64>(&(v.max(0) as u64), None)?,
                _ => family.encode_gauge(&v)?,
            }
        }
    }
    let mut metric =
        encoder.encode_descriptor("arkflow_kafka_commit_latency_seconds", "Time to commit an epoch's Kafka transaction.", None, MetricType::Histogram)?;
    for s in &txn {
        let labels = [("stream", s.shared.name.as_str())];
        prometheus_client::encoding::EncodeMetric::encode(&s.shared.kafka.commit_latency, metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Logs one status line per stream every `interval` (records/s since the last line, totals,
/// last decided checkpoint, state size) until `probes.running` is cleared.
pub async fn status_lines(probes: Arc<Probes>, interval: std::time::Duration) {
    let mut last: std::collections::HashMap<String, (u64, std::time::Instant)> = Default::default();
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if !probes.running.load(Relaxed) {
            return;
        }
        let streams = probes.streams.read().unwrap_or_else(|p| p.into_inner()).clone();
        for s in streams {
            let m = &s.shared.metrics;
            let (records_in, now) = (m.records_in.load(Relaxed), std::time::Instant::now());
            let (prev, at) = last.insert(s.shared.name.clone(), (records_in, now)).unwrap_or((0, now - interval));
            let rate = (records_in - prev) as f64 / now.duration_since(at).as_secs_f64().max(1e-3);
            tracing::info!(
                stream = %s.shared.name,
                records_per_sec = rate.round() as u64,
                records_in,
                records_out = m.records_out.load(Relaxed),
                failed = m.records_failed.load(Relaxed),
                last_decided_checkpoint = s.checkpoint.as_ref().map_or(0, |(_, c)| c.last_decided.load(Relaxed)),
                state_entries = m.state_entries.load(Relaxed),
                state_bytes = m.state_bytes.load(Relaxed),
                quarantined_processors = s.shared.pipeline.slots().into_iter().filter(|slot| slot.latest().obs.breaker.is_open()).count(),
                "status"
            );
        }
    }
}

/// Prometheus text for the current values.
pub fn render(probes: &Arc<Probes>) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(StreamsCollector(probes.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}
