//! Wall-clock time as the engine reads it.

/// Wall-clock milliseconds since the Unix epoch: the TTL clock, decision and claim timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
