//! The `http` input and output with the real binary on 127.0.0.1.
//! - Input: clients POST NDJSON batches and send again every request not answered 200, while
//!   the stream is SIGKILLed at random moments and restarted: every record must reach the output
//!   (nothing lost), and what appears twice must be bounded by what was unanswered at the kills.
//!   Bad requests get their status (401, 400, 413) and take nothing.
//! - Output: a receiver in this test that answers 503 to every first attempt: every record
//!   arrives, each under one `Idempotency-Key`, retries under the same key, a second run of the
//!   same input sends the same keys; a 400 stops the stream naming the URL and the status.
//!
//! Size: ARKFLOW_HTTP_RECORDS (default 40,000), ARKFLOW_HTTP_KILLS (5).

mod common;
use common::kill::{env_or, kill_repeatedly};
use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One POST to 127.0.0.1:`port`; (status, body), or the I/O error (nothing listening, reset).
fn post(port: u16, path: &str, headers: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(s, "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n", body.len())?;
    s.write_all(body)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))?;
    Ok((code, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()))
}

fn input_config(dir: &Dir, port: u16, extra: &str) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
{sm}streams:
  - name: ingest
    input: {{ type: http, address: "127.0.0.1:{port}", path: /ingest, key_field: user{extra} }}
    pipeline:
      thread_num: 2
      processors: []
    output: {{ type: file, path: {out} }}
    state: {{ operator_id: http-in, enabled: true }}
"#,
        sm = local_state(dir, 200, false),
        out = dir.path("out.jsonl").display(),
    ))
}

/// Ids in the output file.
fn output_ids(dir: &Dir) -> Vec<u64> {
    whole_json_lines(&dir.path("out.jsonl")).iter().map(|v| v["id"].as_u64().unwrap()).collect()
}

#[test]
fn http_input_loses_nothing_to_sigkills() {
    let dir = Dir::new();
    let port = free_port();
    let n = env_or("ARKFLOW_HTTP_RECORDS", 40_000);
    let kills = env_or("ARKFLOW_HTTP_KILLS", 5);
    let (clients, per_request) = (4u64, 100u64);
    let cfg = input_config(&dir, port, "");
    let resent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..clients)
        .map(|c| {
            let (resent, done) = (resent.clone(), done.clone());
            std::thread::spawn(move || {
                let mut id = c * per_request;
                while id < n {
                    let body: String = (id..(id + per_request).min(n)).map(|i| format!("{{\"id\":{i},\"user\":\"u{}\"}}\n", i % 97)).collect();
                    loop {
                        match post(port, "/ingest", "Content-Type: application/x-ndjson\r\n", body.as_bytes()) {
                            Ok((200, _)) => break,
                            Ok((503 | 504, _)) | Err(_) => {
                                resent.fetch_add(1, Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            Ok((code, text)) => panic!("unexpected {code}: {text}"),
                        }
                    }
                    id += clients * per_request;
                }
                done.fetch_add(1, Relaxed);
            })
        })
        .collect();
    let killed = kill_repeatedly(&cfg, kills, (400, 1500));
    let before = output_ids(&dir).len();
    let mut last = spawn(&cfg);
    let finished = wait_for(Duration::from_secs(120), || done.load(Relaxed) == clients);
    signal(&last, "TERM");
    let status = last.wait().unwrap();
    let mut log = String::new();
    last.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(finished, "every client got a 200 for every request: {log}");
    senders.into_iter().for_each(|s| s.join().unwrap());
    assert!(status.success(), "the final run ends cleanly on SIGTERM: {log}");
    assert_eq!(killed, kills);
    let ids = output_ids(&dir);
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    let missing: Vec<u64> = (0..n).filter(|i| !distinct.contains(i)).take(10).collect();
    eprintln!(
        "http input: {killed} kills, {before} records out before the final run, {} in all ({} twice), {} requests sent again",
        ids.len(),
        ids.len() - distinct.len(),
        resent.load(Relaxed)
    );
    assert!(before > 0, "records were acknowledged and written before the kills ended");
    assert!(missing.is_empty(), "every record POSTed reaches the output; missing e.g. {missing:?}");
    assert_eq!(distinct.len() as u64, n, "no record the clients did not send");
    // Only requests unanswered at a kill (or a stop) are sent twice: at most every client's
    // request in flight plus what the stream held of the queue, per kill.
    let bound = (kills + 1) * clients * per_request * 3;
    assert!(((ids.len() - distinct.len()) as u64) <= bound, "{} duplicates, more than {bound}", ids.len() - distinct.len());
}

#[test]
fn http_input_answers_bad_requests_with_their_status() {
    let dir = Dir::new();
    let port = free_port();
    let cfg = input_config(&dir, port, ", max_pending: 3, auth: { type: bearer, token: s3cret }");
    let mut child = spawn(&cfg);
    let auth = "Authorization: Bearer s3cret\r\n";
    let up = wait_for(Duration::from_secs(30), || matches!(post(port, "/ingest", auth, b""), Ok((200, _))));
    assert!(up, "the input answers once the stream runs");
    let (code, text) = post(port, "/ingest", "", b"{\"id\":1}").unwrap();
    assert_eq!(code, 401, "{text}");
    assert_eq!(post(port, "/ingest", "Authorization: Bearer s3cres\r\n", b"{\"id\":1}").unwrap().0, 401);
    let (code, text) = post(port, "/ingest", auth, b"{\"id\":1}\n{oops}\n").unwrap();
    assert_eq!(code, 400);
    assert!(text.contains("line 2: not JSON"), "{text}");
    let (code, text) = post(port, "/ingest", auth, b"{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n{\"id\":4}\n").unwrap();
    assert_eq!(code, 413);
    assert!(text.contains("more than max_pending (3)"), "{text}");
    let (code, text) = post(port, "/ingest", auth, b"{\"id\":7,\"user\":\"a\"}\n{\"id\":8,\"user\":\"b\"}").unwrap();
    assert_eq!((code, text.as_str()), (200, "{\"accepted\":2}"));
    // Answered after a decided checkpoint: the records are in the output already.
    let ids = output_ids(&dir);
    signal(&child, "TERM");
    assert!(child.wait().unwrap().success());
    assert_eq!(ids, vec![7, 8], "the 200 came after the records were written; none of the refused requests' records");
}

/// What the receiver saw: (idempotency key, body) per attempt, in arrival order.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP/1.1 receiver on 127.0.0.1: answers 503 to the first attempt of each key and `status`
/// to the others (one request per connection).
fn receiver(status: u16) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn);
                let (mut len, mut key, mut line) = (0usize, String::new(), String::new());
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    } else if let Some(v) = l.strip_prefix("idempotency-key:") {
                        key = v.trim().to_string();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let first = {
                    let mut seen = s.lock().unwrap();
                    let first = !seen.iter().any(|(k, _)| *k == key);
                    seen.push((key, String::from_utf8(body).unwrap()));
                    first
                };
                let code = if first { 503 } else { status };
                let _ = write!(r.get_mut(), "HTTP/1.1 {code} X\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope");
            });
        }
    });
    (port, seen)
}

fn output_config(dir: &Dir, port: u16, n: u64) -> std::path::PathBuf {
    let input = dir.path("in.jsonl");
    append_users(&input, 0, n, 10);
    dir.config(&format!(
        r#"
streams:
  - name: deliver
    input: {{ type: file, path: {input} }}
    pipeline: {{ processors: [] }}
    output: {{ type: http, url: "http://127.0.0.1:{port}/hook", retry_backoff_ms: 1, max_in_flight: 8, headers: {{ X-Source: arkflow }} }}
"#,
        input = input.display(),
    ))
}

#[test]
fn http_output_retries_under_one_key_per_record() {
    let n = 300;
    let (port, seen) = receiver(200);
    let dir = Dir::new();
    let cfg = output_config(&dir, port, n);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first_run: Vec<(String, String)> = std::mem::take(&mut *seen.lock().unwrap());
    let mut by_key: HashMap<&str, Vec<&str>> = HashMap::new();
    first_run.iter().for_each(|(k, b)| by_key.entry(k).or_default().push(b));
    assert_eq!(by_key.len() as u64, n, "one key per record");
    assert!(by_key.values().all(|b| b.len() == 2 && b[0] == b[1]), "each record sent twice under its key: refused once, then accepted");
    let mut ids: Vec<u64> = by_key.values().map(|b| serde_json::from_str::<serde_json::Value>(b[0]).unwrap()["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..n).collect::<Vec<_>>(), "every record delivered");
    // The same input again: the same keys, so a receiver that remembers them drops the replay.
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again: HashSet<String> = seen.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(again, by_key.keys().map(|k| k.to_string()).collect::<HashSet<_>>(), "a replay sends the same keys");
}

#[test]
fn http_output_stops_the_stream_on_a_refusal() {
    let (port, _) = receiver(400);
    let dir = Dir::new();
    let out = run(&output_config(&dir, port, 5), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("http://127.0.0.1:{port}/hook")) && err.contains("400"), "{err}");
}

#[test]
fn http_output_keys_survive_sigkills_so_a_deduplicating_receiver_gets_each_record_once() {
    let n = 6_000;
    let (port, seen) = receiver(200);
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    append_users(&input, 0, n, 10);
    let cfg = dir.config(&format!(
        r#"
{sm}streams:
  - name: deliver
    input: {{ type: file, path: {input}, rate_per_sec: 1000 }}
    pipeline: {{ thread_num: 2, processors: [] }}
    output: {{ type: http, url: "http://127.0.0.1:{port}/hook", retry_backoff_ms: 1, max_in_flight: 8 }}
    state: {{ operator_id: http-out, enabled: true }}
"#,
        sm = local_state(&dir, 200, false),
        input = input.display(),
    ));
    let killed = common::kill::kill_repeatedly(&cfg, 4, (400, 1200));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    let seen = seen.lock().unwrap();
    let mut by_key: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (k, b) in seen.iter() {
        by_key.entry(k).or_default().insert(b);
    }
    let ids: HashSet<u64> = by_key.values().flatten().map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()["id"].as_u64().unwrap()).collect();
    eprintln!("http output: {killed} kills, {} requests for {} keys", seen.len(), by_key.len());
    assert_eq!(killed, 4);
    assert_eq!(ids.len() as u64, n, "every record delivered");
    assert!(by_key.values().all(|bodies| bodies.len() == 1), "a key always carries the same record, across the replays");
    assert_eq!(by_key.len() as u64, n, "one key per record: a receiver that drops known keys gets each record once");
}
