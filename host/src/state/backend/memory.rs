//! `memory` backend: objects in RAM, gone with the process. Honours create-only writes and
//! multipart uploads (`multipart.rs`).

use super::multipart::{Completion, Multipart, PendingUpload, MIN_PART_BYTES};
use super::{ObjectMeta, ObjectStore, PutOutcome, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A part's tag (S3's ETag): its hash.
fn tag(data: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(data))
}

/// The parts of one multipart upload, by number.
type Parts = BTreeMap<i32, Bytes>;

#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, i64)>>,
    /// Upload id -> (key, parts by number).
    uploads: Mutex<BTreeMap<String, (String, Parts)>>,
    next_upload: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<PutOutcome, StoreError> {
        let mut m = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        if m.contains_key(key) {
            return Ok(PutOutcome::Exists);
        }
        m.insert(key.to_string(), (data, crate::util::time::now_ms()));
        Ok(PutOutcome::Created)
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), (data, crate::util::time::now_ms()));
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.objects.lock().unwrap_or_else(|p| p.into_inner()).get(key).map(|(b, _)| b.clone()))
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let m = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        Ok(m.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (b, t))| ObjectMeta { key: k.clone(), size: b.len() as u64, modified_ms: *t })
            .collect())
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        Ok(())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

#[async_trait]
impl Multipart for MemoryStore {
    async fn begin(&self, key: &str) -> Result<String, StoreError> {
        let id = format!("upload-{}", self.next_upload.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), (key.to_string(), BTreeMap::new()));
        Ok(id)
    }
    async fn part(&self, key: &str, upload_id: &str, number: i32, data: Bytes) -> Result<String, StoreError> {
        let mut u = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        match u.get_mut(upload_id) {
            Some((k, parts)) if k == key => {
                let tag = tag(&data);
                parts.insert(number, data);
                Ok(tag)
            }
            _ => Err(StoreError::Io { store: "memory".into(), op: "upload part", key: key.into(), message: "no such upload".into() }),
        }
    }
    async fn complete(&self, key: &str, upload_id: &str, parts: &[(i32, String)]) -> Result<Completion, StoreError> {
        let mut u = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let Some((k, stored)) = u.get(upload_id) else { return Ok(Completion::NoSuchUpload) };
        let fail = |message: &str| StoreError::Io { store: "memory".into(), op: "complete upload", key: key.into(), message: message.into() };
        if k != key {
            return Err(fail("the upload is another key's"));
        }
        let mut body = Vec::new();
        for (i, (n, tag)) in parts.iter().enumerate() {
            let Some(data) = stored.get(n) else { return Err(fail("a listed part was never uploaded")) };
            if *tag != self::tag(data) {
                return Err(fail("a part's tag does not match"));
            }
            if i + 1 < parts.len() && data.len() < MIN_PART_BYTES {
                return Err(fail("EntityTooSmall: a part before the last is under 5 MiB"));
            }
            body.extend_from_slice(data);
        }
        u.remove(upload_id);
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), (Bytes::from(body), crate::util::time::now_ms()));
        Ok(Completion::Completed)
    }
    async fn abort(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner()).remove(upload_id);
        Ok(())
    }
    async fn pending(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        let u = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<PendingUpload> =
            u.iter().filter(|(_, (k, _))| k.starts_with(prefix)).map(|(id, (k, _))| PendingUpload { key: k.clone(), upload_id: id.clone() }).collect();
        out.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conforms() {
        super::super::conformance::check(&super::MemoryStore::new()).await;
        super::super::multipart::conformance::check(&super::MemoryStore::new()).await;
    }
}
