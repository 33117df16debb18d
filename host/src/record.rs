//! The record that flows through a stream, and the outcome a processor returns for it.
//!
//! A `Record` carries its source position (`partition` = input split, `offset` = position in the
//! split) so that failed records can be reported precisely and checkpoints can record positions.

/// One record. Keys and values are raw bytes; JSON inputs put UTF-8 JSON text in `value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: i64,
    /// The input split the record came from (0 for single-split inputs).
    pub partition: u32,
    /// Position of the record in its split (line number, sequence number, Kafka offset).
    pub offset: u64,
}

impl Record {
    /// Bytes of key, value and headers: what output caps count.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len) + self.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

/// What a processor decided for one input record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Zero or more records to pass downstream.
    Emit(Vec<Record>),
    /// Records for the rest of the pipeline (`main`) and records sent straight to the stream's
    /// named outputs (`side`: index into `StreamConfig::outputs`), which skip the rest of the
    /// pipeline and are written exactly like the main output's.
    Split { main: Vec<Record>, side: Vec<(u16, Record)> },
    /// Consumed without output.
    Drop,
    /// The record failed; it goes to `error_output` with this error.
    Fail(RecordError),
}

impl Outcome {
    /// Every record the outcome emits, to the next processor and to named outputs alike.
    pub fn emitted(&self) -> impl Iterator<Item = &Record> {
        let (main, side): (&[Record], &[(u16, Record)]) = match self {
            Outcome::Emit(v) => (v, &[]),
            Outcome::Split { main, side } => (main, side),
            Outcome::Drop | Outcome::Fail(_) => (&[], &[]),
        };
        main.iter().chain(side.iter().map(|(_, r)| r))
    }
}

/// What kind of failure an error record reports: the WIT `error-class` values, plus `batch`
/// (the host failed a whole batch). Error records carry its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The record or batch is malformed; retrying will not help.
    InvalidInput,
    /// A processor's configuration is wrong (or it emitted to an output the stream lacks).
    Config,
    /// A state operation failed.
    State,
    /// A transient failure.
    Retriable,
    /// A bug or unexpected condition inside the processor.
    Internal,
    /// The whole batch failed (the error is the batch's, not this record's).
    Batch,
}

impl ErrorClass {
    /// The name error records carry (`invalid-input`, ...; the WIT spelling).
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::InvalidInput => "invalid-input",
            ErrorClass::Config => "config",
            ErrorClass::State => "state",
            ErrorClass::Retriable => "retriable",
            ErrorClass::Internal => "internal",
            ErrorClass::Batch => "batch",
        }
    }
}

/// An error attached to one failed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub class: ErrorClass,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.class.name(), self.code, self.message)
    }
}
