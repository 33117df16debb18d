//! The `postgres` output's COPY path: JSON objects encoded on the host as rows of PostgreSQL's
//! COPY text format and streamed through one `COPY ... FROM STDIN` per flush ([`Streaming`]), which the server parses several
//! times faster than it populates rows from `jsonb` (the statement path of `postgres_sql`).
//!
//! Contract: a row holds, per column in the target's order, the object's field of that name
//! (the last one when a name repeats): `\N` when it is missing or JSON `null`; the string's
//! characters for a JSON string (escaped for COPY); the JSON text for anything else (numbers,
//! booleans, objects and arrays alike), so the server converts each value as it would the
//! same field through `jsonb_populate_record`. A `json`/`jsonb` column gets the field's JSON
//! text as is. Targets with an array or composite column are left to the statement path,
//! whose conversion of JSON arrays and objects into those types COPY text cannot express.

use crate::util::json::Text;
use bytes::Bytes;
use futures::SinkExt;

/// Bytes per COPY data message, at most.
const MESSAGE_BYTES: usize = 1 << 20;

/// The columns a COPY row fills, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fields {
    /// Unquoted column names.
    pub names: Vec<String>,
    /// Whether each column is `json` or `jsonb` (it takes JSON text, strings included).
    pub json: Vec<bool>,
}

/// Rows encoded for COPY, and their count.
#[derive(Default)]
pub(super) struct CopyRows {
    pub buf: Vec<u8>,
    pub records: u64,
}

impl Fields {
    /// Appends the COPY row of `value`; the reason when it is not a JSON object.
    pub fn encode(&self, rows: &mut CopyRows, value: &[u8]) -> Result<(), String> {
        std::str::from_utf8(value).map_err(|e| format!("not UTF-8 ({e})"))?;
        let fields = crate::util::json::try_raw_fields(value, &self.names).map_err(|e| format!("not a JSON object ({e})"))?;
        let out = &mut rows.buf;
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            let raw = match field {
                Some(raw) if raw != "null" => raw,
                _ => {
                    out.extend_from_slice(b"\\N");
                    continue;
                }
            };
            if raw.starts_with('"') && !self.json[i] {
                let s = serde_json::from_str::<Text<'_>>(raw).map_err(|e| format!("field {}: {e}", self.names[i]))?.0;
                escape(out, &s);
            } else {
                escape(out, raw);
            }
        }
        out.push(b'\n');
        rows.records += 1;
        Ok(())
    }
}

/// `s` in COPY text format: backslash, newline, carriage return and tab escaped.
fn escape(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if !b.iter().any(|c| matches!(c, b'\\' | b'\n' | b'\r' | b'\t')) {
        out.extend_from_slice(b);
        return;
    }
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => out.push(c),
        }
    }
}

/// One `COPY ... FROM STDIN` kept open across batches, so that the server parses rows while the
/// stream encodes the next ones; the statements around it run on the same connection.
pub(super) struct Streaming {
    sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<Bytes>>>,
    /// Rows sent so far.
    pub records: u64,
    after: Option<String>,
}

impl Streaming {
    /// Runs `st.before` (in a transaction that `finish` commits) and opens `st.copy` on `pg`'s
    /// connection.
    pub async fn start(pg: &super::sql::Pg, st: super::sql::CopyStatements) -> Result<Streaming, tokio_postgres::Error> {
        let sink = pg
            .run(async |c| {
                if let Some(before) = &st.before {
                    c.batch_execute(&format!("BEGIN; {before}")).await?;
                }
                c.copy_in::<_, Bytes>(&st.copy).await
            })
            .await?;
        Ok(Streaming { sink: Box::pin(sink), records: 0, after: st.after.map(|a| format!("{a}; COMMIT")) })
    }

    /// Sends `rows` (whole rows) to the server, waiting only while its buffers are full.
    pub async fn send(&mut self, rows: CopyRows) -> Result<(), tokio_postgres::Error> {
        feed(self.sink.as_mut(), Bytes::from(rows.buf)).await?;
        self.records += rows.records;
        Ok(())
    }

    /// Ends the COPY and runs `after`; the number of rows the COPY took.
    pub async fn finish(mut self, pg: &super::sql::Pg) -> Result<u64, tokio_postgres::Error> {
        let copied = self.sink.as_mut().finish().await?;
        if let Some(after) = &self.after {
            pg.run(async |c| c.batch_execute(after).await).await?;
        }
        Ok(copied)
    }
}

/// Queues `rows` on `sink` in COPY data messages of at most [`MESSAGE_BYTES`] (a message need
/// not end at a row), waiting only while the connection's buffers are full.
async fn feed(mut sink: std::pin::Pin<&mut tokio_postgres::CopyInSink<Bytes>>, all: Bytes) -> Result<(), tokio_postgres::Error> {
    let mut at = 0;
    while at < all.len() {
        let end = (at + MESSAGE_BYTES).min(all.len());
        sink.feed(all.slice(at..end)).await?;
        at = end;
    }
    Ok(())
}

/// COPY rows of epochs staged but not committed yet, by (epoch, generation): phase two copies
/// them from here instead of reading them back from the staging table.
pub(super) type Cache = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(u64, u64), Vec<u8>>>>;

/// `buf` (whole rows) cut at row ends into pieces of at most `max` bytes (a longer row alone).
pub(super) fn chunks(buf: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let cut = match rest.len() <= max {
            true => rest.len(),
            false => match rest[..max].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1),
            },
        };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

/// Runs `st` (inside the caller's transaction) with `rows`; the number of rows the COPY took.
pub(super) async fn copy_all(c: &tokio_postgres::Client, st: &super::sql::CopyStatements, rows: Bytes) -> Result<u64, tokio_postgres::Error> {
    if let Some(before) = &st.before {
        c.batch_execute(before).await?;
    }
    let sink = c.copy_in::<_, Bytes>(&st.copy).await?;
    let mut sink = std::pin::pin!(sink);
    feed(sink.as_mut(), rows).await?;
    let n = sink.as_mut().finish().await?;
    if let Some(after) = &st.after {
        c.batch_execute(after).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &[bool], values: &[&str]) -> Result<String, String> {
        let names = ["id", "who", "doc"].iter().take(json.len()).map(|s| s.to_string()).collect();
        let f = Fields { names, json: json.to_vec() };
        let mut r = CopyRows::default();
        for v in values {
            f.encode(&mut r, v.as_bytes())?;
        }
        assert_eq!(r.records as usize, values.len());
        Ok(String::from_utf8(r.buf).unwrap())
    }

    #[test]
    fn objects_become_copy_text_rows() {
        let got = rows(&[false, false, true], &[r#"{"id":1,"who":"a\tb\\c\nd","doc":{"x":"y"}}"#, r#"{"who":null,"doc":"s","id":2.5e1}"#, r#"{}"#]).unwrap();
        assert_eq!(got, "1\ta\\tb\\\\c\\nd\t{\"x\":\"y\"}\n2.5e1\t\\N\t\"s\"\n\\N\t\\N\t\\N\n");
        let nested = rows(&[false, false], &[r#"{"id":[1,2],"who":{"k":"v\n"},"extra":7}"#]).unwrap();
        assert_eq!(nested, "[1,2]\t{\"k\":\"v\\\\n\"}\n", "arrays and objects go as JSON text; unknown fields are ignored");
        assert_eq!(rows(&[false], &[r#"{"id":"\u00e9\"q"}"#]).unwrap(), "é\"q\n");
        assert_eq!(rows(&[false], &[r#"{"id":1,"id":2}"#]).unwrap(), "2\n", "the last of a repeated name wins, as in jsonb");
    }

    #[test]
    fn chunks_end_at_row_ends() {
        let buf = b"aa\nbbbb\ncc\nd\n";
        assert_eq!(chunks(buf, 8), [&b"aa\nbbbb\n"[..], b"cc\nd\n"]);
        assert_eq!(chunks(buf, 2), [&b"aa\n"[..], b"bbbb\n", b"cc\n", b"d\n"], "a row longer than the limit goes alone");
        assert_eq!(chunks(buf, 100), [&buf[..]]);
        assert!(chunks(b"", 4).is_empty());
    }

    #[test]
    fn a_value_that_is_not_an_object_is_refused() {
        assert!(rows(&[false], &["[1]"]).unwrap_err().contains("not a JSON object"));
        assert!(rows(&[false], &["{\"id\":"]).unwrap_err().contains("not a JSON object"));
        assert!(rows(&[false], &["7"]).unwrap_err().contains("not a JSON object"));
    }
}
