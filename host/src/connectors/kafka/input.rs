//! `kafka` input: reads the partitions of the configured topics with one rdkafka consumer.
//!
//! Contract: with `assignment: all` partitions are assigned explicitly (this process reads every
//! partition). With `assignment: group` the consumer subscribes and the group assigns (eager
//! `range` protocol); rebalance events are only recorded here, and the group driver
//! (`crate::engine::group`) reacts between sessions: a revoke ends the current session's input (the stream
//! drains and takes its last checkpoint before the partitions are released with `end_session`),
//! an assignment starts the next session at the positions the checkpoints recorded
//! (`begin_session`). librdkafka keeps the group protocol waiting until the (un)assign call. The stream
//! routes each record to its partition's key group. `position` is the next
//! offset of every partition, `{"kafka": {topic: {partition: offset}}}`, and `seek` resumes from
//! it: correctness never depends on Kafka's committed offsets. Partitions without a recorded
//! position start from `start_from`, resolved to a concrete offset at assignment so that every
//! checkpoint names one. After each decided checkpoint the decided positions are committed to the
//! consumer group (metadata `arkflow epoch=N`, at most once a second) for monitoring and lag tools. Batches wait at most
//! `max_wait_ms` after their first record to fill up to `batch_size` records / `max_batch_bytes`,
//! so records arriving one at a time still form large batches. With `stop_at_end`, the input ends
//! once every partition reached the high watermark it had when the input opened.

use super::consumer_ctx::{GroupEvent, StatsContext};
use super::stall::Clock;
use super::KafkaMetrics;
use super::{KafkaInputConfig as Config, StartFrom};
use crate::connectors::input::Input;
use crate::record::Record;
use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

struct Part {
    topic: String,
    partition: i32,
    /// Next offset to read; None until resolved at assignment.
    next: Option<i64>,
    /// `stop_at_end`: the high watermark at open.
    end: Option<i64>,
    paused: bool,
}

/// Group mode's default `session.timeout.ms`: the broker drops a member that has not heartbeated
/// for this long (a SIGKILLed process's partitions move after it). Below librdkafka's 45 s so a
/// dead process's partitions move sooner; not lower, because a busy broker answers heartbeats
/// late (tansu without its header index, docs/SCALE_OUT.md, took over 10 s).
pub const GROUP_SESSION_TIMEOUT_MS: i64 = 30_000;

pub struct KafkaInput {
    cfg: Config,
    consumer: BaseConsumer<StatsContext>,
    parts: Vec<Part>,
    index: BTreeMap<(String, i32), usize>,
    assigned: bool,
    metrics: Arc<KafkaMetrics>,
    warned_at: Option<Instant>,
    rate: Option<crate::connectors::input::RateLimiter>,
    last_commit: Option<Instant>,
    /// Group mode: the partitions (indexes into `parts`) of the current session.
    owned: Option<std::collections::BTreeSet<usize>>,
    /// Group mode: set (by the group driver's watchdog) to leave and join the group again.
    pub(crate) rejoin: Arc<std::sync::atomic::AtomicBool>,
    /// The stall guard's progress clocks (`stall.rs`).
    clock: Clock,
}

impl KafkaInput {
    /// Group mode: the consumer's session timeout (the user's `session.timeout.ms`, else
    /// [`GROUP_SESSION_TIMEOUT_MS`]).
    pub fn session_timeout_ms(&self) -> i64 {
        self.cfg.options.get("session.timeout.ms").and_then(|v| v.parse().ok()).unwrap_or(GROUP_SESSION_TIMEOUT_MS)
    }

    /// Connects, checks that every topic exists and lists its partitions. `group` is the consumer
    /// group used when the config names none.
    pub fn open(cfg: Config, default_group: &str, metrics: Arc<KafkaMetrics>) -> anyhow::Result<Self> {
        let opened = Instant::now();
        let brokers = cfg.brokers.join(",");
        let mut cc = super::client_config(&cfg.brokers, &cfg.client_id, &Default::default());
        cc.set("group.id", cfg.consumer_group.as_deref().unwrap_or(default_group))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "5000")
            .set("auto.offset.reset", cfg.start_from.name())
            .set("isolation.level", cfg.isolation_level.name())
            .set("fetch.wait.max.ms", cfg.max_wait_ms.clamp(1, 500).to_string())
            .set("queued.min.messages", (cfg.batch_size * 16).max(100_000).to_string())
            // A full local queue would otherwise pause fetching for a whole second.
            .set("fetch.queue.backoff.ms", "10");
        let group = cfg.assignment == super::Assignment::Group;
        if group {
            // Eager `range`: every rebalance revokes everything first (cooperative-sticky was seen
            // assigning one partition to two members on some brokers), and co-partitioned topics
            // keep equal partition numbers on one member, so a key group has one owner.
            cc.set("partition.assignment.strategy", "range")
                .set("session.timeout.ms", GROUP_SESSION_TIMEOUT_MS.to_string())
                .set("heartbeat.interval.ms", "3000");
        }
        // The user's options come last: they may override any of the above.
        for (k, v) in &cfg.options {
            cc.set(k, v);
        }
        let ctx = StatsContext::new(metrics.clone(), group);
        let consumer: BaseConsumer<StatsContext> = cc.create_with_context(ctx).with_context(|| format!("kafka input: creating a consumer for {brokers}"))?;
        let mut parts = Vec::new();
        for topic in &cfg.topics {
            let md = consumer
                .fetch_metadata(Some(topic), METADATA_TIMEOUT)
                .with_context(|| format!("kafka input: cannot read metadata of topic `{topic}` from {brokers}"))?;
            let t = md.topics().iter().find(|t| t.name() == topic);
            let Some(t) = t.filter(|t| t.error().is_none() && !t.partitions().is_empty()) else {
                bail!("kafka input: topic `{topic}` does not exist on {brokers} (create it first; inputs never create topics)");
            };
            let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ps.sort_unstable();
            for p in ps {
                let end = if cfg.stop_at_end {
                    let (_, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT).with_context(|| format!("kafka input: end offset of {topic}/{p}"))?;
                    Some(high)
                } else {
                    None
                };
                parts.push(Part { topic: topic.clone(), partition: p, next: None, end, paused: false });
            }
        }
        tracing::debug!(ms = opened.elapsed().as_millis() as u64, partitions = parts.len(), "kafka input: opened");
        let index = parts.iter().enumerate().map(|(i, p)| ((p.topic.clone(), p.partition), i)).collect();
        let rate = cfg.rate_per_sec.map(crate::connectors::input::RateLimiter::new);
        let owned = group.then(Default::default);
        if group {
            let counts: std::collections::BTreeSet<usize> = cfg.topics.iter().map(|t| parts.iter().filter(|p| &p.topic == t).count()).collect();
            if counts.len() > 1 {
                bail!("kafka input: assignment: group needs topics with equal partition counts (co-partitioned), so that one process owns each key group; {:?} differ", cfg.topics);
            }
            let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).with_context(|| format!("kafka input: subscribing to {topics:?}"))?;
        }
        let clock = Clock::new(parts.len(), Instant::now());
        Ok(KafkaInput {
            cfg,
            consumer,
            parts,
            index,
            assigned: false,
            metrics,
            warned_at: None,
            rate,
            last_commit: None,
            owned,
            rejoin: Default::default(),
            clock,
        })
    }

    /// Partitions per topic (equal for every topic in group mode).
    pub(crate) fn partition_count(&self) -> usize {
        self.parts.iter().filter(|p| p.topic == self.parts[0].topic).count()
    }

    fn owns(&self, i: usize) -> bool {
        self.owned.as_ref().is_none_or(|o| o.contains(&i))
    }

    /// Group mode, between sessions: polls the group until it assigns partitions to this member
    /// (None when `stop` is set first). A revoke seen here has nothing to drain: released at once.
    pub(crate) fn wait_assignment(&mut self, stop: &dyn Fn() -> bool) -> Option<Vec<(String, i32)>> {
        while !stop() {
            if let Err(e) = self.rejoin_if_asked() {
                tracing::warn!("{e:#}");
            }
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                tracing::debug!(topic = m.topic(), partition = m.partition(), "kafka input: record outside a session ignored");
            }
            match self.consumer.context().next_event() {
                Some(GroupEvent::Assign(list)) => {
                    // Take the assignment at once, paused: librdkafka heartbeats again only after
                    // the assign call, and taking the key groups over may take a while. The
                    // session assigns again at the checkpointed positions. From the beginning:
                    // a record fetched before the pause is then at or below the position, and
                    // `next_batch` skips what is below it (from the end, a stale record above the
                    // position would hide the records between them).
                    let mut tpl = TopicPartitionList::new();
                    for (t, p) in &list {
                        let _ = tpl.add_partition_offset(t, *p, Offset::Beginning);
                    }
                    if let Err(e) = self.consumer.assign(&tpl).and_then(|()| self.consumer.pause(&tpl)) {
                        tracing::warn!("kafka input: taking the assignment: {e}");
                    }
                    return Some(list);
                }
                Some(GroupEvent::Revoke(_)) => {
                    let _ = self.consumer.unassign();
                }
                None => {}
            }
        }
        None
    }

    /// Group mode: starts reading `partitions` from `position` (partitions it does not name start
    /// from `start_from`).
    pub(crate) fn begin_session(&mut self, partitions: &[(String, i32)], position: &serde_json::Value) -> anyhow::Result<()> {
        let mut owned = std::collections::BTreeSet::new();
        for (t, p) in partitions {
            match self.index.get(&(t.clone(), *p)) {
                Some(&i) => {
                    owned.insert(i);
                }
                None => bail!("kafka input: the group assigned {t}/{p}, which is not among the topics' partitions at start"),
            }
        }
        for part in &mut self.parts {
            part.next = None;
            part.paused = false;
        }
        self.owned = Some(owned);
        self.seek(position)?;
        self.assigned = false;
        Ok(())
    }

    /// Group mode: a revoke is waiting (or a rejoin was asked for); the session's input has ended.
    pub(crate) fn revoked(&self) -> bool {
        self.consumer.context().revoke_pending() || self.rejoin.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Group mode, between sessions: when a rejoin was asked for, leaves the group and joins it
    /// again as a new member, which makes the coordinator start a new generation that every
    /// member must join.
    pub(crate) fn rejoin_if_asked(&mut self) -> anyhow::Result<()> {
        if !self.rejoin.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.consumer.unsubscribe();
        let topics: Vec<&str> = self.cfg.topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics).with_context(|| format!("kafka input: subscribing to {topics:?} again"))?;
        Ok(())
    }

    /// Group mode: releases the session's partitions (after its last checkpoint) and takes the
    /// pending revoke, so the group can go on with the rebalance.
    pub(crate) fn end_session(&mut self) {
        let _ = self.consumer.unassign();
        if self.revoked() {
            let _ = self.consumer.context().next_event();
        }
        self.owned = Some(Default::default());
        self.assigned = false;
    }

    fn done(&self, p: &Part) -> bool {
        matches!((p.next, p.end), (Some(n), Some(e)) if n >= e)
    }

    /// `stop_at_end` and every partition this process reads is at its end.
    fn all_done(&self) -> bool {
        self.cfg.stop_at_end && self.parts.iter().enumerate().all(|(i, p)| !self.owns(i) || self.done(p))
    }

    /// Resolves start offsets of partitions without a position, then assigns every partition.
    fn assign(&mut self) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for i in 0..self.parts.len() {
            if !self.owns(i) {
                continue;
            }
            if self.parts[i].next.is_none() {
                let (topic, p) = (self.parts[i].topic.clone(), self.parts[i].partition);
                let (low, high) =
                    self.consumer.fetch_watermarks(&topic, p, METADATA_TIMEOUT).with_context(|| format!("kafka input: offsets of {topic}/{p}"))?;
                self.parts[i].next = Some(match self.cfg.start_from {
                    StartFrom::Earliest => low,
                    StartFrom::Latest => high,
                });
            }
            let part = &self.parts[i];
            if self.done(part) {
                continue;
            }
            tpl.add_partition_offset(&part.topic, part.partition, Offset::Offset(part.next.unwrap_or(0)))?;
        }
        self.consumer.assign(&tpl).context("kafka input: assigning partitions")?;
        if self.owned.is_some() {
            self.consumer.resume(&tpl).context("kafka input: resuming partitions")?;
        }
        self.assigned = true;
        self.clock.restart(Instant::now());
        Ok(())
    }

    /// The stall guard (`stall.rs`): partitions silent for a whole window while the broker holds
    /// records past their position, and librdkafka holds none of them, are logged with what
    /// librdkafka said about them, and every partition is assigned again at its position.
    fn check_stalls(&mut self, now: Instant) {
        if !self.assigned || !self.clock.check_due(now) {
            return;
        }
        let watched: Vec<bool> = (0..self.parts.len()).map(|i| self.owns(i) && !self.parts[i].paused && !self.done(&self.parts[i])).collect();
        for i in self.clock.candidates(now, |i| watched[i]) {
            let (p, ctx) = (&self.parts[i], self.consumer.context());
            let (Some(next), stats) = (p.next, ctx.partition_stats(&p.topic, p.partition)) else { continue };
            if stats.as_ref().is_some_and(|s| s.fetchq_cnt > 0) {
                continue; // fetched, waiting in librdkafka's queue behind other partitions
            }
            let Ok((_, high)) = self.consumer.fetch_watermarks(&p.topic, p.partition, Duration::from_secs(2)) else { continue };
            if high > next {
                tracing::warn!(
                    topic = %p.topic, partition = p.partition, next, high, librdkafka = ?stats, silent_s = super::stall::STALL_AFTER.as_secs(),
                    "kafka input: partition delivers nothing although the broker holds records past its position; assigning the partitions again"
                );
                self.assigned = false;
            }
        }
    }

    fn warn(&mut self, e: &rdkafka::error::KafkaError) {
        if self.warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(brokers = %self.cfg.brokers.join(","), "kafka input: {e} (retrying)");
            self.warned_at = Some(Instant::now());
        }
    }

    fn positions(&self) -> BTreeMap<&str, BTreeMap<String, i64>> {
        let mut out: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
        for (i, p) in self.parts.iter().enumerate() {
            if !self.owns(i) {
                continue;
            }
            if let Some(n) = p.next {
                out.entry(p.topic.as_str()).or_default().insert(p.partition.to_string(), n);
            }
        }
        out
    }
}

/// The record of `msg` if the input takes it: a partition it owns, at or past the partition's
/// position, before the end of a bounded read (a partition reaching its end is paused).
/// Advances the partition's position. (The fields are passed apart: `msg` borrows the consumer.)
fn accept(
    index: &BTreeMap<(String, i32), usize>,
    parts: &mut [Part],
    owned: Option<&std::collections::BTreeSet<usize>>,
    consumer: &BaseConsumer<StatsContext>,
    msg: &rdkafka::message::BorrowedMessage<'_>,
) -> Option<(usize, Record)> {
    let &i = index.get(&(msg.topic().to_string(), msg.partition()))?;
    if owned.is_some_and(|o| !o.contains(&i)) {
        return None;
    }
    let part = &mut parts[i];
    // A record below the position was fetched before a re-assignment: skip it.
    if part.next.is_some_and(|next| msg.offset() < next) {
        return None;
    }
    if part.end.is_some_and(|e| msg.offset() >= e) {
        // Past the end of a bounded read: leave it for a later run.
        if !part.paused {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&part.topic, part.partition);
            let _ = consumer.pause(&tpl);
            part.paused = true;
        }
        return None;
    }
    part.next = Some(msg.offset() + 1);
    let headers = msg.headers().map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect()).unwrap_or_default();
    let record = Record {
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        headers,
        timestamp_ms: msg.timestamp().to_millis().unwrap_or_else(crate::util::time::now_ms),
        partition: msg.partition() as u32,
        offset: msg.offset() as u64,
    };
    Some((i, record))
}

impl Drop for KafkaInput {
    /// Closing leaves the group; its revoke must not wait for a session to drain.
    fn drop(&mut self) {
        self.consumer.context().closing.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Input for KafkaInput {
    fn at_end(&self) -> bool {
        !(self.owned.is_some() && self.revoked())
    }

    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        if !self.assigned {
            let t = Instant::now();
            self.assign()?;
            tracing::debug!(ms = t.elapsed().as_millis() as u64, partitions = self.parts.len(), "kafka input: partitions assigned");
        }
        if self.all_done() {
            return Ok(None);
        }
        if self.owned.is_some() && self.revoked() {
            return Ok(None); // the session ends here; the group driver drains it
        }
        self.clock.reading(Instant::now());
        let mut limit = self.cfg.batch_size;
        if let Some(rate) = &mut self.rate {
            limit = rate.allow(limit as u64) as usize;
            if limit == 0 {
                return Ok(Some(Vec::new()));
            }
        }
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut deadline: Option<Instant> = None;
        let wait = Duration::from_millis(self.cfg.max_wait_ms);
        let idle_until = Instant::now() + Duration::from_millis(100);
        while batch.len() < limit && bytes < self.cfg.max_batch_bytes {
            let now = Instant::now();
            let until = deadline.unwrap_or(idle_until);
            if now >= until {
                break;
            }
            let msg = match self.consumer.poll(until - now) {
                None => continue,
                Some(Err(e)) => {
                    self.warn(&e);
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let Some((i, r)) = accept(&self.index, &mut self.parts, self.owned.as_ref(), &self.consumer, &msg) else { continue };
            self.clock.progressed(i, now);
            bytes += r.size();
            batch.push(r);
            deadline.get_or_insert(now + wait);
            if self.all_done() {
                break;
            }
            if self.owned.is_some() && self.revoked() {
                break;
            }
        }
        self.check_stalls(Instant::now());
        if !batch.is_empty() {
            for p in &self.parts {
                if let Some(n) = p.next {
                    self.metrics.set_position(&p.topic, p.partition, n);
                }
            }
        }
        Ok(Some(batch))
    }

    /// `{"kafka": {topic: {partition: next offset}}}`, read back by `position_entries` (which
    /// group claims and offset commits read too).
    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "kafka": self.positions() })
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let Some(entries) = super::position_entries(position) else {
            bail!("kafka input: the checkpoint's input position {position} is not a Kafka position (was the input type changed?)");
        };
        for entry in entries {
            let (topic, p, off) = entry.map_err(|e| anyhow::anyhow!("kafka input: bad position {e}"))?;
            match self.index.get(&(topic.clone(), p)) {
                Some(&i) => self.parts[i].next = Some(off),
                None => bail!("kafka input: the checkpoint has a position for {topic}/{p}, which this input does not read (topics or partitions changed?)"),
            }
        }
        Ok(())
    }

    fn decided(&mut self, epoch: u64, position: &serde_json::Value) {
        // Group mode: no commits. They are for monitoring only, and a commit the coordinator is
        // slow to answer holds back the heartbeats queued behind it (seen on tansu), which costs
        // the membership.
        if self.owned.is_some() {
            return;
        }
        // Group offsets are for monitoring: once a second is plenty and spares the broker.
        if self.last_commit.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.last_commit = Some(Instant::now());
        let Ok(tpl) = super::epoch_offsets(position, epoch) else { return };
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                tracing::debug!("kafka input: committing offsets of epoch {epoch} to the group: {e}");
            }
        }
    }
}
