//! Host bindings generated from `wit/` (world `arkflow:plugin/plugin`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "arkflow:plugin/plugin",
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
