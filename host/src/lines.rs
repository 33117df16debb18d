//! A block of JSON lines read as one unit: the payload of the columnar lane (docs/ARCHITECTURE.md,
//! *The columnar lane*).
//!
//! Contract: `text` holds whole lines as the input read them, newline-separated, blank lines
//! included; line `i` of `text` is line `first_line + i` of its split (`partition`), and every
//! record of the block was read at `timestamp_ms`. The block is the input's batch: it is decoded
//! once, vectorized, by the stage that takes it ([`crate::processor::Processor::process_lines`]),
//! and turned into per-line [`Record`]s ([`Lines::records`]) only when a stage cannot take it
//! whole: then every record is exactly what the input's `next_batch` would have returned (same
//! value bytes, offset, timestamp), so the record path's per-record errors apply unchanged.

use crate::record::Record;
use std::ops::{Deref, DerefMut};

/// Whole JSON lines of one split, read together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    pub text: Text,
    pub partition: u32,
    /// The line number of the first line of `text` in its split.
    pub first_line: u64,
    /// Records in the block (its non-blank lines).
    pub records: usize,
    /// Bytes of those records' values (the lines trimmed), as the record path counts them.
    pub value_bytes: usize,
    /// The line number of the last record (the offset the block's results carry).
    pub last_line: u64,
    pub timestamp_ms: i64,
    /// The reader saw every non-blank line start with `{` and end with `}` (false: not checked).
    pub objects: bool,
}

/// The bytes of a block. A block's buffer goes back to the reader that filled it when the block
/// is dropped (`Recycler`), so the reader refills memory that is already mapped: a fresh buffer
/// per block cost a page fault per 4 KiB and most of the reader's time.
#[derive(Default)]
pub struct Text {
    bytes: Vec<u8>,
    home: Option<crossbeam_channel::Sender<Vec<u8>>>,
}

impl Deref for Text {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for Text {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Drop for Text {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            let _ = home.try_send(std::mem::take(&mut self.bytes));
        }
    }
}

impl Clone for Text {
    /// A copy of the bytes, not returned anywhere.
    fn clone(&self) -> Self {
        Text::from(self.bytes.clone())
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Text {}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.bytes))
    }
}

impl From<Vec<u8>> for Text {
    fn from(bytes: Vec<u8>) -> Self {
        Text { bytes, home: None }
    }
}

/// The buffers of a reader's dropped blocks, for its next ones.
pub struct Recycler {
    home: crossbeam_channel::Sender<Vec<u8>>,
    back: crossbeam_channel::Receiver<Vec<u8>>,
}

impl Default for Recycler {
    fn default() -> Self {
        // More than the blocks in flight between a reader and its workers; extra ones are freed.
        let (home, back) = crossbeam_channel::bounded(256);
        Recycler { home, back }
    }
}

impl Recycler {
    /// An empty buffer of at least `capacity` bytes, a returned one when there is one.
    pub fn text(&self, capacity: usize) -> Text {
        let mut bytes = self.back.try_recv().unwrap_or_default();
        bytes.clear();
        bytes.reserve(capacity);
        Text { bytes, home: Some(self.home.clone()) }
    }
}

impl Lines {
    /// Each non-blank line (trimmed) with its line number, in order.
    pub fn each(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let text = &self.text[..];
        let ends = memchr::memchr_iter(b'\n', text).chain((text.last().is_some_and(|c| *c != b'\n')).then_some(text.len()));
        let mut start = 0;
        ends.enumerate()
            .map(move |(i, end)| {
                let line = &text[start..end];
                start = end + 1;
                (self.first_line + i as u64, line.trim_ascii())
            })
            .filter(|(_, l)| !l.is_empty())
    }

    /// The block as the record path's records (`next_batch`'s: value = the trimmed line, no key).
    pub fn to_records(&self) -> Vec<Record> {
        self.each()
            .map(|(offset, l)| Record {
                key: None,
                value: Some(l.to_vec()),
                headers: vec![],
                timestamp_ms: self.timestamp_ms,
                partition: self.partition,
                offset,
            })
            .collect()
    }

    /// The line number of every record when each non-blank line is one JSON object (starts with
    /// `{` and ends with `}`), else None: a decoder may then read the block as one row per line.
    pub fn object_offsets(&self) -> Option<Vec<i64>> {
        if self.objects && self.records as u64 == self.last_line + 1 - self.first_line {
            // No blank line among them: the records are the block's first lines.
            return Some((self.first_line as i64..=self.last_line as i64).collect());
        }
        let mut out = Vec::with_capacity(self.records);
        for (offset, l) in self.each() {
            if l.first() != Some(&b'{') || l.last() != Some(&b'}') {
                return None;
            }
            out.push(offset as i64);
        }
        (out.len() == self.records).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> Lines {
        let records = text.lines().filter(|l| !l.trim().is_empty()).count();
        let last_line = 10 + text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).last().map_or(0, |(i, _)| i as u64);
        Lines { text: text.as_bytes().to_vec().into(), partition: 0, first_line: 10, records, value_bytes: 0, last_line, timestamp_ms: 7, objects: false }
    }

    #[test]
    fn records_are_the_non_blank_lines_with_their_line_numbers() {
        let b = block("{\"a\":1}\n\n  {\"a\":2} \r\n[3]\n");
        let r = b.to_records();
        assert_eq!(r.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![10, 12, 13]);
        assert_eq!(r[1].value.as_deref(), Some(&b"{\"a\":2}"[..]));
        assert_eq!(r[2].timestamp_ms, 7);
        assert_eq!(b.last_line, 13);
        assert_eq!(b.object_offsets(), None, "a line that is not an object");
        assert_eq!(block("{\"a\":1}\n\n{\"b\":{}}").object_offsets(), Some(vec![10, 12]));
        assert_eq!(block("{\"a\":\n1}").object_offsets(), None, "an object over two lines");
        let checked = |text: &str| Lines { objects: true, ..block(text) };
        assert_eq!(checked("{\"a\":1}\n{\"b\":{}}\n").object_offsets(), Some(vec![10, 11]), "checked by the reader");
        assert_eq!(checked("{\"a\":1}\n\n{\"b\":{}}").object_offsets(), Some(vec![10, 12]), "a blank line between");
    }

    #[test]
    fn a_dropped_block_gives_its_buffer_back_to_the_reader() {
        let r = Recycler::default();
        let mut t = r.text(100);
        t.extend_from_slice(b"{}\n");
        let at = t.as_ptr();
        drop(t);
        let again = r.text(10);
        assert!(again.is_empty() && again.capacity() >= 100 && again.as_ptr() == at, "the same buffer, emptied");
        assert_eq!(Text::from(b"x".to_vec()).clone(), Text::from(b"x".to_vec()));
    }
}
