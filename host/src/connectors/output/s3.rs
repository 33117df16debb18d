//! `s3` output: JSON lines, raw values or Parquet files as objects in an S3 bucket, one part
//! object per epoch,
//! exactly once through the commit protocol of `checkpoint::commit`, with a committed marker per
//! part that readers trust.
//!
//! Layout under the output's `prefix` (checkpoint scope `S`: the operator id, or a group session's
//! scope; `E` the epoch, 12 digits; `G` the process's generation):
//! - `parts/S/E-gG.jsonl` (`.txt` for `format: raw`, `.parquet` for `format: parquet`, see
//!   `output::parquet_part`): epoch `E`'s records, uploaded in phase one
//!   (`pre_commit`, at `E`'s aligned barrier), so durability comes before visibility;
//! - `committed/S/E.json`: `{part, records, bytes, xxh3}`, created (create-only) in phase two
//!   ([`S3Committer`], after the decision). **Readers list `committed/` and read the parts the
//!   markers name**: a part without a marker is not output (undecided, or a fenced process's).
//!
//! A replayed commit finds its marker: the same content is success, another content stops the
//! stream (another run's output in the way). Before writing the marker the commit checks that the
//! part is there with the recorded size. At start (`recovered`), a marker of an epoch after the
//! last decided one is refused (it belongs to another run: a wiped state store, or another stream
//! writing to this prefix; mixing would lose or duplicate records), and parts of undecided epochs
//! left by older generations are deleted (the replay writes them again). Parts of decided epochs
//! that no marker names (a fenced process's) are left: invisible to readers.
//!
//! Without `state_management.exactly_once` the output is at-least-once: every flush uploads what
//! was written since the last one as `parts/at-least-once/T-P-N` with its marker at once
//! (T: the run's start in ms, P: the process id, N: a sequence number).
//!
//! **Large epochs go by multipart upload** (`state::backend::multipart`): once an epoch's encoded
//! JSON or raw lines reach `upload_chunk_mb`, they are uploaded as the next part of a multipart
//! upload of the epoch's part key, so memory holds at most one chunk per open epoch. At the
//! barrier the rest is the last part, and the upload id and part tags go into the pre-commit
//! blob; the committer completes the upload after the decision, then writes the marker (a
//! completion that finds no upload is a repeat: the marker write checks the part is there). A
//! Parquet part is built whole at the barrier (its schema comes from all its records) and, when
//! larger than a chunk, uploaded in chunks the same way. At start, uploads left by older
//! generations for undecided epochs, and for epochs that already have a marker, are aborted.
//! Small epochs are one `PutObject` at the barrier, as before.
//!
//! At-least-once, a flush also happens whenever the written records reach a chunk.

use super::{encode_line, Output, OutputFormat};
use crate::checkpoint::{block_on, Committer};
use crate::config::{s3_config, ConfigError, Ctx, RawS3, S3Config, SinkCaps, YPath};
use crate::connectors::registry::{Sink, SinkCx};
use crate::record::Record;
use crate::state::backend::multipart::{Multipart, MIN_PART_BYTES};
use crate::state::backend::{ObjectStore, S3Store, StoreError};
use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// What a part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum S3Format {
    /// JSON lines (as the file output's `json`). default
    #[default]
    Json,
    /// Each value and a newline.
    Raw,
    /// A Parquet file of the records (JSON objects), its schema inferred from the part.
    Parquet,
}

crate::config::named_enum!(S3Format { "json" => Json, "raw" => Raw, "parquet" => Parquet });

impl S3Format {
    fn ext(self) -> &'static str {
        match self {
            S3Format::Json => "jsonl",
            S3Format::Raw => "txt",
            S3Format::Parquet => "parquet",
        }
    }
}

/// `type: s3` output settings.
#[derive(Debug, Clone, PartialEq)]
pub struct S3OutputConfig {
    pub s3: S3Config,
    pub format: S3Format,
    /// Bytes per multipart chunk (and the size from which an epoch is uploaded in chunks).
    pub upload_chunk: usize,
    /// `parquet_schema:`: the columns of every Parquet part; default None (inferred per part).
    pub parquet_schema: Option<datafusion::arrow::datatypes::SchemaRef>,
}

/// `upload_chunk_mb`'s default.
const DEFAULT_CHUNK_MB: u64 = 8;

/// The keys of `state_management.s3_config` (read by the same `config::s3_config`) and `format`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawS3Output {
    bucket: String,
    region: Option<String>,
    prefix: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    endpoint_url: Option<String>,
    format: Option<String>,
    upload_chunk_mb: Option<u64>,
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    parquet_schema: Option<serde_yaml::Mapping>,
}

impl Sink for S3OutputConfig {
    const NAME: &'static str = "s3";
    type Raw = RawS3Output;

    fn from_raw(ctx: &Ctx, raw: RawS3Output, path: &YPath) -> Result<Self, ConfigError> {
        let RawS3Output { bucket, region, prefix, access_key_id, secret_access_key, endpoint_url, format, upload_chunk_mb, parquet_schema } = raw;
        let s3 = s3_config(ctx, RawS3 { bucket, region, prefix, access_key_id, secret_access_key, endpoint_url }, path)?;
        let format = ctx.named(format, &path.key("format"), "format", S3Format::NAMES, S3Format::from_name, S3Format::default())?;
        let chunk_mb = upload_chunk_mb.unwrap_or(DEFAULT_CHUNK_MB);
        let at = path.key("upload_chunk_mb");
        ctx.at_least(&at, chunk_mb, (MIN_PART_BYTES >> 20) as u64)?;
        if chunk_mb > 4096 {
            return Err(ctx.invalid(&at, format!("{at} must be at most 4096 (S3's largest part is 5 GiB), got {chunk_mb}")));
        }
        let at = path.key("parquet_schema");
        let parquet_schema = match parquet_schema {
            Some(_) if format != S3Format::Parquet => return Err(ctx.invalid(&at, format!("{at} needs `format: parquet`"))),
            Some(fields) => Some(super::parquet_part::declared_schema(ctx, fields, &at)?),
            None => None,
        };
        Ok(S3OutputConfig { s3, format, upload_chunk: (chunk_mb << 20) as usize, parquet_schema })
    }

    fn capabilities(&self) -> SinkCaps {
        SinkCaps { commits_after_decision: true, ..SinkCaps::default() }
    }

    fn open(&self, cx: &SinkCx<'_>) -> anyhow::Result<Box<dyn Output>> {
        let s3 = Arc::new(block_on(S3Store::new(&self.s3)).with_context(|| format!("{}: s3 output", cx.sink))?);
        let (store, uploads): (Arc<dyn ObjectStore>, Arc<dyn Multipart>) = (s3.clone(), s3);
        let mode = match (cx.exactly_once, cx.place) {
            (true, Some(at)) => Mode::Epochs { scope: at.scope.to_string(), generation: at.generation },
            _ => Mode::AtLeastOnce { run: format!("{}-{}", crate::util::time::now_ms(), std::process::id()), seq: 0 },
        };
        let (chunk, format, schema) = (self.upload_chunk, self.format, self.parquet_schema.clone());
        Ok(Box::new(S3Out { store, uploads, chunk, format, schema, mode, open: BTreeMap::new(), line: Vec::new(), lines: Vec::new() }))
    }
}

enum Mode {
    Epochs { scope: String, generation: u64 },
    AtLeastOnce { run: String, seq: u64 },
}

/// A committed marker: what readers trust, and what the commit writes and compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub part: String,
    pub records: u64,
    pub bytes: u64,
    pub xxh3: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Blob {
    scope: String,
    parts: Vec<(u64, Marker)>,
    /// Epochs staged as multipart uploads (completed by the commit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    uploads: BTreeMap<u64, Upload>,
}

/// A multipart upload of a part, staged before the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Upload {
    id: String,
    /// (part number, tag), in order.
    tags: Vec<(i32, String)>,
}

/// An epoch's part while its records arrive.
#[derive(Default)]
struct Open {
    /// Encoded records not uploaded yet.
    buf: Vec<u8>,
    records: u64,
    staged: Option<Staging>,
    /// A Parquet part of the declared schema being written (its bytes drained into `buf`).
    parquet: Option<super::parquet_part::Streaming>,
}

/// The chunks of an open epoch uploaded so far.
struct Staging {
    upload: Upload,
    bytes: u64,
    hash: Xxh3,
}

pub struct S3Out {
    store: Arc<dyn ObjectStore>,
    uploads: Arc<dyn Multipart>,
    /// Multipart chunk size (`upload_chunk_mb`).
    chunk: usize,
    format: S3Format,
    /// `parquet_schema:`, when declared.
    schema: Option<datafusion::arrow::datatypes::SchemaRef>,
    mode: Mode,
    /// Open parts per epoch (one entry, epoch 0, when at-least-once).
    open: BTreeMap<u64, Open>,
    line: Vec<u8>,
    /// The lines of a write, for a declared Parquet schema.
    lines: Vec<u8>,
}

/// Uploads `data` as the next chunk of `open`'s multipart upload of `key` (started here when it
/// has none yet).
fn push_chunk(uploads: &dyn Multipart, key: &str, open: &mut Open, data: Bytes) -> anyhow::Result<()> {
    let staged = match &mut open.staged {
        Some(s) => s,
        None => {
            let id = block_on(uploads.begin(key)).with_context(|| format!("s3 output: starting the upload of {key}"))?;
            open.staged.insert(Staging { upload: Upload { id, tags: Vec::new() }, bytes: 0, hash: Xxh3::new() })
        }
    };
    let number = staged.upload.tags.len() as i32 + 1;
    staged.hash.update(&data);
    staged.bytes += data.len() as u64;
    let tag = block_on(uploads.part(key, &staged.upload.id, number, data)).with_context(|| format!("s3 output: uploading chunk {number} of {key}"))?;
    staged.upload.tags.push((number, tag));
    Ok(())
}

/// The epoch of a part or marker key (`.../<epoch, 12 digits>...`).
fn epoch_of(key: &str) -> Option<u64> {
    key.rsplit('/').next().and_then(|n| n.get(..12)).and_then(|e| e.parse::<u64>().ok())
}

fn marker_key(scope: &str, epoch: u64) -> String {
    format!("committed/{scope}/{epoch:012}.json")
}

impl S3Out {
    fn upload(&self, key: &str, data: Vec<u8>) -> anyhow::Result<()> {
        let store = self.store.clone();
        let k = key.to_string();
        block_on(async move { store.put(&k, Bytes::from(data)).await }).with_context(|| format!("s3 output: uploading {key} to {}", self.store.describe()))
    }

    /// Appends `records` to `epoch`'s part: as lines (Parquet parts are built from JSON lines,
    /// so their records must be JSON objects), or with a declared schema, as Parquet bytes.
    fn encode(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        let Open { buf, records: n, parquet, .. } = self.open.entry(epoch).or_default();
        let buf = match &self.schema {
            Some(schema) => {
                if parquet.is_none() {
                    *parquet = Some(super::parquet_part::Streaming::new(schema.clone(), self.chunk)?);
                }
                self.lines.clear();
                &mut self.lines
            }
            None => buf,
        };
        for r in records {
            self.line.clear();
            match self.format {
                S3Format::Raw => encode_line(&mut self.line, r, OutputFormat::Raw),
                S3Format::Json => encode_line(&mut self.line, r, OutputFormat::Json),
                S3Format::Parquet => {
                    let v = r.value.as_deref().unwrap_or_default();
                    if !crate::util::json::is_object(v) {
                        anyhow::bail!(
                            "s3 output: the record at partition {} offset {} is not a JSON object, so it cannot be a Parquet row: {}",
                            r.partition,
                            r.offset,
                            String::from_utf8_lossy(&v[..v.len().min(200)])
                        );
                    }
                    encode_line(&mut self.line, r, OutputFormat::Json)
                }
            }
            buf.extend_from_slice(&self.line);
            *n += 1;
        }
        let open = self.open.get_mut(&epoch).expect("open epoch");
        if let Some(parquet) = &mut open.parquet {
            parquet.push_records(&self.lines, records).context("s3 output: writing a Parquet part")?;
            parquet.drain_into(&mut open.buf);
        }
        if self.open[&epoch].buf.len() >= self.chunk && (self.format != S3Format::Parquet || self.schema.is_some()) {
            match self.mode {
                Mode::Epochs { .. } => self.stage_chunk(epoch)?,
                Mode::AtLeastOnce { .. } => self.flush()?,
            }
        }
        Ok(())
    }

    /// The key of `epoch`'s part (exactly-once).
    fn part_key(&self, epoch: u64) -> String {
        match &self.mode {
            Mode::Epochs { scope, generation } => format!("parts/{scope}/{epoch:012}-g{generation}.{}", self.format.ext()),
            Mode::AtLeastOnce { .. } => unreachable!("at-least-once parts are named per flush"),
        }
    }

    /// Uploads `epoch`'s buffered lines as the next chunk of its multipart upload.
    fn stage_chunk(&mut self, epoch: u64) -> anyhow::Result<()> {
        let key = self.part_key(epoch);
        let open = self.open.get_mut(&epoch).expect("open epoch");
        let data = Bytes::from(std::mem::take(&mut open.buf));
        push_chunk(&*self.uploads, &key, open, data)
    }

    /// Stages `epoch`'s part: the rest of its multipart upload, or the whole part (by multipart
    /// when larger than a chunk). Returns its marker and, for a multipart upload, the upload.
    fn stage_part(&mut self, epoch: u64) -> anyhow::Result<(Marker, Option<Upload>)> {
        let key = self.part_key(epoch);
        let mut open = self.open.remove(&epoch).expect("open epoch");
        self.finish(&mut open)?;
        if open.staged.is_none() && open.buf.len() <= self.chunk {
            let marker = Marker { part: key.clone(), records: open.records, bytes: open.buf.len() as u64, xxh3: xxh3_64(&open.buf) };
            self.upload(&key, open.buf)?;
            return Ok((marker, None));
        }
        let rest = Bytes::from(std::mem::take(&mut open.buf));
        for at in (0..rest.len()).step_by(self.chunk) {
            push_chunk(&*self.uploads, &key, &mut open, rest.slice(at..(at + self.chunk).min(rest.len())))?;
        }
        let staged = open.staged.expect("a multipart part has a chunk");
        Ok((Marker { part: key, records: open.records, bytes: staged.bytes, xxh3: staged.hash.digest() }, Some(staged.upload)))
    }

    /// Ends `open`'s part: its lines stay as they are; a Parquet part is built from its lines
    /// (inferred schema) or gets its last row group and footer (declared).
    fn finish(&self, open: &mut Open) -> anyhow::Result<()> {
        let ctx = "s3 output: writing a Parquet part";
        match (self.format, open.parquet.take()) {
            (S3Format::Parquet, Some(p)) => open.buf.extend(p.finish().context(ctx)?),
            (S3Format::Parquet, None) => open.buf = super::parquet_part::from_json_lines(&open.buf).context(ctx)?,
            (S3Format::Json | S3Format::Raw, _) => {}
        }
        Ok(())
    }
}

impl Output for S3Out {
    fn write_batch(&mut self, records: &[Record]) -> anyhow::Result<()> {
        match self.mode {
            Mode::AtLeastOnce { .. } => self.encode(0, records),
            Mode::Epochs { .. } => anyhow::bail!("exactly-once s3 output needs the epoch of every record"),
        }
    }

    fn write_epoch(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        match self.mode {
            Mode::AtLeastOnce { .. } => self.write_batch(records),
            Mode::Epochs { .. } => self.encode(epoch, records),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let Mode::AtLeastOnce { run, seq } = &mut self.mode else { return Ok(()) };
        let Some(mut open) = self.open.remove(&0) else { return Ok(()) };
        *seq += 1;
        let (name, ext) = (format!("{run}-{seq:08}"), self.format.ext());
        let (part, records) = (format!("parts/at-least-once/{name}.{ext}"), open.records);
        self.finish(&mut open)?;
        let data = open.buf;
        let marker = Marker { part: part.clone(), records, bytes: data.len() as u64, xxh3: xxh3_64(&data) };
        self.upload(&part, data)?;
        self.upload(&format!("committed/at-least-once/{name}.json"), serde_json::to_vec(&marker)?)
    }

    fn pre_commit(&mut self, epoch: u64) -> anyhow::Result<Option<serde_json::Value>> {
        let Mode::Epochs { scope, .. } = &self.mode else { return self.flush().map(|()| None) };
        let scope = scope.clone();
        let ready: Vec<u64> = self.open.range(..=epoch).map(|(e, _)| *e).collect();
        let (mut parts, mut uploads) = (Vec::with_capacity(ready.len()), BTreeMap::new());
        for e in ready {
            let (marker, upload) = self.stage_part(e)?;
            parts.push((e, marker));
            if let Some(u) = upload {
                uploads.insert(e, u);
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::to_value(Blob { scope, parts, uploads })?))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(S3Committer { store: self.store.clone(), uploads: self.uploads.clone() }))
    }

    fn recovered(&mut self, last_decided: Option<u64>) -> anyhow::Result<()> {
        let Mode::Epochs { scope, generation } = &self.mode else { return Ok(()) };
        let (store, scope, generation) = (self.store.clone(), scope.clone(), *generation);
        let (markers, parts) = block_on(async {
            let m = store.list(&format!("committed/{scope}/")).await?;
            let p = store.list(&format!("parts/{scope}/")).await?;
            Ok::<_, StoreError>((m, p))
        })
        .with_context(|| format!("s3 output: listing {}", store.describe()))?;
        if let Some(m) = markers.iter().find(|m| epoch_of(&m.key).is_some_and(|e| last_decided.is_none_or(|d| e > d))) {
            anyhow::bail!(
                "s3 output: {}/{} is the committed output of an epoch this stream's state {}: it belongs to another run (a wiped or `memory` state store, or another stream writing to this prefix). Move the old output away or write to another prefix; mixing them would lose or duplicate records",
                store.describe(),
                m.key,
                match last_decided {
                    Some(d) => format!("never decided (last decided: {d})"),
                    None => "never decided (it has no decided checkpoint)".into(),
                }
            );
        }
        // An undecided epoch's part or upload of an older generation: the replay stages it again.
        let replayed = |key: &str| {
            let undecided = epoch_of(key).is_some_and(|e| last_decided.is_none_or(|d| e > d));
            undecided && key.rsplit_once("-g").and_then(|(_, g)| g.split('.').next()?.parse::<u64>().ok()).is_none_or(|g| g < generation)
        };
        for p in parts.iter().filter(|p| replayed(&p.key)) {
            block_on(store.delete(&p.key)).with_context(|| format!("s3 output: deleting the undecided part {}", p.key))?;
        }
        // Uploads never completed: replayed ones, and those of an epoch whose marker exists (that
        // marker names the upload that was completed).
        let marked: std::collections::BTreeSet<u64> = markers.iter().filter_map(|m| epoch_of(&m.key)).collect();
        let pending =
            block_on(self.uploads.pending(&format!("parts/{scope}/"))).with_context(|| format!("s3 output: listing the uploads in {}", store.describe()))?;
        for u in pending.iter().filter(|u| replayed(&u.key) || epoch_of(&u.key).is_some_and(|e| marked.contains(&e))) {
            block_on(self.uploads.abort(&u.key, &u.upload_id)).with_context(|| format!("s3 output: aborting the abandoned upload of {}", u.key))?;
        }
        Ok(())
    }
}

#[path = "s3_commit.rs"]
mod commit;
pub use commit::S3Committer;

#[cfg(test)]
#[path = "s3_tests.rs"]
mod tests;
