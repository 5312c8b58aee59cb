//! `send_email`: S3 `ObjectCreated` on `output_text/*.txt` → mail the uploader: the
//! transcript, or, when the upload is `FAILED`, a failure message.
//!
//! Only `.txt` keys are handled (never Transcribe's `.json` or its
//! `.write_access_check_file.temp`). Two kinds of `.txt` arrive: the text save_text writes,
//! and the failure notice `output_text/{upload_id}/.failure-notice.txt` that audio_transcribe
//! (Transcribe refused the job) or save_text (the job FAILED) writes. The row decides which
//! mail is sent: `FAILED` → the failure mail (the notice's body is not read), otherwise the
//! text of the object. A notice for a row that is not `FAILED` is skipped.
//!
//! A conditional `UPDATE ... WHERE emailed_at IS NULL` claims the mail before sending, so a
//! repeated event (or a second notice) sends no second mail; a failed send gives the claim
//! back so the retry can mail. Mails are in Korean for `ko-KR` uploads, English otherwise
//! ([`compose`]). Addresses in logs and errors are masked (`u***@example.com`).

pub mod compose;
pub mod mail;

use std::sync::Arc;

use serde_json::{json, Value};
use stt_common::db::Database;
use stt_common::events::S3Notification;
use stt_common::keys::{self, OUTPUT_PREFIX};
use stt_common::privacy::mask_email;
use stt_common::repo::{status, MySqlRepo, Upload, UploadRepo};
use stt_common::store::{ObjectStore, S3Store};
use stt_common::Result;

pub use compose::{failure_mail, html_escape, transcript_mail};
pub use mail::{Mail, Mailer};

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub store: Arc<dyn ObjectStore>,
    pub mailer: Arc<dyn Mailer>,
    /// Sender address (`MAIL_FROM`), verified in SES.
    pub from: String,
}

impl Deps {
    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        Ok(Deps {
            repo: Arc::new(MySqlRepo::with_database(Database::from_env(&sdk).await?)),
            store: Arc::new(S3Store::new(stt_common::s3_client(&sdk))),
            mailer: mail::from_env(&sdk).await?,
            from: stt_common::config::req_env("MAIL_FROM")?,
        })
    }
}

/// The transcript mail for an upload and its text (see [`compose::transcript_mail`]).
pub fn compose(from: &str, upload: &Upload, text: &str) -> Mail {
    transcript_mail(from, upload, text)
}

pub async fn handler(deps: &Deps, event: S3Notification) -> Result<Value> {
    if event.is_test_event() {
        tracing::info!("s3:TestEvent ignored");
        return Ok(json!({ "skipped": "s3:TestEvent" }));
    }
    let mut sent = Vec::new();
    let mut skipped = Vec::new();
    for obj in event.created_objects()? {
        if !obj.key.starts_with(OUTPUT_PREFIX) || !obj.key.ends_with(".txt") {
            tracing::info!(key = obj.key, "not a text result; skipped");
            skipped.push(obj.key);
            continue;
        }
        let Some((upload_id, _)) = keys::split_key(&obj.key, OUTPUT_PREFIX) else {
            tracing::warn!(
                key = obj.key,
                "not an output_text/{{upload_id}}/{{file}} key; skipped"
            );
            skipped.push(obj.key);
            continue;
        };
        let Some(upload) = deps.repo.find(upload_id).await? else {
            tracing::warn!(key = obj.key, "no upload recorded for this key; skipped");
            skipped.push(obj.key);
            continue;
        };
        let failed = upload.status == status::FAILED;
        if keys::is_failure_notice(&obj.key) && !failed {
            tracing::warn!(
                key = obj.key,
                status = upload.status,
                "a failure notice, but the upload is not FAILED; skipped"
            );
            skipped.push(obj.key);
            continue;
        }
        if !deps.repo.claim_email(upload_id).await? {
            tracing::info!(key = obj.key, "already mailed; skipped");
            skipped.push(obj.key);
            continue;
        }
        let result = async {
            let mail = if failed {
                failure_mail(&deps.from, &upload)
            } else {
                let body = deps.store.get(&obj.bucket, &obj.key).await?;
                transcript_mail(&deps.from, &upload, &String::from_utf8_lossy(&body))
            };
            deps.mailer.send(&mail).await
        }
        .await;
        let to = mask_email(&upload.email);
        if let Err(e) = result {
            tracing::error!(error = %e, key = obj.key, to, "mailing failed; the claim is given back");
            deps.repo.release_email(upload_id).await?;
            return Err(e);
        }
        let what = if failed { "failure" } else { "transcript" };
        tracing::info!(key = obj.key, upload_id, to, what, "mailed");
        sent.push(obj.key);
    }
    Ok(json!({ "sent": sent, "skipped": skipped }))
}
