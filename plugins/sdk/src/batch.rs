//! The batch ABI of `arkflow:plugin@0.2.0` as plugin code sees it: [`Batch`], a read-only view of
//! the records the host sent (borrowed slices of a few contiguous buffers, nothing copied per
//! record), and [`Outcomes`], a builder that writes emitted values into one buffer (nothing
//! allocated per record) and sends them back as one `outcomes` value.
//!
//! Contract of [`Outcomes`]: say what input `i` became by calling `emit*`/`fail` with `i`; an
//! input that got neither is dropped. Inputs must be addressed in ascending order (an input may
//! get several `emit*` calls in a row); out of order, the call fails with `internal`
//! `outcomes-out-of-order` instead of sending the host something it would refuse. `fail` after
//! an `emit*` of the same input, or the reverse, fails the same way (`outcomes-mixed`).

use crate::bindings::arkflow::plugin::types as wit;
use crate::{Error, Header, RecordIn, RecordOut};

/// Item `i` of a column, None when absent.
pub(crate) fn item(c: &wit::Column, i: usize) -> Option<&[u8]> {
    if !c.valid.is_empty() && c.valid[i / 8] & (1 << (i % 8)) == 0 {
        return None;
    }
    let start = if i == 0 { 0 } else { c.ends[i - 1] as usize };
    c.data.get(start..c.ends[i] as usize)
}

/// The records of one batch (see the module docs).
pub struct Batch {
    raw: wit::Batch,
}

/// One record of a [`Batch`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The record's index in its batch (what [`Outcomes`] calls take).
    pub index: usize,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp_ms: i64,
    pub partition: u32,
    pub offset: u64,
    headers: &'a [(u32, Header)],
}

impl<'a> RecordRef<'a> {
    /// The key as UTF-8, `None` when absent or not UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }
    /// The record's headers, in order.
    pub fn headers(&self) -> impl Iterator<Item = &'a Header> {
        self.headers.iter().map(|(_, h)| h)
    }
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|h| h.key == name).map(|h| h.value.as_slice())
    }
    /// An owned copy (what `process_batch` receives).
    pub fn to_owned(&self) -> RecordIn {
        RecordIn {
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers().cloned().collect(),
            timestamp_ms: self.timestamp_ms,
            partition: self.partition,
            offset: self.offset,
        }
    }
}

impl Batch {
    pub(crate) fn new(raw: wit::Batch) -> Self {
        Batch { raw }
    }

    /// Builds a batch from records (for unit tests of plugin code on the native target).
    pub fn from_records(records: &[RecordIn]) -> Self {
        let (mut keys, mut values) = (Column::default(), Column::default());
        let mut headers = Vec::new();
        for (i, r) in records.iter().enumerate() {
            keys.push(r.key.as_deref());
            values.push(r.value.as_deref());
            headers.extend(r.headers.iter().map(|h| (i as u32, h.clone())));
        }
        Batch {
            raw: wit::Batch {
                keys: keys.finish(),
                values: values.finish(),
                timestamps: records.iter().map(|r| r.timestamp_ms).collect(),
                partitions: records.iter().map(|r| r.partition).collect(),
                offsets: records.iter().map(|r| r.offset).collect(),
                headers,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.raw.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i` (`i < len()`).
    pub fn get(&self, i: usize) -> RecordRef<'_> {
        let h = &self.raw.headers;
        let (from, to) = (h.partition_point(|(at, _)| (*at as usize) < i), h.partition_point(|(at, _)| (*at as usize) <= i));
        RecordRef {
            index: i,
            key: item(&self.raw.keys, i),
            value: item(&self.raw.values, i),
            timestamp_ms: self.raw.timestamps[i],
            partition: self.raw.partitions.get(i).copied().unwrap_or(0),
            offset: self.raw.offsets.get(i).copied().unwrap_or(0),
            headers: &h[from..to],
        }
    }

    /// The records in order.
    pub fn iter(&self) -> impl Iterator<Item = RecordRef<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The fields declared with [`fields::declare`](crate::fields::declare), decoded by the host
    /// for every record of this batch (one host call; call it once per batch).
    pub fn fields(&self) -> Result<crate::fields::Fields, Error> {
        crate::fields::Fields::fetch()
    }

    /// Owned copies of every record.
    pub fn to_records(&self) -> Vec<RecordIn> {
        self.iter().map(|r| r.to_owned()).collect()
    }
}

/// A column being built (Arrow layout: data, end offsets, validity bitmap sent only when needed).
#[derive(Default)]
pub(crate) struct Column {
    data: Vec<u8>,
    ends: Vec<u32>,
    valid: Vec<u8>,
    absent: bool,
}

impl Column {
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Self {
        Column { data: Vec::with_capacity(bytes), ends: Vec::with_capacity(items), valid: Vec::with_capacity(items.div_ceil(8)), absent: false }
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    fn close(&mut self, present: bool) {
        let i = self.ends.len();
        if i.is_multiple_of(8) {
            self.valid.push(0);
        }
        if present {
            self.valid[i / 8] |= 1 << (i % 8);
        } else {
            self.absent = true;
        }
        self.ends.push(self.data.len() as u32);
    }

    pub(crate) fn push(&mut self, item: Option<&[u8]>) {
        if let Some(b) = item {
            self.data.extend_from_slice(b);
        }
        self.close(item.is_some());
    }

    /// Appends an item written by `f` straight into the data buffer.
    fn push_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(&mut self.data);
        self.close(true);
    }

    pub(crate) fn finish(mut self) -> wit::Column {
        if !self.absent {
            self.valid.clear();
        }
        wit::Column { data: self.data, ends: self.ends, valid: self.valid }
    }
}

/// What the inputs of one call became (see the module docs).
#[derive(Default)]
pub struct Outcomes {
    values: Column,
    sources: Vec<u32>,
    /// Keys of emitted records, once one sets a key (absent items before it).
    keys: Option<Column>,
    timestamps: Vec<(u32, i64)>,
    headers: Vec<(u32, Header)>,
    outputs: Vec<(u32, String)>,
    failed: Vec<(u32, Error)>,
    /// The last input addressed, and whether it emitted.
    last: Option<(usize, bool)>,
    misuse: Option<Error>,
    /// Sent as is (tests of the host's checks only).
    raw: Option<wit::Outcomes>,
}

impl Outcomes {
    /// A builder sized for `inputs` records of about `value_bytes` bytes of output each.
    pub fn with_capacity(inputs: usize, value_bytes: usize) -> Self {
        Outcomes { values: Column::with_capacity(inputs, inputs * value_bytes), sources: Vec::with_capacity(inputs), ..Default::default() }
    }

    /// Records that input `i` is addressed now (`emits`: by an emit); false when out of order.
    fn address(&mut self, i: usize, emits: bool) -> bool {
        let err = match self.last {
            Some((last, _)) if i < last => Some(("outcomes-out-of-order", format!("input {i} addressed after input {last}"))),
            Some((last, emitted)) if i == last && emitted != emits => Some(("outcomes-mixed", format!("input {i} both emitted records and failed"))),
            Some((last, false)) if i == last => Some(("outcomes-mixed", format!("input {i} failed twice"))),
            _ => None,
        };
        if let Some((code, msg)) = err {
            self.misuse.get_or_insert_with(|| Error::internal(code, msg));
            return false;
        }
        self.last = Some((i, emits));
        true
    }

    /// Emits, for input `i`, one record whose value `write` appends to the buffer it is given
    /// (key, timestamp and headers of the input kept). The fastest way to emit.
    pub fn emit_with(&mut self, i: usize, write: impl FnOnce(&mut Vec<u8>)) {
        if self.address(i, true) {
            self.values.push_with(write);
            self.emitted(i);
        }
    }

    /// Emits, for input `i`, one record with `value` (key and timestamp of the input kept).
    pub fn emit_value(&mut self, i: usize, value: &[u8]) {
        self.emit_with(i, |buf| buf.extend_from_slice(value))
    }

    /// Emits a prepared record for input `i`.
    pub fn emit(&mut self, i: usize, record: RecordOut) {
        if !self.address(i, true) {
            return;
        }
        self.values.push(record.value.as_deref());
        let j = self.values.len() as u32 - 1;
        if let Some(k) = record.key {
            let keys = self.keys.get_or_insert_with(Column::default);
            while keys.len() < j as usize {
                keys.push(None);
            }
            keys.push(Some(&k));
        }
        if let Some(t) = record.timestamp_ms {
            self.timestamps.push((j, t));
        }
        self.headers.extend(record.headers.into_iter().map(|h| (j, h)));
        if let Some(o) = record.output {
            self.outputs.push((j, o));
        }
        self.emitted(i);
    }

    fn emitted(&mut self, i: usize) {
        self.sources.push(i as u32);
    }

    /// Input `i` failed: the host sends it, with `error`, to the stream's `error_output`.
    pub fn fail(&mut self, i: usize, error: Error) {
        if self.address(i, false) {
            self.failed.push((i as u32, error));
        }
    }

    /// Outcomes sent to the host exactly as given, unchecked: for tests of the host's checks
    /// (a plugin that replies with what the host must refuse). Not for plugins.
    #[doc(hidden)]
    pub fn raw(outcomes: wit::Outcomes) -> Self {
        Outcomes { raw: Some(outcomes), ..Default::default() }
    }

    /// The value sent to the host for a call with `inputs` inputs; Err when the builder was
    /// misused (see the module docs).
    pub fn finish(self, inputs: usize) -> Result<wit::Outcomes, Error> {
        if let Some(raw) = self.raw {
            return Ok(raw);
        }
        if let Some(e) = self.misuse {
            return Err(e);
        }
        let m = self.values.len();
        let one_each = m == inputs && self.sources.iter().enumerate().all(|(j, &s)| s as usize == j);
        let mut keys = self.keys.unwrap_or_default();
        if keys.len() > 0 {
            while keys.len() < m {
                keys.push(None);
            }
        }
        Ok(wit::Outcomes {
            values: self.values.finish(),
            sources: if one_each { Vec::new() } else { self.sources },
            keys: keys.finish(),
            timestamps: self.timestamps,
            headers: self.headers,
            outputs: self.outputs,
            failed: self.failed,
        })
    }

    /// The outcomes of the record API: exactly one [`crate::Outcome`] per input, in order (`what`
    /// names the call in the error when the count is wrong).
    pub fn from_list(list: Vec<crate::Outcome>, inputs: usize, what: &str) -> Result<Self, Error> {
        if list.len() != inputs {
            return Err(Error::internal("wrong-outcome-count", format!("{what} returned {} outcomes for {inputs} inputs", list.len())));
        }
        let mut out = Outcomes::default();
        for (i, o) in list.into_iter().enumerate() {
            match o {
                crate::Outcome::Emit(records) => records.into_iter().for_each(|r| out.emit(i, r)),
                crate::Outcome::Drop => {}
                crate::Outcome::Fail(e) => out.fail(i, e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
