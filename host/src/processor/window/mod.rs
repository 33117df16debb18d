//! `type: window`: keyed event-time windows with built-in aggregates (docs/CONFIG.md,
//! *type: window*).
//!
//! Contract: a record's event time is the stream's `event_time` (field or record timestamp; a
//! record without one fails, code `no-event-time`); its key is `key_by` (top-level fields of the
//! value, as the host routes by them) or the record key (a record without one fails, `no-key`).
//! It is added to every window of its key that contains its time: tumbling `[k·size, (k+1)·size)`,
//! sliding (every `slide_ms`, `size_ms` long), or session (`[t, t + gap)`, merged with every
//! session of the key it overlaps). A window `[start, end)` fires once, when the watermark
//! reaches `end - 1 + allowed_lateness_ms`: it emits one record
//! `{<key fields or "key">, "window_start", "window_end", <aggregates>}` keyed by the key, with
//! timestamp `end - 1`, and its state is deleted. A record all of whose windows have fired is
//! late: it fails with code `late` (to `error_output`). The record itself is consumed.
//!
//! Windows live in the stream's keyed state (store `store`), so they are checkpointed, restored
//! and moved with their key groups like any state; each worker keeps an index of when its
//! windows fire, rebuilt from the restored state at start (`run`).

mod acc;
mod index;
mod run;

use std::sync::Arc;

use super::registry::{BuildCx, ProcessorType};
use super::{KeyNeed, Processor, ProcessorFactory};
use crate::config::{ConfigError, Ctx, YPath, DEFAULT_STORE};
pub use acc::{Agg, AggFn};
pub use index::FireIndex;

/// A record's event time under `field` (None: the record timestamp); None when the field is
/// missing or not a number.
pub fn event_time(field: Option<&str>, record: &crate::record::Record) -> Option<i64> {
    let Some(f) = field else { return Some(record.timestamp_ms) };
    parse_time(&crate::util::json::field_bytes(record.value.as_deref()?, f)?)
}

/// A time as 8 bytes that sort as the times do (big-endian, sign bit flipped): state keys of
/// windows and timers, so a scan meets them in time order.
pub fn ordered_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time of [`ordered_time`] bytes at the front of `b`.
pub fn time_from(b: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(b.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64)
}

/// When a window ending (exclusive) at `end` fires: once the watermark reaches its last
/// millisecond plus the allowed lateness.
pub fn fires_at(end: i64, lateness: i64) -> i64 {
    end.saturating_sub(1).saturating_add(lateness)
}

/// A record's failure of class `invalid-input`.
pub fn invalid(code: &str, message: String) -> crate::record::Outcome {
    crate::record::Outcome::Fail(crate::record::RecordError { class: crate::record::ErrorClass::InvalidInput, code: code.into(), message })
}

/// The failure of a record all of whose windows have fired.
pub fn late(ts: i64, watermark: i64) -> crate::record::Outcome {
    invalid("late", format!("event time {ts} is behind the watermark {watermark}: its windows have already closed"))
}

/// The failure of a record without its event time field `field`.
pub fn no_event_time(field: &str) -> crate::record::Outcome {
    invalid("no-event-time", format!("no numeric event time field `{field}`"))
}

/// Milliseconds from a scalar's bytes (an integer, or a finite number truncated).
fn parse_time(raw: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(raw).ok()?;
    text.parse::<i64>().ok().or_else(|| text.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| v as i64))
}

/// Which windows a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumbling { size_ms: i64 },
    Sliding { size_ms: i64, slide_ms: i64 },
    Session { gap_ms: i64 },
}

impl WindowKind {
    /// The windows `[start, end)` a time falls in, oldest first (none for sessions, which
    /// depend on the key's other sessions).
    pub fn windows(&self, ts: i64) -> Vec<(i64, i64)> {
        match *self {
            WindowKind::Tumbling { size_ms } => {
                let s = ts.div_euclid(size_ms) * size_ms;
                vec![(s, s.saturating_add(size_ms))]
            }
            WindowKind::Sliding { size_ms, slide_ms } => {
                let last = ts.div_euclid(slide_ms) * slide_ms;
                let mut out = Vec::new();
                let mut s = last;
                while s > ts.saturating_sub(size_ms) {
                    out.push((s, s.saturating_add(size_ms)));
                    s -= slide_ms;
                }
                out.reverse();
                out
            }
            WindowKind::Session { .. } => Vec::new(),
        }
    }

    /// A window's length (a session's gap).
    pub fn size(&self) -> i64 {
        match *self {
            WindowKind::Tumbling { size_ms } | WindowKind::Sliding { size_ms, .. } => size_ms,
            WindowKind::Session { gap_ms } => gap_ms,
        }
    }
}

/// `type: window` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowConfig {
    pub kind: WindowKind,
    /// default 0
    pub allowed_lateness_ms: i64,
    /// Top-level JSON fields of the key; empty: the record key. default empty
    pub key_by: Vec<String>,
    /// Output name and aggregate, in order; default `count: count`
    pub aggregates: Vec<Agg>,
    /// default "default"
    pub store: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    kind: Option<String>,
    size_ms: Option<u64>,
    slide_ms: Option<u64>,
    gap_ms: Option<u64>,
    allowed_lateness_ms: Option<u64>,
    key_by: Option<OneOrMany>,
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    aggregates: Option<serde_yaml::Mapping>,
    store: Option<String>,
}

/// The most windows one record may belong to (sliding: `size_ms / slide_ms`).
const MAX_WINDOWS_PER_RECORD: u64 = 1000;

fn kind(ctx: &Ctx, raw: &RawWindow, at: &YPath) -> Result<WindowKind, ConfigError> {
    let name = raw.kind.as_deref().unwrap_or("tumbling");
    let positive = |key: &str, v: Option<u64>| -> Result<i64, ConfigError> {
        match v {
            Some(v) if v >= 1 && v <= i64::MAX as u64 / 4 => Ok(v as i64),
            Some(_) => Err(ctx.invalid(&at.key(key), format!("`{key}` must be at least 1 (milliseconds)"))),
            None => Err(ctx.invalid(at, format!("a {name} window needs `{key}`"))),
        }
    };
    let refuse = |key: &str, v: Option<u64>| match v {
        Some(_) => Err(ctx.invalid(&at.key(key), format!("`{key}` does not apply to a {name} window"))),
        None => Ok(()),
    };
    match name {
        "tumbling" => {
            refuse("slide_ms", raw.slide_ms)?;
            refuse("gap_ms", raw.gap_ms)?;
            Ok(WindowKind::Tumbling { size_ms: positive("size_ms", raw.size_ms)? })
        }
        "sliding" | "hopping" => {
            refuse("gap_ms", raw.gap_ms)?;
            let (size_ms, slide_ms) = (positive("size_ms", raw.size_ms)?, positive("slide_ms", raw.slide_ms)?);
            if slide_ms > size_ms || (size_ms as u64).div_ceil(slide_ms as u64) > MAX_WINDOWS_PER_RECORD {
                return Err(ctx.invalid(&at.key("slide_ms"), format!("`slide_ms` must be at most `size_ms` and at least size_ms / {MAX_WINDOWS_PER_RECORD}")));
            }
            Ok(WindowKind::Sliding { size_ms, slide_ms })
        }
        "session" => {
            refuse("size_ms", raw.size_ms)?;
            refuse("slide_ms", raw.slide_ms)?;
            Ok(WindowKind::Session { gap_ms: positive("gap_ms", raw.gap_ms)? })
        }
        other => Err(ctx.unknown_name(&at.key("kind"), "window kind", other, &["tumbling", "sliding", "session"])),
    }
}

impl ProcessorType for WindowConfig {
    const NAME: &'static str = "window";
    type Raw = RawWindow;

    fn from_raw(ctx: &Ctx, raw: RawWindow, at: &YPath) -> Result<Self, ConfigError> {
        let kind = kind(ctx, &raw, at)?;
        let key_by = match raw.key_by {
            None => Vec::new(),
            Some(OneOrMany::One(f)) => vec![f],
            Some(OneOrMany::Many(v)) => v,
        };
        if key_by.iter().any(String::is_empty) {
            return Err(ctx.invalid(&at.key("key_by"), "`key_by` names top-level JSON fields; omit it to use the record key"));
        }
        let aggregates = match raw.aggregates {
            None => vec![Agg { name: "count".into(), func: AggFn::Count, field: None }],
            Some(m) => acc::parse_aggregates(ctx, m, &at.key("aggregates"))?,
        };
        let lateness = raw.allowed_lateness_ms.unwrap_or(0).min(i64::MAX as u64 / 4) as i64;
        Ok(WindowConfig { kind, allowed_lateness_ms: lateness, key_by, aggregates, store: raw.store.unwrap_or_else(|| DEFAULT_STORE.to_string()) })
    }

    fn build(&self, cx: &BuildCx<'_>) -> anyhow::Result<Arc<dyn ProcessorFactory>> {
        let label = cx.label;
        let Some(et) = &cx.env.event_time else {
            anyhow::bail!("{label}: a window closes when the stream's watermark passes it: add `event_time:` to the stream (docs/CONFIG.md, *Event time*)");
        };
        let store = cx
            .env
            .store_names
            .iter()
            .position(|n| *n == self.store)
            .ok_or_else(|| anyhow::anyhow!("{label}: window store `{}` is not a state store of the stream (add it to `state.custom_keys`)", self.store))?;
        Ok(Arc::new(WindowFactory { cfg: Arc::new(self.clone()), store: store as u16, time_field: et.field.clone(), name: "window".into() }))
    }
}

pub struct WindowFactory {
    cfg: Arc<WindowConfig>,
    store: u16,
    time_field: Option<String>,
    name: String,
}

impl ProcessorFactory for WindowFactory {
    fn name(&self) -> &str {
        &self.name
    }

    fn key(&self) -> KeyNeed {
        if self.cfg.key_by.is_empty() {
            KeyNeed::RecordKey
        } else {
            KeyNeed::Fields(self.cfg.key_by.clone())
        }
    }

    fn instantiate(&self, _: &super::ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        Ok(Box::new(run::Window::new(self.cfg.clone(), self.store, self.time_field.clone(), "window".into())))
    }
}
