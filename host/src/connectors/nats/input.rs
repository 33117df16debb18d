//! `nats` input: the messages of a JetStream `stream` (those of `subject` when set) as records,
//! value = payload, timestamp = the time the server stored it, the subject in the `subject`
//! header and the message's NATS headers as record headers.
//!
//! Contract:
//! - **Replayable.** Position = the stream sequence to read next, `{"nats": N}` (0: none yet).
//!   A restart reads again from the checkpoint's position (the fetch loop, `fetch.rs`, creates
//!   the `durable` consumer there), so the input serves `exactly_once` like a Kafka partition, as
//!   long as the stream's retention keeps what no decided checkpoint covers.
//! - **Acknowledgement.** The consumer acknowledges cumulatively (`AckPolicy::All`): once a
//!   decided checkpoint covers a message, the last message read before that checkpoint is
//!   acknowledged, and with it everything before (without checkpoints: once read). So the
//!   server's view of the consumer (and a work-queue or interest stream's retention) follows the
//!   decisions. `ack_wait` must exceed the checkpoint interval, or the server redelivers what
//!   waits for its checkpoint (dropped by the input, but sent again over the network).
//! - One consumer per `durable` name: a second process with the same name deletes the first's
//!   consumer, and the first then stops with an error naming it.

use super::fetch::{Fetch, Item};
use super::Conn;
use crate::config::{ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::input::{Input, Position, RateLimiter};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;
use async_nats::jetstream::message::Acker;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use std::collections::VecDeque;
use std::time::Duration;

/// Where a consumer with no position and no earlier consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deliver {
    /// The stream's first message. default
    #[default]
    All,
    /// Messages stored after the consumer is created.
    New,
    /// The stream's last message.
    Last,
}

crate::config::named_enum!(Deliver { "all" => All, "new" => New, "last" => Last });

/// `type: nats` input settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsInputConfig {
    pub conn: Conn,
    /// The JetStream stream (required)
    pub stream: String,
    /// Filter subject (wildcards allowed); default: every subject of the stream
    pub subject: Option<String>,
    /// The durable consumer's name; default `arkflow-<operator_id>`
    pub durable: Option<String>,
    pub deliver: Deliver,
    /// Redelivery wait of an unacknowledged message; default 60000
    pub ack_wait_ms: u64,
    /// Messages waiting for the stream at most; default 65536
    pub max_pending: usize,
    /// JSON field holding the record key; default None
    pub key_field: Option<String>,
    /// Records per input batch; default 1024
    pub batch_size: usize,
    /// End the stream at the JetStream stream's last message at start; default false
    pub stop_at_end: bool,
    /// Records per second at most; default unthrottled
    pub rate_per_sec: Option<u64>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNatsInput {
    url: String,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    stream: String,
    subject: Option<String>,
    durable: Option<String>,
    deliver: Option<String>,
    ack_wait_ms: Option<u64>,
    max_pending: Option<usize>,
    key_field: Option<String>,
    batch_size: Option<usize>,
    stop_at_end: Option<bool>,
    rate_per_sec: Option<u64>,
}

/// A JetStream stream or consumer name: not empty, no whitespace, `.`, `*`, `>`, `/` or `\`.
fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

impl Source for NatsInputConfig {
    const NAME: &'static str = "nats";
    type Raw = RawNatsInput;

    fn from_raw(ctx: &Ctx, raw: RawNatsInput, at: &YPath) -> Result<Self, ConfigError> {
        let conn = Conn::from_raw(ctx, raw.url, raw.username, raw.password, raw.token, at)?;
        for (key, name) in [("stream", Some(&raw.stream)), ("durable", raw.durable.as_ref())] {
            if name.is_some_and(|n| !valid_name(n)) {
                let p = at.key(key);
                return Err(ctx.invalid(&p, format!("{p} must be a JetStream name: not empty, without whitespace, `.`, `*`, `>`, `/` or `\\`")));
            }
        }
        if raw.subject.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(ctx.invalid(&at.key("subject"), format!("{} must not be empty", at.key("subject"))));
        }
        let cfg = NatsInputConfig {
            conn,
            stream: raw.stream,
            subject: raw.subject,
            durable: raw.durable,
            deliver: ctx.named(raw.deliver, &at.key("deliver"), "deliver", Deliver::NAMES, Deliver::from_name, Deliver::default())?,
            ack_wait_ms: raw.ack_wait_ms.unwrap_or(60_000),
            max_pending: raw.max_pending.unwrap_or(65_536),
            key_field: raw.key_field,
            batch_size: raw.batch_size.unwrap_or(crate::connectors::input::DEFAULT_INPUT_BATCH_SIZE),
            stop_at_end: raw.stop_at_end.unwrap_or(false),
            rate_per_sec: raw.rate_per_sec,
        };
        ctx.at_least_if_set(&at.key("rate_per_sec"), cfg.rate_per_sec, 1)?;
        ctx.at_least(&at.key("ack_wait_ms"), cfg.ack_wait_ms, 1_000)?;
        ctx.at_least(&at.key("batch_size"), cfg.batch_size, 1)?;
        ctx.at_least(&at.key("max_pending"), cfg.max_pending, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: true, key_field: self.key_field.clone(), ..SourceCaps::default() }
    }

    fn open(&self, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        let durable = self.durable.clone().unwrap_or_else(|| cx.default_group.chars().map(|c| if valid_name(&c.to_string()) { c } else { '_' }).collect());
        Ok(Box::new(NatsInput {
            cfg: self.clone(),
            durable,
            rx: None,
            stop: crate::util::stop::StopOnDrop::new(),
            marks: VecDeque::new(),
            next: 0,
            ack_on_read: !cx.checkpoints,
            ended: false,
            limiter: self.rate_per_sec.map(RateLimiter::new),
        }))
    }
}

/// The input's position: the stream sequence to read next (0: none yet).
#[derive(serde::Serialize, serde::Deserialize)]
struct NatsPosition {
    nats: u64,
}

impl Position for NatsPosition {
    const SOURCE: &'static str = "nats";
}

pub struct NatsInput {
    cfg: NatsInputConfig,
    durable: String,
    /// The fetch loop's queue, once started (at the first read: after a restored `seek`).
    rx: Option<Receiver<Item>>,
    /// Stops the fetch loop when the input is dropped.
    stop: crate::util::stop::StopOnDrop,
    /// Per batch read and not yet acknowledged: the position after it and its last message's acker.
    marks: VecDeque<(u64, Acker)>,
    next: u64,
    ack_on_read: bool,
    /// `stop_at_end`: the fetch loop queued everything up to the end.
    ended: bool,
    limiter: Option<RateLimiter>,
}

impl NatsInput {
    fn started(&mut self) -> &Receiver<Item> {
        self.rx.get_or_insert_with(|| {
            let (tx, rx) = bounded(self.cfg.max_pending);
            let next = (self.next > 0).then_some(self.next);
            let fetch = Fetch { cfg: self.cfg.clone(), durable: self.durable.clone(), next, tx, stop: self.stop.flag(), end: None };
            crate::state::backend::io_runtime().spawn(fetch.run());
            rx
        })
    }

    /// Acknowledges (cumulatively) the last message before position `upto`.
    fn ack_upto(&mut self, upto: u64) {
        let n = self.marks.iter().take_while(|(p, _)| *p <= upto).count();
        let Some((_, acker)) = self.marks.drain(..n).last() else { return };
        if let Err(e) = crate::checkpoint::block_on(acker.ack()) {
            tracing::warn!("nats input {}: acknowledging: {e} (the next acknowledgement covers it)", self.cfg.conn.describe());
        }
    }
}

impl Input for NatsInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        if self.ended {
            return Ok(None);
        }
        let rx = self.started().clone();
        let most = match &mut self.limiter {
            Some(l) => l.allow(self.cfg.batch_size as u64) as usize,
            None => self.cfg.batch_size,
        };
        if most == 0 {
            return Ok(Some(Vec::new()));
        }
        let first = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => return Ok(Some(Vec::new())),
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("nats input {}: the fetch loop stopped", self.cfg.conn.describe()),
        };
        let key_field = self.cfg.key_field.as_deref();
        let mut batch = Vec::with_capacity(most.min(rx.len() + 1));
        let mut last = None;
        for item in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())).take(most) {
            let (seq, published_ms, msg) = match item {
                Item::Msg { seq, published_ms, msg } => (seq, published_ms, msg),
                Item::Fatal(e) => anyhow::bail!("{e}"),
                Item::End => {
                    self.ended = true;
                    break;
                }
            };
            let (msg, acker) = (*msg).split();
            let mut headers = vec![("subject".to_string(), msg.subject.as_bytes().to_vec())];
            for (name, values) in msg.headers.iter().flat_map(|h| h.iter()) {
                headers.extend(values.iter().map(|v| (name.to_string(), v.as_str().as_bytes().to_vec())));
            }
            let key = key_field.and_then(|f| crate::util::json::field_bytes(&msg.payload, f));
            batch.push(Record { key, value: Some(msg.payload.to_vec()), headers, timestamp_ms: published_ms, partition: 0, offset: seq });
            self.next = seq + 1;
            last = Some(acker);
        }
        if let Some(acker) = last {
            self.marks.push_back((self.next, acker));
        }
        if self.ack_on_read {
            self.ack_upto(self.next);
        }
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        NatsPosition { nats: self.next }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        anyhow::ensure!(self.rx.is_none(), "nats input: seek after the first read");
        self.next = NatsPosition::decode(position)?.nats;
        Ok(())
    }

    fn decided(&mut self, _epoch: u64, position: &serde_json::Value) {
        if let Ok(p) = NatsPosition::decode(position) {
            self.ack_upto(p.nats);
        }
    }
}
