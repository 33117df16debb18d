//! A small blocking HTTP/1.1 server for the operations endpoint: one thread accepting, one short
//! request per connection (`Connection: close`). It only answers GET on three paths.

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
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(probes)),
        ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/ready") if probes.ready() => ("200 OK", "text/plain", "ready\n".to_string()),
        ("GET", "/ready") => ("503 Service Unavailable", "text/plain", "not ready\n".to_string()),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics, /health or /ready\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    write!(conn, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    conn.flush()
}
