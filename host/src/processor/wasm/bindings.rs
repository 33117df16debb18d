//! Host bindings generated from `wit/` (world `arkflow:plugin/timed-plugin`, which includes the
//! world `plugin`). The exports are loaded per interface (`ProcessorIndices`, `TimerIndices`), so
//! a component without `timer-handler` (every plain `plugin`) loads too.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "arkflow:plugin/timed-plugin",
    // Borrowed export parameters: a batch is lowered straight from the host's records, no copy.
    ownership: Borrowing { duplicate_if_necessary: true },
    // Exports are called as futures so that a guest blocked in a host call (WASI clocks/poll) can
    // be abandoned at its deadline (`instance::bounded`); the host's own imports stay synchronous.
    exports: { default: async },
    with: {
        "arkflow:plugin/state.store": crate::processor::wasm::resource::StoreRes,
    },
});

pub use self::arkflow::plugin::state::StateError as WitStateError;
pub use self::arkflow::plugin::types as wit;
pub use self::exports::arkflow::plugin::processor::{Guest as ProcessorGuest, GuestIndices as ProcessorIndices};
pub use self::exports::arkflow::plugin::timer_handler::{Guest as TimerGuest, GuestIndices as TimerIndices};

/// The exports of one instance.
pub struct Guest {
    pub processor: ProcessorGuest,
    /// `timer-handler`, when the component exports it.
    pub timers: Option<TimerGuest>,
}
