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
//!
//! Nothing goes to an address that has not confirmed it wants transcripts (double opt-in,
//! [`stt_common::recipients`]): the first result for an address sends a confirmation mail
//! with a link instead, and the result waits (its row stays unmailed). Following the link
//! (the page posts the token to the API's `/confirm`, [`confirm`]) confirms the address and
//! sends what waited; later results are mailed directly.

pub mod compose;
pub mod confirm;
pub mod mail;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use stt_common::config::{opt_env, req_env};
use stt_common::db::Database;
use stt_common::events::S3Notification;
use stt_common::keys::{self, OUTPUT_PREFIX};
use stt_common::privacy::mask_email;
use stt_common::recipients::{new_token, token_digest, Consent, RecipientRepo};
use stt_common::repo::{status, MySqlRepo, Upload, UploadRepo};
use stt_common::store::{ObjectStore, S3Store};
use stt_common::Result;

pub use compose::{confirmation_mail, failure_mail, html_escape, transcript_mail};
pub use mail::{Mail, Mailer};

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub recipients: Arc<dyn RecipientRepo>,
    pub store: Arc<dyn ObjectStore>,
    pub mailer: Arc<dyn Mailer>,
    /// Sender address (`MAIL_FROM`), verified in SES.
    pub from: String,
    /// The bucket of the transcripts (`AUDIO_BUCKET`), read when a confirmation releases them.
    pub bucket: String,
    /// The page a confirmation link opens (`CONFIRM_PAGE_URL`); the token follows in the
    /// fragment, which browsers never send to a server (nor to its logs).
    pub confirm_page: String,
    /// How long a confirmation link works (`CONFIRMATION_LINK_HOURS`, default 24).
    pub link_valid_for: Duration,
    /// Origins allowed by CORS on `/confirm` (`ALLOWED_ORIGIN`, comma-separated).
    pub allowed_origins: Vec<String>,
}

/// How long a confirmation link works when the environment does not say.
pub const DEFAULT_LINK_HOURS: u64 = 24;

fn link_hours_from_env() -> Result<u64> {
    match opt_env("CONFIRMATION_LINK_HOURS") {
        None => Ok(DEFAULT_LINK_HOURS),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|h| (1..=720).contains(h))
            .ok_or_else(|| {
                stt_common::Error::Config(format!(
                    "CONFIRMATION_LINK_HOURS must be a whole number of hours from 1 to 720, not {v:?}"
                ))
            }),
    }
}

/// The confirmation page must be a web address: the link is the mail's only content.
fn confirm_page_from_env() -> Result<String> {
    let page = req_env("CONFIRM_PAGE_URL")?;
    if !(page.starts_with("https://") || page.starts_with("http://")) || page.contains('#') {
        return Err(stt_common::Error::Config(format!(
            "CONFIRM_PAGE_URL must be an http(s) address without a fragment, not {page:?}"
        )));
    }
    Ok(page)
}

impl Deps {
    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        let repo = Arc::new(MySqlRepo::with_database(Database::from_env(&sdk).await?));
        Ok(Deps {
            repo: repo.clone(),
            recipients: repo,
            store: Arc::new(S3Store::new(stt_common::s3_client(&sdk))),
            mailer: mail::from_env(&sdk).await?,
            from: req_env("MAIL_FROM")?,
            bucket: req_env("AUDIO_BUCKET")?,
            confirm_page: confirm_page_from_env()?,
            link_valid_for: Duration::from_secs(link_hours_from_env()? * 3600),
            allowed_origins: stt_common::cors::parse_origins(
                &opt_env("ALLOWED_ORIGIN").unwrap_or_default(),
            ),
        })
    }

    /// The link of a confirmation mail.
    pub fn confirmation_link(&self, token: &str) -> String {
        format!("{}#token={token}", self.confirm_page)
    }
}

/// Whether `upload`'s address may be mailed now. When it has not confirmed and no valid link
/// is out, a confirmation mail goes out (once: one link at a time per address).
pub async fn confirmed_or_ask(deps: &Deps, upload: &Upload) -> Result<bool> {
    match deps.recipients.consent(&upload.email).await? {
        Consent::Confirmed => return Ok(true),
        Consent::LinkOut => return Ok(false),
        Consent::Unasked => {}
    }
    let token = new_token();
    let digest = token_digest(&token);
    if !deps
        .recipients
        .issue_link(&upload.email, &digest, deps.link_valid_for)
        .await?
    {
        // Another result for the address sent a link meanwhile, or the address was just
        // confirmed (the confirmation then releases this result too; the claim keeps it to
        // one mail either way).
        return Ok(deps.recipients.consent(&upload.email).await? == Consent::Confirmed);
    }
    let mail = confirmation_mail(
        &deps.from,
        &upload.email,
        &upload.language,
        &deps.confirmation_link(&token),
        deps.link_valid_for.as_secs() / 3600,
    );
    if let Err(e) = deps.mailer.send(&mail).await {
        // Taken back, so the retry of this event sends a new link.
        deps.recipients
            .withdraw_link(&upload.email, &digest)
            .await?;
        return Err(e);
    }
    tracing::info!(
        upload_id = upload.upload_id,
        to = mask_email(&upload.email),
        "confirmation mail sent; the result waits for the address to confirm"
    );
    Ok(false)
}

/// Mails one finished upload (its transcript, or the failure) unless it was mailed already.
/// True when this call sent it.
pub async fn deliver(deps: &Deps, upload: &Upload, bucket: &str, text_key: &str) -> Result<bool> {
    if !deps.repo.claim_email(&upload.upload_id).await? {
        return Ok(false);
    }
    let failed = upload.status == status::FAILED;
    let result = async {
        let mail = if failed {
            failure_mail(&deps.from, upload)
        } else {
            let body = deps.store.get(bucket, text_key).await?;
            transcript_mail(&deps.from, upload, &String::from_utf8_lossy(&body))
        };
        deps.mailer.send(&mail).await
    }
    .await;
    let to = mask_email(&upload.email);
    if let Err(e) = result {
        tracing::error!(error = %e, upload_id = upload.upload_id, to, "mailing failed; the claim is given back");
        deps.repo.release_email(&upload.upload_id).await?;
        return Err(e);
    }
    let what = if failed { "failure" } else { "transcript" };
    tracing::info!(upload_id = upload.upload_id, to, what, "mailed");
    Ok(true)
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
    // Results whose address has not confirmed yet.
    let mut waiting = Vec::new();
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
        if upload.emailed {
            tracing::info!(key = obj.key, "already mailed; skipped");
            skipped.push(obj.key);
            continue;
        }
        if !confirmed_or_ask(deps, &upload).await? {
            waiting.push(obj.key);
            continue;
        }
        if deliver(deps, &upload, &obj.bucket, &obj.key).await? {
            sent.push(obj.key);
        } else {
            tracing::info!(key = obj.key, "already mailed; skipped");
            skipped.push(obj.key);
        }
    }
    Ok(json!({ "sent": sent, "skipped": skipped, "waiting": waiting }))
}
