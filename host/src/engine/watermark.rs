//! Event time and the watermark at the input (docs/ARCHITECTURE.md, *Event time*).
//!
//! Contract: the input thread [`Watermarks::observe`]s every batch before routing it. A
//! record's event time is the number in the value's `event_time.field` (milliseconds), or its
//! timestamp when no field is configured; a record without a usable time advances nothing (the
//! stage that needs its time fails it). With a field, a record's timestamp becomes its event time
//! (what plugins see as `timestamp-ms`). Per input partition the highest event time is kept; the
//! watermark is `min over partitions (highest - max_delay_ms) - 1` (Flink's bounded
//! out-of-orderness: a record with time > watermark is on time), leaving out partitions idle for
//! `idle_timeout_ms`. It never goes back. [`Watermarks::due`] says when an advanced watermark is
//! to be sent (at most every `interval_ms`); it travels in-band behind the data it follows.
//!
//! The per-partition maxima are saved at every barrier ([`Watermarks::snapshot`], stored in the
//! manifest) and restored, so a restart judges lateness against the watermark the checkpoint saw.
//! At the end of a bounded input the input sends [`END`]: every window closes.

use crate::config::EventTimeConfig;
use crate::processor::window::event_time;
use crate::record::Record;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The watermark sent when a bounded input ends: every event time is behind it.
pub const END: i64 = i64::MAX;

/// The input side's watermark state.
pub struct Watermarks {
    cfg: EventTimeConfig,
    /// Per partition: the highest event time seen and when it last produced a record.
    parts: BTreeMap<u32, (i64, Instant)>,
    /// The last watermark sent (i64::MIN: none yet).
    sent: i64,
    last_sent_at: Instant,
}

impl Watermarks {
    /// Starts from a checkpoint's [`Watermarks::snapshot`] when there is one.
    pub fn new(cfg: EventTimeConfig, restored: Option<&serde_json::Value>) -> Self {
        let now = Instant::now();
        let mut parts = BTreeMap::new();
        if let Some(obj) = restored.and_then(|r| r.get("partitions")).and_then(|p| p.as_object()) {
            for (p, max) in obj {
                if let (Ok(p), Some(max)) = (p.parse::<u32>(), max.as_i64()) {
                    parts.insert(p, (max, now));
                }
            }
        }
        let mut w = Watermarks { cfg, parts, sent: i64::MIN, last_sent_at: now };
        w.sent = w.current().unwrap_or(i64::MIN);
        w
    }

    /// Takes the event times of a batch the input read.
    pub fn observe(&mut self, batch: &mut [Record]) {
        let now = Instant::now();
        for r in batch {
            if let Some(t) = event_time(self.cfg.field.as_deref(), r) {
                r.timestamp_ms = t;
                let e = self.parts.entry(r.partition).or_insert((i64::MIN, now));
                e.0 = e.0.max(t);
                e.1 = now;
            }
        }
    }

    /// The watermark the partitions allow now (None: no partition has produced a time, or all
    /// are idle).
    pub fn current(&self) -> Option<i64> {
        let idle = self.cfg.idle_timeout_ms.map(Duration::from_millis);
        let active = self.parts.values().filter(|(_, at)| idle.is_none_or(|d| at.elapsed() < d));
        let min = active.map(|(max, _)| *max).min()?;
        Some(min.saturating_sub(self.cfg.max_delay_ms as i64).saturating_sub(1))
    }

    /// The watermark to send now: it advanced and `interval_ms` passed since the last one.
    pub fn due(&mut self) -> Option<i64> {
        if self.last_sent_at.elapsed() < Duration::from_millis(self.cfg.interval_ms) {
            return None;
        }
        let w = self.current().filter(|w| *w > self.sent)?;
        self.sent = w;
        self.last_sent_at = Instant::now();
        Some(w)
    }

    /// The watermark last sent (restored or computed), i64::MIN when none.
    pub fn sent(&self) -> i64 {
        self.sent
    }

    /// What a checkpoint keeps: the highest event time per partition.
    pub fn snapshot(&self) -> serde_json::Value {
        let parts: serde_json::Map<String, serde_json::Value> = self.parts.iter().map(|(p, (max, _))| (p.to_string(), (*max).into())).collect();
        serde_json::json!({ "partitions": parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: u32, ts: i64) -> Record {
        Record { value: Some(format!("{{\"ts\":{ts}}}").into_bytes()), partition, ..Default::default() }
    }

    fn cfg(delay: u64) -> EventTimeConfig {
        EventTimeConfig { field: Some("ts".into()), max_delay_ms: delay, idle_timeout_ms: None, interval_ms: 1 }
    }

    #[test]
    fn the_watermark_is_the_slowest_partition_minus_the_delay_and_never_goes_back() {
        let mut w = Watermarks::new(cfg(10), None);
        assert_eq!(w.current(), None);
        w.observe(&mut [rec(0, 100), rec(0, 90), rec(1, 50)]);
        assert_eq!(w.current(), Some(39), "partition 1 holds it back: 50 - 10 - 1");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(w.due(), Some(39));
        w.observe(&mut [rec(2, 0)]);
        assert_eq!(w.current(), Some(-11), "a new slow partition");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(w.due(), None, "never sent backwards");
        let restored = Watermarks::new(cfg(10), Some(&w.snapshot()));
        assert_eq!(restored.current(), Some(-11));
        assert_eq!(restored.sent(), -11);
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let mut w = Watermarks::new(EventTimeConfig { idle_timeout_ms: Some(20), ..cfg(0) }, None);
        w.observe(&mut [rec(0, 10)]);
        std::thread::sleep(Duration::from_millis(30));
        w.observe(&mut [rec(1, 1000)]);
        assert_eq!(w.current(), Some(999), "partition 0 is idle");
    }

    #[test]
    fn event_times_come_from_the_field_or_the_timestamp() {
        let r = Record { value: Some(br#"{"ts":12.7,"s":"x"}"#.to_vec()), timestamp_ms: 5, ..Default::default() };
        assert_eq!(event_time(Some("ts"), &r), Some(12));
        assert_eq!(event_time(Some("s"), &r), None);
        assert_eq!(event_time(Some("nope"), &r), None);
        assert_eq!(event_time(None, &r), Some(5));
    }
}
