//! Decision records: the gapless sequence of slots that decides epochs (docs/ARCHITECTURE.md,
//! "Decisions").
//!
//! Slot `e` of a scope is the object `{scope}/commits/{e:020}`, created once (create-only), holding
//! a sealed [`Decision`]: `Commit` (epoch `e` is decided: restore from the manifest it names),
//! `Abandon` (its generation will never decide `e`) or `Fence` (a newer generation took the slot
//! at start so that no older one can go past it).
//!
//! Rules:
//! 1. A generation's slots form one contiguous range. A restarting process starts its range with
//!    a `Fence` at *highest listed slot + 1* ([`fence_next`]); the first generation of a fresh
//!    scope (a group session) starts at slot 1. After that it writes every slot in order:
//!    [`Slots::write`] fills the slots of abandoned epochs with `Abandon` before a `Commit`.
//! 2. A generation that finds one of its next slots holding anything it did not write is fenced:
//!    it stops and writes nothing more.
//! 3. `Fence` records are never deleted ([`collect`]); `Commit` and `Abandon` records below the
//!    oldest retained checkpoint may be.
//!
//! Invariant: once a newer generation has fenced, no older generation decides again. Proof: let
//! `a` be the last slot generation A wrote. If slot `a + 1` is written by another generation X,
//! it is the lowest slot of X's range (ranges are contiguous and disjoint, `a` is A's), so it is
//! X's `Fence` (rule 1: only the first generation of a scope starts without one, at slot 1), and
//! it stays (rule 3). A can decide only by writing `a + 1` first (rule 1), so it is stopped
//! there (rule 2) however long it was paused and however many epochs it abandoned meanwhile. A
//! newer generation B fences at `h + 1` where `h` is the highest slot it listed; if A writes
//! `h + 1` first, B's create fails and B lists again, so B's fence always lies past A's last slot.
//! Recovery trusts only the newest `Commit`.

use super::sealed;
use crate::state::backend::{ObjectStore, PutOutcome};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::Duration;

/// The content of slot `commits/{e}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// Epoch decided: restore from this manifest.
    Commit { epoch: u64, manifest: String, checksum: u64, generation: u64 },
    /// A newer generation's first slot: no older generation can go past it.
    Fence { epoch: u64, generation: u64 },
    /// An epoch its generation abandoned (its changes carry into a later epoch).
    Abandon { epoch: u64, generation: u64 },
}

impl Decision {
    pub fn epoch(&self) -> u64 {
        match self {
            Decision::Commit { epoch, .. } | Decision::Fence { epoch, .. } | Decision::Abandon { epoch, .. } => *epoch,
        }
    }

    pub fn generation(&self) -> u64 {
        match self {
            Decision::Commit { generation, .. } | Decision::Fence { generation, .. } | Decision::Abandon { generation, .. } => *generation,
        }
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(sealed::seal(self))
    }

    /// Decodes slot `key`; refuses a record whose epoch is not the slot's.
    pub fn decode(bytes: &[u8], key: &str, store: &str) -> anyhow::Result<Decision> {
        let name = format!("decision record {key} in {store}");
        let d: Decision = sealed::open(bytes, &name)?;
        if super::parse_tail(key).is_some_and(|slot| slot != d.epoch()) {
            anyhow::bail!("{name} names epoch {}, not its slot", d.epoch());
        }
        Ok(d)
    }
}

/// The object of slot `epoch`.
pub fn slot_key(scope: &str, epoch: u64) -> String {
    crate::layout::slot(scope, epoch)
}

/// Every slot of `scope` as (epoch, key), ascending.
async fn listed(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let mut v: Vec<(u64, String)> =
        store.list(&crate::layout::prefix(scope, "commits")).await?.into_iter().filter_map(|m| Some((super::parse_tail(&m.key)?, m.key))).collect();
    v.sort_unstable();
    Ok(v)
}

/// Every decision record of `scope`, ascending, and the highest slot seen.
pub async fn decisions(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<(Vec<(u64, Decision)>, u64)> {
    let all = listed(store, scope).await?;
    let highest = all.last().map_or(0, |(e, _)| *e);
    let mut out = Vec::with_capacity(all.len());
    for (e, k) in all {
        let Some(bytes) = store.get(&k).await? else { continue }; // deleted by GC meanwhile
        out.push((e, Decision::decode(&bytes, &k, &store.describe())?));
    }
    Ok((out, highest))
}

/// The newest `Commit` of `scope`, and the highest slot written. Reads newest first and stops at
/// the first `Commit`: usually one read, however many records the grace period keeps.
pub async fn last_commit(store: &dyn ObjectStore, scope: &str) -> anyhow::Result<(Option<(u64, Decision)>, u64)> {
    let all = listed(store, scope).await?;
    let highest = all.last().map_or(0, |(e, _)| *e);
    for (e, k) in all.into_iter().rev() {
        let Some(bytes) = store.get(&k).await? else { continue };
        let d = Decision::decode(&bytes, &k, &store.describe())?;
        if matches!(d, Decision::Commit { .. }) {
            return Ok((Some((e, d)), highest));
        }
    }
    Ok((None, highest))
}

/// Starts `generation`'s range: a `Fence` at the slot after the highest one (rule 1). Returns the
/// last `Commit` and the fenced slot.
pub async fn fence_next(store: &dyn ObjectStore, scope: &str, generation: u64) -> anyhow::Result<(Option<(u64, Decision)>, u64)> {
    loop {
        let (decided, highest) = last_commit(store, scope).await?;
        let fence = highest + 1;
        let rec = Decision::Fence { epoch: fence, generation }.encode();
        if store.put_if_absent(&slot_key(scope, fence), rec).await? == PutOutcome::Created {
            return Ok((decided, fence));
        }
        // Someone wrote that slot meanwhile: list again.
    }
}

/// Why a slot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// Another generation holds the slot: this one must stop.
    #[error("{0}")]
    Fenced(String),
    /// The store failed (after retries); nothing is known to be written.
    #[error("{0}")]
    Store(String),
}

/// The slots one generation writes, in order (rules 1 and 2).
#[derive(Debug)]
pub struct Slots {
    scope: String,
    generation: u64,
    last: u64,
}

impl Slots {
    /// `last` = the last slot this generation holds (its fence; 0 for a fresh scope).
    pub fn new(scope: &str, generation: u64, last: u64) -> Self {
        Slots { scope: scope.to_string(), generation, last }
    }

    pub fn last(&self) -> u64 {
        self.last
    }

    /// Writes `d` at its slot, after taking every slot in between with `Abandon`.
    pub async fn write(&mut self, store: &dyn ObjectStore, d: &Decision) -> Result<(), SlotError> {
        let target = d.epoch();
        if target <= self.last {
            return Err(SlotError::Fenced(format!(
                "slot {target} of `{}` lies at or below this generation's last slot {}: epochs must be decided in order",
                self.scope, self.last
            )));
        }
        for e in self.last + 1..target {
            self.take(store, &Decision::Abandon { epoch: e, generation: self.generation }).await?;
        }
        self.take(store, d).await
    }

    /// Creates one slot (rule 2), retrying store errors. A slot that already holds a record of
    /// this generation was written by an earlier attempt whose answer was lost (an epoch given up
    /// after its commit landed is still decided: its work was carried into the next epoch too, and
    /// committing it twice is idempotent), so it counts as taken by us.
    async fn take(&mut self, store: &dyn ObjectStore, d: &Decision) -> Result<(), SlotError> {
        let key = slot_key(&self.scope, d.epoch());
        let bytes = d.encode();
        let (k, b) = (&key, &bytes);
        let outcome = crate::util::retry::retry_async(crate::util::retry::STORE, move |_| async move {
            match store.put_if_absent(k, b.clone()).await {
                Ok(o) => Ok(Ok(o)),
                Err(e) => match store.get(k).await {
                    // The write may have landed: look before trying again.
                    Ok(Some(found)) => Ok(Err(found)),
                    _ => Err(e),
                },
            }
        })
        .await
        .map_err(|e| SlotError::Store(format!("writing decision record {key}: {e}")))?;
        let found = match outcome {
            Ok(PutOutcome::Created) => None,
            Ok(PutOutcome::Exists) => match store.get(&key).await {
                Ok(Some(f)) => Some(f),
                Ok(None) => return Err(SlotError::Store(format!("decision record {key} exists but cannot be read back"))),
                Err(e) => return Err(SlotError::Store(format!("reading decision record {key}: {e}"))),
            },
            Err(found) => Some(found),
        };
        let found = found.filter(|f| *f != bytes).map(|f| Decision::decode(&f, &key, &store.describe()).ok());
        match found {
            None => {}
            Some(Some(o)) if o.generation() == self.generation => {}
            Some(other) => {
                let what = other.map_or("an unreadable record".to_string(), |o| format!("a {} of generation {}", kind(&o), o.generation()));
                return Err(SlotError::Fenced(format!(
                    "decision slot {} of `{}` holds {what}: this process (generation {}) is fenced, a newer process took over this state; this one stops",
                    d.epoch(),
                    self.scope,
                    self.generation
                )));
            }
        }
        self.last = d.epoch();
        Ok(())
    }
}

impl Slots {
    /// Reads the slot after this generation's last: a record of another generation there means a
    /// newer process took over (`Fenced`). Absent, ours or unreadable from the store: nothing
    /// learned. A process that cannot decide for a while (slow or stuck epochs) learns this way
    /// that it was fenced and stops, instead of at its next decision.
    pub async fn probe(&self, store: &dyn ObjectStore) -> Result<(), SlotError> {
        let next = self.last + 1;
        let key = slot_key(&self.scope, next);
        let Ok(Some(found)) = store.get(&key).await else { return Ok(()) };
        match Decision::decode(&found, &key, &store.describe()) {
            Ok(o) if o.generation() == self.generation => Ok(()),
            other => Err(SlotError::Fenced(format!(
                "decision slot {next} of `{}` holds {}: this process (generation {}) is fenced, a newer process took over this state; this one stops",
                self.scope,
                other.map_or("an unreadable record".to_string(), |o| format!("a {} of generation {}", kind(&o), o.generation())),
                self.generation
            ))),
        }
    }
}

fn kind(d: &Decision) -> &'static str {
    match d {
        Decision::Commit { .. } => "commit",
        Decision::Fence { .. } => "fence",
        Decision::Abandon { .. } => "abandon record",
    }
}

/// Deletes the `Commit`/`Abandon` records of `scope` below slot `below` older than `grace`;
/// `Fence` records stay (rule 3). `fences` remembers slots already read as fences, so each is
/// read once per process; `own` are slots this process wrote as commits/abandons (no read).
pub async fn collect(
    store: &dyn ObjectStore,
    scope: &str,
    below: u64,
    grace: Duration,
    own: &HashSet<u64>,
    fences: &std::sync::Mutex<HashSet<u64>>,
) -> anyhow::Result<usize> {
    let now = crate::util::time::now_ms();
    let mut deleted = 0;
    for m in store.list(&crate::layout::prefix(scope, "commits")).await? {
        let Some(e) = super::parse_tail(&m.key) else { continue };
        if e >= below || now - m.modified_ms <= grace.as_millis() as i64 || fences.lock().unwrap_or_else(|p| p.into_inner()).contains(&e) {
            continue;
        }
        if !own.contains(&e) {
            let Some(bytes) = store.get(&m.key).await? else { continue };
            match Decision::decode(&bytes, &m.key, &store.describe()) {
                Ok(Decision::Fence { .. }) | Err(_) => {
                    // Fences stay; an unreadable record is left for a human to look at.
                    fences.lock().unwrap_or_else(|p| p.into_inner()).insert(e);
                    continue;
                }
                Ok(_) => {}
            }
        }
        store.delete(&m.key).await?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
