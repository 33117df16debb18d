//! Parquet parts for object-store outputs: the JSON-object lines an epoch (or a flush) wrote,
//! as one Parquet file.
//!
//! Contract: the schema is inferred from the part's own records (every field any record has;
//! a field whose records disagree on a scalar type widens: integers with floats to float64,
//! anything else to string; objects become structs, arrays lists), so parts differ only as their
//! data does. Records missing a field hold null there. Columns are Snappy-compressed, in row
//! groups of at most 65,536 rows. A line that is not a JSON object is refused by the caller
//! before it gets here (see `s3`).

use arrow_json::reader::{infer_json_schema, ReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::io::Cursor;
use std::sync::Arc;

/// Rows per Arrow batch and per Parquet row group, at most.
const ROWS: usize = 65_536;

/// `lines` (JSON objects, one per line) as the bytes of a Parquet file.
pub(crate) fn from_json_lines(lines: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (schema, _) = infer_json_schema(Cursor::new(lines), None).map_err(|e| anyhow::anyhow!("inferring the Parquet schema: {e}"))?;
    let schema = Arc::new(schema);
    let reader = ReaderBuilder::new(schema.clone()).with_batch_size(ROWS).build(Cursor::new(lines))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(ROWS)).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    for batch in reader {
        writer.write(&batch.map_err(|e| anyhow::anyhow!("reading the records as {e}"))?)?;
    }
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn records_become_typed_columns_with_nulls_for_missing_fields() {
        let lines = b"{\"id\":1,\"who\":\"a\",\"amount\":2}\n{\"id\":2,\"amount\":2.5,\"tags\":[\"x\"]}\n";
        let bytes = from_json_lines(lines).unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let schema = b.schema();
        assert_eq!(schema.field_with_name("id").unwrap().data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("amount").unwrap().data_type(), &DataType::Float64, "an integer and a float widen to float64");
        assert!(matches!(schema.field_with_name("tags").unwrap().data_type(), DataType::List(_)));
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        assert_eq!((ids.value(0), ids.value(1)), (1, 2));
        let amounts = b.column_by_name("amount").unwrap().as_primitive::<Float64Type>();
        assert_eq!((amounts.value(0), amounts.value(1)), (2.0, 2.5));
        let who = b.column_by_name("who").unwrap();
        assert_eq!((who.as_string::<i32>().value(0), who.is_null(1)), ("a", true), "a missing field is null");
    }
}
