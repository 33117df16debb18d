//! Test-only: a memory store with injected faults. Writes of `data/` objects fail or stall on
//! demand (`fail_data`, `stall_data_ms`); writes of keys containing `fail_writes` fail while it is
//! set; the next read of a key containing `fail_get` fails once.

use super::{MemoryStore, ObjectMeta, ObjectStore, PutOutcome, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Flaky {
    pub inner: MemoryStore,
    pub fail_data: AtomicBool,
    /// Milliseconds every data write waits first.
    pub stall_data_ms: AtomicU64,
    /// The next read of a key containing this fails (then it is cleared).
    pub fail_get: Mutex<Option<String>>,
    /// Every write of a key containing this fails while set.
    pub fail_writes: Mutex<Option<String>>,
}

fn injected(op: &'static str, key: &str) -> StoreError {
    StoreError::Io { store: "flaky".into(), op, key: key.into(), message: "injected".into() }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<PutOutcome, StoreError> {
        if self.fail_writes.lock().unwrap().as_deref().is_some_and(|f| key.contains(f)) {
            return Err(injected("create", key));
        }
        if key.contains("/data/") {
            let stall = self.stall_data_ms.load(SeqCst);
            if stall > 0 {
                tokio::time::sleep(Duration::from_millis(stall)).await;
            }
            if self.fail_data.load(SeqCst) {
                return Err(injected("create", key));
            }
        }
        self.inner.put_if_absent(key, data).await
    }
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let armed = {
            let mut fail = self.fail_get.lock().unwrap();
            fail.as_deref().is_some_and(|f| key.contains(f)) && fail.take().is_some()
        };
        if armed {
            return Err(injected("get", key));
        }
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}
