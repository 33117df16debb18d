//! Parquet parts for object-store outputs: the JSON-object lines an epoch (or a flush) wrote,
//! as one Parquet file.
//!
//! Contract:
//! - Inferred ([`from_json_lines`]): the schema comes from the part's own records (every field
//!   any record has; a field whose records disagree on a scalar type widens: integers with floats
//!   to float64, anything else to string; objects become structs, arrays lists), so parts differ
//!   only as their data does. The whole part is built at once.
//! - Declared ([`Streaming`], the output's `parquet_schema:`, parsed by [`declared_schema`]):
//!   every part has exactly the declared columns, in the declared order. Records are decoded as
//!   they arrive, and the file's bytes come out row group by row group ([`Streaming::drain_into`]),
//!   so a part need not be held whole. Fields the schema does not name are ignored; a missing
//!   field is null; a value of another type is an error naming the field.
//! - Records missing a field hold null there. Columns are Snappy-compressed, in row groups of at
//!   most 65,536 rows. A line that is not a JSON object is refused by the caller before it gets
//!   here (see `s3`).

use crate::config::{ConfigError, Ctx, YPath};
use arrow_json::reader::{infer_json_schema, Decoder, ReaderBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::io::Cursor;
use std::sync::Arc;

/// Rows per Arrow batch and per Parquet row group, at most.
const ROWS: usize = 65_536;

fn props() -> WriterProperties {
    WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(ROWS)).build()
}

/// `lines` (JSON objects, one per line) as the bytes of a Parquet file.
pub(crate) fn from_json_lines(lines: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (schema, _) = infer_json_schema(Cursor::new(lines), None).map_err(|e| anyhow::anyhow!("inferring the Parquet schema: {e}"))?;
    let schema = Arc::new(schema);
    let reader = ReaderBuilder::new(schema.clone()).with_batch_size(ROWS).build(Cursor::new(lines))?;
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props()))?;
    for batch in reader {
        writer.write(&batch.map_err(|e| anyhow::anyhow!("reading the records as {e}"))?)?;
    }
    Ok(writer.into_inner()?)
}

/// The type names `parquet_schema:` takes, and their Arrow types.
const TYPES: &[&str] = &["bool", "int32", "int64", "uint64", "float32", "float64", "string", "timestamp_ms", "timestamp_us", "date"];

fn type_of(name: &str) -> Option<DataType> {
    Some(match name {
        "bool" => DataType::Boolean,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "string" => DataType::Utf8,
        "timestamp_ms" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "timestamp_us" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "date" => DataType::Date32,
        _ => return None,
    })
}

/// `parquet_schema:` (at `at`): a mapping of field names to type names, in column order.
pub(crate) fn declared_schema(ctx: &Ctx, fields: serde_yaml::Mapping, at: &YPath) -> Result<SchemaRef, ConfigError> {
    if fields.is_empty() {
        return Err(ctx.invalid(at, format!("{at} must name at least one field (`{{id: int64, user: string}}`)")));
    }
    let mut out = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        let (Some(name), Some(ty)) = (k.as_str(), v.as_str()) else {
            return Err(ctx.invalid(at, format!("{at} maps field names to type names ({})", TYPES.join(", "))));
        };
        let Some(dt) = type_of(ty) else {
            return Err(ctx.unknown_name(&at.key(name), "Parquet column type", ty, TYPES));
        };
        out.push(Field::new(name, dt, true));
    }
    Ok(Arc::new(Schema::new(out)))
}

/// A Parquet file of a declared schema, written as its records arrive (see the module docs).
pub(crate) struct Streaming {
    schema: SchemaRef,
    decoder: Decoder,
    writer: ArrowWriter<Vec<u8>>,
    /// A row group is closed once its encoded size reaches this many bytes (or `ROWS` rows).
    group_bytes: usize,
}

impl Streaming {
    /// A file of `schema` whose row groups close at `group_bytes` encoded bytes (or 65,536 rows).
    pub(crate) fn new(schema: SchemaRef, group_bytes: usize) -> anyhow::Result<Self> {
        let decoder = ReaderBuilder::new(schema.clone()).with_batch_size(ROWS).build_decoder()?;
        Ok(Streaming { decoder, writer: ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props()))?, schema, group_bytes })
    }

    /// Adds `lines` (JSON objects, newline-separated): decoded and encoded into the current row
    /// group at once, so memory holds encoded columns, not rows.
    pub(crate) fn push(&mut self, mut lines: &[u8]) -> anyhow::Result<()> {
        while !lines.is_empty() {
            let used = self.decoder.decode(lines)?;
            lines = &lines[used..];
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> anyhow::Result<()> {
        if let Some(batch) = self.decoder.flush()? {
            self.writer.write(&batch)?;
            if self.writer.in_progress_size() >= self.group_bytes {
                self.writer.flush()?;
            }
        }
        Ok(())
    }

    /// Moves the file's bytes written so far (whole row groups) to the end of `out`.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.append(self.writer.inner_mut());
    }

    /// The rest of the file: the last row group and the footer.
    pub(crate) fn finish(mut self) -> anyhow::Result<Vec<u8>> {
        self.write()?;
        Ok(self.writer.into_inner()?)
    }
}

impl Streaming {
    /// Adds `lines`, the JSON lines of `records` (one each, in order). When they do not fit the
    /// schema, the error names the first record that does not and why.
    pub(crate) fn push_records(&mut self, lines: &[u8], records: &[crate::record::Record]) -> anyhow::Result<()> {
        let Err(e) = self.push(lines) else { return Ok(()) };
        let schema = self.schema.clone();
        for (line, r) in lines.split(|b| *b == b'\n').zip(records) {
            let Ok(mut d) = ReaderBuilder::new(schema.clone()).build_decoder() else { break };
            if let Err(why) = d.decode(line).and_then(|_| d.flush()) {
                anyhow::bail!("the record at partition {} offset {} does not fit `parquet_schema`: {why}", r.partition, r.offset);
            }
        }
        Err(e)
    }
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

    fn s3_config(schema: &str) -> Result<crate::config::EngineConfig, crate::config::ConfigError> {
        let text = format!(
            "streams:\n  - input: {{type: stdin}}\n    output:\n      type: s3\n      bucket: b\n      format: parquet\n      parquet_schema: {schema}\n"
        );
        crate::config::EngineConfig::from_yaml_str(&text, Some(std::path::Path::new("config.yaml")))
    }

    #[test]
    fn a_declared_schema_is_parsed_in_order_and_bad_ones_are_located() {
        let cfg = s3_config("{id: int64, at: timestamp_ms, who: string, ok: bool}").unwrap();
        let s3 = cfg.streams[0].output.get::<super::super::s3::S3OutputConfig>().unwrap();
        let schema = s3.parquet_schema.as_ref().unwrap();
        let got: Vec<(&str, &DataType)> = schema.fields().iter().map(|f| (f.name().as_str(), f.data_type())).collect();
        assert_eq!(
            got,
            [("id", &DataType::Int64), ("at", &DataType::Timestamp(TimeUnit::Millisecond, None)), ("who", &DataType::Utf8), ("ok", &DataType::Boolean)]
        );
        let e = s3_config("{id: int46}").unwrap_err().to_string();
        assert!(e.starts_with("config.yaml:7:28: unknown Parquet column type `int46`") && e.contains("did you mean `int64`?"), "{e}");
        let e = s3_config("{}").unwrap_err().to_string();
        assert!(e.starts_with("config.yaml:7:23: ") && e.contains("must name at least one field"), "{e}");
        let text = "streams:\n  - input: {type: stdin}\n    output: {type: s3, bucket: b, parquet_schema: {id: int64}}\n";
        let e = crate::config::EngineConfig::from_yaml_str(text, Some(std::path::Path::new("config.yaml"))).unwrap_err().to_string();
        assert!(e.contains("parquet_schema needs `format: parquet`"), "{e}");
    }

    #[test]
    fn a_declared_schema_streams_row_groups_and_ends_with_the_footer() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("who", DataType::Utf8, true)]));
        let mut w = Streaming::new(schema, usize::MAX).unwrap();
        let mut file = Vec::new();
        let mut lines = Vec::new();
        for i in 0..200_000u64 {
            lines.extend_from_slice(format!("{{\"id\":{i},\"who\":\"u{}\",\"extra\":true}}\n", i % 9).as_bytes());
            if i % 10_000 == 9_999 {
                w.push(&lines).unwrap();
                lines.clear();
                w.drain_into(&mut file);
            }
        }
        assert!(file.len() > 4, "whole row groups came out before the end");
        file.extend(w.finish().unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(file)).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 4, "65,536 rows a row group");
        let ids: Vec<i64> = reader.build().unwrap().flat_map(|b| b.unwrap().column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(ids, (0..200_000).collect::<Vec<i64>>());
    }
}
