//! Two-phase commit for the exactly-once `postgres` output (PostgreSQL's prepared
//! transactions), used when the server allows them (`max_prepared_transactions` > 0), the rows
//! take the COPY path, and the table takes plain inserts (`PREPARE TRANSACTION` refuses a
//! transaction that touched a temporary table, which upserts through COPY need).
//!
//! - **Phase one**: one transaction claims the epoch in `arkflow_pg_commits` ([`begin`]), takes
//!   the epoch's rows through one COPY *while they arrive* (the server parses while the stream
//!   encodes; rows of a later epoch arriving before the barrier wait in memory and go in one COPY
//!   with [`prepare`]), and at the barrier records the count and is prepared as
//!   [`gid`]`(scope, sink, epoch, generation)` ([`seal`]). The rows are written once (no
//!   staging), durable and invisible.
//! - **Phase two** (after the decision): `COMMIT PREPARED`. A prepared transaction that is gone
//!   was committed before when the commits row is this epoch's; otherwise its rows are lost
//!   (someone rolled it back), which stops the stream with that said.
//! - **At start**, and when phase one waits on a lock for [`LOCK_TIMEOUT`]: the prepared
//!   transactions of this scope and sink from older generations for epochs after the last
//!   decided one are rolled back. No decision can name them (their writer is fenced), and the
//!   replay writes those epochs again. A prepared transaction of a decided epoch is left for the
//!   replayed commit. Only one transaction can hold an epoch's claim, so two processes cannot
//!   both prepare it: the later one waits on the earlier one's lock.
//!
//! A prepared transaction holds its locks until it is committed or rolled back: a process killed
//! between the barrier and the decision leaves the table locked against DDL (`TRUNCATE`,
//! `ALTER`) until the stream runs again.

use super::sql::{describe, Pg, Target, COMMITS};
use tokio_postgres::Client;

/// How long phase one waits for a lock (another process's prepared claim) before it looks for
/// transactions to roll back.
pub(super) const LOCK_TIMEOUT: &str = "10s";

/// The transaction id of one epoch's phase one: `arkflow:<hash of scope and sink>:<epoch>:<generation>`.
pub(super) fn gid(scope: &str, sink: &str, epoch: u64, generation: u64) -> String {
    format!("{}{epoch}:{generation}", prefix(scope, sink))
}

fn prefix(scope: &str, sink: &str) -> String {
    format!("arkflow:{:016x}:", xxhash_rust::xxh3::xxh3_64(format!("{scope}\0{sink}").as_bytes()))
}

/// (epoch, generation) of a [`gid`] with `scope` and `sink`'s prefix.
fn parse(gid: &str, scope: &str, sink: &str) -> Option<(u64, u64)> {
    let (e, g) = gid.strip_prefix(&prefix(scope, sink))?.split_once(':')?;
    Some((e.parse().ok()?, g.parse().ok()?))
}

/// Whether a prepared transaction of `generation` for `epoch` can never be committed, seen from
/// a process of generation `current` whose last decided epoch is `last_decided`.
pub(super) fn abandoned(epoch: u64, generation: u64, last_decided: Option<u64>, current: u64) -> bool {
    generation < current && last_decided.is_none_or(|d| epoch > d)
}

/// Whether the server allows prepared transactions.
pub(super) async fn available(c: &Client) -> Result<bool, tokio_postgres::Error> {
    let v: String = c.query_one("SHOW max_prepared_transactions", &[]).await?.get(0);
    Ok(v.trim().parse::<i64>().is_ok_and(|n| n > 0))
}

/// Phase one of `epoch`: COPY `rows`, claim the epoch, prepare. The rows copied.
pub(super) async fn prepare(c: &Client, target: &Target, ids: (&str, &str, u64, u64), rows: bytes::Bytes, records: u64) -> Result<u64, tokio_postgres::Error> {
    let (scope, sink, epoch, generation) = ids;
    c.batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).await?;
    let claim = format!("INSERT INTO {COMMITS} (scope, sink, epoch, generation, records, target) VALUES ($1, $2, $3, $4, $5, $6)");
    c.execute(&claim, &[&scope, &sink, &(epoch as i64), &(generation as i64), &(records as i64), &target.name]).await?;
    let n = super::copy::copy_all(c, &target.copy_statements(), rows).await?;
    if n != records {
        c.batch_execute("ROLLBACK").await?;
        return Ok(n);
    }
    c.batch_execute(&format!("PREPARE TRANSACTION '{}'", gid(scope, sink, epoch, generation))).await?;
    Ok(n)
}

/// Streamed phase one, before the epoch's rows: opens its transaction and claims the epoch (its
/// count is set by [`seal`]); the rows then stream into a COPY on the same connection.
pub(super) async fn begin(c: &Client, target: &Target, ids: (&str, &str, u64, u64)) -> Result<(), tokio_postgres::Error> {
    let (scope, sink, epoch, generation) = ids;
    c.batch_execute(&format!("BEGIN; SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).await?;
    let claim = format!("INSERT INTO {COMMITS} (scope, sink, epoch, generation, records, target) VALUES ($1, $2, $3, $4, -1, $5)");
    c.execute(&claim, &[&scope, &sink, &(epoch as i64), &(generation as i64), &target.name]).await?;
    Ok(())
}

/// Streamed phase one, at the barrier (the COPY ended): records the epoch's count and prepares.
pub(super) async fn seal(c: &Client, ids: (&str, &str, u64, u64), records: u64) -> Result<(), tokio_postgres::Error> {
    let (scope, sink, epoch, generation) = ids;
    let set = format!("UPDATE {COMMITS} SET records = $4 WHERE scope = $1 AND sink = $2 AND epoch = $3");
    c.execute(&set, &[&scope, &sink, &(epoch as i64), &(records as i64)]).await?;
    c.batch_execute(&format!("PREPARE TRANSACTION '{}'", gid(scope, sink, epoch, generation))).await
}

/// Rolls back the prepared transactions of `scope`/`sink` that no commit will complete; their gids.
pub(super) async fn roll_back_abandoned(
    pg: &Pg,
    scope: &str,
    sink: &str,
    last_decided: Option<u64>,
    current: u64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let pattern = format!("{}%", prefix(scope, sink));
    let gids: Vec<String> = pg
        .run(async |c| {
            let q = "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE $1";
            Ok(c.query(q, &[&pattern]).await?.iter().map(|r| r.get(0)).collect())
        })
        .await?;
    let mut rolled = Vec::new();
    for g in gids {
        let Some((epoch, generation)) = parse(&g, scope, sink) else { continue };
        if abandoned(epoch, generation, last_decided, current) {
            match pg.run(async |c| c.batch_execute(&format!("ROLLBACK PREPARED '{g}'")).await).await {
                Ok(()) => rolled.push(g),
                // Committed or rolled back meanwhile (by another process's start).
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(rolled)
}

/// The error of `COMMIT`/`ROLLBACK PREPARED` for a gid that is not (or no longer) prepared.
fn gone(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT)
}

/// What `COMMIT PREPARED` found.
pub(super) enum Committed {
    Now,
    /// Gone, and the commits row is this epoch's: committed by an earlier run of this commit.
    Before,
    /// Gone, and the epoch has no commits row (or another run's): (generation, records) found.
    Lost(Option<(i64, i64)>),
}

/// Phase two of a prepared epoch.
pub(super) async fn commit(c: &Client, ids: (&str, &str, u64, u64), records: u64) -> Result<Committed, tokio_postgres::Error> {
    let (scope, sink, epoch, generation) = ids;
    match c.batch_execute(&format!("COMMIT PREPARED '{}'", gid(scope, sink, epoch, generation))).await {
        Ok(()) => return Ok(Committed::Now),
        Err(e) if gone(&e) => {}
        Err(e) => return Err(e),
    }
    let q = format!("SELECT generation, records FROM {COMMITS} WHERE scope = $1 AND sink = $2 AND epoch = $3");
    let row = c.query_opt(&q, &[&scope, &sink, &(epoch as i64)]).await?;
    let found = row.map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
    Ok(match found {
        Some((g, n)) if (g, n) == (generation as i64, records as i64) => Committed::Before,
        other => Committed::Lost(other),
    })
}

/// The message of a phase-one failure.
pub(super) fn failed(epoch: u64, pg: &Pg, e: &tokio_postgres::Error) -> anyhow::Error {
    anyhow::anyhow!("postgres output: preparing epoch {epoch} on {}: {}", pg.what, describe(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gids_name_their_epoch_and_generation_and_only_abandoned_ones_are_rolled_back() {
        let g = gid("op/sessions/7", "output", 12, 3);
        assert!(g.len() < 200 && g.starts_with("arkflow:"), "{g}");
        assert_eq!(parse(&g, "op/sessions/7", "output"), Some((12, 3)));
        assert_eq!(parse(&g, "op/sessions/7", "other"), None, "another sink's");
        assert_eq!(parse(&g, "op", "output"), None, "another scope's");
        assert!(abandoned(12, 3, Some(11), 4), "undecided, an older generation's");
        assert!(!abandoned(11, 3, Some(11), 4), "decided: the replayed commit completes it");
        assert!(!abandoned(12, 4, Some(11), 4), "this generation's own");
        assert!(abandoned(1, 1, None, 2), "nothing decided yet");
    }
}
