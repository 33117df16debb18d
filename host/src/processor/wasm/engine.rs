//! The process-wide wasmtime `Engine` and its epoch ticker.
//!
//! One engine serves every plugin (compiled code is shared across workers). A background thread
//! advances the engine's epoch every [`TICK`]; a store's deadline is a number of ticks, so a call
//! that runs past its `batch_timeout_ms` traps with `Trap::Interrupt` within one tick. Calls are
//! async (on fibers) so that a call blocked in a host function is bounded too (`instance::bounded`).

use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::{Config, Engine};

/// Epoch tick period.
pub const TICK: Duration = Duration::from_millis(5);

/// The shared engine; the ticker starts with it.
pub fn shared_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("wasmtime engine configuration is valid");
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                ticker.increment_epoch();
            })
            .expect("spawn epoch ticker");
        engine
    })
}

/// Ticks for a deadline of `ms` milliseconds (at least 1).
pub fn deadline_ticks(ms: u64) -> u64 {
    (ms / TICK.as_millis() as u64).max(1) + 1
}
