//! The coordinator's protocol against an in-process store that can be made to fail: decisions,
//! carry-over of abandoned epochs, waiting for late uploads, fencing, tolerated failures.

use super::coordinator::{CheckpointMetrics, CkptMsg, Coordinator, CoordinatorHandle};
use super::decision;
use super::*;
use crate::state::backend::flaky::Flaky;
use crate::state::backend::ObjectStore;
use crate::state::snapshot::SnapshotEntry;
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
        routing: "record key".into(),
        lazy_restore: false,
        ttl_ms: None,
        gc_grace: Duration::from_secs(3600),
        decider: None,
        external_last: None,
        committers: Default::default(),
    }
}

fn spawn(store: Arc<Flaky>, s: CheckpointSettings, workers: usize) -> CoordinatorHandle {
    Coordinator::spawn(store, s, 1, 1, workers, None, Arc::new(CheckpointMetrics::default()), None, Vec::new())
}

fn entry(k: &str) -> SnapshotEntry {
    SnapshotEntry { group: 1, store: "default".into(), key: k.into(), value: Some(b"v".to_vec()), written_ms: 1 }
}

/// Sends everything epoch `e` needs from 2 workers and the sink. A coordinator that stops on a
/// fatal failure may do so while this epoch is being fed (its first upload failed): the sends
/// after that find the channel closed, which the tests check through the coordinator's state.
fn feed(h: &CoordinatorHandle, e: u64, keys: [&str; 2]) {
    h.in_flight.store(e, SeqCst);
    let _ = h.tx.send(CkptMsg::Injected { epoch: e, position: serde_json::json!({ "at": e }), ttl_clock_ms: 5, event_time: None, last: false });
    let _ = h.tx.send(CkptMsg::Delta { epoch: e, worker: 0, entries: vec![entry(keys[0])] });
    let _ = h.tx.send(CkptMsg::Delta { epoch: e, worker: 1, entries: vec![entry(keys[1])] });
    let _ = h.tx.send(CkptMsg::SinkPrepared { epoch: e, commits: vec![] });
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
    let b = block_on(store.get(&manifest_key("op", e, 1))).unwrap().expect("manifest exists");
    Manifest::decode(&b, "m").unwrap()
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
    let d = Decision::decode(&block_on(store.get(&key("op", "commits", 2))).unwrap().unwrap(), "op/commits/2", "flaky").unwrap();
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
    let fence = Decision::Fence { epoch: 2, generation: 9 }.encode();
    block_on(store.put_if_absent(&key("op", "commits", 2), fence)).unwrap();
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

/// Issue: a process whose manifest writes failed for a while abandoned epochs 3..; a newer
/// generation fenced slot 3 (the one after its last decision) while it was paused. When the
/// store comes back it must not decide epoch 6: its slots 3..=5 are not all its own.
#[test]
fn a_zombie_that_abandoned_epochs_cannot_decide_past_a_newer_fence() {
    let store = Arc::new(Flaky::default());
    let h = spawn(store.clone(), settings(5000, 100), 2);
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.metrics.last_decided.load(SeqCst) == 2));
    *store.fail_writes.lock().unwrap() = Some("/manifests/".into());
    for e in 3..=5 {
        feed(&h, e, ["c", "d"]);
        assert!(wait(|| h.metrics.failures.load(SeqCst) == e - 2), "epoch {e} abandoned");
    }
    // A newer generation starts while this one is "paused": it fences the slot after slot 2.
    let (last, fence) = block_on(decision::fence_next(&*store, "op", 2)).unwrap();
    assert_eq!((last.map(|(e, _)| e), fence), (Some(2), 3));
    *store.fail_writes.lock().unwrap() = None;
    feed(&h, 6, ["e", "f"]);
    assert!(wait(|| h.fatal.lock().unwrap().is_some()));
    let msg = stop(h).unwrap();
    assert!(msg.contains("fence of generation 2"), "{msg}");
    assert!(block_on(store.get(&key("op", "commits", 6))).unwrap().is_none(), "epoch 6 never decided");
    let (d, _) = block_on(decision::last_commit(&*store, "op")).unwrap();
    assert_eq!(d.map(|(e, _)| e), Some(2));
}

/// The gaps a generation leaves are filled with its own abandon records before it decides.
#[test]
fn abandoned_epochs_leave_no_gap_in_the_decision_slots() {
    let store = Arc::new(Flaky::default());
    let h = spawn(store.clone(), settings(5000, 100), 2);
    *store.fail_writes.lock().unwrap() = Some("/manifests/".into());
    feed(&h, 2, ["a", "b"]);
    assert!(wait(|| h.metrics.failures.load(SeqCst) == 1));
    *store.fail_writes.lock().unwrap() = None;
    feed(&h, 3, ["c", "d"]);
    assert!(wait(|| h.metrics.last_decided.load(SeqCst) == 3));
    assert_eq!(stop(h), None);
    let (all, _) = block_on(decision::decisions(&*store, "op")).unwrap();
    assert!(matches!(all.as_slice(), [(2, Decision::Abandon { generation: 1, .. }), (3, Decision::Commit { generation: 1, .. })]), "{all:?}");
}

/// GC deletes old commits but never a fence (a paused older generation must still hit it).
#[test]
fn checkpoint_gc_never_deletes_fence_records() {
    let store = Arc::new(Flaky::default());
    let mut s = settings(5000, 3);
    s.retained = 1;
    s.gc_grace = Duration::ZERO;
    // Slot 1 is this generation's fence (as recovery writes it).
    block_on(store.put_if_absent(&key("op", "commits", 1), Decision::Fence { epoch: 1, generation: 1 }.encode())).unwrap();
    let h = spawn(store.clone(), s, 2);
    for e in 2..=5 {
        feed(&h, e, ["a", "b"]);
        assert!(wait(|| h.metrics.last_decided.load(SeqCst) == e));
    }
    assert!(wait(|| block_on(store.list("op/commits/")).unwrap().len() == 2), "old commits collected");
    assert_eq!(stop(h), None);
    let left: Vec<u64> = block_on(store.list("op/commits/")).unwrap().iter().filter_map(|m| parse_tail(&m.key)).collect();
    assert_eq!(left, [1, 5], "the fence stays, the retained commit stays");
}

mod decode {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        /// Manifests: random, truncated and bit-flipped bytes are errors naming the manifest.
        #[test]
        fn manifests_never_accept_damage(epoch in any::<u64>(), files in 0usize..5, clock in any::<i64>(), cut in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, noise in prop::collection::vec(any::<u8>(), 0..300)) {
            let m = Manifest {
                version: MANIFEST_VERSION,
                operator_id: "op".into(),
                stream: "s".into(),
                epoch,
                parent: epoch.checked_sub(1),
                generation: 3,
                key_groups: 128,
                routing: None,
                input_position: serde_json::json!({ "byte_offset": epoch }),
                state_files: (0..files).map(|i| StateFile { key: format!("k{i}"), epoch, size: i as u64, checksum: i as u64, entries: 1 }).collect(),
                sinks: vec![SinkCommit { sink: "output".into(), epoch, blob: serde_json::json!({ "parts": [] }) }],
                ttl_clock_ms: clock,
                created_ms: 0,
                event_time: None,
            };
            let b = m.encode();
            prop_assert_eq!(&Manifest::decode(&b, "m").unwrap(), &m);
            let e = Manifest::decode(&b[..cut.index(b.len())], "op/manifests/9").unwrap_err().to_string();
            prop_assert!(e.contains("op/manifests/9"), "{}", e);
            let mut f = b.clone();
            f[pos.index(b.len())] ^= 1 << bit;
            prop_assert!(Manifest::decode(&f, "m").is_err());
            let _ = Manifest::decode(&noise, "m");
        }
    }
}
