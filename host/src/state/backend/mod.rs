//! Object stores that hold checkpoints: `memory`, `local` (a directory) and `s3`.
//!
//! Contract: keys are `/`-separated relative paths. `put_if_absent` is a create-only write: it
//! either creates the object atomically with the whole payload or reports `Exists` and leaves
//! the existing object untouched, also under concurrent writers (S3: `If-None-Match: *`). `put`
//! overwrites and is used only for hints. `list` returns every key under a prefix, sorted.
//! [`probe_create_only`] checks at start that a store really honours create-only writes;
//! exactly-once refuses stores that do not.

#[cfg(test)]
pub mod flaky;
mod local;
mod memory;
pub mod multipart;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

pub use local::LocalStore;
pub use memory::MemoryStore;
pub use multipart::{Completion, Multipart, PendingUpload};
pub use s3::S3Store;

/// Result of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Exists,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{store}: {op} `{key}` failed: {message}")]
    Io { store: String, op: &'static str, key: String, message: String },
    #[error("{0}")]
    Config(String),
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Creates `key` only if it does not exist.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> Result<PutOutcome, StoreError>;
    /// Creates or overwrites `key` (hints only).
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError>;
    /// The object's bytes, or None when absent.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// Bytes `start..end` of the object (fewer when it is shorter), or None when absent.
    async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get(key).await?.map(|b| {
            let len = b.len() as u64;
            b.slice(start.min(len) as usize..end.min(len) as usize)
        }))
    }
    /// Every object under `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;
    /// Removes `key`; absent keys are not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// For messages: `local:/dir`, `s3://bucket/prefix`, `memory`.
    fn describe(&self) -> String;
}

pub type DynStore = Arc<dyn ObjectStore>;

/// Writes a probe object twice with create-only semantics: true when the second write is
/// refused and the first payload survives. Cleans up after itself.
pub async fn probe_create_only(store: &dyn ObjectStore, scope: &str) -> Result<bool, StoreError> {
    let key = crate::layout::probe(scope, &format!("{}-{}", std::process::id(), crate::util::time::now_ms()));
    let first = store.put_if_absent(&key, Bytes::from_static(b"first")).await?;
    let second = store.put_if_absent(&key, Bytes::from_static(b"second")).await?;
    let kept = store.get(&key).await?;
    let _ = store.delete(&key).await;
    Ok(first == PutOutcome::Created && second == PutOutcome::Exists && kept.as_deref() == Some(&b"first"[..]))
}

/// The process-wide runtime for object store I/O (object stores are async; the data path is not).
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("checkpoint-io").enable_all().build().expect("checkpoint I/O runtime")
    })
}

/// Runs `fut` to completion from synchronous code (never from inside an async task).
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    io_runtime().block_on(fut)
}

#[cfg(test)]
pub(crate) mod conformance {
    //! Behaviour every store must show; run against each backend.
    use super::*;

    pub async fn check(store: &dyn ObjectStore) {
        assert_eq!(store.get("a/missing").await.unwrap(), None);
        assert_eq!(store.put_if_absent("a/x/1", Bytes::from_static(b"one")).await.unwrap(), PutOutcome::Created);
        assert_eq!(store.put_if_absent("a/x/1", Bytes::from_static(b"two")).await.unwrap(), PutOutcome::Exists);
        assert_eq!(store.get("a/x/1").await.unwrap().as_deref(), Some(&b"one"[..]));
        store.put("a/hint", Bytes::from_static(b"h1")).await.unwrap();
        store.put("a/hint", Bytes::from_static(b"h2")).await.unwrap();
        assert_eq!(store.get("a/hint").await.unwrap().as_deref(), Some(&b"h2"[..]));
        store.put_if_absent("a/x/0", Bytes::from_static(b"zero")).await.unwrap();
        store.put_if_absent("b/y", Bytes::from_static(b"other")).await.unwrap();
        let keys: Vec<String> = store.list("a/x/").await.unwrap().into_iter().map(|m| m.key).collect();
        assert_eq!(keys, ["a/x/0", "a/x/1"]);
        assert_eq!(store.get_range("a/x/1", 1, 3).await.unwrap().as_deref(), Some(&b"ne"[..]));
        assert_eq!(store.get_range("a/x/1", 2, 100).await.unwrap().as_deref(), Some(&b"e"[..]));
        assert_eq!(store.get_range("a/missing", 0, 1).await.unwrap(), None);
        let meta = &store.list("a/x/1").await.unwrap()[0];
        assert_eq!(meta.size, 3);
        assert!(meta.modified_ms > 0);
        store.delete("a/x/0").await.unwrap();
        store.delete("a/x/0").await.unwrap();
        assert_eq!(store.list("a/x/").await.unwrap().len(), 1);
        assert!(probe_create_only(store, "a").await.unwrap());
        assert!(store.list("a/probe/").await.unwrap().is_empty(), "probe cleans up");
    }
}
