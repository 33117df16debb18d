//! Small helpers shared by several modules.

pub mod json;
pub mod retry;
