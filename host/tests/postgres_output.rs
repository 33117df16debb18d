//! The `postgres` output against a real PostgreSQL server on 127.0.0.1 (a fresh cluster this
//! test starts, see `common::postgres`).
//! - Exactly-once: SIGKILLed at random moments while a throttled file input flows through the
//!   wasm counter into a table, restarted each time, then run to the end: the table must hold
//!   every input record's effect exactly once, each key's counts 1..=n in insertion order, and
//!   nothing may stay staged. A restart with a wiped state directory is refused, naming the
//!   committed epochs of the earlier run.
//! - Upserts by `key_columns` keep each key's last row; a record that is not a JSON object and a
//!   missing table stop the stream with the place named.
//!
//! Size: ARKFLOW_PG_RECORDS (default 100,000), ARKFLOW_PG_KILLS (6).

mod common;
use common::kill::{env_or, kill_repeatedly, write_input};
use common::postgres::Postgres;
use common::*;
use std::collections::HashMap;

fn counter_config(dir: &Dir, pg: &Postgres, input: &std::path::Path, output: &str) -> std::path::PathBuf {
    dir.config(&format!(
        r#"
state_management:
  enabled: true
  backend_type: local
  checkpoint_interval_ms: 200
  exactly_once: true
  local_config: {{ path: {state} }}
streams:
  - name: pgout
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 20000 }}
    pipeline:
      thread_num: 2
      processors:
        - type: wasm
          path: {counter}
    output: {{ type: postgres, url: "{url}", {output} }}
    state: {{ operator_id: pg-counter, enabled: true }}
"#,
        state = dir.path("state").display(),
        input = input.display(),
        counter = plugin("counter").display(),
        url = pg.url(),
    ))
}

#[test]
fn kill_loop_into_postgres_is_exactly_once_and_a_wiped_state_is_refused() {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE counts (id bigserial PRIMARY KEY, key text NOT NULL, count bigint NOT NULL)");
    let dir = Dir::new();
    let n = env_or("ARKFLOW_PG_RECORDS", 100_000);
    let kills = env_or("ARKFLOW_PG_KILLS", 6);
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, n, 2_000);
    let cfg = counter_config(&dir, &pg, &input, "table: counts");

    let killed = kill_repeatedly(&cfg, kills, (300, 1200));
    let before: u64 = pg.psql("SELECT count(*) FROM counts").trim().parse().unwrap();
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    let rows = pg.psql("SELECT key, count FROM counts ORDER BY id");
    let epochs = pg.psql("SELECT count(*) FROM arkflow_pg_commits").trim().to_string();
    eprintln!("postgres output: {killed} kills, {before} rows before the final run, {} after, {epochs} epochs committed", rows.lines().count());
    assert!(before > 0, "kills landed after decided checkpoints");
    assert_eq!(rows.lines().count() as u64, n, "every input record's effect exactly once");
    let mut got: HashMap<&str, Vec<i64>> = HashMap::new();
    for line in rows.lines() {
        let (k, c) = line.split_once('|').unwrap();
        got.entry(k).or_default().push(c.parse().unwrap());
    }
    assert_eq!(got.len(), expected.len());
    for (k, counts) in got {
        assert_eq!(counts, (1..=expected[k]).collect::<Vec<_>>(), "key {k}: each count once, in order");
    }
    assert_eq!(pg.psql("SELECT count(*) FROM arkflow_pg_staged").trim(), "0", "nothing left staged after a clean end");

    // The state is wiped: the committed epochs belong to no decision of the new state.
    std::fs::remove_dir_all(dir.path("state")).unwrap();
    let out = run(&cfg, &[]);
    assert!(!out.status.success(), "a wiped state over committed output is refused");
    let err = stderr(&out);
    assert!(err.contains("which this stream's state never decided"), "{err}");
    assert_eq!(pg.psql("SELECT count(*) FROM counts").trim(), n.to_string(), "the refused run wrote nothing");
}

#[test]
fn upserts_keep_each_keys_last_row_and_bad_records_stop_the_stream() {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE latest (key text PRIMARY KEY, count bigint NOT NULL, note text DEFAULT 'none')");
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, 5_000, 50);
    let out = run(&counter_config(&dir, &pg, &input, "table: latest, key_columns: [key]"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = pg.psql("SELECT key, count, note FROM latest");
    assert_eq!(rows.lines().count(), expected.len());
    for line in rows.lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!((f[1].parse::<i64>().unwrap(), f[2]), (expected[f[0]], "none"), "{line}: the key's last count; a column with a default is left to it");
    }

    let plain = |dir: &Dir, messages: &str, table: &str| {
        dir.config(&format!(
            "streams:\n  - input: {{ type: memory, messages: [{messages}] }}\n    output: {{ type: postgres, url: \"{}\", table: {table} }}\n",
            pg.url()
        ))
    };
    let bad = Dir::new();
    let out = run(&plain(&bad, "'{\"key\":\"a\",\"count\":1}', 'not json'", "latest"), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("the record at partition 0 offset 1 is not a JSON object"), "{}", stderr(&out));
    let missing = Dir::new();
    let out = run(&plain(&missing, "'{\"a\":1}'", "nowhere"), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("table nowhere") && stderr(&out).contains("does not exist"), "{}", stderr(&out));
}
