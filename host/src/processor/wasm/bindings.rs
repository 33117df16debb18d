//! Host bindings generated from `wit/` (world `arkflow:plugin/plugin`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "arkflow:plugin/plugin",
    with: {
        "arkflow:plugin/state.store": super::host::StoreRes,
    },
});

pub use arkflow::plugin::state::StateError as WitStateError;
pub use arkflow::plugin::types as wit;
