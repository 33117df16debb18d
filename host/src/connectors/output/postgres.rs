//! `postgres` output: each record (a JSON object) becomes a row of an existing table, its fields
//! matched to columns by name; with `key_columns` an upsert (each key's last record wins).
//!
//! Contract:
//! - **Exactly-once** with `state_management.enabled` and `exactly_once: true`, through the
//!   commit protocol of `checkpoint::commit`: an epoch's records are held in memory until its
//!   barrier, staged in `arkflow_pg_staged` in phase one (durable before the decision), and moved
//!   into the table in phase two, in one transaction with the epoch's row in
//!   `arkflow_pg_commits`, whose primary key makes a replayed commit a no-op (see
//!   `postgres_sql`). At start (`recovered`), a committed epoch this state never decided is
//!   refused (a wiped state, or another stream with this operator id on the database), and the
//!   undecided staged rows of earlier runs are deleted.
//! - Otherwise at-least-once: every flush inserts what was written since the last one in one
//!   statement (with `key_columns`, replays overwrite the same rows).
//! - A record whose value is not a JSON object stops the stream, naming its position, before it
//!   reaches the database; a row the table refuses (a type, a constraint) stops it with the
//!   database's message.
//! - Connections are plain TCP (no TLS): the server is expected on a trusted network.

use super::Output;
use crate::checkpoint::{block_on, Committer};
use crate::config::{ConfigError, Ctx, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use std::collections::BTreeMap;
use std::sync::Arc;

#[path = "postgres_sql.rs"]
mod sql;

use sql::{describe, Blob, Pg, PgCommitter, Staged, Target, STAGED};

/// Rows per staged chunk or insert statement, at most (and about 8 MiB of JSON).
const CHUNK_BYTES: usize = 8 << 20;

/// `type: postgres` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresOutputConfig {
    /// libpq connection string or postgres:// URL (required)
    pub url: String,
    /// `table` or `schema.table` (required; it must exist)
    pub table: String,
    /// Columns written; default every column without a default
    pub columns: Vec<String>,
    /// Upsert on these columns (a unique index); default none (plain inserts)
    pub key_columns: Vec<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresOutput {
    url: String,
    table: String,
    columns: Option<Vec<String>>,
    key_columns: Option<Vec<String>>,
}

impl Sink for PostgresOutputConfig {
    const NAME: &'static str = "postgres";
    type Raw = RawPostgresOutput;

    fn from_raw(ctx: &Ctx, raw: RawPostgresOutput, at: &YPath) -> Result<Self, ConfigError> {
        if let Err(e) = raw.url.parse::<tokio_postgres::Config>() {
            let u = at.key("url");
            return Err(ctx.invalid(
                &u,
                format!("{u} is not a connection string such as \"host=127.0.0.1 user=arkflow dbname=app\" or postgres://user@127.0.0.1/app ({e})"),
            ));
        }
        if raw.table.is_empty() || raw.table.split('.').count() > 2 || raw.table.split('.').any(str::is_empty) {
            let t = at.key("table");
            return Err(ctx.invalid(&t, format!("{t} must be `table` or `schema.table` (got {:?})", raw.table)));
        }
        Ok(PostgresOutputConfig { url: raw.url, table: raw.table, columns: raw.columns.unwrap_or_default(), key_columns: raw.key_columns.unwrap_or_default() })
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { commits_after_decision: true, ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let pg = Pg::new(self.url.parse()?);
        let exactly_once = cx.exactly_once && cx.place.is_some();
        let target = block_on(async {
            let target = pg.run(async |c| Ok(Target::load(c, &self.table, &self.columns, &self.key_columns).await)).await;
            let target = target.map_err(|e| anyhow::anyhow!("{}: {}", pg.what, describe(&e)))?.map_err(|e| anyhow::anyhow!("{}: {e:#}", pg.what))?;
            if exactly_once {
                pg.control_tables().await.map_err(|e| anyhow::anyhow!("{}: creating the control tables: {}", pg.what, describe(&e)))?;
            }
            anyhow::Ok(target)
        })
        .map_err(|e| anyhow::anyhow!("postgres output: {e:#}"))?;
        let mode = match cx.place.filter(|_| exactly_once) {
            Some(at) => Mode::Epochs { scope: at.scope.to_string(), generation: at.generation },
            None => Mode::AtLeastOnce,
        };
        Ok(Box::new(PgOut { pg, target, sink: cx.sink.to_string(), mode, open: BTreeMap::new() }))
    }
}

enum Mode {
    Epochs { scope: String, generation: u64 },
    AtLeastOnce,
}

/// An epoch's rows as JSON arrays of at most [`CHUNK_BYTES`], and their count.
#[derive(Default)]
struct Rows {
    chunks: Vec<Vec<u8>>,
    records: u64,
}

impl Rows {
    fn push(&mut self, value: &[u8]) {
        match self.chunks.last_mut() {
            Some(c) if c.len() + value.len() < CHUNK_BYTES => c.push(b','),
            _ => self.chunks.push(vec![b'[']),
        }
        self.chunks.last_mut().expect("pushed").extend_from_slice(value);
        self.records += 1;
    }

    /// The chunks as JSON array texts.
    fn texts(self) -> Vec<String> {
        self.chunks
            .into_iter()
            .map(|mut c| {
                c.push(b']');
                String::from_utf8(c).expect("JSON checked on write")
            })
            .collect()
    }
}

pub struct PgOut {
    pg: Arc<Pg>,
    target: Target,
    sink: String,
    mode: Mode,
    /// Rows per epoch (epoch 0 when at-least-once).
    open: BTreeMap<u64, Rows>,
}

impl PgOut {
    fn add(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        let rows = self.open.entry(epoch).or_default();
        for r in records {
            let v = r.value.as_deref().unwrap_or_default();
            let object = v.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok();
            if !object || std::str::from_utf8(v).is_err() {
                anyhow::bail!(
                    "postgres output: the record at partition {} offset {} is not a JSON object, so it cannot be a row of {}: {}",
                    r.partition,
                    r.offset,
                    self.target.name,
                    String::from_utf8_lossy(&v[..v.len().min(200)])
                );
            }
            rows.push(v);
        }
        Ok(())
    }

    /// Stages the rows of `epoch` (phase one): one transaction, replacing what this generation
    /// staged for it before.
    fn stage(&self, scope: &str, epoch: u64, generation: u64, rows: Rows) -> anyhow::Result<Staged> {
        let records = rows.records;
        let texts = rows.texts();
        let (sink, e, g) = (&self.sink, epoch as i64, generation as i64);
        block_on(self.pg.run(async |c| {
            c.batch_execute("BEGIN").await?;
            let delete = format!("DELETE FROM {STAGED} WHERE scope = $1 AND sink = $2 AND epoch = $3 AND generation = $4");
            c.execute(&delete, &[&scope, sink, &e, &g]).await?;
            let insert = format!("INSERT INTO {STAGED} (scope, sink, epoch, generation, seq, rows) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)");
            for (seq, text) in texts.iter().enumerate() {
                c.execute(&insert, &[&scope, sink, &e, &g, &(seq as i32), text]).await?;
            }
            c.batch_execute("COMMIT").await
        }))
        .map_err(|err| anyhow::anyhow!("postgres output: staging epoch {epoch} on {}: {}", self.pg.what, describe(&err)))?;
        Ok(Staged { epoch, generation, records })
    }
}

impl Output for PgOut {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        match self.mode {
            Mode::AtLeastOnce => self.add(0, records),
            Mode::Epochs { .. } => anyhow::bail!("exactly-once postgres output needs the epoch of every record"),
        }
    }

    fn write_epoch(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        match self.mode {
            Mode::AtLeastOnce => self.add(0, records),
            Mode::Epochs { .. } => self.add(epoch, records),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let Mode::AtLeastOnce = self.mode else { return Ok(()) };
        let Some(rows) = self.open.remove(&0) else { return Ok(()) };
        let insert = self.target.direct_insert();
        for text in rows.texts() {
            block_on(self.pg.run(async |c| c.execute(&insert, &[&text]).await))
                .map_err(|e| anyhow::anyhow!("postgres output: inserting into {} on {}: {}", self.target.name, self.pg.what, describe(&e)))?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> anyhow::Result<Option<serde_json::Value>> {
        let Mode::Epochs { scope, generation } = &self.mode else { return self.flush().map(|()| None) };
        let (scope, generation) = (scope.clone(), *generation);
        let ready: Vec<u64> = self.open.range(..=epoch).map(|(e, _)| *e).collect();
        let mut epochs = Vec::with_capacity(ready.len());
        for e in ready {
            let rows = self.open.remove(&e).expect("listed");
            epochs.push(self.stage(&scope, e, generation, rows)?);
        }
        if epochs.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::to_value(Blob { scope, sink: self.sink.clone(), epochs })?))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        match self.mode {
            Mode::Epochs { .. } => Some(Arc::new(PgCommitter { pg: Pg::new(self.pg.config().clone()), target: self.target.clone() })),
            Mode::AtLeastOnce => None,
        }
    }

    fn recovered(&mut self, last_decided: Option<u64>) -> anyhow::Result<()> {
        let Mode::Epochs { scope, generation } = &self.mode else { return Ok(()) };
        let (sink, g, after) = (&self.sink, *generation as i64, last_decided.map_or(-1, |d| d as i64));
        let found = block_on(self.pg.run(async |c| {
            let q = format!("SELECT max(epoch) FROM {} WHERE scope = $1 AND sink = $2 AND epoch > $3", sql::COMMITS);
            let newer: Option<i64> = c.query_one(&q, &[scope, sink, &after]).await?.get(0);
            if newer.is_none() {
                let d = format!("DELETE FROM {STAGED} WHERE scope = $1 AND sink = $2 AND epoch > $3 AND generation < $4");
                c.execute(&d, &[scope, sink, &after, &g]).await?;
            }
            Ok(newer)
        }))
        .map_err(|e| anyhow::anyhow!("postgres output: reading {} on {}: {}", sql::COMMITS, self.pg.what, describe(&e)))?;
        if let Some(epoch) = found {
            anyhow::bail!(
                "postgres output: {} on {} holds epoch {epoch} of {scope}/{sink}, which this stream's state never decided (last decided: {}): it is another run's output (a wiped or `memory` state store, or another stream with this operator_id). Delete those rows and their {} entries, or use another operator_id; mixing them would lose or duplicate rows",
                self.target.name,
                self.pg.what,
                last_decided.map_or("none".to_string(), |d| d.to_string()),
                sql::COMMITS
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
