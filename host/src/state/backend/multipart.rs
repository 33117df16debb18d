//! Multipart uploads: an object written in numbered parts that stays invisible (absent from
//! `get` and `list`) until the upload is completed, and that an abort throws away. The `s3`
//! output stages large epochs this way: parts uploaded while the epoch's records arrive and at
//! its barrier, the upload completed after the decision (`connectors::output::s3`).
//!
//! Contract: `begin` returns an upload id; `part` stores part `number` (1-based) and returns its
//! tag; `complete` joins the listed parts, in order, into the object; it reports
//! [`Completion::NoSuchUpload`] when the upload is gone (completed before, or aborted), which the
//! caller resolves by looking at the object. Every part but the last must be at least
//! [`MIN_PART_BYTES`] (S3's rule). `pending` lists the uploads under a prefix that were neither
//! completed nor aborted.

use super::StoreError;
use async_trait::async_trait;
use bytes::Bytes;

/// S3's smallest part (all but the last).
pub const MIN_PART_BYTES: usize = 5 << 20;

/// What `complete` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Completed,
    /// The upload is unknown: completed earlier, or aborted.
    NoSuchUpload,
}

/// One upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
}

#[async_trait]
pub trait Multipart: Send + Sync {
    async fn begin(&self, key: &str) -> Result<String, StoreError>;
    async fn part(&self, key: &str, upload_id: &str, number: i32, data: Bytes) -> Result<String, StoreError>;
    async fn complete(&self, key: &str, upload_id: &str, parts: &[(i32, String)]) -> Result<Completion, StoreError>;
    /// Throws the upload away; an unknown upload is not an error.
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;
    async fn pending(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! Behaviour every multipart store must show.
    use super::*;
    use crate::state::backend::ObjectStore;

    pub async fn check<S: ObjectStore + Multipart>(store: &S) {
        let big = Bytes::from(vec![b'a'; MIN_PART_BYTES]);
        let id = store.begin("m/obj").await.unwrap();
        let t1 = store.part("m/obj", &id, 1, big.clone()).await.unwrap();
        let t2 = store.part("m/obj", &id, 2, Bytes::from_static(b"tail")).await.unwrap();
        assert_eq!(store.get("m/obj").await.unwrap(), None, "invisible before completion");
        assert!(store.list("m/").await.unwrap().is_empty());
        let pending = store.pending("m/").await.unwrap();
        assert_eq!(pending, vec![PendingUpload { key: "m/obj".into(), upload_id: id.clone() }]);
        assert_eq!(store.complete("m/obj", &id, &[(1, t1.clone()), (2, t2.clone())]).await.unwrap(), Completion::Completed);
        let got = store.get("m/obj").await.unwrap().unwrap();
        assert_eq!(got.len(), MIN_PART_BYTES + 4);
        assert_eq!(&got[MIN_PART_BYTES..], b"tail");
        assert!(store.pending("m/").await.unwrap().is_empty());
        assert_eq!(store.complete("m/obj", &id, &[(1, t1), (2, t2)]).await.unwrap(), Completion::NoSuchUpload);

        let gone = store.begin("m/gone").await.unwrap();
        store.part("m/gone", &gone, 1, Bytes::from_static(b"x")).await.unwrap();
        store.abort("m/gone", &gone).await.unwrap();
        store.abort("m/gone", &gone).await.unwrap();
        assert_eq!(store.complete("m/gone", &gone, &[]).await.unwrap(), Completion::NoSuchUpload);
        assert_eq!(store.get("m/gone").await.unwrap(), None);
        assert!(store.pending("m/").await.unwrap().is_empty());
        store.delete("m/obj").await.unwrap();
    }
}
