//! The two-phase commit protocol every exactly-once sink implements (the main output, the error
//! output; files, the Kafka outbox): docs/ARCHITECTURE.md, "Commit protocol".
//!
//! Phase one, `Output::pre_commit(e)` at the aligned barrier of epoch `e`, makes the epoch's
//! output durable but invisible and returns a blob (JSON) that goes into the manifest of `e` as a
//! [`SinkCommit`]. Phase two, [`Committer::commit`], runs after the decision of the manifest that
//! holds the blob: it makes the output visible. It must be idempotent: recovery replays the
//! commits of the last decided manifest whose `committed/{e}` marker is missing, and a failed
//! attempt is retried with `replay = true`, so a commit must neither lose nor duplicate when it
//! runs again after a partial run. A commit that fails for good stops the stream; it is never
//! skipped, and no later epoch is decided before every commit of the earlier decisions is done
//! (so recovery only ever replays the last decided manifest).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One sink's pre-commit of one epoch, as stored in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkCommit {
    /// The sink's name in the stream (`output`, `error_output`).
    pub sink: String,
    pub epoch: u64,
    /// What the sink's committer needs (its own format).
    pub blob: serde_json::Value,
}

/// Why a commit did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// Transient (a broker or disk hiccup): try again, with `replay = true`.
    #[error("{0}")]
    Retry(String),
    /// Can never succeed as things stand (a prepared file is missing, a foreign file is in the
    /// way): the stream stops with this message.
    #[error("{0}")]
    Fatal(String),
}

/// Phase two of one sink.
pub trait Committer: Send + Sync {
    /// Makes the output of `blob` (prepared for `epoch`) visible; idempotent. `replay` is true
    /// when an earlier call for the same blob may have run, wholly or in part.
    fn commit(&self, epoch: u64, blob: &serde_json::Value, replay: bool) -> Result<(), CommitError>;

    /// Releases what this sink staged in checkpoint scope `scope` for the epochs after `after`
    /// (every epoch when None): their writer is fenced, so no decision will ever name them
    /// (group mode, when a session's key groups are taken over). Idempotent; by default nothing.
    fn abandon(&self, _scope: &str, _after: Option<u64>) -> anyhow::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for dyn Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

/// A stream's committers by sink name.
pub type Committers = BTreeMap<String, Arc<dyn Committer>>;

/// Runs every commit in order, retrying transient failures (`util::retry::COMMIT`, about a
/// minute); `stop` cuts the waits short. The error names the sink and epoch.
pub fn run_all(committers: &Committers, commits: &[SinkCommit], replay: bool, stop: &dyn Fn() -> bool) -> Result<(), String> {
    for c in commits {
        let Some(committer) = committers.get(&c.sink) else {
            return Err(format!(
                "the checkpoint holds output of sink `{}` for epoch {}, but this stream has no such sink: restore with the config that wrote it",
                c.sink, c.epoch
            ));
        };
        let r =
            crate::util::retry::retry_blocking(crate::util::retry::COMMIT, stop, |attempt| match committer.commit(c.epoch, &c.blob, replay || attempt > 1) {
                Ok(()) => Ok(Ok(())),
                Err(CommitError::Fatal(e)) => Ok(Err(e)),
                Err(CommitError::Retry(e)) => {
                    tracing::warn!(sink = %c.sink, epoch = c.epoch, attempt, "commit failed, retrying: {e}");
                    Err(e)
                }
            });
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("{}: committing epoch {}: {e}", c.sink, c.epoch)),
            Err(e) => return Err(format!("{}: committing epoch {} failed after retries: {e}", c.sink, c.epoch)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails `fail` times with Retry, then records the call.
    struct Flaky {
        fail: Mutex<u32>,
        calls: Mutex<Vec<(u64, bool)>>,
    }

    impl Committer for Flaky {
        fn commit(&self, epoch: u64, _: &serde_json::Value, replay: bool) -> Result<(), CommitError> {
            self.calls.lock().unwrap().push((epoch, replay));
            let mut f = self.fail.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(CommitError::Retry("broker away".into()));
            }
            Ok(())
        }
    }

    fn commits(epochs: &[u64]) -> Vec<SinkCommit> {
        epochs.iter().map(|e| SinkCommit { sink: "output".into(), epoch: *e, blob: serde_json::Value::Null }).collect()
    }

    #[test]
    fn retries_are_replays_and_commits_run_in_order() {
        let f = Arc::new(Flaky { fail: Mutex::new(2), calls: Mutex::default() });
        let cs: Committers = [("output".to_string(), f.clone() as Arc<dyn Committer>)].into();
        run_all(&cs, &commits(&[3, 4]), false, &|| false).unwrap();
        assert_eq!(*f.calls.lock().unwrap(), [(3, false), (3, true), (3, true), (4, false)]);
    }

    #[test]
    fn a_commit_that_keeps_failing_is_an_error_never_skipped() {
        let f = Arc::new(Flaky { fail: Mutex::new(u32::MAX), calls: Mutex::default() });
        let cs: Committers = [("output".to_string(), f.clone() as Arc<dyn Committer>)].into();
        let err = run_all(&cs, &commits(&[3, 4]), false, &|| true).unwrap_err();
        assert!(err.contains("epoch 3"), "{err}");
        assert!(f.calls.lock().unwrap().iter().all(|(e, _)| *e == 3), "epoch 4 never ran after 3 failed");
        let err = run_all(&Committers::new(), &commits(&[1]), false, &|| false).unwrap_err();
        assert!(err.contains("no such sink"), "{err}");
    }
}
