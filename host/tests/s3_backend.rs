//! The `s3` checkpoint backend against real S3-compatible servers on 127.0.0.1:
//! `moto_server` (create-only writes honoured) and `garage` (conditional headers ignored).
//! Install them with `bash tests/servers/install.sh`.

mod common;
use common::s3 as servers;

use arkflow::state::backend::s3::S3Store;
use arkflow::state::backend::{probe_create_only, ObjectStore, PutOutcome};
use bytes::Bytes;
use servers::{Garage, Moto, S3Target};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn store(t: &S3Target, prefix: &str) -> S3Store {
    S3Store::new(&t.s3_config(prefix)).await.expect("S3Store::new")
}

fn keys(list: &[arkflow::state::backend::ObjectMeta]) -> Vec<&str> {
    list.iter().map(|m| m.key.as_str()).collect()
}

/// What every store must do (the crate's conformance check, repeated here for S3).
async fn basic_behaviour(s: &dyn ObjectStore) {
    assert_eq!(s.get("a/missing").await.unwrap(), None);
    assert_eq!(s.put_if_absent("a/x/1", Bytes::from_static(b"one")).await.unwrap(), PutOutcome::Created);
    s.put("a/hint", Bytes::from_static(b"h1")).await.unwrap();
    s.put("a/hint", Bytes::from_static(b"h2")).await.unwrap();
    assert_eq!(s.get("a/hint").await.unwrap().as_deref(), Some(&b"h2"[..]));
    s.put_if_absent("a/x/0", Bytes::from_static(b"zero")).await.unwrap();
    s.put_if_absent("b/y", Bytes::from_static(b"other")).await.unwrap();
    assert_eq!(keys(&s.list("a/x/").await.unwrap()), ["a/x/0", "a/x/1"]);
    assert_eq!(keys(&s.list("").await.unwrap()), ["a/hint", "a/x/0", "a/x/1", "b/y"]);
    let meta = &s.list("a/x/1").await.unwrap()[0];
    assert_eq!(meta.size, 3);
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((meta.modified_ms - now_ms).abs() < 600_000, "modified_ms {} vs now {now_ms}", meta.modified_ms);
    s.delete("a/x/0").await.unwrap();
    s.delete("a/x/0").await.unwrap();
    s.delete("never/existed").await.unwrap();
    assert_eq!(keys(&s.list("a/x/").await.unwrap()), ["a/x/1"]);
    assert_eq!(s.get("a/x/0").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_full_behaviour() {
    let moto = Moto::start();
    let s = store(&moto.target, "checkpoints/").await;
    assert_eq!(s.describe(), "s3://arkflow-test/checkpoints");
    basic_behaviour(&s).await;

    // Create-only is honoured: the second write is refused and the first payload survives.
    assert_eq!(s.put_if_absent("a/x/1", Bytes::from_static(b"two")).await.unwrap(), PutOutcome::Exists);
    assert_eq!(s.get("a/x/1").await.unwrap().as_deref(), Some(&b"one"[..]));
    // A hint written with `put` is not overwritten by a create-only write either.
    assert_eq!(s.put_if_absent("a/hint", Bytes::from_static(b"h3")).await.unwrap(), PutOutcome::Exists);
    assert_eq!(s.get("a/hint").await.unwrap().as_deref(), Some(&b"h2"[..]));

    // Both prefix spellings name the same objects; keys come back without the prefix.
    let same = store(&moto.target, "checkpoints").await;
    assert_eq!(same.get("a/x/1").await.unwrap().as_deref(), Some(&b"one"[..]));
    let root = store(&moto.target, "").await;
    assert_eq!(root.describe(), "s3://arkflow-test");
    assert_eq!(root.get("checkpoints/a/x/1").await.unwrap().as_deref(), Some(&b"one"[..]));

    // Prefix isolation: a sibling prefix that starts with the same characters sees nothing of ours.
    let sibling = store(&moto.target, "checkpoints2").await;
    assert!(sibling.list("").await.unwrap().is_empty());
    assert_eq!(sibling.get("a/x/1").await.unwrap(), None);
    assert_eq!(sibling.put_if_absent("a/x/1", Bytes::from_static(b"sib")).await.unwrap(), PutOutcome::Created);
    assert_eq!(s.get("a/x/1").await.unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(keys(&sibling.list("").await.unwrap()), ["a/x/1"]);
    assert_eq!(keys(&s.list("").await.unwrap()), ["a/hint", "a/x/1", "b/y"]);
    let nested = store(&moto.target, "/checkpoints/a/").await;
    assert_eq!(keys(&nested.list("x/").await.unwrap()), ["x/1"]);

    // The start-up probe passes and cleans up.
    assert!(probe_create_only(&s, "a").await.unwrap());
    assert!(s.list("a/probe/").await.unwrap().is_empty(), "probe cleans up");

    // An unknown bucket gives a clear error with the HTTP status and S3 code.
    let mut bad = moto.target.s3_config("p");
    bad.bucket = "no-such-bucket".into();
    let bad = S3Store::new(&bad).await.unwrap();
    let e = bad.put("k", Bytes::from_static(b"v")).await.unwrap_err().to_string();
    assert!(e.contains("404") && e.contains("NoSuchBucket") && e.contains("s3://no-such-bucket/p"), "{e}");
    let e = bad.list("").await.unwrap_err().to_string();
    assert!(e.contains("NoSuchBucket"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_create_only_under_16_racing_writers() {
    let moto = Moto::start();
    let s = Arc::new(store(&moto.target, "race").await);
    for round in 0..3 {
        let key = format!("race/k{round}");
        let start = Arc::new(tokio::sync::Barrier::new(16));
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let (s, key, start) = (s.clone(), key.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                s.put_if_absent(&key, Bytes::from(vec![i; 256 * 1024])).await.unwrap()
            }));
        }
        let mut created = 0;
        for t in tasks {
            if t.await.unwrap() == PutOutcome::Created {
                created += 1;
            }
        }
        assert_eq!(created, 1, "round {round}: exactly one writer creates the object");
        let v = s.get(&key).await.unwrap().unwrap();
        assert!(v.len() == 256 * 1024 && v.iter().all(|b| *b == v[0]), "round {round}: one writer's whole payload");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_list_paginates_past_1000_keys() {
    let moto = Moto::start();
    let s = Arc::new(store(&moto.target, "pages/").await);
    const N: usize = 1234;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..N).step_by(16) {
                s.put_if_absent(&format!("many/{i:05}"), Bytes::from(i.to_string())).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    s.put("other/z", Bytes::from_static(b"z")).await.unwrap();
    let all = s.list("many/").await.unwrap();
    assert_eq!(all.len(), N);
    let want: Vec<String> = (0..N).map(|i| format!("many/{i:05}")).collect();
    assert_eq!(keys(&all), want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(all[1000].size, 4); // "1000"
    assert_eq!(s.list("many/010").await.unwrap().len(), 100);
    assert_eq!(s.list("").await.unwrap().len(), N + 1);
    assert!(s.list("nothing/").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_paused_calls_end_in_bounded_time() {
    let moto = Moto::start();
    let s = Arc::new(store(&moto.target, "outage").await);
    s.put("before", Bytes::from_static(b"ok")).await.unwrap();

    // Paused for good: the call gives up after its attempts instead of hanging.
    moto.pause();
    let t0 = Instant::now();
    let r = s.put("during", Bytes::from_static(b"lost?")).await;
    let took = t0.elapsed();
    let e = r.expect_err("a put to a stopped server cannot succeed").to_string();
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(e.contains("no answer") && e.contains("attempts") && e.contains("s3://arkflow-test/outage"), "{e}");
    eprintln!("paused put failed after {took:?}: {e}");

    // Paused during a create-only write, resumed while it is retrying: the server then runs
    // the timed-out first attempt too, so the retry meets our own object. That still counts
    // as Created (the payload is ours), and the call ends soon after the resume.
    let t0 = Instant::now();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move { s.put_if_absent("manifests/7", Bytes::from_static(b"manifest-7")).await })
    };
    tokio::time::sleep(Duration::from_secs(12)).await; // first attempt (10 s) has timed out
    moto.resume();
    let out = tokio::time::timeout(Duration::from_secs(45), writer).await.expect("no hang after SIGCONT").unwrap();
    eprintln!("create-only write across the outage: {out:?} after {:?}", t0.elapsed());
    assert_eq!(out.unwrap(), PutOutcome::Created);
    assert_eq!(s.get("manifests/7").await.unwrap().as_deref(), Some(&b"manifest-7"[..]));
    assert_eq!(s.put_if_absent("manifests/7", Bytes::from_static(b"other")).await.unwrap(), PutOutcome::Exists);

    // After SIGCONT everything works.
    assert_eq!(s.get("before").await.unwrap().as_deref(), Some(&b"ok"[..]));
    s.put("after", Bytes::from_static(b"ok2")).await.unwrap();
    assert_eq!(s.get("after").await.unwrap().as_deref(), Some(&b"ok2"[..]));
    let ks: Vec<String> = s.list("").await.unwrap().into_iter().map(|m| m.key).collect();
    assert!(ks.contains(&"after".to_string()) && ks.contains(&"before".to_string()), "{ks:?}");
    s.delete("after").await.unwrap();
    assert!(probe_create_only(s.as_ref(), "x").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_server_fails_fast_with_a_clear_message() {
    let port = servers::free_port(); // nothing listens there
    let t = S3Target {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: "b".into(),
        access_key_id: "AKIAEXAMPLEKEYID0001".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
    };
    let s = store(&t, "p").await;
    let t0 = Instant::now();
    let e = s.get("k").await.unwrap_err().to_string();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(e.contains("127.0.0.1") && e.contains("attempts") && e.contains("get `k`"), "{e}");
    assert!(!e.contains("AKIAEXAMPLEKEYID0001") && !e.contains("wJalrXUtnFEMI"), "{e}");
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("AKIAEXAMPLEKEYID0001") && !dbg.contains("wJalrXUtnFEMI"), "{dbg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garage_works_but_is_not_create_only() {
    let garage = Garage::start();
    let s = store(&garage.target, "checkpoints/").await;
    basic_behaviour(&s).await;
    // Garage ignores If-None-Match: the start-up probe must say so (exactly-once refuses it).
    assert!(!probe_create_only(&s, "a").await.unwrap());
    assert!(s.list("a/probe/").await.unwrap().is_empty(), "probe cleans up");
    // Plain puts, gets, lists and deletes work.
    for i in 0..30 {
        s.put(&format!("d/{i:03}"), Bytes::from(vec![b'x'; i])).await.unwrap();
    }
    let l = s.list("d/").await.unwrap();
    assert_eq!(l.len(), 30);
    assert_eq!(l[29].size, 29);
    for i in 0..30 {
        s.delete(&format!("d/{i:03}")).await.unwrap();
    }
    assert!(s.list("d/").await.unwrap().is_empty());
    // A YAML block for a config that points at this garage.
    let y = garage.target.yaml_block(2, "checkpoints/");
    assert!(y.starts_with("  s3_config:\n    bucket: ") && y.contains("region: \"garage\""), "{y}");
}

/// Multipart uploads on moto (the crate's multipart conformance, repeated here for S3): invisible
/// until completed, a repeated completion and an abort of a gone upload are not failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_multipart_uploads() {
    use arkflow::state::backend::{Completion, Multipart, PendingUpload};
    let moto = Moto::start();
    let s = store(&moto.target, "mp/").await;
    let big = Bytes::from(vec![b'a'; 5 << 20]);
    let id = s.begin("m/obj").await.unwrap();
    let t1 = s.part("m/obj", &id, 1, big.clone()).await.unwrap();
    let t2 = s.part("m/obj", &id, 2, Bytes::from_static(b"tail")).await.unwrap();
    assert_eq!(s.get("m/obj").await.unwrap(), None, "invisible before completion");
    assert_eq!(s.pending("m/").await.unwrap(), vec![PendingUpload { key: "m/obj".into(), upload_id: id.clone() }]);
    let parts = [(1, t1), (2, t2)];
    assert_eq!(s.complete("m/obj", &id, &parts).await.unwrap(), Completion::Completed);
    let got = s.get("m/obj").await.unwrap().unwrap();
    assert_eq!((got.len(), &got[5 << 20..]), ((5 << 20) + 4, &b"tail"[..]));
    assert!(s.pending("m/").await.unwrap().is_empty());
    let again = s.complete("m/obj", &id, &parts).await.unwrap();
    assert!(matches!(again, Completion::Completed | Completion::NoSuchUpload), "a repeated completion is not a failure: {again:?}");

    let gone = s.begin("m/gone").await.unwrap();
    s.part("m/gone", &gone, 1, Bytes::from_static(b"x")).await.unwrap();
    s.abort("m/gone", &gone).await.unwrap();
    s.abort("m/gone", &gone).await.unwrap();
    assert_eq!(s.complete("m/gone", &gone, &[]).await.unwrap(), Completion::NoSuchUpload);
    assert_eq!(s.get("m/gone").await.unwrap(), None);
    assert!(s.pending("m/").await.unwrap().is_empty());
}
