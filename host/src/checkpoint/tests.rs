//! The coordinator's protocol against an in-process store that can be made to fail: decisions,
//! carry-over of abandoned epochs, waiting for late uploads, fencing, tolerated failures.

use super::coordinator::{CheckpointMetrics, CkptMsg, Coordinator, CoordinatorHandle};
use super::*;
use crate::state::backend::flaky::Flaky;
use crate::state::backend::ObjectStore;
use crate::state::snapshot::SnapshotEntry;
use bytes::Bytes;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn settings(timeout_ms: u64, tolerated: u32) -> CheckpointSettings {
    CheckpointSettings {
        scope: "op".into(),
        stream: "s".into(),
        interval: Duration::from_millis(10),
        timeout: Duration::from_millis(timeout_ms),
        tolerated_failures: tolerated,
        retained: 3,
        exactly_once: true,
        key_groups: 128,
        lazy_restore: false,
        ttl_ms: None,
        gc_grace: Duration::from_secs(3600),
        decider: None,
        external_last: None,
        post_commit: None,
    }
}

fn spawn(store: Arc<Flaky>, s: CheckpointSettings, workers: usize) -> CoordinatorHandle {
    Coordinator::spawn(store, s, 1, workers, None, Arc::new(CheckpointMetrics::default()), None, Vec::new())
}

fn entry(k: &str) -> SnapshotEntry {
    SnapshotEntry { group: 1, store: "default".into(), key: k.into(), value: Some(b"v".to_vec()), written_ms: 1 }
}

/// Sends everything epoch `e` needs from 2 workers and the sink.
fn feed(h: &CoordinatorHandle, e: u64, keys: [&str; 2]) {
    h.in_flight.store(e, SeqCst);
    h.tx.send(CkptMsg::Injected { epoch: e, position: serde_json::json!({ "at": e }), ttl_clock_ms: 5 }).unwrap();
    h.tx.send(CkptMsg::Delta { epoch: e, worker: 0, entries: vec![entry(keys[0])] }).unwrap();
    h.tx.send(CkptMsg::Delta { epoch: e, worker: 1, entries: vec![entry(keys[1])] }).unwrap();
    h.tx.send(CkptMsg::SinkPrepared { epoch: e, files: vec![] }).unwrap();
}

fn wait(mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn manifest(store: &Flaky, e: u64) -> Manifest {
    let b = block_on(store.get(&key("op", "manifests", e))).unwrap().expect("manifest exists");
    serde_json::from_slice(&b).unwrap()
}

/// Every key in the manifest's chain, in restore order.
fn chain_keys(store: &Flaky, m: &Manifest) -> Vec<String> {
    m.state_files
        .iter()
        .flat_map(|f| {
            let b = block_on(store.get(&f.key)).unwrap().unwrap();
            snapshot::decode(&b, &f.key).unwrap().1.into_iter().map(|e| String::from_utf8(e.key).unwrap())
        })
        .collect()
}

fn stop(h: CoordinatorHandle) -> Option<String> {
    let _ = h.tx.send(CkptMsg::Shutdown); // a fenced coordinator has already exited
    h.join.join().unwrap();
    let f = h.fatal.lock().unwrap().clone();
    f
}

#[test]
fn decides_once_everything_is_durable() {
    let store = Arc::new(Flaky::default());
    let h = spawn(store.clone(), settings(5000, 3), 2);
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.metrics.last_decided.load(SeqCst) == 2));
    assert_eq!(h.in_flight.load(SeqCst), 0, "the next barrier may go");
    let m = manifest(&store, 2);
    assert_eq!(m.input_position, serde_json::json!({"at": 2}));
    assert_eq!(m.parent, None);
    let mut keys = chain_keys(&store, &m);
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    let d: Decision = serde_json::from_slice(&block_on(store.get(&key("op", "commits", 2))).unwrap().unwrap()).unwrap();
    assert!(matches!(d, Decision::Commit { epoch: 2, generation: 1, .. }));
    assert!(wait(|| block_on(store.get(&key("op", "committed", 2))).unwrap().is_some()));
    feed(&h, 3, ["c", "d"]);
    assert!(wait(|| h.metrics.last_decided.load(SeqCst) == 3));
    let m3 = manifest(&store, 3);
    assert_eq!(m3.parent, Some(2));
    assert_eq!(chain_keys(&store, &m3).len(), 4, "the chain holds both deltas");
    assert_eq!(stop(h), None);
}

#[test]
fn a_failed_upload_abandons_the_epoch_and_its_changes_carry_over() {
    let store = Arc::new(Flaky::default());
    let h = spawn(store.clone(), settings(5000, 3), 2);
    store.fail_data.store(true, SeqCst);
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.metrics.failures.load(SeqCst) == 1));
    assert!(block_on(store.get(&key("op", "commits", 2))).unwrap().is_none(), "never decided");
    store.fail_data.store(false, SeqCst);
    feed(&h, 3, ["c", "d"]);
    assert!(wait(|| h.metrics.last_decided.load(SeqCst) == 3));
    let mut keys = chain_keys(&store, &manifest(&store, 3));
    keys.sort();
    assert_eq!(keys, ["a", "b", "c", "d"], "epoch 2's changes are in epoch 3's chain");
    assert_eq!(stop(h), None);
}

#[test]
fn a_late_upload_of_an_abandoned_epoch_holds_back_the_next_decision() {
    let store = Arc::new(Flaky::default());
    let h = spawn(store.clone(), settings(250, 5), 2);
    // Epoch 2's uploads stall past its timeout: abandoned while they are still in flight.
    store.stall_data_ms.store(400, SeqCst);
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.metrics.failures.load(SeqCst) == 1));
    store.stall_data_ms.store(0, SeqCst);
    feed(&h, 3, ["c", "d"]);
    assert!(wait(|| h.metrics.last_decided.load(SeqCst) == 3));
    let m = manifest(&store, 3);
    assert!(m.created_ms >= block_on(store.list("op/data/")).unwrap().iter().map(|o| o.modified_ms).max().unwrap() - 5);
    let mut keys = chain_keys(&store, &m);
    keys.sort();
    assert_eq!(keys, ["a", "b", "c", "d"], "the late files of epoch 2 are part of epoch 3");
    assert_eq!(stop(h), None);
}

#[test]
fn a_decision_taken_by_another_generation_stops_this_one() {
    let store = Arc::new(Flaky::default());
    let fence = serde_json::to_vec(&Decision::Fence { epoch: 2, generation: 9 }).unwrap();
    block_on(store.put_if_absent(&key("op", "commits", 2), Bytes::from(fence))).unwrap();
    let h = spawn(store.clone(), settings(5000, 3), 2);
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.fatal.lock().unwrap().is_some()));
    let msg = stop(h).unwrap();
    assert!(msg.contains("fenced"), "{msg}");
}

#[test]
fn too_many_consecutive_failures_stop_the_stream() {
    let store = Arc::new(Flaky::default());
    store.fail_data.store(true, SeqCst);
    let h = spawn(store.clone(), settings(5000, 1), 2);
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.metrics.failures.load(SeqCst) == 1));
    assert!(h.fatal.lock().unwrap().is_none(), "one failure is tolerated");
    feed(&h, 3, ["c", "d"]);
    assert!(wait(|| h.fatal.lock().unwrap().is_some()));
    let msg = stop(h).unwrap();
    assert!(msg.contains("tolerated_checkpoint_failures"), "{msg}");
}
