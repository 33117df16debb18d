//! The `postgres` output's database side: the connection (made on first use, made again after
//! it broke), the target table's columns, the statements, the control tables and phase two of
//! the commit protocol ([`PgCommitter`]).
//!
//! Rows travel as JSON arrays of objects: `jsonb_populate_record(null::<table>, ...)` turns each
//! object into a row of the table (fields by column name, missing fields NULL), so the database
//! does every type conversion. Control tables, created when missing:
//! - `arkflow_pg_staged (scope, sink, epoch, generation, seq, rows jsonb)`: an epoch's rows,
//!   written in phase one (before the decision), in chunks: JSON arrays of the row objects, or,
//!   for the COPY path, JSON strings of COPY text (stored uncompressed: they are written once and
//!   read at most once, after a crash);
//! - `arkflow_pg_commits (scope, sink, epoch, generation, records, target, committed_at)`: one row
//!   per committed epoch, inserted in the same transaction as the epoch's rows (phase two). Its
//!   primary key (scope, sink, epoch) is what makes a replayed commit a no-op.

use super::copy::Fields;
use crate::checkpoint::CommitError;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::{Client, NoTls};

pub(super) const STAGED: &str = "arkflow_pg_staged";
pub(super) const COMMITS: &str = "arkflow_pg_commits";

const CONTROL_DDL: &str = "CREATE TABLE IF NOT EXISTS arkflow_pg_staged (scope text NOT NULL, sink text NOT NULL, epoch bigint NOT NULL, \
     generation bigint NOT NULL, seq int NOT NULL, rows jsonb NOT NULL, PRIMARY KEY (scope, sink, epoch, generation, seq)); \
     CREATE TABLE IF NOT EXISTS arkflow_pg_commits (scope text NOT NULL, sink text NOT NULL, epoch bigint NOT NULL, \
     generation bigint NOT NULL, records bigint NOT NULL, target text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
     PRIMARY KEY (scope, sink, epoch)); \
     ALTER TABLE arkflow_pg_staged ALTER COLUMN rows SET STORAGE EXTERNAL";

/// `"name"` with inner quotes doubled.
pub(super) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `schema.table` or `table`, each part quoted.
pub(super) fn quote_table(s: &str) -> String {
    s.split('.').map(quote_ident).collect::<Vec<_>>().join(".")
}

/// One database, one connection at a time.
pub(super) struct Pg {
    config: tokio_postgres::Config,
    /// host:port/dbname, for messages (never the password).
    pub what: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

/// A database error as a commit error: data and schema errors (SQLSTATE classes 22, 23, 42)
/// can never succeed; the rest (a lost connection, a restart) is worth another try.
pub(super) fn classify(e: &tokio_postgres::Error, what: String) -> CommitError {
    let permanent = e.code().is_some_and(|c| ["22", "23", "42"].iter().any(|class| c.code().starts_with(class)));
    let msg = format!("{what}: {}", describe(e));
    if permanent {
        CommitError::Fatal(msg)
    } else {
        CommitError::Retry(msg)
    }
}

/// The server's message with its detail, or the client's.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}){}", db.message(), db.code().code(), db.detail().map(|d| format!(": {d}")).unwrap_or_default()),
        None => e.to_string(),
    }
}

impl Pg {
    pub(super) fn new(config: tokio_postgres::Config) -> Arc<Pg> {
        let hosts = config.get_hosts().iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(",");
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let what = format!("postgres {hosts}:{port}/{}", config.get_dbname().unwrap_or("(default)"));
        Arc::new(Pg { config, what, client: tokio::sync::Mutex::new(None) })
    }

    /// Runs `f` on the connection (connecting first when there is none); a failure drops the
    /// connection, so an open transaction dies with it and the next call starts clean.
    pub(super) async fn run<T>(&self, f: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>) -> Result<T, tokio_postgres::Error> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let (client, conn) = self.config.connect(NoTls).await?;
            let what = self.what.clone();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!("{what}: connection lost: {e}");
                }
            });
            *slot = Some(client);
        }
        let r = f(slot.as_ref().expect("connected")).await;
        if r.is_err() {
            *slot = None;
        }
        r
    }

    /// Drops the connection (after a failure outside [`Pg::run`]): the next call connects again.
    pub(super) fn reset(&self) {
        if let Ok(mut slot) = self.client.try_lock() {
            *slot = None;
        }
    }

    pub(super) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Creates the control tables when missing.
    pub(super) async fn control_tables(&self) -> Result<(), tokio_postgres::Error> {
        self.run(async |c| c.batch_execute(CONTROL_DDL).await).await
    }
}

/// The target table as the statements need it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// As written in the config (for the commits table and messages).
    pub name: String,
    /// Quoted.
    table: String,
    /// Quoted, in table order.
    columns: Vec<String>,
    /// Quoted; empty: plain inserts.
    keys: Vec<String>,
    /// The columns as COPY rows fill them; None when a column's type needs the statement path.
    pub copy: Option<Fields>,
}

impl Target {
    /// Reads the columns of `name` (those without a default, unless `columns` names them) and
    /// checks `columns` and `keys` against them.
    pub(super) async fn load(c: &Client, name: &str, columns: &[String], keys: &[String]) -> anyhow::Result<Target> {
        let table = quote_table(name);
        let rows = c
            .query(
                "SELECT a.attname::text, (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''), t.typcategory::text, t.typname::text \
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&table],
            )
            .await
            .map_err(|e| anyhow::anyhow!("table {name}: {} (create it before the stream starts)", describe(&e)))?;
        let all: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // (category, type name) of each column, for the COPY path.
        let types: HashMap<String, (String, String)> = rows.iter().map(|r| (r.get(0), (r.get(2), r.get(3)))).collect();
        for c in columns.iter().chain(keys) {
            if !all.iter().any(|(n, _)| n == c) {
                anyhow::bail!("table {name} has no column {c:?} (its columns: {})", all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "));
            }
        }
        let chosen: Vec<&String> = match columns.is_empty() {
            true => all.iter().filter(|(n, has_default)| !has_default || keys.contains(n)).map(|(n, _)| n).collect(),
            false => columns.iter().collect(),
        };
        if let Some(k) = keys.iter().find(|k| !chosen.contains(k)) {
            anyhow::bail!("key column {k:?} is not among the columns written");
        }
        let copyable = chosen.iter().all(|c| !matches!(types[c.as_str()].0.as_str(), "A" | "C"));
        let copy = copyable.then(|| Fields {
            names: chosen.iter().map(|c| c.to_string()).collect(),
            json: chosen.iter().map(|c| matches!(types[c.as_str()].1.as_str(), "json" | "jsonb")).collect(),
        });
        Ok(Target {
            name: name.to_string(),
            table,
            columns: chosen.into_iter().map(|c| quote_ident(c)).collect(),
            keys: keys.iter().map(|k| quote_ident(k)).collect(),
            copy,
        })
    }

    /// INSERT of the rows of `source` (which yields `e.v`, one JSON object, and the order
    /// columns), filtered by `filter`, in `order`; with key columns an upsert of each key's last row.
    fn insert(&self, source: &str, filter: &str, order: &[&str]) -> String {
        let from = format!("FROM {source} CROSS JOIN LATERAL jsonb_populate_record(null::{}, e.v) AS p {filter}", self.table);
        self.insert_from(&from, "p", order)
    }

    /// INSERT of the columns of `alias` in `from`, in `order`; with key columns an upsert of
    /// each key's last row.
    fn insert_from(&self, from: &str, alias: &str, order: &[&str]) -> String {
        let (t, cols) = (&self.table, self.columns.join(", "));
        let picked = self.columns.iter().map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ");
        if self.keys.is_empty() {
            return format!("INSERT INTO {t} ({cols}) SELECT {picked} {from} ORDER BY {}", order.join(", "));
        }
        let keys = self.keys.iter().map(|k| format!("{alias}.{k}")).collect::<Vec<_>>().join(", ");
        let last = order.iter().map(|o| format!("{o} DESC")).collect::<Vec<_>>().join(", ");
        let updates: Vec<String> = self.columns.iter().filter(|c| !self.keys.contains(c)).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        let action = if updates.is_empty() { "DO NOTHING".to_string() } else { format!("DO UPDATE SET {}", updates.join(", ")) };
        format!("INSERT INTO {t} ({cols}) SELECT DISTINCT ON ({keys}) {picked} {from} ORDER BY {keys}, {last} ON CONFLICT ({}) {action}", self.keys.join(", "))
    }

    /// The statements that write COPY rows: plain inserts COPY into the table; upserts COPY
    /// into a temporary table of the session (emptied at commit) and upsert from there, which
    /// must run in one transaction.
    pub(super) fn copy_statements(&self) -> CopyStatements {
        let (t, cols) = (&self.table, self.columns.join(", "));
        if self.keys.is_empty() {
            return CopyStatements { before: None, copy: format!("COPY {t} ({cols}) FROM STDIN"), after: None };
        }
        let temp = "pg_temp.arkflow_copy";
        let before = format!(
            "CREATE TEMP TABLE IF NOT EXISTS arkflow_copy ON COMMIT DELETE ROWS AS SELECT {cols} FROM {t} WITH NO DATA; \
             ALTER TABLE {temp} ADD COLUMN IF NOT EXISTS arkflow_ord bigint GENERATED ALWAYS AS IDENTITY"
        );
        let upsert = self.insert_from(&format!("FROM {temp} c"), "c", &["c.arkflow_ord"]);
        CopyStatements { before: Some(before), copy: format!("COPY {temp} ({cols}) FROM STDIN"), after: Some(upsert) }
    }

    /// The rows of `$1` (a JSON array as text), at once.
    pub(super) fn direct_insert(&self) -> String {
        self.insert("jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS e(v, i)", "", &["e.i"])
    }

    /// The staged rows of (scope $1, sink $2, epoch $3, generation $4).
    pub(super) fn staged_insert(&self) -> String {
        let source = format!("{STAGED} s CROSS JOIN LATERAL jsonb_array_elements(s.rows) WITH ORDINALITY AS e(v, i)");
        self.insert(&source, "WHERE s.scope = $1 AND s.sink = $2 AND s.epoch = $3 AND s.generation = $4", &["s.seq", "e.i"])
    }

    pub(super) fn upserts(&self) -> bool {
        !self.keys.is_empty()
    }
}

/// How COPY rows reach the table: `before` and `after` (simple queries) around the COPY; when
/// there are any, all three run in one transaction.
pub(super) struct CopyStatements {
    pub before: Option<String>,
    pub copy: String,
    pub after: Option<String>,
}

/// What phase one staged for one epoch, in the manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Staged {
    pub epoch: u64,
    pub generation: u64,
    pub records: u64,
    /// Phase one prepared a transaction (`postgres_prepared`) instead of staging the rows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prepared: bool,
}

/// The manifest blob of one pre-commit.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Blob {
    pub scope: String,
    pub sink: String,
    pub epochs: Vec<Staged>,
    /// The staged rows are COPY text (one JSON string per chunk), not JSON arrays of objects.
    #[serde(default)]
    pub copy: bool,
}

/// Phase two: moves each staged epoch into the table with its commits row, in one transaction.
pub(super) struct PgCommitter {
    pub pg: Arc<Pg>,
    pub target: Target,
    pub cache: super::copy::Cache,
    /// The sink's id (its rows in the control tables are keyed by it).
    pub sink: String,
}

impl crate::checkpoint::Committer for PgCommitter {
    fn commit(&self, _epoch: u64, blob: &serde_json::Value, _replay: bool) -> Result<(), CommitError> {
        let blob: Blob = serde_json::from_value(blob.clone())
            .map_err(|e| CommitError::Fatal(format!("postgres output: the checkpoint's pre-commit is not a postgres output's ({e})")))?;
        for s in &blob.epochs {
            crate::checkpoint::block_on(self.commit_epoch(&blob, s))?;
        }
        Ok(())
    }

    /// Rolls back `scope`'s prepared transactions of the epochs after `after` (every generation:
    /// their writer is fenced) and deletes its staged rows of those epochs.
    fn abandon(&self, scope: &str, after: Option<u64>) -> anyhow::Result<()> {
        let what = |e: &tokio_postgres::Error| format!("postgres output: releasing what {scope}/{} staged on {}: {}", self.sink, self.pg.what, describe(e));
        let rolled = crate::checkpoint::block_on(super::prepared::roll_back_abandoned(&self.pg, scope, &self.sink, after, u64::MAX))
            .map_err(|e| anyhow::anyhow!(what(&e)))?;
        if !rolled.is_empty() {
            tracing::info!(rolled_back = ?rolled, "postgres output: rolled back the prepared transactions of a fenced session's undecided epochs");
        }
        let after = after.map_or(-1, |d| d as i64);
        let q = format!("DELETE FROM {STAGED} WHERE scope = $1 AND sink = $2 AND epoch > $3");
        crate::checkpoint::block_on(self.pg.run(async |c| c.execute(&q, &[&scope, &self.sink, &after]).await)).map_err(|e| anyhow::anyhow!(what(&e)))?;
        Ok(())
    }
}

/// How one epoch's commit went.
enum Outcome {
    Done,
    /// The staged rows are not all there.
    Missing(u64),
    /// Another run committed this epoch: (generation, records).
    Other(i64, i64),
}

impl PgCommitter {
    /// Copies the epoch's staged COPY rows into the table (from the cache when phase one ran in
    /// this process); the number of rows copied.
    async fn copy_staged(&self, c: &Client, blob: &Blob, s: &Staged) -> Result<u64, tokio_postgres::Error> {
        let cached = self.cache.lock().expect("cache").remove(&(s.epoch, s.generation));
        let rows = match cached {
            Some(rows) => rows,
            None => {
                let q = format!("SELECT rows #>> '{{}}' FROM {STAGED} WHERE scope = $1 AND sink = $2 AND epoch = $3 AND generation = $4 ORDER BY seq");
                let found = c.query(&q, &[&blob.scope, &blob.sink, &(s.epoch as i64), &(s.generation as i64)]).await?;
                found.iter().flat_map(|r| r.get::<_, String>(0).into_bytes()).collect()
            }
        };
        super::copy::copy_all(c, &self.target.copy_statements(), bytes::Bytes::from(rows)).await
    }

    async fn commit_epoch(&self, blob: &Blob, s: &Staged) -> Result<(), CommitError> {
        if s.prepared {
            return self.commit_prepared(blob, s).await;
        }
        let (scope, sink, epoch, generation, records) = (&blob.scope, &blob.sink, s.epoch as i64, s.generation as i64, s.records as i64);
        let insert = self.target.staged_insert();
        let plain = !self.target.upserts();
        let outcome = self
            .pg
            .run(async |c| {
                c.batch_execute("BEGIN").await?;
                let claim =
                    format!("INSERT INTO {COMMITS} (scope, sink, epoch, generation, records, target) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING");
                let fresh = c.execute(&claim, &[scope, sink, &epoch, &generation, &records, &self.target.name]).await? == 1;
                let outcome = if fresh {
                    let n = match blob.copy {
                        true => self.copy_staged(c, blob, s).await?,
                        false => c.execute(&insert, &[scope, sink, &epoch, &generation]).await?,
                    };
                    if (plain || blob.copy) && n != s.records {
                        Outcome::Missing(n)
                    } else {
                        Outcome::Done
                    }
                } else {
                    let row = c
                        .query_one(&format!("SELECT generation, records FROM {COMMITS} WHERE scope = $1 AND sink = $2 AND epoch = $3"), &[scope, sink, &epoch])
                        .await?;
                    let (g, n): (i64, i64) = (row.get(0), row.get(1));
                    if (g, n) == (generation, records) {
                        Outcome::Done
                    } else {
                        Outcome::Other(g, n)
                    }
                };
                if !matches!(outcome, Outcome::Done) {
                    c.batch_execute("ROLLBACK").await?;
                    return Ok(outcome);
                }
                c.execute(&format!("DELETE FROM {STAGED} WHERE scope = $1 AND sink = $2 AND epoch = $3"), &[scope, sink, &epoch]).await?;
                c.batch_execute("COMMIT").await?;
                Ok(outcome)
            })
            .await
            .map_err(|e| classify(&e, format!("postgres output: committing epoch {epoch} into {} on {}", self.target.name, self.pg.what)))?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Missing(n) => Err(CommitError::Fatal(format!(
                "postgres output: epoch {epoch} staged {records} rows in {STAGED} before the decision, but {n} are there: something deleted them"
            ))),
            Outcome::Other(g, n) => Err(CommitError::Fatal(format!(
                "postgres output: epoch {epoch} of {scope}/{sink} was committed into {} by another run (generation {g}, {n} rows; this one: generation {generation}, {records} rows): another stream with this operator_id writes to this database",
                self.target.name
            ))),
        }
    }

    /// Phase two of an epoch phase one prepared: `COMMIT PREPARED`.
    async fn commit_prepared(&self, blob: &Blob, s: &Staged) -> Result<(), CommitError> {
        let ids = (blob.scope.as_str(), blob.sink.as_str(), s.epoch, s.generation);
        let done =
            self.pg.run(async |c| super::prepared::commit(c, ids, s.records).await).await.map_err(|e| {
                classify(&e, format!("postgres output: committing the prepared epoch {} into {} on {}", s.epoch, self.target.name, self.pg.what))
            })?;
        match done {
            super::prepared::Committed::Now | super::prepared::Committed::Before => Ok(()),
            super::prepared::Committed::Lost(found) => Err(CommitError::Fatal(format!(
                "postgres output: the prepared transaction {} of decided epoch {} is gone and the epoch is not committed ({}): it was rolled back outside this stream, and its {} rows are lost",
                super::prepared::gid(ids.0, ids.1, ids.2, ids.3),
                s.epoch,
                match found {
                    Some((g, n)) => format!("{COMMITS} names generation {g} with {n} rows"),
                    None => format!("{COMMITS} has no row for it"),
                },
                s.records
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(keys: &[&str]) -> Target {
        let q = |v: &[&str]| v.iter().map(|c| quote_ident(c)).collect();
        Target { name: "app.counts".into(), table: quote_table("app.counts"), columns: q(&["key", "count"]), keys: q(keys), copy: None }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_table("app.Counts"), "\"app\".\"Counts\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn plain_inserts_keep_order_and_upserts_keep_each_keys_last_row() {
        let plain = target(&[]).direct_insert();
        assert_eq!(
            plain,
            "INSERT INTO \"app\".\"counts\" (\"key\", \"count\") SELECT p.\"key\", p.\"count\" FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS e(v, i) \
             CROSS JOIN LATERAL jsonb_populate_record(null::\"app\".\"counts\", e.v) AS p  ORDER BY e.i"
        );
        let upsert = target(&["key"]).staged_insert();
        assert!(upsert.contains("SELECT DISTINCT ON (p.\"key\")"), "{upsert}");
        assert!(upsert.contains("ORDER BY p.\"key\", s.seq DESC, e.i DESC ON CONFLICT (\"key\") DO UPDATE SET \"count\" = EXCLUDED.\"count\""), "{upsert}");
        assert!(upsert.contains("WHERE s.scope = $1 AND s.sink = $2 AND s.epoch = $3 AND s.generation = $4"), "{upsert}");
        let mut all_keys = target(&["key"]);
        all_keys.columns.truncate(1);
        assert!(all_keys.direct_insert().ends_with("DO NOTHING"));
    }

    #[test]
    fn manifests_from_before_the_copy_path_read_as_json_staging() {
        let old: Blob = serde_json::from_str(r#"{"scope":"s","sink":"output","epochs":[{"epoch":3,"generation":1,"records":2}]}"#).unwrap();
        assert!(!old.copy, "an old manifest's staged rows are JSON arrays");
        let upsert = target(&["key"]).copy_statements();
        assert_eq!(upsert.copy, "COPY pg_temp.arkflow_copy (\"key\", \"count\") FROM STDIN");
        assert!(upsert.after.unwrap().contains("FROM pg_temp.arkflow_copy c ORDER BY c.\"key\", c.arkflow_ord DESC ON CONFLICT (\"key\")"));
        let plain = target(&[]).copy_statements();
        assert_eq!((plain.before, plain.copy.as_str(), plain.after), (None, "COPY \"app\".\"counts\" (\"key\", \"count\") FROM STDIN", None));
    }
}
