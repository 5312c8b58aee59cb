//! `audio_transcribe`: S3 `ObjectCreated` on `input_audio/` → Amazon Transcribe job.
//!
//! The page sent the file straight to S3, so the object is checked against what file_upload
//! recorded before any job starts: its size must be the declared size, and its first bytes
//! (an ID3 tag skipped) the declared format. A mismatch marks the upload `FAILED` with the
//! reason and writes the failure notice (the uploader is mailed); a match marks it
//! `UPLOADED`.
//!
//! The job name is derived from the object key and a hash of it, so a retried event asks for
//! the same job, and Transcribe's `ConflictException` ("job name already exists") counts as
//! success: a retry neither fails nor starts a second job.
//!
//! # Errors of StartTranscriptionJob
//!
//! | answer | meaning | what happens |
//! |---|---|---|
//! | `ConflictException` | the job exists (a retried event) | success |
//! | `BadRequestException` | Transcribe will never take this request | **permanent**: the upload is marked `FAILED` with the reason, a failure notice `output_text/{id}/.failure-notice.txt` is written (send_email mails the uploader), and the invocation succeeds (nothing to retry) |
//! | `LimitExceededException` | the SDK retried it as throttling ([`MAX_ATTEMPTS`] attempts) and it persists (too many jobs, or a file too long) | **permanent**, as above |
//! | throttling, 5xx (`InternalFailureException`), timeouts, connection errors, anything else | transient or an operator's problem (e.g. `AccessDeniedException`) | the invocation fails, so Lambda retries the S3 event (then the stack's failed-event queue) |

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_transcribe::error::ProvideErrorMetadata;
use aws_sdk_transcribe::error::SdkError;
use aws_sdk_transcribe::operation::start_transcription_job::StartTranscriptionJobError;
use aws_sdk_transcribe::types::{LanguageCode, Media, MediaFormat};
use bytes::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stt_common::audio::{self, AudioFormat};
use stt_common::db::Database;
use stt_common::error::display_chain;
use stt_common::events::S3Notification;
use stt_common::keys::{self, INPUT_PREFIX};
use stt_common::repo::{status, truncate_chars, MySqlRepo, Ticket, UploadRepo, MAX_REASON_CHARS};
use stt_common::store::{ObjectStore, S3Store};
use stt_common::{Error, Result};

/// Attempts the Transcribe client makes per call (the SDK's standard retry mode, exponential
/// backoff with jitter, at most 20 s between attempts; the SDK's default is 3). Transcribe's
/// throttling answer is `LimitExceededException`, so a few more attempts ride out a burst
/// before the error counts as permanent; with the function's 60 s timeout there is room.
pub const MAX_ATTEMPTS: u32 = 5;

/// Transcribe job names: `[0-9a-zA-Z._-]`, at most 200 characters.
pub const MAX_JOB_NAME: usize = 200;

/// How job names begin when `TRANSCRIBE_JOB_PREFIX` is not set. The stack sets `{stack}.`: the
/// account's jobs share one name space and one stream of job events, and its EventBridge rule
/// hands `save_text` only the jobs that begin with its prefix.
pub const DEFAULT_JOB_PREFIX: &str = "stt-";

/// The longest prefix taken: a stack name (at most 24 characters) and its dot, with room.
const MAX_JOB_PREFIX: usize = 64;

/// `TRANSCRIBE_JOB_PREFIX`, checked: Transcribe's name characters only, at most 64 of them.
pub fn job_prefix_from(value: Option<&str>) -> Result<String> {
    let Some(prefix) = value.filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_JOB_PREFIX.to_owned());
    };
    let valid = prefix.len() <= MAX_JOB_PREFIX
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(Error::Config(format!(
            "TRANSCRIBE_JOB_PREFIX must be at most {MAX_JOB_PREFIX} of 0-9 a-z A-Z . _ -: {prefix:?}"
        )));
    }
    Ok(prefix.to_owned())
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    /// The job already exists (a retried event): nothing to do.
    AlreadyExists,
    /// Transcribe refused the job for good (`BadRequestException`, or
    /// `LimitExceededException` after the SDK's retries): the reason, `{code}: {message}`.
    Refused(String),
}

/// How an error of StartTranscriptionJob is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ConflictException`: the job exists.
    AlreadyExists,
    /// Retrying cannot help; the reason to record.
    Permanent(String),
    /// Fail the invocation so that Lambda retries.
    Transient,
}

/// Classifies an error of StartTranscriptionJob (see the module documentation).
pub fn classify(err: &SdkError<StartTranscriptionJobError>) -> ErrorKind {
    let Some(service) = err.as_service_error() else {
        return ErrorKind::Transient; // timeout, connection, unparsable answer
    };
    if service.is_conflict_exception() {
        return ErrorKind::AlreadyExists;
    }
    if service.is_bad_request_exception() || service.is_limit_exceeded_exception() {
        let code = service.code().unwrap_or("BadRequestException");
        let message = service.message().unwrap_or("(no message)");
        let reason = format!("StartTranscriptionJob: {code}: {message}");
        return ErrorKind::Permanent(truncate_chars(&reason, MAX_REASON_CHARS).to_string());
    }
    ErrorKind::Transient
}

#[async_trait]
pub trait Transcriber: Send + Sync {
    async fn start(&self, job: &JobRequest) -> Result<StartOutcome>;
}

/// Amazon Transcribe through the SDK.
pub struct TranscribeClient(pub aws_sdk_transcribe::Client);

impl TranscribeClient {
    /// The client with [`MAX_ATTEMPTS`] attempts per call (the rest of the shared retry
    /// configuration is kept).
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let retry = sdk
            .retry_config()
            .cloned()
            .unwrap_or_else(aws_config::retry::RetryConfig::standard)
            .with_max_attempts(MAX_ATTEMPTS);
        TranscribeClient(aws_sdk_transcribe::Client::from_conf(
            aws_sdk_transcribe::config::Builder::from(sdk)
                .retry_config(retry)
                .build(),
        ))
    }
}

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
            Err(e) => match classify(&e) {
                ErrorKind::AlreadyExists => Ok(StartOutcome::AlreadyExists),
                ErrorKind::Permanent(reason) => Ok(StartOutcome::Refused(reason)),
                ErrorKind::Transient => Err(Error::service(
                    "transcribe:StartTranscriptionJob",
                    display_chain(&e),
                )),
            },
        }
    }
}

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub transcriber: Arc<dyn Transcriber>,
    /// Where the failure notice is written (the audio bucket, `output_text/`).
    pub store: Arc<dyn ObjectStore>,
    /// How the names of this stack's jobs begin ([`job_prefix_from`]).
    pub job_prefix: String,
}

impl Deps {
    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        Ok(Deps {
            repo: Arc::new(MySqlRepo::with_database(Database::from_env(&sdk).await?)),
            transcriber: Arc::new(TranscribeClient::new(&sdk)),
            store: Arc::new(S3Store::new(stt_common::s3_client(&sdk))),
            job_prefix: job_prefix_from(std::env::var("TRANSCRIBE_JOB_PREFIX").ok().as_deref())?,
        })
    }
}

/// Marks the upload of a job `FAILED` with the reason, then writes the failure notice, whose
/// creation makes send_email tell the uploader. The row comes first: send_email reads it.
/// Returns the notice's key.
pub async fn record_failure(
    repo: &dyn UploadRepo,
    store: &dyn ObjectStore,
    bucket: &str,
    upload_id: &str,
    job_name: &str,
    reason: &str,
) -> Result<String> {
    let reason = truncate_chars(reason, MAX_REASON_CHARS);
    if !repo.set_failed(job_name, reason).await? {
        // send_email would skip a notice for a row that is not FAILED: write none.
        return Err(Error::BadEvent(format!(
            "no upload has job {job_name}; the failure ({reason}) could not be recorded"
        )));
    }
    write_failure_notice(store, bucket, upload_id, reason).await
}

/// Writes the failure notice `output_text/{id}/.failure-notice.txt`, whose creation makes
/// send_email tell the uploader; its key.
async fn write_failure_notice(
    store: &dyn ObjectStore,
    bucket: &str,
    upload_id: &str,
    reason: &str,
) -> Result<String> {
    let key = keys::failure_notice_key(upload_id);
    store
        .put(
            bucket,
            &key,
            Bytes::from(format!("{reason}\n")),
            "text/plain; charset=utf-8",
        )
        .await?;
    Ok(key)
}

/// How many bytes of the object's start are read to recognise its format.
pub const SNIFF_BYTES: u64 = 64 * 1024;

/// Whether the stored object is what the uploader declared: `Err` carries the reason shown
/// to the uploader.
pub async fn check_object(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    ticket: &Ticket,
) -> Result<std::result::Result<(), String>> {
    let (head, size) = store.get_range(bucket, key, 0, SNIFF_BYTES).await?;
    if size != ticket.declared_bytes {
        return Ok(Err(format!(
            "the file that arrived is {size} bytes; {} were declared",
            ticket.declared_bytes
        )));
    }
    let mut detected = audio::detect(&head);
    // A large ID3 tag (cover art) pushes the first MPEG frame past what was read.
    if let Some(tag) = audio::id3_tag_len(&head).filter(|t| *t as u64 >= SNIFF_BYTES - 4096) {
        if detected.is_none() && (tag as u64) < size {
            let (after, _) = store.get_range(bucket, key, tag as u64, 8192).await?;
            detected = audio::detect(&after).filter(|f| *f == AudioFormat::Mp3);
        }
    }
    let declared = AudioFormat::from_content_type(&ticket.content_type);
    Ok(match (detected, declared) {
        (None, _) => Err(
            "the file is not a recognised audio file (mp3, wav, flac, ogg, m4a/mp4, webm, amr)"
                .into(),
        ),
        (Some(found), Some(declared)) if !found.matches_declared(declared) => Err(format!(
            "the file holds {} audio but was declared {}",
            found.extension(),
            ticket.content_type
        )),
        _ => Ok(()),
    })
}

/// Marks an upload whose object failed the check `FAILED`, then writes the failure notice
/// (send_email mails the uploader, once). A retried event finds the row failed for this same
/// reason and writes the notice again, so a crash between the two steps still tells the
/// uploader. False when the upload had moved on otherwise.
pub async fn reject_object(
    repo: &dyn UploadRepo,
    store: &dyn ObjectStore,
    bucket: &str,
    upload_id: &str,
    reason: &str,
) -> Result<bool> {
    if !repo.fail_upload(upload_id, reason).await? {
        let reason = truncate_chars(reason, MAX_REASON_CHARS);
        let same = repo.find(upload_id).await?.is_some_and(|u| {
            u.status == status::FAILED && u.failure_reason.as_deref() == Some(reason)
        });
        if !same {
            return Ok(false);
        }
    }
    write_failure_notice(store, bucket, upload_id, reason).await?;
    Ok(true)
}

/// A valid, unique and deterministic job name for an object key: the prefix, the key's safe
/// characters (others become `-`), cut to fit, then `-` and 16 hex digits of SHA-256 of the key.
pub fn job_name(prefix: &str, key: &str) -> String {
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
    let room = MAX_JOB_NAME - prefix.len() - 1 - hash.len();
    let safe: String = safe.trim_matches('-').chars().take(room).collect();
    if safe.is_empty() {
        format!("{prefix}{hash}")
    } else {
        format!("{prefix}{safe}-{hash}")
    }
}

/// Transcribe's `MediaFormat` for a file name, if the extension names one (file_upload
/// always stores one of them, lowercase).
pub fn media_format(name: &str) -> Option<&'static str> {
    let ext = keys::extension(name)?;
    keys::AUDIO_EXTENSIONS.into_iter().find(|f| *f == ext)
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
        if let Some(ticket) = deps.repo.ticket(upload_id).await? {
            if let Err(reason) =
                check_object(deps.store.as_ref(), &obj.bucket, &obj.key, &ticket).await?
            {
                tracing::warn!(
                    key = obj.key,
                    reason,
                    "the file is not what was declared: FAILED"
                );
                let told = reject_object(
                    deps.repo.as_ref(),
                    deps.store.as_ref(),
                    &obj.bucket,
                    upload_id,
                    &reason,
                )
                .await?;
                jobs.push(json!({
                    "key": obj.key,
                    "started": false,
                    "failed": reason,
                    "notice": told.then(|| keys::failure_notice_key(upload_id)),
                }));
                continue;
            }
            // One conditional UPDATE decides against the page's `abort`, which fails only an
            // upload whose file has not been taken: whichever comes first wins.
            if !deps.repo.set_uploaded(upload_id).await? {
                let now = deps.repo.find(upload_id).await?;
                if now.is_some_and(|u| u.status == status::FAILED && u.job_name.is_none()) {
                    // Given up by the page before the file arrived: the uploader was told.
                    tracing::warn!(key = obj.key, "the upload was abandoned; skipped");
                    skipped.push(obj.key.clone());
                    continue;
                }
            }
        }
        let job = JobRequest {
            job_name: job_name(&deps.job_prefix, &obj.key),
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
        if let StartOutcome::Refused(reason) = &outcome {
            tracing::warn!(
                job = job.job_name,
                key = obj.key,
                reason,
                "Transcribe refused the job for good: the upload is FAILED and the uploader told"
            );
            let notice = record_failure(
                deps.repo.as_ref(),
                deps.store.as_ref(),
                &obj.bucket,
                upload_id,
                &job.job_name,
                reason,
            )
            .await?;
            jobs.push(json!({
                "jobName": job.job_name,
                "key": obj.key,
                "started": false,
                "failed": reason,
                "notice": notice,
            }));
            continue;
        }
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
