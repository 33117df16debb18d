//! Phase two of the `s3` output (see `s3.rs`): completing a part's multipart upload and writing
//! its committed marker after the decision, and releasing what a fenced session staged for
//! epochs no decision will name (group mode).

use super::{epoch_of, marker_key, Blob, Marker, Upload};
use crate::checkpoint::{block_on, CommitError, Committer};
use crate::state::backend::multipart::{Completion, Multipart};
use crate::state::backend::{ObjectStore, PutOutcome, StoreError};
use anyhow::Context;
use bytes::Bytes;
use std::sync::Arc;

/// Phase two of the s3 sink: writes each part's committed marker (see the module contract).
pub struct S3Committer {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) uploads: Arc<dyn Multipart>,
}

impl Committer for S3Committer {
    fn commit(&self, _epoch: u64, blob: &serde_json::Value, _replay: bool) -> Result<(), CommitError> {
        let blob: Blob = serde_json::from_value(blob.clone())
            .map_err(|e| CommitError::Fatal(format!("s3 output: the checkpoint's pre-commit is not an s3 output's ({e})")))?;
        let at = self.store.describe();
        for (epoch, marker) in &blob.parts {
            let key = marker_key(&blob.scope, *epoch);
            match block_on(write_marker(&*self.store, &*self.uploads, &key, marker, blob.uploads.get(epoch))) {
                Err(e) => return Err(CommitError::Retry(format!("s3 output: committing {at}/{key}: {e}"))),
                Ok(Written::Now | Written::Before) => {}
                Ok(Written::PartMissing) => {
                    return Err(CommitError::Fatal(format!(
                        "s3 output: the part {at}/{} of epoch {epoch} is missing or not {} bytes: it was uploaded before the decision, so something deleted it",
                        marker.part, marker.bytes
                    )))
                }
                Ok(Written::Other) => {
                    return Err(CommitError::Fatal(format!(
                        "s3 output: {at}/{key} exists with other content: another run's output is in the way (write to another prefix)"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Aborts `scope`'s uploads and deletes its parts of the epochs after `after`: no marker can
    /// name them, so no reader ever trusted them.
    fn abandon(&self, scope: &str, after: Option<u64>) -> anyhow::Result<()> {
        let undecided = |key: &str| epoch_of(key).is_some_and(|e| after.is_none_or(|d| e > d));
        let (prefix, at) = (format!("parts/{scope}/"), self.store.describe());
        let pending = block_on(self.uploads.pending(&prefix)).with_context(|| format!("s3 output: listing the uploads of {at}/{prefix}"))?;
        for u in pending.iter().filter(|u| undecided(&u.key)) {
            block_on(self.uploads.abort(&u.key, &u.upload_id)).with_context(|| format!("s3 output: aborting the abandoned upload of {at}/{}", u.key))?;
        }
        for p in block_on(self.store.list(&prefix))?.iter().filter(|p| undecided(&p.key)) {
            block_on(self.store.delete(&p.key)).with_context(|| format!("s3 output: deleting the abandoned part {at}/{}", p.key))?;
        }
        Ok(())
    }
}

/// What became of a marker.
enum Written {
    Now,
    /// By an earlier run of this commit: the same content.
    Before,
    Other,
    PartMissing,
}

/// Completes the part's multipart upload (when it was staged as one), then creates the marker
/// `key` once the part is there with its size (create-only).
async fn write_marker(store: &dyn ObjectStore, uploads: &dyn Multipart, key: &str, marker: &Marker, upload: Option<&Upload>) -> Result<Written, StoreError> {
    let body = Bytes::from(serde_json::to_vec(marker).expect("a marker serializes"));
    let same = |existing: &[u8]| serde_json::from_slice::<Marker>(existing).ok().as_ref() == Some(marker);
    if let Some(existing) = store.get(key).await? {
        return Ok(if same(&existing) { Written::Before } else { Written::Other });
    }
    if let Some(u) = upload {
        // NoSuchUpload: completed by an earlier run of this commit (or aborted, which the part
        // check below reports).
        let _: Completion = uploads.complete(&marker.part, &u.id, &u.tags).await?;
    }
    let listed = store.list(&marker.part).await?;
    if !listed.iter().any(|m| m.key == marker.part && m.size == marker.bytes) {
        return Ok(Written::PartMissing);
    }
    if store.put_if_absent(key, body).await? == PutOutcome::Created {
        return Ok(Written::Now);
    }
    Ok(match store.get(key).await? {
        Some(existing) if same(&existing) => Written::Before,
        _ => Written::Other,
    })
}
