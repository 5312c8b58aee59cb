//! `POST /confirm` on the upload API: the confirmation page posts the token of a link
//! (`{"token": "<64 hex>"}`). A valid link confirms its address, once, and the results that
//! waited for it are mailed; an unknown, expired or used link is refused and changes nothing.
//!
//! | answer | when | `code` |
//! |---|---|---|
//! | 200 `{"confirmed": true, "sent": n, "failed": m}` | the address is confirmed now | |
//! | 400 | no JSON body with a well-formed token | `bad_request` |
//! | 404 | no such link (or a newer one replaced it) | `unknown_link` |
//! | 409 | the link was used already | `link_used` |
//! | 410 | the link expired | `link_expired` |
//! | 405 | not `POST` | `method` |
//!
//! `code` lets the page say it in the reader's language.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderValue, Method};
use base64::Engine;
use serde_json::{json, Value};
use stt_common::privacy::mask_email;
use stt_common::recipients::{is_token, token_digest, Redeemed};

use crate::{deliver, Deps};

fn refused(status: i64, code: &str, message: &str) -> (i64, Value) {
    (status, json!({ "error": message, "code": code }))
}

/// The token of the request's JSON body.
fn token_of(req: &ApiGatewayProxyRequest) -> Option<String> {
    let raw = req.body.as_deref()?;
    let bytes = if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim_end())
            .ok()?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > 1024 {
        return None;
    }
    let body: Value = serde_json::from_slice(&bytes).ok()?;
    let token = body.get("token")?.as_str()?;
    is_token(token).then(|| token.to_owned())
}

async fn confirm(deps: &Deps, req: &ApiGatewayProxyRequest) -> stt_common::Result<(i64, Value)> {
    let Some(token) = token_of(req) else {
        return Ok(refused(
            400,
            "bad_request",
            "send {\"token\": \"...\"} with the token of the confirmation link",
        ));
    };
    let email =
        match deps.recipients.redeem(&token_digest(&token)).await? {
            Redeemed::Confirmed { email } => email,
            Redeemed::Unknown => return Ok(refused(
                404,
                "unknown_link",
                "this confirmation link is not known; the newest link sent to the address works",
            )),
            Redeemed::AlreadyUsed => {
                return Ok(refused(
                    409,
                    "link_used",
                    "this confirmation link was used already; the address is confirmed",
                ))
            }
            Redeemed::Expired => {
                return Ok(refused(
                    410,
                    "link_expired",
                    "this confirmation link has expired; upload a file again to get a new one",
                ))
            }
        };
    tracing::info!(
        to = mask_email(&email),
        "address confirmed; mailing what waited"
    );
    // The address is confirmed before the waiting results are read: a result finishing now
    // either is in this list or sees the confirmation itself (the claim keeps it to one mail).
    let (mut sent, mut failed) = (0, 0);
    for upload in deps.repo.unmailed(&email).await? {
        let text_key = upload.text_key.clone().unwrap_or_default();
        match deliver(deps, &upload, &deps.bucket, &text_key).await {
            Ok(true) => sent += 1,
            Ok(false) => {}
            // Logged by deliver; the others still go out.
            Err(_) => failed += 1,
        }
    }
    Ok((
        200,
        json!({ "confirmed": true, "sent": sent, "failed": failed }),
    ))
}

/// The API's answer. Always an answer: a failure inside is a 500 without details (they go
/// to the log), so API Gateway never shows its own 502.
pub async fn handler(deps: &Deps, req: ApiGatewayProxyRequest) -> ApiGatewayProxyResponse {
    let mut headers =
        stt_common::cors::headers(&deps.allowed_origins, &req.headers, "OPTIONS,POST");
    let (status, body) = if req.http_method == Method::OPTIONS {
        (204, Value::Null)
    } else if req.http_method != Method::POST {
        refused(405, "method", "use POST with {\"token\": \"...\"}")
    } else {
        match confirm(deps, &req).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!(error = %e, "confirming failed");
                refused(
                    500,
                    "internal",
                    "the address could not be confirmed; please try the link again later",
                )
            }
        }
    };
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = status;
    if !body.is_null() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        resp.body = Some(Body::Text(body.to_string()));
    }
    resp.headers = headers;
    resp
}

/// What invoked the function: API Gateway (a proxy request carries `httpMethod`) or S3.
pub fn is_api_request(event: &Value) -> bool {
    event.get("httpMethod").is_some() && event.get("requestContext").is_some()
}
