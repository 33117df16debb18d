//! When keyed windows fire: an ordered set of `(fire time, key group, state key)`, shared by the
//! window stage and windowed continuous SQL.
//!
//! Contract: entries may be stale (a window that grew or already fired, a batch that failed):
//! whoever fires re-reads the state and skips what is not due. `take_due` removes every entry at
//! or before the watermark and hands them out per key group, in time order within a group.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub struct FireIndex(BTreeSet<(i64, u32, Vec<u8>)>);

impl FireIndex {
    pub fn insert(&mut self, fire_at: i64, group: u32, state_key: Vec<u8>) {
        self.0.insert((fire_at, group, state_key));
    }

    /// The key groups with an entry due at `watermark`.
    pub fn due_groups(&self, watermark: i64) -> Vec<u32> {
        let groups: BTreeSet<u32> = self.0.iter().take_while(|(t, _, _)| *t <= watermark).map(|(_, g, _)| *g).collect();
        groups.into_iter().collect()
    }

    /// Removes the entries due at `watermark`: the state keys per key group.
    pub fn take_due(&mut self, watermark: i64) -> BTreeMap<u32, Vec<Vec<u8>>> {
        let mut due: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        while self.0.first().is_some_and(|(t, _, _)| *t <= watermark) {
            let (_, g, k) = self.0.pop_first().expect("first exists");
            due.entry(g).or_default().push(k);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_leave_in_time_order_per_group() {
        let mut ix = FireIndex::default();
        ix.insert(30, 1, b"c".to_vec());
        ix.insert(10, 2, b"a".to_vec());
        ix.insert(20, 1, b"b".to_vec());
        ix.insert(40, 2, b"d".to_vec());
        assert_eq!(ix.due_groups(20), vec![1, 2]);
        let due = ix.take_due(30);
        assert_eq!(due.get(&1).unwrap(), &vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(due.get(&2).unwrap(), &vec![b"a".to_vec()]);
        assert_eq!(ix.due_groups(i64::MAX), vec![2], "the entry at 40 stays");
    }
}
