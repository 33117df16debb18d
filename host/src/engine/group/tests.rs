//! `claims::take_over` against an in-process store: fresh claims, taking over a session's last
//! decision (and fencing it), falling back to a claim's `from` when its session decided nothing,
//! continuing a single-process run's checkpoints, and retrying a take-over that failed halfway.

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
    decide_with(store, scope, epoch, generation, entries, position, vec![]).await
}

/// [`decide`] with the sinks' pre-commits in the manifest.
async fn decide_with(
    store: &dyn ObjectStore,
    scope: &str,
    epoch: u64,
    generation: u64,
    entries: &[SnapshotEntry],
    position: &[(i32, i64)],
    sinks: Vec<crate::checkpoint::SinkCommit>,
) {
    let bytes = snapshot::encode(epoch, entries);
    let fkey = crate::checkpoint::data_key(scope, epoch, generation, "w0", 1);
    let file = StateFile { key: fkey.clone(), epoch, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: entries.len() as u64 };
    store.put_if_absent(&fkey, Bytes::from(bytes)).await.unwrap();
    let ps: serde_json::Map<String, serde_json::Value> = position.iter().map(|(p, o)| (p.to_string(), (*o).into())).collect();
    let m = Manifest {
        version: crate::checkpoint::MANIFEST_VERSION,
        operator_id: scope.into(),
        stream: "s".into(),
        epoch,
        parent: None,
        generation,
        key_groups: KG,
        routing: Some("partition".into()),
        input_position: serde_json::json!({ "kafka": { "in": ps } }),
        state_files: vec![file],
        sinks,
        ttl_clock_ms: 0,
        created_ms: 0,
        event_time: None,
    };
    let mbytes = m.encode();
    let mkey = crate::checkpoint::manifest_key(scope, epoch, generation);
    let checksum = snapshot::checksum_of(&mbytes);
    store.put_if_absent(&mkey, Bytes::from(mbytes)).await.unwrap();
    let d = Decision::Commit { epoch, manifest: mkey, checksum, generation };
    store.put_if_absent(&key(scope, "commits", epoch), d.encode()).await.unwrap();
}

fn groups(g: &[u32]) -> BTreeSet<u32> {
    g.iter().copied().collect()
}

#[test]
fn ownership_moves_through_claims() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        // Session 1 starts fresh with groups 0 and 1.
        let t = take_over(store.clone(), "op", 1, &groups(&[0, 1]), KG, "partition", None).await.unwrap();
        assert!(t.entries.is_empty() && t.heads.values().all(Option::is_none));
        // It decides epoch 3 holding both groups, at offsets 10 and 20.
        let s1 = session_scope("op", 1);
        decide(&*store, &s1, 3, 1, &[entry(0, "a"), entry(1, "b")], &[(0, 10), (1, 20)]).await;
        // Session 2 takes group 1 over: only group 1's state and partition 1's position.
        let t = take_over(store.clone(), "op", 2, &groups(&[1]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(1, "b")]);
        assert_eq!(t.position, serde_json::json!({ "kafka": { "in": { "1": 20 } } }));
        assert_eq!(t.heads[&1].as_ref().map(|h| (h.scope.clone(), h.epoch)), Some((s1.clone(), 3)));
        // Session 1 is fenced: its next epoch is taken, so it can never decide again.
        let fence = store.get(&key(&s1, "commits", 4)).await.unwrap().expect("fence written");
        assert!(matches!(Decision::decode(&fence, "f", "m").unwrap(), Decision::Fence { generation: 2, .. }));
        // Session 2 decided nothing; session 3 still finds group 1's state through claim 2's `from`.
        let t = take_over(store.clone(), "op", 3, &groups(&[1]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(1, "b")]);
        assert_eq!(t.heads[&1].as_ref().map(|h| h.scope.clone()), Some(s1.clone()));
        let claims: Vec<String> = store.list("op/keygroups/00001/").await.unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(claims.len(), 3, "one claim per owner: {claims:?}");
        // Group 0 was never taken over: session 4 gets it from session 1 as well.
        let t = take_over(store.clone(), "op", 4, &groups(&[0]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(0, "a")]);
    });
}

#[test]
fn first_claims_continue_a_single_process_run() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        decide(&*store, "op", 7, 5, &[entry(2, "x"), entry(3, "y")], &[(2, 70), (3, 80)]).await;
        let t = take_over(store.clone(), "op", 6, &groups(&[3]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(3, "y")]);
        assert_eq!(t.position, serde_json::json!({ "kafka": { "in": { "3": 80 } } }));
        // The single-process run is fenced too.
        assert!(store.get(&key("op", "commits", 8)).await.unwrap().is_some());
    });
}

#[test]
fn state_routed_otherwise_is_not_taken_over() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        decide(&*store, "op", 1, 1, &[entry(0, "a")], &[(0, 1)]).await;
        let e = take_over(store.clone(), "op", 2, &groups(&[0]), KG, "partition of repartition topic op-0-repartition", None).await.unwrap_err();
        assert!(e.to_string().contains("routed to key groups by partition;") && e.to_string().contains("another state.operator_id"), "{e}");
        let t = take_over(store.clone(), "op", 3, &groups(&[0]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(0, "a")], "the same routing restores");
    });
}

#[test]
fn key_groups_must_match_the_checkpoint() {
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        decide(&*store, "op", 1, 1, &[entry(0, "a")], &[(0, 1)]).await;
        let e = take_over(store.clone(), "op", 2, &groups(&[0]), KG * 2, "partition", None).await.unwrap_err();
        assert!(e.to_string().contains("key_groups = 8"), "{e}");
    });
}

#[test]
fn watchdog_waits_for_the_session_timeout_or_three_checkpoint_intervals() {
    assert_eq!(super::Watchdog::stale_ms(30_000, 1_000), 30_000);
    assert_eq!(super::Watchdog::stale_ms(10_000, 1_000), 10_000);
    assert_eq!(super::Watchdog::stale_ms(30_000, 30_000), 90_000);
    assert_eq!(super::Watchdog::stale_ms(10_000, u64::MAX), i64::MAX);
}

#[test]
fn a_take_over_that_failed_after_claiming_is_retried_with_a_new_generation() {
    crate::checkpoint::block_on(async {
        let failing = Arc::new(crate::state::backend::flaky::Flaky::default());
        let store: Arc<dyn ObjectStore> = failing.clone();
        take_over(store.clone(), "op", 1, &groups(&[0, 1]), KG, "partition", None).await.unwrap();
        let s1 = session_scope("op", 1);
        decide(&*store, &s1, 3, 1, &[entry(0, "a"), entry(1, "b")], &[(0, 10), (1, 20)]).await;
        // Session 2 fences session 1 and claims group 1, then cannot read the manifest.
        *failing.fail_get.lock().unwrap() = Some("/manifests/".into());
        let e = take_over(store.clone(), "op", 2, &groups(&[1]), KG, "partition", None).await.unwrap_err();
        assert!(format!("{e:#}").contains("injected"), "{e:#}");
        assert_eq!(store.list("op/keygroups/00001/").await.unwrap().len(), 2, "the failed attempt's claim stays");
        // The retry (session 3) passes over session 2's claim and restores session 1's decision.
        let t = take_over(store.clone(), "op", 3, &groups(&[1]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(1, "b")]);
        assert_eq!(t.position, serde_json::json!({ "kafka": { "in": { "1": 20 } } }));
        assert_eq!(t.heads[&1].as_ref().map(|h| h.scope.clone()), Some(s1));
        // Session 2 is fenced, so it can never decide over session 3.
        assert!(store.get(&key(&session_scope("op", 2), "commits", 1)).await.unwrap().is_some());
    });
}

#[test]
fn retry_waits_between_attempts_and_gives_up_with_the_last_error() {
    let delays = [std::time::Duration::from_millis(1); 2];
    let mut seen = Vec::new();
    let ok = super::retry(&delays, &|| false, |a| {
        seen.push(a);
        if a < 3 {
            anyhow::bail!("attempt {a}")
        }
        Ok(a)
    });
    assert_eq!((ok.unwrap(), seen), (3, vec![1, 2, 3]));
    let e = super::retry(&delays, &|| false, |a| -> anyhow::Result<()> { anyhow::bail!("attempt {a}") }).unwrap_err();
    assert_eq!(format!("{e:#}"), "gave up after 3 attempts: attempt 3");
    // A stopping process does not wait out the delays.
    let long = [std::time::Duration::from_secs(60)];
    let started = std::time::Instant::now();
    let e = super::retry(&long, &|| true, |_| -> anyhow::Result<()> { anyhow::bail!("down") }).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5) && e.to_string() == "down");
}

/// Keys under `prefix`.
async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store.list(prefix).await.unwrap().into_iter().map(|m| m.key).collect()
}

#[test]
fn gc_deletes_a_session_once_no_key_group_leads_to_it() {
    use super::gc::collect;
    crate::checkpoint::block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
        let none = BTreeSet::new();
        let (s1, s2, s3) = (session_scope("op", 1), session_scope("op", 2), session_scope("op", 3));
        take_over(store.clone(), "op", 1, &groups(&[0, 1]), KG, "partition", None).await.unwrap();
        decide(&*store, &s1, 1, 1, &[entry(0, "a"), entry(1, "b")], &[(0, 10), (1, 20)]).await;
        // Session 2 takes group 0 (fencing session 1); group 1 still leads to session 1.
        take_over(store.clone(), "op", 2, &groups(&[0]), KG, "partition", None).await.unwrap();
        decide(&*store, &s2, 1, 2, &[entry(0, "a2")], &[(0, 11)]).await;
        assert_eq!(collect(&*store, "op", &none).await.unwrap().objects, 1, "only group 0's first claim goes");
        assert!(!keys(&*store, &format!("{s1}/manifests/")).await.is_empty());
        // Session 3 takes group 1 but has not decided: its claim's `from` still leads to session 1.
        take_over(store.clone(), "op", 3, &groups(&[1]), KG, "partition", None).await.unwrap();
        let c = collect(&*store, "op", &none).await.unwrap();
        assert!(c.sessions.is_empty(), "{c:?}");
        assert!(!keys(&*store, &format!("{s1}/data/")).await.is_empty());
        // Once session 3 decided, session 1 is garbage; its fence stays.
        decide(&*store, &s3, 1, 3, &[entry(1, "b3")], &[(1, 21)]).await;
        let c = collect(&*store, "op", &none).await.unwrap();
        assert_eq!(c.sessions, vec![1]);
        assert_eq!(
            keys(&*store, &format!("{s1}/")).await,
            vec![key(&s1, "commits", 2), key(&s1, "commits", 3)],
            "only the fences (by sessions 2 and 3) are left"
        );
        // Session 2 (not fenced, owns group 0) and session 3 are untouched; each group has one claim.
        assert_eq!(keys(&*store, &format!("{s2}/commits/")).await.len(), 1);
        assert_eq!(keys(&*store, "op/keygroups/").await.len(), 2);
        // State still resolves: group 0 from session 2, group 1 from session 3.
        let t = take_over(store.clone(), "op", 4, &groups(&[0, 1]), KG, "partition", None).await.unwrap();
        assert_eq!(t.entries, vec![entry(0, "a2"), entry(1, "b3")]);
        // A session fenced by now but kept by its process is not collected.
        decide(&*store, &session_scope("op", 4), 1, 4, &[entry(0, "a4")], &[(0, 12)]).await;
        take_over(store.clone(), "op", 5, &groups(&[0, 1]), KG, "partition", None).await.unwrap();
        decide(&*store, &session_scope("op", 5), 1, 5, &[entry(0, "a5")], &[(0, 13)]).await;
        let c = collect(&*store, "op", &BTreeSet::from([4])).await.unwrap();
        assert_eq!(c.sessions, vec![2, 3]);
        assert!(!keys(&*store, &format!("{}/data/", session_scope("op", 4))).await.is_empty());
    });
}

/// Group mode refuses, by name, what it cannot run: each config fails before any broker is reached.
/// A committer that records what it is asked to do.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl crate::checkpoint::Committer for Recorder {
    fn commit(&self, epoch: u64, blob: &serde_json::Value, replay: bool) -> Result<(), crate::checkpoint::CommitError> {
        self.0.lock().unwrap().push(format!("commit {epoch} {blob} replay={replay}"));
        Ok(())
    }
    fn abandon(&self, scope: &str, after: Option<u64>) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(format!("abandon {scope} after {after:?}"));
        Ok(())
    }
}

#[test]
fn a_new_owner_finishes_a_fenced_sessions_last_commit_and_releases_the_rest() {
    use crate::checkpoint::{block_on, Committer, Committers, SinkCommit};
    let store: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new());
    let rec = Arc::new(Recorder::default());
    let committers: Committers = [("output".to_string(), rec.clone() as Arc<dyn Committer>)].into();
    let calls = || std::mem::take(&mut *rec.0.lock().unwrap());
    let (s1, s2) = (session_scope("op", 1), session_scope("op", 2));
    block_on(take_over(store.clone(), "op", 1, &groups(&[0, 1]), KG, "partition", None)).unwrap();
    // Session 1 decides epoch 3 with output of its s3-like sink and of an outbox, then dies
    // before committing.
    let sinks = vec![
        SinkCommit { sink: "output".into(), epoch: 3, blob: serde_json::json!({ "n": 3 }) },
        SinkCommit { sink: "outputs.k".into(), epoch: 3, blob: serde_json::json!({}) },
    ];
    block_on(decide_with(&*store, &s1, 3, 1, &[entry(0, "a"), entry(1, "b")], &[(0, 10), (1, 20)], sinks));
    let t = block_on(take_over(store.clone(), "op", 2, &groups(&[0]), KG, "partition", None)).unwrap();
    super::settle::settle(&*store, &t, &committers).unwrap();
    assert_eq!(
        calls(),
        [r#"commit 3 {"n":3} replay=true"#.to_string(), format!("abandon {s1} after Some(3)")],
        "the decided commit replayed (only the sinks given), then the rest released"
    );
    // Once the epoch is marked committed, a later owner only releases.
    block_on(store.put_if_absent(&crate::layout::committed(&s1, 3), Bytes::from_static(b"{}"))).unwrap();
    let t = block_on(take_over(store.clone(), "op", 3, &groups(&[1]), KG, "partition", None)).unwrap();
    super::settle::settle(&*store, &t, &committers).unwrap();
    assert_eq!(calls(), [format!("abandon {s1} after Some(3)")]);
    // Session 2 decided nothing and died before settling: group 0 continues from session 1's
    // epoch 3 through claim 2's `from`, which is replayed too (not marked in this case), and all
    // of session 2's staging is released.
    block_on(store.delete(&crate::layout::committed(&s1, 3))).unwrap();
    let t = block_on(take_over(store.clone(), "op", 4, &groups(&[0]), KG, "partition", None)).unwrap();
    super::settle::settle(&*store, &t, &committers).unwrap();
    assert_eq!(calls(), [r#"commit 3 {"n":3} replay=true"#.to_string(), format!("abandon {s2} after None")]);
    // Without such sinks there is nothing to do.
    super::settle::settle(&*store, &t, &Committers::new()).unwrap();
    assert!(calls().is_empty());
}

#[test]
fn group_mode_refuses_what_it_cannot_run() {
    const LOCAL: &str = ", backend_type: local, local_config: { path: /nonexistent/arkflow }";
    let yaml = |sm: &str, output: &str| {
        format!(
            "state_management: {{ enabled: true{sm} }}
streams:
  - name: g
    input: {{ type: kafka, brokers: [\"127.0.0.1:1\"], topics: [in], assignment: group }}
    pipeline: {{ processors: [] }}
    output: {output}
"
        )
    };
    let cases = [
        (yaml(", backend_type: memory", "{ type: drop }"), "memory is private to a process"),
        (yaml(&format!("{LOCAL}, exactly_once: true"), "{ type: file, path: /tmp/x }"), "cannot use a file output"),
        (
            yaml(&format!("{LOCAL}, exactly_once: true"), "{ type: kafka, brokers: [\"127.0.0.1:1\"], topic: out, exactly_once: true }"),
            "needs exactly_once_mode: outbox",
        ),
        (
            yaml(LOCAL, "{ type: kafka, brokers: [\"127.0.0.1:1\"], topic: out, exactly_once: true, exactly_once_mode: outbox }"),
            "needs state_management.exactly_once: true",
        ),
    ];
    for (y, want) in cases {
        let cfg = crate::config::EngineConfig::from_yaml_str(&y, None).unwrap_or_else(|e| panic!("{y}: {e:#}"));
        let e = crate::engine::build_streams(&cfg, &cfg.streams[0]).err().unwrap_or_else(|| panic!("accepted:\n{y}"));
        assert!(format!("{e:#}").contains(want), "{y}\nwanted `{want}` in: {e:#}");
    }
}

mod decode {
    use super::super::claims::{Claim, Head};
    use proptest::prelude::*;

    proptest! {
        /// Claims: random, truncated and bit-flipped bytes are errors naming the claim.
        #[test]
        fn claims_never_accept_damage(session in any::<u64>(), epoch in any::<u64>(), with_from in any::<bool>(), cut in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, noise in prop::collection::vec(any::<u8>(), 0..200)) {
            let from = with_from.then(|| Head { scope: "op".into(), epoch, generation: 2, manifest: "op/manifests/x".into(), checksum: epoch });
            let c = Claim { session, from };
            let b = c.encode();
            prop_assert_eq!(Claim::decode(&b, "k", "s").unwrap(), c);
            let e = Claim::decode(&b[..cut.index(b.len())], "op/keygroups/00001/7", "s").unwrap_err().to_string();
            prop_assert!(e.contains("op/keygroups/00001/7"), "{}", e);
            let mut f = b.to_vec();
            f[pos.index(b.len())] ^= 1 << bit;
            prop_assert!(Claim::decode(&f, "k", "s").is_err());
            let _ = Claim::decode(&noise, "k", "s");
        }
    }
}
