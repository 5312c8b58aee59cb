//! `send_email`: S3 `ObjectCreated` on `output_text/*.txt` → mail the text to the uploader.
//!
//! Only `.txt` keys are handled (never Transcribe's `.json` or its
//! `.write_access_check_file.temp`). A conditional `UPDATE ... WHERE emailed_at IS NULL`
//! claims the mail before sending, so a repeated event sends no second mail; a failed send
//! gives the claim back so the retry can mail.

pub mod mail;

use std::sync::Arc;

use serde_json::{json, Value};
use stt_common::events::S3Notification;
use stt_common::keys::{self, OUTPUT_PREFIX};
use stt_common::repo::{MySqlRepo, Upload, UploadRepo};
use stt_common::store::{ObjectStore, S3Store};
use stt_common::Result;

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
        let pool = stt_common::db::pool_from_env(&sdk).await?;
        Ok(Deps {
            repo: Arc::new(MySqlRepo::new(pool)),
            store: Arc::new(S3Store::new(stt_common::s3_client(&sdk))),
            mailer: mail::from_env(&sdk).await?,
            from: stt_common::config::req_env("MAIL_FROM")?,
        })
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The mail for an upload and its text.
pub fn compose(from: &str, upload: &Upload, text: &str) -> Mail {
    let subject = format!("Transcript of {} ({})", upload.filename, upload.language);
    let shown = if text.trim().is_empty() {
        "(no speech was recognised)"
    } else {
        text
    };
    let text_body = format!(
        "Hello,\n\nhere is the transcript of your file \"{}\" (language {}):\n\n{}\n\n-- \nspeech-to-text service\n",
        upload.filename, upload.language, shown
    );
    let html_body = format!(
        "<!DOCTYPE html><html><body><p>Hello,</p><p>here is the transcript of your file \
         <b>{}</b> (language {}):</p><pre style=\"white-space:pre-wrap;font-family:inherit\">{}</pre>\
         <p style=\"color:#666\">speech-to-text service</p></body></html>",
        html_escape(&upload.filename),
        html_escape(&upload.language),
        html_escape(shown)
    );
    Mail {
        from: from.to_string(),
        to: upload.email.clone(),
        subject,
        text: text_body,
        html: html_body,
    }
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
        if !deps.repo.claim_email(upload_id).await? {
            tracing::info!(key = obj.key, "already mailed; skipped");
            skipped.push(obj.key);
            continue;
        }
        let result = async {
            let body = deps.store.get(&obj.bucket, &obj.key).await?;
            let text = String::from_utf8_lossy(&body);
            let mail = compose(&deps.from, &upload, &text);
            deps.mailer.send(&mail).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, key = obj.key, "mailing failed; the claim is given back");
            deps.repo.release_email(upload_id).await?;
            return Err(e);
        }
        tracing::info!(key = obj.key, upload_id, "transcript mailed");
        sent.push(obj.key);
    }
    Ok(json!({ "sent": sent, "skipped": skipped }))
}
