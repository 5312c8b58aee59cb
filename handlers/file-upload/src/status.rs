//! `POST /upload-status`: an upload's state for the page that made it (its token is the
//! proof), and the two steps only that page can take: `complete` a multipart upload once
//! every part is in S3, `abort` an upload S3 refused or the uploader gave up.
//!
//! The token travels in the body, not the URL, so that it stays out of access logs. A wrong
//! token and an unknown id get the same 404.

use serde::Deserialize;
use serde_json::{json, Value};
use stt_common::keys::is_upload_id;
use stt_common::repo::{status, Ticket, Upload};

use crate::direct::StoredPart;
use crate::{client_error, json_body, presign, server_error, token_hash, unix_now, Deps, Reply};

/// The resource path of this endpoint.
pub const PATH: &str = "upload-status";

/// Why an abandoned upload failed, as the row and the mail say.
pub const ABANDONED: &str = "the upload was stopped before the file arrived";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusRequest {
    upload_id: String,
    token: String,
    #[serde(default)]
    action: Option<String>,
}

/// The state the page shows, from the row (and the ticket's end, in case no one has marked
/// an ended upload EXPIRED yet).
pub fn state(upload: &Upload, ticket: &Ticket, now: i64) -> &'static str {
    match upload.status.as_str() {
        status::WAITING if ticket.expires_at < now => "expired",
        status::WAITING => "waiting",
        status::EXPIRED => "expired",
        status::UPLOADED => "uploaded",
        status::TRANSCRIBING => "transcribing",
        status::TRANSCRIBED if upload.emailed => "mailed",
        status::TRANSCRIBED => "transcribed",
        status::FAILED => "failed",
        _ => "uploaded",
    }
}

fn not_found() -> Reply {
    client_error(404, "not_found", "no such upload (or a wrong token)")
}

fn describe(upload: &Upload, ticket: &Ticket) -> Value {
    let state = state(upload, ticket, unix_now());
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(ticket.expires_at)
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    let mut body = json!({
        "uploadId": upload.upload_id,
        "state": state,
        "filename": upload.filename,
        "expiresAt": expires,
    });
    if state == "failed" {
        body["reason"] = json!(upload.failure_reason.as_deref().unwrap_or_default());
    }
    body
}

pub(crate) async fn answer(
    deps: &Deps,
    req: &aws_lambda_events::apigw::ApiGatewayProxyRequest,
) -> Result<Reply, Reply> {
    let r: StatusRequest = json_body(req)?;
    if !is_upload_id(&r.upload_id)
        || r.token.len() != 64
        || !r.token.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(not_found());
    }
    let db = |e: stt_common::Error| {
        tracing::error!(error = %e, "reading the upload failed");
        server_error()
    };
    if let Err(e) = deps.repo.expire_waiting().await {
        tracing::warn!(error = %e, "marking ended uploads EXPIRED failed");
    }
    let ticket = deps.repo.ticket(&r.upload_id).await.map_err(db)?;
    let Some(ticket) = ticket.filter(|t| same(&t.token_hash, &token_hash(&r.token))) else {
        return Err(not_found());
    };
    let Some(upload) = deps.repo.find(&r.upload_id).await.map_err(db)? else {
        return Err(not_found());
    };
    match r.action.as_deref() {
        None | Some("read") => {}
        Some("complete") => complete(deps, &upload, &ticket).await?,
        Some("abort") => abort(deps, &upload, &ticket).await?,
        Some(other) => {
            return Err(client_error(
                400,
                "bad_request",
                format!(
                    "unknown action {:?}",
                    other.chars().take(20).collect::<String>()
                ),
            ))
        }
    }
    let upload = deps
        .repo
        .find(&r.upload_id)
        .await
        .map_err(db)?
        .ok_or_else(not_found)?;
    Ok(Reply::ok(200, describe(&upload, &ticket)))
}

/// Constant-time comparison of two hashes (no early exit on the first difference).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Completes a multipart upload whose parts are all in S3, each of the planned size. When S3
/// no longer knows the multipart upload, it was completed (its answer lost, the page asking
/// again: the S3 event moves the row on) or aborted (the row failed or expired): the state
/// says which.
async fn complete(deps: &Deps, upload: &Upload, ticket: &Ticket) -> Result<(), Reply> {
    let Some(multipart_id) = &ticket.multipart_id else {
        return Err(client_error(
            409,
            "not_multipart",
            "this upload is a single POST; there is nothing to complete",
        ));
    };
    if ![status::WAITING, status::EXPIRED].contains(&upload.status.as_str()) {
        return Ok(()); // already complete (or failed): the state says which
    }
    let s3 = |e: stt_common::Error| {
        tracing::error!(error = %e, upload_id = upload.upload_id, "completing the upload failed");
        server_error()
    };
    let bucket = &deps.bucket;
    let key = &upload.audio_key;
    let Some(stored) = deps
        .s3
        .list_parts(bucket, key, multipart_id)
        .await
        .map_err(s3)?
    else {
        tracing::info!(
            upload_id = upload.upload_id,
            "the multipart upload is gone: completed or aborted already"
        );
        return Ok(());
    };
    let parts = planned_parts(&stored, ticket.declared_bytes).map_err(|missing| {
        client_error(
            409,
            "parts_incomplete",
            format!("parts missing or of the wrong size: {missing}"),
        )
    })?;
    deps.s3
        .complete(bucket, key, multipart_id, &parts)
        .await
        .map_err(s3)?;
    deps.repo
        .set_uploaded(&upload.upload_id)
        .await
        .map_err(s3)?;
    tracing::info!(
        upload_id = upload.upload_id,
        parts = parts.len(),
        "multipart upload completed"
    );
    Ok(())
}

/// The stored parts in order when they are exactly the plan for `size` bytes; else the
/// numbers of the parts missing or of the wrong size.
pub fn planned_parts(stored: &[StoredPart], size: u64) -> Result<Vec<StoredPart>, String> {
    let plan = presign::parts(size);
    let mut out = Vec::new();
    let mut wrong = Vec::new();
    for &(number, want) in &plan {
        match stored.iter().find(|p| p.number == number) {
            Some(p) if p.size == want => out.push(p.clone()),
            _ => wrong.push(number.to_string()),
        }
    }
    // A part beyond the plan would make the object larger than declared.
    let extra = stored.iter().filter(|p| p.number as usize > plan.len());
    wrong.extend(extra.map(|p| p.number.to_string()));
    if wrong.is_empty() {
        Ok(out)
    } else {
        Err(wrong.join(", "))
    }
}

/// Gives up an upload that has no file yet: its multipart upload (if any) aborted, the row
/// FAILED with the reason, which the page shows.
async fn abort(deps: &Deps, upload: &Upload, ticket: &Ticket) -> Result<(), Reply> {
    let fail = |e: stt_common::Error| {
        tracing::error!(error = %e, upload_id = upload.upload_id, "aborting the upload failed");
        server_error()
    };
    if let Some(id) = &ticket.multipart_id {
        deps.s3
            .abort(&deps.bucket, &upload.audio_key, id)
            .await
            .map_err(fail)?;
    }
    if deps
        .repo
        .fail_upload(&upload.upload_id, ABANDONED)
        .await
        .map_err(fail)?
    {
        tracing::info!(upload_id = upload.upload_id, "upload abandoned by the page");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: i32, size: u64) -> StoredPart {
        StoredPart {
            number,
            size,
            etag: format!("\"e{number}\""),
        }
    }

    #[test]
    fn parts_must_be_the_plan() {
        const MIB: u64 = 1024 * 1024;
        let size = 30_000_000;
        let all = vec![
            part(2, 8 * MIB),
            part(1, 8 * MIB),
            part(3, 8 * MIB),
            part(4, size - 24 * MIB),
        ];
        let ok = planned_parts(&all, size).unwrap();
        assert_eq!(
            ok.iter().map(|p| p.number).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(planned_parts(&all[..3], size).unwrap_err(), "4");
        let mut short = all.clone();
        short[0].size -= 1;
        assert_eq!(planned_parts(&short, size).unwrap_err(), "2");
        let mut extra = all.clone();
        extra.push(part(5, 1));
        assert_eq!(planned_parts(&extra, size).unwrap_err(), "5");
    }

    #[test]
    fn states_follow_the_row() {
        let upload = |status: &str, emailed: bool| Upload {
            upload_id: "0".repeat(32),
            email: "a@example.com".into(),
            filename: "a.mp3".into(),
            language: "en-US".into(),
            audio_key: "input_audio/x/a.mp3".into(),
            job_name: None,
            status: status.into(),
            failure_reason: None,
            text_key: None,
            emailed,
        };
        let ticket = Ticket {
            declared_bytes: 1,
            content_type: "audio/mpeg".into(),
            token_hash: String::new(),
            expires_at: 1000,
            multipart_id: None,
        };
        assert_eq!(state(&upload("WAITING", false), &ticket, 999), "waiting");
        assert_eq!(state(&upload("WAITING", false), &ticket, 1001), "expired");
        assert_eq!(state(&upload("EXPIRED", false), &ticket, 0), "expired");
        assert_eq!(state(&upload("UPLOADED", false), &ticket, 0), "uploaded");
        assert_eq!(
            state(&upload("TRANSCRIBING", false), &ticket, 0),
            "transcribing"
        );
        assert_eq!(
            state(&upload("TRANSCRIBED", false), &ticket, 0),
            "transcribed"
        );
        assert_eq!(state(&upload("TRANSCRIBED", true), &ticket, 0), "mailed");
        assert_eq!(state(&upload("FAILED", true), &ticket, 0), "failed");
        assert!(same("ab", "ab") && !same("ab", "ac") && !same("ab", "abc"));
    }
}
