//! The record API's types ([`RecordIn`], [`RecordOut`], [`Outcome`]: owned records, one outcome
//! per input, the shape of `arkflow:plugin@0.1`), and convenience constructors on them and on the
//! generated WIT types.
//!
//! Contract: pure helpers, no host calls. Records built here leave `timestamp_ms` and `output`
//! absent (the host keeps the input's timestamp; `to_output` names a named output) and
//! `key` absent unless set (the host keeps the input's key).

use crate::{Error, ErrorClass, Header, StateError};

/// A record handed to the plugin (an owned copy; [`crate::Batch`] borrows instead).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordIn {
    /// The record key (for a Kafka input, the message key). Absent for unkeyed records.
    pub key: Option<Vec<u8>>,
    /// The payload (for JSON inputs, the UTF-8 JSON text). Absent for tombstones.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The input split the record came from (Kafka partition; 0 for single-split inputs).
    pub partition: u32,
    /// The record's position within its split.
    pub offset: u64,
}

/// A record the plugin emits.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOut {
    /// Absent: the host keeps the key of the input record the output was emitted for.
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// Absent: the host keeps the timestamp of the input record.
    pub timestamp_ms: Option<i64>,
    /// Present: the record goes straight to the stream's named output of that name.
    pub output: Option<String>,
}

/// The plugin's verdict on one input record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Emit zero or more records downstream.
    Emit(Vec<RecordOut>),
    /// Consume the record without output.
    Drop,
    /// The record failed: the host routes it, with this error, to the stream's `error_output`.
    Fail(Error),
}

impl Error {
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        Error { class, code: code.into(), message: message.into() }
    }
    /// The record or batch is malformed (e.g. code "bad-json").
    pub fn invalid_input(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::InvalidInput, code, message)
    }
    pub fn config(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Config, code, message)
    }
    pub fn state(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::State, code, message)
    }
    pub fn retriable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retriable, code, message)
    }
    pub fn internal(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Internal, code, message)
    }
}

/// A failed state call becomes an error of class `state` whose code is the variant's WIT name.
impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        let code = match &e {
            StateError::UnknownStore(_) => "unknown-store",
            StateError::NoScope => "no-scope",
            StateError::KeyTooLarge(_) => "key-too-large",
            StateError::ValueTooLarge(_) => "value-too-large",
            StateError::QuotaExceeded(_) => "quota-exceeded",
            StateError::NotACounter => "not-a-counter",
            StateError::Disabled => "disabled",
        };
        Error::state(code, format!("{e:?}"))
    }
}

impl RecordOut {
    /// A record with this value; key, timestamp and headers inherited/empty.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        RecordOut { key: None, value: Some(value.into()), headers: Vec::new(), timestamp_ms: None, output: None }
    }
    /// The input record re-emitted unchanged: key, value and headers moved over, timestamp absent
    /// (so the host keeps the input's).
    pub fn from_input(record: RecordIn) -> Self {
        RecordOut { key: record.key, value: record.value, headers: record.headers, timestamp_ms: None, output: None }
    }
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }
    /// Sends the record to the stream's named output `name` (YAML `outputs: {name: ...}`)
    /// instead of the next processor; a name the stream does not have fails the input record.
    pub fn to_output(mut self, name: impl Into<String>) -> Self {
        self.output = Some(name.into());
        self
    }
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push(Header { key: key.into(), value: value.into() });
        self
    }
}

impl Outcome {
    /// Emit one record with `value` (key and timestamp of the input kept).
    pub fn emit_one(value: impl Into<Vec<u8>>) -> Self {
        Outcome::Emit(vec![RecordOut::new(value)])
    }
    /// Emit one prepared record.
    pub fn emit(record: RecordOut) -> Self {
        Outcome::Emit(vec![record])
    }
    /// Re-emit the input record unchanged.
    pub fn pass(record: RecordIn) -> Self {
        Outcome::Emit(vec![RecordOut::from_input(record)])
    }
    /// Fail the record with an `invalid-input` error.
    pub fn invalid(code: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Fail(Error::invalid_input(code, message))
    }
}

impl RecordIn {
    /// The key as UTF-8, `None` when absent or not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|h| h.key == name).map(|h| h.value.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_copies_everything_but_timestamp() {
        let rec = RecordIn {
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: vec![Header { key: "h".into(), value: b"v".to_vec() }],
            timestamp_ms: 5,
            partition: 1,
            offset: 2,
        };
        assert_eq!(rec.key_str(), Some("k"));
        assert_eq!(rec.header("h"), Some(&b"v"[..]));
        match Outcome::pass(rec) {
            Outcome::Emit(out) => {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
                assert_eq!(out[0].value.as_deref(), Some(&b"{}"[..]));
                assert_eq!(out[0].headers.len(), 1);
                assert_eq!((out[0].timestamp_ms, out[0].output.as_deref()), (None, None));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_error_maps_to_state_class() {
        let e: Error = StateError::QuotaExceeded("x".into()).into();
        assert_eq!((e.class, e.code.as_str()), (ErrorClass::State, "quota-exceeded"));
    }
}
