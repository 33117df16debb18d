//! The `redis` output with the real binary against redis-server on 127.0.0.1 (`common::redis`).
//! - `hset` under SIGKILLs: the wasm counter's running counts written into one hash by key; after
//!   the kills and a final run, each key's field holds exactly its number of input records (a
//!   replay writes the same counts again, in order).
//! - `rpush`: every record of a file reaches the list, in order.
//! - A command Redis refuses (a key of another type) stops the stream with Redis's message.
//!
//! Size: ARKFLOW_REDIS_RECORDS (default 40,000), ARKFLOW_CRASH_KILLS (6).

mod common;
use common::kill::{env_or, kill_repeatedly, write_input};
use common::redis::Redis;
use common::*;
use std::collections::HashMap;

#[test]
fn hset_counts_are_exact_after_sigkills() {
    let redis = Redis::start();
    let dir = Dir::new();
    let n = env_or("ARKFLOW_REDIS_RECORDS", 40_000);
    let kills = env_or("ARKFLOW_CRASH_KILLS", 6);
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, n, 500);
    let cfg = dir.config(&format!(
        r#"
{sm}streams:
  - name: redis-counts
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 5000 }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: redis, url: '{url}', command: hset, key: counts }}
    state: {{ operator_id: redis-counter, enabled: true }}
"#,
        sm = local_state(&dir, 200, false),
        input = input.display(),
        counter = plugin("counter").display(),
        url = redis.url()
    ));
    let killed = kill_repeatedly(&cfg, kills, (300, 1200));
    let before: HashMap<String, String> = redis.query(&["HGETALL", "counts"]);
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    let got: HashMap<String, String> = redis.query(&["HGETALL", "counts"]);
    eprintln!("redis hset: {killed} kills, {} keys written before the final run", before.len());
    assert_eq!(killed, kills);
    assert!(!before.is_empty(), "counts were written before the kills ended");
    assert_eq!(got.len(), expected.len(), "a field per key");
    for (k, v) in &got {
        let v: serde_json::Value = serde_json::from_str(v).unwrap();
        assert_eq!((v["key"].as_str(), v["count"].as_i64()), (Some(k.as_str()), Some(expected[k])), "key {k}: its count is its number of records");
    }
}

#[test]
fn rpush_appends_every_record_in_order() {
    let redis = Redis::start();
    let dir = Dir::new();
    let n = 5_000;
    let input = dir.path("in.jsonl");
    append_users(&input, 0, n, 10);
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: file, path: {} }}\n    pipeline: {{ processors: [] }}\n    output: {{ type: redis, url: '{}', key: events }}\n",
        input.display(),
        redis.url()
    ));
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Vec<String> = redis.query(&["LRANGE", "events", "0", "-1"]);
    let ids: Vec<u64> = list.iter().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
}

#[test]
fn a_refused_command_stops_the_stream_with_redis_message() {
    let redis = Redis::start();
    let _: () = redis.query(&["SET", "events", "a string"]);
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    append_users(&input, 0, 10, 10);
    let cfg = dir.config(&format!(
        "streams:\n  - input: {{ type: file, path: {} }}\n    pipeline: {{ processors: [] }}\n    output: {{ type: redis, url: '{}', key: events }}\n",
        input.display(),
        redis.url()
    ));
    let out = run(&cfg, &[]);
    assert!(!out.status.success());
    let log = stderr(&out);
    assert!(log.contains("redis output") && log.contains("WRONGTYPE"), "{log}");
    let kept: String = redis.query(&["GET", "events"]);
    assert_eq!(kept, "a string", "the refused transaction changed nothing");
}
