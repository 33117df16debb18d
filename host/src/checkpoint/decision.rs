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
    let now = crate::input::now_ms();
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
mod tests {
    use super::*;
    use crate::state::backend::MemoryStore;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        super::super::block_on(f)
    }

    /// Generation 1 decides 1..=3, abandons 4..=6; generation 2 fences at 4 while generation 1 is
    /// "paused". Generation 1 then tries to decide 7: it must fill 4 first, finds the fence, stops.
    #[test]
    fn a_zombie_with_abandoned_epochs_cannot_decide_past_a_fence() {
        run(async {
            let store = MemoryStore::new();
            let mut a = Slots::new("op", 1, 0);
            for e in 1..=3 {
                a.write(&store, &Decision::Commit { epoch: e, manifest: format!("m{e}"), checksum: e, generation: 1 }).await.unwrap();
            }
            let (last, fence) = fence_next(&store, "op", 2).await.unwrap();
            assert_eq!((last.map(|(e, _)| e), fence), (Some(3), 4));
            let err = a.write(&store, &Decision::Commit { epoch: 7, manifest: "m7".into(), checksum: 7, generation: 1 }).await.unwrap_err();
            assert!(matches!(err, SlotError::Fenced(ref m) if m.contains("fence of generation 2")), "{err}");
            assert!(store.get(&slot_key("op", 7)).await.unwrap().is_none(), "the zombie wrote nothing past the fence");
            let mut b = Slots::new("op", 2, fence);
            b.write(&store, &Decision::Commit { epoch: 6, manifest: "b6".into(), checksum: 6, generation: 2 }).await.unwrap();
            let (d, highest) = last_commit(&store, "op").await.unwrap();
            assert_eq!((d.unwrap().1.generation(), highest), (2, 6));
        });
    }

    /// A process that cannot decide still learns from a probe of its next slot that it was fenced.
    #[test]
    fn a_probe_of_the_next_slot_finds_a_fence() {
        run(async {
            let store = MemoryStore::new();
            let mut a = Slots::new("op", 1, 0);
            a.write(&store, &Decision::Commit { epoch: 1, manifest: "m1".into(), checksum: 1, generation: 1 }).await.unwrap();
            a.probe(&store).await.unwrap();
            // An earlier attempt of ours at slot 2 whose answer was lost: still ours.
            store.put(&slot_key("op", 2), Decision::Abandon { epoch: 2, generation: 1 }.encode()).await.unwrap();
            a.probe(&store).await.unwrap();
            store.delete(&slot_key("op", 2)).await.unwrap();
            fence_next(&store, "op", 2).await.unwrap();
            let err = a.probe(&store).await.unwrap_err();
            assert!(matches!(err, SlotError::Fenced(ref m) if m.contains("slot 2") && m.contains("fence of generation 2")), "{err}");
        });
    }

    /// Every interleaving of two generations' slot writes (A: abandon gaps then commit, B: fence
    /// then commits) ends with at most one of them deciding past B's fence.
    #[test]
    fn two_generations_never_both_decide_past_the_fence() {
        run(async {
            for a_first in 0..4u64 {
                let store = MemoryStore::new();
                let mut a = Slots::new("op", 1, 0);
                a.write(&store, &Decision::Commit { epoch: 1, manifest: "a1".into(), checksum: 1, generation: 1 }).await.unwrap();
                // A decides `a_first` more epochs (with gaps) before B fences.
                let mut a_ok = Vec::new();
                for i in 0..a_first {
                    let e = 3 + i * 2;
                    if a.write(&store, &Decision::Commit { epoch: e, manifest: format!("a{e}"), checksum: e, generation: 1 }).await.is_ok() {
                        a_ok.push(e);
                    }
                }
                let (_, fence) = fence_next(&store, "op", 2).await.unwrap();
                let mut b = Slots::new("op", 2, fence);
                let late = a.write(&store, &Decision::Commit { epoch: fence + 5, manifest: "late".into(), checksum: 0, generation: 1 }).await;
                assert!(late.is_err(), "A decided past B's fence");
                b.write(&store, &Decision::Commit { epoch: fence + 1, manifest: "b".into(), checksum: 0, generation: 2 }).await.unwrap();
                let (all, _) = decisions(&store, "op").await.unwrap();
                let mut slots: Vec<u64> = all.iter().map(|(e, _)| *e).collect();
                slots.dedup();
                assert_eq!(slots, (1..=fence + 1).collect::<Vec<_>>(), "gapless: {all:?}");
                assert!(all.iter().all(|(e, d)| *e <= fence || d.generation() == 2));
            }
        });
    }

    /// A store that hands control to a scheduler before every operation, so a test can run two
    /// generations' real code in every interleaving of their store operations.
    struct Gate {
        inner: std::sync::Arc<MemoryStore>,
        ready: std::sync::mpsc::Sender<bool>,
        go: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl Gate {
        fn pass(&self) {
            self.ready.send(true).unwrap();
            self.go.lock().unwrap().recv().unwrap();
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Gate {
        async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<PutOutcome, crate::state::backend::StoreError> {
            self.pass();
            self.inner.put_if_absent(key, data).await
        }
        async fn put(&self, key: &str, data: Bytes) -> Result<(), crate::state::backend::StoreError> {
            self.pass();
            self.inner.put(key, data).await
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, crate::state::backend::StoreError> {
            self.pass();
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<crate::state::backend::ObjectMeta>, crate::state::backend::StoreError> {
            self.pass();
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<(), crate::state::backend::StoreError> {
            self.pass();
            self.inner.delete(key).await
        }
        fn describe(&self) -> String {
            "gate".into()
        }
    }

    /// Runs the two actors under `schedule` (which actor goes at each step while both wait;
    /// past its end, actor 0). Returns the number of choice points met, A's result, B's fence and
    /// the last commit B restored from, and the final slots.
    fn interleave(schedule: &[usize]) -> (usize, bool, u64, Option<u64>, Vec<(u64, Decision)>) {
        let inner = std::sync::Arc::new(MemoryStore::new());
        run(async {
            // Generation 1 decided slot 1, then abandoned epochs 2 and 3 (nothing written).
            let mut a = Slots::new("op", 1, 0);
            a.write(&*inner, &Decision::Commit { epoch: 1, manifest: "a1".into(), checksum: 1, generation: 1 }).await.unwrap();
        });
        let mut gates = Vec::new();
        let mut ready_rx = Vec::new();
        let mut go_tx = Vec::new();
        for _ in 0..2 {
            let (rt, rr) = std::sync::mpsc::channel();
            let (gt, gr) = std::sync::mpsc::channel();
            gates.push(std::sync::Arc::new(Gate { inner: inner.clone(), ready: rt, go: std::sync::Mutex::new(gr) }));
            ready_rx.push(rr);
            go_tx.push(gt);
        }
        let (ga, gb) = (gates[0].clone(), gates[1].clone());
        let ta = std::thread::spawn(move || {
            let mut a = Slots::new("op", 1, 1);
            let ok = run(a.write(&*ga, &Decision::Commit { epoch: 4, manifest: "a4".into(), checksum: 4, generation: 1 })).is_ok();
            ga.ready.send(false).unwrap();
            ok
        });
        let tb = std::thread::spawn(move || {
            let (last, fence) = run(fence_next(&*gb, "op", 2)).unwrap();
            let mut b = Slots::new("op", 2, fence);
            run(b.write(&*gb, &Decision::Commit { epoch: fence + 1, manifest: "b".into(), checksum: 0, generation: 2 })).unwrap();
            gb.ready.send(false).unwrap();
            (fence, last.map(|(e, _)| e))
        });
        // Both report first; then release one waiting actor at a time.
        let mut waiting = [ready_rx[0].recv().unwrap(), ready_rx[1].recv().unwrap()];
        let mut choices = 0;
        while waiting.iter().any(|w| *w) {
            let pick = if waiting[0] && waiting[1] {
                let p = schedule.get(choices).copied().unwrap_or(0);
                choices += 1;
                p
            } else if waiting[0] {
                0
            } else {
                1
            };
            go_tx[pick].send(()).unwrap();
            waiting[pick] = ready_rx[pick].recv().unwrap();
        }
        let a_ok = ta.join().unwrap();
        let (fence, b_restored) = tb.join().unwrap();
        let (all, _) = run(decisions(&*inner, "op")).unwrap();
        (choices, a_ok, fence, b_restored, all)
    }

    /// Every interleaving of a paused generation deciding after abandoned epochs (A) with a newer
    /// generation starting (B): never both decide past B's fence; if A decided, B restored from
    /// A's decision; the slots stay gapless.
    #[test]
    fn every_interleaving_of_two_generations_is_safe() {
        let mut schedule: Vec<usize> = Vec::new();
        let mut runs = 0;
        loop {
            let (choices, a_ok, fence, b_restored, all) = interleave(&schedule);
            runs += 1;
            let slots: Vec<u64> = all.iter().map(|(e, _)| *e).collect();
            assert_eq!(slots, (1..=slots.len() as u64).collect::<Vec<_>>(), "gapless under {schedule:?}: {all:?}");
            let commits_past_fence: Vec<u64> =
                all.iter().filter(|(e, d)| *e > fence && matches!(d, Decision::Commit { .. })).map(|(_, d)| d.generation()).collect();
            assert_eq!(commits_past_fence, [2], "only B decides past its fence under {schedule:?}: {all:?}");
            if a_ok {
                assert!(
                    4 < fence && b_restored == Some(4),
                    "A decided 4 before B fenced at {fence}, and B restored from it ({b_restored:?}) under {schedule:?}"
                );
            } else {
                assert_eq!(b_restored, Some(1), "under {schedule:?}");
            }
            // Next schedule: odometer over the choice points this run met.
            schedule.resize(choices, 0);
            while schedule.last() == Some(&1) {
                schedule.pop();
            }
            match schedule.last_mut() {
                Some(x) => *x = 1,
                None => break,
            }
        }
        assert!(runs >= 20, "explored {runs} interleavings");
    }

    #[test]
    fn gc_keeps_fences_and_deletes_the_rest() {
        run(async {
            let store = MemoryStore::new();
            let mut a = Slots::new("op", 1, 0);
            a.write(&store, &Decision::Commit { epoch: 2, manifest: "m".into(), checksum: 0, generation: 1 }).await.unwrap();
            let (_, f) = fence_next(&store, "op", 2).await.unwrap();
            let mut b = Slots::new("op", 2, f);
            b.write(&store, &Decision::Commit { epoch: 5, manifest: "m".into(), checksum: 0, generation: 2 }).await.unwrap();
            let fences = std::sync::Mutex::new(HashSet::new());
            std::thread::sleep(Duration::from_millis(3)); // older than the (zero) grace period
            let n = collect(&store, "op", 5, Duration::ZERO, &HashSet::new(), &fences).await.unwrap();
            assert_eq!(n, 3, "abandon 1, commit 2, abandon 4 go");
            let left: Vec<u64> = store.list("op/commits/").await.unwrap().iter().filter_map(|m| super::super::parse_tail(&m.key)).collect();
            assert_eq!(left, [3, 5], "the fence at 3 and the retained commit stay");
            // A zombie of generation 1 (last slot 2) still stops at the fence.
            assert!(a.write(&store, &Decision::Commit { epoch: 9, manifest: "z".into(), checksum: 0, generation: 1 }).await.is_err());
        });
    }

    use proptest::prelude::*;

    proptest! {
        /// Decision records: random, truncated and bit-flipped bytes are errors naming the slot.
        #[test]
        fn decoding_never_accepts_damage(epoch in 1u64..1_000_000, g in any::<u64>(), kind in 0u8..3, cut in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), bit in 0u8..8, noise in prop::collection::vec(any::<u8>(), 0..200)) {
            let d = match kind {
                0 => Decision::Commit { epoch, manifest: format!("op/manifests/{epoch}"), checksum: g, generation: g },
                1 => Decision::Fence { epoch, generation: g },
                _ => Decision::Abandon { epoch, generation: g },
            };
            let key = slot_key("op", epoch);
            let b = d.encode();
            prop_assert_eq!(Decision::decode(&b, &key, "s").unwrap(), d);
            prop_assert!(Decision::decode(&b, &slot_key("op", epoch + 1), "s").is_err(), "a record in another slot");
            let e = Decision::decode(&b[..cut.index(b.len())], &key, "s").unwrap_err().to_string();
            prop_assert!(e.contains(&key), "{}", e);
            let mut f = b.to_vec();
            f[pos.index(b.len())] ^= 1 << bit;
            prop_assert!(Decision::decode(&f, &key, "s").is_err());
            let _ = Decision::decode(&noise, &key, "s");
        }
    }

    #[test]
    fn a_lost_answer_is_recognised_as_our_own_write() {
        run(async {
            let store = MemoryStore::new();
            let d = Decision::Commit { epoch: 1, manifest: "m".into(), checksum: 0, generation: 1 };
            store.put_if_absent(&slot_key("op", 1), d.encode()).await.unwrap();
            let mut a = Slots::new("op", 1, 0);
            a.write(&store, &d).await.unwrap();
            assert_eq!(a.last(), 1);
        });
    }
}
