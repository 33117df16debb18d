//! Logging through the host's `log` import (lines are tagged with stream and plugin by the host
//! and truncated at its cap, 4 KiB by default).
//!
//! Contract: `log_info!("x = {}", x)` etc. format like `format!` and call `log.log` once.
//! The macros are prefixed `log_` so they never clash with the `log` crate or built-in attributes.

pub use crate::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    crate::bindings::arkflow::plugin::log::log(level, message)
}

#[macro_export]
macro_rules! log_trace { ($($arg:tt)*) => { $crate::log::write($crate::Level::Trace, &::std::format!($($arg)*)) }; }
#[macro_export]
macro_rules! log_debug { ($($arg:tt)*) => { $crate::log::write($crate::Level::Debug, &::std::format!($($arg)*)) }; }
#[macro_export]
macro_rules! log_info { ($($arg:tt)*) => { $crate::log::write($crate::Level::Info, &::std::format!($($arg)*)) }; }
#[macro_export]
macro_rules! log_warn { ($($arg:tt)*) => { $crate::log::write($crate::Level::Warn, &::std::format!($($arg)*)) }; }
#[macro_export]
macro_rules! log_error { ($($arg:tt)*) => { $crate::log::write($crate::Level::Error, &::std::format!($($arg)*)) }; }
