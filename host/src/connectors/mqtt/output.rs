//! `mqtt` output: each record's value published to `topic` (ArkFlow's `mqtt` output),
//! at-least-once.
//!
//! Contract: a message is delivered once the broker acknowledged it (PUBACK at QoS 1, PUBCOMP
//! at QoS 2; at QoS 0 once it was sent). Batches are published without waiting for each
//! other's acknowledgements (at most `MAX_UNACKED` messages owed); `flush`, which runs at every
//! checkpoint barrier before the checkpoint is decided, waits for all of them, so a decided
//! checkpoint covers only records that reached the broker. The client resends unacknowledged
//! messages after a reconnect; a broker that acknowledges nothing for `timeout_ms` stops the
//! stream (a restart sends again what no decided checkpoint covers).

use super::{drive, qos, Conn, RawConn};
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::output::Output;
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `type: mqtt` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttOutputConfig {
    pub conn: Conn,
    /// Topic every record is published to (required)
    pub topic: String,
    pub qos: QoS,
    /// default false
    pub retain: bool,
    /// How long a batch waits for the broker's acknowledgements; default 30000
    pub timeout_ms: u64,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMqttOutput {
    host: String,
    port: Option<u16>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    keep_alive: Option<u64>,
    clean_session: Option<bool>,
    topic: String,
    qos: Option<u8>,
    retain: Option<bool>,
    timeout_ms: Option<u64>,
}

impl Sink for MqttOutputConfig {
    const NAME: &'static str = "mqtt";
    type Raw = RawMqttOutput;

    fn from_raw(ctx: &Ctx, raw: RawMqttOutput, at: &YPath) -> Result<Self, ConfigError> {
        let RawMqttOutput { host, port, client_id, username, password, keep_alive, clean_session, .. } = raw;
        let conn = Conn::from_raw(ctx, RawConn { host, port, client_id, username, password, keep_alive, clean_session }, at)?;
        if raw.topic.is_empty() || raw.topic.contains(['+', '#']) {
            let t = at.key("topic");
            return Err(ctx.invalid(&t, format!("{t} must be a topic name without wildcards (got {:?})", raw.topic)));
        }
        let cfg = MqttOutputConfig {
            conn,
            topic: raw.topic,
            qos: qos(ctx, raw.qos, &at.key("qos"))?,
            retain: raw.retain.unwrap_or(false),
            timeout_ms: raw.timeout_ms.unwrap_or(30_000),
        };
        ctx.at_least(&at.key("timeout_ms"), cfg.timeout_ms, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { at_least_once: true, ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let id = format!("arkflow-{}-{}", cx.stream, cx.sink.replace('.', "-"));
        let mut options = self.conn.options(&id);
        options.set_inflight(1000);
        let (client, event_loop) = Conn::client(options);
        let done = Arc::new(AtomicU64::new(0));
        let stop = crate::util::stop::StopOnDrop::new();
        let (counted, qos) = (done.clone(), self.qos);
        let on = move |event: Event| {
            let finished = matches!(
                (qos, &event),
                (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_)))
                    | (QoS::AtLeastOnce, Event::Incoming(Packet::PubAck(_)))
                    | (QoS::ExactlyOnce, Event::Incoming(Packet::PubComp(_)))
            );
            if finished {
                counted.fetch_add(1, Relaxed);
            }
            None
        };
        let what = format!("mqtt output {}", self.conn.describe());
        drive("mqtt-output", what.clone(), event_loop, stop.flag(), on)?;
        Ok(Box::new(MqttOut { cfg: self.clone(), client, done, sent: 0, _stop: stop, what }))
    }
}

struct MqttOut {
    cfg: MqttOutputConfig,
    client: AsyncClient,
    /// Messages the broker acknowledged (or, at QoS 0, that went out).
    done: Arc<AtomicU64>,
    /// Messages handed to the client.
    sent: u64,
    /// Stops the client's event loop when the output is dropped.
    _stop: crate::util::stop::StopOnDrop,
    what: String,
}

impl Output for MqttOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (client, topic, qos, retain) = (self.client.clone(), self.cfg.topic.clone(), self.cfg.qos, self.cfg.retain);
        let payloads: Vec<Vec<u8>> = records.iter().map(|r| r.value.clone().unwrap_or_default()).collect();
        crate::checkpoint::block_on(async move {
            for p in payloads {
                client.publish(topic.clone(), qos, retain, p).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        })
        .map_err(|e| anyhow::anyhow!("{}: publishing to {}: {e}", self.what, self.cfg.topic))?;
        self.sent += records.len() as u64;
        // Later batches go out while the broker still acknowledges earlier ones: waiting for
        // every PUBACK of each batch would stall the stream a round trip per batch (and, with
        // a broker that leaves Nagle's algorithm on, a delayed ACK of 40 ms or more).
        self.wait_until_pending(MAX_UNACKED)
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.wait_until_pending(0)
    }
}

/// Messages handed to the client that the broker may still owe acknowledgements for before a
/// `write_batch` waits.
const MAX_UNACKED: u64 = 8_192;

impl MqttOut {
    /// Waits until at most `pending` messages are unacknowledged; fails when the broker
    /// acknowledged nothing for `timeout_ms`.
    fn wait_until_pending(&self, pending: u64) -> anyhow::Result<()> {
        let (mut last, mut since) = (self.done.load(Relaxed), Instant::now());
        loop {
            let done = self.done.load(Relaxed);
            if self.sent - done.min(self.sent) <= pending {
                return Ok(());
            }
            if done != last {
                (last, since) = (done, Instant::now());
            } else if since.elapsed() > Duration::from_millis(self.cfg.timeout_ms) {
                anyhow::bail!(
                    "{}: the broker acknowledged {} of {} messages to {} and then nothing for timeout_ms ({} ms)",
                    self.what,
                    done,
                    self.sent,
                    self.cfg.topic,
                    self.cfg.timeout_ms
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
