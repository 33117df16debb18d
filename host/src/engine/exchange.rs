//! The in-process exchange between two worker tiers (docs/ARCHITECTURE.md, *Exchanges*).
//!
//! Contract:
//! - Every worker of the upstream tier owns an [`Exchange`]: what its stages emit is routed by
//!   the downstream tier's key to the worker owning that key's group, over the downstream
//!   workers' bounded inboxes (a slow tier stalls the one before it, then the input). Records
//!   of one key from one upstream worker arrive in the order it emitted them.
//! - Barriers are broadcast: an upstream worker sends barrier `e` to every downstream worker
//!   after everything it emitted in epoch `e`, and data carries its epoch.
//! - A downstream worker aligns ([`Alignment`]): barrier `e` takes effect when all upstream
//!   workers sent it; until then data and barriers of a later epoch (from workers already past
//!   `e`) are held and replayed afterwards in arrival order. So a checkpoint is one consistent
//!   cut over both tiers (Flink's aligned checkpoint over an all-to-all exchange).
//! - Watermarks are broadcast like barriers, in-band behind the data they follow; a downstream
//!   worker's watermark is the minimum over its upstream workers' (each starts unknown), and it
//!   takes effect only when that minimum rises. A watermark from a worker already past the
//!   barrier being aligned is held like its data.
//! - A downstream worker ends after EOF from every upstream worker.
//!
//! The upstream tier never waits on the downstream one except for inbox space, and the
//! downstream tier never sends upstream: no cycle, so no deadlock on bounded channels.

use super::msg::WorkerMsg;
use super::routing::Router;
use crate::record::Record;
use crossbeam_channel::Sender;
use std::collections::VecDeque;

/// One upstream worker's side of an exchange.
pub struct Exchange {
    router: Router,
    inboxes: Vec<Sender<WorkerMsg>>,
}

impl Exchange {
    /// Routes by `router` (key groups of the downstream tier) into `inboxes`.
    pub fn new(router: Router, inboxes: Vec<Sender<WorkerMsg>>) -> Self {
        Exchange { router, inboxes }
    }

    /// Sends `records` of epoch `epoch` to their workers. A closed inbox means the downstream
    /// tier has failed or stopped (the stream's failure says why): the rest is not sent.
    pub fn send(&mut self, epoch: u64, records: Vec<Record>) {
        for (w, routed) in self.router.route(records).into_iter().enumerate() {
            if !routed.is_empty() && self.inboxes[w].send(WorkerMsg::Exchanged { epoch, records: routed }).is_err() {
                return;
            }
        }
    }

    /// Broadcasts barrier `epoch` to every downstream worker.
    pub fn barrier(&self, epoch: u64, clock_ms: i64) {
        for tx in &self.inboxes {
            let _ = tx.send(WorkerMsg::Barrier { epoch, clock_ms });
        }
    }

    /// Broadcasts this worker's (index `from` in its tier) watermark `time_ms`, sent in `epoch`.
    pub fn watermark(&self, from: usize, epoch: u64, time_ms: i64) {
        for tx in &self.inboxes {
            let _ = tx.send(WorkerMsg::Watermark { from, epoch, time_ms });
        }
    }

    /// Tells every downstream worker that this one is done.
    pub fn eof(&self) {
        for tx in &self.inboxes {
            let _ = tx.send(WorkerMsg::Eof);
        }
    }
}

/// What a downstream worker does with the next message of its inbox.
pub enum Step {
    /// Process it now.
    Now(WorkerMsg),
    /// Barrier `epoch` has arrived from every upstream worker: take it, then replay the held.
    Aligned { epoch: u64, clock_ms: i64 },
    /// Held, or a barrier/EOF still waiting for other upstream workers.
    Wait,
    /// EOF from every upstream worker.
    Done,
}

/// Barrier alignment at a worker fed by `upstreams` workers.
pub struct Alignment {
    upstreams: usize,
    arrived: usize,
    eofs: usize,
    held: VecDeque<WorkerMsg>,
    /// Each upstream worker's last watermark (i64::MIN: none yet), and the minimum taken.
    marks: Vec<i64>,
    taken: i64,
}

impl Alignment {
    pub fn new(upstreams: usize) -> Self {
        let upstreams = upstreams.max(1);
        Alignment { upstreams, arrived: 0, eofs: 0, held: VecDeque::new(), marks: vec![i64::MIN; upstreams], taken: i64::MIN }
    }

    /// Classifies `msg` for a worker in epoch `current`.
    pub fn step(&mut self, msg: WorkerMsg, current: u64) -> Step {
        match msg {
            WorkerMsg::Exchanged { epoch, .. } | WorkerMsg::Barrier { epoch, .. } | WorkerMsg::Watermark { epoch, .. } if epoch > current => {
                self.held.push_back(msg);
                Step::Wait
            }
            WorkerMsg::Watermark { from, epoch, time_ms } => {
                if let Some(m) = self.marks.get_mut(from) {
                    *m = (*m).max(time_ms);
                }
                let min = self.marks.iter().copied().min().unwrap_or(i64::MIN);
                if min <= self.taken {
                    return Step::Wait;
                }
                self.taken = min;
                Step::Now(WorkerMsg::Watermark { from: 0, epoch, time_ms: min })
            }
            WorkerMsg::Barrier { epoch, clock_ms } => {
                self.arrived += 1;
                if self.arrived < self.upstreams {
                    return Step::Wait;
                }
                self.arrived = 0;
                Step::Aligned { epoch, clock_ms }
            }
            WorkerMsg::Eof => {
                self.eofs += 1;
                if self.eofs < self.upstreams {
                    return Step::Wait;
                }
                Step::Done
            }
            other => Step::Now(other),
        }
    }

    /// The messages held while waiting for a barrier, to be stepped again in arrival order.
    pub fn take_held(&mut self) -> VecDeque<WorkerMsg> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(epoch: u64, key: &str) -> WorkerMsg {
        let record = Record { key: Some(key.as_bytes().to_vec()), ..Default::default() };
        WorkerMsg::Exchanged { epoch, records: vec![super::super::msg::Routed { group: 0, record }] }
    }

    fn kind(s: &Step) -> String {
        match s {
            Step::Now(WorkerMsg::Exchanged { epoch, .. }) => format!("data {epoch}"),
            Step::Now(WorkerMsg::Watermark { time_ms, .. }) => format!("watermark {time_ms}"),
            Step::Now(_) => "other".into(),
            Step::Aligned { epoch, .. } => format!("aligned {epoch}"),
            Step::Wait => "wait".into(),
            Step::Done => "done".into(),
        }
    }

    #[test]
    fn a_barrier_takes_effect_when_every_upstream_sent_it_and_later_data_waits_for_it() {
        let mut a = Alignment::new(2);
        let barrier = |epoch| WorkerMsg::Barrier { epoch, clock_ms: 0 };
        assert_eq!(kind(&a.step(data(1, "x"), 1)), "data 1");
        assert_eq!(kind(&a.step(barrier(1), 1)), "wait", "one of two upstreams");
        assert_eq!(kind(&a.step(data(2, "y"), 1)), "wait", "epoch 2 data of the upstream already past barrier 1 is held");
        assert_eq!(kind(&a.step(barrier(2), 1)), "wait", "its next barrier too");
        assert_eq!(kind(&a.step(data(1, "z"), 1)), "data 1", "the other upstream's epoch 1 data goes on");
        assert_eq!(kind(&a.step(barrier(1), 1)), "aligned 1");
        let held: Vec<String> = a.take_held().into_iter().map(|m| kind(&a.step(m, 2))).collect();
        assert_eq!(held, ["data 2", "wait"], "replayed in arrival order; barrier 2 waits for the other upstream");
        assert_eq!(kind(&a.step(barrier(2), 2)), "aligned 2");
        assert_eq!(kind(&a.step(WorkerMsg::Eof, 3)), "wait");
        assert_eq!(kind(&a.step(WorkerMsg::Eof, 3)), "done");
    }

    #[test]
    fn a_watermark_takes_effect_at_the_minimum_over_upstreams_when_it_rises() {
        let mut a = Alignment::new(2);
        let wm = |from, epoch, time_ms| WorkerMsg::Watermark { from, epoch, time_ms };
        assert_eq!(kind(&a.step(wm(0, 1, 100), 1)), "wait", "upstream 1 has sent none");
        assert_eq!(kind(&a.step(wm(1, 1, 50), 1)), "watermark 50");
        assert_eq!(kind(&a.step(wm(1, 1, 70), 1)), "watermark 70");
        assert_eq!(kind(&a.step(wm(1, 1, 60), 1)), "wait", "never back");
        assert_eq!(kind(&a.step(wm(1, 2, 200), 1)), "wait", "held: its sender is past the barrier");
        assert_eq!(kind(&a.step(WorkerMsg::Barrier { epoch: 1, clock_ms: 0 }, 1)), "wait");
        assert_eq!(kind(&a.step(WorkerMsg::Barrier { epoch: 1, clock_ms: 0 }, 1)), "aligned 1");
        let held: Vec<String> = a.take_held().into_iter().map(|m| kind(&a.step(m, 2))).collect();
        assert_eq!(held, ["watermark 100"], "the minimum is now upstream 0's 100");
    }
}
