//! The process-wide wasmtime `Engine`, its settings and its epoch ticker.
//!
//! One engine serves every plugin (compiled code is shared across workers). A background thread
//! advances the engine's epoch every [`TICK`]; a store's deadline is a number of ticks, so a call
//! that runs past its `batch_timeout_ms` traps with `Trap::Interrupt` within one tick. Calls are
//! async (on fibers) so that a call blocked in a host function is bounded too (`instance::bounded`).
//!
//! wasmtime's component-model concurrency (`run_concurrent`, async lifts) is not compiled in (the
//! `component-model-async` feature is off): plugins use none of it, and a `Store` then carries
//! none of its bookkeeping.
//!
//! Settings ([`Tuning`]) were chosen by measurement (BENCHMARKS.md, "wasmtime settings"):
//! `ARKFLOW_WASMTIME` (`key=value,...`) overrides them for such measurements. An override the
//! host does not know fails the plugin's load with the variable named ([`check_env`]).

use std::sync::OnceLock;
use std::time::Duration;
use wasmtime::{Config, Engine};

/// Epoch tick period.
pub const TICK: Duration = Duration::from_millis(5);

/// The environment variable that overrides [`Tuning::CHOSEN`].
pub const TUNING_ENV: &str = "ARKFLOW_WASMTIME";

/// The engine settings that were measured. Everything else is wasmtime's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// The pooling instance allocator (slots reserved up front) instead of on-demand allocation.
    pub pooling: bool,
    /// Cranelift inlining (across the adapter modules of a component and within a module).
    pub inlining: bool,
    /// Cranelift's `speed_and_size` level instead of `speed`.
    pub opt_size: bool,
    /// Epoch interruption. Off only to measure its cost: a computing guest is then never stopped.
    pub epoch: bool,
    /// Writes `/tmp/perf-<pid>.map`, so `perf report` names guest functions. For profiling.
    pub perfmap: bool,
}

impl Tuning {
    /// The settings the host runs with.
    pub const CHOSEN: Tuning = Tuning { pooling: false, inlining: false, opt_size: false, epoch: true, perfmap: false };

    /// `CHOSEN` with the overrides in `spec` (`pooling=on,inlining=off,...`; empty: none).
    pub fn parse(spec: &str) -> Result<Tuning, String> {
        let mut t = Tuning::CHOSEN;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| format!("`{item}` is not key=value"))?;
            let on = match v.trim() {
                "on" | "true" | "yes" => true,
                "off" | "false" | "no" => false,
                "speed" if k.trim() == "opt" => false,
                "size" if k.trim() == "opt" => true,
                other => return Err(format!("`{other}` is not a value of `{k}` (on or off; opt: speed or size)")),
            };
            match k.trim() {
                "pooling" => t.pooling = on,
                "inlining" => t.inlining = on,
                "opt" => t.opt_size = on,
                "epoch" => t.epoch = on,
                "perfmap" => t.perfmap = on,
                other => return Err(format!("unknown setting `{other}` (pooling, inlining, opt, epoch, perfmap)")),
            }
        }
        Ok(t)
    }

    fn config(self) -> Config {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(self.epoch);
        config.compiler_inlining(if self.inlining { wasmtime::Inlining::Yes } else { wasmtime::Inlining::No });
        config.cranelift_opt_level(if self.opt_size { wasmtime::OptLevel::SpeedAndSize } else { wasmtime::OptLevel::Speed });
        if self.perfmap {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if self.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            // Interpreter components (Python, JavaScript) have large tables.
            pool.table_elements(1 << 17);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        config
    }
}

/// The settings in force: `ARKFLOW_WASMTIME` over [`Tuning::CHOSEN`].
pub fn check_env() -> Result<Tuning, String> {
    match std::env::var(TUNING_ENV) {
        Ok(spec) => Tuning::parse(&spec).map_err(|e| format!("{TUNING_ENV}={spec}: {e}")),
        Err(_) => Ok(Tuning::CHOSEN),
    }
}

/// The shared engine; the ticker starts with it.
pub fn shared_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let tuning = check_env().unwrap_or_else(|e| {
            tracing::error!("{e}; using the default wasmtime settings");
            Tuning::CHOSEN
        });
        if tuning != Tuning::CHOSEN {
            tracing::warn!(?tuning, "wasmtime settings overridden by {TUNING_ENV}");
        }
        if !tuning.epoch {
            tracing::warn!("{TUNING_ENV}: epoch=off: a plugin that computes past its batch_timeout_ms is never stopped");
        }
        let engine = Engine::new(&tuning.config()).expect("wasmtime engine configuration is valid");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_bad_ones_are_named() {
        assert_eq!(Tuning::parse("").unwrap(), Tuning::CHOSEN);
        let t = Tuning::parse("pooling=on, inlining=on,opt=size,epoch=off").unwrap();
        assert!(t.pooling && t.inlining && t.opt_size && !t.epoch);
        assert!(Tuning::parse("pooling").unwrap_err().contains("key=value"));
        assert!(Tuning::parse("fuel=on").unwrap_err().contains("unknown setting `fuel`"));
        assert!(Tuning::parse("pooling=maybe").unwrap_err().contains("`maybe`"));
    }

    #[test]
    fn every_setting_builds_an_engine() {
        for spec in ["", "pooling=on", "inlining=on", "opt=size", "epoch=off"] {
            Engine::new(&Tuning::parse(spec).unwrap().config()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        }
    }
}
