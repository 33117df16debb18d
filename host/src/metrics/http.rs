//! A small blocking HTTP/1.1 server for the operations endpoint: one thread accepting, one short
//! request per connection (`Connection: close`). It answers GET on `/metrics`, `/health` and
//! `/ready`, and one control request, `POST /streams/<stream>/processors/<index>/reload` (live
//! plugin swap; see `processor::wasm::swap`), accepted from loopback peers only: 200 when the
//! new file was staged or is unchanged, 422 with the reason when it was refused, 404 when there
//! is no such `wasm` processor, 403 from a non-loopback peer.

use super::{render, Probes};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Binds `address` and serves until the process ends. Returns the bound address (port 0 picks
/// a free port).
pub fn serve(address: SocketAddr, probes: Arc<Probes>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(address).map_err(|e| anyhow::anyhow!("http.address {address}: cannot listen: {e}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("http".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let probes = probes.clone();
            // One thread per connection keeps a slow client from blocking the others.
            let _ = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
                let _ = handle(conn, &probes);
            });
        }
    })?;
    tracing::info!(%bound, "serving /metrics, /health and /ready");
    Ok(bound)
}

fn handle(mut conn: TcpStream, probes: &Arc<Probes>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "POST" {
        let (status, body) = control(path, conn.peer_addr()?, probes);
        return respond(&mut conn, status, "text/plain", &body);
    }
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(probes)),
        ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/ready") if probes.ready() => ("200 OK", "text/plain", "ready\n".to_string()),
        ("GET", "/ready") => ("503 Service Unavailable", "text/plain", "not ready\n".to_string()),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics, /health or /ready\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET or POST only\n".to_string()),
    };
    respond(&mut conn, status, ctype, &body)
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    write!(conn, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    conn.flush()
}

/// `POST /streams/<stream>/processors/<index>/reload`: checks and stages the plugin file again.
fn control(path: &str, peer: SocketAddr, probes: &Probes) -> (&'static str, String) {
    if !peer.ip().is_loopback() {
        return ("403 Forbidden", format!("control requests are accepted from loopback peers only (got {peer})\n"));
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (stream, index) = match parts.as_slice() {
        ["streams", s, "processors", i, "reload"] => match i.parse::<usize>() {
            Ok(i) => (*s, i),
            Err(_) => return ("404 Not Found", format!("`{i}` is not a processor index\n")),
        },
        _ => return ("404 Not Found", "POST /streams/<stream>/processors/<index>/reload\n".to_string()),
    };
    let shared = probes.streams.read().unwrap_or_else(|p| p.into_inner()).iter().find(|p| p.shared.name == stream).map(|p| p.shared.clone());
    let Some(shared) = shared else { return ("404 Not Found", format!("no running stream `{stream}`\n")) };
    let Some(slot) = shared.pipeline.swap_slot(index) else {
        return ("404 Not Found", format!("stream `{stream}` has no wasm processor at index {index}\n"));
    };
    match slot.reload() {
        Ok(msg) => ("200 OK", msg + "\n"),
        Err(msg) => ("422 Unprocessable Entity", format!("refused; the running plugin keeps going: {msg}\n")),
    }
}
