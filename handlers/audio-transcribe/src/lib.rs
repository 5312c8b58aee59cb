//! `audio_transcribe`: S3 `ObjectCreated` on `input_audio/` → Amazon Transcribe job.
//!
//! The job name is derived from the object key and a hash of it, so a retried event asks for
//! the same job, and Transcribe's `ConflictException` ("job name already exists") counts as
//! success: a retry neither fails nor starts a second job.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_transcribe::types::{LanguageCode, Media, MediaFormat};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stt_common::error::display_chain;
use stt_common::events::S3Notification;
use stt_common::keys::{self, INPUT_PREFIX};
use stt_common::repo::{MySqlRepo, UploadRepo};
use stt_common::{Error, Result};

/// Transcribe job names: `[0-9a-zA-Z._-]`, at most 200 characters.
pub const MAX_JOB_NAME: usize = 200;

/// What is asked of Transcribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub job_name: String,
    pub media_uri: String,
    pub media_format: Option<&'static str>,
    pub language: String,
    pub output_bucket: String,
    pub output_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    /// The job already exists (a retried event): nothing to do.
    AlreadyExists,
}

#[async_trait]
pub trait Transcriber: Send + Sync {
    async fn start(&self, job: &JobRequest) -> Result<StartOutcome>;
}

/// Amazon Transcribe through the SDK.
pub struct TranscribeClient(pub aws_sdk_transcribe::Client);

#[async_trait]
impl Transcriber for TranscribeClient {
    async fn start(&self, job: &JobRequest) -> Result<StartOutcome> {
        let mut req = self
            .0
            .start_transcription_job()
            .transcription_job_name(&job.job_name)
            .language_code(LanguageCode::from(job.language.as_str()))
            .media(Media::builder().media_file_uri(&job.media_uri).build())
            .output_bucket_name(&job.output_bucket)
            .output_key(&job.output_key);
        if let Some(f) = job.media_format {
            req = req.media_format(MediaFormat::from(f));
        }
        match req.send().await {
            Ok(_) => Ok(StartOutcome::Started),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(StartOutcome::AlreadyExists)
            }
            Err(e) => Err(Error::service(
                "transcribe:StartTranscriptionJob",
                display_chain(&e),
            )),
        }
    }
}

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub transcriber: Arc<dyn Transcriber>,
}

impl Deps {
    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        let pool = stt_common::db::pool_from_env(&sdk).await?;
        Ok(Deps {
            repo: Arc::new(MySqlRepo::new(pool)),
            transcriber: Arc::new(TranscribeClient(aws_sdk_transcribe::Client::new(&sdk))),
        })
    }
}

/// A valid, unique and deterministic job name for an object key: the key's safe characters
/// (others become `-`), cut to fit, then `-` and 16 hex digits of SHA-256 of the key.
pub fn job_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let body = key.strip_prefix(INPUT_PREFIX).unwrap_or(key);
    let mut safe = String::with_capacity(body.len());
    for c in body.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && safe.ends_with('-')) {
            safe.push(c);
        }
    }
    let room = MAX_JOB_NAME - "stt-".len() - 1 - hash.len();
    let safe: String = safe.trim_matches('-').chars().take(room).collect();
    if safe.is_empty() {
        format!("stt-{hash}")
    } else {
        format!("stt-{safe}-{hash}")
    }
}

/// Transcribe's `MediaFormat` for a file name, if the extension names one.
pub fn media_format(name: &str) -> Option<&'static str> {
    let ext = keys::extension(name)?;
    ["mp3", "mp4", "wav", "flac", "ogg", "amr", "webm", "m4a"]
        .into_iter()
        .find(|f| *f == ext)
}

pub async fn handler(deps: &Deps, event: S3Notification) -> Result<Value> {
    if event.is_test_event() {
        tracing::info!("s3:TestEvent ignored");
        return Ok(json!({ "skipped": "s3:TestEvent" }));
    }
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for obj in event.created_objects()? {
        let Some((upload_id, name)) = keys::split_key(&obj.key, INPUT_PREFIX) else {
            tracing::warn!(
                key = obj.key,
                "not an input_audio/{{upload_id}}/{{file}} key; skipped"
            );
            skipped.push(obj.key.clone());
            continue;
        };
        let Some(upload) = deps.repo.find(upload_id).await? else {
            tracing::warn!(key = obj.key, "no upload recorded for this key; skipped");
            skipped.push(obj.key.clone());
            continue;
        };
        if upload.audio_key != obj.key {
            tracing::warn!(
                key = obj.key,
                recorded = upload.audio_key,
                "key differs from the recorded one; skipped"
            );
            skipped.push(obj.key.clone());
            continue;
        }
        let job = JobRequest {
            job_name: job_name(&obj.key),
            media_uri: format!("s3://{}/{}", obj.bucket, obj.key),
            media_format: media_format(name),
            language: upload.language.clone(),
            output_bucket: obj.bucket.clone(),
            output_key: keys::transcript_key(upload_id),
        };
        // Record the job name first: the job may complete before this function returns,
        // and save_text finds the upload by it.
        deps.repo.set_job(upload_id, &job.job_name).await?;
        let outcome = deps.transcriber.start(&job).await?;
        tracing::info!(
            job = job.job_name,
            ?outcome,
            key = obj.key,
            "transcription job"
        );
        jobs.push(json!({
            "jobName": job.job_name,
            "key": obj.key,
            "started": outcome == StartOutcome::Started,
        }));
    }
    Ok(json!({ "jobs": jobs, "skipped": skipped }))
}
