//! `memory` backend: objects in RAM, gone with the process. Honours create-only writes.

use super::{ObjectMeta, ObjectStore, PutOutcome, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, (Bytes, i64)>>,
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

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conforms() {
        super::super::conformance::check(&super::MemoryStore::new()).await;
    }
}
