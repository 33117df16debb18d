//! Bench binary: restore time of 1,000,000 keys (~100 MB of state) from a real S3 server
//! (moto_server, started here on 127.0.0.1), through the same recovery code a restart uses:
//! list decisions, fetch the manifest, fetch and checksum the state files in parallel, decode,
//! then apply the entries to worker state.
//!
//! Run: `bash tests/servers/install.sh && cargo bench --bench restore`
//! (env: BENCH_KEYS (1000000), BENCH_VALUE_BYTES (92), BENCH_FILES (8), BENCH_ROUNDS (3)).

#[path = "../tests/common/s3.rs"]
#[allow(dead_code)]
mod servers;

use arkflow::checkpoint::{recovery, CheckpointSettings, Decision, Manifest, StateFile};
use arkflow::engine::Router;
use arkflow::state::backend::{ObjectStore, S3Store};
use arkflow::state::snapshot::{self, SnapshotEntry};
use arkflow::state::{StateLimits, WorkerState};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let (keys, vbytes, nfiles, rounds) = (env("BENCH_KEYS", 1_000_000), env("BENCH_VALUE_BYTES", 92), env("BENCH_FILES", 8), env("BENCH_ROUNDS", 3));
    let moto = servers::Moto::start();
    let store: Arc<dyn ObjectStore> = Arc::new(arkflow::checkpoint::block_on(S3Store::new(&moto.target.s3_config("bench/"))).unwrap());
    let scope = "restore";
    let router = Router::new(128, 1, arkflow::engine::Routing::RecordKey);
    let now = arkflow::util::time::now_ms();
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut x = 0x1234_5678_9abc_def0u64;
    for f in 0..nfiles {
        let entries: Vec<SnapshotEntry> = (f * keys / nfiles..(f + 1) * keys / nfiles)
            .map(|k| {
                let key = format!("key-{k:08}").into_bytes();
                let value: Vec<u8> = (0..vbytes)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        b'a' + (x % 26) as u8
                    })
                    .collect();
                total += (key.len() + value.len()) as u64;
                SnapshotEntry { group: router.group_of(&key), store: "default".into(), key, value: Some(value), written_ms: now }
            })
            .collect();
        let bytes = snapshot::encode(1, &entries);
        let key = format!("{scope}/data/{:020}/w{f}.snap", 1);
        files.push(StateFile { key: key.clone(), epoch: 1, size: bytes.len() as u64, checksum: snapshot::checksum_of(&bytes), entries: entries.len() as u64 });
        arkflow::checkpoint::block_on(store.put_if_absent(&key, Bytes::from(bytes))).unwrap();
    }
    let stored: u64 = files.iter().map(|f| f.size).sum();
    let manifest = Manifest {
        version: arkflow::checkpoint::MANIFEST_VERSION,
        operator_id: scope.into(),
        stream: "restore".into(),
        epoch: 1,
        parent: None,
        generation: 1,
        key_groups: 128,
        routing: None,
        input_position: serde_json::json!({}),
        state_files: files,
        sinks: vec![],
        ttl_clock_ms: now,
        created_ms: now,
        event_time: None,
    };
    let mbytes = manifest.encode();
    let mkey = arkflow::checkpoint::manifest_key(scope, 1, 1);
    let decision = Decision::Commit { epoch: 1, manifest: mkey.clone(), checksum: snapshot::checksum_of(&mbytes), generation: 1 };
    arkflow::checkpoint::block_on(async {
        store.put_if_absent(&mkey, Bytes::from(mbytes)).await.unwrap();
        store.put_if_absent(&format!("{scope}/commits/{:020}", 1), decision.encode()).await.unwrap();
    });
    let settings = CheckpointSettings {
        scope: scope.into(),
        stream: "restore".into(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(60),
        tolerated_failures: 10,
        retained: 5,
        exactly_once: true,
        key_groups: 128,
        routing: "record key".into(),
        ttl_ms: None,
        lazy_restore: false,
        gc_grace: Duration::from_secs(60),
        decider: None,
        external_last: None,
        committers: Default::default(),
    };
    println!("state: {keys} keys, {total} bytes of keys+values, {stored} bytes stored in {nfiles} files on moto");
    let mut times = Vec::new();
    for round in 0..rounds {
        let start = Instant::now();
        let rec = arkflow::checkpoint::block_on(recovery::recover(store.clone(), &settings, None)).unwrap();
        let fetched = start.elapsed();
        let mut st = WorkerState::new(vec!["default".into()], None, StateLimits::default());
        let n = rec.entries.len();
        for e in rec.entries {
            st.restore(e).unwrap();
        }
        let all = start.elapsed();
        assert_eq!(st.entries(), keys);
        println!(
            "round {round}: fetch+verify+decode {:.0} ms, + apply {:.0} ms = {:.0} ms ({n} entries)",
            fetched.as_secs_f64() * 1e3,
            (all - fetched).as_secs_f64() * 1e3,
            all.as_secs_f64() * 1e3
        );
        times.push(all.as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("median restore of {keys} keys from moto: {:.0} ms", times[times.len() / 2] * 1e3);
}
