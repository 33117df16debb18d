//! The codec processors, for pipelines that want Arrow between processors:
//! - `json_to_arrow`: a batch's JSON object records become one record whose value is an Arrow IPC
//!   stream (the columns of `schema` or inferred, plus the metadata columns), marked with the header
//!   `content-type: application/vnd.apache.arrow.stream`; non-object records fail one by one.
//! - `arrow_to_json`: each Arrow record becomes one JSON record per row; the metadata columns
//!   give back the record's key, timestamp, partition and offset, the other columns its value.
//!
//! The `sql` processor reads Arrow records directly (no JSON round trip).

use super::codec;
use crate::processor::FailurePolicy;
use crate::processor::{BatchCtx, BatchError, Processor, ProcessorFactory, StateSlot};
use crate::record::{Outcome, Record, RecordError};
use datafusion::arrow::datatypes::Schema;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    JsonToArrow,
    ArrowToJson,
}

pub struct CodecFactory {
    pub direction: Direction,
    pub declared: Option<Schema>,
    pub label: String,
}

impl ProcessorFactory for CodecFactory {
    fn name(&self) -> &str {
        match self.direction {
            Direction::JsonToArrow => "json_to_arrow",
            Direction::ArrowToJson => "arrow_to_json",
        }
    }
    fn keeps_state(&self) -> bool {
        false
    }
    /// `json_to_arrow` without a schema types a batch as `sql` does from the JSON itself.
    fn passes_lines(&self) -> bool {
        self.direction == Direction::JsonToArrow && self.declared.is_none()
    }
    fn instantiate(&self, _: &crate::processor::ProcessorContext) -> anyhow::Result<Box<dyn Processor>> {
        Ok(Box::new(Codec { direction: self.direction, declared: self.declared.clone(), label: self.label.clone() }))
    }
}

struct Codec {
    direction: Direction,
    declared: Option<Schema>,
    label: String,
}

fn fail(code: &str, message: String) -> Outcome {
    Outcome::Fail(RecordError { class: crate::record::ErrorClass::InvalidInput, code: code.into(), message })
}

impl Codec {
    fn json_to_arrow(&self, records: &[Record]) -> Result<Vec<Outcome>, BatchError> {
        let (good, bad) = codec::parse(records);
        let mut out: Vec<Outcome> = (0..records.len()).map(|_| Outcome::Emit(Vec::new())).collect();
        for (i, why) in bad {
            out[i] = match why {
                codec::Rejected::NoValue => fail("no-value", "record has no value".into()),
                codec::Rejected::NotAnObject(m) => fail("bad-json", m),
            };
        }
        let Some(&(last, _)) = good.last() else { return Ok(out) };
        let ipc = codec::to_batch(&good, records, self.declared.as_ref())
            .and_then(|b| codec::to_ipc(&b))
            .map_err(|e| BatchError { message: format!("{}: json_to_arrow: {e}", self.label), policy: FailurePolicy::Fail })?;
        let r = &records[last];
        let (k, v) = codec::ARROW_CONTENT_TYPE;
        out[last] = Outcome::Emit(vec![Record {
            key: None,
            value: Some(ipc),
            headers: vec![(k.into(), v.to_vec())],
            timestamp_ms: r.timestamp_ms,
            partition: r.partition,
            offset: r.offset,
        }]);
        Ok(out)
    }

    fn arrow_to_json(&self, records: &[Record]) -> Vec<Outcome> {
        records
            .iter()
            .map(|r| {
                if !codec::is_arrow(r) {
                    return fail("not-arrow", "record is not an Arrow IPC stream (no content-type header); put json_to_arrow before arrow_to_json".into());
                }
                let rows = codec::from_ipc(r.value.as_deref().unwrap_or_default()).and_then(|b| codec::to_json_rows(&b));
                match rows {
                    Err(e) => fail("bad-arrow", e.to_string()),
                    Ok(rows) => Outcome::Emit(rows.into_iter().map(|row| from_row(&row, r)).collect()),
                }
            })
            .collect()
    }
}

/// A JSON row back into a record: metadata columns into the record's fields.
fn from_row(row: &[u8], src: &Record) -> Record {
    let mut obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(row).unwrap_or_default();
    let key = obj.remove("__key").and_then(|v| v.as_str().map(|s| s.as_bytes().to_vec()));
    let ts = obj.remove("__timestamp").and_then(|v| v.as_i64()).unwrap_or(src.timestamp_ms);
    let partition = obj.remove("__partition").and_then(|v| v.as_u64()).map_or(src.partition, |p| p as u32);
    let offset = obj.remove("__offset").and_then(|v| v.as_u64()).unwrap_or(src.offset);
    let value = serde_json::to_vec(&obj).expect("json");
    Record { key, value: Some(value), headers: vec![], timestamp_ms: ts, partition, offset }
}

impl Processor for Codec {
    fn name(&self) -> &str {
        match self.direction {
            Direction::JsonToArrow => "json_to_arrow",
            Direction::ArrowToJson => "arrow_to_json",
        }
    }
    fn process(&mut self, _: &BatchCtx, records: &[Record], _: &mut StateSlot) -> Result<Vec<Outcome>, BatchError> {
        match self.direction {
            Direction::JsonToArrow => self.json_to_arrow(records),
            Direction::ArrowToJson => Ok(self.arrow_to_json(records)),
        }
    }
    fn on_checkpoint(&mut self, _: u64, _: u32, _: i64, _: &mut StateSlot) -> Result<(), BatchError> {
        Ok(())
    }
}
