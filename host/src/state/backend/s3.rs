//! `s3` backend: objects in an S3 bucket (aws-sdk-s3), keys under `s3_config.prefix`.
//!
//! - Create-only writes are `PutObject` with `If-None-Match: *`. `412 PreconditionFailed` means
//!   the key exists. A `409 ConditionalRequestConflict` (a concurrent write to the same key is in
//!   flight) is retried, because its outcome is not yet known; if it persists, the store reads
//!   the key to decide.
//! - A create-only write that needed more than one attempt (for example: the first attempt timed
//!   out after the server had stored the object) can meet its own object on the retry and get a
//!   412. The store then reads the object: when it holds exactly our payload, the write counts
//!   as `Created`; otherwise `Exists`. (A different writer storing byte-identical content in that
//!   window is indistinguishable from our own write, and harmless: the object is what we wanted.)
//! - Stores that ignore conditional headers (garage, s3rver) silently overwrite: the host detects
//!   that with [`super::probe_create_only`] and refuses exactly-once on them.
//! - Transient errors (timeouts, refused or reset connections, 5xx, throttling) are retried by
//!   the SDK (standard mode with exponential backoff and jitter). Every attempt has a deadline,
//!   so a server that stops answering makes a call fail in bounded time instead of hanging.
//!
//! - Multipart uploads (`s3_multipart.rs`) stage the `s3` output's large parts.
//!
//! Credentials: static when both `access_key_id` and `secret_access_key` are set, otherwise the
//! default AWS credential chain (environment, profile, web identity, ECS/IMDS). Keys never appear
//! in messages, logs or `Debug` output.

use super::{ObjectMeta, ObjectStore, PutOutcome, StoreError};
use crate::config::S3Config;
use async_trait::async_trait;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per request (first try + retries) for transient errors.
pub const MAX_ATTEMPTS: u32 = 4;
/// First retry backoff; doubles per retry (with jitter) up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// TCP (and TLS) connect deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Deadline of one attempt of a request with a small body: from sending it to a parsed response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Payload throughput assumed when extending the deadline for large bodies (1 MiB/s: an
/// attempt gets `ATTEMPT_TIMEOUT` plus one second per MiB it transfers).
const MIN_THROUGHPUT_BYTES_PER_SEC: u64 = 1 << 20;
/// How a persistent `409 ConditionalRequestConflict` (another create-only write of the key in
/// progress) is tried again: 6 attempts, ~6 s in all.
const CONFLICT: crate::util::retry::Backoff = crate::util::retry::Backoff { attempts: 6, first: INITIAL_BACKOFF, max: Duration::from_secs(2) };

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Normalized: empty, or ends with exactly one `/`, no leading `/`.
    prefix: String,
    endpoint: Option<String>,
    /// Strings that must never appear in messages (the static access keys), for scrubbing
    /// server-supplied error text.
    secrets: Vec<String>,
    static_credentials: bool,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("static_credentials", &self.static_credentials)
            .finish_non_exhaustive()
    }
}

/// "checkpoints", "checkpoints/", "/checkpoints//" -> "checkpoints/"; "" or "/" -> "".
fn normalize_prefix(p: &str) -> String {
    let t = p.trim_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        format!("{t}/")
    }
}

fn attempt_timeout(payload_len: usize) -> Duration {
    ATTEMPT_TIMEOUT + Duration::from_secs(payload_len as u64 / MIN_THROUGHPUT_BYTES_PER_SEC)
}

impl S3Store {
    pub async fn new(cfg: &S3Config) -> Result<Self, StoreError> {
        if cfg.bucket.trim().is_empty() {
            return Err(StoreError::Config("s3_config.bucket must not be empty".into()));
        }
        if cfg.region.trim().is_empty() {
            return Err(StoreError::Config("s3_config.region must not be empty".into()));
        }
        let key_id = cfg.access_key_id.as_deref().filter(|s| !s.is_empty());
        let secret = cfg.secret_access_key.as_deref().filter(|s| !s.is_empty());
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(cfg.region.clone()));
        let mut secrets = Vec::new();
        match (key_id, secret) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "arkflow-s3_config"));
                // Scrub only strings long enough not to collide with ordinary words (real
                // AWS key ids have 20 characters, secrets 40; test servers accept "test").
                secrets.extend([id, secret].into_iter().filter(|s| s.len() >= 8).map(str::to_string));
            }
            (None, None) => {} // default credential chain
            (Some(_), None) => {
                return Err(StoreError::Config(
                    "s3_config.access_key_id is set but secret_access_key is not (set both, or neither to use the default AWS credential chain)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(StoreError::Config(
                    "s3_config.secret_access_key is set but access_key_id is not (set both, or neither to use the default AWS credential chain)".into(),
                ))
            }
        }
        let sdk = loader.load().await;
        let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_initial_backoff(INITIAL_BACKOFF).with_max_backoff(MAX_BACKOFF);
        let timeouts = TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(ATTEMPT_TIMEOUT).build();
        let mut b = aws_sdk_s3::config::Builder::from(&sdk).retry_config(retry).timeout_config(timeouts);
        let endpoint = cfg.endpoint_url.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(url) = &endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(StoreError::Config(format!("s3_config.endpoint_url `{url}` must start with http:// or https://")));
            }
            b = b.endpoint_url(url.clone()).force_path_style(true);
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            bucket: cfg.bucket.clone(),
            prefix: normalize_prefix(&cfg.prefix),
            endpoint,
            static_credentials: key_id.is_some(),
            secrets,
        })
    }

    /// The full object key of a store key.
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn err(&self, op: &'static str, key: &str, message: String) -> StoreError {
        let mut message = message;
        for s in &self.secrets {
            if !s.is_empty() && message.contains(s.as_str()) {
                message = message.replace(s.as_str(), "***");
            }
        }
        StoreError::Io { store: self.describe(), op, key: key.to_string(), message }
    }

    fn sdk_err<E>(&self, op: &'static str, key: &str, e: &SdkError<E>, attempts: &Attempts) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.err(op, key, self.sdk_message(e, attempts.get()))
    }

    fn sdk_message<E>(&self, e: &SdkError<E>, attempts: u32) -> String
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let tries = if attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() };
        let target = self.endpoint.as_deref().unwrap_or("AWS S3");
        match e {
            SdkError::ServiceError(se) => {
                let status = se.raw().status().as_u16();
                let code = se.err().code().unwrap_or("no error code");
                let mut m = format!("HTTP {status} {code}");
                if let Some(text) = se.err().message().filter(|t| !t.is_empty()) {
                    m.push_str(": ");
                    m.push_str(text);
                }
                if let Some(id) = se.err().meta().extra("aws_request_id") {
                    m.push_str(&format!(" (request id {id})"));
                }
                m + &tries
            }
            SdkError::TimeoutError(_) => {
                format!("no answer from {target} in time (each attempt may take {ATTEMPT_TIMEOUT:?} plus 1 s per MiB){tries}")
            }
            SdkError::DispatchFailure(d) => {
                let kind = if d.is_timeout() {
                    "timed out connecting to"
                } else if d.is_io() {
                    "connection to"
                } else {
                    "cannot send the request to"
                };
                format!("{kind} {target} failed: {}{tries}", DisplayErrorContext(e))
            }
            SdkError::ResponseError(r) => {
                format!("HTTP {} with an unreadable response from {target}: {}{tries}", r.raw().status().as_u16(), DisplayErrorContext(e))
            }
            _ => format!("{}{tries}", DisplayErrorContext(e)),
        }
    }

    /// Reads the object; `None` when absent. Also returns how many attempts the request used.
    async fn get_full(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.get_object(key, None).await
    }

    /// GetObject, optionally of the byte range `start..end`.
    async fn get_object(&self, key: &str, range: Option<(u64, u64)>) -> Result<Option<Bytes>, StoreError> {
        let attempts = Attempts::default();
        let res = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full(key))
            .set_range(range.map(|(a, b)| format!("bytes={a}-{}", b.saturating_sub(1))))
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(self.sdk_err("get", key, &e, &attempts)),
        };
        // The body streams after the response headers, outside the SDK's attempt deadline:
        // bound it here (stalled-stream protection also fails a stream that stops moving).
        let len = out.content_length().unwrap_or(0).max(0) as usize;
        match tokio::time::timeout(attempt_timeout(len), out.body.collect()).await {
            Ok(Ok(data)) => Ok(Some(data.into_bytes())),
            Ok(Err(e)) => Err(self.err("get", key, format!("reading the body failed: {}", DisplayErrorContext(&e)))),
            Err(_) => Err(self.err("get", key, format!("reading the body ({len} bytes) timed out"))),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        data: &Bytes,
        create_only: bool,
        attempts: &Attempts,
    ) -> Result<aws_sdk_s3::operation::put_object::PutObjectOutput, SdkError<aws_sdk_s3::operation::put_object::PutObjectError>> {
        let mut req = self.client.put_object().bucket(&self.bucket).key(self.full(key)).body(ByteStream::from(data.clone()));
        if create_only {
            req = req.if_none_match("*");
        }
        let mut c = req.customize().interceptor(attempts.clone());
        if data.len() as u64 >= MIN_THROUGHPUT_BYTES_PER_SEC {
            c = c.config_override(
                aws_sdk_s3::config::Builder::new()
                    .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(attempt_timeout(data.len())).build()),
            );
        }
        c.send().await
    }
}

/// Counts the attempts of one request (the SDK retries internally).
#[derive(Debug, Clone, Default)]
struct Attempts(Arc<AtomicU32>);

impl Attempts {
    fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "arkflow-attempt-counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    match e {
        SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
        _ => None,
    }
}

fn code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    status(e) == Some(404) || matches!(code(e), Some("NoSuchKey" | "NotFound"))
}

fn is_precondition_failed<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    status(e) == Some(412) || code(e) == Some("PreconditionFailed")
}

fn is_conditional_conflict<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    code(e) == Some("ConditionalRequestConflict") || (status(e) == Some(409) && code(e).is_none())
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<PutOutcome, StoreError> {
        let attempts = Attempts::default();
        // Ok(Ok(true)): created; Ok(Ok(false)): the key exists; Ok(Err): a definite failure;
        // Err: a conflicting write is in progress (tried again with the conflict backoff).
        let outcome = crate::util::retry::retry_async(CONFLICT, |_| async {
            match self.put_object(key, &data, true, &attempts).await {
                Ok(_) => Ok(Ok(true)),
                Err(e) if is_precondition_failed(&e) => Ok(Ok(false)),
                Err(e) if is_conditional_conflict(&e) => Err(()),
                Err(e) => Ok(Err(self.sdk_err("create", key, &e, &attempts))),
            }
        })
        .await;
        let conflicted = match outcome {
            Ok(Ok(true)) => return Ok(PutOutcome::Created),
            Ok(Ok(false)) => false,
            Ok(Err(e)) => return Err(e),
            Err(()) => true,
        };
        // The key exists (or a conflict persisted). If an earlier attempt of ours may have
        // reached the server, the object can be our own: compare payloads.
        let ambiguous = attempts.get() > 1;
        if ambiguous || conflicted {
            match self.get_full(key).await? {
                Some(stored) if ambiguous && stored == data => {
                    tracing::warn!(
                        store = %self.describe(),
                        key,
                        attempts = attempts.get(),
                        "create-only write: a retry found the object holding our own payload (an earlier attempt stored it); counted as created"
                    );
                    return Ok(PutOutcome::Created);
                }
                Some(_) => return Ok(PutOutcome::Exists),
                None => {
                    return Err(self.err(
                        "create",
                        key,
                        "the create-only write was refused (precondition failed or conflicting write in progress) but the object is absent; retry later".into(),
                    ))
                }
            }
        }
        Ok(PutOutcome::Exists)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let attempts = Attempts::default();
        self.put_object(key, &data, false, &attempts).await.map(|_| ()).map_err(|e| self.sdk_err("put", key, &e, &attempts))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.get_full(key).await
    }

    async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Bytes>, StoreError> {
        if end <= start {
            return Ok(Some(Bytes::new()));
        }
        self.get_object(key, Some((start, end))).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full_prefix = self.full(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let attempts = Attempts::default();
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.take())
                .customize()
                .interceptor(attempts.clone())
                .send()
                .await
                .map_err(|e| self.sdk_err("list", prefix, &e, &attempts))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                let Some(rel) = k.strip_prefix(self.prefix.as_str()) else { continue };
                out.push(ObjectMeta {
                    key: rel.to_string(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    modified_ms: obj.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) && !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let attempts = Attempts::default();
        match self.client.delete_object().bucket(&self.bucket).key(self.full(key)).customize().interceptor(attempts.clone()).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(self.sdk_err("delete", key, &e, &attempts)),
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/')).trim_end_matches('/').to_string()
    }
}

#[path = "s3_multipart.rs"]
mod multipart;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_normalize() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("checkpoints"), "checkpoints/");
        assert_eq!(normalize_prefix("checkpoints/"), "checkpoints/");
        assert_eq!(normalize_prefix("/a/b//"), "a/b/");
    }

    #[test]
    fn large_bodies_get_longer_deadlines() {
        assert_eq!(attempt_timeout(0), ATTEMPT_TIMEOUT);
        assert_eq!(attempt_timeout(100 << 20), ATTEMPT_TIMEOUT + Duration::from_secs(100));
    }

    #[tokio::test]
    async fn config_errors_and_no_secrets_in_debug() {
        let mut c = S3Config::new("b");
        c.access_key_id = Some("AKIDSECRETID".into());
        assert!(matches!(S3Store::new(&c).await, Err(StoreError::Config(_))));
        c.secret_access_key = Some("TOPSECRETVALUE".into());
        c.prefix = "checkpoints/".into();
        c.endpoint_url = Some("http://127.0.0.1:1".into());
        let s = S3Store::new(&c).await.unwrap();
        assert_eq!(s.describe(), "s3://b/checkpoints");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("AKIDSECRETID") && !dbg.contains("TOPSECRETVALUE"), "{dbg}");
        let scrubbed = s.err("get", "k", "bad key AKIDSECRETID / TOPSECRETVALUE".into()).to_string();
        assert!(!scrubbed.contains("AKIDSECRETID") && !scrubbed.contains("TOPSECRETVALUE"), "{scrubbed}");
        c.prefix = String::new();
        assert_eq!(S3Store::new(&c).await.unwrap().describe(), "s3://b");
    }
}
