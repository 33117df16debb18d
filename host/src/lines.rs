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

/// The positions of the newlines in `text`, in order. A reader finds every line end this way:
/// it marks the newlines of 64 bytes at a time in one mask and walks its bits, about twice as
/// fast on lines of ~60 bytes as a `memchr` call per line (whose setup is paid per line).
pub fn newlines(text: &[u8]) -> Newlines<'_> {
    Newlines { text, next: 0, base: 0, mask: 0 }
}

pub struct Newlines<'a> {
    text: &'a [u8],
    /// Where the next 64 bytes to mark start.
    next: usize,
    /// Where the bytes of `mask` start; bit i is a newline at `base + i`.
    base: usize,
    mask: u64,
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            let rest = self.text.get(self.next..).filter(|r| !r.is_empty())?;
            self.base = self.next;
            self.mask = match rest.first_chunk::<64>() {
                Some(chunk) => newline_mask(chunk),
                None => rest.iter().enumerate().fold(0, |m, (i, c)| m | (u64::from(*c == b'\n') << i)),
            };
            self.next += 64;
        }
        let at = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// Bit i set when byte i of `chunk` is a newline.
#[cfg(target_arch = "x86_64")]
fn newline_mask(chunk: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    let p = chunk.as_ptr().cast::<__m128i>();
    // SAFETY: SSE2 is part of every x86_64 target; each unaligned load reads 16 of the 64 bytes
    // `chunk` holds.
    let mark = |i: usize| unsafe { u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(p.add(i)), _mm_set1_epi8(b'\n' as i8))) as u16) };
    mark(0) | mark(1) << 16 | mark(2) << 32 | mark(3) << 48
}

#[cfg(not(target_arch = "x86_64"))]
fn newline_mask(chunk: &[u8; 64]) -> u64 {
    chunk.iter().enumerate().fold(0, |m, (i, c)| m | (u64::from(*c == b'\n') << i))
}

/// What a reader notes of a trimmed line: its length and whether it looks like one JSON object
/// (starts with `{` and ends with `}`).
pub fn shape(line: &[u8]) -> (usize, bool) {
    (line.len(), line.first() == Some(&b'{') && line.last() == Some(&b'}'))
}

impl Lines {
    /// Counts line `line` of the split, of `shape` `(length trimmed, looks like an object)`, as
    /// a reader adds it to the block (a blank line counts for nothing).
    pub fn count(&mut self, (len, object): (usize, bool), line: u64) {
        if len > 0 {
            self.objects &= object;
            self.records += 1;
            self.value_bytes += len;
            self.last_line = line;
        }
    }

    /// Each non-blank line (trimmed) with its line number, in order.
    pub fn each(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let text = &self.text[..];
        let ends = newlines(text).chain((text.last().is_some_and(|c| *c != b'\n')).then_some(text.len()));
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
            if !shape(l).1 {
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
    fn newlines_are_found_wherever_they_fall() {
        let mut x = 7u64;
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            for density in [2, 7, 61, 1000] {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        if (x >> 33).is_multiple_of(density) {
                            b'\n'
                        } else {
                            (x >> 40) as u8 | 0x80
                        }
                    })
                    .collect();
                let expected: Vec<usize> = memchr::memchr_iter(b'\n', &text).collect();
                assert_eq!(newlines(&text).collect::<Vec<_>>(), expected, "len {len}, 1 in {density}");
            }
        }
        assert_eq!(newlines(b"\n\n").collect::<Vec<_>>(), vec![0, 1]);
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
