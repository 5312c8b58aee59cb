//! `file_upload`: API Gateway (REST, Lambda proxy) → validate the multipart form → row in
//! MySQL → audio in S3 `input_audio/{upload_id}/{stem}.{ext}`, where `{ext}` is the lowercase
//! extension of the format detected from the content (one of
//! [`stt_common::keys::AUDIO_EXTENSIONS`], the suffixes of the S3 rules that trigger
//! audio_transcribe); the row keeps the file name as the uploader spelt it.
//!
//! The row is written first because the S3 write triggers `audio_transcribe`, which reads
//! the row; when the S3 write fails the row is removed again, so a failed upload leaves
//! nothing behind. Bad input is answered with 4xx and a message before anything is written;
//! internal failures with 5xx and no details (they go to the log).

pub mod audio;
pub mod multipart;
pub mod validate;

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, Method};
use base64::Engine;
use bytes::Bytes;
use serde_json::json;
use stt_common::config::{opt_env, req_env};
use stt_common::keys::{audio_key, MAX_KEY_BYTES};
use stt_common::languages::canonical_language;
use stt_common::repo::{Admission, MySqlRepo, NewUpload, Quota, UploadRepo};
use stt_common::store::{ObjectStore, S3Store};

/// Largest audio file: Lambda's synchronous payload limit is 6 MB (6,291,456 bytes) and the
/// body arrives base64-encoded (+33 %), which leaves about 4.5 MB of raw file.
pub const MAX_FILE_BYTES: usize = 4_500_000;
/// Largest decoded body: the file plus the other fields and part headers.
pub const MAX_BODY_BYTES: usize = MAX_FILE_BYTES + 64 * 1024;

pub struct Deps {
    pub repo: Arc<dyn UploadRepo>,
    pub store: Arc<dyn ObjectStore>,
    /// The audio bucket (`AUDIO_BUCKET`).
    pub bucket: String,
    /// Origins allowed by CORS (`ALLOWED_ORIGIN`, comma-separated; `*` for any).
    pub allowed_origins: Vec<String>,
    /// Uploads an hour per address and per source IP (`UPLOADS_PER_ADDRESS_PER_HOUR`,
    /// `UPLOADS_PER_IP_PER_HOUR`).
    pub quota: Quota,
}

/// The quotas when the environment names none (the defaults of `stack.yaml`).
pub const DEFAULT_QUOTA: Quota = Quota {
    per_address_per_hour: 5,
    per_ip_per_hour: 20,
};

fn quota_from_env() -> stt_common::Result<Quota> {
    let read = |name: &str, default: u32| -> stt_common::Result<u32> {
        match opt_env(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    stt_common::Error::Config(format!(
                        "{name} must be a positive whole number, not {v:?}"
                    ))
                }),
        }
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
        Ok(Deps {
            repo: Arc::new(MySqlRepo::with_database(
                stt_common::db::Database::from_env(&sdk).await?,
            )),
            store: Arc::new(S3Store::new(stt_common::s3_client(&sdk))),
            bucket: req_env("AUDIO_BUCKET")?,
            allowed_origins: parse_origins(&opt_env("ALLOWED_ORIGIN").unwrap_or_default()),
            quota: quota_from_env()?,
        })
    }
}

pub use stt_common::cors::parse_origins;

/// An answer before it becomes the proxy response.
struct Reply {
    status: i64,
    body: serde_json::Value,
}

fn client_error(status: i64, message: impl Into<String>) -> Reply {
    Reply {
        status,
        body: json!({ "error": message.into() }),
    }
}

/// 429 for an upload over an hourly quota; the message says which and when to come back.
fn over_quota(over: Admission, quota: &Quota) -> Reply {
    let message = match over {
        Admission::OverIpQuota => format!(
            "too many uploads from this network: at most {} an hour; please try again later",
            quota.per_ip_per_hour
        ),
        _ => format!(
            "too many uploads for this e-mail address: at most {} an hour; please try again later",
            quota.per_address_per_hour
        ),
    };
    client_error(429, message)
}

fn server_error() -> Reply {
    Reply {
        status: 500,
        body: json!({ "error": "the upload could not be stored; please try again later" }),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cors_headers(deps: &Deps, request_headers: &HeaderMap) -> HeaderMap {
    stt_common::cors::headers(&deps.allowed_origins, request_headers, "OPTIONS,POST")
}

/// The Lambda handler. It always answers (errors become 5xx responses), so API Gateway
/// never shows its own 502.
pub async fn handler(
    deps: &Deps,
    req: ApiGatewayProxyRequest,
) -> Result<ApiGatewayProxyResponse, stt_common::Error> {
    let mut headers = cors_headers(deps, &req.headers);
    let reply = if req.http_method == Method::OPTIONS {
        Reply {
            status: 204,
            body: serde_json::Value::Null,
        }
    } else if req.http_method != Method::POST {
        client_error(405, "use POST with multipart/form-data")
    } else {
        match upload(deps, req).await {
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

/// The form, validated.
struct Form {
    email: String,
    language: &'static str,
    filename: String,
    format: audio::AudioFormat,
    data: Bytes,
}

async fn upload(deps: &Deps, req: ApiGatewayProxyRequest) -> Result<Reply, Reply> {
    let form = read_form(&req)?;
    let source_ip = req.request_context.identity.source_ip.clone();
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    // The key ends with the detected format's lowercase extension (the S3 rules' suffixes);
    // the row keeps the name as the uploader spelt it.
    let key = audio_key(
        &upload_id,
        &validate::storage_name(&form.filename, form.format),
    );
    if key.len() > MAX_KEY_BYTES {
        return Err(client_error(400, "file name is too long for a storage key"));
    }
    let row = NewUpload {
        upload_id: upload_id.clone(),
        email: form.email,
        filename: form.filename,
        language: form.language.to_string(),
        audio_key: key.clone(),
        source_ip,
    };
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
    let size = form.data.len();
    if let Err(e) = deps
        .store
        .put(&deps.bucket, &key, form.data, form.format.content_type())
        .await
    {
        tracing::error!(error = %e, "storing the audio failed; removing the row");
        if let Err(e) = deps.repo.delete(&upload_id).await {
            tracing::error!(error = %e, upload_id, "removing the row failed too");
        }
        return Err(server_error());
    }
    tracing::info!(upload_id, key, size, "upload stored");
    Ok(Reply {
        status: 201,
        body: json!({
            "uploadId": upload_id,
            "key": key,
            "filename": row.filename,
            "language": row.language,
            "format": form.format.extension(),
            "size": size,
        }),
    })
}

fn read_form(req: &ApiGatewayProxyRequest) -> Result<Form, Reply> {
    let content_type = header(&req.headers, "content-type")
        .ok_or_else(|| client_error(415, "Content-Type must be multipart/form-data"))?;
    let boundary = multipart::boundary_from_content_type(content_type).map_err(|e| match e {
        multipart::MultipartError::NotMultipart => {
            client_error(415, "Content-Type must be multipart/form-data")
        }
        e => client_error(400, e.to_string()),
    })?;
    let raw = req
        .body
        .as_deref()
        .ok_or_else(|| client_error(400, "the request has no body"))?;
    let too_large = || {
        client_error(
            413,
            format!(
                "the upload is larger than {} MB",
                MAX_FILE_BYTES as f64 / 1e6
            ),
        )
    };
    let body: Bytes = if req.is_base64_encoded {
        if raw.len() > MAX_BODY_BYTES.div_ceil(3) * 4 {
            return Err(too_large());
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw.trim_end())
            .map_err(|_| client_error(400, "the body is not valid base64"))?
            .into()
    } else {
        if raw.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        Bytes::copy_from_slice(raw.as_bytes())
    };

    let mut email = None;
    let mut language = None;
    let mut file = None;
    for part in multipart::Multipart::new(&body, &boundary) {
        let part = part.map_err(|e| client_error(400, e.to_string()))?;
        let slot = match part.name.as_ref() {
            "email" => &mut email,
            "language" => &mut language,
            "file" => &mut file,
            _ => continue,
        };
        if slot.is_some() {
            return Err(client_error(
                400,
                format!("field {} is given twice", part.name),
            ));
        }
        *slot = Some(part);
    }
    let missing: Vec<&str> = [("email", &email), ("language", &language), ("file", &file)]
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(client_error(
            400,
            format!("missing field(s): {}", missing.join(", ")),
        ));
    }
    let (email, language, file) = (email.unwrap(), language.unwrap(), file.unwrap());

    fn text<'b>(p: &multipart::Part<'b>, n: &str) -> Result<&'b str, Reply> {
        std::str::from_utf8(p.data).map_err(|_| client_error(400, format!("{n} is not UTF-8 text")))
    }
    let email = validate::email(text(&email, "email")?).map_err(|m| client_error(400, m))?;
    let lang_raw = text(&language, "language")?.trim();
    let language = canonical_language(lang_raw).ok_or_else(|| {
        client_error(
            400,
            format!(
                "language {:?} is not a language code Amazon Transcribe supports (e.g. ko-KR, en-US)",
                lang_raw.chars().take(20).collect::<String>()
            ),
        )
    })?;
    let Some(raw_name) = file.filename.as_deref() else {
        return Err(client_error(
            400,
            "field file must be a file (with a file name)",
        ));
    };
    if file.data.is_empty() {
        return Err(client_error(400, "the file is empty"));
    }
    if file.data.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    let format = audio::detect(file.data).ok_or_else(|| {
        client_error(
            415,
            "the file is not a recognised audio file (mp3, wav, flac, ogg, m4a/mp4, webm, amr)",
        )
    })?;
    let filename = validate::filename(raw_name).map_err(|m| client_error(400, m))?;
    Ok(Form {
        email,
        language,
        filename,
        format,
        data: body.slice_ref(file.data),
    })
}
