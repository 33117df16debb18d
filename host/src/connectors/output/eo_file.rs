//! Exactly-once `file` output (main or error output): one part file per epoch, through the
//! commit protocol of `checkpoint::commit`.
//!
//! Records of epoch `e` go to the temp file `.{name}.{e:012}.g{generation}.tmp` beside `path`,
//! hashed (xxh3) as they are written. Phase one (`pre_commit`, at `e`'s aligned barrier) flushes
//! and fsyncs it and returns `{"parts": [{temp, final, len, xxh3}]}`; phase two
//! ([`FileCommitter`], after the decision) renames it to `{path}.{e:012}`. The commit checks what
//! it finds: a final part that is already there must have the recorded length and checksum (an
//! earlier run of this commit), anything else stops the stream with an error naming both files;
//! a temp file is cut back to the recorded length and, on replay, verified before the rename;
//! neither file present means the part was finalized and then consumed downstream, which counts
//! as committed. The rename is atomic: the temp vanishes as the final part appears, so a temp
//! that is still there was never finalized (a link-then-unlink left both for a moment, and a
//! kill in that moment, with the part consumed downstream, made the replay write it twice).
//! Names are deterministic per epoch; the generation in temp names keeps a fenced older process
//! from writing into a newer one's files.
//!
//! At start (`recovered`, after recovery committed the last decision): temp files no decision
//! covers are deleted (replay produces them again), and a final part of an epoch after the last
//! decision is refused: it belongs to another run (a wiped or memory state store, another stream
//! writing to this path), and mixing would lose or duplicate records.

use super::OutputFormat;
use super::{encode_line, Output};
use crate::checkpoint::{CommitError, Committer};
use crate::record::Record;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use xxhash_rust::xxh3::Xxh3;

/// One prepared part, as stored in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub temp: String,
    #[serde(rename = "final")]
    pub final_path: String,
    pub len: u64,
    pub xxh3: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Blob {
    parts: Vec<Part>,
}

struct OpenPart {
    w: std::io::BufWriter<std::fs::File>,
    tmp: PathBuf,
    len: u64,
    hash: Xxh3,
}

pub struct EoFileOut {
    path: PathBuf,
    format: OutputFormat,
    generation: u64,
    open: BTreeMap<u64, OpenPart>,
    line: Vec<u8>,
}

impl EoFileOut {
    pub fn open(path: &Path, format: OutputFormat, generation: u64) -> anyhow::Result<Self> {
        let dir = parent(path);
        std::fs::create_dir_all(&dir).with_context(|| format!("file output: creating {}", dir.display()))?;
        Ok(EoFileOut { path: path.to_path_buf(), format, generation, open: BTreeMap::new(), line: Vec::with_capacity(256) })
    }

    /// The final name of epoch `e`'s part.
    pub fn part_path(path: &Path, epoch: u64) -> PathBuf {
        parent(path).join(format!("{}.{epoch:012}", file_name(path)))
    }

    fn temp_path(&self, epoch: u64) -> PathBuf {
        parent(&self.path).join(format!(".{}.{epoch:012}.g{}.tmp", file_name(&self.path), self.generation))
    }
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into())
}

fn sync_dir(dir: &Path) {
    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
}

impl Output for EoFileOut {
    fn write_batch(&mut self, _records: &[Record]) -> anyhow::Result<()> {
        anyhow::bail!("exactly-once file output needs the epoch of every record")
    }

    fn write_epoch(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        if !self.open.contains_key(&epoch) {
            let tmp = self.temp_path(epoch);
            let f = std::fs::File::create(&tmp).with_context(|| format!("file output: creating {}", tmp.display()))?;
            self.open.insert(epoch, OpenPart { w: std::io::BufWriter::with_capacity(1 << 20, f), tmp, len: 0, hash: Xxh3::new() });
        }
        let p = self.open.get_mut(&epoch).expect("opened");
        for r in records {
            self.line.clear();
            encode_line(&mut self.line, r, self.format);
            p.w.write_all(&self.line).with_context(|| format!("file output {}", p.tmp.display()))?;
            p.hash.update(&self.line);
            p.len += self.line.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for p in self.open.values_mut() {
            p.w.flush().with_context(|| format!("file output {}", p.tmp.display()))?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> anyhow::Result<Option<serde_json::Value>> {
        let ready: Vec<u64> = self.open.range(..=epoch).map(|(e, _)| *e).collect();
        let mut parts = Vec::with_capacity(ready.len());
        for e in ready {
            let p = self.open.remove(&e).expect("listed");
            let f = p.w.into_inner().map_err(|e| anyhow::anyhow!("file output: flushing: {e}"))?;
            f.sync_all().with_context(|| format!("file output: fsync {}", p.tmp.display()))?;
            parts.push(Part {
                temp: p.tmp.to_string_lossy().into_owned(),
                final_path: Self::part_path(&self.path, e).to_string_lossy().into_owned(),
                len: p.len,
                xxh3: p.hash.digest(),
            });
        }
        if parts.is_empty() {
            return Ok(None);
        }
        sync_dir(&parent(&self.path));
        Ok(Some(serde_json::to_value(Blob { parts })?))
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(FileCommitter))
    }

    fn recovered(&mut self, last_decided: Option<u64>) -> anyhow::Result<()> {
        let dir = parent(&self.path);
        let name = file_name(&self.path);
        let (temp_prefix, final_prefix) = (format!(".{name}."), format!("{name}."));
        for entry in std::fs::read_dir(&dir).with_context(|| format!("file output: listing {}", dir.display()))? {
            let entry = entry?;
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with(&temp_prefix) && n.ends_with(".tmp") {
                // Only older generations' temps: a newer generation's are live parts of the process
                // that fenced this one (this start may be a paused process resuming its cleanup).
                let generation = n.strip_suffix(".tmp").and_then(|t| t.rsplit_once(".g")).and_then(|(_, g)| g.parse::<u64>().ok());
                if generation.is_none_or(|g| g < self.generation) {
                    std::fs::remove_file(entry.path()).with_context(|| format!("removing stale {}", entry.path().display()))?;
                }
                continue;
            }
            let Some(epoch) = n.strip_prefix(&final_prefix).filter(|e| e.len() == 12).and_then(|e| e.parse::<u64>().ok()) else { continue };
            if last_decided.is_none_or(|d| epoch > d) {
                anyhow::bail!(
                    "file output: {} is the part of epoch {epoch}, but this stream's state {}: it belongs to another run (a wiped or `memory` state store, or another stream writing to {}). Move the old parts away or write to another path; mixing them would lose or duplicate records",
                    entry.path().display(),
                    match last_decided {
                        Some(d) => format!("was last decided at epoch {d}"),
                        None => "has no decided checkpoint".into(),
                    },
                    self.path.display()
                );
            }
        }
        Ok(())
    }

    fn close(&mut self) -> anyhow::Result<()> {
        // Epochs never prepared stay as temp files: they were not decided and are deleted and
        // reproduced by the next run.
        self.flush()
    }
}

/// Phase two of the file sink: renames prepared parts (see the module contract).
pub struct FileCommitter;

impl Committer for FileCommitter {
    fn commit(&self, _epoch: u64, blob: &serde_json::Value, replay: bool) -> Result<(), CommitError> {
        let blob: Blob = serde_json::from_value(blob.clone())
            .map_err(|e| CommitError::Fatal(format!("file output: the checkpoint's pre-commit is not a file output's ({e})")))?;
        for p in &blob.parts {
            finalize(p, replay)?;
        }
        Ok(())
    }
}

/// Hashes the first `len` bytes of `path` (None when it is shorter).
fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Option<u64>> {
    let mut f = std::fs::File::open(path)?.take(len);
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n == len).then(|| h.digest()))
}

fn finalize(p: &Part, replay: bool) -> Result<(), CommitError> {
    let (fin, tmp) = (Path::new(&p.final_path), Path::new(&p.temp));
    let io = |what: &str, e: std::io::Error| CommitError::Retry(format!("file output: {what}: {e}"));
    if let Ok(m) = std::fs::metadata(fin) {
        // Committed before (or something else is in the way): it must be exactly this part.
        let same = m.len() == p.len && hash_prefix(fin, p.len).map_err(|e| io(&format!("reading {}", fin.display()), e))? == Some(p.xxh3);
        if same {
            let _ = std::fs::remove_file(tmp);
            return Ok(());
        }
        return Err(CommitError::Fatal(format!(
            "file output: {} already exists with other content ({} bytes) than the decided part {} ({} bytes, xxh3 {:016x}); refusing to overwrite or skip it: move the existing file away (another run or stream wrote it) and restart",
            fin.display(),
            m.len(),
            tmp.display(),
            p.len,
            p.xxh3
        )));
    }
    let len = match std::fs::metadata(tmp) {
        Ok(m) => m.len(),
        // Another process (an older generation finishing its commit) renamed it meanwhile.
        Err(_) if fin.exists() => return finalize(p, replay),
        // Neither the temp nor the final part: the temp became the final part in one rename, so
        // this part was finalized and then taken away (a downstream job consumes finished parts,
        // as with any file sink). Stopping here would stop the stream for good; nothing of it is
        // ours to write again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && replay => {
            tracing::warn!(part = %fin.display(), "file output: the decided part was finalized before and has been moved away since; taking it as committed");
            return Ok(());
        }
        // The process that prepared the part is committing it for the first time: a missing temp
        // was deleted by someone else, never finalized. Stop loudly rather than lose it quietly.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommitError::Fatal(format!(
                "file output: the decided part {} was deleted before it could be finalized as {} (something else removed this process's temp file)",
                tmp.display(),
                fin.display()
            )))
        }
        Err(e) => return Err(io(&format!("reading {}", tmp.display()), e)),
    };
    if len < p.len {
        return Err(CommitError::Fatal(format!(
            "file output: the decided part {} has {len} bytes, {} were fsynced: refusing to finalize {}",
            tmp.display(),
            p.len,
            fin.display()
        )));
    }
    if len > p.len {
        let f = std::fs::OpenOptions::new().write(true).open(tmp).map_err(|e| io("truncating", e))?;
        f.set_len(p.len).and_then(|_| f.sync_all()).map_err(|e| io("truncating", e))?;
    }
    if replay && hash_prefix(tmp, p.len).map_err(|e| io("reading", e))? != Some(p.xxh3) {
        return Err(CommitError::Fatal(format!(
            "file output: the decided part {} does not match its checksum: refusing to finalize {}",
            tmp.display(),
            fin.display()
        )));
    }
    // One atomic step from temp to final (checked absent above). Another committer of the same
    // decided part (an older generation finishing, or a replay) that renamed it first leaves no
    // temp: look again.
    match std::fs::rename(tmp, fin) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return finalize(p, true),
        Err(e) => return Err(io(&format!("renaming {} to {}", tmp.display(), fin.display()), e)),
    }
    sync_dir(&parent(fin));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str) -> Record {
        Record { value: Some(v.as_bytes().to_vec()), ..Default::default() }
    }

    fn prepared(dir: &Path, gen: u64, epoch: u64, lines: &[&str]) -> (EoFileOut, serde_json::Value) {
        let mut o = EoFileOut::open(&dir.join("out.jsonl"), OutputFormat::Json, gen).unwrap();
        let recs: Vec<Record> = lines.iter().map(|l| rec(l)).collect();
        o.write_epoch(epoch, &recs).unwrap();
        let blob = o.pre_commit(epoch).unwrap().expect("a part");
        (o, blob)
    }

    #[test]
    fn commit_is_idempotent_and_checks_what_it_finds() {
        let d = tempfile::tempdir().unwrap();
        let (o, blob) = prepared(d.path(), 1, 1, &["{\"a\":1}"]);
        let c = o.committer().unwrap();
        c.commit(1, &blob, false).unwrap();
        assert!(!d.path().join(".out.jsonl.000000000001.g1.tmp").exists(), "the temp became the final part in one step");
        c.commit(1, &blob, true).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("out.jsonl.000000000001")).unwrap(), "{\"a\":1}\n");
        // A restart whose epochs start over (memory backend, wiped state) prepares epoch 1 again
        // with other content: the commit must not take the old part for it, nor delete the new one.
        let (o2, blob2) = prepared(d.path(), 1, 1, &["{\"b\":2}"]);
        let err = o2.committer().unwrap().commit(1, &blob2, false).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CommitError::Fatal(_)), "{msg}");
        assert!(msg.contains("out.jsonl.000000000001") && msg.contains(".out.jsonl.000000000001.g1.tmp"), "{msg}");
        assert!(d.path().join(".out.jsonl.000000000001.g1.tmp").exists(), "the new part is kept");
    }

    #[test]
    fn recovered_refuses_parts_of_another_run_and_cleans_temps() {
        let d = tempfile::tempdir().unwrap();
        let (o, blob) = prepared(d.path(), 1, 3, &["{}"]);
        o.committer().unwrap().commit(3, &blob, false).unwrap();
        let (_, _) = prepared(d.path(), 1, 4, &["{}"]);
        let mut o = EoFileOut::open(&d.path().join("out.jsonl"), OutputFormat::Json, 2).unwrap();
        o.recovered(Some(3)).unwrap();
        assert!(!d.path().join(".out.jsonl.000000000004.g1.tmp").exists(), "undecided temp deleted");
        let err = o.recovered(Some(2)).unwrap_err().to_string();
        assert!(err.contains("out.jsonl.000000000003") && err.contains("another run"), "{err}");
        assert!(o.recovered(None).is_err());
    }

    #[test]
    fn a_short_part_is_fatal_a_longer_one_is_cut_and_a_taken_one_is_committed() {
        let d = tempfile::tempdir().unwrap();
        let (o, blob) = prepared(d.path(), 1, 1, &["{\"a\":1}"]);
        let tmp = d.path().join(".out.jsonl.000000000001.g1.tmp");
        std::fs::OpenOptions::new().append(true).open(&tmp).unwrap().write_all(b"junk").unwrap();
        o.committer().unwrap().commit(1, &blob, true).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("out.jsonl.000000000001")).unwrap(), "{\"a\":1}\n");
        // Short: fsynced bytes are gone.
        let (o, blob) = prepared(d.path(), 1, 2, &["{\"a\":2}"]);
        let tmp = d.path().join(".out.jsonl.000000000002.g1.tmp");
        std::fs::OpenOptions::new().write(true).open(&tmp).unwrap().set_len(3).unwrap();
        assert!(matches!(o.committer().unwrap().commit(2, &blob, true), Err(CommitError::Fatal(_))));
        // Finalized, then taken by a downstream job before the commit was marked done: the
        // replay takes it as committed and writes nothing.
        let (o, blob) = prepared(d.path(), 1, 3, &["{\"a\":3}"]);
        let c = o.committer().unwrap();
        c.commit(3, &blob, false).unwrap();
        let fin = d.path().join("out.jsonl.000000000003");
        std::fs::rename(&fin, d.path().join("taken")).unwrap();
        c.commit(3, &blob, true).unwrap();
        assert!(!fin.exists(), "a taken part is not written again");
        // The preparing process's own first commit never takes a missing temp as committed.
        let (o, blob) = prepared(d.path(), 1, 4, &["{\"a\":4}"]);
        std::fs::remove_file(d.path().join(".out.jsonl.000000000004.g1.tmp")).unwrap();
        assert!(matches!(o.committer().unwrap().commit(4, &blob, false), Err(CommitError::Fatal(m)) if m.contains("was deleted before")));
    }

    /// A paused older process resuming its start-up cleanup must not delete the temp parts of the
    /// newer generation that fenced it (found by the fault harness: the newer process's decided
    /// part vanished).
    #[test]
    fn start_up_cleanup_deletes_only_older_generations_temps() {
        let d = tempfile::tempdir().unwrap();
        let _older = prepared(d.path(), 1, 5, &["{}"]);
        let _newer = prepared(d.path(), 3, 6, &["{}"]);
        let mut o = EoFileOut::open(&d.path().join("out.jsonl"), OutputFormat::Json, 2).unwrap();
        o.recovered(Some(4)).unwrap();
        assert!(!d.path().join(".out.jsonl.000000000005.g1.tmp").exists(), "an older generation's temp is stale");
        assert!(d.path().join(".out.jsonl.000000000006.g3.tmp").exists(), "a newer generation's temp is live");
    }
}
