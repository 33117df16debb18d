//! Exactly-once `file` output: one part file per epoch.
//!
//! Records of epoch `e` go to the temp file `.{name}.{e:012}.g{generation}.tmp` beside `path`; at
//! `e`'s aligned barrier the temp file is flushed and fsynced and reported as prepared; after the
//! decision the coordinator renames it to `{path}.{e:012}` (idempotent, see
//! `checkpoint::recovery::finalize_sink_files`). Names are deterministic per epoch; the
//! generation in temp names keeps a fenced older process from writing into a newer one's files.
//! At open, temp files left by earlier runs are deleted: recovery has already finalized every
//! decided one, so what remains was never decided and will be produced again by replay.

use super::{encode_line, Output};
use crate::checkpoint::SinkFile;
use crate::config::OutputFormat;
use crate::record::Record;
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct EoFileOut {
    path: PathBuf,
    format: OutputFormat,
    generation: u64,
    open: BTreeMap<u64, (std::io::BufWriter<std::fs::File>, PathBuf, u64)>,
    line: Vec<u8>,
}

impl EoFileOut {
    pub fn open(path: &Path, format: OutputFormat, generation: u64) -> anyhow::Result<Self> {
        let dir = parent(path);
        std::fs::create_dir_all(&dir).with_context(|| format!("file output: creating {}", dir.display()))?;
        let prefix = format!(".{}.", file_name(path));
        for entry in std::fs::read_dir(&dir).with_context(|| format!("file output: listing {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                std::fs::remove_file(entry.path()).with_context(|| format!("removing stale {}", entry.path().display()))?;
            }
        }
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

impl Output for EoFileOut {
    fn write_batch(&mut self, _records: &[Record]) -> anyhow::Result<()> {
        anyhow::bail!("exactly-once file output needs the epoch of every record")
    }

    fn write_epoch(&mut self, epoch: u64, records: &[Record]) -> anyhow::Result<()> {
        if !self.open.contains_key(&epoch) {
            let tmp = self.temp_path(epoch);
            let f = std::fs::File::create(&tmp).with_context(|| format!("file output: creating {}", tmp.display()))?;
            self.open.insert(epoch, (std::io::BufWriter::with_capacity(1 << 20, f), tmp, 0));
        }
        let (w, tmp, len) = self.open.get_mut(&epoch).expect("opened");
        for r in records {
            self.line.clear();
            encode_line(&mut self.line, r, self.format);
            w.write_all(&self.line).with_context(|| format!("file output {}", tmp.display()))?;
            *len += self.line.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        for (w, tmp, _) in self.open.values_mut() {
            w.flush().with_context(|| format!("file output {}", tmp.display()))?;
        }
        Ok(())
    }

    fn prepare(&mut self, epoch: u64) -> anyhow::Result<Vec<SinkFile>> {
        let ready: Vec<u64> = self.open.range(..=epoch).map(|(e, _)| *e).collect();
        let mut out = Vec::with_capacity(ready.len());
        for e in ready {
            let (w, tmp, len) = self.open.remove(&e).expect("listed");
            let f = w.into_inner().map_err(|e| anyhow::anyhow!("file output: flushing: {e}"))?;
            f.sync_all().with_context(|| format!("file output: fsync {}", tmp.display()))?;
            out.push(SinkFile {
                temp: tmp.to_string_lossy().into_owned(),
                final_path: Self::part_path(&self.path, e).to_string_lossy().into_owned(),
                len,
            });
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }).and_then(|d| d.sync_all());
        }
        Ok(out)
    }

    fn close(&mut self) -> anyhow::Result<()> {
        // Epochs never prepared stay as temp files: they were not decided and are deleted and
        // reproduced by the next run.
        self.flush()
    }
}
