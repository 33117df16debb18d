//! The engine: builds streams from the config and runs them until EOF, a signal or failure.
//!
//! Contract: [`build_streams`] does all checking that can fail before data flows (plugins compiled
//! and validated, inputs opened, outputs created); [`run_streams`] runs every stream on its own
//! threads, so one failing stream never stops the others, and returns one report per stream.
//! [`shutdown_flag_on_signals`] turns SIGINT/SIGTERM into a graceful drain (a second signal exits
//! at once).

mod clock;
mod exchange;
pub mod group;
mod lane;
mod msg;
mod output_stage;
pub mod plan;
pub mod routing;
mod shared;
mod sinks;
mod stream;
pub mod tiers;
mod timers;
mod watermark;
mod worker;
mod workers;

pub use routing::{Router, Routing};
pub use shared::{StreamMetrics, StreamProbe, StreamShared};
pub(crate) use sinks::{configured as configured_sinks, Sinks};
pub use stream::{CheckpointReport, CheckpointSetup, Stream, StreamReport, StreamSpec};
pub use tiers::{Tier, Tiers};

use crate::config::{EngineConfig, StreamConfig};
use crate::state::StateLimits;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether stream `cfg`'s workers run whole batches: no stage keeps state, so each worker files
/// its records under one key group (`Router::coalesced`); not in group mode.
pub fn runs_whole_batches(cfg: &StreamConfig, factories: &[Arc<dyn crate::processor::ProcessorFactory>]) -> bool {
    !cfg.group_mode() && factories.iter().all(|f| !f.keeps_state())
}

/// One line saying where stream `cfg`'s stages run and how records reach them (`--validate`):
/// each tier's stages, workers and routing, an exchange between tiers.
pub fn topology(cfg: &StreamConfig, factories: &[Arc<dyn crate::processor::ProcessorFactory>], tiers: &Tiers) -> String {
    let workers = cfg.pipeline.thread_num.max(1);
    let tier_text = |stages: &[Arc<dyn crate::processor::ProcessorFactory>], routing: &Routing| {
        let names: Vec<&str> = stages.iter().map(|f| f.name()).collect();
        let names = if names.is_empty() { "no processors".to_string() } else { names.join(" -> ") };
        let batches = if runs_whole_batches(cfg, stages) { "whole batches" } else { "one batch per key group" };
        format!("[{names}] on {workers} worker(s), {batches}, routed to key groups by {}", routing.describe())
    };
    let ranges = tiers.ranges(factories.len());
    let body: Vec<String> = tiers.0.iter().zip(ranges).map(|(t, r)| tier_text(&factories[r], &t.routing)).collect();
    let sinks: Vec<String> = configured_sinks(cfg).into_iter().map(|(id, o)| format!("{id} {}", o.type_name())).collect();
    let place = match cfg.group_mode() {
        true => format!(
            "in every process of consumer group `{}`, each on the partitions the group assigns it (records stay in their partition's process)",
            default_group(cfg)
        ),
        false => "in this process".to_string(),
    };
    format!(
        "input {}{} -> {} -> {}; {place}",
        cfg.input.type_name(),
        cfg.input.get::<crate::connectors::kafka::KafkaInputConfig>().map_or(String::new(), |k| format!(" {}", k.topics.join(","))),
        body.join(" -> exchange -> "),
        sinks.join(", ")
    )
}

/// Builds the streams that run `streams:` entry `cfg`: one, or two joined by a repartition topic
/// (created here when missing; see [`plan`]).
pub fn build_streams(engine: &EngineConfig, cfg: &StreamConfig) -> anyhow::Result<Vec<Stream>> {
    crate::tune_allocator();
    crate::processor::wasm::cache::configure(&engine.plugin_cache);
    let factories = crate::processor::build_factories(cfg, &cfg.store_names())?;
    let plan = plan::plan(engine, cfg, &factories)?;
    for r in &plan.repartitions {
        let n = crate::connectors::kafka::admin::ensure_repartition_topic(&r.input, &r.topic).map_err(|e| anyhow::anyhow!("stream {}: {e:#}", cfg.name))?;
        tracing::info!(stream = %cfg.name, topic = %r.topic, partitions = n, "stages from the first keyed one on read the repartition topic");
    }
    plan.parts.into_iter().map(|p| build_part(engine, &p.config, factories[p.stages].to_vec(), p.tiers)).collect()
}

/// Builds `cfg` when it runs as one stream (no repartition topic), as benchmarks do.
pub fn build_stream(engine: &EngineConfig, cfg: &StreamConfig) -> anyhow::Result<Stream> {
    let mut parts = build_streams(engine, cfg)?;
    anyhow::ensure!(parts.len() == 1, "stream {} runs as {} parts joined by a repartition topic: build it with build_streams", cfg.name, parts.len());
    Ok(parts.remove(0))
}

/// Builds one stream from its built stages, in worker tiers `tiers`.
fn build_part(engine: &EngineConfig, cfg: &StreamConfig, factories: Vec<Arc<dyn crate::processor::ProcessorFactory>>, tiers: Tiers) -> anyhow::Result<Stream> {
    let mut names = cfg.store_names();
    names.push(crate::state::TIMER_STORE.to_string());
    let state_limits = cfg
        .pipeline
        .processors
        .iter()
        .find_map(|p| p.get::<crate::processor::wasm::WasmProcessorConfig>())
        .map(|w| StateLimits {
            max_key_bytes: w.limits.max_key_bytes,
            max_value_bytes: w.limits.max_value_bytes,
            max_batch_state_bytes: w.limits.max_batch_state_bytes,
            max_state_bytes: w.limits.max_state_bytes,
        })
        .unwrap_or_default();
    let sm = &engine.state_management;
    let shared = Arc::new(StreamShared::new(cfg.name.clone()));
    if sm.enabled && sm.exactly_once && !cfg.input.caps().replayable {
        anyhow::bail!("stream {}: input: {} cannot be replayed, so state_management.exactly_once: true cannot hold for it; use a file or kafka input, or set exactly_once: false (at-least-once: state is restored and new input is read after a restart)", cfg.name, cfg.input.type_name());
    }
    tracing::info!(stream = %cfg.name, "records are routed to key groups by {}", tiers.describe());
    let lane = columnar_lane(cfg, &factories, &tiers);
    if lane {
        tracing::info!(stream = %cfg.name, "columnar lane: the input's blocks of JSON lines run through the stage whole");
    }
    let spec = stream::StreamSpec {
        config: cfg.clone(),
        factories,
        store_names: names,
        key_groups: sm.key_groups.max(1),
        tiers,
        ttl_ms: sm.state_timeout_ms,
        state_limits,
        barrier_interval: sm.enabled.then(|| Duration::from_millis(sm.checkpoint_interval_ms.max(1))),
        shared,
        lane,
    };
    let runner = match cfg.group_mode() {
        true => stream::Runner::Group(Box::new(group::build(engine, &spec)?)),
        false => stream::Runner::Once(Box::new(open_session(engine, &spec)?)),
    };
    Ok(Stream { spec, runner })
}

/// Whether the stream runs the columnar lane (docs/ARCHITECTURE.md, *The columnar lane*): its
/// input reads blocks of unkeyed JSON lines, its last stage takes them whole and the ones before
/// it let them pass (`json_to_arrow`), and nothing needs records one by one before that stage
/// (a key to route by, event time, a second tier).
/// `ARKFLOW_COLUMNAR_LANE=off` turns it off for every stream (to compare the two paths).
fn columnar_lane(cfg: &StreamConfig, factories: &[Arc<dyn crate::processor::ProcessorFactory>], tiers: &Tiers) -> bool {
    std::env::var("ARKFLOW_COLUMNAR_LANE").map_or(true, |v| v != "off")
        && cfg.input.caps().lines
        && cfg.key_by.is_none()
        && cfg.event_time.is_none()
        && !cfg.group_mode()
        && tiers.0.len() == 1
        && matches!(factories.split_last(), Some((last, before)) if last.takes_lines() && !last.keeps_state() && before.iter().all(|f| f.passes_lines()))
}

/// Opens the input, sinks and checkpointing of a stream that runs as one session.
fn open_session(engine: &EngineConfig, spec: &stream::StreamSpec) -> anyhow::Result<stream::Session> {
    let cfg = &spec.config;
    let group = default_group(cfg);
    let cx = crate::connectors::registry::SourceCx {
        stream: &cfg.name,
        checkpoints: engine.state_management.enabled,
        default_group: &group,
        kafka: spec.shared.kafka.clone(),
    };
    let mut input = crate::connectors::registry::open_input(&cfg.input, &cx).map_err(|e| anyhow::anyhow!("stream {}: {e:#}", cfg.name))?;
    let (checkpoint, sinks) = match engine.state_management.enabled {
        true => {
            let (c, s) = checkpoint_setup(engine, cfg, &spec.tiers, &mut *input, &spec.shared)?;
            (Some(c), s)
        }
        false => {
            exactly_once_output_needs_store(engine, cfg)?;
            (None, Sinks::plain(cfg)?)
        }
    };
    Ok(stream::Session { input, sinks, checkpoint })
}

pub(crate) use crate::connectors::registry::SinkPlace;

/// The Kafka consumer group of a stream whose input names none.
pub fn default_group(cfg: &StreamConfig) -> String {
    cfg.input.caps().consumer_group.unwrap_or_else(|| format!("arkflow-{}", cfg.state.operator_id))
}

/// Opens the object store of the configured state backend.
pub fn open_store(sm: &crate::config::StateManagementConfig) -> anyhow::Result<Arc<dyn crate::state::backend::ObjectStore>> {
    use crate::config::BackendType;
    use crate::state::backend::{LocalStore, MemoryStore};
    Ok(match sm.backend_type {
        BackendType::Memory => Arc::new(MemoryStore::new()),
        BackendType::Local => Arc::new(LocalStore::new(&sm.local_config.path)?),
        BackendType::S3 | BackendType::Hybrid => {
            let s3 = sm.s3_config.as_ref().ok_or_else(|| anyhow::anyhow!("state_management.s3_config is required for backend_type s3/hybrid"))?;
            Arc::new(crate::checkpoint::block_on(crate::state::backend::s3::S3Store::new(s3))?)
        }
    })
}

/// The checkpoint settings of a stream (scope = its operator id).
pub(crate) fn checkpoint_settings(engine: &EngineConfig, cfg: &StreamConfig, tiers: &Tiers) -> crate::checkpoint::CheckpointSettings {
    use crate::config::BackendType;
    let sm = &engine.state_management;
    crate::checkpoint::CheckpointSettings {
        scope: cfg.state.operator_id.clone(),
        stream: cfg.name.clone(),
        interval: Duration::from_millis(sm.checkpoint_interval_ms.max(1)),
        timeout: Duration::from_millis(sm.checkpoint_timeout_ms.unwrap_or((sm.checkpoint_interval_ms * 10).clamp(10_000, 600_000))),
        tolerated_failures: sm.tolerated_checkpoint_failures,
        retained: sm.retained_checkpoints.max(1) as usize,
        exactly_once: sm.exactly_once,
        key_groups: sm.key_groups.max(1),
        routing: tiers.describe(),
        ttl_ms: sm.state_timeout_ms,
        lazy_restore: sm.backend_type == BackendType::Hybrid,
        gc_grace: Duration::from_millis(sm.gc_grace_ms),
        decider: None,
        external_last: None,
        committers: Default::default(),
    }
}

/// An output whose exactly-once form the checkpoints decide (an exactly-once kafka output,
/// transactions or outbox) is refused unless `state_management` is enabled and `exactly_once`
/// (for every sink of the stream).
pub(crate) fn exactly_once_output_needs_store(engine: &EngineConfig, cfg: &StreamConfig) -> anyhow::Result<()> {
    let sm = &engine.state_management;
    for (id, o) in sinks::configured(cfg) {
        if !o.caps().needs_checkpoints {
            continue;
        }
        let ty = o.type_name();
        if !sm.enabled {
            anyhow::bail!(
                "stream {}: {id}: a {ty} output with exactly_once: true needs state_management.enabled: true (each epoch's output commits with its checkpoint)",
                cfg.name
            );
        }
        if !sm.exactly_once {
            anyhow::bail!("stream {}: {id}: a {ty} output with exactly_once: true needs state_management.exactly_once: true", cfg.name);
        }
    }
    Ok(())
}

/// Opens the state backend, checks it, recovers the last decided checkpoint, seeks the input,
/// builds the sinks in their exactly-once forms, finishes the last decision's sink commits and
/// lets the sinks clean up.
fn checkpoint_setup(
    engine: &EngineConfig,
    cfg: &StreamConfig,
    tiers: &Tiers,
    input: &mut dyn crate::connectors::input::Input,
    shared: &StreamShared,
) -> anyhow::Result<(stream::CheckpointSetup, Sinks)> {
    use crate::config::BackendType;
    let sm = &engine.state_management;
    let name = &cfg.name;
    let store = open_store(sm)?;
    let mut settings = checkpoint_settings(engine, cfg, tiers);
    if sm.exactly_once {
        if sm.backend_type == BackendType::Memory {
            tracing::warn!(stream = %name, "exactly_once with backend_type memory: state and checkpoints do not survive a process restart");
        } else {
            let ok = crate::checkpoint::block_on(crate::state::backend::probe_create_only(&*store, &settings.scope))?;
            if !ok {
                anyhow::bail!(
                    "stream {name}: state store {} does not honour create-only writes (If-None-Match: *): exactly_once needs them to keep one decision per epoch; use a store that does, or set state_management.exactly_once: false",
                    store.describe()
                );
            }
        }
        for (id, o) in sinks::configured(cfg) {
            if o.caps().at_least_once {
                let ty = o.type_name();
                tracing::warn!(stream = %name, sink = %id, "exactly_once: a {ty} output stays at-least-once (records since the last checkpoint are written again after a crash)");
            }
        }
    }
    exactly_once_output_needs_store(engine, cfg)?;
    let group = cfg.input.caps().group_offsets.then(|| default_group(cfg));
    let dcx = crate::connectors::registry::DeciderCx {
        stream: name,
        operator_id: &cfg.state.operator_id,
        input_group: group.as_deref(),
        kafka: shared.kafka.clone(),
    };
    let decider = crate::connectors::registry::open_decider(&cfg.output, &dcx).map_err(|e| anyhow::anyhow!("stream {name}: output: {e:#}"))?;
    let output = decider.map(|d| {
        settings.external_last = d.last;
        settings.decider = Some(d.decider);
        d.output
    });
    let recovered = crate::checkpoint::block_on(crate::checkpoint::recovery::recover(store.clone(), &settings, sm.from_savepoint.as_deref()))
        .map_err(|e| anyhow::anyhow!("stream {name}: recovery from {} failed: {e:#}", store.describe()))?;
    if let Some(m) = &recovered.manifest {
        input.seek(&m.input_position).map_err(|e| anyhow::anyhow!("stream {name}: {e:#}"))?;
        tracing::info!(stream = %name, epoch = m.epoch, generation = recovered.generation, entries = recovered.entries.len(), restore_ms = recovered.restore_ms, store = %store.describe(), "restored from the last decided checkpoint");
    } else {
        tracing::info!(stream = %name, generation = recovered.generation, store = %store.describe(), "no decided checkpoint: starting fresh");
    }
    let at = SinkPlace { store: &store, scope: &settings.scope, generation: recovered.generation, key_groups: settings.key_groups, producer: None };
    let mut sinks = Sinks::checkpointed(engine, cfg, &at, output)?;
    settings.committers = sinks.committers();
    if let (Some(m), None) = (&recovered.manifest, &sm.from_savepoint) {
        crate::checkpoint::recovery::replay_commits(&*store, &settings.scope, m, &settings.committers).map_err(|e| anyhow::anyhow!("stream {name}: {e:#}"))?;
    }
    sinks.recovered(name, recovered.manifest.as_ref().map(|m| m.epoch))?;
    let hybrid = (sm.backend_type == BackendType::Hybrid).then(|| {
        let m = recovered.manifest.as_ref();
        Arc::new(crate::state::hybrid::HybridCache::new(
            store.clone(),
            m.map(|m| m.state_files.clone()).unwrap_or_default(),
            m.map_or(0, |m| m.epoch),
            sm.hybrid_config.cache_kb.saturating_mul(1024),
        ))
    });
    Ok((stream::CheckpointSetup { store, settings, recovered, metrics: Default::default(), hybrid, carry_restored: false }, sinks))
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
        .map(|(name, h)| h.join().unwrap_or_else(|_| StreamReport::empty(&name, Some(format!("stream {name}: input thread panicked")))))
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
