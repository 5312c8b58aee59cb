//! Where override files are read from: the source bucket through S3 in the function, an
//! in-memory map in tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;

use crate::overrides::MAX_OVERRIDE_BYTES;
use crate::Error;

/// Reads one object. `Ok(None)` means it does not exist, which is normal for an override
/// file; any other failure is an error.
#[async_trait]
pub trait SettingsSource: Send + Sync {
    async fn fetch(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Error>;
}

/// The source bucket through S3 `GetObject`.
///
/// Only `NoSuchKey` counts as "no override". S3 answers a missing key with `NoSuchKey` (404)
/// only to callers that may list the bucket; without `s3:ListBucket` it answers 403
/// `AccessDenied`, which fails the invocation, so the role needs both `s3:GetObject` and
/// `s3:ListBucket`.
pub struct S3Settings(pub aws_sdk_s3::Client);

#[async_trait]
impl SettingsSource for S3Settings {
    async fn fetch(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let out = match self.0.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let hint = if status == Some(403) {
                    " (a missing key also answers 403 when the role lacks s3:ListBucket on \
                     the bucket)"
                } else {
                    ""
                };
                return Err(Error::Aws {
                    action: "s3:GetObject",
                    message: format!("s3://{bucket}/{key}: {}{hint}", DisplayErrorContext(&e)),
                });
            }
        };
        if let Some(len) = out
            .content_length()
            .filter(|l| *l > MAX_OVERRIDE_BYTES as i64)
        {
            return Err(Error::Override {
                location: format!("s3://{bucket}/{key}"),
                reason: format!("{len} bytes; an override file is at most {MAX_OVERRIDE_BYTES}"),
            });
        }
        let bytes = out.body.collect().await.map_err(|e| Error::Aws {
            action: "s3:GetObject",
            message: format!("s3://{bucket}/{key}: reading the body: {e}"),
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

/// Objects in memory, for tests and local runs. Remembers which keys were asked for.
#[derive(Default)]
pub struct MemorySource {
    objects: HashMap<(String, String), Vec<u8>>,
    asked: Mutex<Vec<String>>,
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) -> Self {
        self.objects
            .insert((bucket.to_string(), key.to_string()), body.into());
        self
    }

    /// The `s3://bucket/key` locations fetched so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl SettingsSource for MemorySource {
    async fn fetch(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("s3://{bucket}/{key}"));
        Ok(self
            .objects
            .get(&(bucket.to_string(), key.to_string()))
            .cloned())
    }
}
