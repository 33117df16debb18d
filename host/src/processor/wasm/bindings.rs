//! Host bindings of both ABIs the host implements: `v02` from `wit/` (`arkflow:plugin@0.2.0`, the
//! batch ABI) and `v01` from `wit/v0.1/` (`arkflow:plugin@0.1.1`, whose components — 0.1.0 ones
//! included — still load). Both link into one `Linker` (their interface names differ by version);
//! a component uses the one whose `processor` export it has ([`Abi`]). The exports are loaded per
//! interface (`ProcessorIndices`, `TimerIndices`), so a component without `timer-handler` (every
//! plain `plugin`) loads too.

/// `arkflow:plugin@0.2.0`.
pub mod v02 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "arkflow:plugin/timed-plugin",
        // Borrowed export parameters: a batch is lowered straight from the host's buffers, no copy.
        ownership: Borrowing { duplicate_if_necessary: true },
        // Exports are called as futures so that a guest blocked in a host call (WASI clocks/poll)
        // can be abandoned at its deadline (`instance::bounded`); the imports stay synchronous.
        exports: { default: async },
        // A malformed column is a plugin bug: it traps (and the batch is retried), it is not a
        // state error the plugin could mistake for a missing key.
        imports: {
            "arkflow:plugin/state.[method]store.get-column": trappable,
            "arkflow:plugin/state.[method]store.put-column": trappable,
        },
        with: {
            "arkflow:plugin/state.store": crate::processor::wasm::resource::StoreRes,
        },
    });
    pub use self::arkflow::plugin::types as wit;
    pub use self::exports::arkflow::plugin::processor::{Guest as ProcessorGuest, GuestIndices as ProcessorIndices};
    pub use self::exports::arkflow::plugin::timer_handler::{Guest as TimerGuest, GuestIndices as TimerIndices};
}

/// `arkflow:plugin@0.1.1`.
pub mod v01 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "arkflow:plugin/timed-plugin",
        ownership: Borrowing { duplicate_if_necessary: true },
        exports: { default: async },
        with: {
            "arkflow:plugin/state.store": crate::processor::wasm::resource::StoreRes,
        },
    });
    pub use self::arkflow::plugin::types as wit;
    pub use self::exports::arkflow::plugin::processor::{Guest as ProcessorGuest, GuestIndices as ProcessorIndices};
    pub use self::exports::arkflow::plugin::timer_handler::{Guest as TimerGuest, GuestIndices as TimerIndices};
}

/// The ABI a component was built against: the version of the `processor` it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    V01,
    V02,
}

impl Abi {
    /// The package version, as `describe().abi` reports it.
    pub const fn version(self) -> &'static str {
        match self {
            Abi::V01 => "0.1.1",
            Abi::V02 => "0.2.0",
        }
    }
    /// The interface a plugin must export.
    pub fn processor_export(self) -> &'static str {
        match self {
            Abi::V01 => "arkflow:plugin/processor@0.1.1",
            Abi::V02 => "arkflow:plugin/processor@0.2.0",
        }
    }
    /// The interface a plugin with timers exports as well.
    pub fn timer_export(self) -> &'static str {
        match self {
            Abi::V01 => "arkflow:plugin/timer-handler@0.1.1",
            Abi::V02 => "arkflow:plugin/timer-handler@0.2.0",
        }
    }
}

/// Where a component's exports are, per ABI.
pub enum Indices {
    V01(v01::ProcessorIndices, Option<v01::TimerIndices>),
    V02(v02::ProcessorIndices, Option<v02::TimerIndices>),
}

/// The exports of one instance.
pub enum Guest {
    V01(v01::ProcessorGuest, Option<v01::TimerGuest>),
    V02(v02::ProcessorGuest, Option<v02::TimerGuest>),
}
