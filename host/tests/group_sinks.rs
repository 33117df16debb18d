//! Group mode (docs/SCALE_OUT.md) with the exactly-once outputs that become visible after the
//! decision: `s3` (moto) and `postgres` (prepared transactions), state on moto, input from an
//! 8-partition topic of a real broker (`tansu`), records keyed by user.
//!
//! One process runs until output is visible and is SIGKILLed. Its last decided commit is then
//! made unfinished (the state store's `committed/{e}` marker deleted, and for s3 the output's
//! marker of that epoch too), and a leftover of a later epoch is planted in its scope (an s3 part,
//! a prepared transaction). A second process takes the partitions over: it must finish the killed
//! session's last decided commit, release what that session staged past it, and run to the end.
//! The output must then hold every `(key, count)` exactly once (for each key the counts 1..=n),
//! every s3 part must be named by a marker, and no prepared transaction may be left.
//!
//! Size: ARKFLOW_GROUP_SINK_RECORDS (default 20,000), read at 2,000 records/s.

mod common;
use arkflow::checkpoint::block_on;
use arkflow::state::backend::{ObjectStore, S3Store};
use common::kafka::{partition_of, Tansu};
use common::kill::env_or;
use common::postgres::Postgres;
use common::s3::{Moto, S3Target};
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const PARTITIONS: i32 = 8;

/// Where the output goes, and how the test reads it back.
enum Out<'a> {
    S3(&'a S3Target),
    Postgres(&'a Postgres),
}

impl Out<'_> {
    fn yaml(&self) -> String {
        match self {
            Out::S3(t) => format!(
                "{{ type: s3, bucket: {}, region: {}, prefix: out/, endpoint_url: \"{}\", access_key_id: {}, secret_access_key: {} }}",
                t.bucket, t.region, t.endpoint, t.access_key_id, t.secret_access_key
            ),
            Out::Postgres(pg) => format!("{{ type: postgres, url: \"{}\", table: counts }}", pg.url()),
        }
    }

    /// Every (key, count) row visible to a reader.
    fn rows(&self) -> Vec<(String, i64)> {
        match self {
            Out::S3(t) => {
                let store = block_on(S3Store::new(&t.s3_config("out/"))).unwrap();
                let mut rows = Vec::new();
                for m in block_on(store.list("committed/")).unwrap() {
                    let marker: serde_json::Value = serde_json::from_slice(&block_on(store.get(&m.key)).unwrap().unwrap()).unwrap();
                    let part = block_on(store.get(marker["part"].as_str().unwrap())).unwrap().expect("the part a marker names");
                    for l in String::from_utf8(part.to_vec()).unwrap().lines() {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap();
                        rows.push((v["key"].as_str().unwrap().to_string(), v["count"].as_i64().unwrap()));
                    }
                }
                rows
            }
            Out::Postgres(pg) => pg
                .psql("SELECT key || ' ' || count FROM counts")
                .lines()
                .filter_map(|l| l.trim().split_once(' ').map(|(k, c)| (k.to_string(), c.parse().unwrap())))
                .collect(),
        }
    }

    /// Undoes what the output showed of `scope`'s epoch `e` where it can (s3: its marker).
    fn lose_commit(&self, scope: &str, e: u64) {
        if let Out::S3(t) = self {
            let store = block_on(S3Store::new(&t.s3_config("out/"))).unwrap();
            let marker = format!("committed/{scope}/{e:012}.json");
            assert!(block_on(store.get(&marker)).unwrap().is_some(), "{marker} is there before the test removes it");
            block_on(store.delete(&marker)).unwrap();
        }
    }

    /// Stages something for an epoch `scope` (generation `g`) will never decide.
    fn plant_leftover(&self, scope: &str, g: u64) {
        match self {
            Out::S3(t) => {
                let store = block_on(S3Store::new(&t.s3_config("out/"))).unwrap();
                block_on(store.put(&format!("parts/{scope}/000000999999-g{g}.jsonl"), bytes::Bytes::from_static(b"{\"key\":\"zombie\",\"count\":1}\n")))
                    .unwrap();
            }
            Out::Postgres(pg) => {
                let hash = xxhash_rust::xxh3::xxh3_64(format!("{scope}\0output").as_bytes());
                pg.psql(&format!("BEGIN; INSERT INTO counts (key, count) VALUES ('zombie', 1); PREPARE TRANSACTION 'arkflow:{hash:016x}:999999:{g}'"));
            }
        }
    }

    /// What a finished run must not leave behind: parts no marker names, prepared transactions.
    fn leftovers(&self) -> Vec<String> {
        match self {
            Out::S3(t) => {
                let store = block_on(S3Store::new(&t.s3_config("out/"))).unwrap();
                let named: Vec<String> = block_on(store.list("committed/"))
                    .unwrap()
                    .iter()
                    .map(|m| {
                        serde_json::from_slice::<serde_json::Value>(&block_on(store.get(&m.key)).unwrap().unwrap()).unwrap()["part"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                block_on(store.list("parts/")).unwrap().into_iter().map(|m| m.key).filter(|k| !named.contains(k)).collect()
            }
            Out::Postgres(pg) => pg.psql("SELECT gid FROM pg_prepared_xacts").lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
        }
    }
}

/// The scope and generation of the last session the process logging to `log` started.
fn session_of(log: &std::path::Path, op: &str) -> (String, u64) {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text.lines().rfind(|l| l.contains("key groups taken over")).unwrap_or_else(|| panic!("no session in {text}"));
    let g = line.split("generation=").nth(1).and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()).and_then(|d| d.parse().ok()).expect("generation");
    (arkflow::layout::session_scope(op, g), g)
}

/// The last epoch `scope` decided, from its decision slots in the state store.
fn head(state: &S3Store, scope: &str) -> u64 {
    let slots = block_on(state.list(&format!("{scope}/commits/"))).unwrap();
    let decided = slots.iter().filter_map(|m| {
        let bytes = block_on(state.get(&m.key)).unwrap()?;
        match arkflow::checkpoint::Decision::decode(&bytes, &m.key, "state").ok()? {
            arkflow::checkpoint::Decision::Commit { epoch, .. } => Some(epoch),
            _ => None,
        }
    });
    decided
        .max()
        .unwrap_or_else(|| panic!("{scope} decided no epoch: {:?}", block_on(state.list("")).unwrap().iter().map(|m| m.key.clone()).collect::<Vec<_>>()))
}

fn scenario(out: Out, tansu: &Tansu, moto: &Moto, name: &str) {
    let n = env_or("ARKFLOW_GROUP_SINK_RECORDS", 20_000);
    let topic = format!("{name}-in");
    tansu.create_topic(&topic, PARTITIONS);
    let dir = Dir::new();
    let cfg = dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: s3
  checkpoint_interval_ms: 300
  exactly_once: true
{s3}
streams:
  - name: {name}
    input:
      type: kafka
      brokers: ["{b}"]
      topics: [{topic}]
      consumer_group: {name}
      assignment: group
      rate_per_sec: 2000
      options: {{ session.timeout.ms: "10000" }}
    pipeline:
      thread_num: 2
      processors:
        - {{ type: wasm, path: {c} }}
    output: {out}
    state: {{ operator_id: {name}, enabled: true }}
"#,
        s3 = moto.target.yaml_block(2, &format!("{name}-state/")),
        b = tansu.broker,
        c = plugin("counter").display(),
        out = out.yaml(),
    ));
    let mut expected: HashMap<String, i64> = HashMap::new();
    let records: Vec<(i32, String, String)> = (0..n)
        .map(|id| {
            let user = generated_key(29, 200, id);
            *expected.entry(user.clone()).or_default() += 1;
            (partition_of(&user, PARTITIONS), user.clone(), format!("{{\"id\":{id},\"user\":\"{user}\"}}"))
        })
        .collect();
    tansu.produce(&topic, records);

    let logs_at: Vec<_> = (1..=2).map(|i| dir.path(&format!("{name}{i}.log"))).collect();
    let mut p1 = start_logged(&cfg, &logs_at[0]);
    let some = wait_for(Duration::from_secs(120), || !out.rows().is_empty());
    assert!(some, "{name}: no output before the kill:\n{}", logs_of(&logs_at));
    signal(&p1, "KILL");
    let _ = p1.wait();
    // Its last decided commit made unfinished, and a leftover of an undecided epoch planted.
    let (scope, g) = session_of(&logs_at[0], name);
    let state = block_on(S3Store::new(&moto.target.s3_config(&format!("{name}-state/")))).unwrap();
    let e = head(&state, &scope);
    block_on(state.delete(&arkflow::layout::committed(&scope, e))).unwrap();
    out.lose_commit(&scope, e);
    out.plant_leftover(&scope, g);
    let at_kill = out.rows().len();
    let mut p2 = start_logged(&cfg, &logs_at[1]);
    let done = wait_for(Duration::from_secs(240), || out.rows().len() >= n as usize);
    signal(&p2, "TERM");
    let status = p2.wait().unwrap();
    let rows = out.rows();
    assert!(done, "{name}: the output has {} of {n} records:\n{}", rows.len(), logs_of(&logs_at));
    assert!(at_kill < n as usize, "{name}: the kill landed mid-run ({at_kill} of {n} records out)");
    assert!(status.success(), "{name}: graceful stop failed ({status}):\n{}", logs_of(&logs_at));
    let mut counts: HashMap<String, Vec<i64>> = HashMap::new();
    for (k, c) in rows {
        counts.entry(k).or_default().push(c);
    }
    assert_eq!(counts.len(), expected.len(), "{name}: every key counted");
    for (k, mut got) in counts {
        got.sort_unstable();
        assert_eq!(got, (1..=expected[&k]).collect::<Vec<_>>(), "{name}: key {k}: each count exactly once");
    }
    assert_eq!(out.leftovers(), Vec::<String>::new(), "{name}: nothing staged is left behind");
    let p2_log = std::fs::read_to_string(&logs_at[1]).unwrap();
    assert!(
        p2_log.contains("replaying a fenced session's last commits") && p2_log.contains(&format!("epoch={e}")),
        "{name}: the new owner replayed epoch {e}:\n{p2_log}"
    );
    eprintln!("{name}: {at_kill} of {n} records were out at the kill");
}

#[test]
fn a_killed_sessions_s3_and_postgres_output_is_settled_by_the_next_owner_exactly_once() {
    let tansu = Tansu::start_logging("warn");
    let moto = Moto::start();
    scenario(Out::S3(&moto.target), &tansu, &moto, "gs3");
    let pg = Postgres::start_with(&["-c", "max_prepared_transactions=8"]);
    pg.psql("CREATE TABLE counts (key text, count bigint)");
    scenario(Out::Postgres(&pg), &tansu, &moto, "gpg");
}
