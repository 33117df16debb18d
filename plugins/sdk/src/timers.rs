//! Timers (`arkflow:plugin/timers`): host-kept, checkpointed, fired once in the exactly-once sense.
//!
//! Register or delete during `process_batch`, `on_timers` or `on_checkpoint`; the timer belongs to
//! that call's key group and fires in [`crate::Processor::on_timers`] once the watermark
//! ([`TimeDomain::Event`], the stream needs `event_time:`) or the wall clock
//! ([`TimeDomain::Processing`]) reaches `time_ms`. Registration is staged with the call: a failed
//! call registers nothing.

use crate::bindings::arkflow::plugin::timers as wit;
use crate::{StateError, TimeDomain};

/// Registers a timer for `key` at `time_ms` (registering the same key, time and domain twice
/// keeps one timer).
pub fn register(key: &[u8], time_ms: i64, domain: TimeDomain) -> Result<(), StateError> {
    wit::register_timer(key, time_ms, domain)
}

/// Deletes a timer; returns whether it was registered.
pub fn delete(key: &[u8], time_ms: i64, domain: TimeDomain) -> Result<bool, StateError> {
    wit::delete_timer(key, time_ms, domain)
}

/// The stream's watermark as this instance last saw it (`i64::MIN` before the first): an event
/// at or before it is late.
pub fn watermark() -> i64 {
    wit::watermark()
}

/// The host's wall clock, ms since the Unix epoch (the processing-time clock).
pub fn now() -> i64 {
    wit::now()
}
