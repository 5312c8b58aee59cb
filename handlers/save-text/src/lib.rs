//! `save_text`: EventBridge `Transcribe Job State Change` → on COMPLETED, the transcript
//! text as UTF-8 `.txt` under `output_text/`; on FAILED, the status and reason in MySQL and
//! the failure notice `output_text/{upload_id}/.failure-notice.txt`, whose creation makes
//! send_email tell the uploader.
//!
//! The event's `detail` names only the job and its status, so the transcript location (and,
//! for a failure, the audio bucket) comes from `GetTranscriptionJob`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stt_common::db::Database;
use stt_common::error::display_chain;
use stt_common::keys::{self, INPUT_PREFIX};
use stt_common::repo::{truncate_chars, MySqlRepo, UploadRepo, MAX_REASON_CHARS};
use stt_common::store::{ObjectStore, S3Store};
use stt_common::{Error, Result};

/// `detail` of a `Transcribe Job State Change` event.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JobStateChange {
    #[serde(rename = "TranscriptionJobName")]
    pub job_name: String,
    #[serde(rename = "TranscriptionJobStatus")]
    pub status: String,
    #[serde(
        rename = "FailureReason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason: Option<String>,
}

pub type TranscribeEvent = EventBridgeEvent<JobStateChange>;

/// What `GetTranscriptionJob` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInfo {
    pub status: String,
    pub transcript_uri: Option<String>,
    pub failure_reason: Option<String>,
    /// `Media.MediaFileUri`: `s3://{audio bucket}/input_audio/...`.
    pub media_uri: Option<String>,
}

#[async_trait]
pub trait Jobs: Send + Sync {
    async fn get(&self, job_name: &str) -> Result<JobInfo>;
}

pub struct TranscribeJobs(pub aws_sdk_transcribe::Client);

#[async_trait]
impl Jobs for TranscribeJobs {
    async fn get(&self, job_name: &str) -> Result<JobInfo> {
        let out = self
            .0
            .get_transcription_job()
            .transcription_job_name(job_name)
            .send()
            .await
            .map_err(|e| Error::service("transcribe:GetTranscriptionJob", display_chain(&e)))?;
        let job = out.transcription_job().ok_or_else(|| {
            Error::service("transcribe:GetTranscriptionJob", "no job in the answer")
        })?;
        Ok(JobInfo {
            status: job
                .transcription_job_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            transcript_uri: job
                .transcript()
                .and_then(|t| t.transcript_file_uri())
                .map(str::to_string),
            failure_reason: job.failure_reason().map(str::to_string),
            media_uri: job
                .media()
                .and_then(|m| m.media_file_uri())
                .map(str::to_string),
        })
    }
}

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub store: Arc<dyn ObjectStore>,
    pub jobs: Arc<dyn Jobs>,
}

impl Deps {
    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        Ok(Deps {
            repo: Arc::new(MySqlRepo::with_database(Database::from_env(&sdk).await?)),
            store: Arc::new(S3Store::new(stt_common::s3_client(&sdk))),
            jobs: Arc::new(TranscribeJobs(aws_sdk_transcribe::Client::new(&sdk))),
        })
    }
}

/// `results.transcripts[0].transcript` of a Transcribe output document.
pub fn extract_transcript(doc: &[u8]) -> Result<String> {
    let v: Value = serde_json::from_slice(doc)
        .map_err(|e| Error::BadEvent(format!("the transcript is not JSON: {e}")))?;
    v.pointer("/results/transcripts/0/transcript")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            Error::BadEvent("the transcript has no results.transcripts[0].transcript".into())
        })
}

pub async fn handler(deps: &Deps, event: TranscribeEvent) -> Result<Value> {
    if event.source != "aws.transcribe" {
        tracing::warn!(source = event.source, "not a Transcribe event; ignored");
        return Ok(json!({ "skipped": event.source }));
    }
    let detail = event.detail;
    let job = detail.job_name.as_str();
    match detail.status.as_str() {
        "COMPLETED" => completed(deps, job).await,
        "FAILED" => failed(deps, job, detail.failure_reason).await,
        other => {
            tracing::info!(job, status = other, "status ignored");
            Ok(json!({ "job": job, "skipped": other }))
        }
    }
}

/// FAILED: the reason into the row, then the failure notice next to where the text would
/// have been (the row first: the notice triggers send_email, which reads it).
async fn failed(deps: &Deps, job: &str, event_reason: Option<String>) -> Result<Value> {
    let Some(upload) = deps.repo.find_by_job(job).await? else {
        tracing::warn!(job, "no upload has this job; failure not recorded");
        return Ok(json!({ "job": job, "status": "FAILED", "recorded": false }));
    };
    // GetTranscriptionJob for the audio bucket (the event names only the job), and for the
    // reason when the event has none.
    let info = deps.jobs.get(job).await?;
    let reason = event_reason
        .filter(|r| !r.trim().is_empty())
        .or(info.failure_reason)
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    let reason = truncate_chars(&reason, MAX_REASON_CHARS);
    deps.repo.set_failed(job, reason).await?;
    let media = info.media_uri.ok_or_else(|| {
        Error::service(
            "transcribe:GetTranscriptionJob",
            format!("job {job} has no media URI"),
        )
    })?;
    let (bucket, _) = keys::parse_s3_uri(&media)?;
    let notice = keys::failure_notice_key(&upload.upload_id);
    deps.store
        .put(
            &bucket,
            &notice,
            Bytes::from(format!("{reason}\n")),
            "text/plain; charset=utf-8",
        )
        .await?;
    tracing::info!(
        job,
        reason,
        notice,
        "transcription failed; the uploader will be told"
    );
    Ok(json!({
        "job": job,
        "status": "FAILED",
        "reason": reason,
        "recorded": true,
        "notice": notice,
    }))
}

async fn completed(deps: &Deps, job: &str) -> Result<Value> {
    let Some(upload) = deps.repo.find_by_job(job).await? else {
        tracing::warn!(job, "no upload has this job; skipped");
        return Ok(json!({ "job": job, "skipped": "unknown job" }));
    };
    let info = deps.jobs.get(job).await?;
    let uri = info.transcript_uri.ok_or_else(|| {
        Error::service(
            "transcribe:GetTranscriptionJob",
            format!("job {job} has no transcript URI"),
        )
    })?;
    let (bucket, transcript_key) = keys::parse_s3_uri(&uri)?;
    let doc = deps.store.get(&bucket, &transcript_key).await?;
    let text = extract_transcript(&doc)?;
    let (upload_id, name) = keys::split_key(&upload.audio_key, INPUT_PREFIX).ok_or_else(|| {
        Error::BadEvent(format!(
            "recorded audio key {} has an unknown layout",
            upload.audio_key
        ))
    })?;
    let text_key = keys::text_key(upload_id, name);
    // The row first: writing the object triggers send_email, which reads it.
    deps.repo.set_transcribed(job, &text_key).await?;
    let chars = text.chars().count();
    deps.store
        .put(
            &bucket,
            &text_key,
            Bytes::from(text),
            "text/plain; charset=utf-8",
        )
        .await?;
    tracing::info!(job, text_key, chars, "transcript saved");
    Ok(json!({ "job": job, "status": "COMPLETED", "textKey": text_key, "chars": chars }))
}
