//! Small helpers shared by several modules.

pub mod dirs;
pub mod json;
pub mod retry;
pub mod stop;
pub mod time;
