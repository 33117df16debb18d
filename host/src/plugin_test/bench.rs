//! `arkflow plugin bench`: a plugin's speed on a fixture, in the real sandbox, outside any stream.
//!
//! Contract: the fixture is read and cut into batches as `plugin test` does (same `PluginTest`
//! fields), then fed to one instance again and again, its state kept (as a long stream would
//! grow it), until `seconds` have passed. The report gives records per second and nanoseconds per
//! record (time inside the calls only: no fixture reading), the per-call latency (median, 99th percentile, max), the bytes that
//! crossed into and out of the guest per record, and the instance's linear-memory high water.
//! With a baseline plugin (e.g. a pass-through), the two run in alternating rounds on the same
//! fixture and the report ends with the ratio of their rates.

use super::{empty_state, load, PluginTest};
use crate::processor::wasm::WasmFactory;
use crate::processor::{BatchCtx, ProcessorContext, ProcessorFactory, StateSlot};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One plugin's figures over its rounds.
#[derive(Default)]
struct Figures {
    records: u64,
    busy: Duration,
    calls: Vec<Duration>,
}

/// Runs the bench of `t.plugin` (and of `baseline` in alternating rounds); the report goes to
/// `out`.
pub fn run(t: &PluginTest, baseline: Option<&std::path::Path>, seconds: f64, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let mut plugins = vec![t.plugin.clone()];
    plugins.extend(baseline.map(std::path::Path::to_path_buf));
    let loaded: Vec<(WasmFactory, Vec<crate::record::Record>)> =
        plugins.iter().map(|p| load(&PluginTest { plugin: p.clone(), ..t.clone() })).collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!loaded[0].1.is_empty(), "--input {}: no records", t.input.display());
    let rounds = 3;
    let mut figures: Vec<Figures> = plugins.iter().map(|_| Figures::default()).collect();
    for _ in 0..rounds {
        for (i, (factory, records)) in loaded.iter().enumerate() {
            one_round(factory, records, t.batch_size.max(1), Duration::from_secs_f64(seconds / rounds as f64), &mut figures[i])?;
        }
    }
    for (i, (factory, _)) in loaded.iter().enumerate() {
        report(&plugins[i], factory, &mut figures[i], out)?;
    }
    if let [p, b] = &figures[..] {
        let rate = |f: &Figures| f.records as f64 / f.busy.as_secs_f64();
        writeln!(out, "ratio: {:.3} of the baseline's records/s", rate(p) / rate(b))?;
    }
    Ok(())
}

/// Feeds the fixture's batches to one fresh instance, over and over, for `budget`.
fn one_round(factory: &WasmFactory, records: &[crate::record::Record], batch: usize, budget: Duration, f: &mut Figures) -> anyhow::Result<()> {
    let mut state: StateSlot = Some(Box::new(empty_state(factory.store_names())));
    let cx = ProcessorContext { stream: "plugin-bench".into(), worker: 0, pipeline: Arc::default() };
    let mut proc = factory.instantiate(&cx)?;
    let started = Instant::now();
    let mut id = 0;
    while started.elapsed() < budget {
        for chunk in records.chunks(batch) {
            id += 1;
            let ctx = BatchCtx { batch_id: id, key_group: 0, partition: 0, epoch: 1, now_ms: crate::util::time::now_ms() };
            let t = Instant::now();
            proc.process(&ctx, chunk, &mut state).map_err(|e| anyhow::anyhow!("batch failed: {}", e.message))?;
            let d = t.elapsed();
            f.busy += d;
            f.calls.push(d);
            f.records += chunk.len() as u64;
        }
    }
    Ok(())
}

fn report(plugin: &std::path::Path, factory: &WasmFactory, f: &mut Figures, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    f.calls.sort_unstable();
    let at = |q: f64| f.calls[((f.calls.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    let h = factory.figures();
    let per = |n: u64| n as f64 / h.records_in.load(Relaxed).max(1) as f64;
    writeln!(
        out,
        "{} ({}@{}): {} records in {:.2} s of calls: {:.0} records/s, {:.0} ns a record; a call of {} records: median {:.1} µs, p99 {:.1} µs, max {:.1} µs; per record {:.1} bytes in, {:.1} bytes out; linear memory high water {:.1} MiB",
        plugin.display(),
        factory.info().name,
        factory.info().version,
        f.records,
        f.busy.as_secs_f64(),
        f.records as f64 / f.busy.as_secs_f64(),
        f.busy.as_nanos() as f64 / f.records.max(1) as f64,
        f.records / f.calls.len().max(1) as u64,
        at(0.5),
        at(0.99),
        at(1.0),
        per(h.bytes_lowered.load(Relaxed)),
        per(h.bytes_lifted.load(Relaxed)),
        h.memory_high_water.load(Relaxed) as f64 / (1 << 20) as f64,
    )?;
    Ok(())
}
