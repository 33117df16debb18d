use super::*;

fn state(ttl: Option<u64>) -> WorkerState {
    WorkerState::new(vec!["default".into(), "other".into()], ttl, StateLimits::default())
}

#[test]
fn staged_writes_are_visible_then_committed() {
    let mut st = state(None);
    let mut stg = Staging::default();
    {
        let mut s = st.scope(&mut stg, 3, 0);
        s.put(0, b"a".to_vec(), b"1".to_vec()).unwrap();
        assert_eq!(s.get(0, b"a").unwrap(), Some(&b"1"[..]));
        assert_eq!(s.get(1, b"a").unwrap(), None, "stores are separate");
    }
    assert!(st.peek(3, "default", b"a").is_none(), "nothing applied before commit");
    st.commit(&mut stg, 3, 0);
    assert_eq!(st.peek(3, "default", b"a").unwrap().value, b"1");
    assert_eq!(st.entries(), 1);
    assert_eq!(st.bytes(), 2);
}

#[test]
fn discarded_writes_never_apply() {
    let mut st = state(None);
    let mut stg = Staging::default();
    st.scope(&mut stg, 0, 0).increment(0, b"k".to_vec(), 5).unwrap();
    st.commit(&mut stg, 0, 0);
    st.scope(&mut stg, 0, 0).increment(0, b"k".to_vec(), 7).unwrap();
    stg.discard();
    let v = st.scope(&mut stg, 0, 0).increment(0, b"k".to_vec(), 1).unwrap();
    assert_eq!(v, 6);
}

#[test]
fn key_groups_are_isolated() {
    let mut st = state(None);
    let mut stg = Staging::default();
    st.scope(&mut stg, 1, 0).put(0, b"k".to_vec(), b"x".to_vec()).unwrap();
    st.commit(&mut stg, 1, 0);
    assert_eq!(st.scope(&mut stg, 2, 0).get(0, b"k").unwrap(), None);
    assert_eq!(st.scope(&mut stg, 1, 0).get(0, b"k").unwrap(), Some(&b"x"[..]));
}

#[test]
fn ttl_expires_and_purges() {
    let mut st = state(Some(100));
    st.set_track_dirty(true);
    let mut stg = Staging::default();
    st.scope(&mut stg, 0, 1_000).put(0, b"k".to_vec(), b"v".to_vec()).unwrap();
    st.commit(&mut stg, 0, 1_000);
    st.take_dirty(0);
    assert!(st.scope(&mut stg, 0, 1_099).get(0, b"k").unwrap().is_some(), "alive before the timeout");
    assert!(st.scope(&mut stg, 0, 1_100).get(0, b"k").unwrap().is_none(), "expired at the timeout");
    assert_eq!(st.entries(), 0, "purged on read");
    assert!(st.take_dirty(0).contains(&(0, b"k".to_vec())), "purge is a change to checkpoint");
    // an expired counter restarts from zero
    st.scope(&mut stg, 0, 2_000).increment(0, b"c".to_vec(), 4).unwrap();
    st.commit(&mut stg, 0, 2_000);
    assert_eq!(st.scope(&mut stg, 0, 5_000).increment(0, b"c".to_vec(), 1).unwrap(), 1);
}

#[test]
fn rewriting_refreshes_ttl() {
    let mut st = state(Some(100));
    let mut stg = Staging::default();
    st.scope(&mut stg, 0, 0).put(0, b"k".to_vec(), b"v".to_vec()).unwrap();
    st.commit(&mut stg, 0, 0);
    st.scope(&mut stg, 0, 90).put(0, b"k".to_vec(), b"w".to_vec()).unwrap();
    st.commit(&mut stg, 0, 90);
    assert_eq!(st.scope(&mut stg, 0, 150).get(0, b"k").unwrap(), Some(&b"w"[..]));
}

#[test]
fn dirty_tracking_records_writes_and_deletes() {
    let mut st = state(None);
    st.set_track_dirty(true);
    let mut stg = Staging::default();
    {
        let mut s = st.scope(&mut stg, 4, 0);
        s.put(0, b"a".to_vec(), b"1".to_vec()).unwrap();
        s.put(1, b"b".to_vec(), b"2".to_vec()).unwrap();
    }
    st.commit(&mut stg, 4, 0);
    let d = st.take_dirty(4);
    assert_eq!(d.len(), 2);
    assert!(st.take_dirty(4).is_empty(), "taking resets the set");
    assert!(st.scope(&mut stg, 4, 0).delete(0, b"a".to_vec()).unwrap());
    st.commit(&mut stg, 4, 0);
    assert_eq!(st.take_dirty(4).into_iter().collect::<Vec<_>>(), vec![(0, b"a".to_vec())]);
    assert_eq!(st.entries(), 1);
}

#[test]
fn limits_and_quotas() {
    let limits = StateLimits { max_key_bytes: 4, max_value_bytes: 8, max_batch_state_bytes: 30, max_state_bytes: 1000 };
    let mut st = WorkerState::new(vec!["default".into()], None, limits);
    let mut stg = Staging::default();
    let mut s = st.scope(&mut stg, 0, 0);
    assert_eq!(s.put(0, b"toolong".to_vec(), vec![]), Err(StateError::KeyTooLarge(4)));
    assert_eq!(s.put(0, b"k".to_vec(), vec![0; 9]), Err(StateError::ValueTooLarge(8)));
    for i in 0..3u8 {
        s.put(0, vec![i], vec![0; 8]).unwrap();
    }
    assert!(matches!(s.put(0, b"x".to_vec(), vec![0; 8]), Err(StateError::QuotaExceeded(_))));
    assert!(stg.violation().unwrap().contains("max_batch_state_bytes"));
}

#[test]
fn increment_rejects_non_counters() {
    let mut st = state(None);
    let mut stg = Staging::default();
    let mut s = st.scope(&mut stg, 0, 0);
    s.put(0, b"k".to_vec(), b"abc".to_vec()).unwrap();
    assert_eq!(s.increment(0, b"k".to_vec(), 1), Err(StateError::NotACounter));
}

#[test]
fn increment_refuses_overflow_and_keeps_the_counter() {
    let mut st = state(None);
    let mut stg = Staging::default();
    let mut s = st.scope(&mut stg, 0, 0);
    assert_eq!(s.increment(0, b"k".to_vec(), i64::MAX), Ok(i64::MAX));
    assert_eq!(s.increment(0, b"k".to_vec(), i64::MAX), Err(StateError::Overflow(i64::MAX, i64::MAX)));
    assert_eq!(s.increment(0, b"k".to_vec(), -1), Ok(i64::MAX - 1));
    assert_eq!(s.increment(0, b"m".to_vec(), i64::MIN), Ok(i64::MIN));
    assert!(s.increment(0, b"m".to_vec(), -1).is_err());
}

#[test]
fn scan_prefix_pages_merge_staged_and_committed() {
    let mut st = state(None);
    let mut stg = Staging::default();
    {
        let mut s = st.scope(&mut stg, 0, 0);
        for k in ["u:1", "u:2", "u:3", "v:1"] {
            s.put(0, k.as_bytes().to_vec(), b"c".to_vec()).unwrap();
        }
    }
    st.commit(&mut stg, 0, 0);
    let mut s = st.scope(&mut stg, 0, 0);
    s.put(0, b"u:4".to_vec(), b"s".to_vec()).unwrap();
    s.delete(0, b"u:2".to_vec()).unwrap();
    let p1 = s.scan_prefix(0, b"u:", None, 2).unwrap();
    let keys: Vec<_> = p1.entries.iter().map(|(k, _)| String::from_utf8(k.clone()).unwrap()).collect();
    assert_eq!(keys, ["u:1", "u:3"]);
    let p2 = s.scan_prefix(0, b"u:", p1.next.as_deref(), 2).unwrap();
    assert_eq!(p2.entries, vec![(b"u:4".to_vec(), b"s".to_vec())]);
    assert_eq!(p2.next, None);
}
