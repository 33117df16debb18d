//! The programmatic API of the seed guide: `EngineBuilder::new(config)`, `build_streams().await`,
//! then `run(streams).await` (until every stream ends, or SIGINT/SIGTERM drains them).

use crate::config::EngineConfig;
use crate::engine::{self, Stream, StreamReport};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct EngineBuilder {
    config: EngineConfig,
}

impl EngineBuilder {
    pub fn new(config: EngineConfig) -> Self {
        EngineBuilder { config }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Builds every stream: compiles and checks plugins, opens inputs and outputs. A stream
    /// split by a repartition topic (group mode) comes back as its two parts.
    pub async fn build_streams(&mut self) -> Result<Vec<Stream>, crate::Error> {
        let config = self.config.clone();
        let built = tokio::task::spawn_blocking(move || config.streams.iter().map(|s| engine::build_streams(&config, s)).collect::<anyhow::Result<Vec<_>>>())
            .await
            .map_err(|e| crate::Error::Internal(e.to_string()))?
            .map_err(|e| crate::Error::Build(format!("{e:#}")))?;
        Ok(built.into_iter().flatten().collect())
    }

    /// Runs the streams until they end or a signal asks them to drain. Returns one report per
    /// stream; an error when any stream failed.
    pub async fn run(&self, streams: Vec<Stream>) -> Result<Vec<StreamReport>, crate::Error> {
        let stop = engine::shutdown_flag_on_signals();
        let probes = Arc::new(crate::metrics::Probes::default());
        if let Some(http) = &self.config.http {
            crate::metrics::serve(http.address, probes.clone()).map_err(|e| crate::Error::Build(format!("{e:#}")))?;
        }
        *probes.streams.write().unwrap_or_else(|p| p.into_inner()) = streams.iter().map(Stream::probe).collect();
        probes.running.store(true, std::sync::atomic::Ordering::SeqCst);
        if self.config.status_interval_ms > 0 {
            let interval = std::time::Duration::from_millis(self.config.status_interval_ms);
            tokio::spawn(crate::metrics::status_lines(probes.clone(), interval));
        }
        if self.config.shutdown_timeout_ms > 0 {
            tokio::spawn(bound_drain(stop.clone(), probes.clone(), std::time::Duration::from_millis(self.config.shutdown_timeout_ms)));
        }
        let result = Self::run_with_stop(streams, stop).await;
        probes.running.store(false, std::sync::atomic::Ordering::SeqCst);
        result
    }

    /// Like [`run`](Self::run) with a caller-owned stop flag.
    pub async fn run_with_stop(streams: Vec<Stream>, stop: Arc<AtomicBool>) -> Result<Vec<StreamReport>, crate::Error> {
        let reports = tokio::task::spawn_blocking(move || engine::run_streams(streams, stop)).await.map_err(|e| crate::Error::Internal(e.to_string()))?;
        let failures: Vec<String> = reports.iter().filter_map(|r| r.failure.clone()).collect();
        if failures.is_empty() {
            Ok(reports)
        } else {
            Err(crate::Error::StreamsFailed { failures, reports })
        }
    }
}

/// Once `stop` is set (a signal), gives the streams `limit` to drain, then exits the process with
/// code 1 and the reason. Exactly-once holds: nothing undecided was made visible, and the next
/// start resumes from the last decided checkpoint.
async fn bound_drain(stop: Arc<std::sync::atomic::AtomicBool>, probes: Arc<crate::metrics::Probes>, limit: std::time::Duration) {
    use std::sync::atomic::Ordering::SeqCst;
    while !stop.load(SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(limit).await;
    if probes.running.load(SeqCst) {
        tracing::error!(
            "the streams did not drain within shutdown_timeout_ms = {} after the signal: exiting without a final checkpoint; the next start resumes from the last decided checkpoint",
            limit.as_millis()
        );
        std::process::exit(1);
    }
}
