//! Windowed continuous SQL on keyed state: which windows a record opens or is late for, the
//! accumulators of open windows, and emitting each window once when the watermark closes it.
//!
//! Contract: a record's event time is the stream's `event_time` (a record without one fails,
//! code `no-event-time`). It joins every window `[start, end)` of its time that has not fired; a
//! window fires when the watermark reaches `end - 1 + allowed_lateness_ms` (as the window stage
//! does); a record none of whose windows is open fails with code `late` and is not aggregated.
//! A window's accumulators (the continuous-mode JSON array) live in the query's store under
//! `b'q' ++ stage (u16 BE) ++ start (i64 BE, sign bit flipped) ++ <JSON array of the groups>`,
//! checkpointed and moved with their key group. Firing emits one record with the query's output
//! columns (the window column is its start in milliseconds), keyed by the key columns (a single
//! string column: its text; else their JSON array), timestamp `end - 1`, and deletes the state.

use super::continuous::{self, Shape};
use crate::processor::window::{fires_at, late, no_event_time, ordered_time, time_from, FireIndex, WindowKind};
use crate::processor::{Fired, StateSlot};
use crate::record::{Outcome, Record};
use crate::state::{Scope, Staging, StateError, WorkerState};
use datafusion::arrow::array::{Int64Array, RecordBatch};
use serde_json::Value;

pub struct Windowed {
    pub lateness: i64,
    /// The stage's index in the pipeline (part of every state key).
    pub stage: u16,
    /// The query's shape as planned at start (renders windows fired before any batch); its
    /// `window` is set.
    pub shape: Shape,
    pub time_field: Option<String>,
    pub store: u16,
    pub watermark: i64,
    pub index: FireIndex,
}

impl Windowed {
    /// The window function's index among the groups, and its windows.
    fn window(&self) -> (usize, WindowKind) {
        self.shape.window.expect("a windowed shape")
    }

    fn kind(&self) -> WindowKind {
        self.window().1
    }

    fn fires_at(&self, end: i64) -> i64 {
        fires_at(end, self.lateness)
    }

    /// The starts of the windows of `ts` that are still open (empty: the record is late).
    pub fn open_starts(&self, ts: i64) -> Vec<i64> {
        self.kind().windows(ts).into_iter().filter(|(_, end)| self.fires_at(*end) > self.watermark).map(|(s, _)| s).collect()
    }

    pub fn late(&self, ts: i64) -> Outcome {
        late(ts, self.watermark)
    }

    /// Splits a batch's parsed records into the on-time ones, with their windows, and the late
    /// or timeless ones, whose outcomes are set.
    /// A record's event time is its timestamp (the input set it from `event_time.field`), once
    /// its parsed value shows that field is a number.
    pub fn split(&self, good: Vec<(usize, Value)>, records: &[Record], outcomes: &mut [Outcome]) -> (Vec<(usize, Value)>, Vec<Vec<i64>>) {
        let (mut kept, mut starts) = (Vec::with_capacity(good.len()), Vec::with_capacity(good.len()));
        for (i, v) in good {
            let timed =
                self.time_field.as_deref().is_none_or(|f| v.get(f).is_some_and(|t| t.is_number() || t.as_str().is_some_and(|s| s.parse::<f64>().is_ok())));
            let Some(ts) = timed.then_some(records[i].timestamp_ms) else {
                outcomes[i] = no_event_time(self.time_field.as_deref().unwrap_or(""));
                continue;
            };
            let s = self.open_starts(ts);
            if s.is_empty() {
                outcomes[i] = self.late(ts);
            } else {
                kept.push((i, v));
                starts.push(s);
            }
        }
        (kept, starts)
    }

    /// The table of a batch of Arrow records, rows repeated per window (`super::window::expand`):
    /// an Arrow record with a row too late for every window fails as a whole (`late`), and none
    /// of its rows is aggregated. None: no record is left.
    pub fn arrow_table(&self, records: &[Record], outcomes: &mut [Outcome]) -> Result<Option<RecordBatch>, String> {
        let mut tables = Vec::new();
        for (i, r) in records.iter().enumerate().filter(|(_, r)| super::codec::is_arrow(r)) {
            let t = super::codec::from_arrow_records(std::slice::from_ref(r)).map_err(|e| e.to_string())?;
            let ts = t.column_by_name("__timestamp").and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned());
            let Some(ts) = ts else { return Err("an Arrow record without its __timestamp column".into()) };
            let starts: Vec<Vec<i64>> = ts.values().iter().map(|t| self.open_starts(*t)).collect();
            match starts.iter().zip(ts.values()).find(|(s, _)| s.is_empty()) {
                Some((_, t)) => outcomes[i] = self.late(*t),
                None => tables.push(super::window::expand(&t, &starts)?),
            }
        }
        let Some(schema) = tables.first().map(|t| t.schema()) else { return Ok(None) };
        datafusion::arrow::compute::concat_batches(&schema, &tables).map(Some).map_err(|e| e.to_string())
    }

    fn state_key(&self, start: i64, groups: &[Value]) -> Vec<u8> {
        let mut k = vec![b'q'];
        k.extend_from_slice(&self.stage.to_be_bytes());
        k.extend_from_slice(&ordered_time(start));
        k.extend_from_slice(&serde_json::to_vec(groups).expect("json"));
        k
    }

    fn is_mine(&self, k: &[u8]) -> bool {
        k.len() > 11 && k[0] == b'q' && k[1..3] == self.stage.to_be_bytes()
    }

    fn start_of(k: &[u8]) -> i64 {
        time_from(&k[3..]).expect("a key of is_mine")
    }

    /// Merges one partial-aggregate row (groups, then partials) into its window.
    pub fn merge_row(&mut self, scope: &mut Scope<'_>, group: u32, row: &[Value]) -> Result<(), StateError> {
        let (wi, _) = self.window();
        let (groups, partial) = row.split_at(self.shape.groups);
        let start = groups[wi].as_i64().unwrap_or(i64::MIN);
        let key = self.state_key(start, groups);
        let old = scope.get(self.store, &key)?.map(|v| serde_json::from_slice::<Vec<Value>>(v).ok());
        if old.is_none() {
            self.index.insert(self.fires_at(start.saturating_add(self.kind().size())), group, key.clone());
        }
        let acc = continuous::merge(&self.shape, old.flatten(), partial);
        scope.put(self.store, key, serde_json::to_vec(&acc).expect("json"))
    }

    /// Indexes the windows of the restored state.
    pub fn restore(&mut self, state: &WorkerState) {
        for g in state.groups() {
            for (s, k, _) in state.iter_group(g) {
                if s == self.store && self.is_mine(k) {
                    let end = Self::start_of(k).saturating_add(self.kind().size());
                    self.index.insert(self.fires_at(end), g, k.to_vec());
                }
            }
        }
    }

    pub fn due_groups(&self, watermark: i64) -> Vec<u32> {
        self.index.due_groups(watermark)
    }

    /// The watermark rose to `time_ms`: emits and deletes the windows it closes.
    pub fn fire(&mut self, time_ms: i64, now_ms: i64, state: &mut StateSlot, staging: &mut Staging) -> Result<Vec<Fired>, StateError> {
        self.watermark = self.watermark.max(time_ms);
        let due = self.index.take_due(self.watermark);
        let Some(st) = state.as_mut() else { return Ok(Vec::new()) };
        let mut fired = Vec::new();
        for (g, keys) in due {
            let mut out = Vec::new();
            let mut scope = st.scope(staging, g, now_ms);
            for k in keys {
                if let Err(e) = self.fire_key(&mut scope, &k, &mut out) {
                    staging.discard();
                    return Err(e);
                }
            }
            st.commit(staging, g, now_ms);
            if !out.is_empty() {
                fired.push(Fired { group: g, inputs: vec![Record::default()], outcomes: vec![Outcome::Emit(out)] });
            }
        }
        Ok(fired)
    }

    fn fire_key(&self, scope: &mut Scope<'_>, k: &[u8], out: &mut Vec<Record>) -> Result<(), StateError> {
        let end = Self::start_of(k).saturating_add(self.kind().size());
        if self.fires_at(end) > self.watermark {
            return Ok(());
        }
        let Some(acc) = scope.get(self.store, k)?.and_then(|v| serde_json::from_slice::<Vec<Value>>(v).ok()) else { return Ok(()) };
        let Ok(groups) = serde_json::from_slice::<Vec<Value>>(&k[11..]) else { return Ok(()) };
        let (wi, _) = self.window();
        let keys: Vec<&Value> = groups.iter().enumerate().filter(|(i, _)| *i != wi).map(|(_, v)| v).collect();
        let key = match keys.as_slice() {
            [Value::String(s)] => s.as_bytes().to_vec(),
            _ => serde_json::to_vec(&keys).expect("json"),
        };
        out.push(Record { key: Some(key), value: Some(continuous::render(&self.shape, &groups, &acc)), timestamp_ms: end - 1, ..Default::default() });
        scope.delete(self.store, k.to_vec()).map(|_| ())
    }
}
