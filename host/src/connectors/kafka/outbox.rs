//! Exactly-once `kafka` output without Kafka transactions: "the state store decides, then Kafka
//! publishes" (`exactly_once_mode: outbox`). Works on any broker, tansu included, and with
//! `assignment: group`.
//!
//! It is the two-phase commit protocol of `checkpoint::commit`, per generation `G` writing under
//! `scope`:
//! 1. Records of epoch `e` are kept in memory. Phase one (`pre_commit`, at `e`'s aligned barrier)
//!    writes them to the store as `{scope}/outbox/{e}-g{G}` (create-only) — before the decision,
//!    so durability comes before visibility — and returns `{outbox, generation, messages}`.
//! 2. Phase two ([`Committer::commit`] on the [`Outbox`], after the decision) publishes the epoch,
//!    each message with header `arkflow-outbox: {scope}/{epoch}/{index}`; after every delivery is
//!    acknowledged, `{scope}/published/{e}` records the output partitions' offsets reached (the
//!    *frontier*), and the outbox object is deleted. A failed publish is retried as a replay
//!    (below); one that can never succeed (a record over the broker's size limit) stops the
//!    stream. No epoch is ever skipped: the next decision waits for this commit.
//! 3. A replay ([`publish_leftovers`]) — a retry, the next generation of the scope replaying the
//!    last decision's commit (single process), or the new owner of key groups (group mode) —
//!    publishes what the last decided epoch's
//!    generation decided but had not published: outbox objects of epochs after the last
//!    `published` marker up to the decided epoch, of the deciding generation only (a fenced
//!    zombie's outbox is never published). It first reads the output partitions back from the
//!    marker's frontier and skips every message whose header is already there, so a crash in the
//!    middle of publishing neither loses nor duplicates. Without any marker it records the
//!    baseline itself before publishing, so its own crash is read back from there as well. In group mode each owner publishes only
//!    the messages of its key groups (`group` = input partition % key groups), so owners never
//!    publish the same message.
//!
//! Limit (documented in docs/SCALE_OUT.md): a process that lost its partitions but still runs
//! (paused, not dead) could publish its last decided epoch while the new owner reads back; live
//! processes release partitions only after publishing, so this needs a zombie.

pub use super::outbox_codec::{decode, encode, OutMessage};
use super::output::{producer_config, route, send_message};
use super::KafkaOutputConfig as Config;
use crate::checkpoint::{sealed, CommitError, Committer};
use crate::connectors::output::Output;
use crate::record::Record;
use crate::state::backend::{ObjectStore, PutOutcome};
use anyhow::{bail, Context};
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HEADER: &str = "arkflow-outbox";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Output partition -> next offset: below it, nothing of a later epoch exists.
pub type Frontier = BTreeMap<String, BTreeMap<i32, i64>>;

/// Tracks failed deliveries and the highest offset delivered per partition.
#[derive(Default)]
pub struct OutboxCtx {
    failed: Mutex<Option<String>>,
    reached: Mutex<Frontier>,
}

impl ClientContext for OutboxCtx {}
impl ProducerContext for OutboxCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                let mut f = self.reached.lock().unwrap_or_else(|p| p.into_inner());
                let e = f.entry(m.topic().to_string()).or_default().entry(m.partition()).or_insert(0);
                *e = (*e).max(m.offset() + 1);
            }
            Err((e, _)) => {
                self.failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn producer(cfg: &Config) -> anyhow::Result<ThreadedProducer<OutboxCtx>> {
    producer_config(cfg).create_with_context(OutboxCtx::default()).with_context(|| format!("kafka output: creating a producer for {}", cfg.brokers.join(",")))
}

/// Sends `msgs` (with their outbox ids) and waits until every one is acknowledged.
fn publish(p: &ThreadedProducer<OutboxCtx>, msgs: &[(String, &OutMessage)]) -> anyhow::Result<()> {
    for (id, m) in msgs {
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len() + 1);
        for (k, v) in &m.headers {
            headers = headers.insert(Header { key: k, value: Some(v) });
        }
        headers = headers.insert(Header { key: HEADER, value: Some(id.as_bytes()) });
        send_message(p, &m.topic, m.key.as_deref(), m.value.as_deref(), headers, m.timestamp_ms)
            .with_context(|| format!("kafka output: publishing to topic `{}`", m.topic))?;
    }
    p.flush(Duration::from_secs(120)).context("kafka output: flushing published records")?;
    if let Some(e) = p.context().failed.lock().unwrap_or_else(|x| x.into_inner()).take() {
        bail!("kafka output: a published record was not delivered: {e}");
    }
    Ok(())
}

fn outbox_key(scope: &str, epoch: u64, generation: u64) -> String {
    crate::layout::outbox(scope, epoch, generation)
}

fn published_key(scope: &str, epoch: u64) -> String {
    crate::layout::published(scope, epoch)
}

/// The high watermark of every partition of `topics`.
fn watermarks(client: &rdkafka::client::Client<impl ClientContext>, topics: &BTreeSet<String>) -> anyhow::Result<Frontier> {
    let mut f = Frontier::new();
    for t in topics {
        let md = client.fetch_metadata(Some(t), TIMEOUT).with_context(|| format!("kafka output: metadata of `{t}`"))?;
        for tm in md.topics().iter().filter(|x| x.name() == t) {
            for p in tm.partitions() {
                let (_, high) = client.fetch_watermarks(t, p.id(), TIMEOUT).with_context(|| format!("kafka output: end offset of {t}/{}", p.id()))?;
                f.entry(t.clone()).or_default().insert(p.id(), high);
            }
        }
    }
    Ok(f)
}

/// The outbox of one generation: the output thread prepares epochs into it, the coordinator
/// publishes them after each decision.
pub struct Outbox {
    cfg: Config,
    producer: Arc<ThreadedProducer<OutboxCtx>>,
    store: Arc<dyn ObjectStore>,
    scope: String,
    generation: u64,
    /// Prepared epochs waiting for their decision.
    prepared: Mutex<BTreeMap<u64, Vec<OutMessage>>>,
    /// Offsets reached so far (the frontier recorded with each published marker).
    frontier: Mutex<Frontier>,
    /// The newest published marker written by this outbox (older ones are deleted).
    last_marker: Mutex<Option<u64>>,
}

impl Outbox {
    /// The outbox of `generation` under `scope` (call after [`publish_leftovers`]). One producer
    /// serves every generation of a process (`shared_producer`).
    pub fn open(cfg: Config, producer: Arc<ThreadedProducer<OutboxCtx>>, store: Arc<dyn ObjectStore>, scope: &str, generation: u64) -> Arc<Self> {
        Arc::new(Outbox {
            cfg,
            producer,
            store,
            scope: scope.to_string(),
            generation,
            prepared: Mutex::default(),
            frontier: Mutex::default(),
            last_marker: Mutex::default(),
        })
    }

    /// The producer outboxes publish with; checks that the topic exists.
    pub fn shared_producer(cfg: &Config) -> anyhow::Result<Arc<ThreadedProducer<OutboxCtx>>> {
        let p = producer(cfg)?;
        let md = p.client().fetch_metadata(Some(&cfg.topic), TIMEOUT).with_context(|| format!("kafka output: metadata of `{}`", cfg.topic))?;
        if !md.topics().iter().any(|t| t.name() == cfg.topic && t.error().is_none() && !t.partitions().is_empty()) {
            bail!("kafka output: topic `{}` does not exist on {} (create it first)", cfg.topic, cfg.brokers.join(","));
        }
        Ok(Arc::new(p))
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Before the first publication of this generation: records where the output partitions end
    /// now (`published/0`), so reading back after a crash starts there. A scope without any
    /// marker has published nothing.
    fn baseline(&self, msgs: &[(u64, Vec<OutMessage>)]) -> anyhow::Result<()> {
        if !Self::lock(&self.frontier).is_empty() {
            return Ok(());
        }
        let mut topics: BTreeSet<String> = msgs.iter().flat_map(|(_, m)| m.iter().map(|m| m.topic.clone())).collect();
        topics.insert(self.cfg.topic.clone());
        let f = watermarks(self.producer.client(), &topics)?;
        let store = self.store.clone();
        let (marker, bytes) = (published_key(&self.scope, 0), Bytes::from(sealed::seal(&f)));
        crate::checkpoint::block_on(async move { store.put_if_absent(&marker, bytes).await })?;
        *Self::lock(&self.frontier) = f;
        Ok(())
    }
}

/// The blob of an outbox epoch in the manifest.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Blob {
    outbox: String,
    generation: u64,
    messages: usize,
}

/// A publish error that can never succeed by trying again.
fn permanent(e: &anyhow::Error) -> bool {
    let m = format!("{e:#}").to_ascii_lowercase();
    m.contains("too large") || m.contains("toolarge") || m.contains("msg_size") || m.contains("invalid topic")
}

impl Committer for Outbox {
    /// Publishes epoch `epoch` (see the module contract, step 2); on replay, through the read-back.
    fn commit(&self, epoch: u64, blob: &serde_json::Value, replay: bool) -> Result<(), CommitError> {
        let b: Blob = serde_json::from_value(blob.clone())
            .map_err(|e| CommitError::Fatal(format!("kafka output: the checkpoint's pre-commit is not an outbox epoch ({e})")))?;
        // A retry reads the store copy back: part of the epoch may already be out.
        let live = if replay { None } else { Self::lock(&self.prepared).remove(&epoch) };
        let r = match live {
            Some(msgs) => self.publish_live(epoch, &msgs),
            None => self.publish_replayed(epoch, &b),
        };
        r.map_err(|e| {
            let msg = format!("kafka output: publishing epoch {epoch} ({} records from {}): {e:#}", b.messages, b.outbox);
            if permanent(&e) {
                CommitError::Fatal(msg)
            } else {
                CommitError::Retry(msg)
            }
        })?;
        let store = self.store.clone();
        let (key, previous) = (b.outbox.clone(), Self::lock(&self.last_marker).replace(epoch).filter(|p| *p != epoch));
        let scope = self.scope.clone();
        crate::checkpoint::block_on(async move {
            let _ = store.delete(&key).await;
            if let Some(prev) = previous {
                let _ = store.delete(&published_key(&scope, prev)).await;
            }
        });
        Ok(())
    }
}

impl Outbox {
    /// The fast path: this generation prepared `msgs` and nothing of them was sent yet.
    fn publish_live(&self, epoch: u64, msgs: &[OutMessage]) -> anyhow::Result<()> {
        let ready = [(epoch, msgs.to_vec())];
        self.baseline(&ready)?;
        let ids: Vec<(String, &OutMessage)> = msgs.iter().enumerate().map(|(i, m)| (format!("{}/{epoch}/{i}", self.scope), m)).collect();
        publish(&self.producer, &ids)?;
        let mut f = Self::lock(&self.frontier);
        for (t, ps) in Self::lock(&self.producer.context().reached).iter() {
            for (p, off) in ps {
                let e = f.entry(t.clone()).or_default().entry(*p).or_insert(0);
                *e = (*e).max(*off);
            }
        }
        let marker = Bytes::from(sealed::seal(&*f));
        drop(f);
        let (store, key) = (self.store.clone(), published_key(&self.scope, epoch));
        crate::checkpoint::block_on(async move { store.put_if_absent(&key, marker).await })?;
        Ok(())
    }

    /// A retry or a recovery: publishes what of the epoch is not in the output yet.
    fn publish_replayed(&self, epoch: u64, b: &Blob) -> anyhow::Result<()> {
        let store = self.store.clone();
        let (scope, key) = (self.scope.clone(), b.outbox.clone());
        let (present, done) = crate::checkpoint::block_on(async {
            let present = store.get(&key).await?.is_some();
            let markers = store.list(&crate::layout::prefix(&scope, "published")).await?;
            anyhow::Ok((present, markers.iter().filter_map(|m| crate::checkpoint::parse_tail(&m.key)).any(|m| m >= epoch)))
        })?;
        if done {
            return Ok(());
        }
        if !present {
            bail!("outbox object {key} is missing from {} and epoch {epoch} was never marked published", store.describe());
        }
        let l = Leftovers { scope: &self.scope, generation: b.generation, upto: epoch, groups: None, mark: true };
        let (_, reached) = crate::checkpoint::block_on(publish_leftovers(&self.cfg, store, l))?;
        if !reached.is_empty() {
            *Self::lock(&self.frontier) = reached;
        }
        Ok(())
    }
}

/// The `kafka` output in outbox mode.
pub struct OutboxOutput {
    outbox: Arc<Outbox>,
    key_groups: u32,
    /// Records per epoch: a worker's records of epoch `e + 1` can arrive before another worker's
    /// barrier `e`, and must not join `e`'s outbox.
    pending: BTreeMap<u64, Vec<OutMessage>>,
}

impl OutboxOutput {
    pub fn new(outbox: Arc<Outbox>, key_groups: u32) -> Self {
        OutboxOutput { outbox, key_groups: key_groups.max(1), pending: BTreeMap::new() }
    }

    /// The output of `generation` deciding in `scope`: opens that scope's outbox, which is also
    /// the output's committer (each decision publishes its epochs).
    pub fn attach(
        cfg: &Config,
        producer: Arc<ThreadedProducer<OutboxCtx>>,
        store: Arc<dyn ObjectStore>,
        scope: &str,
        generation: u64,
        key_groups: u32,
    ) -> Self {
        Self::new(Outbox::open(cfg.clone(), producer, store, scope, generation), key_groups)
    }
}

impl Output for OutboxOutput {
    fn write_batch(&mut self, _records: &[Record]) -> anyhow::Result<()> {
        bail!("kafka output: exactly-once records must carry their epoch")
    }

    fn write_epoch(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        let pending = self.pending.entry(epoch).or_default();
        for r in records {
            let (topic, key) = route(&self.outbox.cfg, r);
            // A record read from a topic another outbox wrote carries that outbox's id: only
            // this outbox's id may be on the message it publishes.
            let mut headers: Vec<(String, Vec<u8>)> = r.headers.iter().filter(|(k, _)| k != HEADER).cloned().collect();
            headers.extend(self.outbox.cfg.headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())));
            pending.push(OutMessage {
                topic,
                key: key.or_else(|| r.key.clone()),
                value: r.value.clone(),
                headers,
                timestamp_ms: r.timestamp_ms,
                group: r.partition % self.key_groups,
            });
        }
        Ok(())
    }

    /// Writes the epoch's records to the store: the decision may only come after this.
    fn pre_commit(&mut self, epoch: u64) -> anyhow::Result<Option<serde_json::Value>> {
        let later = self.pending.split_off(&(epoch + 1));
        let msgs: Vec<OutMessage> = std::mem::replace(&mut self.pending, later).into_values().flatten().collect();
        if msgs.is_empty() {
            return Ok(None);
        }
        let ob = &self.outbox;
        let key = outbox_key(&ob.scope, epoch, ob.generation);
        let bytes = Bytes::from(encode(&msgs));
        let store = ob.store.clone();
        let k2 = key.clone();
        let outcome =
            crate::checkpoint::block_on(async move { store.put_if_absent(&k2, bytes).await }).with_context(|| format!("kafka output: writing outbox {key}"))?;
        if outcome == PutOutcome::Exists {
            bail!("kafka output: outbox {key} already exists: another instance runs this generation");
        }
        let blob = serde_json::to_value(Blob { outbox: key, generation: ob.generation, messages: msgs.len() })?;
        Outbox::lock(&ob.prepared).insert(epoch, msgs);
        Ok(Some(blob))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(self.outbox.clone())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What a recovering owner publishes: the outbox of generation `generation` under `scope`, up
/// to its decided epoch `upto`, restricted to `groups` (None = every key group). With
/// `mark`, the epochs are marked published afterwards (the owner of the whole scope).
pub struct Leftovers<'a> {
    pub scope: &'a str,
    pub generation: u64,
    pub upto: u64,
    pub groups: Option<&'a BTreeSet<u32>>,
    pub mark: bool,
}

/// Publishes what a decided generation had not published (see the module contract); returns the
/// number of messages published now and the output's end offsets afterwards (empty when there
/// was nothing to do).
pub async fn publish_leftovers(cfg: &Config, store: Arc<dyn ObjectStore>, l: Leftovers<'_>) -> anyhow::Result<(usize, Frontier)> {
    let markers = store.list(&crate::layout::prefix(l.scope, "published")).await?;
    let last = markers.iter().filter_map(|m| crate::checkpoint::parse_tail(&m.key)).max();
    if last.is_some_and(|m| m >= l.upto) {
        return Ok((0, Frontier::new()));
    }
    let suffix = format!("-g{}", l.generation);
    let mut epochs: Vec<(u64, String)> = Vec::new();
    for m in store.list(&crate::layout::prefix(l.scope, "outbox")).await? {
        let Some(name) = m.key.rsplit('/').next() else { continue };
        let Some(e) = name.strip_suffix(&suffix).and_then(|e| e.parse::<u64>().ok()) else { continue };
        if e > last.unwrap_or(0) && e <= l.upto {
            epochs.push((e, m.key.clone()));
        }
    }
    if epochs.is_empty() {
        return Ok((0, Frontier::new()));
    }
    let mut todo: Vec<(String, OutMessage)> = Vec::new();
    for (e, key) in &epochs {
        let bytes = store.get(key).await?.ok_or_else(|| anyhow::anyhow!("outbox {key} vanished while publishing leftovers"))?;
        for (i, m) in decode(&bytes, key)?.into_iter().enumerate() {
            if l.groups.is_none_or(|g| g.contains(&m.group)) {
                todo.push((format!("{}/{e}/{i}", l.scope), m));
            }
        }
    }
    let mut topics: BTreeSet<String> = todo.iter().map(|(_, m)| m.topic.clone()).collect();
    topics.insert(cfg.topic.clone());
    let frontier: Frontier = match last {
        Some(m) => match store.get(&published_key(l.scope, m)).await? {
            Some(b) => sealed::open(&b, &format!("published marker {m} of {} in {}", l.scope, store.describe()))?,
            None => Frontier::new(),
        },
        // Nothing was published from this scope yet (every publisher records a baseline first,
        // this one too): record where the output ends now, so that if this publishing is cut
        // short, the next recovery reads back from here instead of publishing everything again.
        None => {
            let (c, t) = (cfg.clone(), topics.clone());
            let now = tokio::task::spawn_blocking(move || watermarks(producer(&c)?.client(), &t)).await??;
            let key = published_key(l.scope, 0);
            match store.put_if_absent(&key, Bytes::from(sealed::seal(&now))).await? {
                PutOutcome::Created => now,
                PutOutcome::Exists => {
                    let b = store.get(&key).await?.unwrap_or_default();
                    sealed::open(&b, &format!("published marker 0 of {} in {}", l.scope, store.describe()))?
                }
            }
        }
    };
    let cfg = cfg.clone();
    let prefix = format!("{}/", l.scope);
    let (n, reached) = tokio::task::spawn_blocking(move || -> anyhow::Result<(usize, Frontier)> {
        let seen = read_back(&cfg, &topics, &frontier, &prefix)?;
        let missing: Vec<(String, &OutMessage)> = todo.iter().filter(|(id, _)| !seen.contains(id)).map(|(id, m)| (id.clone(), m)).collect();
        let p = producer(&cfg)?;
        publish(&p, &missing)?;
        let reached = watermarks(p.client(), &topics)?;
        Ok((missing.len(), reached))
    })
    .await??;
    if l.mark {
        store.put_if_absent(&published_key(l.scope, l.upto), Bytes::from(sealed::seal(&reached))).await?;
    }
    tracing::info!(scope = l.scope, upto = l.upto, published = n, "kafka output: published the decided records the previous owner had not");
    Ok((n, reached))
}

/// The outbox ids (header values starting with `prefix`) found in `topics` from `frontier` (or
/// from the beginning of partitions it does not name) up to their current end.
fn read_back(cfg: &Config, topics: &BTreeSet<String>, frontier: &Frontier, prefix: &str) -> anyhow::Result<HashSet<String>> {
    let mut cc = super::client_config(&cfg.brokers, &cfg.client_id, &Default::default());
    cc.set("group.id", "arkflow-outbox-readback")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // Small fetches: a broker that is slow on records with headers (tansu 0.6.0 without its
        // header index, docs/SCALE_OUT.md) answers a large fetch of them with nothing at all.
        .set("fetch.max.bytes", "262144")
        .set("message.max.bytes", "200000")
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer = cc.create().context("kafka output: creating the read-back consumer")?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (t, ps) in watermarks(consumer.client(), topics)? {
        for (p, high) in ps {
            let from = frontier.get(&t).and_then(|f| f.get(&p)).copied().unwrap_or(0);
            if from < high {
                tpl.add_partition_offset(&t, p, rdkafka::Offset::Offset(from))?;
                ends.insert((t.clone(), p), high);
            }
        }
    }
    let mut seen = HashSet::new();
    if ends.is_empty() {
        return Ok(seen);
    }
    consumer.assign(&tpl).context("kafka output: assigning the read-back consumer")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            bail!("kafka output: reading the output back to deduplicate took over 5 minutes; {} partitions unfinished", ends.len());
        }
        let Some(r) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = r.context("kafka output: reading the output back")?;
        if let Some(h) = m.headers() {
            for h in h.iter().filter(|h| h.key == HEADER) {
                if let Some(v) = h.value.and_then(|v| std::str::from_utf8(v).ok()).filter(|v| v.starts_with(prefix)) {
                    seen.insert(v.to_string());
                }
            }
        }
        let k = (m.topic().to_string(), m.partition());
        if ends.get(&k).is_some_and(|end| m.offset() + 1 >= *end) {
            ends.remove(&k);
        }
    }
    Ok(seen)
}
