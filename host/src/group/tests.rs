//! `claims::take_over` against an in-process store: fresh claims, taking over a session's last
//! decision (and fencing it), falling back to a claim's `from` when its session decided nothing,
//! and continuing a single-process run's checkpoints.

use super::claims::{session_scope, take_over};
use crate::checkpoint::{key, Decision, Manifest, StateFile};
use crate::state::backend::{MemoryStore, ObjectStore};
use crate::state::snapshot::{self, SnapshotEntry};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::Arc;

const KG: u32 = 8;

fn entry(group: u32, k: &str) -> SnapshotEntry {
    SnapshotEntry { group, store: "default".into(), key: k.into(), value: Some(b"v".to_vec()), written_ms: 1 }
}

/// Writes a decided checkpoint of `scope` holding `entries`, with `position` offsets per partition.
async fn decide(store: &dyn ObjectStore, scope: &str, epoch: u64, generation: u64, entries: &[SnapshotEntry], position: &[(i32, i64)]) {
    let bytes = snapshot::encode(epoch, entries);
    let fkey = crate::checkpoint::data_key(scope, epoch, "w0", 1);
    let file = StateFile { key: fkey.clone(), epoch, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: entries.len() as u64 };
    store.put_if_absent(&fkey, Bytes::from(bytes)).await.unwrap();
    let ps: serde_json::Map<String, serde_json::Value> = position.iter().map(|(p, o)| (p.to_string(), (*o).into())).collect();
    let m = Manifest {
        version: 1,
        operator_id: scope.into(),
        stream: "s".into(),
        epoch,
        parent: None,
        generation,
        key_groups: KG,
        input_position: serde_json::json!({ "kafka": { "in": ps } }),
        state_files: vec![file],
        sink_files: vec![],
        ttl_clock_ms: 0,
        created_ms: 0,
    };
    let mbytes = serde_json::to_vec(&m).unwrap();
    let mkey = key(scope, "manifests", epoch);
    let checksum = snapshot::checksum_of(&mbytes);
    store.put_if_absent(&mkey, Bytes::from(mbytes)).await.unwrap();
    let d = Decision::Commit { epoch, manifest: mkey, checksum, generation };
    store.put_if_absent(&key(scope, "commits", epoch), Bytes::from(serde_json::to_vec(&d).unwrap())).await.unwrap();
}

fn groups(g: &[u32]) -> BTreeSet<u32> {
    g.iter().copied().collect()
}

#[test]
fn ownership_moves_through_claims() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        // Session 1 starts fresh with groups 0 and 1.
        let t = take_over(store.clone(), "op", 1, &groups(&[0, 1]), KG, None).await.unwrap();
        assert!(t.entries.is_empty() && t.heads.values().all(Option::is_none));
        // It decides epoch 3 holding both groups, at offsets 10 and 20.
        let s1 = session_scope("op", 1);
        decide(&*store, &s1, 3, 1, &[entry(0, "a"), entry(1, "b")], &[(0, 10), (1, 20)]).await;
        // Session 2 takes group 1 over: only group 1's state and partition 1's position.
        let t = take_over(store.clone(), "op", 2, &groups(&[1]), KG, None).await.unwrap();
        assert_eq!(t.entries, vec![entry(1, "b")]);
        assert_eq!(t.position, serde_json::json!({ "kafka": { "in": { "1": 20 } } }));
        assert_eq!(t.heads[&1].as_ref().map(|h| (h.scope.clone(), h.epoch)), Some((s1.clone(), 3)));
        // Session 1 is fenced: its next epoch is taken, so it can never decide again.
        let fence = store.get(&key(&s1, "commits", 4)).await.unwrap().expect("fence written");
        assert!(matches!(serde_json::from_slice(&fence).unwrap(), Decision::Fence { generation: 2, .. }));
        // Session 2 decided nothing; session 3 still finds group 1's state through claim 2's `from`.
        let t = take_over(store.clone(), "op", 3, &groups(&[1]), KG, None).await.unwrap();
        assert_eq!(t.entries, vec![entry(1, "b")]);
        assert_eq!(t.heads[&1].as_ref().map(|h| h.scope.clone()), Some(s1.clone()));
        let claims: Vec<String> = store.list("op/keygroups/00001/").await.unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(claims.len(), 3, "one claim per owner: {claims:?}");
        // Group 0 was never taken over: session 4 gets it from session 1 as well.
        let t = take_over(store.clone(), "op", 4, &groups(&[0]), KG, None).await.unwrap();
        assert_eq!(t.entries, vec![entry(0, "a")]);
    });
}

#[test]
fn first_claims_continue_a_single_process_run() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        decide(&*store, "op", 7, 5, &[entry(2, "x"), entry(3, "y")], &[(2, 70), (3, 80)]).await;
        let t = take_over(store.clone(), "op", 6, &groups(&[3]), KG, None).await.unwrap();
        assert_eq!(t.entries, vec![entry(3, "y")]);
        assert_eq!(t.position, serde_json::json!({ "kafka": { "in": { "3": 80 } } }));
        // The single-process run is fenced too.
        assert!(store.get(&key("op", "commits", 8)).await.unwrap().is_some());
    });
}

#[test]
fn key_groups_must_match_the_checkpoint() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        decide(&*store, "op", 1, 1, &[entry(0, "a")], &[(0, 1)]).await;
        let e = take_over(store.clone(), "op", 2, &groups(&[0]), KG * 2, None).await.unwrap_err();
        assert!(e.to_string().contains("key_groups = 8"), "{e}");
    });
}
