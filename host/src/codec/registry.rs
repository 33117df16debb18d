//! A Confluent-compatible schema registry client and its wire format.
//!
//! Contract:
//! - Framing: byte 0 = 0, bytes 1..5 = the schema id (big-endian), then for Protobuf the message
//!   index path (a zigzag varint count, then each index as a zigzag varint; the single byte 0
//!   stands for `[0]`, the file's first message), then the encoded value.
//! - `decode` looks each schema id up once (`GET <url>/schemas/ids/<id>`) and keeps the compiled
//!   schema, or why it does not compile, for the life of the process. A missing id (404) and a
//!   schema that does not compile are the record's fault (`CodecError::Data`); a registry that
//!   cannot be reached after 3 attempts (or answers 5xx) is `CodecError::Unavailable`.
//! - `register` (`POST <url>/subjects/<subject>/versions`) returns the id of a schema, new or
//!   already registered (the registry answers the same id for the same schema).
//! - With `registry_auth`, every request carries its `Authorization` header (basic or bearer);
//!   a 401 or 403 is an error naming the registry, never the credentials.

use super::avro::AvroSchema;
use super::protobuf::ProtoMessage;
use super::{CodecError, Format};
use prost_reflect::DescriptorPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A schema fetched by id, compiled.
#[derive(Debug)]
enum Fetched {
    Avro(AvroSchema),
    Protobuf(DescriptorPool),
}

#[derive(Debug)]
pub struct Registry {
    url: String,
    client: reqwest::Client,
    cache: Mutex<HashMap<u32, Arc<Result<Fetched, String>>>>,
}

/// The wire-format header of schema `id`, with the Protobuf message's index path if any.
pub fn frame(id: u32, index_path: Option<&[i32]>) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    match index_path {
        None => {}
        Some([0]) => out.push(0),
        Some(path) => {
            put_zigzag(&mut out, path.len() as i32);
            path.iter().for_each(|&i| put_zigzag(&mut out, i));
        }
    }
    out
}

fn put_zigzag(out: &mut Vec<u8>, v: i32) {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn get_zigzag(bytes: &mut &[u8]) -> Option<i32> {
    let mut u: u32 = 0;
    for shift in (0..35).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        u |= ((b & 0x7f) as u32) << shift;
        if b & 0x80 == 0 {
            return Some(((u >> 1) as i32) ^ -((u & 1) as i32));
        }
    }
    None
}

/// The Protobuf message index path at the start of `bytes`, and the rest.
fn index_path(mut bytes: &[u8]) -> Option<(Vec<i32>, &[u8])> {
    let n = get_zigzag(&mut bytes)?;
    if n == 0 {
        return Some((vec![0], bytes));
    }
    let path = (0..n).map(|_| get_zigzag(&mut bytes)).collect::<Option<Vec<i32>>>()?;
    Some((path, bytes))
}

impl Registry {
    /// A client of the registry at `url`, sending `auth`'s `Authorization` header when given.
    pub fn new(url: &str, auth: Option<&crate::config::http_auth::Auth>) -> anyhow::Result<Registry> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(a) = auth {
            let mut v = reqwest::header::HeaderValue::from_str(a.header())
                .map_err(|_| anyhow::anyhow!("registry_auth: the credentials are not a valid header value"))?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).default_headers(headers).build()?;
        Ok(Registry { url: url.trim_end_matches('/').to_string(), client, cache: Mutex::new(HashMap::new()) })
    }

    /// Registers `text` (a schema of `format`) under `subject`; returns its id.
    pub fn register(&self, subject: &str, format: Format, text: &str) -> anyhow::Result<u32> {
        let kind = match format {
            Format::Avro => "AVRO",
            Format::Protobuf => "PROTOBUF",
        };
        let url = format!("{}/subjects/{subject}/versions", self.url);
        let body = serde_json::json!({ "schema": text, "schemaType": kind });
        let (status, reply) = crate::state::backend::block_on(async {
            let resp = self.client.post(&url).header("Content-Type", "application/vnd.schemaregistry.v1+json").body(body.to_string()).send().await?;
            Ok::<_, reqwest::Error>((resp.status(), resp.text().await?))
        })
        .map_err(|e| anyhow::anyhow!("schema registry {url}: {e}"))?;
        let id = serde_json::from_str::<serde_json::Value>(&reply).ok().and_then(|v| v["id"].as_u64());
        match id {
            Some(id) if status.is_success() => Ok(id as u32),
            _ => anyhow::bail!("schema registry {url}: registering the schema failed with status {status}: {}", reply.chars().take(300).collect::<String>()),
        }
    }

    /// The JSON form of one value in the wire format.
    pub fn decode(&self, bytes: &[u8]) -> Result<serde_json::Value, CodecError> {
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(CodecError::Data("not in the schema-registry wire format (a zero byte, then a 4-byte schema id)".into()));
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let fetched = self.schema(id)?;
        let data = |e: String| CodecError::Data(format!("schema id {id}: {e}"));
        match &*fetched {
            Err(e) => Err(data(e.clone())),
            Ok(Fetched::Avro(s)) => s.decode(&bytes[5..]).map_err(data),
            Ok(Fetched::Protobuf(pool)) => {
                let (path, rest) = index_path(&bytes[5..]).ok_or_else(|| data("no Protobuf message index after the schema id".into()))?;
                ProtoMessage::by_index_path(pool, "schema.proto", &path).and_then(|m| m.decode(rest)).map_err(data)
            }
        }
    }

    fn schema(&self, id: u32) -> Result<Arc<Result<Fetched, String>>, CodecError> {
        if let Some(s) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(s.clone());
        }
        let fetched = Arc::new(self.fetch(id)?);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(id, fetched.clone());
        Ok(fetched)
    }

    /// Schema `id`, compiled (Err inside: it is the data's fault).
    fn fetch(&self, id: u32) -> Result<Result<Fetched, String>, CodecError> {
        let url = format!("{}/schemas/ids/{id}", self.url);
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            let got = crate::state::backend::block_on(async {
                let resp = self.client.get(&url).send().await?;
                Ok::<_, reqwest::Error>((resp.status(), resp.text().await?))
            });
            match got {
                Ok((status, body)) if status.is_success() => return Ok(compile(&body)),
                Ok((status, _)) if status.as_u16() == 404 => return Ok(Err("the registry has no such schema".into())),
                Ok((status, body)) if matches!(status.as_u16(), 401 | 403) => {
                    return Err(CodecError::Unavailable(format!(
                        "schema registry {url}: status {status}: the registry refused the credentials (set or check registry_auth): {}",
                        body.chars().take(200).collect::<String>()
                    )))
                }
                Ok((status, body)) => last = format!("status {status}: {}", body.chars().take(200).collect::<String>()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(CodecError::Unavailable(format!("schema registry {url}: {last}")))
    }
}

/// A registry's `{"schema": ..., "schemaType": ...}` reply, compiled.
fn compile(body: &str) -> Result<Fetched, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("the registry's reply is not JSON: {e}"))?;
    let text = v["schema"].as_str().ok_or("the registry's reply has no schema")?;
    match v["schemaType"].as_str().unwrap_or("AVRO") {
        "AVRO" => AvroSchema::parse(text).map(Fetched::Avro).map_err(|e| e.to_string()),
        "PROTOBUF" => ProtoMessage::pool_of_source(text).map(Fetched::Protobuf),
        other => Err(format!("schema type {other} is not supported (AVRO and PROTOBUF are)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_index_paths() {
        assert_eq!(frame(7, None), [0, 0, 0, 0, 7]);
        assert_eq!(frame(7, Some(&[0])), [0, 0, 0, 0, 7, 0]);
        let f = frame(1, Some(&[1, 2]));
        assert_eq!(f, [0, 0, 0, 0, 1, 4, 2, 4]);
        assert_eq!(index_path(&f[5..]).unwrap(), (vec![1, 2], &[][..]));
        assert_eq!(index_path(&[0, 9]).unwrap(), (vec![0], &[9][..]));
        let mut big = Vec::new();
        put_zigzag(&mut big, 300);
        assert_eq!(get_zigzag(&mut big.as_slice()), Some(300));
        assert_eq!(index_path(&[0x80]), None, "a truncated varint");
    }

    #[test]
    fn compiles_registry_replies() {
        assert!(matches!(compile(r#"{"schema":"\"string\""}"#), Ok(Fetched::Avro(_))));
        assert!(matches!(compile(r#"{"schema":"syntax = \"proto3\"; message M { int32 a = 1; }","schemaType":"PROTOBUF"}"#), Ok(Fetched::Protobuf(_))));
        assert!(compile(r#"{"schema":"{}","schemaType":"JSON"}"#).unwrap_err().contains("not supported"));
    }
}
