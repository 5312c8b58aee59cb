//! `file_upload`: the upload API behind API Gateway (REST, Lambda proxy). The audio never
//! passes through it (API Gateway takes 10 MB, Lambda 6 MB): the page sends the file straight
//! to S3.
//!
//! - `POST /file-upload` (JSON: address, language, file name, size, content type): validates
//!   the form, records the upload (status WAITING, with the hash of a status token and the
//!   presigned upload's end) and answers how to send the file: a presigned POST policy for
//!   the one key, the declared content type and exactly the declared size; above
//!   [`presign::MULTIPART_THRESHOLD`], a multipart upload with a presigned `PUT` per part.
//! - `POST /upload-status` (JSON: upload id, token, optional action): the upload's state;
//!   `complete` finishes a multipart upload once every part is in S3 (sizes checked against
//!   the plan), `abort` gives it up.
//!
//! The S3 trigger starts `audio_transcribe` when the file arrives, which checks the object
//! against what was declared. Bad input is answered with 4xx, an English message and a `code`
//! the page translates, before anything is written; internal failures with 5xx and no details
//! (they go to the log).

pub mod direct;
pub mod presign;
pub mod status;
pub mod validate;

pub use stt_common::audio;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use stt_common::audio::AudioFormat;
use stt_common::config::{opt_env, req_env};
use stt_common::keys::{audio_key, MAX_KEY_BYTES};
use stt_common::languages::canonical_language;
use stt_common::repo::{Admission, MySqlRepo, NewUpload, Quota, Ticket, UploadRepo};

use direct::{DirectUploads, S3DirectUploads};

/// Transcribe's largest media file (2 GB); `stack.yaml`'s maximum may be lower.
pub const TRANSCRIBE_MAX_BYTES: u64 = 2_000_000_000;
/// The presigned upload's life when the environment names none.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(900);

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub s3: Arc<dyn DirectUploads>,
    /// The audio bucket (`AUDIO_BUCKET`) and its region.
    pub bucket: String,
    pub region: String,
    /// The S3 endpoint the page sends to when not AWS's (the local target's emulator).
    pub s3_endpoint: Option<String>,
    /// Origins allowed by CORS (`ALLOWED_ORIGIN`, comma-separated; `*` for any).
    pub allowed_origins: Vec<String>,
    /// Uploads an hour per address and per source IP (`UPLOADS_PER_ADDRESS_PER_HOUR`,
    /// `UPLOADS_PER_IP_PER_HOUR`).
    pub quota: Quota,
    /// The largest file (`MAX_UPLOAD_BYTES`).
    pub max_bytes: u64,
    /// How long a presigned upload lasts (`UPLOAD_EXPIRY_SECONDS`), longer for large files.
    pub expiry: Duration,
}

/// The quotas when the environment names none (the defaults of `stack.yaml`).
pub const DEFAULT_QUOTA: Quota = Quota {
    per_address_per_hour: 5,
    per_ip_per_hour: 20,
};

fn positive_env(name: &str, default: u64) -> stt_common::Result<u64> {
    match opt_env(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                stt_common::Error::Config(format!(
                    "{name} must be a positive whole number, not {v:?}"
                ))
            }),
    }
}

fn quota_from_env() -> stt_common::Result<Quota> {
    let read = |name: &str, default: u32| -> stt_common::Result<u32> {
        u32::try_from(positive_env(name, default.into())?)
            .map_err(|_| stt_common::Error::Config(format!("{name} is too large")))
    };
    Ok(Quota {
        per_address_per_hour: read(
            "UPLOADS_PER_ADDRESS_PER_HOUR",
            DEFAULT_QUOTA.per_address_per_hour,
        )?,
        per_ip_per_hour: read("UPLOADS_PER_IP_PER_HOUR", DEFAULT_QUOTA.per_ip_per_hour)?,
    })
}

impl Deps {
    /// Cold start: configuration, database secret, clients.
    pub async fn from_env() -> stt_common::Result<Self> {
        let sdk = stt_common::aws_config().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| stt_common::Error::Config("no AWS region".into()))?;
        let s3_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| opt_env(v));
        Ok(Deps {
            repo: Arc::new(MySqlRepo::with_database(
                stt_common::db::Database::from_env(&sdk).await?,
            )),
            s3: Arc::new(S3DirectUploads::new(&sdk)),
            bucket: req_env("AUDIO_BUCKET")?,
            region,
            s3_endpoint,
            allowed_origins: parse_origins(&opt_env("ALLOWED_ORIGIN").unwrap_or_default()),
            quota: quota_from_env()?,
            max_bytes: positive_env("MAX_UPLOAD_BYTES", TRANSCRIBE_MAX_BYTES)?
                .min(TRANSCRIBE_MAX_BYTES),
            expiry: Duration::from_secs(positive_env(
                "UPLOAD_EXPIRY_SECONDS",
                DEFAULT_EXPIRY.as_secs(),
            )?),
        })
    }
}

pub use stt_common::cors::parse_origins;

/// An answer before it becomes the proxy response.
pub(crate) struct Reply {
    status: i64,
    body: Value,
}

impl Reply {
    pub(crate) fn ok(status: i64, body: Value) -> Reply {
        Reply { status, body }
    }
}

/// A refusal: the HTTP status, a `code` the page translates (with `params`), and the English
/// message for scripts and logs.
pub(crate) fn client_error(status: i64, code: &str, message: impl Into<String>) -> Reply {
    client_error_with(status, code, json!({}), message)
}

pub(crate) fn client_error_with(
    status: i64,
    code: &str,
    params: Value,
    message: impl Into<String>,
) -> Reply {
    Reply {
        status,
        body: json!({ "error": message.into(), "code": code, "params": params }),
    }
}

pub(crate) fn server_error() -> Reply {
    client_error(
        500,
        "server_error",
        "the upload could not be recorded; please try again later",
    )
}

/// 429 for an upload over an hourly quota; the message says which and when to come back.
fn over_quota(over: Admission, quota: &Quota) -> Reply {
    match over {
        Admission::OverIpQuota => client_error_with(
            429,
            "quota_ip",
            json!({ "limit": quota.per_ip_per_hour }),
            format!(
                "too many uploads from this network: at most {} an hour; please try again later",
                quota.per_ip_per_hour
            ),
        ),
        _ => client_error_with(
            429,
            "quota_address",
            json!({ "limit": quota.per_address_per_hour }),
            format!(
                "too many uploads for this e-mail address: at most {} an hour; please try again later",
                quota.per_address_per_hour
            ),
        ),
    }
}

fn cors_headers(deps: &Deps, request_headers: &HeaderMap) -> HeaderMap {
    stt_common::cors::headers(&deps.allowed_origins, request_headers, "OPTIONS,POST")
}

/// Which endpoint a request is for: the last segment of its resource path.
fn route(req: &ApiGatewayProxyRequest) -> &str {
    let path = req
        .resource
        .as_deref()
        .or(req.path.as_deref())
        .unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// The Lambda handler. It always answers (errors become 5xx responses), so API Gateway
/// never shows its own 502.
pub async fn handler(
    deps: &Deps,
    req: ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, stt_common::Error> {
    let mut headers = cors_headers(deps, &req.headers);
    let reply = if req.http_method == Method::OPTIONS {
        Reply::ok(204, Value::Null)
    } else if req.http_method != Method::POST {
        client_error(405, "bad_request", "use POST with a JSON body")
    } else {
        let answer = match route(&req) {
            status::PATH => status::answer(deps, &req).await,
            _ => create(deps, &req).await,
        };
        match answer {
            Ok(r) | Err(r) => r,
        }
    };
    let mut resp = ApiGatewayProxyResponse::default();
    resp.status_code = reply.status;
    if !reply.body.is_null() {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        resp.body = Some(Body::Text(reply.body.to_string()));
    }
    resp.headers = headers;
    Ok(resp)
}

/// The JSON body of a request, as text (API Gateway may hand it over base64-encoded).
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    req: &ApiGatewayProxyRequest,
) -> Result<T, Reply> {
    use base64::Engine;
    let raw = req
        .body
        .as_deref()
        .ok_or_else(|| client_error(400, "bad_request", "the request has no body"))?;
    let bytes = if req.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim_end())
            .map_err(|_| client_error(400, "bad_request", "the body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        client_error(
            400,
            "bad_request",
            format!("the body is not the expected JSON: {e}"),
        )
    })
}

/// The create request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    email: Option<String>,
    language: Option<String>,
    filename: Option<String>,
    size: Option<u64>,
    #[serde(default)]
    content_type: String,
}

/// The form, validated.
struct Form {
    email: String,
    language: &'static str,
    filename: String,
    size: u64,
    format: AudioFormat,
}

/// SHA-256 of a status token, hex: what the row keeps.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new status token: 256 bits from the operating system's generator (two v4 UUIDs carry
/// 244 random bits; hex keeps it URL- and JSON-safe).
fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn create(deps: &Deps, req: &ApiGatewayProxyRequest) -> Result<Reply, Reply> {
    let form = read_form(deps, json_body(req)?)?;
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    // The key ends with the declared format's lowercase extension (the S3 rules' suffixes);
    // the row keeps the name as the uploader spelt it.
    let key = audio_key(
        &upload_id,
        &validate::storage_name(&form.filename, form.format),
    );
    if key.len() > MAX_KEY_BYTES {
        return Err(client_error(
            400,
            "filename_too_long",
            "file name is too long for a storage key",
        ));
    }
    let now = SystemTime::now();
    let expires_in = presign::expiry_for(form.size, deps.expiry);
    let expires_at = unix_now() + expires_in.as_secs() as i64;
    let token = new_token();
    let content_type = form.format.content_type();
    let row = NewUpload {
        upload_id: upload_id.clone(),
        email: form.email,
        filename: form.filename,
        language: form.language.to_string(),
        audio_key: key.clone(),
        source_ip: req.request_context.identity.source_ip.clone(),
        ticket: Some(Ticket {
            declared_bytes: form.size,
            content_type: content_type.to_owned(),
            token_hash: token_hash(&token),
            expires_at,
            multipart_id: None,
        }),
    };
    // Uploads that were never sent end as EXPIRED (the status endpoint does it too).
    if let Err(e) = deps.repo.expire_waiting().await {
        tracing::warn!(error = %e, "marking ended uploads EXPIRED failed");
    }
    match deps.repo.insert_within(&row, &deps.quota).await {
        Ok(Admission::Recorded) => {}
        Ok(over) => {
            tracing::warn!(?over, "upload refused: over the hourly quota");
            return Err(over_quota(over, &deps.quota));
        }
        Err(e) => {
            tracing::error!(error = %e, "recording the upload failed");
            return Err(server_error());
        }
    }
    let upload = match send_instructions(
        deps,
        &upload_id,
        &key,
        content_type,
        form.size,
        now,
        expires_in,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "preparing the direct upload failed; removing the row");
            if let Err(e) = deps.repo.delete(&upload_id).await {
                tracing::error!(error = %e, upload_id, "removing the row failed too");
            }
            return Err(server_error());
        }
    };
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(expires_at)
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    tracing::info!(
        upload_id,
        key,
        size = form.size,
        method = upload["method"].as_str(),
        "upload recorded, waiting for the file"
    );
    Ok(Reply::ok(
        201,
        json!({
            "uploadId": upload_id,
            "token": token,
            "key": key,
            "filename": row.filename,
            "language": row.language,
            "format": form.format.extension(),
            "contentType": content_type,
            "size": form.size,
            "expiresAt": expires,
            "upload": upload,
        }),
    ))
}

/// How the page sends the file: one presigned POST, or a multipart upload whose id the row
/// records and whose parts are each presigned.
async fn send_instructions(
    deps: &Deps,
    upload_id: &str,
    key: &str,
    content_type: &str,
    size: u64,
    now: SystemTime,
    expires_in: Duration,
) -> stt_common::Result<Value> {
    if size <= presign::MULTIPART_THRESHOLD {
        let creds = deps.s3.credentials().await?;
        let form = presign::post_form(
            &presign::PostTarget {
                bucket: &deps.bucket,
                key,
                content_type,
                size,
                region: &deps.region,
                url: presign::post_url(&deps.bucket, &deps.region, deps.s3_endpoint.as_deref()),
            },
            &creds,
            now,
            expires_in,
        );
        let fields: serde_json::Map<String, Value> = form
            .fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Ok(json!({ "method": "POST", "url": form.url, "fields": fields }));
    }
    let multipart_id = deps
        .s3
        .create_multipart(&deps.bucket, key, content_type)
        .await?;
    if !deps.repo.set_multipart(upload_id, &multipart_id).await? {
        deps.s3.abort(&deps.bucket, key, &multipart_id).await?;
        return Err(stt_common::Error::BadEvent(format!(
            "upload {upload_id} is no longer waiting"
        )));
    }
    let mut parts = Vec::new();
    for (number, part_size) in presign::parts(size) {
        let url = deps
            .s3
            .presign_part(&deps.bucket, key, &multipart_id, number, expires_in)
            .await?;
        parts.push(json!({ "partNumber": number, "size": part_size, "url": url }));
    }
    Ok(json!({
        "method": "MULTIPART",
        "partSize": presign::part_size(size),
        "parts": parts,
    }))
}

fn read_form(deps: &Deps, req: CreateRequest) -> Result<Form, Reply> {
    let missing: Vec<&str> = [
        ("email", req.email.is_none()),
        ("language", req.language.is_none()),
        ("filename", req.filename.is_none()),
        ("size", req.size.is_none()),
    ]
    .iter()
    .filter(|(_, absent)| *absent)
    .map(|(n, _)| *n)
    .collect();
    if !missing.is_empty() {
        let code = if missing == ["email"] {
            "email_missing"
        } else {
            "bad_request"
        };
        return Err(client_error(
            400,
            code,
            format!("missing field(s): {}", missing.join(", ")),
        ));
    }
    let email =
        validate::email(req.email.as_deref().unwrap_or_default()).map_err(|(code, m)| {
            client_error_with(400, code, json!({ "max": validate::MAX_EMAIL_CHARS }), m)
        })?;
    let lang_raw = req.language.as_deref().unwrap_or_default().trim();
    let language = canonical_language(lang_raw).ok_or_else(|| {
        let shown: String = lang_raw.chars().take(20).collect();
        client_error_with(
            400,
            "language_unsupported",
            json!({ "language": shown }),
            format!(
                "language {shown:?} is not a language code Amazon Transcribe supports (e.g. ko-KR, en-US)"
            ),
        )
    })?;
    let filename =
        validate::filename(req.filename.as_deref().unwrap_or_default()).map_err(|(code, m)| {
            client_error_with(400, code, json!({ "max": validate::MAX_FILENAME_CHARS }), m)
        })?;
    let size = req.size.unwrap_or_default();
    if size == 0 {
        return Err(client_error(400, "file_empty", "the file is empty"));
    }
    if size > deps.max_bytes {
        return Err(client_error_with(
            413,
            "file_too_large",
            json!({ "max": deps.max_bytes }),
            format!(
                "the file is larger than the {} MB this service takes",
                deps.max_bytes / 1_000_000
            ),
        ));
    }
    // The declared type decides; a browser that names none (or a generic one) leaves it to
    // the name's extension.
    let declared = req.content_type.trim();
    let format = AudioFormat::from_content_type(declared)
        .or_else(|| {
            let generic = declared.is_empty() || declared.eq_ignore_ascii_case("application/octet-stream");
            generic
                .then(|| stt_common::keys::extension(&filename))
                .flatten()
                .and_then(|ext| AudioFormat::from_extension(&ext))
        })
        .ok_or_else(|| {
            let shown: String = declared.chars().take(60).collect();
            client_error_with(
                415,
                "type_unsupported",
                json!({ "type": shown }),
                format!(
                    "{shown:?} is not an audio type this service takes (mp3, wav, flac, ogg, m4a/mp4, webm, amr)"
                ),
            )
        })?;
    Ok(Form {
        email,
        language,
        filename,
        size,
        format,
    })
}
