//! The `http` input's server: axum on a thread of its own (one current-thread tokio runtime),
//! POST on the configured path. Each request's body becomes records (`split_records`), queued
//! whole or refused whole (`Shared::enqueue`), then answered as `super`'s contract says. Every
//! answer other than 200 carries `{"error": ...}` saying what to do.

use super::{Refused, Shared};
use crate::connectors::input::Ack;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The running server; `stop` ends it once its open requests are answered.
pub(super) struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
    }
}

/// Serves `listener` on a thread of its own.
pub(super) fn start(listener: std::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<Running> {
    listener.set_nonblocking(true)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = Router::new()
        .route(&shared.cfg.path, post(ingest).options(preflight))
        .layer(DefaultBodyLimit::max(shared.cfg.max_body_bytes))
        .with_state(shared.clone());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let address = shared.cfg.address;
    std::thread::Builder::new().name("http-input".into()).spawn(move || {
        rt.block_on(async move {
            let served = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => axum::serve(l, app).with_graceful_shutdown(async move { drop(stopped.await) }).await,
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                tracing::error!(%address, "http input: the server stopped: {e}");
            }
        })
    })?;
    tracing::info!(%address, path = %shared.cfg.path, "http input: accepting POSTed records");
    Ok(Running { stop })
}

async fn ingest(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut resp = handle(&s, &headers, &body).await;
    if s.cfg.cors_enabled {
        resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    resp
}

async fn preflight(State(s): State<Arc<Shared>>) -> Response {
    if !s.cfg.cors_enabled {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let h = |v| HeaderValue::from_static(v);
    let headers = [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, h("*")),
        (header::ACCESS_CONTROL_ALLOW_METHODS, h("POST, OPTIONS")),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, h("authorization, content-type")),
    ];
    (StatusCode::NO_CONTENT, headers).into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::json!({ "error": message }).to_string()).into_response()
}

async fn handle(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(auth) = &s.cfg.auth {
        if !auth.admits(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes)) {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong Authorization header".into());
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let records = match split_records(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("{e}; no record of this request was taken")),
    };
    let n = records.len();
    let end = match s.enqueue(records) {
        Ok(end) => end,
        Err(Refused::Full) => {
            let mut r =
                error(StatusCode::SERVICE_UNAVAILABLE, format!("{} records are waiting for the stream (max_pending): send again later", s.cfg.max_pending));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        Err(Refused::TooMany) => {
            let msg = format!("the body holds {n} records, more than max_pending ({}) can ever queue: send smaller requests", s.cfg.max_pending);
            return error(StatusCode::PAYLOAD_TOO_LARGE, msg);
        }
        Err(Refused::Closed) => return error(StatusCode::SERVICE_UNAVAILABLE, "the stream is stopping: send again later".into()),
    };
    if s.cfg.ack == Ack::Immediate || n == 0 {
        return accepted(n);
    }
    let mut rx = s.acked.subscribe();
    let waited = tokio::time::timeout(Duration::from_millis(s.cfg.ack_timeout_ms), rx.wait_for(|&a| a >= end || s.closed.load(Relaxed))).await.is_ok();
    if *rx.borrow() >= end {
        accepted(n)
    } else if waited {
        error(StatusCode::SERVICE_UNAVAILABLE, "the stream stopped before a checkpoint covered these records: send them again".into())
    } else {
        let msg = format!("no checkpoint covered these records within ack_timeout_ms ({} ms); they are queued and may still be processed, so sending them again may duplicate them", s.cfg.ack_timeout_ms);
        error(StatusCode::GATEWAY_TIMEOUT, msg)
    }
}

fn accepted(n: usize) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], format!("{{\"accepted\":{n}}}")).into_response()
}

/// A body's records: one per non-blank line when every line is JSON (NDJSON); else the whole
/// body as one JSON document (written compact, so it stays one line); else an error naming the
/// first line that is not JSON.
pub(super) fn split_records(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            return match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(v) => Ok(vec![serde_json::to_vec(&v).unwrap_or_default()]),
                Err(_) => Err(format!("line {}: not JSON ({e})", i + 1)),
            };
        }
        out.push(line.to_vec());
    }
    Ok(out)
}
