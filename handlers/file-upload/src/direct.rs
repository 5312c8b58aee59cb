//! The S3 calls of a direct upload, behind a trait so the handler can be tested without S3:
//! credentials to sign a POST policy with, and the multipart upload's steps.

use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use stt_common::error::display_chain;
use stt_common::store::storage_err;
use stt_common::{Error, Result};

use crate::presign::SigningCredentials;

/// A part as S3 holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    pub number: i32,
    pub size: u64,
    pub etag: String,
}

#[async_trait]
pub trait DirectUploads: Send + Sync {
    /// The credentials to sign a POST policy with (the function's role).
    async fn credentials(&self) -> Result<SigningCredentials>;
    /// Starts a multipart upload of `key` with its content type; S3's upload id.
    async fn create_multipart(&self, bucket: &str, key: &str, content_type: &str)
        -> Result<String>;
    /// A presigned `PUT` of one part.
    async fn presign_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
        expires_in: Duration,
    ) -> Result<String>;
    /// The parts S3 holds; `None` when the multipart upload no longer exists (completed or
    /// aborted).
    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<StoredPart>>>;
    async fn complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<()>;
    /// Aborts a multipart upload; one already gone is no error.
    async fn abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()>;
}

pub struct S3DirectUploads {
    client: aws_sdk_s3::Client,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
}

impl S3DirectUploads {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        // The browser computes no checksum: none is asked for where S3 does not require one
        // (the SDK 1.157 already leaves checksums out of presigned requests).
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some() || stt_common::endpoint_overridden())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        S3DirectUploads {
            client: aws_sdk_s3::Client::from_conf(conf),
            credentials: sdk.credentials_provider(),
        }
    }
}

#[async_trait]
impl DirectUploads for S3DirectUploads {
    async fn credentials(&self) -> Result<SigningCredentials> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| Error::Config("no AWS credentials to sign uploads with".into()))?;
        let c = provider
            .provide_credentials()
            .await
            .map_err(|e| Error::service("credentials", display_chain(&e)))?;
        Ok(SigningCredentials {
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().map(str::to_owned),
        })
    }

    async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
    ) -> Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| storage_err("CreateMultipartUpload", bucket, key, &e))?;
        out.upload_id.ok_or_else(|| Error::Storage {
            op: "CreateMultipartUpload",
            bucket: bucket.into(),
            key: key.into(),
            message: "S3 answered no UploadId".into(),
        })
    }

    async fn presign_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: i32,
        expires_in: Duration,
    ) -> Result<String> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| Error::Config(format!("presigning: {e}")))?;
        let req = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part)
            .presigned(config)
            .await
            .map_err(|e| storage_err("UploadPart (presign)", bucket, key, &e))?;
        Ok(req.uri().to_owned())
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<StoredPart>>> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = match self
                .client
                .list_parts()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.code() == Some("NoSuchUpload") => return Ok(None),
                Err(e) => return Err(storage_err("ListParts", bucket, key, &e)),
            };
            for p in out.parts() {
                parts.push(StoredPart {
                    number: p.part_number().unwrap_or_default(),
                    size: p.size().unwrap_or_default().max(0) as u64,
                    etag: p.e_tag().unwrap_or_default().to_owned(),
                });
            }
            if out.is_truncated() != Some(true) {
                return Ok(Some(parts));
            }
            marker = out.next_part_number_marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(Some(parts));
            }
        }
    }

    async fn complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<()> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number)
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .send()
            .await
            .map_err(|e| storage_err("CompleteMultipartUpload", bucket, key, &e))?;
        Ok(())
    }

    async fn abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(storage_err("AbortMultipartUpload", bucket, key, &e)),
        }
    }
}
