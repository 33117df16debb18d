//! Multipart uploads on the `s3` backend (`super::multipart`'s contract): CreateMultipartUpload,
//! UploadPart, CompleteMultipartUpload, AbortMultipartUpload and ListMultipartUploads, with the
//! backend's retries, deadlines (a part's deadline grows with its size) and messages.
//! `NoSuchUpload` from a completion or an abort is reported, not failed: the upload was
//! completed before or aborted. Another failed completion is looked into: when the upload is no
//! longer pending, it counts as completed if the object is there, else as `NoSuchUpload` (moto 5
//! answers a completion with a 200 whose root S3 does not use, and an unknown upload with a 500).

use super::super::multipart::{Completion, Multipart, PendingUpload};
use super::{attempt_timeout, code, Attempts, S3Store, CONNECT_TIMEOUT, MIN_THROUGHPUT_BYTES_PER_SEC};
use crate::state::backend::{ObjectStore, StoreError};
use async_trait::async_trait;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;

fn no_such_upload<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    code(e) == Some("NoSuchUpload")
}

#[async_trait]
impl Multipart for S3Store {
    async fn begin(&self, key: &str) -> Result<String, StoreError> {
        let a = Attempts::default();
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .customize()
            .interceptor(a.clone())
            .send()
            .await
            .map_err(|e| self.sdk_err("begin upload", key, &e, &a))?;
        out.upload_id().map(str::to_string).ok_or_else(|| self.err("begin upload", key, "the server returned no upload id".into()))
    }

    async fn part(&self, key: &str, upload_id: &str, number: i32, data: Bytes) -> Result<String, StoreError> {
        let a = Attempts::default();
        let len = data.len();
        let req = self.client.upload_part().bucket(&self.bucket).key(self.full(key)).upload_id(upload_id).part_number(number).body(ByteStream::from(data));
        let mut c = req.customize().interceptor(a.clone());
        if len as u64 >= MIN_THROUGHPUT_BYTES_PER_SEC {
            c = c.config_override(
                aws_sdk_s3::config::Builder::new()
                    .timeout_config(TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(attempt_timeout(len)).build()),
            );
        }
        let out = c.send().await.map_err(|e| self.sdk_err("upload part", key, &e, &a))?;
        out.e_tag().map(str::to_string).ok_or_else(|| self.err("upload part", key, format!("the server returned no ETag for part {number}")))
    }

    async fn complete(&self, key: &str, upload_id: &str, parts: &[(i32, String)]) -> Result<Completion, StoreError> {
        let a = Attempts::default();
        let parts: Vec<CompletedPart> = parts.iter().map(|(n, tag)| CompletedPart::builder().part_number(*n).e_tag(tag).build()).collect();
        let res = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.full(key))
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .customize()
            .interceptor(a.clone())
            .send()
            .await;
        match res {
            Ok(_) => Ok(Completion::Completed),
            Err(e) if no_such_upload(&e) => Ok(Completion::NoSuchUpload),
            // Any other answer may not mean what it says (moto 5 answers a completion with a 200
            // whose root S3 does not use, and an unknown upload with a 500): when the upload is
            // no longer pending, the object decides.
            Err(e) => {
                if self.pending(key).await?.iter().any(|u| u.key == key && u.upload_id == upload_id) {
                    return Err(self.sdk_err("complete upload", key, &e, &a));
                }
                match self.list(key).await?.iter().any(|m| m.key == key) {
                    true => Ok(Completion::Completed),
                    false => Ok(Completion::NoSuchUpload),
                }
            }
        }
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let a = Attempts::default();
        let res =
            self.client.abort_multipart_upload().bucket(&self.bucket).key(self.full(key)).upload_id(upload_id).customize().interceptor(a.clone()).send().await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if no_such_upload(&e) => Ok(()),
            Err(e) => Err(self.sdk_err("abort upload", key, &e, &a)),
        }
    }

    async fn pending(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let a = Attempts::default();
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(self.full(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .customize()
                .interceptor(a.clone())
                .send()
                .await
                .map_err(|e| self.sdk_err("list uploads", prefix, &e, &a))?;
            for u in page.uploads() {
                let (Some(k), Some(id)) = (u.key(), u.upload_id()) else { continue };
                let Some(rel) = k.strip_prefix(self.prefix.as_str()) else { continue };
                out.push(PendingUpload { key: rel.to_string(), upload_id: id.to_string() });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        out.dedup();
        Ok(out)
    }
}
