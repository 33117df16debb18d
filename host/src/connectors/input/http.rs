//! `http` input: an HTTP server (`address`, `path`) taking records as POSTed JSON: a body of
//! JSON lines (NDJSON) is one record per line; a body that is one JSON document spread over
//! several lines is one record. Its server lives in `http_server`.
//!
//! Contract:
//! - **Backpressure, never an unbounded queue**: at most `max_pending` records wait for the
//!   stream; a request that does not fit gets 503 with `Retry-After: 1` and none of its records
//!   are taken. A body over `max_body_bytes` gets 413, a line that is not JSON gets 400 naming it,
//!   a missing or wrong `Authorization` (with `auth:`) gets 401.
//! - **Acknowledgement** (`ack`): with `after_checkpoint` (the default) a request is answered 200
//!   only once a decided checkpoint covers all its records (their state and output are durable);
//!   a client that retries every request without a 200 loses nothing to a crash, and what it
//!   sends twice is what no decision covered (plus a request whose 200 was lost on the wire).
//!   Without checkpoints (`state_management.enabled: false`) the 200 comes once the stream has
//!   read the records. `immediate` answers once the records are queued: a crash loses the queue.
//!   After `ack_timeout_ms` without a decision the request gets 504 (its records stay queued).
//! - Records get consecutive indices (their `offset`); position = the index of the next record
//!   the stream reads, `{"http": N}`. A restart resumes the count at the checkpoint's position.
//!   Nothing can be read again, so the input is not replayable: `exactly_once` is refused for it.
//! - The port is bound when the stream opens (an address in use fails the start with its name);
//!   requests are served from the first read on, after recovery has placed the count.

use super::{json_line_record, Ack, Input, Position};
use crate::config::http_auth::{Auth, RawAuth};
use crate::config::{ConfigError, Ctx, SourceCaps, YPath};
use crate::connectors::registry::{Source, SourceCx};
use crate::record::Record;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[path = "http_server.rs"]
mod server;

/// `type: http` input settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpInputConfig {
    /// IP:port to listen on (required)
    pub address: SocketAddr,
    /// The path records are POSTed to; default "/"
    pub path: String,
    /// Required `Authorization` of every request; default none
    pub auth: Option<Auth>,
    pub ack: Ack,
    /// Records queued for the stream at most; default 65536
    pub max_pending: usize,
    /// Largest request body; default 16 MiB
    pub max_body_bytes: usize,
    /// How long a request waits for its acknowledgement; default 30000
    pub ack_timeout_ms: u64,
    /// Answers CORS preflights and allows any origin; default false
    pub cors_enabled: bool,
    /// JSON field holding the record key; default None
    pub key_field: Option<String>,
    /// Records per input batch; default 1024
    pub batch_size: usize,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpInput {
    address: String,
    path: Option<String>,
    auth: Option<RawAuth>,
    ack: Option<String>,
    max_pending: Option<usize>,
    max_body_bytes: Option<usize>,
    ack_timeout_ms: Option<u64>,
    cors_enabled: Option<bool>,
    key_field: Option<String>,
    batch_size: Option<usize>,
}

impl Source for HttpInputConfig {
    const NAME: &'static str = "http";
    type Raw = RawHttpInput;

    fn from_raw(ctx: &Ctx, raw: RawHttpInput, at: &YPath) -> Result<Self, ConfigError> {
        let addr_at = at.key("address");
        let address = raw.address.parse().map_err(|e| ctx.invalid(&addr_at, format!("{addr_at} must be IP:port, e.g. 127.0.0.1:8080 ({e})")))?;
        let path = raw.path.unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.contains(['{', '}', '*', ' ']) {
            let p = at.key("path");
            return Err(ctx.invalid(&p, format!("{p} must be a plain absolute path such as /ingest (got {path:?})")));
        }
        let auth = raw.auth.map(|a| Auth::from_raw(ctx, a, &at.key("auth"))).transpose()?;
        let cfg = HttpInputConfig {
            address,
            path,
            auth,
            ack: Ack::parse(ctx, raw.ack, &at.key("ack"))?,
            max_pending: raw.max_pending.unwrap_or(65_536),
            max_body_bytes: raw.max_body_bytes.unwrap_or(16 << 20),
            ack_timeout_ms: raw.ack_timeout_ms.unwrap_or(30_000),
            cors_enabled: raw.cors_enabled.unwrap_or(false),
            key_field: raw.key_field,
            batch_size: raw.batch_size.unwrap_or(super::DEFAULT_INPUT_BATCH_SIZE),
        };
        ctx.at_least(&at.key("batch_size"), cfg.batch_size, 1)?;
        ctx.at_least(&at.key("max_pending"), cfg.max_pending, 1)?;
        ctx.at_least(&at.key("max_body_bytes"), cfg.max_body_bytes, 1)?;
        ctx.at_least(&at.key("ack_timeout_ms"), cfg.ack_timeout_ms, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SourceCaps {
        SourceCaps { replayable: false, key_field: self.key_field.clone(), ..SourceCaps::default() }
    }

    fn open(&self, cx: &SourceCx<'_>) -> anyhow::Result<Box<dyn Input>> {
        let listener = std::net::TcpListener::bind(self.address)
            .map_err(|e| anyhow::anyhow!("http input: cannot listen on {} ({e}): is another process using the port?", self.address))?;
        let (acked, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { records: VecDeque::new(), next: 0 }),
            ready: Condvar::new(),
            acked,
            closed: AtomicBool::new(false),
            cfg: self.clone(),
        });
        if self.ack == Ack::AfterCheckpoint && !cx.checkpoints {
            tracing::info!(
                stream = cx.stream,
                "http input: the stream does not checkpoint, so requests are acknowledged once the stream has read their records"
            );
        }
        let ack_on_read = self.ack == Ack::AfterCheckpoint && !cx.checkpoints;
        Ok(Box::new(HttpInput { shared, listener: Some(listener), server: None, read: 0, ack_on_read }))
    }
}

/// What the server and the input thread share.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when records are queued.
    ready: Condvar,
    /// Every record with an index below this is acknowledged.
    acked: tokio::sync::watch::Sender<u64>,
    /// The input is gone: waiting requests are answered 503.
    closed: AtomicBool,
    cfg: HttpInputConfig,
}

struct Queue {
    records: VecDeque<Vec<u8>>,
    /// The index the next queued record gets.
    next: u64,
}

/// Why a request's records were not queued.
#[derive(Debug, PartialEq)]
pub(crate) enum Refused {
    /// The queue has no room now (503).
    Full,
    /// More records than the queue can ever hold (413).
    TooMany,
    Closed,
}

impl Shared {
    /// Queues `records` whole or not at all; returns the index after the last one.
    pub(crate) fn enqueue(&self, records: Vec<Vec<u8>>) -> Result<u64, Refused> {
        if self.closed.load(Relaxed) {
            return Err(Refused::Closed);
        }
        if records.len() > self.cfg.max_pending {
            return Err(Refused::TooMany);
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.records.len() + records.len() > self.cfg.max_pending {
            return Err(Refused::Full);
        }
        q.next += records.len() as u64;
        q.records.extend(records);
        let end = q.next;
        drop(q);
        self.ready.notify_one();
        Ok(end)
    }

    fn ack_upto(&self, n: u64) {
        self.acked.send_if_modified(|a| {
            let newer = n > *a;
            *a = (*a).max(n);
            newer
        });
    }
}

/// The input's position: the index of the next record it reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct HttpPosition {
    http: u64,
}

impl Position for HttpPosition {
    const SOURCE: &'static str = "http";
}

pub struct HttpInput {
    shared: Arc<Shared>,
    /// Bound at open, served from the first read.
    listener: Option<std::net::TcpListener>,
    server: Option<server::Running>,
    /// Records read by the stream (the index of the next one).
    read: u64,
    /// The stream does not checkpoint: reading acknowledges.
    ack_on_read: bool,
}

impl Input for HttpInput {
    fn next_batch(&mut self) -> anyhow::Result<Option<Vec<Record>>> {
        if let Some(listener) = self.listener.take() {
            self.server = Some(server::start(listener, self.shared.clone())?);
        }
        let cfg = &self.shared.cfg;
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.records.is_empty() {
            q = self.shared.ready.wait_timeout(q, Duration::from_millis(100)).unwrap_or_else(|p| p.into_inner()).0;
        }
        let n = q.records.len().min(cfg.batch_size);
        let now = crate::util::time::now_ms();
        let key_field = cfg.key_field.as_deref();
        let batch: Vec<Record> = q.records.drain(..n).enumerate().map(|(i, v)| json_line_record(&v, key_field, self.read + i as u64, now)).collect();
        drop(q);
        self.read += n as u64;
        if self.ack_on_read {
            self.shared.ack_upto(self.read);
        }
        Ok(Some(batch))
    }

    fn position(&self) -> serde_json::Value {
        HttpPosition { http: self.read }.encode()
    }

    fn seek(&mut self, position: &serde_json::Value) -> anyhow::Result<()> {
        let n = HttpPosition::decode(position)?.http;
        self.read = n;
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.next = n + q.records.len() as u64;
        Ok(())
    }

    fn decided(&mut self, _epoch: u64, position: &serde_json::Value) {
        if let Ok(p) = HttpPosition::decode(position) {
            self.shared.ack_upto(p.http);
        }
    }
}

impl Drop for HttpInput {
    fn drop(&mut self) {
        self.shared.closed.store(true, Relaxed);
        // Wakes every waiting request: each sees `closed` and answers 503.
        self.shared.acked.send_modify(|_| {});
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
