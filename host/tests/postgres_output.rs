//! The `postgres` output against a real PostgreSQL server on 127.0.0.1 (a fresh cluster this
//! test starts, see `common::postgres`).
//! - Exactly-once: SIGKILLed at random moments while a throttled file input flows through the
//!   wasm counter into a table, restarted each time, then run to the end: the table must hold
//!   every input record's effect exactly once, each key's counts 1..=n in insertion order, and
//!   nothing may stay staged. A restart with a wiped state directory is refused, naming the
//!   committed epochs of the earlier run.
//! - The same through prepared transactions (a server with `max_prepared_transactions` > 0):
//!   every effect once, and no prepared transaction left after the final run; a prepared claim
//!   an earlier run left for an undecided epoch is rolled back at start (its row never shows).
//! - A commit that a crash cut short after the decision is replayed by the next run from the
//!   staged rows (not from the dead process's memory): the table holds every row once.
//! - Upserts by `key_columns` keep each key's last row; a record that is not a JSON object and a
//!   missing table stop the stream with the place named.
//! - At-least-once (the COPY path): SIGKILLed while it streams rows, then run to the end, the
//!   table holds every record at least once; a COPY row of every kind of field (escapes, NULLs,
//!   JSON into `jsonb`, numbers, booleans, times) lands as the statement path would put it; an
//!   upsert through COPY keeps each key's last row; a table with an array column takes the
//!   statement path; a row the table refuses stops the stream with the database's message.
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
    input: {{ type: file, path: {input}, key_field: user, rate_per_sec: 15000 }}
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

/// The `counts` table holds `n` rows: each key's counts 1..=its records, once each, in order.
fn assert_counts_once(pg: &Postgres, expected: &HashMap<String, i64>, n: u64) {
    let rows = pg.psql("SELECT key, count FROM counts ORDER BY id");
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
}

#[test]
fn kill_loop_into_postgres_is_exactly_once_and_a_wiped_state_is_refused() {
    kill_loop(false);
}

#[test]
fn prepared_transactions_commit_every_epoch_once_under_sigkills() {
    kill_loop(true);
}

/// SIGKILLs the counter → postgres stream, then runs it to the end: every effect once, nothing
/// left staged or prepared. With `two_phase`, the server allows prepared transactions and the
/// output commits through them; without, through staged rows, and a wiped state is refused.
fn kill_loop(two_phase: bool) {
    let pg = match two_phase {
        true => Postgres::start_with(&["-c", "max_prepared_transactions=16"]),
        false => Postgres::start(),
    };
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
    let how = if two_phase { "exactly-once through prepared transactions" } else { "exactly-once through rows staged" };
    assert!(stderr(&out).contains(how), "the output says how it commits ({how}): {}", stderr(&out));
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    let epochs = pg.psql("SELECT count(*) FROM arkflow_pg_commits").trim().to_string();
    eprintln!("postgres output: {killed} kills, {before} rows before the final run, {epochs} epochs committed");
    assert!(before > 0, "kills landed after decided checkpoints");
    assert_counts_once(&pg, &expected, n);
    assert_eq!(pg.psql("SELECT count(*) FROM arkflow_pg_staged").trim(), "0", "nothing left staged after a clean end");
    assert_eq!(pg.psql("SELECT count(*) FROM pg_prepared_xacts").trim(), "0", "nothing left prepared after a clean end");
    if two_phase {
        return;
    }

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

#[test]
fn at_least_once_loses_no_row_under_sigkills() {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE seen (id bigint NOT NULL, \"user\" text NOT NULL)");
    let dir = Dir::new();
    let n = env_or("ARKFLOW_PG_RECORDS", 100_000);
    let kills = env_or("ARKFLOW_PG_KILLS", 6);
    let input = dir.path("in.jsonl");
    write_input(&input, n, 1_000);
    // 10 s of input at this rate: longer than the 6 kills' delays can add up to (7.2 s), so every
    // kill lands while the stream runs (at 20,000/s a run of long delays let it finish first).
    let cfg = dir.config(&format!(
        "{}streams:\n  - name: alo\n    input: {{ type: file, path: {}, rate_per_sec: 10000 }}\n    output: {{ type: postgres, url: \"{}\", table: seen }}\n    state: {{ operator_id: pg-alo, enabled: true }}\n",
        local_state(&dir, 200, false),
        input.display(),
        pg.url()
    ));
    let killed = kill_repeatedly(&cfg, kills, (300, 1200));
    let before: u64 = pg.psql("SELECT count(*) FROM seen").trim().parse().unwrap();
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "final run: {}", stderr(&out));
    assert_eq!(killed, kills, "every planned kill landed while the stream ran");
    let got = pg.psql("SELECT count(DISTINCT id), count(*), min(id), max(id) FROM seen");
    eprintln!("postgres output at-least-once: {killed} kills, {before} rows before the final run; distinct|all|min|max = {}", got.trim());
    assert!(before > 0, "rows were committed before the kills");
    let f: Vec<u64> = got.trim().split('|').map(|v| v.parse().unwrap()).collect();
    assert_eq!((f[0], f[2], f[3]), (n, 0, n - 1), "every record at least once");
    assert!(f[1] >= n);
}

#[test]
fn copy_rows_convert_every_kind_of_field_and_refusals_name_the_database_error() {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE typed (id bigint, who text, amount numeric, ok boolean, doc jsonb, at timestamptz, note text, fixed int DEFAULT 7); \
         CREATE TABLE latest (key text PRIMARY KEY, n int); CREATE TABLE arrays (id int, tags int[])",
    );
    let stream = |dir: &Dir, messages: &[&str], output: &str| {
        let quoted: Vec<String> = messages.iter().map(|m| format!("'{}'", m.replace('\'', "''"))).collect();
        let cfg = dir.config(&format!(
            "streams:\n  - input: {{ type: memory, messages: [{}] }}\n    output: {{ type: postgres, url: \"{}\", {output} }}\n",
            quoted.join(", "),
            pg.url()
        ));
        run(&cfg, &[])
    };
    let messages = [
        r#"{"id":1,"who":"tab\there","amount":1.50,"ok":true,"doc":{"a":[1,"x\ny"]},"at":"2026-01-02T03:04:05Z","note":"back\\slash\r\nend"}"#,
        r#"{"id":2,"who":null,"doc":"just text","ok":"false","amount":"2e3","unknown":{"x":1}}"#,
        r#"{"id":3,"id":4,"who":"\u00e9t\u00e9","doc":null}"#,
    ];
    let out = stream(&Dir::new(), &messages, "table: typed");
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = pg.psql(
        "SELECT id, who = E'tab\\there', amount, ok, doc::text, at = '2026-01-02T03:04:05Z', note = E'back\\\\slash\\r\\nend', fixed FROM typed WHERE id = 1 \
         UNION ALL SELECT id, who IS NULL, amount, ok, doc::text, at IS NULL, note IS NULL, fixed FROM typed WHERE id = 2 \
         UNION ALL SELECT id, who = 'été', amount, ok, coalesce(doc::text, 'SQL NULL'), at IS NULL, note IS NULL, fixed FROM typed WHERE id = 4 ORDER BY 1",
    );
    assert_eq!(
        rows.trim(),
        "1|t|1.50|t|{\"a\": [1, \"x\\ny\"]}|t|t|7\n2|t|2000|f|\"just text\"|t|t|7\n4|t|||SQL NULL|t|t|7",
        "fields by name (the last of a repeated one), JSON strings unescaped, JSON into jsonb as JSON, the rest NULL or the column's default"
    );

    // An upsert through COPY keeps each key's last row, within a batch and across runs.
    let out = stream(&Dir::new(), &[r#"{"key":"a","n":1}"#, r#"{"key":"b","n":1}"#, r#"{"key":"a","n":2}"#], "table: latest, key_columns: [key]");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stream(&Dir::new(), &[r#"{"key":"b","n":5}"#], "table: latest, key_columns: [key]");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.psql("SELECT key, n FROM latest ORDER BY key").trim(), "a|2\nb|5");

    // An array column is filled from a JSON array (the statement path).
    let out = stream(&Dir::new(), &[r#"{"id":1,"tags":[3,4]}"#], "table: arrays");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg.psql("SELECT tags FROM arrays").trim(), "{3,4}");

    // A field the column's type refuses stops the stream with the server's message.
    let out = stream(&Dir::new(), &[r#"{"id":"seven"}"#], "table: typed");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("copying into typed") && err.contains("invalid input syntax for type bigint"), "{err}");
}

#[test]
fn a_decided_commit_cut_short_is_replayed_from_the_staged_rows() {
    use std::io::Write;
    let pg = Postgres::start();
    pg.psql("CREATE TABLE counts (id bigserial PRIMARY KEY, key text NOT NULL, count bigint NOT NULL)");
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    let expected = write_input(&input, 20_000, 100);
    let cfg = counter_config(&dir, &pg, &input, "table: counts");
    // Another session holds the table: phase two's COPY waits on the lock, after the decision.
    let mut lock = pg.session();
    writeln!(lock.stdin.as_mut().unwrap(), "BEGIN; LOCK TABLE counts IN ACCESS EXCLUSIVE MODE;").unwrap();
    let mut child = spawn(&cfg);
    let start = std::time::Instant::now();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'COPY%'";
    while pg.psql(waiting).trim() == "0" {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "no commit waited on the lock");
        assert!(child.try_wait().unwrap().is_none(), "the stream ended before a commit waited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    signal(&child, "KILL");
    child.wait().unwrap();
    writeln!(lock.stdin.as_mut().unwrap(), "COMMIT;").unwrap();
    drop(lock.stdin.take());
    lock.wait().unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM counts").trim(), "0", "the cut-short commit left nothing");
    assert_ne!(pg.psql("SELECT count(*) FROM arkflow_pg_staged").trim(), "0", "the decided epoch is still staged");

    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_counts_once(&pg, &expected, 20_000);
    assert_eq!(pg.psql("SELECT count(*) FROM arkflow_pg_staged").trim(), "0");
}

#[test]
fn a_prepared_claim_left_by_an_earlier_run_is_rolled_back_at_start() {
    let pg = Postgres::start_with(&["-c", "max_prepared_transactions=4"]);
    pg.psql("CREATE TABLE counts (id bigserial PRIMARY KEY, key text NOT NULL, count bigint NOT NULL)");
    let dir = Dir::new();
    let input = dir.path("in.jsonl");
    write_input(&input, 5_000, 50);
    let cfg = counter_config(&dir, &pg, &input, "table: counts");
    let out = run(&cfg, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A process of an older generation prepared the next epoch (its claim and a row) and died
    // before any decision: its transaction holds the claim the next run needs.
    let next: u64 = pg.psql("SELECT max(epoch) + 1 FROM arkflow_pg_commits").trim().parse().unwrap();
    let hash = xxhash_rust::xxh3::xxh3_64(b"pg-counter\0output");
    let gid = format!("arkflow:{hash:016x}:{next}:0");
    pg.psql(&format!(
        "BEGIN; INSERT INTO arkflow_pg_commits (scope, sink, epoch, generation, records, target) VALUES ('pg-counter', 'output', {next}, 0, 1, 'counts'); \
         INSERT INTO counts (key, count) VALUES ('zombie', 1); PREPARE TRANSACTION '{gid}'"
    ));
    let expected = write_input(&input, 10_000, 50);
    let out = run(&cfg, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("rolled back the prepared transactions of undecided epochs") && err.contains(&gid), "{err}");
    assert_eq!(pg.psql("SELECT count(*) FROM pg_prepared_xacts").trim(), "0");
    assert_counts_once(&pg, &expected, 10_000);
}
