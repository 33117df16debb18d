//! The size of query results as JSON lines, without writing them.
//!
//! Contract: [`json_rows_size`] is exactly the sum of the line lengths `codec::to_json_rows`
//! writes for the same batches (one object per row, nulls omitted, no newline): what the record
//! path counts as `bytes_out` for them. Integer, boolean and string columns are sized from their
//! buffers (digits; serde_json's escapes); any other column is written alone with arrow-json and
//! its part of each line measured, so the sum stays exact for every type.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int16Type, Int32Type, Int64Type, Int8Type, Schema, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use datafusion::arrow::error::ArrowError;
use std::sync::Arc;

/// Bytes of the JSON lines of `batches` (see the module's contract).
pub fn json_rows_size(batches: &[RecordBatch]) -> Result<u64, ArrowError> {
    let mut total = 0u64;
    for b in batches {
        let mut present = vec![0u32; b.num_rows()];
        for (field, col) in b.schema().fields().iter().zip(b.columns()) {
            if col.null_count() == col.len() {
                continue;
            }
            let key = escaped_len(field.name().as_bytes()) + 1; // "name":
            let values = match values_size(col) {
                Some(v) => v,
                None => written_size(field, col)?,
            };
            let mut rows = 0u64;
            for (i, p) in present.iter_mut().enumerate() {
                if col.is_valid(i) {
                    *p += 1;
                    rows += 1;
                }
            }
            total += values + rows * key as u64;
        }
        // Braces, and a comma between members.
        total += present.iter().map(|&p| 2 + p.saturating_sub(1) as u64).sum::<u64>();
    }
    Ok(total)
}

/// The bytes of the non-null values of `col` as JSON, for the types sized from their buffers.
fn values_size(col: &ArrayRef) -> Option<u64> {
    fn ints<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(col: &ArrayRef, digits: impl Fn(T::Native) -> u64) -> u64 {
        col.as_primitive::<T>().iter().flatten().map(digits).sum()
    }
    Some(match col.data_type() {
        DataType::Int8 => ints::<Int8Type>(col, |v| signed(v as i64)),
        DataType::Int16 => ints::<Int16Type>(col, |v| signed(v as i64)),
        DataType::Int32 => ints::<Int32Type>(col, |v| signed(v as i64)),
        DataType::Int64 => ints::<Int64Type>(col, signed),
        DataType::UInt8 => ints::<UInt8Type>(col, |v| unsigned(v as u64)),
        DataType::UInt16 => ints::<UInt16Type>(col, |v| unsigned(v as u64)),
        DataType::UInt32 => ints::<UInt32Type>(col, |v| unsigned(v as u64)),
        DataType::UInt64 => ints::<UInt64Type>(col, unsigned),
        DataType::Boolean => col.as_boolean().iter().flatten().map(|v| if v { 4 } else { 5 }).sum(),
        DataType::Utf8 => strings(col.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(col.as_string::<i64>().iter()),
        DataType::Utf8View => strings(col.as_string_view().iter()),
        _ => return None,
    })
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> u64 {
    values.flatten().map(|s| escaped_len(s.as_bytes()) as u64).sum()
}

/// Decimal digits of `v`, and its sign.
fn signed(v: i64) -> u64 {
    unsigned(v.unsigned_abs()) + u64::from(v < 0)
}

fn unsigned(v: u64) -> u64 {
    u64::from(v.checked_ilog10().unwrap_or(0)) + 1
}

/// Length of `s` as a JSON string, quotes included, with serde_json's escapes: `\"`, `\\` and
/// the short forms of control characters take two bytes, other control characters six
/// (`\u00XX`); nothing else is escaped.
fn escaped_len(s: &[u8]) -> usize {
    s.len()
        + 2
        + s.iter()
            .map(|&c| match c {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
                0..0x20 => 5,
                _ => 0,
            })
            .sum::<usize>()
}

/// The bytes the values of `col` take in lines written by arrow-json: the column written
/// alone, less its key and braces on each line that has the value.
fn written_size(field: &Field, col: &ArrayRef) -> Result<u64, ArrowError> {
    let schema = Arc::new(Schema::new(vec![field.clone().with_nullable(true)]));
    let lines = super::codec::to_json_rows(&[RecordBatch::try_new(schema, vec![col.clone()])?])?;
    let frame = escaped_len(field.name().as_bytes()) + 3; // {"name":}
    Ok(lines.iter().filter(|l| l.len() > 2).map(|l| (l.len() - frame) as u64).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, Int8Array, ListArray, StringArray, StringViewArray, UInt64Array};
    use datafusion::arrow::datatypes::Int32Type;

    fn written(batches: &[RecordBatch]) -> u64 {
        super::super::codec::to_json_rows(batches).unwrap().iter().map(|l| l.len() as u64).sum()
    }

    #[test]
    fn the_size_is_what_the_record_path_writes() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None]), None, Some(vec![]), Some(vec![Some(-7)])]);
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("i", Arc::new(Int64Array::from(vec![Some(0), Some(-1), None, Some(i64::MIN)]))),
            ("u", Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(9), Some(10), None]))),
            ("b", Arc::new(Int8Array::from(vec![Some(-128), None, Some(99), Some(100)]))),
            ("t", Arc::new(BooleanArray::from(vec![Some(true), Some(false), None, Some(true)]))),
            ("s\"q", Arc::new(StringArray::from(vec![Some("plain"), Some("q\"\\\n\u{1}é"), None, Some("")]))),
            ("v", Arc::new(StringViewArray::from(vec![Some("a long string past twelve bytes"), None, Some("\t"), Some("x")]))),
            ("f", Arc::new(Float64Array::from(vec![Some(1.0), Some(-0.5), Some(1e300), None]))),
            ("l", Arc::new(list)),
            ("n", Arc::new(Int64Array::from(vec![None, None, None, None]))),
        ];
        let schema = Arc::new(Schema::new(cols.iter().map(|(n, c)| Field::new(*n, c.data_type().clone(), true)).collect::<Vec<_>>()));
        let batch = RecordBatch::try_new(schema, cols.into_iter().map(|(_, c)| c).collect()).unwrap();
        assert_eq!(json_rows_size(std::slice::from_ref(&batch)).unwrap(), written(std::slice::from_ref(&batch)));
        // Every subset of columns, so rows with one member or none are covered.
        for mask in 0u32..(1 << batch.num_columns()) {
            let keep: Vec<usize> = (0..batch.num_columns()).filter(|i| mask & (1 << i) != 0).collect();
            let b = batch.project(&keep).unwrap();
            assert_eq!(json_rows_size(&[b.clone(), b.clone()]).unwrap(), written(&[b.clone(), b]), "columns {keep:?}");
        }
    }
}
