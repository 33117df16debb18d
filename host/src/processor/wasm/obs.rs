//! What a `wasm` processor shares across its per-worker instances and live swaps: the log rate
//! limit, the plugin's own metrics, the host's per-processor figures, and the circuit breaker.
//!
//! Contract:
//! - [`LogLimiter`]: a token bucket (`limits.log_lines_per_sec`, burst `limits.log_burst`) over
//!   every instance of the processor. A line without a token is dropped and counted; the next
//!   line let through is preceded by one "N plugin log lines suppressed" warning.
//! - [`PluginMetrics`]: series the plugin defines through the WIT `metrics` interface, merged from
//!   each call's local [`CallMetrics`] after the call (one lock per batch, nothing per record).
//!   Names are sanitized to Prometheus rules and exported as `arkflow_plugin_<name>`; the first
//!   kind a name is used with wins, and at most [`MAX_SERIES`] series are kept per processor:
//!   everything else is counted in `dropped`. Histograms have fixed log-scale buckets.
//! - [`HostFigures`]: measured by the host per processor: calls, records and bytes in and out,
//!   call latency, linear memory high-water mark, traps, deadline kills, quarantines.
//! - [`Breaker`]: after `circuit_breaker.failures` batches in a row failed (after retries) the
//!   processor is quarantined for `circuit_breaker.cooldown_ms`: its batches fail at once without
//!   calling the plugin. After the cool-down one batch is let through (half-open): success closes
//!   the breaker, failure quarantines again. A live swap closes it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Series a processor's plugin may define.
pub const MAX_SERIES: usize = 64;
/// Upper bounds of plugin histogram buckets (the last bucket is +Inf).
pub const BUCKETS: [f64; 12] = [0.001, 0.01, 0.1, 1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 10_000.0, 100_000.0];

/// Per-processor observability and protection, shared by its instances.
#[derive(Debug)]
pub struct ProcessorObs {
    pub log: LogLimiter,
    pub metrics: PluginMetrics,
    pub host: HostFigures,
    pub breaker: Breaker,
}

impl ProcessorObs {
    pub fn new(limits: &super::WasmLimits, breaker: &super::CircuitBreaker) -> Self {
        ProcessorObs {
            log: LogLimiter::new(limits.log_lines_per_sec, limits.log_burst),
            metrics: PluginMetrics::default(),
            host: HostFigures::default(),
            breaker: Breaker::new(breaker),
        }
    }
}

#[derive(Debug)]
pub struct LogLimiter {
    per_sec: f64,
    burst: f64,
    inner: Mutex<Bucket>,
    /// Lines dropped in total.
    pub suppressed: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Dropped since the last line let through.
    pending: u64,
}

impl LogLimiter {
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        LogLimiter {
            per_sec: f64::from(per_sec),
            burst,
            inner: Mutex::new(Bucket { tokens: burst, at: Instant::now(), pending: 0 }),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now; `Some(n)`: yes, after reporting `n` suppressed lines.
    pub fn admit(&self) -> Option<u64> {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_sec).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.pending))
        } else {
            b.pending += 1;
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// The kind of a plugin series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One plugin series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Counter(u64),
    Gauge(f64),
    /// Per-bucket counts (BUCKETS.len() + 1, the last is +Inf), sum, count.
    Histogram(Vec<u64>, f64, u64),
}

impl Value {
    fn new(kind: Kind) -> Value {
        match kind {
            Kind::Counter => Value::Counter(0),
            Kind::Gauge => Value::Gauge(0.0),
            Kind::Histogram => Value::Histogram(vec![0; BUCKETS.len() + 1], 0.0, 0),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Value::Counter(_) => Kind::Counter,
            Value::Gauge(_) => Kind::Gauge,
            Value::Histogram(..) => Kind::Histogram,
        }
    }

    fn apply(&mut self, op: &Op) {
        match (self, op) {
            (Value::Counter(c), Op::Add(d)) => *c = c.saturating_add(*d),
            (Value::Gauge(g), Op::Set(v)) => *g = *v,
            (Value::Histogram(b, sum, n), Op::Observe(v)) => {
                let i = BUCKETS.iter().position(|ub| v <= ub).unwrap_or(BUCKETS.len());
                b[i] += 1;
                *sum += v;
                *n += 1;
            }
            _ => {}
        }
    }
}

/// One metric call of the plugin.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Add(u64),
    Set(f64),
    Observe(f64),
}

impl Op {
    fn kind(&self) -> Kind {
        match self {
            Op::Add(_) => Kind::Counter,
            Op::Set(_) => Kind::Gauge,
            Op::Observe(_) => Kind::Histogram,
        }
    }
}

/// The metric calls of one plugin call, in order (bounded: see [`CallMetrics::push`]).
#[derive(Debug, Default)]
pub struct CallMetrics {
    ops: Vec<(String, Op)>,
    /// Calls over the per-call cap.
    over: u64,
}

/// Metric calls kept per plugin call; more are counted as dropped.
const MAX_OPS_PER_CALL: usize = 4096;

impl CallMetrics {
    pub fn push(&mut self, name: String, op: Op) {
        if self.ops.len() < MAX_OPS_PER_CALL && !(matches!(op, Op::Set(v) | Op::Observe(v) if !v.is_finite())) {
            self.ops.push((name, op));
        } else {
            self.over += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.over == 0
    }
}

#[derive(Debug, Default)]
pub struct PluginMetrics {
    /// By sanitized name: the value, and the plugin (`name@version`) that last wrote it.
    series: Mutex<BTreeMap<String, (String, Value)>>,
    /// Metric calls refused: over the series cap, a name used with another kind, not finite.
    pub dropped: AtomicU64,
}

impl PluginMetrics {
    /// Merges one call's metric calls (made by `plugin`).
    pub fn merge(&self, plugin: &str, call: &mut CallMetrics) {
        let mut dropped = std::mem::take(&mut call.over);
        if !call.ops.is_empty() {
            let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
            for (name, op) in call.ops.drain(..) {
                let name = sanitize(&name);
                if !series.contains_key(&name) && series.len() >= MAX_SERIES {
                    dropped += 1;
                    continue;
                }
                let (who, v) = series.entry(name).or_insert_with(|| (plugin.to_string(), Value::new(op.kind())));
                if v.kind() != op.kind() {
                    dropped += 1;
                    continue;
                }
                if who != plugin {
                    *who = plugin.to_string();
                }
                v.apply(&op);
            }
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Relaxed);
        }
    }

    /// A copy of every series: (name, plugin, value).
    pub fn snapshot(&self) -> Vec<(String, String, Value)> {
        self.series.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(n, (p, v))| (n.clone(), p.clone(), v.clone())).collect()
    }
}

/// A plugin metric name as a Prometheus metric name suffix: `[a-zA-Z0-9_]`, at most 64 bytes,
/// never empty, never starting with a digit after the `arkflow_plugin_` prefix is added (it
/// cannot: the prefix comes first).
pub fn sanitize(name: &str) -> String {
    let mut s: String = name.chars().take(64).map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// Figures the host measures per processor.
#[derive(Debug)]
pub struct HostFigures {
    pub calls: AtomicU64,
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    /// Bytes of key, value and headers passed into the guest (each attempt).
    pub bytes_lowered: AtomicU64,
    /// Bytes of key, value and headers the guest emitted in successful calls.
    pub bytes_lifted: AtomicU64,
    pub traps: AtomicU64,
    pub deadline_kills: AtomicU64,
    pub quarantines: AtomicU64,
    /// Batches failed at once because the breaker was open.
    pub quarantined_batches: AtomicU64,
    /// Highest linear memory of any instance, bytes.
    pub memory_high_water: AtomicU64,
    /// Seconds per `process-batch` call.
    pub latency: prometheus_client::metrics::histogram::Histogram,
}

impl Default for HostFigures {
    fn default() -> Self {
        HostFigures {
            calls: AtomicU64::new(0),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            bytes_lowered: AtomicU64::new(0),
            bytes_lifted: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            deadline_kills: AtomicU64::new(0),
            quarantines: AtomicU64::new(0),
            quarantined_batches: AtomicU64::new(0),
            memory_high_water: AtomicU64::new(0),
            latency: prometheus_client::metrics::histogram::Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.00005, 4.0, 10)),
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    /// 0: never trips.
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive: u32,
    /// Quarantined until this instant.
    open_until: Option<Instant>,
    /// A half-open trial batch is running.
    trial: bool,
}

/// What the breaker says about the next batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Call the plugin.
    Pass,
    /// Fail the batch at once: quarantined for this much longer.
    Quarantined(Duration),
}

impl Breaker {
    pub fn new(cfg: &super::CircuitBreaker) -> Self {
        Breaker { threshold: cfg.failures, cooldown: Duration::from_millis(cfg.cooldown_ms), state: Mutex::new(BreakerState::default()) }
    }

    pub fn gate(&self) -> Gate {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.open_until {
            None => Gate::Pass,
            Some(t) => {
                let now = Instant::now();
                if now >= t && !s.trial {
                    s.trial = true;
                    Gate::Pass
                } else {
                    Gate::Quarantined(t.saturating_duration_since(now))
                }
            }
        }
    }

    /// Records a batch's result; true when this failure tripped (or re-tripped) the breaker.
    pub fn record(&self, ok: bool) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *s = BreakerState::default();
            return false;
        }
        s.consecutive = s.consecutive.saturating_add(1);
        let trips = self.threshold > 0 && (s.trial || (s.open_until.is_none() && s.consecutive >= self.threshold));
        if trips {
            s.open_until = Some(Instant::now() + self.cooldown);
            s.trial = false;
        }
        trips
    }

    /// Whether the processor is quarantined now (a trial batch may be running).
    pub fn is_open(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).open_until.is_some()
    }

    /// A new version of the plugin: start over.
    pub fn reset(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = BreakerState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_lets_a_burst_through_then_counts() {
        let l = LogLimiter::new(0, 3);
        assert_eq!((l.admit(), l.admit(), l.admit()), (Some(0), Some(0), Some(0)));
        assert_eq!(l.admit(), None);
        assert_eq!(l.admit(), None);
        assert_eq!(l.suppressed.load(Relaxed), 2);
        let l = LogLimiter::new(1000, 1);
        assert_eq!(l.admit(), Some(0));
        assert_eq!(l.admit(), None);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(l.admit(), Some(1), "the next line reports what was suppressed");
    }

    #[test]
    fn plugin_metrics_merge_kinds_caps_and_histograms() {
        let m = PluginMetrics::default();
        let mut c = CallMetrics::default();
        c.push("a b".into(), Op::Add(2));
        c.push("a b".into(), Op::Add(3));
        c.push("a b".into(), Op::Set(1.0)); // another kind: dropped
        c.push("g".into(), Op::Set(f64::NAN)); // not finite: dropped
        c.push("h".into(), Op::Observe(0.5));
        c.push("h".into(), Op::Observe(1e9));
        m.merge("p@1", &mut c);
        assert!(c.is_empty());
        let snap = m.snapshot();
        assert_eq!(snap[0], ("a_b".to_string(), "p@1".to_string(), Value::Counter(5)));
        let Value::Histogram(b, sum, n) = &snap[1].2 else { panic!("{snap:?}") };
        assert_eq!((b[3], b[BUCKETS.len()], *sum, *n), (1, 1, 0.5 + 1e9, 2));
        assert_eq!(m.dropped.load(Relaxed), 2);
        for i in 0..MAX_SERIES + 10 {
            c.push(format!("s{i}"), Op::Add(1));
        }
        m.merge("p@1", &mut c);
        assert_eq!(m.snapshot().len(), MAX_SERIES);
        assert_eq!(m.dropped.load(Relaxed), 2 + 12);
    }

    #[test]
    fn breaker_trips_after_n_failures_and_half_opens_after_the_cooldown() {
        let b = Breaker::new(&crate::processor::wasm::CircuitBreaker { failures: 3, cooldown_ms: 30 });
        assert!(!b.record(false) && !b.record(false));
        assert_eq!(b.gate(), Gate::Pass);
        assert!(b.record(false), "the third failure in a row trips");
        assert!(matches!(b.gate(), Gate::Quarantined(_)));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.gate(), Gate::Pass, "one trial after the cool-down");
        assert!(matches!(b.gate(), Gate::Quarantined(_)), "only one trial at a time");
        assert!(b.record(false), "a failed trial quarantines again");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.gate(), Gate::Pass);
        assert!(!b.record(true));
        assert_eq!(b.gate(), Gate::Pass);
        let never = Breaker::new(&crate::processor::wasm::CircuitBreaker { failures: 0, cooldown_ms: 30 });
        assert!((0..100).all(|_| !never.record(false)));
    }
}
