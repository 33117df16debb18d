//! JSON records <-> Arrow. A batch's JSON object values become one `RecordBatch`: the columns of
//! the declared schema, or the schema inferred from the batch, plus the metadata columns
//! `__key` (utf8), `__timestamp` (int64 ms), `__partition` (int32) and `__offset` (int64).
//! Result batches become one JSON object per row (nulls omitted).

use super::SqlType;
use crate::record::Record;
use arrow_json::reader::{infer_json_schema_from_iterator, ReaderBuilder};
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use std::sync::Arc;

pub const META_COLUMNS: &[&str] = &["__key", "__timestamp", "__partition", "__offset"];

/// The metadata columns' fields, in `META_COLUMNS` order.
pub fn meta_fields() -> [Field; 4] {
    [
        Field::new("__key", DataType::Utf8, true),
        Field::new("__timestamp", DataType::Int64, false),
        Field::new("__partition", DataType::Int32, false),
        Field::new("__offset", DataType::Int64, false),
    ]
}

/// The declared schema of the YAML's `schema:` map.
pub fn declared(fields: &[(String, SqlType)]) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(|(name, t)| {
                let dt = match t {
                    SqlType::String => DataType::Utf8,
                    SqlType::Int => DataType::Int64,
                    SqlType::Float => DataType::Float64,
                    SqlType::Bool => DataType::Boolean,
                };
                Field::new(name, dt, true)
            })
            .collect::<Vec<_>>(),
    )
}

/// Why a record cannot join the table.
pub enum Rejected {
    NoValue,
    NotAnObject(String),
}

/// JSON objects with the index of their record.
pub type Objects = Vec<(usize, serde_json::Value)>;

/// Parses each record's value; returns the objects (with their record index) and the rejects.
pub fn parse(records: &[Record]) -> (Objects, Vec<(usize, Rejected)>) {
    let (mut ok, mut bad) = (Vec::with_capacity(records.len()), Vec::new());
    for (i, r) in records.iter().enumerate() {
        match r.value.as_deref().map(serde_json::from_slice::<serde_json::Value>) {
            None => bad.push((i, Rejected::NoValue)),
            Some(Ok(v @ serde_json::Value::Object(_))) => ok.push((i, v)),
            Some(Ok(_)) => bad.push((i, Rejected::NotAnObject("the value is JSON but not an object".into()))),
            Some(Err(e)) => bad.push((i, Rejected::NotAnObject(format!("invalid JSON: {e}")))),
        }
    }
    (ok, bad)
}

/// The table of one batch: data columns then the metadata columns.
pub fn to_batch(values: &[(usize, serde_json::Value)], records: &[Record], declared: Option<&Schema>) -> Result<RecordBatch, ArrowError> {
    let data_schema = match declared {
        Some(s) => s.clone(),
        None => infer_json_schema_from_iterator(values.iter().map(|(_, v)| Ok::<_, ArrowError>(v)))?,
    };
    // User fields never shadow the metadata columns.
    let data_schema = Schema::new(data_schema.fields().iter().filter(|f| !META_COLUMNS.contains(&f.name().as_str())).cloned().collect::<Vec<_>>());
    let mut decoder = ReaderBuilder::new(Arc::new(data_schema.clone())).with_strict_mode(false).build_decoder()?;
    let objs: Vec<&serde_json::Value> = values.iter().map(|(_, v)| v).collect();
    decoder.serialize(&objs)?;
    let data = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(Arc::new(data_schema.clone())));
    let rec = |i: usize| &records[values[i].0];
    let n = values.len();
    let key: StringArray = (0..n).map(|i| rec(i).key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned())).collect();
    let ts: Int64Array = (0..n).map(|i| Some(rec(i).timestamp_ms)).collect();
    let part: Int32Array = (0..n).map(|i| Some(rec(i).partition as i32)).collect();
    let off: Int64Array = (0..n).map(|i| Some(rec(i).offset as i64)).collect();
    let mut fields: Vec<Field> = data_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(meta_fields());
    let mut columns: Vec<ArrayRef> = data.columns().to_vec();
    columns.extend([Arc::new(key) as ArrayRef, Arc::new(ts), Arc::new(part), Arc::new(off)]);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// `table` with a null float column for each name of `wanted` it lacks (a field that no record
/// of this batch has, which the query still names: so the query plans, and reads NULL, instead
/// of failing the batch). A name the table has in another case is not added, so a case mismatch
/// still fails visibly.
pub fn fill_missing(table: RecordBatch, wanted: &[String]) -> Result<RecordBatch, ArrowError> {
    let schema = table.schema();
    let has = |n: &str| schema.fields().iter().any(|f| f.name().eq_ignore_ascii_case(n));
    let missing: Vec<&String> = wanted.iter().filter(|n| !has(n)).collect();
    if missing.is_empty() {
        return Ok(table);
    }
    let rows = table.num_rows();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = table.columns().to_vec();
    for n in missing {
        fields.push(Field::new(n.as_str(), DataType::Float64, true));
        columns.push(datafusion::arrow::array::new_null_array(&DataType::Float64, rows));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// One JSON object per row of `batches`, as bytes.
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<u8>>, ArrowError> {
    let mut out = Vec::new();
    for b in batches {
        let mut buf = Vec::new();
        {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
            w.write(b)?;
            w.finish()?;
        }
        out.extend(buf.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    Ok(out)
}

/// The rows of `batches` as the records a batch query emits: one JSON object per row (nulls
/// omitted), no key, the position `(timestamp_ms, partition, offset)` of the input they stand for.
pub fn result_records(batches: &[RecordBatch], (timestamp_ms, partition, offset): (i64, u32, u64)) -> Result<Vec<Record>, ArrowError> {
    Ok(to_json_rows(batches)?.into_iter().map(|v| Record { key: None, value: Some(v), headers: vec![], timestamp_ms, partition, offset }).collect())
}

/// The rows of `batches` as JSON values, by column position.
pub fn to_value_rows(batches: &[RecordBatch], schema: &SchemaRef) -> Result<Vec<Vec<serde_json::Value>>, ArrowError> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    to_json_rows(batches)?
        .into_iter()
        .map(|line| {
            let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&line).map_err(|e| ArrowError::JsonError(e.to_string()))?;
            Ok(names.iter().map(|n| obj.get(*n).cloned().unwrap_or(serde_json::Value::Null)).collect())
        })
        .collect()
}

/// The header that marks a record whose value is an Arrow IPC stream.
pub const ARROW_CONTENT_TYPE: (&str, &[u8]) = ("content-type", b"application/vnd.apache.arrow.stream");

pub fn is_arrow(r: &Record) -> bool {
    r.headers.iter().any(|(k, v)| k == ARROW_CONTENT_TYPE.0 && v == ARROW_CONTENT_TYPE.1)
}

/// One record batch as an Arrow IPC stream.
pub fn to_ipc(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema())?;
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf)
}

/// The batches of an Arrow IPC stream.
pub fn from_ipc(bytes: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?.collect()
}

/// The table of a batch of Arrow records: their batches concatenated (one schema).
pub fn from_arrow_records(records: &[Record]) -> Result<RecordBatch, ArrowError> {
    let mut batches = Vec::new();
    for r in records {
        batches.extend(from_ipc(r.value.as_deref().unwrap_or_default())?);
    }
    let schema = batches.first().map(|b| b.schema()).ok_or_else(|| ArrowError::InvalidArgumentError("no Arrow data".into()))?;
    datafusion::arrow::compute::concat_batches(&schema, &batches)
}

/// How a block of JSON lines is typed (`lines_table`): the declared schema, or one inferred from
/// the first block and widened by later ones (`widen`).
#[derive(Default)]
pub struct LaneSchema {
    declared: Option<SchemaRef>,
    inferred: Option<SchemaRef>,
}

/// Top-level types the lane decodes without a declared schema; any other (nested values, or a
/// field whose blocks disagree) sends the block through the record path.
fn lane_type(t: &DataType) -> bool {
    matches!(t, DataType::Int64 | DataType::Float64 | DataType::Utf8 | DataType::Boolean | DataType::Null)
}

/// Lines of a first block that type the columns (inferring a whole 100,000-line block parsed every
/// line into a `serde_json::Value`).
const INFER_LINES: usize = 1024;

/// Below this magnitude every integer is exact as an f64.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

impl LaneSchema {
    pub fn new(declared: Option<&Schema>) -> Self {
        LaneSchema { declared: declared.map(|s| Arc::new(s.clone())), inferred: None }
    }

    /// Merges the schema inferred from `text` into the one so far; false when they conflict or
    /// a field is not of a lane type.
    fn widen(&mut self, text: &[u8]) -> bool {
        let Ok((found, _)) = arrow_json::reader::infer_json_schema(std::io::Cursor::new(text), None) else { return false };
        let found = Schema::new(found.fields().iter().filter(|f| !META_COLUMNS.contains(&f.name().as_str())).cloned().collect::<Vec<_>>());
        let merged = match &self.inferred {
            None => Ok(found),
            Some(old) => Schema::try_merge([old.as_ref().clone(), found]),
        };
        match merged {
            Ok(s) if s.fields().iter().all(|f| lane_type(f.data_type())) => {
                self.inferred = Some(Arc::new(s));
                true
            }
            _ => false,
        }
    }

    /// The data columns of `text` (one JSON object per line, `rows` of them); None when the
    /// block must take the record path.
    fn decode(&mut self, text: &[u8], rows: usize) -> Option<RecordBatch> {
        if let Some(s) = &self.declared {
            return super::flat::decode(text, s, false, rows).or_else(|| decode_rows(text, s.clone(), false, rows).ok());
        }
        // The first block types the columns from its first lines: a field only later lines have
        // fails the strict decode below, which widens by the whole block.
        if self.inferred.is_none() && !self.widen(crate::lines::newlines(text).nth(INFER_LINES - 1).map_or(text, |end| &text[..end])) {
            return None;
        }
        if let Some(b) = super::flat::decode(text, self.inferred.as_ref()?, true, rows) {
            return Some(b);
        }
        // No `.` and no negative exponent anywhere in the block: no number has a fraction, so the
        // integer columns decode as integers directly (exactly, to the full i64 range).
        let schema = self.inferred.as_ref()?;
        let integral = memchr::memchr(b'.', text).is_none() && memchr::memmem::find(text, b"e-").is_none() && memchr::memmem::find(text, b"E-").is_none();
        if integral {
            if let Ok(b) = decode_rows(text, schema.clone(), true, rows) {
                return Some(b);
            }
        }
        for attempt in 0..2 {
            // Integers decode as floats and come back exact below: arrow-json would truncate a
            // fraction into an Int64 column instead of failing.
            let schema = self.inferred.as_ref()?;
            let as_float: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| if f.data_type() == &DataType::Int64 { f.as_ref().clone().with_data_type(DataType::Float64) } else { f.as_ref().clone() })
                .collect();
            match decode_rows(text, Arc::new(Schema::new(as_float)), true, rows) {
                Ok(b) => return integers_back(b, schema),
                Err(_) if attempt == 0 && self.widen(text) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

/// Decodes exactly `rows` JSON objects from `text` with `schema` (strict: a field not in it is an
/// error).
pub(super) fn decode_rows(text: &[u8], schema: SchemaRef, strict: bool, rows: usize) -> Result<RecordBatch, ArrowError> {
    let mut decoder = ReaderBuilder::new(schema.clone()).with_strict_mode(strict).with_batch_size(rows + 1).build_decoder()?;
    let used = decoder.decode(text)?;
    if text[used..].iter().any(|c| !c.is_ascii_whitespace()) {
        return Err(ArrowError::JsonError("more values than lines".into()));
    }
    let batch = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(schema));
    match batch.num_rows() == rows {
        true => Ok(batch),
        false => Err(ArrowError::JsonError(format!("{} values in {rows} lines", batch.num_rows()))),
    }
}

/// `batch` with the columns `schema` types Int64 cast back from Float64 when every value is an
/// exact integer; a fraction keeps the column Float64 (as inference over this block would type
/// it); an integer too large for an f64 sends the block through the record path.
fn integers_back(batch: RecordBatch, schema: &Schema) -> Option<RecordBatch> {
    use datafusion::arrow::array::{Array, Float64Array};
    let mut fields: Vec<Field> = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (f, col) in schema.fields().iter().zip(batch.columns()) {
        if f.data_type() != &DataType::Int64 {
            fields.push(f.as_ref().clone());
            columns.push(col.clone());
            continue;
        }
        let floats = col.as_any().downcast_ref::<Float64Array>()?;
        let values = || floats.iter().flatten();
        if values().any(|v| v.abs() >= EXACT_F64) {
            return None;
        }
        if values().all(|v| v.fract() == 0.0) {
            let ints: Int64Array = floats.iter().map(|v| v.map(|v| v as i64)).collect();
            fields.push(f.as_ref().clone());
            columns.push(Arc::new(ints));
        } else {
            fields.push(f.as_ref().clone().with_data_type(DataType::Float64));
            columns.push(col.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

/// The table of a block of JSON lines whose records are at line numbers `offsets` (one object
/// per line): the data columns then the metadata columns, as `to_batch` builds them for the same
/// records (no key, the block's timestamp and partition). None: take the record path.
pub fn lines_table(schema: &mut LaneSchema, lines: &crate::lines::Lines, offsets: Vec<i64>) -> Option<RecordBatch> {
    let data = schema.decode(&lines.text, offsets.len())?;
    let n = offsets.len();
    let mut fields: Vec<Field> = data.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(meta_fields());
    let mut columns: Vec<ArrayRef> = data.columns().to_vec();
    columns.extend([
        datafusion::arrow::array::new_null_array(&DataType::Utf8, n),
        Arc::new(Int64Array::from_value(lines.timestamp_ms, n)) as ArrayRef,
        Arc::new(Int32Array::from_value(lines.partition as i32, n)),
        Arc::new(Int64Array::from(offsets)),
    ]);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}
