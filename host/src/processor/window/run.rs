//! The window stage's per-worker instance (contract: `super`).
//!
//! State keys in the window store: `b'w' ++ start (i64, big-endian, sign bit flipped) ++ key` for
//! a tumbling or sliding window (value: `acc::encode_window`), `b's' ++ key` for a key's sessions
//! (value: `[u32 len][key JSON][u32 n]` then per session `[i64 start][i64 end][acc]`). The index
//! `(fire time, key group, state key)` may hold stale entries (a session that grew, a batch that
//! failed): firing re-reads the state and skips what is not due. A tumbling or sliding window is
//! indexed once, when its state entry is created (or restored).

use super::acc::{encode_window, key_prefix, prefix_len, split_key, Acc};
use super::{invalid, late, FireIndex, WindowConfig, WindowKind};
use crate::processor::{BatchCtx, BatchError, Clock, FailurePolicy, Fired, Processor, StateSlot};
use crate::record::{Outcome, Record};
use crate::state::{Scope, Staging, StateError, WorkerState};
use std::sync::Arc;

pub struct Window {
    cfg: Arc<WindowConfig>,
    store: u16,
    time_field: Option<String>,
    name: String,
    staging: Staging,
    watermark: i64,
    index: FireIndex,
    /// Fields read from each value: the time field (when set), the key fields, the aggregates'
    /// (each once).
    lookup: Vec<String>,
    /// Per aggregate, the index of its field in `lookup`.
    agg_at: Vec<Option<usize>>,
}

/// What one record brings: event time, key, the raw key-field values (None: keyed by the record
/// key), aggregate inputs.
type Read<'a> = (i64, Vec<u8>, Option<Vec<Option<&'a str>>>, Vec<Option<f64>>);

/// One session: `[start, end)` and its aggregates.
type Session = (i64, i64, Acc);

fn state_err(e: StateError) -> BatchError {
    BatchError { message: format!("window: {e}"), policy: FailurePolicy::Fail }
}

fn window_key(start: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.push(b'w');
    k.extend_from_slice(&super::ordered_time(start));
    k.extend_from_slice(key);
    k
}

fn start_of(state_key: &[u8]) -> Option<i64> {
    super::time_from(state_key.get(1..)?)
}

fn decode_sessions(b: &[u8], n: usize) -> Option<(String, Vec<Session>)> {
    let (key, mut rest) = split_key(b)?;
    let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let mut out = Vec::new();
    for _ in 0..count {
        let s = i64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let e = i64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
        let (acc, tail) = Acc::decode(&rest[16..], n)?;
        out.push((s, e, acc));
        rest = tail;
    }
    Some((key, out))
}

fn encode_sessions(key_json: &str, sessions: &[Session]) -> Vec<u8> {
    let mut out = key_prefix(key_json);
    out.extend_from_slice(&(sessions.len() as u32).to_le_bytes());
    for (s, e, acc) in sessions {
        out.extend_from_slice(&s.to_le_bytes());
        out.extend_from_slice(&e.to_le_bytes());
        acc.encode(&mut out);
    }
    out
}

impl Window {
    pub fn new(cfg: Arc<WindowConfig>, store: u16, time_field: Option<String>, name: String) -> Self {
        let mut lookup: Vec<String> = time_field.iter().cloned().collect();
        lookup.extend(cfg.key_by.iter().cloned());
        let mut agg_at = Vec::new();
        for f in cfg.aggregates.iter().map(|a| a.field.clone()) {
            agg_at.push(f.map(|f| match lookup.iter().position(|l| *l == f) {
                Some(i) => i,
                None => {
                    lookup.push(f);
                    lookup.len() - 1
                }
            }));
        }
        Window { cfg, store, time_field, name, staging: Staging::default(), watermark: i64::MIN, index: FireIndex::default(), lookup, agg_at }
    }

    fn fires_at(&self, end: i64) -> i64 {
        super::fires_at(end, self.cfg.allowed_lateness_ms)
    }

    /// One record: its time, key, key-field values and aggregate inputs, or why it fails.
    fn read<'a>(&self, r: &'a Record) -> Result<Read<'a>, Outcome> {
        let raw = crate::util::json::raw_fields(r.value.as_deref().unwrap_or_default(), &self.lookup);
        let at = usize::from(self.time_field.is_some());
        let ts = match &self.time_field {
            None => r.timestamp_ms,
            Some(f) => {
                let t = raw[0].and_then(crate::util::json::scalar_bytes).and_then(|b| super::parse_time(&b));
                t.ok_or_else(|| super::no_event_time(f))?
            }
        };
        let (key, fields) = if self.cfg.key_by.is_empty() {
            let k = r.key.clone().ok_or_else(|| invalid("no-key", "record has no key (set `key_by` to key by fields)".into()))?;
            (k, None)
        } else {
            let fields = &raw[at..at + self.cfg.key_by.len()];
            if fields.iter().all(Option::is_none) {
                return Err(invalid("no-key", format!("none of the key fields {:?}", self.cfg.key_by)));
            }
            // The key the router computed for this record (`util::json::fields_key`).
            let key = crate::util::json::join_key(fields.iter().map(|v| v.and_then(crate::util::json::scalar_bytes)));
            (key, Some(fields.to_vec()))
        };
        let values = self.agg_at.iter().map(|i| i.and_then(|i| raw[i]).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite())).collect();
        Ok((ts, key, fields, values))
    }

    /// The key's JSON members as emitted: `"key":"<record key>"`, or the key fields as read.
    fn key_json(&self, key: &[u8], fields: Option<&[Option<&str>]>) -> String {
        let Some(fields) = fields else {
            let mut j = b"\"key\":".to_vec();
            crate::util::json::write_str(&mut j, &String::from_utf8_lossy(key));
            return String::from_utf8_lossy(&j).into_owned();
        };
        let mut json = String::new();
        for (i, (name, v)) in self.cfg.key_by.iter().zip(fields).enumerate() {
            if i > 0 {
                json.push(',');
            }
            let mut n = Vec::new();
            crate::util::json::write_str(&mut n, name);
            json.push_str(&String::from_utf8_lossy(&n));
            json.push(':');
            json.push_str(v.unwrap_or("null"));
        }
        json
    }

    /// Adds one record; returns its outcome and the index entries (fire time, state key) to add.
    fn add(&self, scope: &mut Scope<'_>, r: &Record, fire: &mut Vec<(i64, Vec<u8>)>) -> Result<Outcome, StateError> {
        let (ts, key, fields, values) = match self.read(r) {
            Ok(x) => x,
            Err(o) => return Ok(o),
        };
        let aggs = &self.cfg.aggregates;
        if let WindowKind::Session { gap_ms } = self.cfg.kind {
            let skey = [b"s".as_slice(), &key].concat();
            let mut sessions = match scope.get(self.store, &skey)? {
                Some(v) => decode_sessions(v, aggs.len()).map(|(_, s)| s).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut acc = Acc::new(aggs.len());
            acc.add(aggs, &values);
            let mut new: Session = (ts, ts.saturating_add(gap_ms), acc);
            while let Some(i) = sessions.iter().position(|(s, e, _)| *s < new.1 && new.0 < *e) {
                let (s, e, a) = sessions.swap_remove(i);
                new.0 = new.0.min(s);
                new.1 = new.1.max(e);
                new.2.merge(aggs, &a);
            }
            if self.fires_at(new.1) <= self.watermark {
                return Ok(late(ts, self.watermark));
            }
            fire.push((self.fires_at(new.1), skey.clone()));
            sessions.push(new);
            sessions.sort_by_key(|(s, _, _)| *s);
            scope.put(self.store, skey, encode_sessions(&self.key_json(&key, fields.as_deref()), &sessions))?;
            return Ok(Outcome::Drop);
        }
        let mut taken = false;
        for (start, end) in self.cfg.kind.windows(ts) {
            if self.fires_at(end) <= self.watermark {
                continue;
            }
            taken = true;
            let wkey = window_key(start, &key);
            // An open window is already indexed: update its acc behind the stored key prefix.
            let open = scope.get(self.store, &wkey)?.and_then(|v| {
                let at = prefix_len(v)?;
                let (acc, _) = Acc::decode(&v[at..], aggs.len())?;
                Some((v[..at].to_vec(), acc))
            });
            let value = match open {
                Some((mut value, mut acc)) => {
                    acc.add(aggs, &values);
                    acc.encode(&mut value);
                    value
                }
                None => {
                    let mut acc = Acc::new(aggs.len());
                    acc.add(aggs, &values);
                    fire.push((self.fires_at(end), wkey.clone()));
                    encode_window(&self.key_json(&key, fields.as_deref()), &acc)
                }
            };
            scope.put(self.store, wkey, value)?;
        }
        Ok(if taken { Outcome::Drop } else { late(ts, self.watermark) })
    }

    /// The record a closed window emits.
    fn emit(&self, key: &[u8], key_json: &str, start: i64, end: i64, acc: &Acc) -> Record {
        let mut v = format!("{{{key_json},\"window_start\":{start},\"window_end\":{end}");
        acc.write(&self.cfg.aggregates, &mut v);
        v.push('}');
        Record { key: Some(key.to_vec()), value: Some(v.into_bytes()), timestamp_ms: end - 1, ..Default::default() }
    }

    /// Fires the due windows of one state key; returns what they emit.
    fn fire_key(&self, scope: &mut Scope<'_>, skey: &[u8], out: &mut Vec<Record>) -> Result<(), StateError> {
        let n = self.cfg.aggregates.len();
        let Some(value) = scope.get(self.store, skey)?.map(<[u8]>::to_vec) else { return Ok(()) };
        if skey.first() == Some(&b's') {
            let Some((key_json, sessions)) = decode_sessions(&value, n) else { return Ok(()) };
            let (due, rest): (Vec<Session>, Vec<Session>) = sessions.into_iter().partition(|(_, e, _)| self.fires_at(*e) <= self.watermark);
            if due.is_empty() {
                return Ok(());
            }
            out.extend(due.iter().map(|(s, e, acc)| self.emit(&skey[1..], &key_json, *s, *e, acc)));
            return if rest.is_empty() {
                scope.delete(self.store, skey.to_vec()).map(|_| ())
            } else {
                scope.put(self.store, skey.to_vec(), encode_sessions(&key_json, &rest))
            };
        }
        let (Some(start), Some((key_json, rest))) = (start_of(skey), split_key(&value)) else { return Ok(()) };
        let end = start + self.cfg.kind.size();
        if self.fires_at(end) > self.watermark {
            return Ok(());
        }
        if let Some((acc, _)) = Acc::decode(rest, n) {
            out.push(self.emit(&skey[9..], &key_json, start, end, &acc));
        }
        scope.delete(self.store, skey.to_vec()).map(|_| ())
    }
}

impl Processor for Window {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        let st = state.as_mut().expect("worker state lent to processor");
        let mut out = Vec::with_capacity(records.len());
        let mut fire = Vec::new();
        let mut staging = std::mem::take(&mut self.staging);
        let mut scope = st.scope(&mut staging, ctx.key_group, ctx.now_ms);
        for r in records {
            match self.add(&mut scope, r, &mut fire) {
                Ok(o) => out.push(o),
                Err(e) => {
                    staging.discard();
                    self.staging = staging;
                    return Err(state_err(e));
                }
            }
        }
        st.commit(&mut staging, ctx.key_group, ctx.now_ms);
        self.staging = staging;
        fire.into_iter().for_each(|(t, k)| self.index.insert(t, ctx.key_group, k));
        Ok(out)
    }

    fn on_checkpoint(&mut self, _: u64, _: u32, _: i64, _: &mut StateSlot) -> Result<(), BatchError> {
        Ok(())
    }

    fn has_timers(&self) -> bool {
        true
    }

    fn on_restore(&mut self, state: &WorkerState) {
        let n = self.cfg.aggregates.len();
        let groups: Vec<u32> = state.groups().collect();
        for g in groups {
            for (_, k, e) in state.iter_group(g).filter(|(s, _, _)| *s == self.store) {
                match k.first() {
                    Some(b'w') => {
                        if let Some(start) = start_of(k) {
                            self.index.insert(self.fires_at(start + self.cfg.kind.size()), g, k.to_vec());
                        }
                    }
                    Some(b's') => {
                        for (_, end, _) in decode_sessions(&e.value, n).map(|(_, s)| s).unwrap_or_default() {
                            self.index.insert(self.fires_at(end), g, k.to_vec());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn due_groups(&self, clock: Clock) -> Vec<u32> {
        let Clock::Event(time_ms) = clock else { return Vec::new() };
        self.index.due_groups(time_ms)
    }

    fn fire(&mut self, clock: Clock, _epoch: u64, now_ms: i64, state: &mut StateSlot) -> Result<Vec<Fired>, BatchError> {
        let Clock::Event(time_ms) = clock else { return Ok(Vec::new()) };
        self.watermark = self.watermark.max(time_ms);
        let due = self.index.take_due(self.watermark);
        let Some(st) = state.as_mut() else { return Ok(Vec::new()) };
        let mut fired = Vec::new();
        let mut staging = std::mem::take(&mut self.staging);
        for (g, keys) in due {
            let mut out = Vec::new();
            let mut scope = st.scope(&mut staging, g, now_ms);
            for k in keys {
                if let Err(e) = self.fire_key(&mut scope, &k, &mut out) {
                    staging.discard();
                    self.staging = staging;
                    return Err(state_err(e));
                }
            }
            st.commit(&mut staging, g, now_ms);
            if !out.is_empty() {
                fired.push(Fired { group: g, inputs: vec![Record::default()], outcomes: vec![Outcome::Emit(out)] });
            }
        }
        self.staging = staging;
        Ok(fired)
    }
}
