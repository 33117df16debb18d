//! `http` output: each record POSTed (or PUT / PATCHed) to `url`, at-least-once, with an
//! `Idempotency-Key` header so a receiver can drop what a retry or a replay sends twice.
//!
//! Contract:
//! - `body: record` (the default) sends one request per record, its value as the body;
//!   `body: ndjson` sends one request per written batch, one JSON line per record. Up to
//!   `max_in_flight` requests are open at once; a batch is written when all of its requests got
//!   a 2xx, so a checkpoint is decided only after its records were accepted.
//! - A connection error, a timeout, 408, 429 and 5xx are retried `retry_count` times, backing
//!   off from `retry_backoff_ms` (doubling, at most 10 s; a `Retry-After` in seconds is obeyed);
//!   any other status, or the last retry failing, fails the stream with the URL, the status and
//!   the start of the reply's body. Nothing is lost: a restart writes again every record no
//!   decided checkpoint covers.
//! - The key is the record's `RecordKeys` key, `<stream>/<sink>/<partition>-<offset>-<n>`
//!   (`ndjson`: the batch's first record's key and the batch's size): the same when a restart
//!   replays a replayable input through a record-by-record pipeline.

use super::{encode_line, Output, OutputFormat, RecordKeys};
use crate::config::http_auth::{Auth, RawAuth};
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMethod {
    /// default
    #[default]
    Post,
    Put,
    Patch,
}

crate::config::named_enum!(HttpMethod { "POST" => Post, "PUT" => Put, "PATCH" => Patch });

/// What one request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyMode {
    /// One record's value per request. default
    #[default]
    Record,
    /// A written batch per request, one JSON line per record.
    Ndjson,
}

crate::config::named_enum!(BodyMode { "record" => Record, "ndjson" => Ndjson });

/// `type: http` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOutputConfig {
    /// http:// or https:// URL (required)
    pub url: String,
    pub method: HttpMethod,
    /// Extra request headers; default none
    pub headers: Vec<(String, String)>,
    /// Content-Type of `body: record` requests; default application/json
    pub content_type: String,
    pub body: BodyMode,
    /// Per-request timeout; default 5000
    pub timeout_ms: u64,
    /// Retries of a failed request; default 5
    pub retry_count: u32,
    /// First retry's wait; default 100
    pub retry_backoff_ms: u64,
    /// Requests open at once; default 16
    pub max_in_flight: usize,
    pub auth: Option<Auth>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpOutput {
    url: String,
    method: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    content_type: Option<String>,
    body: Option<String>,
    timeout_ms: Option<u64>,
    retry_count: Option<u32>,
    retry_backoff_ms: Option<u64>,
    max_in_flight: Option<usize>,
    auth: Option<RawAuth>,
}

impl Sink for HttpOutputConfig {
    const NAME: &'static str = "http";
    type Raw = RawHttpOutput;

    fn from_raw(ctx: &Ctx, raw: RawHttpOutput, at: &YPath) -> Result<Self, ConfigError> {
        let url_at = at.key("url");
        match reqwest::Url::parse(&raw.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(u) => return Err(ctx.invalid(&url_at, format!("{url_at} must be an http:// or https:// URL with a host (got {u})"))),
            Err(e) => return Err(ctx.invalid(&url_at, format!("{url_at} is not a URL ({e})"))),
        }
        let headers = raw.headers.unwrap_or_default().into_iter().collect::<Vec<_>>();
        for (name, value) in &headers {
            let h = at.key("headers").key(name);
            if HeaderName::from_bytes(name.as_bytes()).is_err() || HeaderValue::from_str(value).is_err() {
                return Err(ctx.invalid(&h, format!("{h}: not a valid HTTP header name and value")));
            }
        }
        let content_type = raw.content_type.unwrap_or_else(|| "application/json".into());
        if HeaderValue::from_str(&content_type).is_err() {
            return Err(ctx.invalid(&at.key("content_type"), format!("{}: not a valid header value", at.key("content_type"))));
        }
        let method =
            ctx.named(raw.method, &at.key("method"), "method", HttpMethod::NAMES, |m| HttpMethod::from_name(&m.to_ascii_uppercase()), HttpMethod::default())?;
        let cfg = HttpOutputConfig {
            url: raw.url,
            method,
            headers,
            content_type,
            body: ctx.named(raw.body, &at.key("body"), "body", BodyMode::NAMES, BodyMode::from_name, BodyMode::default())?,
            timeout_ms: raw.timeout_ms.unwrap_or(5_000),
            retry_count: raw.retry_count.unwrap_or(5),
            retry_backoff_ms: raw.retry_backoff_ms.unwrap_or(100),
            max_in_flight: raw.max_in_flight.unwrap_or(16),
            auth: raw.auth.map(|a| Auth::from_raw(ctx, a, &at.key("auth"))).transpose()?,
        };
        ctx.at_least(&at.key("timeout_ms"), cfg.timeout_ms, 1)?;
        ctx.at_least(&at.key("max_in_flight"), cfg.max_in_flight, 1)?;
        Ok(cfg)
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { at_least_once: true, ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            headers.insert(HeaderName::from_bytes(k.as_bytes())?, HeaderValue::from_str(v)?);
        }
        if let Some(a) = &self.auth {
            let mut v = HeaderValue::from_str(a.header())?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_millis(self.timeout_ms))
            .build()
            .map_err(|e| anyhow::anyhow!("http output: cannot build the client: {e}"))?;
        let method = match self.method {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
        };
        let content_type = match self.body {
            BodyMode::Record => self.content_type.clone(),
            BodyMode::Ndjson => "application/x-ndjson".to_string(),
        };
        let sender = Arc::new(Sender { client, method, cfg: self.clone(), content_type });
        Ok(Box::new(HttpOut { sender, keys: RecordKeys::new(cx.stream, cx.sink) }))
    }
}

struct HttpOut {
    /// Shared with the requests in flight.
    sender: Arc<Sender>,
    keys: RecordKeys,
}

/// One request: its idempotency key and body.
struct Request {
    key: String,
    body: Bytes,
}

impl HttpOut {
    fn requests(&mut self, records: &[Record]) -> Vec<Request> {
        match self.sender.cfg.body {
            BodyMode::Record => records.iter().map(|r| Request { key: self.keys.next(r), body: Bytes::from(r.value.clone().unwrap_or_default()) }).collect(),
            BodyMode::Ndjson => {
                let first = self.keys.next(&records[0]);
                // The other records' ranks advance all the same: a later batch's key depends on them.
                records[1..].iter().for_each(|r| drop(self.keys.next(r)));
                let mut body = Vec::new();
                records.iter().for_each(|r| encode_line(&mut body, r, OutputFormat::Json));
                vec![Request { key: format!("{first}+{}", records.len()), body: body.into() }]
            }
        }
    }
}

impl Output for HttpOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let requests = self.requests(records);
        let sender = self.sender.clone();
        crate::checkpoint::block_on(async move {
            let mut sent = futures::stream::iter(requests).map(|r| sender.send(r)).buffer_unordered(sender.cfg.max_in_flight);
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

/// What a request needs, owned, to run on the I/O runtime; built once, at open.
struct Sender {
    client: reqwest::Client,
    method: reqwest::Method,
    cfg: HttpOutputConfig,
    /// `content_type` for `body: record`, NDJSON's for `body: ndjson`.
    content_type: String,
}

impl Sender {
    async fn send(&self, r: Request) -> anyhow::Result<()> {
        let mut attempt = 0u32;
        loop {
            let req = self
                .client
                .request(self.method.clone(), &self.cfg.url)
                .header("Idempotency-Key", &r.key)
                .header(reqwest::header::CONTENT_TYPE, &self.content_type);
            let (failure, retry, wait) = match req.body(r.body.clone()).send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status();
                    let after = resp.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
                    let text = resp.text().await.unwrap_or_default();
                    let retry = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
                    (format!("status {status}: {}", text.chars().take(200).collect::<String>()), retry, after.map(|s| Duration::from_secs(s.min(60))))
                }
                Err(e) => (format!("{e}"), true, None),
            };
            if !retry || attempt >= self.cfg.retry_count {
                anyhow::bail!("http output: {} {} (Idempotency-Key {}) failed after {} attempt(s): {failure}", self.method, self.cfg.url, r.key, attempt + 1);
            }
            let backoff = Duration::from_millis(self.cfg.retry_backoff_ms.saturating_mul(1 << attempt.min(16))).min(Duration::from_secs(10));
            tracing::warn!(url = %self.cfg.url, key = %r.key, attempt = attempt + 1, "http output: {failure}; retrying");
            tokio::time::sleep(wait.unwrap_or(backoff)).await;
            attempt += 1;
        }
    }
}
