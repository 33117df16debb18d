//! The engine: builds streams from the config and runs them until EOF, a signal or failure.
//!
//! Contract: [`build_stream`] does all checking that can fail before data flows (plugins compiled
//! and validated, inputs opened, outputs created); [`run_streams`] runs every stream on its own
//! threads, so one failing stream never stops the others, and returns one report per stream.
//! [`shutdown_flag_on_signals`] turns SIGINT/SIGTERM into a graceful drain (a second signal exits
//! at once).

mod msg;
mod shared;
mod stream;
mod worker;

pub use shared::{StreamMetrics, StreamShared};
pub use stream::{Router, Stream, StreamReport};

use crate::config::{EngineConfig, ProcessorConfig, StreamConfig};
use crate::state::StateLimits;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The state stores of a stream: "default" then its `custom_keys`.
pub fn store_names(stream: &StreamConfig) -> Vec<String> {
    let mut names = vec!["default".to_string()];
    names.extend(stream.state.custom_keys.iter().cloned());
    names
}

/// Builds one stream.
pub fn build_stream(engine: &EngineConfig, cfg: &StreamConfig) -> anyhow::Result<Stream> {
    let names = store_names(cfg);
    let factories = crate::processor::build_factories(cfg, &names)?;
    let state_limits = cfg
        .pipeline
        .processors
        .iter()
        .find_map(|p| match p {
            ProcessorConfig::Wasm(w) => Some(StateLimits {
                max_key_bytes: w.limits.max_key_bytes,
                max_value_bytes: w.limits.max_value_bytes,
                max_batch_state_bytes: w.limits.max_batch_state_bytes,
                max_state_bytes: w.limits.max_state_bytes,
            }),
            _ => None,
        })
        .unwrap_or_default();
    let sm = &engine.state_management;
    let input = crate::input::build(&cfg.input).map_err(|e| anyhow::anyhow!("stream {}: {e:#}", cfg.name))?;
    let output = crate::output::build(&cfg.output).map_err(|e| anyhow::anyhow!("stream {}: output: {e:#}", cfg.name))?;
    let error_output = match &cfg.error_output {
        Some(o) => Some(crate::output::build(o).map_err(|e| anyhow::anyhow!("stream {}: error_output: {e:#}", cfg.name))?),
        None => None,
    };
    Ok(Stream {
        config: cfg.clone(),
        factories,
        store_names: names,
        key_groups: sm.key_groups.max(1),
        ttl_ms: sm.state_timeout_ms,
        state_limits,
        input,
        output,
        error_output,
        barrier_interval: sm.enabled.then(|| Duration::from_millis(sm.checkpoint_interval_ms.max(1))),
        shared: Arc::new(StreamShared::new(cfg.name.clone())),
    })
}

/// Runs every stream to completion (each on its own threads) and returns their reports.
pub fn run_streams(streams: Vec<Stream>, stop: Arc<AtomicBool>) -> Vec<StreamReport> {
    let handles: Vec<_> = streams
        .into_iter()
        .map(|s| {
            let stop = stop.clone();
            let name = s.name().to_string();
            let h = std::thread::Builder::new().name(format!("{name}-input")).spawn(move || s.run(stop)).expect("spawn stream");
            (name, h)
        })
        .collect();
    handles
        .into_iter()
        .map(|(name, h)| {
            h.join().unwrap_or_else(|_| StreamReport {
                name: name.clone(),
                records_in: 0,
                records_out: 0,
                records_dropped: 0,
                records_failed: 0,
                last_aligned_epoch: 0,
                failure: Some(format!("stream {name}: input thread panicked")),
                state_entries: 0,
            })
        })
        .collect()
}

/// A flag set by the first SIGINT or SIGTERM; a second signal exits the process (code 130).
/// Must be called inside a tokio runtime.
pub fn shutdown_flag_on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
            tracing::warn!("cannot install signal handlers; SIGINT/SIGTERM will kill the process");
            return;
        };
        for n in 0.. {
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
            if n == 0 {
                tracing::info!("signal received: draining streams (send again to exit at once)");
                f.store(true, Ordering::SeqCst);
            } else {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
        }
    });
    flag
}
