//! `nats` output: each record's value published to `subject`, its headers as NATS headers.
//!
//! Contract:
//! - `jetstream: true` (the default): a JetStream publish whose acknowledgement is awaited; a
//!   batch is written when the server stored all of it, so a checkpoint is decided only after its
//!   records were stored. Each message carries `Nats-Msg-Id` = the record's `RecordKeys` key
//!   (`<stream>/<sink>/<partition>-<offset>-<rank>`), so the JetStream stream drops what a retry
//!   or a restart's replay publishes again within its `duplicate_window` (2 minutes by default):
//!   with a replayable input and a record-by-record pipeline, a restart inside that window
//!   stores each record once. A failed publish (timeout, lost connection) is retried
//!   `retry_count` times with the same id, backing off from 100 ms (doubling, at most 5 s); a
//!   refusal (no stream for the subject) fails the stream, naming the subject.
//! - `jetstream: false`: core NATS publishing, flushed per batch: no acknowledgement and no
//!   dedupe (a subscriber that is not connected misses messages).

use super::Conn;
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::output::{Output, RecordKeys};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use async_nats::jetstream::{self, message::PublishMessage};
use async_nats::HeaderMap;
use futures::StreamExt;
use std::time::Duration;

/// `type: nats` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsOutputConfig {
    pub conn: Conn,
    /// The subject (required, no wildcards)
    pub subject: String,
    /// Publish to JetStream with acknowledgements and message ids; default true
    pub jetstream: bool,
    /// JetStream publishes awaiting their acknowledgement at once; default 1024
    pub max_in_flight: usize,
    /// Retries of a failed JetStream publish; default 10
    pub retry_count: u32,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNatsOutput {
    url: String,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    subject: String,
    jetstream: Option<bool>,
    max_in_flight: Option<usize>,
    retry_count: Option<u32>,
}

impl Sink for NatsOutputConfig {
    const NAME: &'static str = "nats";
    type Raw = RawNatsOutput;

    fn from_raw(ctx: &Ctx, raw: RawNatsOutput, at: &YPath) -> Result<Self, ConfigError> {
        let conn = Conn::from_raw(ctx, raw.url, raw.username, raw.password, raw.token, at)?;
        let s = &raw.subject;
        if s.is_empty() || s.contains(['*', '>', ' ']) || s.split('.').any(str::is_empty) {
            let p = at.key("subject");
            return Err(ctx.invalid(&p, format!("{p} must be a subject name without wildcards or empty tokens (got `{s}`)")));
        }
        let cfg = NatsOutputConfig {
            conn,
            subject: raw.subject,
            jetstream: raw.jetstream.unwrap_or(true),
            max_in_flight: raw.max_in_flight.unwrap_or(1024),
            retry_count: raw.retry_count.unwrap_or(10),
        };
        ctx.at_least(&at.key("max_in_flight"), cfg.max_in_flight, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { at_least_once: true, ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let name = format!("arkflow {}/{}", cx.stream, cx.sink);
        // The context spawns its acknowledgement task: it is built on the I/O runtime.
        let (client, js) = crate::checkpoint::block_on(async {
            let client = self.conn.connect(&name).await?;
            let js = jetstream::ContextBuilder::new().max_ack_inflight(self.max_in_flight).build(client.clone());
            Ok::<_, anyhow::Error>((client, js))
        })?;
        Ok(Box::new(NatsOut { cfg: self.clone(), client, js, keys: RecordKeys::new(cx.stream, cx.sink) }))
    }
}

struct NatsOut {
    cfg: NatsOutputConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    keys: RecordKeys,
}

/// The record's headers as NATS headers (those whose value is not UTF-8 are left out: NATS
/// header values are text; the first one left out is logged).
fn headers(r: &Record) -> HeaderMap {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut h = HeaderMap::new();
    for (k, v) in &r.headers {
        match std::str::from_utf8(v) {
            Ok(v) => h.append(k.as_str(), v),
            Err(_) if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) => tracing::warn!(
                header = %k,
                partition = r.partition,
                offset = r.offset,
                "nats output: a record header's value is not UTF-8, which NATS headers cannot carry: it is left out (logged once)"
            ),
            Err(_) => {}
        }
    }
    h
}

impl NatsOut {
    /// Publishes one message until the server acknowledges it, or fails after the retries.
    async fn publish(&self, id: String, headers: HeaderMap, payload: bytes::Bytes) -> anyhow::Result<()> {
        use async_nats::jetstream::context::PublishErrorKind as K;
        let mut attempt = 0u32;
        loop {
            let msg = PublishMessage::build().payload(payload.clone()).headers(headers.clone()).message_id(&id);
            let sent = match self.js.send_publish(self.cfg.subject.clone(), msg).await {
                Ok(ack) => ack.await.map(drop),
                Err(e) => Err(e),
            };
            let Err(e) = sent else { return Ok(()) };
            let refused = matches!(e.kind(), K::StreamNotFound | K::WrongLastMessageId | K::WrongLastSequence);
            let failure = e.to_string();
            if refused || attempt >= self.cfg.retry_count {
                anyhow::bail!(
                    "nats output {} subject {}: publishing Nats-Msg-Id {id} failed after {} attempt(s): {failure}",
                    self.cfg.conn.describe(),
                    self.cfg.subject,
                    attempt + 1
                );
            }
            tracing::warn!(subject = %self.cfg.subject, id = %id, attempt = attempt + 1, "nats output: {failure}; retrying");
            tokio::time::sleep(Duration::from_millis(100u64 << attempt.min(6)).min(Duration::from_secs(5))).await;
            attempt += 1;
        }
    }
}

impl Output for NatsOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if !self.cfg.jetstream {
            let (client, subject) = (&self.client, &self.cfg.subject);
            return crate::checkpoint::block_on(async {
                for r in records {
                    let payload = bytes::Bytes::from(r.value.clone().unwrap_or_default());
                    client.publish_with_headers(subject.clone(), headers(r), payload).await?;
                }
                client.flush().await?;
                Ok::<_, anyhow::Error>(())
            })
            .map_err(|e| anyhow::anyhow!("nats output {} subject {subject}: {e}", self.cfg.conn.describe()));
        }
        let messages: Vec<_> = records.iter().map(|r| (self.keys.next(r), headers(r), bytes::Bytes::from(r.value.clone().unwrap_or_default()))).collect();
        let this = &*self;
        crate::checkpoint::block_on(async {
            let mut sent = futures::stream::iter(messages).map(|(id, h, p)| this.publish(id, h, p)).buffer_unordered(this.cfg.max_in_flight);
            while let Some(r) = sent.next().await {
                r?;
            }
            Ok(())
        })
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
