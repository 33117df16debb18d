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

use super::bindings::{wit, Plugin};
use super::engine::{deadline_ticks, shared_engine};
use super::obs::Gate;
use super::{HostCtx, PluginInfo, WasmShared, PROCESSOR_EXPORT};
use crate::processor::{BatchCtx, BatchError, Processor, StateSlot};
use crate::record::{ErrorClass, Outcome, Record, RecordError};
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Store, Trap};

pub struct WasmProcessor {
    shared: Arc<WasmShared>,
    instance: Option<(Store<HostCtx>, Plugin)>,
    batch_id: u64,
    name: String,
    worker: usize,
    /// Where traps and deadline kills are counted.
    pub ctx: Option<crate::processor::ProcessorContext>,
    /// Where a live swap of this processor is staged, and the swap generation this instance runs.
    pub slot: Option<Arc<super::swap::SwapSlot>>,
    generation: u64,
}

/// Instantiates once without init and calls `describe`.
pub(super) fn describe(shared: &WasmShared) -> anyhow::Result<PluginInfo> {
    let mut store = new_store(shared);
    let ms = shared.cfg.limits.batch_timeout_ms;
    let plugin = bounded(ms, shared.pre.instantiate_async(&mut store)).map_err(|e| anyhow::anyhow!("instantiation failed: {}", trap_text(&e)))?;
    let info = bounded(ms, plugin.arkflow_plugin_processor().call_describe(&mut store))
        .map_err(|e| anyhow::anyhow!("export {PROCESSOR_EXPORT}#describe trapped: {}", trap_text(&e)))?;
    let state_formats = info
        .state_formats
        .into_iter()
        .map(|f| {
            let format = match f.format {
                wit::ValueFormat::Bytes => "bytes",
                wit::ValueFormat::Utf8 => "utf8",
                wit::ValueFormat::Json => "json",
                wit::ValueFormat::I64 => "i64",
            };
            (f.store, format.to_string())
        })
        .collect();
    Ok(PluginInfo { name: info.name, version: info.version, abi: info.abi, state_stores: info.state_stores, state_formats })
}

fn new_store(shared: &WasmShared) -> Store<HostCtx> {
    let mut store = Store::new(shared_engine(), HostCtx::new(shared));
    store.limiter(|h| &mut h.limits);
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
    let text = parts.join(": ");
    if text.contains("growing memory") || text.contains("memory.grow") {
        format!("memory limit exceeded (limits.memory_mb): {text}")
    } else if e.downcast_ref::<Trap>().is_some() {
        format!("trap: {text}")
    } else {
        text
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
        WasmProcessor { shared, instance: None, batch_id: 0, name, worker, ctx: None, slot: None, generation: 0 }
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
        if let Some(c) = &self.ctx {
            store.data_mut().stream = c.stream.clone();
        }
        let ms = s.cfg.limits.batch_timeout_ms;
        let plugin = bounded(ms, s.pre.instantiate_async(&mut store)).map_err(|e| format!("{where_}: instantiation failed: {}", trap_text(&e)))?;
        store.set_epoch_deadline(deadline_ticks(ms));
        let config: Vec<(&str, &str)> = s.init_config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        match bounded(ms, plugin.arkflow_plugin_processor().call_init(&mut store, &config)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{where_}: export {PROCESSOR_EXPORT}#init refused the config: {}", wit_error(&e))),
            Err(e) => return Err(with_last_log(format!("{where_}: export {PROCESSOR_EXPORT}#init trapped: {}", trap_text(&e)), &mut store)),
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
    fn attempt(&mut self, ctx: &BatchCtx, records: &[Record], state: &mut StateSlot, attempt: u32) -> Result<Vec<Outcome>, String> {
        self.ensure_instance()?;
        let limits = &self.shared.cfg.limits;
        let (store, plugin) = self.instance.as_mut().expect("instance ensured");
        let headers: Vec<Vec<wit::HeaderParam<'_>>> =
            records.iter().map(|r| r.headers.iter().map(|(k, v)| wit::HeaderParam { key: k, value: v }).collect()).collect();
        let input: Vec<wit::RecordIn<'_>> = records.iter().zip(&headers).map(|(r, h)| to_wit(r, h)).collect();
        let wctx = wit::BatchContext { batch_id: self.batch_id, key_group: ctx.key_group, partition: ctx.partition, attempt, checkpoint_epoch: ctx.epoch };
        {
            let data = store.data_mut();
            data.state = state.take();
            data.scope = Some((ctx.key_group, ctx.now_ms));
            data.batch_id = self.batch_id;
        }
        store.set_epoch_deadline(deadline_ticks(limits.batch_timeout_ms));
        let obs = self.shared.obs.clone();
        let started = std::time::Instant::now();
        let result = bounded(limits.batch_timeout_ms, plugin.arkflow_plugin_processor().call_process_batch(&mut *store, wctx, &input));
        obs.host.latency.observe(started.elapsed().as_secs_f64());
        obs.host.calls.fetch_add(1, Relaxed);
        obs.host.records_in.fetch_add(records.len() as u64, Relaxed);
        obs.host.bytes_lowered.fetch_add(records.iter().map(Record::size).sum::<usize>() as u64, Relaxed);
        let data = store.data_mut();
        obs.host.memory_high_water.fetch_max(data.limits.peak as u64, Relaxed);
        *state = data.state.take();
        data.scope = None;
        if !data.metrics.is_empty() {
            obs.metrics.merge(&self.name, &mut data.metrics);
        }
        let where_ = format!("plugin {} export {PROCESSOR_EXPORT}#process-batch", self.shared.path.display());
        let outcomes = match result {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                data.staging.discard();
                return Err(format!("{where_} returned an error: {}", wit_error(&e)));
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
        if outcomes.len() != records.len() {
            data.staging.discard();
            return Err(format!("{where_} returned {} outcomes for {} records", outcomes.len(), records.len()));
        }
        let out = from_wit(outcomes, records, &self.shared.outputs);
        let (emitted, bytes) = out.iter().flat_map(Outcome::emitted).fold((0usize, 0usize), |(n, b), r| (n + 1, b + r.size()));
        if bytes as u64 > limits.max_output_bytes {
            data.staging.discard();
            return Err(format!("{where_} emitted {bytes} bytes, more than limits.max_output_bytes = {}", limits.max_output_bytes));
        }
        let st = state.as_mut().expect("state returned");
        st.commit(&mut data.staging, ctx.key_group, ctx.now_ms);
        obs.host.records_out.fetch_add(emitted as u64, Relaxed);
        obs.host.bytes_lifted.fetch_add(bytes as u64, Relaxed);
        Ok(out)
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
        Err(BatchError {
            message: format!("{}: batch of {} records failed after {attempts} attempts: {last}", self.shared.label, records.len()),
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
        store.data_mut().state = state.take();
        store.data_mut().scope = Some((key_group, now_ms));
        store.set_epoch_deadline(deadline_ticks(self.shared.cfg.limits.batch_timeout_ms));
        let r = bounded(
            self.shared.cfg.limits.batch_timeout_ms,
            plugin.arkflow_plugin_processor().call_on_checkpoint(&mut *store, wit::CheckpointContext { epoch, key_group }),
        );
        let data = store.data_mut();
        *state = data.state.take();
        data.scope = None;
        let where_ = format!("{}: plugin {} export {PROCESSOR_EXPORT}#on-checkpoint", self.shared.label, self.shared.path.display());
        match r {
            Ok(Ok(())) if data.staging.violation().is_none() => {
                state.as_mut().expect("state returned").commit(&mut data.staging, key_group, now_ms);
                Ok(())
            }
            Ok(Ok(())) => {
                let v = data.staging.violation().unwrap_or_default().to_string();
                data.staging.discard();
                Err(fail(format!("{where_}: {v}")))
            }
            Ok(Err(e)) => {
                data.staging.discard();
                Err(fail(format!("{where_} returned an error: {}", wit_error(&e))))
            }
            Err(e) => {
                data.staging.discard();
                let msg = with_last_log(format!("{where_}: {}", trap_text(&e)), store);
                self.instance = None;
                Err(fail(msg))
            }
        }
    }
}

/// The host's error class of a WIT error class.
fn class_of(c: wit::ErrorClass) -> ErrorClass {
    match c {
        wit::ErrorClass::InvalidInput => ErrorClass::InvalidInput,
        wit::ErrorClass::Config => ErrorClass::Config,
        wit::ErrorClass::State => ErrorClass::State,
        wit::ErrorClass::Retriable => ErrorClass::Retriable,
        wit::ErrorClass::Internal => ErrorClass::Internal,
    }
}

fn wit_error(e: &wit::Error) -> String {
    format!("{:?} [{}]: {}", e.class, e.code, truncate(&e.message, 1024))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Borrowed view of a record for lowering into the guest (headers need a small side vector).
fn to_wit<'a>(r: &'a Record, headers: &'a [wit::HeaderParam<'a>]) -> wit::RecordIn<'a> {
    wit::RecordIn { key: r.key.as_deref(), value: r.value.as_deref(), headers, timestamp_ms: r.timestamp_ms, partition: r.partition, offset: r.offset }
}

fn from_wit(outcomes: Vec<wit::RecordOutcome>, inputs: &[Record], outputs: &[String]) -> Vec<Outcome> {
    let record = |o: wit::RecordOut, input: &Record| Record {
        key: o.key.or_else(|| input.key.clone()),
        value: o.value,
        headers: o.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        timestamp_ms: o.timestamp_ms.unwrap_or(input.timestamp_ms),
        partition: input.partition,
        offset: input.offset,
    };
    outcomes
        .into_iter()
        .zip(inputs)
        .map(|(o, input)| match o {
            wit::RecordOutcome::Drop => Outcome::Drop,
            wit::RecordOutcome::Fail(e) => Outcome::Fail(RecordError {
                class: class_of(e.class),
                code: truncate(&e.code, 256).to_string(),
                message: truncate(&e.message, 4096).to_string(),
            }),
            wit::RecordOutcome::Emit(outs) if outs.iter().all(|o| o.output.is_none()) => Outcome::Emit(outs.into_iter().map(|o| record(o, input)).collect()),
            wit::RecordOutcome::Emit(outs) => {
                // A name the stream does not have fails the whole record: it must never fall
                // through to the main output, nor lose the record's other outputs half-way.
                let mut routes = Vec::with_capacity(outs.len());
                for o in &outs {
                    let route = match o.output.as_deref() {
                        None => None,
                        Some(name) => match outputs.iter().position(|k| k == name) {
                            Some(i) => Some(i as u16),
                            None => {
                                let known =
                                    if outputs.is_empty() { "it has no named outputs".to_string() } else { format!("its outputs are: {}", outputs.join(", ")) };
                                return Outcome::Fail(RecordError {
                                    class: ErrorClass::Config,
                                    code: "invalid-output".to_string(),
                                    message: format!("a record was emitted to output `{}`, which this stream does not have ({known})", truncate(name, 256)),
                                });
                            }
                        },
                    };
                    routes.push(route);
                }
                let (mut main, mut side) = (Vec::new(), Vec::new());
                for (o, route) in outs.into_iter().zip(routes) {
                    match route {
                        None => main.push(record(o, input)),
                        Some(i) => side.push((i, record(o, input))),
                    }
                }
                Outcome::Split { main, side }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(value: &str, output: Option<&str>) -> wit::RecordOut {
        wit::RecordOut { key: None, value: Some(value.as_bytes().to_vec()), headers: vec![], timestamp_ms: None, output: output.map(str::to_string) }
    }

    #[test]
    fn named_outputs_split_off_and_unknown_names_fail_the_whole_record() {
        let inputs = vec![Record { key: Some(b"k".to_vec()), timestamp_ms: 7, ..Default::default() }; 3];
        let outputs = vec!["audit".to_string(), "late".to_string()];
        let got = from_wit(
            vec![
                wit::RecordOutcome::Emit(vec![out("a", None)]),
                wit::RecordOutcome::Emit(vec![out("b", None), out("c", Some("late")), out("d", Some("audit"))]),
                wit::RecordOutcome::Emit(vec![out("e", None), out("f", Some("nope"))]),
            ],
            &inputs,
            &outputs,
        );
        assert!(matches!(&got[0], Outcome::Emit(v) if v.len() == 1 && v[0].key.as_deref() == Some(&b"k"[..])));
        let Outcome::Split { main, side } = &got[1] else { panic!("{:?}", got[1]) };
        assert_eq!(main.iter().map(|r| r.value.clone().unwrap()).collect::<Vec<_>>(), [b"b".to_vec()]);
        assert_eq!(
            side.iter().map(|(i, r)| (*i, r.value.clone().unwrap(), r.timestamp_ms)).collect::<Vec<_>>(),
            [(1, b"c".to_vec(), 7), (0, b"d".to_vec(), 7)]
        );
        let Outcome::Fail(e) = &got[2] else { panic!("{:?}", got[2]) };
        assert_eq!(e.code, "invalid-output");
        assert!(e.message.contains("`nope`") && e.message.contains("its outputs are: audit, late"), "{}", e.message);
        let none = from_wit(vec![wit::RecordOutcome::Emit(vec![out("x", Some("audit"))])], &inputs[..1], &[]);
        assert!(matches!(&none[0], Outcome::Fail(e) if e.message.contains("it has no named outputs")));
    }
}
