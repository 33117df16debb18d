//! ArkFlow: a stream-processing host that runs processors as sandboxed WebAssembly components and
//! owns their keyed state.
//!
//! Data flows one way: input -> router (key groups) -> workers (processors + keyed state) ->
//! output. See `docs/ARCHITECTURE.md` for the design and `docs/` for the rest.

pub mod checkpoint;
pub mod codec;
pub mod config;
pub mod connectors;
pub mod engine;
pub mod engine_builder;
pub mod layout;
pub mod lines;
pub mod metrics;
pub mod plugin_new;
pub mod plugin_test;
pub mod processor;
pub mod record;
pub mod registry;
pub mod state;
pub mod util;

pub use engine_builder::EngineBuilder;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "mimalloc")]
extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys 0.1.49).
#[cfg(feature = "mimalloc")]
const PURGE_DELAY: std::ffi::c_int = 15;

/// Keeps memory the process freed for reuse instead of returning it to the OS after mimalloc's
/// purge delay (1 s in mimalloc v3). A stream's working set is steady, and with the default every
/// checkpoint interval's allocations were purged and faulted back in (zeroed pages), which cost
/// ~10 % of throughput at 1 s checkpoints (BENCHMARKS.md, "Checkpoint cost"). RSS therefore stays
/// at its peak. An explicit `MIMALLOC_PURGE_DELAY` in the environment wins. Idempotent; called
/// when a stream is built.
pub fn tune_allocator() {
    #[cfg(feature = "mimalloc")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
                return;
            }
            // SAFETY: plain option getters/setters of the linked mimalloc; the option is only set
            // when it holds v3's purge-delay default, so a different option layout is left alone.
            unsafe {
                if mi_option_get(PURGE_DELAY) == 1000 {
                    mi_option_set(PURGE_DELAY, -1);
                } else {
                    tracing::debug!("mimalloc option {PURGE_DELAY} is not the v3 purge delay; allocator left as is");
                }
            }
        });
    }
}

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

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    #[test]
    fn allocator_keeps_freed_memory() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment's choice wins
        }
        super::tune_allocator();
        // SAFETY: a plain option getter of the linked mimalloc.
        assert_eq!(unsafe { super::mi_option_get(super::PURGE_DELAY) }, -1, "purge delay must be 'never' (option layout of mimalloc v3)");
    }
}
