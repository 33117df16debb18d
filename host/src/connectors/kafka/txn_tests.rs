//! Every crash window of the transactional sink against a scripted fake broker. The fake keeps
//! what Kafka guarantees: a transaction's records and offsets become visible only at its commit;
//! `init` of a transactional id bumps its producer epoch, aborts the open transaction and fences
//! every older producer of the id. A "crash" is dropping a sink and recovering a new one.

use super::*;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Broker {
    /// Current producer epoch per slot.
    producer_epoch: [u64; 2],
    /// Open transaction per slot: records and decision.
    pending: HashMap<usize, (Vec<String>, Option<DecisionRecord>)>,
    visible: Vec<String>,
    decision: Option<DecisionRecord>,
    /// Scripted outcomes: (call, error). `commit-lost` commits and then loses the answer.
    script: VecDeque<(&'static str, TxnError)>,
}

struct Fake {
    broker: Arc<Mutex<Broker>>,
    mine: Mutex<[u64; 2]>,
}

impl Fake {
    fn new(broker: &Arc<Mutex<Broker>>) -> Box<Self> {
        Box::new(Fake { broker: broker.clone(), mine: Mutex::new([0, 0]) })
    }

    /// Checks fencing and the script for `call` on `slot`.
    fn enter(&self, call: &'static str, slot: usize) -> Result<std::sync::MutexGuard<'_, Broker>, TxnError> {
        let mut b = self.broker.lock().unwrap();
        if self.mine.lock().unwrap()[slot] != b.producer_epoch[slot] {
            return Err(TxnError::Fatal("fenced by a newer producer".into()));
        }
        if b.script.front().is_some_and(|(c, _)| *c == call) {
            let (_, e) = b.script.pop_front().unwrap();
            return Err(e);
        }
        Ok(b)
    }
}

fn value(r: &Record) -> String {
    String::from_utf8(r.value.clone().unwrap()).unwrap()
}

impl TxnClient for Fake {
    fn init(&self, slot: usize) -> Result<(), TxnError> {
        let mut b = self.broker.lock().unwrap();
        b.producer_epoch[slot] += 1;
        b.pending.remove(&slot);
        self.mine.lock().unwrap()[slot] = b.producer_epoch[slot];
        Ok(())
    }
    fn begin(&self, slot: usize) -> Result<(), TxnError> {
        let mut b = self.enter("begin", slot)?;
        assert!(!b.pending.contains_key(&slot), "begin with a transaction open on slot {slot}");
        b.pending.insert(slot, (Vec::new(), None));
        Ok(())
    }
    fn send(&self, slot: usize, records: &[Record]) -> Result<(), TxnError> {
        let mut b = self.enter("send", slot)?;
        b.pending.get_mut(&slot).expect("send outside a transaction").0.extend(records.iter().map(value));
        Ok(())
    }
    fn flush(&self, slot: usize) -> Result<(), TxnError> {
        self.enter("flush", slot).map(drop)
    }
    fn add_decision(&self, slot: usize, d: &DecisionRecord, _: &serde_json::Value) -> Result<(), TxnError> {
        let mut b = self.enter("add_decision", slot)?;
        b.pending.get_mut(&slot).expect("decision outside a transaction").1 = Some(d.clone());
        Ok(())
    }
    fn commit(&self, slot: usize) -> Result<(), TxnError> {
        let lost = self.broker.lock().unwrap().script.front().is_some_and(|(c, _)| *c == "commit-lost");
        let mut b = if lost {
            let mut b = self.broker.lock().unwrap();
            b.script.pop_front();
            b
        } else {
            self.enter("commit", slot)?
        };
        let (records, d) = b.pending.remove(&slot).expect("commit outside a transaction");
        b.visible.extend(records);
        if d.is_some() {
            b.decision = d;
        }
        if lost {
            return Err(TxnError::Fatal("connection lost (the process dies here)".into()));
        }
        Ok(())
    }
    fn abort(&self, slot: usize) -> Result<(), TxnError> {
        let mut b = self.broker.lock().unwrap();
        b.pending.remove(&slot);
        Ok(())
    }
    fn last_decision(&self) -> Result<Option<DecisionRecord>, TxnError> {
        Ok(self.broker.lock().unwrap().decision.clone())
    }
}

fn recs(vals: &[&str]) -> Vec<Record> {
    vals.iter().map(|v| Record { value: Some(v.as_bytes().to_vec()), ..Default::default() }).collect()
}

fn decision(epoch: u64) -> DecisionRecord {
    DecisionRecord { stream: "s".into(), epoch, manifest: format!("op/manifests/{epoch}"), checksum: 7, generation: 1 }
}

fn open(broker: &Arc<Mutex<Broker>>) -> (TxnSink<Fake>, Option<u64>) {
    let (sink, last) = TxnSink::recover(Fake::new(broker), "s", Default::default()).unwrap();
    (sink, last.map(|d| d.epoch))
}

fn visible(broker: &Arc<Mutex<Broker>>) -> Vec<String> {
    broker.lock().unwrap().visible.clone()
}

const NO_OFFSETS: serde_json::Value = serde_json::Value::Null;

#[test]
fn epochs_commit_in_order_while_the_next_one_flows() {
    let b = Arc::default();
    let (sink, last) = open(&b);
    assert_eq!(last, None);
    sink.write(1, &recs(&["a1", "b1"])).unwrap();
    sink.prepare(1).unwrap();
    sink.write(2, &recs(&["c2"])).unwrap();
    assert!(visible(&b).is_empty(), "nothing visible before the decision");
    sink.commit_epoch(&decision(1), &NO_OFFSETS).unwrap();
    assert_eq!(visible(&b), ["a1", "b1"], "epoch 2's record waits in the other slot");
    sink.prepare(2).unwrap();
    sink.commit_epoch(&decision(2), &NO_OFFSETS).unwrap();
    assert_eq!(visible(&b), ["a1", "b1", "c2"]);
    // An epoch without records still commits its decision.
    sink.prepare(3).unwrap();
    sink.commit_epoch(&decision(3), &NO_OFFSETS).unwrap();
    assert_eq!(b.lock().unwrap().decision.as_ref().map(|d| d.epoch), Some(3));
    assert_eq!(sink.metrics.transactions_committed.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[test]
fn crash_while_writing_or_after_prepare_or_after_the_manifest_hides_the_epoch() {
    let b = Arc::default();
    let (sink, _) = open(&b);
    sink.write(1, &recs(&["a1"])).unwrap();
    sink.prepare(1).unwrap();
    sink.commit_epoch(&decision(1), &NO_OFFSETS).unwrap();
    // Window: records of epoch 2 written, not prepared.
    sink.write(2, &recs(&["x2"])).unwrap();
    drop(sink);
    let (sink, last) = open(&b);
    assert_eq!(last, Some(1));
    assert_eq!(visible(&b), ["a1"]);
    // Window: prepared (flushed) and manifest durable, decision not sent.
    sink.write(2, &recs(&["y2"])).unwrap();
    sink.prepare(2).unwrap();
    drop(sink);
    let (_, last) = open(&b);
    assert_eq!(last, Some(1), "a manifest without a Kafka decision is not decided");
    assert_eq!(visible(&b), ["a1"]);
    assert!(b.lock().unwrap().pending.is_empty(), "recovery aborted the open transactions");
}

#[test]
fn commit_that_landed_but_whose_answer_was_lost_is_decided() {
    let b: Arc<Mutex<Broker>> = Arc::default();
    let (sink, _) = open(&b);
    sink.write(1, &recs(&["a1"])).unwrap();
    sink.prepare(1).unwrap();
    b.lock().unwrap().script.push_back(("commit-lost", TxnError::Fatal(String::new())));
    assert!(sink.commit_epoch(&decision(1), &NO_OFFSETS).is_err());
    drop(sink);
    let (_, last) = open(&b);
    assert_eq!(last, Some(1), "recovery restores the epoch Kafka committed");
    assert_eq!(visible(&b), ["a1"], "exactly once");
}

#[test]
fn zombie_cannot_decide_after_a_newer_instance_started() {
    let b = Arc::default();
    let (zombie, _) = open(&b);
    zombie.write(1, &recs(&["z1"])).unwrap();
    zombie.prepare(1).unwrap();
    let (fresh, last) = open(&b);
    assert_eq!(last, None);
    let e = zombie.commit_epoch(&decision(1), &NO_OFFSETS).unwrap_err();
    assert!(e.contains("fenced"), "{e}");
    assert!(zombie.write(2, &recs(&["z2"])).is_err(), "a fenced sink stays broken");
    fresh.write(1, &recs(&["f1"])).unwrap();
    fresh.prepare(1).unwrap();
    fresh.commit_epoch(&decision(1), &NO_OFFSETS).unwrap();
    assert_eq!(visible(&b), ["f1"]);
}

#[test]
fn retriable_commit_is_retried_abortable_aborts_and_stops() {
    let b: Arc<Mutex<Broker>> = Arc::default();
    let (sink, _) = open(&b);
    sink.write(1, &recs(&["a1"])).unwrap();
    sink.prepare(1).unwrap();
    b.lock().unwrap().script.push_back(("commit", TxnError::Retriable("coordinator loading".into())));
    sink.commit_epoch(&decision(1), &NO_OFFSETS).unwrap();
    assert_eq!(visible(&b), ["a1"]);

    sink.write(2, &recs(&["b2"])).unwrap();
    sink.prepare(2).unwrap();
    b.lock().unwrap().script.push_back(("commit", TxnError::Abortable("producer fenced mid-transaction".into())));
    let e = sink.commit_epoch(&decision(2), &NO_OFFSETS).unwrap_err();
    assert!(e.contains("aborted") && e.contains("restarts"), "{e}");
    assert_eq!(visible(&b), ["a1"], "the aborted epoch is not visible");
    assert!(b.lock().unwrap().pending.is_empty(), "the transaction was aborted");
    assert_eq!(sink.metrics.transactions_aborted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(sink.write(3, &recs(&["c3"])).is_err(), "the sink refuses more records until restarted");
    drop(sink);
    let (_, last) = open(&b);
    assert_eq!(last, Some(1));
}

#[test]
fn retriable_errors_that_never_end_become_fatal() {
    let b: Arc<Mutex<Broker>> = Arc::default();
    let (sink, _) = open(&b);
    sink.prepare(1).unwrap();
    for _ in 0..RETRY.attempts {
        b.lock().unwrap().script.push_back(("add_decision", TxnError::Retriable("timeout".into())));
    }
    let e = sink.commit_epoch(&decision(1), &NO_OFFSETS).unwrap_err();
    assert!(e.contains("still failing"), "{e}");
    assert_eq!(b.lock().unwrap().decision, None);
}

#[test]
fn a_failed_checkpoint_with_a_sealed_transaction_asks_for_a_restart() {
    let b = Arc::default();
    let (sink, _) = open(&b);
    sink.write(1, &recs(&["a1"])).unwrap();
    sink.prepare(1).unwrap();
    sink.write(2, &recs(&["b2"])).unwrap();
    // Checkpoint 1 was abandoned (no decide); barrier 2 arrives.
    let e = sink.prepare(2).unwrap_err();
    assert!(e.contains("must restart"), "{e}");
    drop(sink);
    let (_, last) = open(&b);
    assert_eq!(last, None);
    assert!(visible(&b).is_empty());
}
