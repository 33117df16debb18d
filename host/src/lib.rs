//! ArkFlow: a stream-processing host that runs processors as sandboxed WebAssembly components and
//! owns their keyed state.
//!
//! Data flows one way: input -> router (key groups) -> workers (processors + keyed state) ->
//! output. See `DESIGN.md` in the project's shared notes and `docs/` for the contracts.

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod engine_builder;
pub mod input;
pub mod kafka;
pub mod metrics;
pub mod output;
pub mod processor;
pub mod record;
pub mod sql;
pub mod state;
pub mod util;

pub use engine_builder::EngineBuilder;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{0}")]
    Build(String),
    #[error("{} stream(s) failed: {}", failures.len(), failures.join("; "))]
    StreamsFailed { failures: Vec<String>, reports: Vec<engine::StreamReport> },
    #[error("internal error: {0}")]
    Internal(String),
}
