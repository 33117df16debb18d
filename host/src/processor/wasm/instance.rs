//! One plugin instance per worker: its own `Store`, limits and retry loop.
//!
//! A call lends the worker's state to the store, runs under a deadline and a memory cap, and
//! checks the result (one outcome per record, output size, state quota). Any failure discards
//! the staged writes; a trap also drops the instance, which is re-created (and re-`init`ed) for
//! the next attempt. After `retries` failed attempts the batch fails with the configured policy.
//!
//! The deadline (`limits.batch_timeout_ms`) binds twice: the epoch interrupt stops a guest that
//! computes past it, and [`bounded`] abandons the call future of a guest blocked in a host call
//! (WASI clocks/poll: a plugin that sleeps) at the same time. Either way the call fails with
//! "deadline exceeded" and the instance is dropped.

use super::bindings::{Guest, Indices};
use super::calls::{BatchBuf, BatchCall, CallResult, Returned};
use super::engine::{deadline_ticks, shared_engine};
use super::obs::Gate;
use super::{HostCtx, PluginInfo, WasmShared};
use crate::processor::{BatchCtx, BatchError, Processor, StateSlot};
use crate::record::{Outcome, Record};
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, Trap};

pub struct WasmProcessor {
    pub(super) shared: Arc<WasmShared>,
    pub(super) instance: Option<(Store<HostCtx>, Guest)>,
    batch_id: u64,
    name: String,
    worker: usize,
    /// Where traps and deadline kills are counted.
    pub ctx: Option<crate::processor::ProcessorContext>,
    /// Where a live swap of this processor is staged, and the swap generation this instance runs.
    pub slot: Option<Arc<super::swap::SwapSlot>>,
    generation: u64,
    /// The processor's index in its stream (the prefix of its timers' state keys).
    pub stage: u16,
    pub(super) timers: super::timers::Timers,
    /// The columns of the last 0.2.0 batch, reused.
    batch_buf: BatchBuf,
    /// Whether the last call trapped (a deadline kill is not a trap here).
    pub(super) trapped: bool,
    /// Discard a successful call's state writes and timers instead of committing them (the
    /// trapping record's search, `locate.rs`).
    pub(super) dry_run: bool,
}

/// Instantiates once without init and calls `describe`.
pub(super) fn describe(shared: &WasmShared) -> anyhow::Result<PluginInfo> {
    let mut store = new_store(shared);
    let ms = shared.cfg.limits.batch_timeout_ms;
    let plugin = bounded(ms, instantiate(shared, &mut store)).map_err(|e| anyhow::anyhow!("instantiation failed: {}", trap_text(&e)))?;
    bounded(ms, plugin.describe(&mut store)).map_err(|e| anyhow::anyhow!("export {}#describe trapped: {}", shared.abi.processor_export(), trap_text(&e)))
}

/// Instantiates the component and loads its exports.
async fn instantiate(shared: &WasmShared, store: &mut Store<HostCtx>) -> wasmtime::Result<Guest> {
    let mut tries = 0;
    let instance = loop {
        match shared.pre.instantiate_async(&mut *store).await {
            // The first instantiation builds the component's copy-on-write memory image in a
            // memfd and seals it; the kernel refuses the seal (EBUSY) while it briefly holds the
            // memfd's pages (page migration or compaction on a loaded machine). Nothing was
            // built: try again rather than refuse a good plugin.
            Err(e) if tries < 5 && e.chain().any(|c| c.to_string().contains("seals to the memfd")) => {
                tries += 1;
                tracing::debug!(attempt = tries, "instantiation: {e:#}; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(20 << tries)).await;
            }
            r => break r?,
        }
    };
    Ok(match &shared.indices {
        Indices::V01(p, t) => Guest::V01(p.load(&mut *store, &instance)?, t.as_ref().map(|i| i.load(&mut *store, &instance)).transpose()?),
        Indices::V02(p, t) => Guest::V02(p.load(&mut *store, &instance)?, t.as_ref().map(|i| i.load(&mut *store, &instance)).transpose()?),
    })
}

fn new_store(shared: &WasmShared) -> Store<HostCtx> {
    let mut store = Store::new(shared_engine(), HostCtx::new(shared));
    store.limiter(|h| &mut h.limits);
    // What one call may copy from the guest to the host: lists whose items all point at the same
    // guest bytes would otherwise lift into far more host memory than the guest has. Legitimate
    // data lives in guest memory, so its size is the bound (at least wasmtime's 128 MiB default).
    store.set_hostcall_fuel((shared.cfg.limits.memory_mb as usize).saturating_mul(1 << 20).max(128 << 20));
    store.epoch_deadline_trap();
    store.set_epoch_deadline(deadline_ticks(shared.cfg.limits.batch_timeout_ms));
    store
}

/// Runs one guest call (`fut`) to completion or until `ms` have passed, whichever is first. The
/// epoch interrupt stops a computing guest at the same deadline; this stops a guest that waits in
/// a host call, which no interrupt reaches. An abandoned call leaves its instance unusable: the
/// caller drops it. Must not be called from an async task (it blocks); from one, it runs on a
/// scoped thread.
pub(super) fn bounded<R: Send, F: Future<Output = wasmtime::Result<R>> + Send>(ms: u64, fut: F) -> wasmtime::Result<R> {
    // A little later than the epoch deadline, so a computing guest is stopped by the interrupt.
    let limit = Duration::from_millis(ms) + 2 * super::engine::TICK;
    let mut fut = std::pin::pin!(fut);
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|s| {
            s.spawn(|| crate::checkpoint::block_on(timed(fut.as_mut(), limit))).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        });
    }
    // Fast path: a call that never waits completes in its first poll, with no timer armed. WASI
    // host calls need the runtime's context (their timers) even when polled here.
    let started = std::time::Instant::now();
    let rt = crate::checkpoint::io_runtime();
    let first = {
        let _ctx = rt.enter();
        fut.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    };
    match first {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => rt.block_on(timed(fut.as_mut(), limit.saturating_sub(started.elapsed()))),
    }
}

/// `fut` bounded by `limit` of wall time; past it, a deadline trap.
async fn timed<R, F: Future<Output = wasmtime::Result<R>>>(fut: std::pin::Pin<&mut F>, limit: Duration) -> wasmtime::Result<R> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(wasmtime::Error::from(Trap::Interrupt).context("the plugin was blocked in a host call (WASI clocks/poll or I/O)")),
    }
}

/// A one-line description of a wasmtime error: the trap kind or cause, without the wasm backtrace.
fn trap_text(e: &wasmtime::Error) -> String {
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return "deadline exceeded (limits.batch_timeout_ms)".to_string();
    }
    let parts: Vec<String> = e
        .chain()
        .map(|c| c.to_string().lines().next().unwrap_or_default().to_string())
        .filter(|s| !s.is_empty() && !s.starts_with("error while executing at wasm backtrace"))
        .collect();
    let mut text = parts.join(": ");
    if let Some(frames) = e.downcast_ref::<wasmtime::WasmBacktrace>().and_then(guest_frames) {
        text = format!("{text} (in the guest: {frames})");
    }
    if text.contains("growing memory") || text.contains("memory.grow") {
        format!("memory limit exceeded (limits.memory_mb): {text}")
    } else if text.contains("growing table") {
        format!("table limit exceeded (at most {} elements a table): {text}", super::host::MAX_TABLE_ELEMENTS)
    } else if text.contains("fuel allocated for hostcalls") {
        format!("one call copied more from the guest than the plugin's memory (limits.memory_mb, at least 128 MiB): {text}")
    } else if e.downcast_ref::<Trap>().is_some() {
        format!("trap: {text}")
    } else {
        text
    }
}

/// The innermost named guest functions of a trap's backtrace, outermost last, without the
/// language runtime's panic and allocation machinery (so the plugin's own function comes first);
/// None when the component has no name section.
fn guest_frames(bt: &wasmtime::WasmBacktrace) -> Option<String> {
    const RUNTIME: &[&str] =
        &["std::", "core::", "alloc::", "__rust", "rust_panic", "rust_begin_unwind", "__rdl_", "abort", "dlmalloc", "wit_bindgen", "<unknown>"];
    // Display demangles: lines "  N: 0xOFFSET - module!function", then source lines when known.
    let shown = bt.to_string();
    let names: Vec<String> = shown
        .lines()
        .filter_map(|l| l.trim_start().split_once(" - ").map(|(_, f)| without_crate_hashes(f.split_once('!').map_or(f, |(_, f)| f).trim())))
        .filter(|f| !f.is_empty() && !RUNTIME.iter().any(|r| f.starts_with(r) || f.starts_with(&format!("<{r}"))))
        .take(4)
        .collect();
    (!names.is_empty()).then(|| names.join(" <- "))
}

/// `std[d123b7a1a2ed1472]::process::abort` → `std::process::abort` (Rust's v0 symbol names), and
/// `a::b::h41ca5c047d2a41b5` → `a::b` (legacy ones).
fn without_crate_hashes(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map(|c| open + c);
        match close {
            Some(c) if c > open + 1 && rest[open + 1..c].bytes().all(|b| b.is_ascii_hexdigit()) => {
                out.push_str(&rest[..open]);
                rest = &rest[c + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    let out = out + rest;
    // Legacy symbol names end in `::h` and 16 hex digits.
    match out.rsplit_once("::h") {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => out,
    }
}

/// Appends the plugin's last error-level log line of the call (the SDK logs panic messages there).
fn with_last_log(msg: String, store: &mut Store<HostCtx>) -> String {
    match store.data_mut().last_error_log.take() {
        Some(l) => format!("{msg} (plugin log: {l})"),
        None => msg,
    }
}

impl WasmProcessor {
    pub fn new(shared: Arc<WasmShared>, worker: usize) -> Self {
        let name = format!("{}@{}", shared.info.name, shared.info.version);
        WasmProcessor {
            shared,
            instance: None,
            batch_id: 0,
            name,
            worker,
            ctx: None,
            slot: None,
            generation: 0,
            stage: 0,
            timers: Default::default(),
            batch_buf: BatchBuf::default(),
            trapped: false,
            dry_run: false,
        }
    }

    /// Creates and `init`s the instance if there is none.
    pub fn ensure_instance(&mut self) -> Result<(), String> {
        if self.instance.is_some() {
            return Ok(());
        }
        let s = &self.shared;
        let where_ = format!("{}: plugin {}", s.label, s.path.display());
        let mut store = new_store(s);
        store.data_mut().worker = self.worker;
        store.data_mut().stage = self.stage;
        if let Some(c) = &self.ctx {
            store.data_mut().stream = c.stream.clone();
        }
        let ms = s.cfg.limits.batch_timeout_ms;
        let plugin = bounded(ms, instantiate(s, &mut store)).map_err(|e| format!("{where_}: instantiation failed: {}", trap_text(&e)))?;
        store.set_epoch_deadline(deadline_ticks(ms));
        let config: Vec<(&str, &str)> = s.init_config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let export = s.abi.processor_export();
        match bounded(ms, plugin.init(&mut store, &config)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{where_}: export {export}#init refused the config: {e}")),
            Err(e) => return Err(with_last_log(format!("{where_}: export {export}#init trapped: {}", trap_text(&e)), &mut store)),
        }
        self.instance = Some((store, plugin));
        Ok(())
    }

    /// Switches to the slot's armed version when it is due (at barrier `Some(e)`, or before a batch
    /// when the stream has no barriers): drops the old instance and instantiates the new one now,
    /// so the stall is paid here and measured.
    fn maybe_switch(&mut self, barrier: Option<u64>) {
        let Some(slot) = self.slot.clone() else { return };
        let Some((generation, new)) = slot.due(self.generation, barrier) else { return };
        let start = std::time::Instant::now();
        let old = std::mem::replace(&mut self.name, new.display_name());
        self.shared = new;
        self.generation = generation;
        self.instance = None;
        self.shared.obs.breaker.reset();
        // A failure here surfaces on the next batch, through the usual retries.
        let ready = self.ensure_instance();
        slot.switched(start.elapsed());
        tracing::debug!(worker = self.worker, epoch = ?barrier, "{}: {old} -> {} ({} us){}", self.shared.label, self.name, start.elapsed().as_micros(), ready.err().map(|e| format!("; init failed: {e}")).unwrap_or_default());
    }

    /// One attempt. Err(message) leaves state untouched.
    pub(super) fn attempt(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot, attempt: u32) -> Result<Vec<Outcome>, String> {
        self.trapped = false;
        self.ensure_instance()?;
        let shared = self.shared.clone();
        let limits = &shared.cfg.limits;
        let (store, plugin) = self.instance.as_mut().expect("instance ensured");
        let call = BatchCall { batch_id: self.batch_id, key_group: ctx.key_group, partition: ctx.partition, attempt, epoch: ctx.epoch };
        {
            let data = store.data_mut();
            data.state = state.take();
            data.scope = Some((ctx.key_group, ctx.now_ms));
            data.batch_id = self.batch_id;
            data.timers_added.clear();
            data.watermark = self.timers.watermark();
            data.decoded = (!data.declared.is_empty()).then(|| super::fields::decode(&data.declared, records));
        }
        store.set_epoch_deadline(deadline_ticks(limits.batch_timeout_ms));
        let obs = self.shared.obs.clone();
        let started = std::time::Instant::now();
        let result = bounded(limits.batch_timeout_ms, plugin.process_batch(&mut *store, call, records, &mut self.batch_buf));
        store.data_mut().decoded = None;
        obs.host.latency.observe(started.elapsed().as_secs_f64());
        obs.host.calls.fetch_add(1, Relaxed);
        obs.host.records_in.fetch_add(records.len() as u64, Relaxed);
        obs.host.bytes_lowered.fetch_add(records.iter().map(Record::size).sum::<usize>() as u64, Relaxed);
        let where_ = format!("plugin {} export {}#process-batch", self.shared.path.display(), shared.abi.processor_export());
        let outcomes = self.finish_call(result, state, &where_)?;
        let (out, emitted, bytes) = self.accept_outcomes(outcomes, records, "records", &where_)?;
        self.commit_call(state, ctx.key_group, ctx.now_ms);
        obs.host.records_out.fetch_add(emitted as u64, Relaxed);
        obs.host.bytes_lifted.fetch_add(bytes as u64, Relaxed);
        Ok(out)
    }
    /// Commits a successful call's staged writes and indexes the timers it registered.
    pub(super) fn commit_call(&mut self, state: &mut StateSlot, group: u32, now_ms: i64) {
        let (store, _) = self.instance.as_mut().expect("instance kept on success");
        let data = store.data_mut();
        if self.dry_run {
            data.staging.discard();
            data.timers_added.clear();
            return;
        }
        state.as_mut().expect("state returned").commit(&mut data.staging, group, now_ms);
        for k in std::mem::take(&mut data.timers_added) {
            self.timers.add(group, k);
        }
    }

    /// Checks a successful call's outcomes: exactly one per input (`what` names the inputs), and
    /// no more than `limits.max_output_bytes` emitted. Returns them as the host's outcomes with
    /// the count and bytes of the records they emit; Err discards the call's staged writes.
    pub(super) fn accept_outcomes(&mut self, outcomes: Returned, inputs: &[Record], what: &str, where_: &str) -> Result<(Vec<Outcome>, usize, usize), String> {
        let max = self.shared.cfg.limits.max_output_bytes;
        let (store, _) = self.instance.as_mut().expect("instance kept on success");
        let staging = &mut store.data_mut().staging;
        let out = match outcomes.into_host(inputs, &self.shared.outputs, what) {
            Ok(out) => out,
            Err(e) => {
                staging.discard();
                return Err(format!("{where_} {e}"));
            }
        };
        let (emitted, bytes) = out.iter().flat_map(Outcome::emitted).fold((0usize, 0usize), |(n, b), r| (n + 1, b + r.size()));
        if bytes as u64 > max {
            staging.discard();
            return Err(format!("{where_} emitted {bytes} bytes, more than limits.max_output_bytes = {max}"));
        }
        Ok((out, emitted, bytes))
    }

    /// Ends a guest call: takes the worker's state back, merges the call's metrics, and turns a
    /// returned error, a trap (the instance is dropped) or a quota violation into Err(message),
    /// discarding the call's staged writes. On success the staged writes wait for the caller's
    /// checks and commit.
    pub(super) fn finish_call<T>(&mut self, result: CallResult<T>, state: &mut StateSlot, where_: &str) -> Result<T, String> {
        let obs = self.shared.obs.clone();
        self.trapped = matches!(&result, Err(e) if !matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)));
        let (store, _) = self.instance.as_mut().expect("instance during a call");
        let data = store.data_mut();
        obs.host.memory_high_water.fetch_max(data.limits.peak as u64, Relaxed);
        *state = data.state.take();
        data.scope = None;
        if !data.metrics.is_empty() {
            obs.metrics.merge(&self.name, &mut data.metrics);
        }
        let value = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                data.staging.discard();
                return Err(format!("{where_} returned an error: {e}"));
            }
            Err(e) => {
                data.staging.discard();
                let deadline = matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt));
                if let Some(c) = &self.ctx {
                    let counter = if deadline { &c.pipeline.deadline_kills } else { &c.pipeline.plugin_traps };
                    counter.fetch_add(1, Relaxed);
                }
                let counter = if deadline { &obs.host.deadline_kills } else { &obs.host.traps };
                counter.fetch_add(1, Relaxed);
                let msg = with_last_log(format!("{where_}: {}", trap_text(&e)), store);
                self.instance = None;
                return Err(msg);
            }
        };
        if let Some(v) = data.staging.violation() {
            let msg = format!("{where_}: {v}");
            data.staging.discard();
            return Err(msg);
        }
        Ok(value)
    }
}

impl Processor for WasmProcessor {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        self.maybe_switch(None);
        self.batch_id += 1;
        let obs = self.shared.obs.clone();
        let cb = self.shared.cfg.circuit_breaker;
        if let Gate::Quarantined(left) = obs.breaker.gate() {
            obs.host.quarantined_batches.fetch_add(1, Relaxed);
            return Err(BatchError {
                message: format!(
                    "{}: {} is quarantined ({} batches in a row failed; circuit_breaker) for {} ms more: the batch of {} records was not processed",
                    self.shared.label,
                    self.name,
                    cb.failures,
                    left.as_millis(),
                    records.len()
                ),
                policy: self.shared.cfg.on_failure,
            });
        }
        let attempts = self.shared.cfg.retries + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            match self.attempt(ctx, records, state, attempt) {
                Ok(out) => {
                    obs.breaker.record(true);
                    return Ok(out);
                }
                Err(e) => {
                    tracing::warn!(worker = self.worker, attempt, "{}: {e}", self.shared.label);
                    last = e;
                }
            }
        }
        if obs.breaker.record(false) {
            obs.host.quarantines.fetch_add(1, Relaxed);
            tracing::error!(
                worker = self.worker,
                "{}: {} quarantined for {} ms after {} failed batches in a row (circuit_breaker): its batches fail without calling it (on_failure: {:?}) until one trial batch succeeds or the plugin is swapped",
                self.shared.label,
                self.name,
                cb.cooldown_ms,
                cb.failures,
                self.shared.cfg.on_failure
            );
        }
        let record = if self.trapped { self.trapping_record(ctx, records, state) } else { String::new() };
        Err(BatchError {
            message: format!("{}: batch of {} records failed after {attempts} attempts: {last}{record}", self.shared.label, records.len()),
            policy: self.shared.cfg.on_failure,
        })
    }

    fn at_barrier(&mut self, epoch: u64) {
        self.maybe_switch(Some(epoch));
    }

    fn on_checkpoint(&mut self, epoch: u64, key_group: u32, now_ms: i64, state: &mut StateSlot) -> Result<(), BatchError> {
        let fail = |message: String| BatchError { message, policy: crate::processor::FailurePolicy::Fail };
        self.ensure_instance().map_err(fail)?;
        let (store, plugin) = self.instance.as_mut().expect("instance ensured");
        let data = store.data_mut();
        data.state = state.take();
        data.scope = Some((key_group, now_ms));
        data.timers_added.clear();
        store.set_epoch_deadline(deadline_ticks(self.shared.cfg.limits.batch_timeout_ms));
        let r = bounded(self.shared.cfg.limits.batch_timeout_ms, plugin.on_checkpoint(&mut *store, epoch, key_group));
        let where_ = format!("{}: plugin {} export {}#on-checkpoint", self.shared.label, self.shared.path.display(), self.shared.abi.processor_export());
        self.finish_call(r, state, &where_).map_err(fail)?;
        self.commit_call(state, key_group, now_ms);
        Ok(())
    }

    fn has_timers(&self) -> bool {
        self.shared.timed
    }

    fn on_restore(&mut self, state: &crate::state::WorkerState) {
        self.timers.restore(self.stage, state);
    }

    fn due_groups(&self, clock: crate::processor::Clock) -> Vec<u32> {
        self.timers.due_groups(clock)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.timers.next_processing()
    }

    fn fire(&mut self, clock: crate::processor::Clock, epoch: u64, now_ms: i64, state: &mut StateSlot) -> Result<Vec<crate::processor::Fired>, BatchError> {
        self.fire_timers(clock, epoch, now_ms, state)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn symbol_names_lose_their_crate_and_legacy_hashes_only() {
        assert_eq!(super::without_crate_hashes("std[d123b7a1a2ed1472]::process::abort"), "std::process::abort");
        assert_eq!(super::without_crate_hashes("<evil::Evil as sdk::Processor>::process::h41ca5c047d2a41b5"), "<evil::Evil as sdk::Processor>::process");
        assert_eq!(super::without_crate_hashes("a::<[u8; 4]>::f"), "a::<[u8; 4]>::f");
        assert_eq!(super::without_crate_hashes("ak_process_batch"), "ak_process_batch");
    }
}
