//! The `kafka` input's stall guard: a partition the input reads, whose broker holds records past
//! the input's position, that delivered nothing for [`STALL_AFTER`] while the input kept polling
//! and while librdkafka held none of its records in its local queue, is *stalled*. The input then
//! assigns all its partitions again at its own positions (and resumes them), which restarts
//! librdkafka's fetcher for each.
//!
//! Why: librdkafka's pause/resume and fetch-start are asynchronous operations, and a group
//! session pauses its assignment while it takes the key groups over. One group-mode run on this
//! project's test broker saw a taken-over partition never deliver again, with the others of the
//! same assignment read to the end (a consumer that waits forever loses no record, but it
//! processes none either). Re-assigning is always safe: positions are the input's own, and a
//! record fetched twice is below the position and skipped. The guard logs what librdkafka said
//! about the partition, so the cause can be read from the warning.
//!
//! Contract: [`Clock`] only decides *when* to ask the broker; the caller asks (a ListOffsets
//! request per candidate, at most once per [`STALL_AFTER`] per partition) and re-assigns.

use std::time::{Duration, Instant};

/// How long a partition with records waiting on the broker may deliver none.
pub(super) const STALL_AFTER: Duration = Duration::from_secs(15);
/// How often the input looks for candidates.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A gap this long between two reads means the stream was not asking (backpressure, a session
/// change): nobody can have expected progress, so every clock starts again.
const POLL_GAP: Duration = Duration::from_secs(1);

/// Per-partition progress clocks, driven by the input's reads.
#[derive(Debug)]
pub(super) struct Clock {
    progress: Vec<Instant>,
    last_read: Instant,
    checked: Instant,
}

impl Clock {
    pub(super) fn new(partitions: usize, now: Instant) -> Clock {
        Clock { progress: vec![now; partitions], last_read: now, checked: now }
    }

    /// The input reads at `now`; after a gap every clock restarts.
    pub(super) fn reading(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_read) > POLL_GAP {
            self.restart(now);
        }
        self.last_read = now;
    }

    /// Every clock restarts (partitions were just assigned).
    pub(super) fn restart(&mut self, now: Instant) {
        self.progress.iter_mut().for_each(|p| *p = now);
    }

    /// Partition `i` delivered a record at `now`.
    pub(super) fn progressed(&mut self, i: usize, now: Instant) {
        self.progress[i] = now;
    }

    /// Whether a check is due (at most every [`CHECK_EVERY`]); marks it done.
    pub(super) fn check_due(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.checked) < CHECK_EVERY {
            return false;
        }
        self.checked = now;
        true
    }

    /// The partitions among `watched` silent for [`STALL_AFTER`]; their clocks restart, so each is
    /// a candidate at most once per window.
    pub(super) fn candidates(&mut self, now: Instant, watched: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, at) in self.progress.iter_mut().enumerate() {
            if watched(i) && now.saturating_duration_since(*at) >= STALL_AFTER {
                *at = now;
                out.push(i);
            }
        }
        out
    }
}

/// What librdkafka's statistics last said about one partition (for the stall warning).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PartStats {
    pub fetch_state: String,
    pub next_offset: i64,
    pub app_offset: i64,
    pub hi_offset: i64,
    /// Records librdkafka fetched and holds for the application.
    pub fetchq_cnt: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_partition_is_a_candidate_once_per_window_and_only_while_the_input_reads() {
        let t0 = Instant::now();
        let mut c = Clock::new(3, t0);
        let step = Duration::from_millis(500);
        let mut now = t0;
        // Reading steadily: partition 0 delivers, 1 is silent, 2 is not watched.
        while now < t0 + STALL_AFTER - step {
            now += step;
            c.reading(now);
            c.progressed(0, now);
        }
        assert!(c.candidates(now, |i| i != 2).is_empty(), "nothing is silent for the whole window yet");
        now += step * 2;
        c.reading(now);
        c.progressed(0, now);
        assert_eq!(c.candidates(now, |i| i != 2), vec![1]);
        assert!(c.candidates(now + step, |i| i != 2).is_empty(), "a candidate's clock restarts");

        // A gap in reading (backpressure) restarts every clock: no candidate right after it.
        let later = now + STALL_AFTER * 3;
        c.reading(later);
        assert!(c.candidates(later, |_| true).is_empty());
        assert_eq!(c.candidates(later + STALL_AFTER, |_| true), vec![0, 1, 2]);
    }

    #[test]
    fn checks_are_due_at_most_every_interval() {
        let t0 = Instant::now();
        let mut c = Clock::new(1, t0);
        assert!(!c.check_due(t0 + CHECK_EVERY / 2));
        assert!(c.check_due(t0 + CHECK_EVERY));
        assert!(!c.check_due(t0 + CHECK_EVERY + CHECK_EVERY / 2));
        assert!(c.check_due(t0 + CHECK_EVERY * 2));
    }
}
