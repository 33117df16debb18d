//! `local` backend: objects are files under a directory, same layout as S3 keys.
//!
//! Create-only writes are atomic: the payload goes to a unique temp file, is fsynced, then
//! hard-linked to its final name (`link` fails with EEXIST if the name exists, even under
//! concurrent writers), and the directory is fsynced. Overwrites (`put`) use rename.

use super::{ObjectMeta, ObjectStore, PutOutcome, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct LocalStore {
    root: PathBuf,
    seq: AtomicU64,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| StoreError::Config(format!("local state directory {}: {e}", root.display())))?;
        Ok(LocalStore { root, seq: AtomicU64::new(0) })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn err(&self, op: &'static str, key: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io { store: self.describe(), op, key: key.to_string(), message: e.to_string() }
    }

    /// Writes `data` to a fresh temp file next to `dest` and fsyncs it.
    fn write_temp(&self, dest: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
        let dir = dest.parent().expect("keys have a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed),
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("obj")
        ));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(tmp)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<PutOutcome, StoreError> {
        let dest = self.path(key);
        let tmp = self.write_temp(&dest, &data).map_err(|e| self.err("create", key, e))?;
        let linked = std::fs::hard_link(&tmp, &dest);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(dest.parent().expect("parent")).map_err(|e| self.err("create", key, e))?;
                Ok(PutOutcome::Created)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(PutOutcome::Exists),
            Err(e) => Err(self.err("create", key, e)),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let dest = self.path(key);
        let tmp = self.write_temp(&dest, &data).map_err(|e| self.err("put", key, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| self.err("put", key, e))?;
        sync_dir(dest.parent().expect("parent")).map_err(|e| self.err("put", key, e))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match std::fs::read(self.path(key)) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("get", key, e)),
        }
    }

    async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Bytes>, StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::File::open(self.path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err("get", key, e)),
        };
        let mut buf = Vec::with_capacity(end.saturating_sub(start) as usize);
        f.seek(SeekFrom::Start(start)).map_err(|e| self.err("get", key, e))?;
        f.take(end.saturating_sub(start)).read_to_end(&mut buf).map_err(|e| self.err("get", key, e))?;
        Ok(Some(Bytes::from(buf)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        // Walk the deepest directory that the prefix names, then filter by the full prefix.
        let dir_part = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let mut out = Vec::new();
        let mut stack = vec![self.root.join(dir_part)];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err("list", prefix, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| self.err("list", prefix, e))?;
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(".tmp-") {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| self.err("list", prefix, e))?;
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let rel = entry.path().strip_prefix(&self.root).expect("under root").to_string_lossy().replace('\\', "/");
                if rel.starts_with(prefix) {
                    let modified_ms = meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as i64);
                    out.push(ObjectMeta { key: rel, size: meta.len(), modified_ms });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", key, e)),
        }
    }

    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance::check(&LocalStore::new(dir.path()).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_only_under_racing_writers() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(LocalStore::new(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { s.put_if_absent("race/k", Bytes::from(vec![i; 1000])).await.unwrap() }));
        }
        let mut created = 0;
        for t in tasks {
            if t.await.unwrap() == PutOutcome::Created {
                created += 1;
            }
        }
        assert_eq!(created, 1);
        let v = store.get("race/k").await.unwrap().unwrap();
        assert!(v.iter().all(|b| *b == v[0]) && v.len() == 1000, "one writer's whole payload");
    }
}
