//! A loopback HTTP/1.1 proxy in front of an S3 server, for fault injection: it passes requests
//! through, refuses connections (and cuts open ones), holds every request (a paused store), or
//! answers `503 SlowDown` to writes whose path contains a prefix (a directory that cannot be
//! written). One upstream connection per client connection; bodies framed by Content-Length or
//! chunked encoding; `Expect: 100-continue` answered by the proxy itself.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Connections are refused (accepted and closed at once) and open ones are cut.
    Refuse,
    /// Requests wait until the mode changes.
    Pause,
    /// PUT/POST/DELETE whose path contains this answer 503.
    FailWrites(String),
}

pub struct Proxy {
    pub port: u16,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let p = Proxy { port, mode: Arc::new(Mutex::new(Mode::Pass)), conns: Arc::default(), stop: Arc::default() };
        let (mode, conns, stop) = (p.mode.clone(), p.conns.clone(), p.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((client, _)) => {
                        if *mode.lock().unwrap() == Mode::Refuse {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        }
                        client.set_nonblocking(false).unwrap();
                        conns.lock().unwrap().push(client.try_clone().unwrap());
                        let mode = mode.clone();
                        std::thread::spawn(move || {
                            let _ = serve(client, upstream, &mode);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        p
    }

    pub fn set(&self, m: Mode) {
        if m == Mode::Refuse {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        *self.mode.lock().unwrap() = m;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        *self.mode.lock().unwrap() = Mode::Pass;
    }
}

/// One HTTP message: the head (start line + headers, as sent) and the body.
struct Message {
    head: String,
    body: Vec<u8>,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads a head; None at a clean EOF.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return if head.is_empty() { Ok(None) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) };
        }
        if line == "\r\n" || line == "\n" {
            if head.is_empty() {
                continue;
            }
            return Ok(Some(head));
        }
        head.push_str(&line);
    }
}

/// Reads a body framed by the head; `None` length and no chunking = until EOF (if `to_eof`).
fn read_body(r: &mut impl BufRead, head: &str, to_eof: bool) -> std::io::Result<Vec<u8>> {
    if header(head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).map_err(std::io::Error::other)?;
            if n == 0 {
                // Trailers until the empty line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 || t == "\r\n" {
                        break;
                    }
                }
                return Ok(out);
            }
            let start = out.len();
            out.resize(start + n, 0);
            r.read_exact(&mut out[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    }
    if let Some(n) = header(head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0u8; n];
        r.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if to_eof {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// The head with chunking and Expect removed and the body's length set.
fn reframe(head: &str, len: usize) -> String {
    let mut out = String::new();
    for (i, l) in head.lines().enumerate() {
        let name = l.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        if i > 0 && matches!(name.as_str(), "transfer-encoding" | "content-length" | "expect" | "connection") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    out
}

fn serve(client: TcpStream, upstream: u16, mode: &Mutex<Mode>) -> std::io::Result<()> {
    let mut cr = BufReader::new(client.try_clone()?);
    let mut cw = client;
    let mut up: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while let Some(head) = read_head(&mut cr)? {
        if header(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            cw.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let req = Message { body: read_body(&mut cr, &head, false)?, head };
        let (method, path) = {
            let mut it = req.head.split_whitespace();
            (it.next().unwrap_or("").to_string(), it.next().unwrap_or("").to_string())
        };
        loop {
            let m = mode.lock().unwrap().clone();
            match m {
                Mode::Pause => std::thread::sleep(Duration::from_millis(20)),
                Mode::Refuse => {
                    let _ = cw.shutdown(Shutdown::Both);
                    return Ok(());
                }
                Mode::FailWrites(p) if matches!(method.as_str(), "PUT" | "POST" | "DELETE") && path.contains(&p) => {
                    let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>injected write failure</Message></Error>";
                    write!(cw, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n", body.len())?;
                    cw.write_all(body)?;
                    break;
                }
                _ => {
                    if up.is_none() {
                        let s = TcpStream::connect(("127.0.0.1", upstream))?;
                        up = Some((BufReader::new(s.try_clone()?), s));
                    }
                    let (ur, uw) = up.as_mut().expect("connected");
                    uw.write_all(reframe(&req.head, req.body.len()).as_bytes())?;
                    uw.write_all(&req.body)?;
                    let Some(rhead) = read_head(ur)? else { return Ok(()) };
                    let status: u16 = rhead.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(500);
                    let no_body = method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
                    let framed = header(&rhead, "content-length").is_some() || header(&rhead, "transfer-encoding").is_some();
                    let body = if no_body { Vec::new() } else { read_body(ur, &rhead, true)? };
                    let close =
                        !framed && !no_body || header(&rhead, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) || rhead.starts_with("HTTP/1.0");
                    let mut out = reframe(&rhead, body.len());
                    if no_body {
                        // Keep the upstream's Content-Length of a HEAD answer as it was.
                        out = rhead.clone() + "\r\n";
                    }
                    cw.write_all(out.as_bytes())?;
                    cw.write_all(&body)?;
                    if close {
                        up = None;
                    }
                    break;
                }
            }
        }
    }
    Ok(())
}
