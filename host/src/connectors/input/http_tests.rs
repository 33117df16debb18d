use super::server::split_records;
use super::*;
use crate::connectors::input::Ack;

fn config(extra: &str) -> Result<HttpInputConfig, ConfigError> {
    let yaml = format!("streams:\n  - input: {{type: http, address: '127.0.0.1:0'{extra}}}\n    output: {{type: drop}}\n");
    let cfg = crate::config::EngineConfig::from_yaml_str(&yaml, None)?;
    Ok(cfg.streams[0].input.get::<HttpInputConfig>().unwrap().clone())
}

#[test]
fn defaults_and_refusals() {
    let c = config("").unwrap();
    assert_eq!((c.path.as_str(), c.ack, c.max_pending, c.auth.is_none()), ("/", Ack::AfterCheckpoint, 65_536, true));
    let e = |extra: &str| config(extra).unwrap_err().to_string();
    assert!(e(", path: 'no-slash'").contains("input.path must be a plain absolute path"), "{}", e(", path: 'no-slash'"));
    assert!(e(", ack: later").contains("later"));
    assert!(e(", max_pending: 0").contains("max_pending"));
    assert!(e(", cors: true").contains("cors"));
    let bad_addr = crate::config::EngineConfig::from_yaml_str("streams:\n  - input: {type: http, address: 'localhost'}\n    output: {type: drop}\n", None);
    assert!(bad_addr.unwrap_err().to_string().contains("input.address must be IP:port"));
}

#[test]
fn bodies_split_into_json_lines_or_one_document() {
    assert_eq!(split_records(b"{\"a\":1}\n\n{\"a\":2}\r\n").unwrap(), vec![b"{\"a\":1}".to_vec(), b"{\"a\":2}".to_vec()]);
    assert_eq!(split_records(b"{\n  \"a\": [1,\n 2]\n}\n").unwrap(), vec![b"{\"a\":[1,2]}".to_vec()]);
    assert_eq!(split_records(b"").unwrap(), Vec::<Vec<u8>>::new());
    assert!(split_records(b"{\"a\":1}\nnot json\n").unwrap_err().starts_with("line 2: not JSON"));
}

fn shared(max_pending: usize) -> Arc<Shared> {
    let mut cfg = config("").unwrap();
    cfg.max_pending = max_pending;
    let (acked, _) = tokio::sync::watch::channel(0);
    Arc::new(Shared { queue: Mutex::new(Queue { records: VecDeque::new(), next: 0 }), ready: Condvar::new(), acked, closed: AtomicBool::new(false), cfg })
}

#[test]
fn a_request_is_queued_whole_or_refused_whole() {
    let s = shared(3);
    let recs = |n: usize| (0..n).map(|i| format!("{{\"i\":{i}}}").into_bytes()).collect::<Vec<_>>();
    assert_eq!(s.enqueue(recs(2)), Ok(2));
    assert_eq!(s.enqueue(recs(2)), Err(Refused::Full));
    assert_eq!(s.enqueue(recs(4)), Err(Refused::TooMany));
    assert_eq!(s.enqueue(recs(1)), Ok(3));
    let mut input = HttpInput { shared: s.clone(), listener: None, server: None, read: 0, ack_on_read: false };
    let batch = input.next_batch().unwrap().unwrap();
    assert_eq!(batch.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(input.position(), serde_json::json!({ "http": 3 }));
    input.decided(1, &serde_json::json!({ "http": 2 }));
    assert_eq!(*s.acked.borrow(), 2);
    input.decided(2, &serde_json::json!({ "http": 1 }));
    assert_eq!(*s.acked.borrow(), 2, "acknowledgements never go back");
    drop(input);
    assert_eq!(s.enqueue(recs(1)), Err(Refused::Closed));
}

#[test]
fn a_restart_resumes_the_count_at_the_checkpoint() {
    let s = shared(10);
    let mut input = HttpInput { shared: s.clone(), listener: None, server: None, read: 0, ack_on_read: true };
    input.seek(&serde_json::json!({ "http": 40 })).unwrap();
    assert_eq!(s.enqueue(vec![b"{}".to_vec()]), Ok(41));
    assert_eq!(input.next_batch().unwrap().unwrap()[0].offset, 40);
    assert_eq!(*s.acked.borrow(), 41, "without checkpoints, reading acknowledges");
    assert!(input.seek(&serde_json::json!({ "file": 1 })).unwrap_err().to_string().contains("not a http position"));
}
