//! Tests of the decision slots (`decision.rs`): gapless slots, fencing, collection.

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
            assert!(4 < fence && b_restored == Some(4), "A decided 4 before B fenced at {fence}, and B restored from it ({b_restored:?}) under {schedule:?}");
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
