//! Per-processor figures of `wasm` processors at `/metrics`, labelled `stream`, `processor` (its
//! index in the pipeline) and `plugin` (`name@version` of the running version):
//! - measured by the host: `arkflow_processor_*` (calls, records and bytes in/out, memory
//!   high-water mark, traps, deadline kills,
//!   quarantines, quarantined batches, whether it is quarantined now, log lines suppressed, plugin
//!   metric calls dropped, call latency histogram);
//! - defined by the plugin through the WIT `metrics` interface: `arkflow_plugin_<name>` (the name
//!   sanitized; see `processor::wasm::obs`), as counter, gauge or histogram.

use super::StreamProbe;
use crate::processor::wasm::obs::{ProcessorObs, Value, BUCKETS};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// One processor: (stream, processor index, plugin name@version, its figures).
type Proc = (String, String, String, Arc<ProcessorObs>);

type Get = fn(&ProcessorObs) -> u64;

const FIGURES: &[(&str, &str, MetricType, Get)] = &[
    ("arkflow_processor_calls", "process-batch calls (each attempt).", MetricType::Counter, |o| o.host.calls.load(Relaxed)),
    ("arkflow_processor_records_in", "Records passed to the plugin (each attempt).", MetricType::Counter, |o| o.host.records_in.load(Relaxed)),
    ("arkflow_processor_records_out", "Records the plugin emitted in successful calls.", MetricType::Counter, |o| o.host.records_out.load(Relaxed)),
    ("arkflow_processor_bytes_lowered", "Bytes of keys, values and headers passed into the plugin (each attempt).", MetricType::Counter, |o| {
        o.host.bytes_lowered.load(Relaxed)
    }),
    ("arkflow_processor_bytes_lifted", "Bytes of keys, values and headers the plugin emitted in successful calls.", MetricType::Counter, |o| {
        o.host.bytes_lifted.load(Relaxed)
    }),
    ("arkflow_processor_memory_high_water_bytes", "Largest linear memory any instance of the plugin grew to.", MetricType::Gauge, |o| {
        o.host.memory_high_water.load(Relaxed)
    }),
    ("arkflow_processor_traps", "Calls that trapped.", MetricType::Counter, |o| o.host.traps.load(Relaxed)),
    ("arkflow_processor_deadline_kills", "Calls stopped at limits.batch_timeout_ms (computing or blocked).", MetricType::Counter, |o| {
        o.host.deadline_kills.load(Relaxed)
    }),
    ("arkflow_processor_quarantines", "Times the circuit breaker quarantined the processor.", MetricType::Counter, |o| o.host.quarantines.load(Relaxed)),
    ("arkflow_processor_quarantined_batches", "Batches failed without calling the plugin (quarantined).", MetricType::Counter, |o| {
        o.host.quarantined_batches.load(Relaxed)
    }),
    ("arkflow_processor_quarantined", "1 while the processor is quarantined.", MetricType::Gauge, |o| u64::from(o.breaker.is_open())),
    ("arkflow_processor_log_lines_suppressed", "Plugin log lines dropped by limits.log_lines_per_sec.", MetricType::Counter, |o| {
        o.log.suppressed.load(Relaxed)
    }),
    ("arkflow_processor_plugin_metrics_dropped", "Plugin metric calls refused (series cap, kind conflict, not finite).", MetricType::Counter, |o| {
        o.metrics.dropped.load(Relaxed)
    }),
];

fn processors(streams: &[StreamProbe]) -> Vec<Proc> {
    let mut out = Vec::new();
    for s in streams {
        for slot in s.shared.pipeline.slots() {
            let latest = slot.latest();
            out.push((s.shared.name.clone(), slot.index.to_string(), latest.display_name(), latest.obs.clone()));
        }
    }
    out
}

pub(super) fn encode(encoder: &mut DescriptorEncoder, streams: &[StreamProbe]) -> Result<(), std::fmt::Error> {
    let procs = processors(streams);
    if procs.is_empty() {
        return Ok(());
    }
    for (name, help, kind, get) in FIGURES {
        let mut metric = encoder.encode_descriptor(name, help, None, *kind)?;
        for (stream, index, plugin, obs) in &procs {
            let labels = [("stream", stream.as_str()), ("processor", index.as_str()), ("plugin", plugin.as_str())];
            let mut family = metric.encode_family(&labels)?;
            let v = get(obs);
            match kind {
                MetricType::Counter => family.encode_counter::<NoLabelSet, _, u64>(&v, None)?,
                _ => family.encode_gauge(&(v as i64))?,
            }
        }
    }
    {
        let mut metric = encoder.encode_descriptor("arkflow_processor_call_latency_seconds", "Time of one process-batch call.", None, MetricType::Histogram)?;
        for (stream, index, plugin, obs) in &procs {
            let labels = [("stream", stream.as_str()), ("processor", index.as_str()), ("plugin", plugin.as_str())];
            obs.host.latency.encode(metric.encode_family(&labels)?)?;
        }
    }
    // Plugin series, grouped by name; a name two processors use with different kinds keeps the
    // first kind seen.
    let mut by_name: BTreeMap<String, Vec<(&Proc, String, Value)>> = BTreeMap::new();
    for p in &procs {
        for (name, plugin, value) in p.3.metrics.snapshot() {
            by_name.entry(name).or_default().push((p, plugin, value));
        }
    }
    for (name, series) in by_name {
        let kind = series[0].2.kind();
        let mtype = match kind {
            crate::processor::wasm::obs::Kind::Counter => MetricType::Counter,
            crate::processor::wasm::obs::Kind::Gauge => MetricType::Gauge,
            crate::processor::wasm::obs::Kind::Histogram => MetricType::Histogram,
        };
        let full = format!("arkflow_plugin_{name}");
        let mut metric = encoder.encode_descriptor(&full, "Defined by the plugin (WIT metrics interface).", None, mtype)?;
        for ((stream, index, _, _), plugin, value) in series.iter().filter(|s| s.2.kind() == kind) {
            let labels = [("stream", stream.as_str()), ("processor", index.as_str()), ("plugin", plugin.as_str())];
            let mut family = metric.encode_family(&labels)?;
            match value {
                Value::Counter(c) => family.encode_counter::<NoLabelSet, _, u64>(c, None)?,
                Value::Gauge(g) => family.encode_gauge(g)?,
                Value::Histogram(b, sum, n) => {
                    let buckets: Vec<(f64, u64)> = BUCKETS.iter().copied().chain([f64::INFINITY]).zip(b.iter().copied()).collect();
                    family.encode_histogram::<NoLabelSet>(*sum, *n, &buckets, None)?
                }
            }
        }
    }
    Ok(())
}
