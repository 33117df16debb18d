//! The per-store data behind the plugin's imports: keyed state, log and metrics, plus a WASI
//! context that grants nothing beyond what the YAML allows. The WIT traits of both ABIs are
//! implemented on it in `imports`, each a thin shell over the methods here.
//!
//! Plugin logs go through the processor's rate limit and carry plugin, stream, worker and batch
//! fields; plugin metric calls are collected per call and merged into the processor's series
//! after it (see `obs`).
//!
//! `HostCtx` is the data of one wasmtime `Store`. The worker's state is moved into it for the
//! duration of a call (`state`, `scope`) and moved back out afterwards; state calls outside a
//! scope fail with `no-scope`. A store handle's resource rep is the store id itself, so state
//! calls need no table lookup.

use super::obs::{CallMetrics, Op, ProcessorObs};
use super::resource::StoreRes;
use crate::state::{Staging, StateError, WorkerState};
use std::sync::Arc;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The store's resource limits, which also record the largest linear memory the guest grew to
/// (the processor's memory high-water mark).
pub struct Limits {
    inner: StoreLimits,
    pub(super) peak: usize,
}

/// Most elements one table of a plugin may grow to. Tables live in host memory (8 to 16 bytes an
/// element) outside the guest's memory limit, so a guest growing one by billions of elements,
/// filled with a function reference, would take the host down; real components (the Python and
/// JavaScript interpreters included) stay far below.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl Limits {
    /// Linear memory up to `memory_mb` MiB, tables up to [`MAX_TABLE_ELEMENTS`]; a growth past a
    /// limit traps.
    pub fn new(memory_mb: u64) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size((memory_mb as usize).saturating_mul(1 << 20))
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        Limits { inner, peak: 0 }
    }
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if ok {
            self.peak = self.peak.max(desired);
        }
        Ok(ok)
    }
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }
    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }
    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Per-store data of a plugin instance.
pub struct HostCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: Limits,
    /// The worker's state while a call runs.
    pub(super) state: Option<Box<WorkerState>>,
    pub(super) staging: Staging,
    /// (key group, TTL clock) of the running call; None outside calls that may touch state.
    pub(super) scope: Option<(u32, i64)>,
    store_names: Arc<Vec<String>>,
    pub(super) state_enabled: bool,
    /// `name@version`.
    plugin: Arc<str>,
    max_log_line: usize,
    /// The last error-level log line (the SDK logs panic messages there before trapping).
    pub(super) last_error_log: Option<String>,
    /// The metric calls of the running call, merged into `obs` after it.
    pub(super) metrics: CallMetrics,
    pub(super) obs: Arc<ProcessorObs>,
    /// Log fields: the stream, the worker and the batch of the running call.
    pub(super) stream: Arc<str>,
    pub(super) worker: usize,
    pub(super) batch_id: u64,
    /// The processor's index in its stream: the prefix of its timers' state keys.
    pub(super) stage: u16,
    /// State keys of the timers the running call registered (indexed once it commits).
    pub(super) timers_added: Vec<Vec<u8>>,
    /// The stream's watermark as the instance last saw it (`timers.watermark`).
    pub(super) watermark: i64,
    /// The fields the plugin declared (`fields.declare`).
    pub(super) declared: super::fields::Declared,
    /// Those fields of the running `process-batch` call's records (`fields.columns`).
    pub(super) decoded: Option<super::bindings::v02::arkflow::plugin::fields::Decoded>,
}

impl HostCtx {
    pub fn new(shared: &super::WasmShared) -> Self {
        let mut b = WasiCtx::builder();
        for name in &shared.cfg.grants.env {
            if let Ok(v) = std::env::var(name) {
                b.env(name, v);
            }
        }
        if shared.cfg.grants.inherit_stdio {
            b.inherit_stderr();
        }
        let limits = Limits::new(shared.cfg.limits.memory_mb);
        HostCtx {
            wasi: b.build(),
            table: ResourceTable::new(),
            limits,
            state: None,
            staging: Staging::default(),
            scope: None,
            store_names: shared.store_names.clone(),
            state_enabled: shared.state_enabled,
            plugin: Arc::from(format!("{}@{}", shared.info.name, shared.info.version)),
            max_log_line: shared.cfg.limits.max_log_line,
            metrics: CallMetrics::default(),
            last_error_log: None,
            obs: shared.obs.clone(),
            stream: Arc::from(""),
            worker: 0,
            batch_id: 0,
            stage: 0,
            timers_added: Vec::new(),
            watermark: i64::MIN,
            declared: Default::default(),
            decoded: None,
        }
    }

    /// Runs `f` on the running call's scope of the worker's state and the store behind `store`.
    pub(super) fn with_scope<R>(
        &mut self,
        store: &Resource<StoreRes>,
        f: impl FnOnce(&mut crate::state::Scope<'_>, u16) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let (group, now) = self.scope.ok_or(StateError::NoScope)?;
        let state = self.state.as_mut().ok_or(StateError::NoScope)?;
        let id = store.rep() as u16;
        let mut scope = state.scope(&mut self.staging, group, now);
        f(&mut scope, id)
    }

    /// `store.open`: the store's id is its resource rep.
    pub(super) fn open_store(&mut self, name: String) -> Result<Resource<StoreRes>, StateError> {
        if !self.state_enabled {
            return Err(StateError::Disabled);
        }
        match self.store_names.iter().position(|n| *n == name) {
            Some(id) => Ok(Resource::new_own(id as u32)),
            None => Err(StateError::UnknownStore(name)),
        }
    }

    /// `log.log`: capped, rate-limited, tagged with plugin, stream, worker and batch.
    pub(super) fn log_line(&mut self, level: tracing::Level, message: String) {
        let mut msg = message;
        if msg.len() > self.max_log_line {
            let mut cut = self.max_log_line;
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.truncate(cut);
            msg.push('…');
        }
        if level == tracing::Level::ERROR {
            self.last_error_log = Some(msg.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        let enabled = match level {
            tracing::Level::TRACE => tracing::enabled!(tracing::Level::TRACE),
            tracing::Level::DEBUG => tracing::enabled!(tracing::Level::DEBUG),
            tracing::Level::INFO => tracing::enabled!(tracing::Level::INFO),
            tracing::Level::WARN => tracing::enabled!(tracing::Level::WARN),
            _ => tracing::enabled!(tracing::Level::ERROR),
        };
        if !enabled {
            return;
        }
        let Some(suppressed) = self.obs.log.admit() else { return };
        let (plugin, stream, worker, batch) = (&*self.plugin, &*self.stream, self.worker, self.batch_id);
        if suppressed > 0 {
            tracing::warn!(plugin, stream, worker, "{suppressed} plugin log lines suppressed (limits.log_lines_per_sec, limits.log_burst)");
        }
        match level {
            tracing::Level::TRACE => tracing::trace!(plugin, stream, worker, batch, "{msg}"),
            tracing::Level::DEBUG => tracing::debug!(plugin, stream, worker, batch, "{msg}"),
            tracing::Level::INFO => tracing::info!(plugin, stream, worker, batch, "{msg}"),
            tracing::Level::WARN => tracing::warn!(plugin, stream, worker, batch, "{msg}"),
            _ => tracing::error!(plugin, stream, worker, batch, "{msg}"),
        }
    }

    /// A metric call of the running call.
    pub(super) fn metric(&mut self, name: String, op: Op) {
        self.metrics.push(name, op);
    }
}

impl WasiView for HostCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest growing a table past [`MAX_TABLE_ELEMENTS`] traps; growing within it works.
    #[test]
    fn tables_grow_only_to_the_limit() {
        let engine = wasmtime::Engine::default();
        let wat = r#"(module
            (table $t 1 funcref)
            (func $f)
            (elem declare func $f)
            (func (export "grow") (param i32) (result i32) (table.grow $t (ref.func $f) (local.get 0))))"#;
        let module = wasmtime::Module::new(&engine, wat).unwrap();
        let mut store = wasmtime::Store::new(&engine, Limits::new(64));
        store.limiter(|l| l);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
        assert_eq!(grow.call(&mut store, 1000).unwrap(), 1, "a small growth returns the old size");
        let e = grow.call(&mut store, 1 << 30).unwrap_err();
        assert!(format!("{e:?}").contains("forcing trap when growing table"), "{e:?}");
    }
}
