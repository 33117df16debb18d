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
//!   When the server allows prepared transactions and the table takes plain inserts through
//!   COPY (`two_phase`, default on), phase one instead COPYs the rows into the table in a
//!   transaction that claims the epoch and is prepared, and phase two is `COMMIT PREPARED`: the
//!   rows are written once (see `postgres_prepared`).
//! - Otherwise at-least-once: rows stream into one `COPY` that every flush (and every 2^20
//!   rows) ends (see `postgres_copy`; with `key_columns`, through a
//!   temporary table and one upsert, so replays overwrite the same rows), or, for a table with
//!   an array or composite column, with one statement over the rows as `jsonb`.
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

#[path = "postgres_copy.rs"]
mod copy;

#[path = "postgres_prepared.rs"]
mod prepared;

use copy::CopyRows;
use sql::{describe, Blob, Pg, PgCommitter, Staged, Target, STAGED};

/// Rows per staged chunk or insert statement, at most (and about 8 MiB of JSON).
const CHUNK_BYTES: usize = 8 << 20;

/// COPY rows are sent once this many bytes are encoded.
const SEND_BYTES: usize = 256 << 10;

/// An at-least-once COPY ends (its rows committed) after this many rows, flush or not.
const CHUNK_ROWS: u64 = 1 << 20;

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
    /// Exactly-once through prepared transactions when the server and table allow (default true)
    pub two_phase: bool,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresOutput {
    url: String,
    table: String,
    columns: Option<Vec<String>>,
    key_columns: Option<Vec<String>>,
    two_phase: Option<bool>,
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
        Ok(PostgresOutputConfig {
            url: raw.url,
            table: raw.table,
            columns: raw.columns.unwrap_or_default(),
            key_columns: raw.key_columns.unwrap_or_default(),
            two_phase: raw.two_phase.unwrap_or(true),
        })
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { commits_after_decision: true, ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let pg = Pg::new(self.url.parse()?);
        let exactly_once = cx.exactly_once && cx.place.is_some();
        let (target, two_phase) = block_on(async {
            let target = pg.run(async |c| Ok(Target::load(c, &self.table, &self.columns, &self.key_columns).await)).await;
            let target = target.map_err(|e| anyhow::anyhow!("{}: {}", pg.what, describe(&e)))?.map_err(|e| anyhow::anyhow!("{}: {e:#}", pg.what))?;
            let mut two_phase = false;
            if exactly_once {
                pg.control_tables().await.map_err(|e| anyhow::anyhow!("{}: creating the control tables: {}", pg.what, describe(&e)))?;
                let fits = self.two_phase && target.copy.is_some() && !target.upserts();
                two_phase = fits && pg.run(async |c| prepared::available(c).await).await.map_err(|e| anyhow::anyhow!("{}: {}", pg.what, describe(&e)))?;
            }
            anyhow::Ok((target, two_phase))
        })
        .map_err(|e| anyhow::anyhow!("postgres output: {e:#}"))?;
        if exactly_once {
            let how = if two_phase { "prepared transactions (two-phase commit)" } else { "rows staged in arkflow_pg_staged" };
            tracing::info!(sink = %cx.sink, table = %self.table, "postgres output: exactly-once through {how}");
        }
        let mode = match cx.place.filter(|_| exactly_once) {
            Some(at) => Mode::Epochs { scope: at.scope.to_string(), generation: at.generation },
            None => Mode::AtLeastOnce,
        };
        Ok(Box::new(PgOut {
            pg,
            target,
            sink: cx.sink.to_string(),
            mode,
            open: BTreeMap::new(),
            copied: CopyRows::default(),
            copying: None,
            open_copy: BTreeMap::new(),
            cache: copy::Cache::default(),
            two_phase,
            last_decided: None,
            prepared_epoch: None,
        }))
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
    /// Rows per epoch (epoch 0 when at-least-once without the COPY path).
    open: BTreeMap<u64, Rows>,
    /// At-least-once rows for the COPY path not sent yet.
    copied: CopyRows,
    /// The COPY open since the first rows after the last flush.
    copying: Option<copy::Streaming>,
    /// Exactly-once COPY rows per epoch, until staged.
    open_copy: BTreeMap<u64, CopyRows>,
    /// Staged COPY rows, shared with the committer.
    cache: copy::Cache,
    /// Phase one prepares a transaction with the rows (`postgres_prepared`).
    two_phase: bool,
    /// The last decided epoch at start (what makes an older prepared transaction abandoned).
    last_decided: Option<u64>,
    /// Two-phase: the epoch whose rows stream into `copying`, in the transaction phase one
    /// prepares (later epochs wait in `open_copy` until its barrier).
    prepared_epoch: Option<u64>,
}

impl PgOut {
    fn add(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        let streams =
            self.two_phase && (self.prepared_epoch == Some(epoch) || (self.prepared_epoch.is_none() && self.open_copy.range(..=epoch).next().is_none()));
        if streams {
            self.prepared_epoch = Some(epoch);
        }
        let copy = self.target.copy.as_ref();
        for r in records {
            let v = r.value.as_deref().unwrap_or_default();
            let refused = match copy {
                Some(fields) => match self.mode {
                    Mode::AtLeastOnce => fields.encode(&mut self.copied, v).err(),
                    Mode::Epochs { .. } if streams => fields.encode(&mut self.copied, v).err(),
                    Mode::Epochs { .. } => fields.encode(self.open_copy.entry(epoch).or_default(), v).err(),
                },
                None => {
                    let ok = crate::util::json::is_object(v) && std::str::from_utf8(v).is_ok();
                    if ok {
                        self.open.entry(epoch).or_default().push(v);
                    }
                    (!ok).then(|| "not a JSON object".to_string())
                }
            };
            if let Some(why) = refused {
                anyhow::bail!(
                    "postgres output: the record at partition {} offset {} is not a JSON object, so it cannot be a row of {} ({why}): {}",
                    r.partition,
                    r.offset,
                    self.target.name,
                    String::from_utf8_lossy(&v[..v.len().min(200)])
                );
            }
        }
        if self.copied.buf.len() >= SEND_BYTES {
            self.send_copied()?;
        }
        // At-least-once rows need not wait for a flush: past a chunk they go at once.
        let full = self.copying.as_ref().is_some_and(|c| c.records >= CHUNK_ROWS) || self.open.get(&0).is_some_and(|rows| rows.chunks.len() > 1);
        if full && matches!(self.mode, Mode::AtLeastOnce) {
            self.flush()?;
        }
        Ok(())
    }

    fn copy_error(&mut self, e: &tokio_postgres::Error) -> anyhow::Error {
        self.copying = None;
        self.prepared_epoch = None;
        self.pg.reset();
        anyhow::anyhow!("postgres output: copying into {} on {}: {}", self.target.name, self.pg.what, describe(e))
    }

    /// Sends the encoded rows into the open COPY (opening it first).
    fn send_copied(&mut self) -> anyhow::Result<()> {
        let rows = std::mem::take(&mut self.copied);
        if self.copying.is_none() {
            if let Some(epoch) = self.prepared_epoch {
                self.begin_prepared(epoch)?;
            }
            let started = block_on(copy::Streaming::start(&self.pg, self.target.copy_statements()));
            self.copying = Some(started.map_err(|e| self.copy_error(&e))?);
        }
        let sent = block_on(self.copying.as_mut().expect("open").send(rows));
        sent.map_err(|e| self.copy_error(&e))
    }

    /// Ends the open COPY (at-least-once): its rows are in the table.
    fn finish_copy(&mut self) -> anyhow::Result<()> {
        if self.copied.records > 0 {
            self.send_copied()?;
        }
        let Some(copying) = self.copying.take() else { return Ok(()) };
        let sent = copying.records;
        let copied = block_on(copying.finish(&self.pg)).map_err(|e| self.copy_error(&e))?;
        anyhow::ensure!(copied == sent, "postgres output: COPY into {} took {copied} of {sent} rows", self.target.name);
        Ok(())
    }

    /// Stages the rows of `epoch` (phase one): one transaction, replacing what this generation
    /// staged for it before. Each chunk is a JSON array of the rows (the statement path) or a
    /// JSON string of COPY text (`to_jsonb` of the text: the server neither parses nor escapes it).
    fn stage(&self, scope: &str, epoch: u64, generation: u64, texts: &[&str], records: u64) -> anyhow::Result<Staged> {
        let (sink, e, g) = (&self.sink, epoch as i64, generation as i64);
        let value = if self.target.copy.is_some() { "to_jsonb($6::text)" } else { "$6::text::jsonb" };
        block_on(self.pg.run(async |c| {
            c.batch_execute("BEGIN").await?;
            let delete = format!("DELETE FROM {STAGED} WHERE scope = $1 AND sink = $2 AND epoch = $3 AND generation = $4");
            c.execute(&delete, &[&scope, sink, &e, &g]).await?;
            let insert = format!("INSERT INTO {STAGED} (scope, sink, epoch, generation, seq, rows) VALUES ($1, $2, $3, $4, $5, {value})");
            for (seq, text) in texts.iter().enumerate() {
                c.execute(&insert, &[&scope, sink, &e, &g, &(seq as i32), text]).await?;
            }
            c.batch_execute("COMMIT").await
        }))
        .map_err(|err| anyhow::anyhow!("postgres output: staging epoch {epoch} on {}: {}", self.pg.what, describe(&err)))?;
        Ok(Staged { epoch, generation, records, prepared: false })
    }

    /// Phase one of `epoch` by a prepared transaction, its rows in one COPY (an epoch whose rows
    /// waited in memory while an earlier one streamed).
    fn prepare_epoch(&self, scope: &str, epoch: u64, generation: u64, rows: copy::CopyRows) -> anyhow::Result<Staged> {
        let (buf, records) = (bytes::Bytes::from(rows.buf), rows.records);
        let ids = (scope, self.sink.as_str(), epoch, generation);
        let copied = self.past_locks(ids, || block_on(self.pg.run(async |c| prepared::prepare(c, &self.target, ids, buf.clone(), records).await)))?;
        anyhow::ensure!(copied == records, "postgres output: COPY into {} took {copied} of {records} rows", self.target.name);
        Ok(Staged { epoch, generation, records, prepared: true })
    }

    /// Two-phase, before `epoch`'s first rows stream: opens its transaction and claims the epoch.
    fn begin_prepared(&self, epoch: u64) -> anyhow::Result<()> {
        let Mode::Epochs { scope, generation } = &self.mode else { anyhow::bail!("postgres output: two-phase without epochs") };
        let ids = (scope.as_str(), self.sink.as_str(), epoch, *generation);
        self.past_locks(ids, || block_on(self.pg.run(async |c| prepared::begin(c, &self.target, ids).await)))
    }

    /// Runs `attempt` (a phase one of epoch `ids.2`); after a lock timeout (an older
    /// generation's prepared claim of the same epoch), rolls back what no commit will complete
    /// and runs it once more.
    fn past_locks<T>(&self, ids: (&str, &str, u64, u64), attempt: impl Fn() -> Result<T, tokio_postgres::Error>) -> anyhow::Result<T> {
        let (scope, sink, epoch, generation) = ids;
        let failed = |e: tokio_postgres::Error| prepared::failed(epoch, &self.pg, &e);
        match attempt() {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                let rolled = block_on(prepared::roll_back_abandoned(&self.pg, scope, sink, self.last_decided, generation)).map_err(failed)?;
                tracing::warn!(epoch, rolled_back = ?rolled, "postgres output: phase one waited on another transaction's lock; rolled back the abandoned prepared transactions and tries again");
                attempt().map_err(failed)
            }
            other => other.map_err(failed),
        }
    }

    /// Two-phase, at `epoch`'s barrier: ends its COPY, records its count and prepares.
    fn finish_prepared(&mut self, scope: &str, epoch: u64, generation: u64) -> anyhow::Result<Staged> {
        if self.copied.records > 0 {
            self.send_copied()?;
        }
        self.prepared_epoch = None;
        let copying = self.copying.take().ok_or_else(|| anyhow::anyhow!("postgres output: epoch {epoch} has no open COPY"))?;
        let sent = copying.records;
        let copied = block_on(copying.finish(&self.pg)).map_err(|e| self.copy_error(&e))?;
        anyhow::ensure!(copied == sent, "postgres output: COPY into {} took {copied} of {sent} rows", self.target.name);
        let ids = (scope, self.sink.as_str(), epoch, generation);
        block_on(self.pg.run(async |c| prepared::seal(c, ids, sent).await)).map_err(|e| prepared::failed(epoch, &self.pg, &e))?;
        Ok(Staged { epoch, generation, records: sent, prepared: true })
    }

    /// Stages `epoch`'s rows, whichever path they took.
    fn stage_epoch(&mut self, scope: &str, epoch: u64, generation: u64) -> anyhow::Result<Staged> {
        if self.prepared_epoch == Some(epoch) {
            return self.finish_prepared(scope, epoch, generation);
        }
        if let Some(rows) = self.open_copy.remove(&epoch) {
            if self.two_phase {
                return self.prepare_epoch(scope, epoch, generation, rows);
            }
            let texts: Vec<&str> = copy::chunks(&rows.buf, CHUNK_BYTES).into_iter().map(|c| std::str::from_utf8(c).expect("rows are UTF-8")).collect();
            let staged = self.stage(scope, epoch, generation, &texts, rows.records)?;
            self.cache.lock().expect("cache").insert((epoch, generation), rows.buf);
            return Ok(staged);
        }
        let rows = self.open.remove(&epoch).unwrap_or_default();
        let records = rows.records;
        let texts = rows.texts();
        self.stage(scope, epoch, generation, &texts.iter().map(String::as_str).collect::<Vec<_>>(), records)
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
        self.finish_copy()?;
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
        let ready: std::collections::BTreeSet<u64> = self
            .open
            .range(..=epoch)
            .map(|(e, _)| *e)
            .chain(self.open_copy.range(..=epoch).map(|(e, _)| *e))
            .chain(self.prepared_epoch.filter(|e| *e <= epoch))
            .collect();
        let mut epochs = Vec::with_capacity(ready.len());
        for e in ready {
            epochs.push(self.stage_epoch(&scope, e, generation)?);
        }
        if epochs.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::to_value(Blob { scope, sink: self.sink.clone(), epochs, copy: self.target.copy.is_some() })?))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        match self.mode {
            Mode::Epochs { .. } => {
                let (target, cache, sink) = (self.target.clone(), self.cache.clone(), self.sink.clone());
                Some(Arc::new(PgCommitter { pg: Pg::new(self.pg.config().clone()), target, cache, sink }))
            }
            Mode::AtLeastOnce => None,
        }
    }

    fn recovered(&mut self, last_decided: Option<u64>) -> anyhow::Result<()> {
        let Mode::Epochs { scope, generation } = &self.mode else { return Ok(()) };
        self.last_decided = last_decided;
        let rolled = block_on(prepared::roll_back_abandoned(&self.pg, scope, &self.sink, last_decided, *generation))
            .map_err(|e| anyhow::anyhow!("postgres output: rolling back abandoned prepared transactions on {}: {}", self.pg.what, describe(&e)))?;
        if !rolled.is_empty() {
            tracing::info!(rolled_back = ?rolled, "postgres output: rolled back the prepared transactions of undecided epochs of earlier runs");
        }
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
