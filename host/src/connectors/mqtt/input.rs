//! `mqtt` input: the messages of `topics` (wildcards allowed) as records, value = payload, the
//! topic in the `topic` header. A persistent session (`clean_session: false`, the default) with
//! QoS 1 (the default) keeps what the stream has not acknowledged at the broker.
//!
//! Contract:
//! - **Acknowledgement** (`ack`): with `after_checkpoint` (the default) a message's PUBACK is sent
//!   only once a decided checkpoint covers it, so a crash loses nothing: the broker redelivers
//!   every unacknowledged message of the session when the stream reconnects (duplicates: what no
//!   decision covered). Without checkpoints the PUBACK follows the read; `immediate` leaves acks
//!   to the client (on receipt: a crash loses what was not yet read). The broker's in-flight
//!   window (mosquitto's `max_inflight_messages`, 20 by default) bounds the messages waiting for
//!   a PUBACK, so with `after_checkpoint` the rate is at most window / checkpoint interval: raise it.
//! - **Backpressure**: at most `max_pending` messages wait for the stream; the client stops
//!   reading the socket until there is room.
//! - Position = the count of records read, `{"mqtt": N}`, continued across restarts; nothing can
//!   be read again by position, so `exactly_once` is refused for this input (at-least-once).

use super::{drive, qos, Conn, RawConn};
use crate::config::{ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::input::{Ack, Input, Position};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS, SubscribeFilter};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// `type: mqtt` input settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttInputConfig {
    pub conn: Conn,
    /// Topic filters (required, not empty)
    pub topics: Vec<String>,
    pub qos: QoS,
    pub ack: Ack,
    /// Messages waiting for the stream at most; default 65536
    pub max_pending: usize,
    /// JSON field holding the record key; default None
    pub key_field: Option<String>,
    /// Records per input batch; default 1024
    pub batch_size: usize,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMqttInput {
    host: String,
    port: Option<u16>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    keep_alive: Option<u64>,
    clean_session: Option<bool>,
    topics: Vec<String>,
    qos: Option<u8>,
    ack: Option<String>,
    max_pending: Option<usize>,
    key_field: Option<String>,
    batch_size: Option<usize>,
}

impl MqttInputConfig {
    /// The stream sends the PUBACKs (after the decision), not the client on receipt.
    fn manual_acks(&self) -> bool {
        self.ack == Ack::AfterCheckpoint && self.qos != QoS::AtMostOnce
    }
}

impl Source for MqttInputConfig {
    const NAME: &'static str = "mqtt";
    type Raw = RawMqttInput;

    fn from_raw(ctx: &Ctx, raw: RawMqttInput, at: &YPath) -> Result<Self, ConfigError> {
        let RawMqttInput { host, port, client_id, username, password, keep_alive, clean_session, .. } = raw;
        let conn = Conn::from_raw(ctx, RawConn { host, port, client_id, username, password, keep_alive, clean_session }, at)?;
        let topics = crate::config::non_empty_list(ctx, raw.topics, &at.key("topics"))?;
        let cfg = MqttInputConfig {
            conn,
            topics,
            qos: qos(ctx, raw.qos, &at.key("qos"))?,
            ack: Ack::parse(ctx, raw.ack, &at.key("ack"))?,
            max_pending: raw.max_pending.unwrap_or(65_536),
            key_field: raw.key_field,
            batch_size: raw.batch_size.unwrap_or(crate::connectors::input::DEFAULT_INPUT_BATCH_SIZE),
        };
        ctx.at_least(&at.key("batch_size"), cfg.batch_size, 1)?;
        ctx.at_least(&at.key("max_pending"), cfg.max_pending, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: false, key_field: self.key_field.clone(), ..SourceCaps::default() }
    }

    fn open(&self, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        let manual = self.manual_acks();
        let mut options = self.conn.options(&format!("arkflow-{}", cx.stream));
        options.set_manual_acks(manual);
        let (client, event_loop) = Conn::client(options);
        let (tx, rx) = bounded(self.max_pending);
        let stop = crate::util::stop::StopOnDrop::new();
        let what = format!("mqtt input {}", self.conn.describe());
        let filters: Vec<SubscribeFilter> = self.topics.iter().map(|t| SubscribeFilter::new(t.clone(), self.qos)).collect();
        let on = on_event(Receiving { client: client.clone(), filters, tx, stop: stop.flag(), what: what.clone() });
        drive("mqtt-input", what, event_loop, stop.flag(), on)?;
        Ok(Box::new(MqttInput { cfg: self.clone(), client, rx, _stop: stop, unacked: VecDeque::new(), read: 0, ack_on_read: manual && !cx.checkpoints }))
    }
}

/// What the event loop needs to subscribe and to queue messages.
struct Receiving {
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    tx: Sender<Publish>,
    stop: Arc<AtomicBool>,
    what: String,
}

/// What the event loop does with each event: subscribe after every CONNACK, queue every message
/// (waiting only while the queue is full); nothing is allocated for an event that queues at once.
fn on_event(r: Receiving) -> impl FnMut(Event) -> Option<futures::future::BoxFuture<'static, ()>> + Send + 'static {
    let r = Arc::new(r);
    move |event| match event {
        Event::Incoming(Packet::ConnAck(ack)) => {
            let r = r.clone();
            Some(Box::pin(async move {
                tracing::info!(session_present = ack.session_present, "{}: connected, subscribing", r.what);
                if let Err(e) = r.client.subscribe_many(r.filters.clone()).await {
                    tracing::warn!("{}: subscribing: {e}", r.what);
                }
            }))
        }
        Event::Incoming(Packet::Publish(p)) => match r.tx.try_send(p) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => None,
            Err(TrySendError::Full(mut p)) => {
                let r = r.clone();
                Some(Box::pin(async move {
                    while !r.stop.load(Relaxed) {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        match r.tx.try_send(p) {
                            Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                            Err(TrySendError::Full(back)) => p = back,
                        }
                    }
                }))
            }
        },
        _ => None,
    }
}

/// The input's position: the count of records read.
#[derive(serde::Serialize, serde::Deserialize)]
struct MqttPosition {
    mqtt: u64,
}

impl Position for MqttPosition {
    const SOURCE: &'static str = "mqtt";
}

pub struct MqttInput {
    cfg: MqttInputConfig,
    client: AsyncClient,
    rx: Receiver<Publish>,
    /// Stops the client's event loop when the input is dropped.
    _stop: crate::util::stop::StopOnDrop,
    /// Messages read and not yet acknowledged, with their record index.
    unacked: VecDeque<(u64, Publish)>,
    read: u64,
    ack_on_read: bool,
}

impl MqttInput {
    /// Sends the PUBACK of every message with an index below `upto`, in order.
    fn ack_upto(&mut self, upto: u64) {
        let n = self.unacked.iter().take_while(|(i, _)| *i < upto).count();
        if n == 0 {
            return;
        }
        let due: Vec<Publish> = self.unacked.drain(..n).map(|(_, p)| p).collect();
        let client = self.client.clone();
        let acked = crate::checkpoint::block_on(async move {
            for p in &due {
                client.ack(p).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        });
        if let Err(e) = acked {
            tracing::warn!("mqtt input {}: acknowledging: {e} (the broker redelivers what was not acknowledged)", self.cfg.conn.describe());
        }
    }
}

impl Input for MqttInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        let first = match self.rx.recv_timeout(Duration::from_millis(100)) {
            Ok(p) => p,
            Err(RecvTimeoutError::Timeout) => return Ok(Some(Vec::new())),
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("mqtt input {}: the client stopped", self.cfg.conn.describe()),
        };
        let now = crate::util::time::now_ms();
        let key_field = self.cfg.key_field.as_deref();
        let manual = self.cfg.manual_acks();
        let mut batch = Vec::with_capacity(self.cfg.batch_size.min(self.rx.len() + 1));
        for p in std::iter::once(first).chain(std::iter::from_fn(|| self.rx.try_recv().ok())).take(self.cfg.batch_size) {
            let index = self.read;
            self.read += 1;
            let key = key_field.and_then(|f| crate::util::json::field_bytes(&p.payload, f));
            let headers = vec![("topic".to_string(), p.topic.as_bytes().to_vec())];
            batch.push(Record { key, value: Some(p.payload.to_vec()), headers, timestamp_ms: now, partition: 0, offset: index });
            if manual {
                self.unacked.push_back((index, p));
            }
        }
        if self.ack_on_read {
            self.ack_upto(self.read);
        }
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        MqttPosition { mqtt: self.read }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        self.read = MqttPosition::decode(position)?.mqtt;
        Ok(())
    }

    fn decided(&mut self, _epoch: u64, position: &serde_json::Value) {
        if let Ok(p) = MqttPosition::decode(position) {
            self.ack_upto(p.mqtt);
        }
    }
}
