//! Object storage behind a trait: [`S3Store`] for real, [`MemoryStore`] for unit tests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use bytes::Bytes;

use crate::error::display_chain;
use crate::{Error, Result};

#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<()>;
    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes>;
    /// At most `len` bytes from `start`, and the object's whole size.
    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<(Bytes, u64)>;
}

/// A failed S3 call on one object, with the error's whole chain.
pub fn storage_err(
    op: &'static str,
    bucket: &str,
    key: &str,
    e: &(dyn std::error::Error + 'static),
) -> Error {
    Error::Storage {
        op,
        bucket: bucket.into(),
        key: key.into(),
        message: display_chain(e),
    }
}

#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store { client }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await
            .map_err(|e| storage_err("PutObject", bucket, key, &e))?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| storage_err("GetObject", bucket, key, &e))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| storage_err("GetObject", bucket, key, &e))?;
        Ok(data.into_bytes())
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<(Bytes, u64)> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len.max(1) - 1))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // Any range of an empty object (or from past the end) is answered 416.
            Err(e) if e.code() == Some("InvalidRange") => return Ok((Bytes::new(), 0)),
            Err(e) => return Err(storage_err("GetObject", bucket, key, &e)),
        };
        let total = Self::total_size(&out);
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| storage_err("GetObject", bucket, key, &e))?
            .into_bytes();
        Ok((data, total.unwrap_or(0)))
    }
}

impl S3Store {
    /// The whole size from `Content-Range: bytes 0-65535/31457280` (S3 answers a range that
    /// runs past the end with the bytes there are, and says so in the same header).
    fn total_size(out: &aws_sdk_s3::operation::get_object::GetObjectOutput) -> Option<u64> {
        match out.content_range() {
            Some(range) => range.rsplit('/').next()?.parse().ok(),
            None => out.content_length().map(|n| n.max(0) as u64),
        }
    }
}

/// An object as the in-memory store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Bytes,
    pub content_type: String,
}

/// In-memory store for unit tests; `fail_puts` makes every put fail.
#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<(String, String), StoredObject>>,
    pub fail_puts: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) {
        self.objects.lock().unwrap().insert(
            (bucket.into(), key.into()),
            StoredObject {
                body: body.into(),
                content_type: "application/octet-stream".into(),
            },
        );
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        self.objects
            .lock()
            .unwrap()
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .unwrap()
            .keys()
            .map(|(_, k)| k.clone())
            .collect()
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        if self.fail_puts.load(Ordering::SeqCst) {
            return Err(Error::Storage {
                op: "PutObject",
                bucket: bucket.into(),
                key: key.into(),
                message: "injected failure".into(),
            });
        }
        self.objects.lock().unwrap().insert(
            (bucket.into(), key.into()),
            StoredObject {
                body,
                content_type: content_type.into(),
            },
        );
        Ok(())
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<(Bytes, u64)> {
        let body = self.get(bucket, key).await?;
        let total = body.len() as u64;
        let from = start.min(total) as usize;
        let to = start.saturating_add(len).min(total) as usize;
        Ok((body.slice(from..to), total))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Bytes> {
        self.object(bucket, key)
            .map(|o| o.body)
            .ok_or_else(|| Error::Storage {
                op: "GetObject",
                bucket: bucket.into(),
                key: key.into(),
                message: "NoSuchKey".into(),
            })
    }
}
