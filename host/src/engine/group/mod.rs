//! Group mode (`assignment: group` on a `kafka` input): several `arkflow` processes with the same
//! config share the input through Kafka's consumer group. No cluster manager of our own: Kafka
//! assigns partitions, the state store arbitrates key-group ownership (`claims`).
//!
//! The stream runs as a series of *sessions*, one per assignment the group hands this process.
//! A session is a generation of its own, with its own checkpoint scope
//! (`{operator_id}/sessions/{g}`), so two processes never write the same objects:
//! 1. wait for an assignment; take over the key groups of its partitions (fence their previous
//!    sessions, publish their decided-but-unpublished output, claim, restore state and
//!    positions);
//! 2. run the ordinary stream engine on those partitions: the restored state is written again by
//!    the session's first checkpoint, so its chain stands on its own;
//! 3. on a revoke, the input ends: the stream drains, takes its last checkpoint and publishes it,
//!    and only then are the partitions released and the group allowed to go on (eager protocol);
//!    on a signal, the same, then the consumer leaves the group.
//!
//! A session fenced by a newer owner (overlapping assignments) ends without failing the stream;
//! its undecided epoch is replayed by the new owner, so nothing is lost or doubled.
//!
//! Exactly-once across moves: the state store decides (one `commits/{e}` per session epoch,
//! fenced per key group by the claims) and a `kafka` output publishes through the outbox
//! (`exactly_once_mode: outbox`). KIP-447-style transactional fencing needs a broker with
//! transactions, which the brokers we test against lack, and an outbox works on any broker.
//! Outputs that become visible after the decision (`s3`, `postgres`) commit per session scope;
//! a new owner finishes the last decided commit of each session it fences and releases what
//! that session staged past it (`settle`).

pub mod claims;
pub mod gc;
mod settle;
#[cfg(test)]
mod tests;

use crate::config::{EngineConfig, StreamConfig};
use crate::connectors::input::Input;
use crate::connectors::kafka::KafkaInput;
use crate::engine::stream::{Session, StreamSpec};
use crate::engine::{CheckpointSetup, StreamReport};
use crate::state::backend::ObjectStore;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a group-mode stream keeps across sessions.
pub struct GroupSetup {
    engine: EngineConfig,
    store: Arc<dyn ObjectStore>,
    input: Arc<Mutex<KafkaInput>>,
    /// The outbox producer (exactly-once kafka output), shared by every session.
    producer: Option<Arc<rdkafka::producer::ThreadedProducer<crate::connectors::kafka::outbox::OutboxCtx>>>,
}

/// One session's view of the shared consumer.
struct SessionInput(Arc<Mutex<KafkaInput>>);

impl SessionInput {
    fn lock(&self) -> std::sync::MutexGuard<'_, KafkaInput> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Input for SessionInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<crate::record::Record>>> {
        self.lock().next_batch()
    }
    fn position(&self) -> serde_json::Value {
        self.lock().position()
    }
    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        self.lock().seek(position)
    }
    fn decided(&mut self, epoch: u64, position: &serde_json::Value) {
        self.lock().decided(epoch, position)
    }
    /// A session ends with its assignment, never with the data: the partitions' next owner goes
    /// on with their windows and timers.
    fn at_end(&self) -> bool {
        false
    }
}

/// Checks that stream `spec` can run in group mode and opens what its sessions share (the
/// consumer subscribes here).
pub(crate) fn build(engine: &EngineConfig, spec: &StreamSpec) -> anyhow::Result<GroupSetup> {
    use crate::config::BackendType;
    let cfg = &spec.config;
    let name = &cfg.name;
    let sm = &engine.state_management;
    let refuse = |why: &str| anyhow::anyhow!("stream {name}: input.assignment: group {why}");
    if !sm.enabled {
        return Err(refuse("needs state_management.enabled: true (key groups move between processes through checkpoints)"));
    }
    match sm.backend_type {
        BackendType::Memory => {
            return Err(refuse("needs a state store every process reaches (backend_type s3, or local on one machine); memory is private to a process"))
        }
        BackendType::Hybrid => return Err(refuse("does not support backend_type hybrid yet; use s3")),
        _ => {}
    }
    if sm.from_savepoint.is_some() {
        return Err(refuse("cannot start from a savepoint (start one process from it first, then scale out)"));
    }
    let main = cfg.output.caps();
    if main.file.is_some() {
        return Err(refuse("cannot use a file output: every process would write the same file; use a kafka output"));
    }
    if main.decides {
        return Err(refuse("with an exactly-once kafka output needs exactly_once_mode: outbox (Kafka transactions per partition set are not supported)"));
    }
    crate::engine::exactly_once_output_needs_store(engine, cfg)?;
    for (i, (id, o)) in crate::engine::configured_sinks(cfg).into_iter().enumerate() {
        let caps = o.caps();
        if i == 0 {
            continue; // the main output's checks are above
        }
        if caps.file.is_some() {
            return Err(refuse(&format!("cannot use a file {id}: every process would write the same file")));
        }
        if caps.needs_checkpoints {
            return Err(refuse(&format!(
                "does not support an exactly-once {} {id} yet (its outbox does not move with key groups); set exactly_once: false on it (at-least-once)",
                o.type_name()
            )));
        }
    }
    let Some(k) = cfg.input.get::<crate::connectors::kafka::KafkaInputConfig>() else {
        return Err(refuse(&format!("is a kafka input setting; this input is {}", cfg.input.type_name())));
    };
    let input =
        KafkaInput::open(k.clone(), &crate::engine::default_group(cfg), spec.shared.kafka.clone()).map_err(|e| anyhow::anyhow!("stream {name}: {e:#}"))?;
    let key_groups = sm.key_groups.max(1);
    if input.partition_count() > key_groups as usize {
        return Err(refuse(&format!(
            "needs at least one key group per partition: the topics have {} partitions, state_management.key_groups is {key_groups}",
            input.partition_count()
        )));
    }
    let store = crate::engine::open_store(sm)?;
    if sm.exactly_once && !crate::checkpoint::block_on(crate::state::backend::probe_create_only(&*store, &cfg.state.operator_id))? {
        anyhow::bail!(
            "stream {name}: state store {} does not honour create-only writes (If-None-Match: *): exactly_once needs them; use a store that does, or set state_management.exactly_once: false",
            store.describe()
        );
    }
    let producer = match outbox_output(cfg) {
        Some(k) => Some(crate::connectors::kafka::outbox::Outbox::shared_producer(k).map_err(|e| anyhow::anyhow!("stream {name}: output: {e:#}"))?),
        None => None,
    };
    Ok(GroupSetup { engine: engine.clone(), store, input: Arc::new(Mutex::new(input)), producer })
}

/// Runs sessions until the input ends, a signal stops the process, or a session fails.
pub(crate) fn run(spec: StreamSpec, g: GroupSetup, stop: Arc<AtomicBool>) -> StreamReport {
    let shared = spec.shared.clone();
    let name = shared.name.clone();
    let mut last: Option<StreamReport> = None;
    let halt = || stop.load(Relaxed) || shared.stop.load(Relaxed);
    let current = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watchdog = Watchdog::spawn(&spec, &g, current.clone());
    loop {
        let assignment = g.input.lock().unwrap_or_else(|p| p.into_inner()).wait_assignment(&halt);
        let Some(assignment) = assignment else { break };
        let started = Instant::now();
        let session = match retry(&START_RETRIES, &halt, |attempt| {
            start_session(&spec, &g, &assignment).inspect_err(|e| {
                tracing::warn!(stream = %name, attempt, "group session: starting failed: {e:#}");
            })
        }) {
            Ok(s) => s,
            Err(e) => {
                shared.fail(format!("stream {name}: starting a group session: {e:#}"));
                break;
            }
        };
        let fenced = session.checkpoint.as_ref().map(|c| c.metrics.clone());
        tracing::info!(
            stream = %name,
            partitions = ?assignment,
            at_ms = crate::util::time::now_ms(),
            took_ms = started.elapsed().as_millis() as u64,
            "group session started"
        );
        current.store(session.checkpoint.as_ref().map_or(0, |c| c.recovered.generation), Relaxed);
        let report = session.run(&spec, stop.clone());
        let revoked = g.input.lock().unwrap_or_else(|p| p.into_inner()).revoked();
        {
            let mut input = g.input.lock().unwrap_or_else(|p| p.into_inner());
            input.end_session();
            // Not when stopping: a subscribe racing the consumer's close trips librdkafka's
            // assertion that a closed group has no subscription (SIGABRT at a graceful stop).
            if !halt() {
                if let Err(e) = input.rejoin_if_asked() {
                    shared.fail(format!("stream {name}: {e:#}"));
                }
            }
        }
        let was_fenced = fenced.is_some_and(|m| m.fenced.load(std::sync::atomic::Ordering::SeqCst));
        let (failed, undecided) = (report.failure.is_some(), report.final_undecided);
        last = Some(report);
        // Revoked partitions whose last checkpoint missed its decision: the next owner resumes
        // from the decided one; this process takes the next assignment.
        if failed && (was_fenced || (undecided && revoked && !halt())) {
            let why = shared.clear_failure().unwrap_or_default();
            match was_fenced {
                true => {
                    tracing::warn!(stream = %name, "group session ended: another session took over its key groups ({why}); waiting for the next assignment")
                }
                false => {
                    tracing::warn!(stream = %name, "group session ended at a revocation without its last checkpoint ({why}); waiting for the next assignment")
                }
            }
            continue;
        }
        if failed || halt() || !revoked {
            break; // a failure, a signal, or the end of a bounded input
        }
        tracing::info!(stream = %name, at_ms = crate::util::time::now_ms(), "group session ended: partitions revoked after the last checkpoint");
    }
    watchdog.stop();
    let mut report = last.unwrap_or_else(|| StreamReport::empty(&name, None));
    report.failure = shared.failure();
    report
}

/// Waits before each new attempt to start a session. A start fails on a store or broker error
/// while taking over (fencing, publishing leftovers, claiming, restoring); each attempt claims a
/// new generation, and a failed attempt's claim names a session that decided nothing, which the
/// next attempt fences and passes over (keeping its `from`). About 15 s in all, then the stream
/// fails (and nothing decided is lost: another process, or a restart, takes over the same way).
const START_RETRIES: [Duration; 5] =
    [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)];

/// Runs `f` (given its attempt number, from 1) until it succeeds, waiting `delays[i]` after the
/// i-th failure; the last error once the delays are used up or `halt` says stop.
fn retry<T>(delays: &[Duration], halt: &dyn Fn() -> bool, mut f: impl FnMut(usize) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut attempt = 1;
    loop {
        let e = match f(attempt) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(&delay) = delays.get(attempt - 1) else {
            return Err(e.context(format!("gave up after {attempt} attempts")));
        };
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if halt() {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
        }
        attempt += 1;
    }
}

/// Watches for key groups nobody processes: their newest claim names another session that has
/// not decided a checkpoint for the *staleness* limit (sessions decide every checkpoint
/// interval, idle or not). That happens when the coordinator hands a dead member's partitions to
/// it again, or starts a generation some members never hear of (both seen with tansu 0.6.0). The
/// watchdog then asks this process to leave and rejoin the group, at most once per two limits:
/// a new member forces a new generation, and the coordinator drops members that stopped
/// heartbeating. It never changes ownership itself; Kafka's group protocol does. Every two
/// limits the same thread deletes what ended sessions left behind ([`gc::collect`]).
///
/// The limit is the consumer's `session.timeout.ms` (how long the group itself waits for a
/// silent member), but at least three checkpoint intervals, so one slow checkpoint is not taken
/// for death. A false alarm costs one rebalance, never correctness: ownership still moves only
/// through claims.
struct Watchdog {
    stop: Arc<AtomicBool>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    const EVERY: Duration = Duration::from_secs(5);

    fn stale_ms(session_timeout_ms: i64, checkpoint_interval_ms: u64) -> i64 {
        session_timeout_ms.max(checkpoint_interval_ms.saturating_mul(3).min(i64::MAX as u64) as i64)
    }

    fn spawn(t: &StreamSpec, g: &GroupSetup, current: Arc<std::sync::atomic::AtomicU64>) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let (store, op) = (g.store.clone(), t.config.state.operator_id.clone());
        let (rejoin, groups, stale) = {
            let input = g.input.lock().unwrap_or_else(|p| p.into_inner());
            let groups: BTreeSet<u32> = (0..input.partition_count() as u32).map(|p| p % t.key_groups).collect();
            (input.rejoin.clone(), groups, Self::stale_ms(input.session_timeout_ms(), g.engine.state_management.checkpoint_interval_ms))
        };
        let every = Self::EVERY.min(Duration::from_millis(stale as u64 / 2));
        let name = t.config.name.clone();
        let s2 = stop.clone();
        let join = std::thread::Builder::new()
            .name(format!("{name}-group-watchdog"))
            .spawn(move || {
                let started = crate::util::time::now_ms();
                let (mut last_nudge, mut last_gc) = (0i64, started);
                while !s2.load(Relaxed) {
                    std::thread::sleep(every);
                    let now = crate::util::time::now_ms();
                    if now - last_gc >= stale.saturating_mul(2) {
                        last_gc = now;
                        let keep = BTreeSet::from([current.load(Relaxed)]);
                        match crate::checkpoint::block_on(gc::collect(&*store, &op, &keep)) {
                            Ok(c) if c.objects > 0 => tracing::info!(stream = %name, sessions = ?c.sessions, objects = c.objects, "group gc: deleted what ended sessions left behind"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(stream = %name, "group gc: {e:#}"),
                        }
                    }
                    if now - started < stale || now - last_nudge < stale.saturating_mul(2) {
                        continue;
                    }
                    let own = current.load(Relaxed);
                    match crate::checkpoint::block_on(orphans(&*store, &op, &groups, own, now, stale)) {
                        Ok(o) if !o.is_empty() => {
                            tracing::warn!(stream = %name, key_groups = ?o, stale_ms = stale, "key groups are owned by sessions that stopped checkpointing; leaving and rejoining the consumer group to make it reassign them");
                            rejoin.store(true, std::sync::atomic::Ordering::SeqCst);
                            last_nudge = now;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(stream = %name, "group watchdog: {e:#}"),
                    }
                }
            })
            .ok();
        Watchdog { stop, join }
    }

    fn stop(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The key groups whose newest claim names a session (not `own`) without a decision for
/// `stale_ms`, or that nobody claimed.
async fn orphans(store: &dyn ObjectStore, op: &str, groups: &BTreeSet<u32>, own: u64, now: i64, stale_ms: i64) -> anyhow::Result<Vec<u32>> {
    let mut out = Vec::new();
    for &k in groups {
        let claims = store.list(&crate::layout::claims_prefix(op, k)).await?;
        let Some(newest) = claims.last() else {
            out.push(k);
            continue;
        };
        let Some(bytes) = store.get(&newest.key).await? else { continue };
        let session = claims::Claim::decode(&bytes, &newest.key, &store.describe())?.session;
        if session == own {
            continue;
        }
        let latest = store.list(&crate::layout::latest(&claims::session_scope(op, session))).await?;
        let last_sign = latest.first().map_or(newest.modified_ms, |m| m.modified_ms.max(newest.modified_ms));
        if now - last_sign > stale_ms {
            out.push(k);
        }
    }
    Ok(out)
}

/// The main output when it is an exactly-once kafka output (in group mode: through the outbox,
/// whose producer the sessions share and whose records move with the key groups).
fn outbox_output(cfg: &StreamConfig) -> Option<&crate::connectors::kafka::KafkaOutputConfig> {
    cfg.output.get::<crate::connectors::kafka::KafkaOutputConfig>().filter(|k| k.exactly_once)
}

/// Claims a generation, takes over the assignment's key groups and opens the session.
fn start_session(t: &StreamSpec, g: &GroupSetup, assignment: &[(String, i32)]) -> anyhow::Result<Session> {
    let cfg = &t.config;
    let op = &cfg.state.operator_id;
    let store = g.store.clone();
    let generation = crate::checkpoint::block_on(crate::checkpoint::recovery::claim_generation(&*store, op))?;
    let scope = claims::session_scope(op, generation);
    let groups: BTreeSet<u32> = assignment.iter().map(|(_, p)| *p as u32 % t.key_groups).collect();
    let took = crate::checkpoint::block_on(claims::take_over(store.clone(), op, generation, &groups, t.key_groups, &t.tiers.describe(), outbox_output(cfg)))?;
    let restored_from: BTreeSet<&str> = took.heads.values().flatten().map(|h| h.scope.as_str()).collect();
    tracing::info!(
        stream = %cfg.name,
        generation,
        key_groups = ?groups,
        entries = took.entries.len(),
        restore_ms = took.restore_ms,
        leftovers = took.leftovers,
        from = ?restored_from,
        position = %took.position,
        "group session: key groups taken over"
    );
    g.input.lock().unwrap_or_else(|p| p.into_inner()).begin_session(assignment, &took.position)?;
    let mut settings = crate::engine::checkpoint_settings(&g.engine, cfg, &t.tiers);
    settings.scope = scope.clone();
    settings.lazy_restore = false;
    let at = crate::engine::SinkPlace { store: &store, scope: &scope, generation, key_groups: t.key_groups, producer: g.producer.as_ref() };
    let sinks = crate::engine::Sinks::checkpointed(&g.engine, cfg, &at, None)?;
    settings.committers = sinks.committers();
    // The fenced sessions' decided but possibly uncommitted output, and what they staged past it.
    let after_decision: crate::checkpoint::Committers = crate::engine::configured_sinks(cfg)
        .into_iter()
        .filter(|(_, o)| o.caps().commits_after_decision)
        .filter_map(|(id, _)| settings.committers.get(&id).map(|c| (id, c.clone())))
        .collect();
    settle::settle(&*store, &took, &after_decision).map_err(|e| anyhow::anyhow!("stream {}: {e:#}", cfg.name))?;
    let recovered = crate::checkpoint::recovery::Recovered {
        generation,
        manifest: None,
        next_epoch: 1,
        last_slot: 0,
        clock_ms: took.clock_ms,
        entries: took.entries,
        restore_ms: took.restore_ms,
    };
    Ok(Session {
        input: Box::new(SessionInput(g.input.clone())),
        sinks,
        checkpoint: Some(CheckpointSetup { store, settings, recovered, metrics: Default::default(), hybrid: None, carry_restored: true }),
    })
}
