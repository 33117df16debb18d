//! [`StopOnDrop`]: the stop flag a connector shares with its background tasks, raised when the
//! connector is dropped, so a task never outlives its owner by more than one check of the flag.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

pub struct StopOnDrop(Arc<AtomicBool>);

impl StopOnDrop {
    pub fn new() -> Self {
        StopOnDrop(Arc::new(AtomicBool::new(false)))
    }

    /// The flag, for a task to poll.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl Default for StopOnDrop {
    fn default() -> Self {
        StopOnDrop::new()
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_owner_raises_the_flag() {
        let stop = StopOnDrop::new();
        let flag = stop.flag();
        assert!(!flag.load(Relaxed));
        drop(stop);
        assert!(flag.load(Relaxed));
    }
}
