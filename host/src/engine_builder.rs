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

    /// Builds every stream: compiles and checks plugins, opens inputs and outputs.
    pub async fn build_streams(&mut self) -> Result<Vec<Stream>, crate::Error> {
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            config.streams.iter().map(|s| engine::build_stream(&config, s)).collect::<anyhow::Result<Vec<_>>>()
        })
        .await
        .map_err(|e| crate::Error::Internal(e.to_string()))?
        .map_err(|e| crate::Error::Build(format!("{e:#}")))
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
        let result = Self::run_with_stop(streams, stop).await;
        probes.running.store(false, std::sync::atomic::Ordering::SeqCst);
        result
    }

    /// Like [`run`](Self::run) with a caller-owned stop flag.
    pub async fn run_with_stop(streams: Vec<Stream>, stop: Arc<AtomicBool>) -> Result<Vec<StreamReport>, crate::Error> {
        let reports = tokio::task::spawn_blocking(move || engine::run_streams(streams, stop))
            .await
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        let failures: Vec<String> = reports.iter().filter_map(|r| r.failure.clone()).collect();
        if failures.is_empty() {
            Ok(reports)
        } else {
            Err(crate::Error::StreamsFailed { failures, reports })
        }
    }
}
