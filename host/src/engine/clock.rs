//! The TTL clock of a checkpointing stream: *stream time*, the wall clock minus the time the
//! stream was down.
//!
//! Contract: the clock value at barrier `e` is recorded in manifest `e` and is the clock every
//! record of epoch `e + 1` sees (workers switch at the barrier), so the records replayed after a
//! crash, which all belong to the epoch after the last decided one, see the clock the original
//! run gave them, whatever time the replay happens at. A restart continues from the recorded
//! value: time while no process ran does not count toward `state_timeout_ms`. Without
//! checkpoints nothing is replayed and workers read the wall clock per batch.

/// Stream time, never going backwards.
#[derive(Debug)]
pub struct StreamClock {
    offset_ms: i64,
    last: i64,
}

impl StreamClock {
    /// Continues from `restored` (the last decided manifest's clock), or starts at the wall clock.
    pub fn new(restored: Option<i64>) -> Self {
        let now = crate::util::time::now_ms();
        let offset_ms = restored.map_or(0, |r| (now - r).max(0));
        StreamClock { offset_ms, last: restored.unwrap_or(now) }
    }

    /// The value for the barrier being injected now.
    pub fn tick(&mut self) -> i64 {
        self.last = self.last.max(crate::util::time::now_ms() - self.offset_ms);
        self.last
    }

    /// The current value without advancing it (the clock of the epoch now open).
    pub fn current(&self) -> i64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_from_the_restored_value_and_never_goes_back() {
        let c = StreamClock::new(Some(1_000));
        assert_eq!(c.current(), 1_000, "downtime does not count");
        let mut c = StreamClock::new(Some(i64::MAX / 2));
        let v = c.tick();
        assert!(v >= i64::MAX / 2, "a clock from the future is kept, not moved back");
        let mut c = StreamClock::new(None);
        let a = c.tick();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(c.tick() >= a + 5);
    }
}
