//! A worker's timers: the stages that keep them (`Processor::has_timers`) fire on two clocks.
//!
//! - Event time: a watermark (`super::watermark`) takes effect after the records before it. The
//!   worker flushes its buffers, lets each stage with timers fire what is due at the watermark
//!   (what fires runs through the stages after it, as a batch of its key group), then forwards
//!   the watermark to the next tier.
//! - Processing time: between messages, and while it waits for one, the worker checks the
//!   earliest processing-time timer of its stages against the wall clock and fires what is due
//!   (waking from an idle inbox to do so). A fire belongs to the epoch the worker is in, like a
//!   batch, so its effects are decided with that epoch's checkpoint.
//!
//! At the end of a bounded input time ends on both clocks: the input sends the watermark `END`
//! (also without `event_time:`) and every pending timer fires, so a bounded run's result is
//! complete. A stop (SIGTERM, failure) is not an end: pending timers stay in the checkpoint.
//!
//! Stages with timers get the worker's whole restored state once before the first record
//! (`Processor::on_restore`), so that they rebuild their timer index.

use super::msg::{OutMsg, WorkerMsg};
use super::worker::{file_outcomes, Worker};
use crate::processor::{Clock, Fired};
use crate::util::time::now_ms as wall_ms;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

impl Worker {
    /// Gives the restored state to the stages with timers (all owned groups loaded first).
    pub(super) fn restore_timers(&mut self) {
        if !self.processors.iter().any(|p| p.has_timers()) {
            return;
        }
        for g in self.owned.clone() {
            if !self.ensure_resident(g) {
                return;
            }
        }
        if let Some(st) = self.state.as_deref() {
            for p in self.processors.iter_mut().filter(|p| p.has_timers()) {
                p.on_restore(st);
            }
        }
        self.rearm();
    }

    /// Recomputes the earliest processing-time timer.
    fn rearm(&mut self) {
        self.wake = self.processors.iter().filter(|p| p.has_timers()).filter_map(|p| p.next_processing_timer()).min();
    }

    /// The next message, waking from an idle inbox when a processing-time timer is due.
    pub(super) fn next_msg(&mut self, inbox: &Receiver<WorkerMsg>) -> Option<WorkerMsg> {
        loop {
            match inbox.try_recv() {
                Ok(m) => return Some(m),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            self.flush_all();
            let Some(at) = self.wake else { return inbox.recv().ok() };
            // At least every millisecond, so a timer re-armed at "now" cannot spin the worker.
            let wait = Duration::from_millis((at - wall_ms()).max(1) as u64);
            match inbox.recv_timeout(wait) {
                Ok(m) => return Some(m),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => self.clock_due(),
            }
        }
    }

    /// Fires the processing-time timers that are due.
    pub(super) fn clock_due(&mut self) {
        let Some(at) = self.wake else { return };
        let now = wall_ms();
        if now < at {
            return;
        }
        self.fire_all(Clock::Processing(now));
    }

    /// The watermark rose to `time_ms`: flush, fire what is due stage by stage, forward it.
    pub(super) fn take_watermark(&mut self, time_ms: i64) {
        if time_ms <= self.watermark {
            return;
        }
        self.watermark = time_ms;
        self.flush_all();
        self.fire_all(Clock::Event(time_ms));
        if time_ms == super::watermark::END {
            // The end of a bounded input: the processing-time timers fire now too.
            self.fire_all(Clock::Processing(i64::MAX));
        }
        if let Some(x) = &self.next {
            x.watermark(self.tier_index, self.epoch, time_ms);
        }
    }

    /// Lets every stage with timers fire what is due at `clock`, in stage order.
    fn fire_all(&mut self, clock: Clock) {
        if self.dead || self.halted() {
            self.wake = None;
            return;
        }
        let now = self.now_ms();
        for i in 0..self.processors.len() {
            if self.dead || self.halted() {
                break;
            }
            if !self.processors[i].has_timers() {
                continue;
            }
            let groups = self.processors[i].due_groups(clock);
            if !groups.iter().all(|g| self.ensure_resident(*g)) {
                break;
            }
            groups.into_iter().for_each(|g| self.mark_dirty(g));
            match self.processors[i].fire(clock, self.epoch, now, &mut self.state) {
                Ok(fired) => fired.into_iter().for_each(|f| self.take_fired(i, f)),
                Err(e) => self.fatal(e),
            }
        }
        self.rearm();
    }

    /// Sends what stage `i`'s timers of one key group produced on: emitted records through the
    /// stages after it, error and named-output records to the output.
    fn take_fired(&mut self, i: usize, f: Fired) {
        let (mut next, mut errors, mut side) = (Vec::new(), Vec::new(), Vec::new());
        let shared = self.shared.clone();
        file_outcomes(&shared, (self.first_stage + i, self.processors[i].name()), &f.inputs, f.outcomes, (&mut next, &mut errors, &mut side));
        self.touched.insert(f.group);
        if !errors.is_empty() || !side.is_empty() {
            shared.metrics.records_failed.fetch_add(errors.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let _ = self.out.send(OutMsg::Data { epoch: self.epoch, records: Vec::new(), errors, side });
        }
        self.process_from(f.group, i + 1, next);
    }
}
