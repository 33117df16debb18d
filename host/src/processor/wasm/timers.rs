//! Plugin timers (`arkflow:plugin/timers`, `timer-handler`, world `timed-plugin`).
//!
//! Contract:
//! - A timer is one entry of the host's store `$timers` (`state::TIMER_STORE`) in the key group of
//!   the call that registered it: key `[stage u16 BE][domain: b'e' | b'p'][time: i64 BE, sign bit
//!   flipped][user key]`, empty value. Registering and deleting are staged writes of the running
//!   call, so a failed call registers nothing; the store is checkpointed and restored with all
//!   other state and never expires.
//! - Each worker keeps an index per clock, `(time, key group, state key)`, of the timers it has
//!   seen registered or restored. The index may hold stale entries (a timer deleted since):
//!   firing re-reads the store and skips them.
//! - Firing the timers of one key group is one `on-timers` call: the due timers are deleted
//!   (staged) before it, so a timer fires once unless the call registers it again; the call's
//!   writes and deletions commit only when it succeeds, with the retries and failure policy of a
//!   batch. Its outcomes, one per timer, go on like a batch's, each citing a record that stands
//!   for its timer (`{"timer":{"key","time_ms","domain"}}`, keyed by the timer's key).

use super::calls::{FiredTimer, TimerCall};
use super::instance::{bounded, WasmProcessor};
use super::HostCtx;
use crate::processor::{BatchError, Clock, Fired, StateSlot};
use crate::record::{ErrorClass, Outcome, Record, RecordError};
use crate::state::{StateError, WorkerState, TIMER_STORE};
use std::collections::{BTreeMap, BTreeSet};

/// Due-time index of one clock: (time, key group, state key).
pub(super) type Index = BTreeSet<(i64, u32, Vec<u8>)>;

/// The indexes of both clocks (event, processing) and the last watermark seen.
#[derive(Default)]
pub struct Timers {
    pub(super) index: [Index; 2],
    watermark: Option<i64>,
}

/// The state key of a timer.
pub(super) fn timer_key(stage: u16, domain: u8, time: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(11 + key.len());
    k.extend_from_slice(&stage.to_be_bytes());
    k.push(domain);
    k.extend_from_slice(&crate::processor::window::ordered_time(time));
    k.extend_from_slice(key);
    k
}

/// (stage, domain, time, user key) of a timer's state key.
fn parse_key(k: &[u8]) -> Option<(u16, u8, i64, &[u8])> {
    let stage = u16::from_be_bytes(k.get(..2)?.try_into().ok()?);
    let time = crate::processor::window::time_from(k.get(3..)?)?;
    Some((stage, *k.get(2)?, time, &k[11..]))
}

impl Timers {
    /// The last watermark seen (i64::MIN: none).
    pub(super) fn watermark(&self) -> i64 {
        self.watermark.unwrap_or(i64::MIN)
    }

    /// Indexes a timer state key of key group `group`.
    pub(super) fn add(&mut self, group: u32, skey: Vec<u8>) {
        if let Some((_, d, time, _)) = parse_key(&skey) {
            self.index[usize::from(d == b'p')].insert((time, group, skey));
        }
    }

    /// Rebuilds the index from the restored state: every timer of stage `stage`.
    pub(super) fn restore(&mut self, stage: u16, state: &WorkerState) {
        let Some(id) = state.store_id(TIMER_STORE) else { return };
        let groups: Vec<u32> = state.groups().collect();
        for g in groups {
            for (_, k, _) in state.iter_group(g).filter(|(s, k, _)| *s == id && k.starts_with(&stage.to_be_bytes())) {
                self.add(g, k.to_vec());
            }
        }
    }

    /// The wall clock at which the earliest processing timer is due (just past its time).
    pub(super) fn next_processing(&self) -> Option<i64> {
        self.index[1].first().map(|(t, _, _)| t.saturating_add(1))
    }

    pub(super) fn due_groups(&self, clock: Clock) -> Vec<u32> {
        let (i, t) = split(clock);
        let g: BTreeSet<u32> = self.index[i].iter().take_while(|(at, _, _)| *at <= t).map(|(_, g, _)| *g).collect();
        g.into_iter().collect()
    }

    /// Removes the due entries of `clock` from the index, by key group.
    fn take_due(&mut self, clock: Clock) -> BTreeMap<u32, Vec<Vec<u8>>> {
        let (i, t) = split(clock);
        if i == 0 {
            self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
        }
        let mut due: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        while self.index[i].first().is_some_and(|(at, _, _)| *at <= t) {
            let (_, g, k) = self.index[i].pop_first().expect("first exists");
            due.entry(g).or_default().push(k);
        }
        due
    }
}

/// The index of a clock and the latest timer time due at it. A processing timer is due once the
/// clock has passed its time (as in Flink): a record processed in the millisecond of a window's
/// last timestamp still belongs to that window, so the window must not have fired yet.
fn split(clock: Clock) -> (usize, i64) {
    match clock {
        Clock::Event(t) => (0, t),
        Clock::Processing(i64::MAX) => (1, i64::MAX),
        Clock::Processing(t) => (1, t - 1),
    }
}

/// The record standing for a fired timer.
fn timer_record(skey: &[u8], now_wall: i64) -> Record {
    let (_, d, time, key) = parse_key(skey).unwrap_or((0, b'e', 0, &[]));
    let domain = if d == b'p' { "processing" } else { "event" };
    let mut v = br#"{"timer":{"key":"#.to_vec();
    crate::util::json::write_str(&mut v, &String::from_utf8_lossy(key));
    v.extend_from_slice(format!(r#","time_ms":{time},"domain":"{domain}"}}}}"#).as_bytes());
    let ts = if d == b'p' { now_wall } else { time };
    Record { key: Some(key.to_vec()), value: Some(v), timestamp_ms: ts, ..Default::default() }
}

impl HostCtx {
    /// `timers.register-timer` (`domain`: b'e' or b'p').
    pub(super) fn register_timer(&mut self, key: &[u8], time_ms: i64, domain: u8) -> Result<(), StateError> {
        let skey = timer_key(self.stage, domain, time_ms, key);
        self.timer_write(skey.clone(), true)?;
        self.timers_added.push(skey);
        Ok(())
    }

    /// `timers.delete-timer`: whether it was registered.
    pub(super) fn delete_timer(&mut self, key: &[u8], time_ms: i64, domain: u8) -> Result<bool, StateError> {
        self.timer_write(timer_key(self.stage, domain, time_ms, key), false)
    }

    /// Stages a timer's registration (`put`) or deletion; a deletion says whether it was there.
    fn timer_write(&mut self, skey: Vec<u8>, put: bool) -> Result<bool, StateError> {
        if !self.state_enabled {
            return Err(StateError::Disabled);
        }
        let (group, now) = self.scope.ok_or(StateError::NoScope)?;
        let state = self.state.as_mut().ok_or(StateError::NoScope)?;
        let id = state.store_id(TIMER_STORE).ok_or(StateError::Disabled)?;
        let mut scope = state.scope(&mut self.staging, group, now);
        match put {
            true => scope.put(id, skey, Vec::new()).map(|_| true),
            false => scope.delete(id, skey),
        }
    }
}

/// The clocks of one `on-timers` call.
#[derive(Clone, Copy)]
struct Times {
    watermark: i64,
    wall: i64,
    /// TTL clock.
    now: i64,
    epoch: u64,
}

/// Stages the deletion of the timers among `keys` (state keys of key group `scope`'s timers)
/// that are still registered; returns those.
fn take_live<'k>(scope: &mut crate::state::Scope<'_>, id: u16, keys: &'k [Vec<u8>]) -> Vec<&'k Vec<u8>> {
    keys.iter().filter(|k| scope.delete(id, k.to_vec()).unwrap_or(false)).collect()
}

impl WasmProcessor {
    /// Fires what is due at `clock`, one `on-timers` call per key group.
    pub(super) fn fire_timers(&mut self, clock: Clock, epoch: u64, now_ms: i64, state: &mut StateSlot) -> Result<Vec<Fired>, BatchError> {
        let due = self.timers.take_due(clock);
        let t = Times { watermark: self.timers.watermark(), wall: crate::util::time::now_ms(), now: now_ms, epoch };
        let mut out = Vec::new();
        for (group, keys) in due {
            let f = self.fire_group(group, &keys, t, state)?;
            if !f.outcomes.is_empty() {
                out.push(f);
            }
        }
        Ok(out)
    }

    fn fire_group(&mut self, group: u32, keys: &[Vec<u8>], t: Times, state: &mut StateSlot) -> Result<Fired, BatchError> {
        let attempts = self.shared.cfg.retries + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            match self.timer_attempt(group, keys, t, state, attempt) {
                Ok(f) => return Ok(f),
                Err(e) => {
                    tracing::warn!(attempt, "{}: {e}", self.shared.label);
                    last = e;
                }
            }
        }
        let message = format!("{}: {} timers of key group {group} failed after {attempts} attempts: {last}", self.shared.label, keys.len());
        if self.shared.cfg.on_failure == crate::processor::FailurePolicy::Fail {
            return Err(BatchError { message, policy: self.shared.cfg.on_failure });
        }
        // error_output: the timers leave the store and go to error_output with the failure.
        let st = state.as_mut().expect("worker state lent to processor");
        let id = st.store_id(TIMER_STORE).expect("timer store");
        let mut staging = crate::state::Staging::default();
        let mut scope = st.scope(&mut staging, group, t.now);
        let live = take_live(&mut scope, id, keys);
        st.commit(&mut staging, group, t.now);
        let err = RecordError { class: ErrorClass::Batch, code: "timers-failed".into(), message };
        let inputs: Vec<Record> = live.iter().map(|k| timer_record(k, t.wall)).collect();
        let outcomes = inputs.iter().map(|_| Outcome::Fail(err.clone())).collect();
        Ok(Fired { group, inputs, outcomes })
    }

    /// One `on-timers` call for the live timers among `keys`. Err(message) leaves state untouched.
    fn timer_attempt(&mut self, group: u32, keys: &[Vec<u8>], t: Times, state: &mut StateSlot, attempt: u32) -> Result<Fired, String> {
        self.ensure_instance()?;
        let ms = self.shared.cfg.limits.batch_timeout_ms;
        let where_ = format!("plugin {} export {}#on-timers", self.shared.path.display(), self.shared.abi.timer_export());
        let (store, guest) = self.instance.as_mut().expect("instance ensured");
        let data = store.data_mut();
        data.state = state.take();
        data.scope = Some((group, t.now));
        data.timers_added.clear();
        data.watermark = t.watermark;
        let st = data.state.as_mut().expect("worker state lent to processor");
        let id = st.store_id(TIMER_STORE).expect("timer store");
        let mut scope = st.scope(&mut data.staging, group, t.now);
        let live = take_live(&mut scope, id, keys);
        let inputs: Vec<Record> = live.iter().map(|k| timer_record(k, t.wall)).collect();
        let fired: Vec<FiredTimer<'_>> = live.iter().filter_map(|k| parse_key(k)).map(|(_, d, time, key)| (key, time, d == b'p')).collect();
        let result = match fired.is_empty() {
            true => Ok(Ok(super::calls::Returned::none())),
            false => {
                let call = TimerCall { key_group: group, watermark_ms: t.watermark, now_ms: t.wall, attempt, epoch: t.epoch };
                store.set_epoch_deadline(super::engine::deadline_ticks(ms));
                bounded(ms, guest.on_timers(&mut *store, call, &fired))
            }
        };
        let outcomes = self.finish_call(result, state, &where_)?;
        let (out, _, _) = self.accept_outcomes(outcomes, &inputs, "timers", &where_)?;
        self.commit_call(state, group, t.now);
        Ok(Fired { group, inputs, outcomes: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_keys_sort_by_stage_domain_then_time_and_round_trip() {
        let keys: Vec<Vec<u8>> =
            [(0, b'e', -5), (0, b'e', 3), (0, b'p', -9), (1, b'e', i64::MIN)].iter().map(|(s, d, t)| timer_key(*s, *d, *t, b"k")).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys, "byte order = (stage, domain, time) order, negative times first");
        assert_eq!(parse_key(&keys[0]), Some((0, b'e', -5, b"k".as_slice())));
        assert_eq!(parse_key(b"short"), None);
    }

    #[test]
    fn due_timers_leave_the_index_by_clock_and_group() {
        let mut t = Timers::default();
        t.add(2, timer_key(0, b'e', 10, b"a"));
        t.add(1, timer_key(0, b'e', 20, b"b"));
        t.add(1, timer_key(0, b'p', 5, b"c"));
        assert_eq!(t.due_groups(Clock::Event(15)), vec![2]);
        assert_eq!(t.next_processing(), Some(6), "due once the clock passed 5");
        let due = t.take_due(Clock::Event(20));
        assert_eq!(due.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(t.watermark(), 20);
        assert!(t.take_due(Clock::Event(100)).is_empty(), "fired timers are gone");
        assert!(t.take_due(Clock::Processing(5)).is_empty(), "not in its own millisecond");
        assert_eq!(t.take_due(Clock::Processing(6)).len(), 1);
        assert_eq!(t.next_processing(), None);
    }
}
