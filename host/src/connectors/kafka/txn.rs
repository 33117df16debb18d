//! The transactional Kafka sink: "Kafka decides" (docs/ARCHITECTURE.md, "The commit protocol"), as a protocol over a small
//! [`TxnClient`] trait so that every crash window is tested against a scripted fake (below) and
//! the rdkafka client (`txn_rdkafka.rs`) only maps calls.
//!
//! Protocol. Two producer slots with stable transactional ids (`{prefix}-0`, `{prefix}-1`). Records
//! of the epoch being written go into the *active* slot's transaction. At the aligned barrier of
//! epoch `e` (`prepare`) the active transaction is flushed and *sealed* as epoch `e`, and the other
//! slot becomes active, so epoch `e+1` flows while `e` waits for its decision. After the manifest of
//! `e` is durable the coordinator calls `decide`: the sealed transaction gets the decision record
//! (control record + the decision offset, epoch in its metadata) and the input offsets, then
//! commits. That commit *is* the decision of `e`: recovery reads the last committed decision from
//! Kafka. Crash windows:
//! - before the commit (writing, prepared, manifest written): the transaction is open; recovery's
//!   `init` fences it and Kafka aborts it; the last decision is `e-1`; nothing of `e` is visible;
//! - the commit reached Kafka but its answer did not: recovery reads decision `e` and restores `e`;
//! - after the commit: same, and recovery replays the post-commit actions of `e`;
//! - a zombie (an older process) committing after a newer one's `init`: fenced, fatal to it.
//!
//! Errors are handled as librdkafka classifies them: retriable -> the same call again; abortable ->
//! abort, and the stream must restart from the last decision (the aborted records are gone, so it
//! cannot go on); fatal -> stop. A checkpoint that fails before its decision while its transaction
//! is sealed likewise needs a restart: two transactions can never commit as one decision.

use crate::record::Record;
use std::sync::Mutex;

/// An error as librdkafka classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnError {
    /// Try the same call again.
    Retriable(String),
    /// The transaction must be aborted.
    Abortable(String),
    /// The producer is unusable (fenced, misconfigured).
    Fatal(String),
}

impl std::fmt::Display for TxnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxnError::Retriable(m) => write!(f, "retriable: {m}"),
            TxnError::Abortable(m) => write!(f, "abortable: {m}"),
            TxnError::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

/// What an epoch's decision names; it is committed in the epoch's transaction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecisionRecord {
    pub stream: String,
    pub epoch: u64,
    pub manifest: String,
    pub checksum: u64,
    pub generation: u64,
}

/// The Kafka calls of the protocol, per slot. Implementations are thread-safe: records are sent
/// to one slot while the other commits.
pub trait TxnClient: Send + Sync {
    /// `init_transactions` on the slot's transactional id: fences older producers of the id and
    /// aborts their open transaction.
    fn init(&self, slot: usize) -> Result<(), TxnError>;
    fn begin(&self, slot: usize) -> Result<(), TxnError>;
    fn send(&self, slot: usize, records: &[Record]) -> Result<(), TxnError>;
    /// Waits until every record sent on the slot is acknowledged.
    fn flush(&self, slot: usize) -> Result<(), TxnError>;
    /// Adds the decision record and the input offsets (`{"kafka": {topic: {partition: next}}}`,
    /// may be absent) to the slot's transaction.
    fn add_decision(&self, slot: usize, d: &DecisionRecord, input_offsets: &serde_json::Value) -> Result<(), TxnError>;
    fn commit(&self, slot: usize) -> Result<(), TxnError>;
    fn abort(&self, slot: usize) -> Result<(), TxnError>;
    /// The decision of the last committed transaction (call after `init` of both slots).
    fn last_decision(&self) -> Result<Option<DecisionRecord>, TxnError>;
}

/// Retriable calls: 5 attempts, 20 ms doubling between them, then the error is fatal.
const RETRY: crate::util::retry::Backoff =
    crate::util::retry::Backoff { attempts: 5, first: std::time::Duration::from_millis(20), max: std::time::Duration::from_millis(320) };

fn retry<T>(mut f: impl FnMut() -> Result<T, TxnError>) -> Result<T, TxnError> {
    let r = crate::util::retry::retry_blocking(RETRY, &|| false, |_| match f() {
        Err(TxnError::Retriable(m)) => Err(m),
        other => Ok(other),
    });
    r.unwrap_or_else(|m| Err(TxnError::Fatal(format!("still failing after {} attempts: {m}", RETRY.attempts))))
}

#[derive(Debug, Default)]
struct SinkState {
    active: usize,
    /// Slots with an open transaction.
    open: [bool; 2],
    /// (epoch, slot) prepared and waiting for its decision.
    sealed: Option<(u64, usize)>,
    /// Set once the sink cannot go on; every later call fails with it.
    broken: Option<String>,
}

/// The protocol driver, shared by the output thread (write, prepare) and the checkpoint
/// coordinator (decide).
pub struct TxnSink<C: TxnClient + ?Sized> {
    client: Box<C>,
    stream: String,
    state: Mutex<SinkState>,
    metrics: std::sync::Arc<super::KafkaMetrics>,
}

impl<C: TxnClient + ?Sized> TxnSink<C> {
    /// Recovery: fences every older producer of both slots (aborting their open transactions) and
    /// returns the sink with the last decision Kafka holds.
    pub fn recover(client: Box<C>, stream: &str, metrics: std::sync::Arc<super::KafkaMetrics>) -> Result<(Self, Option<DecisionRecord>), TxnError> {
        for slot in 0..2 {
            retry(|| client.init(slot))?;
        }
        let last = retry(|| client.last_decision())?;
        metrics.transactional.store(true, std::sync::atomic::Ordering::SeqCst);
        let sink = TxnSink { client, stream: stream.to_string(), state: Mutex::default(), metrics };
        Ok((sink, last))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, msg: String) -> String {
        let mut st = self.state();
        st.broken.get_or_insert(msg).clone()
    }

    /// Opens the active slot's transaction if needed; returns the slot.
    fn active(&self) -> Result<usize, String> {
        let mut st = self.state();
        if let Some(b) = &st.broken {
            return Err(b.clone());
        }
        let slot = st.active;
        if !st.open[slot] {
            retry(|| self.client.begin(slot)).map_err(|e| format!("kafka output: begin transaction: {e}"))?;
            st.open[slot] = true;
            self.metrics.active_transactions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(slot)
    }

    /// Sends records of the epoch being written.
    pub fn write(&self, _epoch: u64, records: &[Record]) -> Result<(), String> {
        let slot = self.active()?;
        retry(|| self.client.send(slot, records)).map_err(|e| self.fail(format!("kafka output: sending: {e}")))
    }

    /// The aligned barrier of `epoch`: flushes and seals the active transaction, switches slots.
    pub fn prepare(&self, epoch: u64) -> Result<(), String> {
        let sealed = self.state().sealed;
        if let Some((e, _)) = sealed {
            return Err(self.fail(format!(
                "kafka output: checkpoint {e} failed after its Kafka transaction was prepared; its records cannot join epoch {epoch}'s transaction, so the stream must restart from the last decided checkpoint (restart arkflow; nothing is lost)"
            )));
        }
        let slot = self.active()?;
        retry(|| self.client.flush(slot)).map_err(|e| self.fail(format!("kafka output: flushing epoch {epoch}: {e}")))?;
        let mut st = self.state();
        st.sealed = Some((epoch, slot));
        st.active = 1 - slot;
        Ok(())
    }

    /// Commits epoch `d.epoch`'s transaction with its decision: called once its manifest is
    /// durable. Ok = decided. Err = not decided and the stream must stop (it restarts from the last
    /// decision); the transaction is aborted where librdkafka says so.
    pub fn commit_epoch(&self, d: &DecisionRecord, input_offsets: &serde_json::Value) -> Result<(), String> {
        let sealed = self.state().sealed;
        let slot = match sealed {
            Some((e, slot)) if e == d.epoch => slot,
            other => return Err(self.fail(format!("kafka output: decision of epoch {} but the prepared epoch is {other:?}", d.epoch))),
        };
        let started = std::time::Instant::now();
        let result = retry(|| self.client.add_decision(slot, d, input_offsets)).and_then(|()| retry(|| self.client.commit(slot)));
        let mut st = self.state();
        st.sealed = None;
        st.open[slot] = false;
        drop(st);
        self.metrics.active_transactions.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        match result {
            Ok(()) => {
                self.metrics.transactions_committed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.metrics.commit_latency.observe(started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(TxnError::Abortable(m)) => {
                let _ = retry(|| self.client.abort(slot));
                self.metrics.transactions_aborted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(self.fail(format!("kafka output: epoch {} was aborted by Kafka ({m}); the stream restarts from the last decided checkpoint", d.epoch)))
            }
            Err(e) => Err(self.fail(format!("kafka output: committing epoch {} of stream {}: {e}", d.epoch, self.stream))),
        }
    }
}

impl<C: TxnClient + ?Sized> crate::checkpoint::ExternalDecider for TxnSink<C> {
    fn decide(&self, d: &crate::checkpoint::ExternalDecision, input_position: &serde_json::Value) -> Result<(), String> {
        let rec = DecisionRecord { stream: self.stream.clone(), epoch: d.epoch, manifest: d.manifest.clone(), checksum: d.checksum, generation: d.generation };
        self.commit_epoch(&rec, input_position)
    }
}

impl From<DecisionRecord> for crate::checkpoint::ExternalDecision {
    fn from(d: DecisionRecord) -> Self {
        crate::checkpoint::ExternalDecision { epoch: d.epoch, manifest: d.manifest, checksum: d.checksum, generation: d.generation }
    }
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
