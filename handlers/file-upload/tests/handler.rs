//! The handler on API Gateway proxy events (fixtures), with an in-memory repository and a
//! fake S3 that keeps multipart uploads and their parts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use file_upload::direct::{DirectUploads, StoredPart};
use file_upload::presign::{SigningCredentials, MULTIPART_THRESHOLD};
use file_upload::{handler, Deps};
use serde_json::{json, Value};
use stt_common::repo::{status, MemoryRepo, UploadRepo};

const BUCKET: &str = "stt-audio";
const ORIGIN: &str = "https://d111111abcdef8.cloudfront.net";
const MAX: u64 = 500_000_000;

/// Multipart uploads by id: (key, content type, parts by number: size), and objects.
#[derive(Default)]
struct FakeS3 {
    uploads: Mutex<BTreeMap<String, (String, String, BTreeMap<i32, u64>)>>,
    objects: Mutex<BTreeMap<String, u64>>,
    aborted: Mutex<Vec<String>>,
    fail: AtomicBool,
}

impl FakeS3 {
    fn check(&self) -> stt_common::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(stt_common::Error::Config("injected S3 failure".into()))
        } else {
            Ok(())
        }
    }
    /// The page's PUT of a part.
    fn put_part(&self, id: &str, number: i32, size: u64) {
        self.uploads
            .lock()
            .unwrap()
            .get_mut(id)
            .unwrap()
            .2
            .insert(number, size);
    }
}

#[async_trait]
impl DirectUploads for FakeS3 {
    async fn credentials(&self) -> stt_common::Result<SigningCredentials> {
        self.check()?;
        Ok(SigningCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("session".into()),
        })
    }
    async fn create_multipart(&self, _: &str, key: &str, ct: &str) -> stt_common::Result<String> {
        self.check()?;
        let mut uploads = self.uploads.lock().unwrap();
        let id = format!("mpu-{}", uploads.len() + 1);
        uploads.insert(id.clone(), (key.into(), ct.into(), BTreeMap::new()));
        Ok(id)
    }
    async fn presign_part(
        &self,
        b: &str,
        key: &str,
        id: &str,
        part: i32,
        e: Duration,
    ) -> stt_common::Result<String> {
        self.check()?;
        Ok(format!(
            "https://{b}.s3.amazonaws.com/{key}?partNumber={part}&uploadId={id}&X-Amz-Expires={}",
            e.as_secs()
        ))
    }
    async fn list_parts(
        &self,
        _: &str,
        _: &str,
        id: &str,
    ) -> stt_common::Result<Option<Vec<StoredPart>>> {
        self.check()?;
        Ok(self.uploads.lock().unwrap().get(id).map(|(_, _, parts)| {
            parts
                .iter()
                .map(|(n, s)| StoredPart {
                    number: *n,
                    size: *s,
                    etag: format!("\"{n}\""),
                })
                .collect()
        }))
    }
    async fn complete(
        &self,
        _: &str,
        key: &str,
        id: &str,
        parts: &[StoredPart],
    ) -> stt_common::Result<()> {
        self.check()?;
        self.uploads
            .lock()
            .unwrap()
            .remove(id)
            .expect("an open upload");
        self.objects
            .lock()
            .unwrap()
            .insert(key.into(), parts.iter().map(|p| p.size).sum());
        Ok(())
    }
    async fn abort(&self, _: &str, _: &str, id: &str) -> stt_common::Result<()> {
        self.check()?;
        self.uploads.lock().unwrap().remove(id);
        self.aborted.lock().unwrap().push(id.into());
        Ok(())
    }
}

struct World {
    deps: Deps,
    repo: Arc<MemoryRepo>,
    s3: Arc<FakeS3>,
}

fn world() -> World {
    let repo = Arc::new(MemoryRepo::new());
    let s3 = Arc::new(FakeS3::default());
    let deps = Deps {
        repo: repo.clone(),
        s3: s3.clone(),
        bucket: BUCKET.into(),
        region: "ap-northeast-2".into(),
        s3_endpoint: None,
        allowed_origins: vec![ORIGIN.into()],
        quota: file_upload::DEFAULT_QUOTA,
        max_bytes: MAX,
        expiry: Duration::from_secs(900),
    };
    World { deps, repo, s3 }
}

fn fixture(name: &str) -> ApiGatewayProxyRequest {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The create fixture with `changes` merged into its body (`null` removes a field).
fn create_with(changes: Value) -> ApiGatewayProxyRequest {
    let mut req = fixture("apigw-create.json");
    let mut body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    req.body = Some(body.to_string());
    req
}

fn status_request(body: Value) -> ApiGatewayProxyRequest {
    let mut req = fixture("apigw-status.json");
    req.body = Some(body.to_string());
    req
}

fn json_of(resp: &ApiGatewayProxyResponse) -> Value {
    match &resp.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

async fn call(w: &World, req: ApiGatewayProxyRequest) -> (i64, Value) {
    let resp = handler(&w.deps, req).await.unwrap();
    let body = if resp.body.is_some() {
        json_of(&resp)
    } else {
        Value::Null
    };
    (resp.status_code, body)
}

async fn status_of(w: &World, created: &Value, action: Option<&str>) -> (i64, Value) {
    let mut body = json!({"uploadId": created["uploadId"], "token": created["token"]});
    if let Some(a) = action {
        body["action"] = json!(a);
    }
    call(w, status_request(body)).await
}

#[tokio::test]
async fn a_small_file_gets_a_post_policy_for_its_one_key() {
    let w = world();
    let (status, body) = call(&w, fixture("apigw-create.json")).await;
    assert_eq!(status, 201, "{body}");
    let key = body["key"].as_str().unwrap();
    assert!(
        key.starts_with("input_audio/") && key.ends_with("/한글 녹음.mp3"),
        "{key}"
    );
    assert_eq!(body["upload"]["method"], "POST");
    assert_eq!(
        body["upload"]["url"],
        "https://stt-audio.s3.ap-northeast-2.amazonaws.com/"
    );
    let fields = &body["upload"]["fields"];
    assert_eq!(fields["key"], key);
    assert_eq!(fields["Content-Type"], "audio/mpeg");
    assert_eq!(fields["x-amz-security-token"], "session");
    assert!(fields["x-amz-signature"].as_str().unwrap().len() == 64);
    // The row waits for the file; the token itself is not stored, only its hash.
    let rows = w.repo.all();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, status::WAITING);
    assert_eq!(rows[0].filename, "한글 녹음.mp3");
    let ticket = w.repo.ticket(&rows[0].upload_id).await.unwrap().unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert_ne!(ticket.token_hash, token);
    assert_eq!(ticket.token_hash, file_upload::token_hash(token));
    assert_eq!(
        (ticket.declared_bytes, ticket.content_type.as_str()),
        (1251, "audio/mpeg")
    );
    assert!(ticket.multipart_id.is_none());
    // The status: waiting, then uploaded once audio_transcribe saw the file.
    let (s, st) = status_of(&w, &body, None).await;
    assert_eq!((s, st["state"].as_str()), (200, Some("waiting")), "{st}");
    w.repo.set_uploaded(&rows[0].upload_id).await.unwrap();
    assert_eq!(status_of(&w, &body, None).await.1["state"], "uploaded");
    // Giving up once audio_transcribe took the file changes nothing: it is transcribed.
    let (s, st) = status_of(&w, &body, Some("abort")).await;
    assert_eq!((s, st["state"].as_str()), (200, Some("uploaded")), "{st}");
}

#[tokio::test]
async fn a_large_file_goes_in_parts_completed_only_when_all_are_in() {
    let w = world();
    let size = 30_000_000u64;
    let (status, body) = call(
        &w,
        create_with(json!({"size": size, "filename": "meeting.m4a", "contentType": "audio/x-m4a"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["contentType"], "audio/mp4");
    let upload = &body["upload"];
    assert_eq!(upload["method"], "MULTIPART");
    let parts = upload["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 4);
    assert_eq!(
        parts
            .iter()
            .map(|p| p["size"].as_u64().unwrap())
            .sum::<u64>(),
        size
    );
    let id = w
        .repo
        .ticket(body["uploadId"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap()
        .multipart_id
        .unwrap();
    // Three parts in: completing is refused, naming the missing one.
    for p in &parts[..3] {
        w.s3.put_part(
            &id,
            p["partNumber"].as_i64().unwrap() as i32,
            p["size"].as_u64().unwrap(),
        );
    }
    let (s, e) = status_of(&w, &body, Some("complete")).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (409, Some("parts_incomplete")),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().ends_with(": 4"), "{e}");
    // A part of the wrong size (a page that sent more than declared) is refused too.
    w.s3.put_part(&id, 4, 1);
    assert_eq!(status_of(&w, &body, Some("complete")).await.0, 409);
    w.s3.put_part(&id, 4, parts[3]["size"].as_u64().unwrap());
    let (s, st) = status_of(&w, &body, Some("complete")).await;
    assert_eq!((s, st["state"].as_str()), (200, Some("uploaded")), "{st}");
    assert_eq!(
        w.s3.objects.lock().unwrap()[body["key"].as_str().unwrap()],
        size
    );
    // Asked again (its answer lost): still uploaded, nothing done twice.
    let (s, st) = status_of(&w, &body, Some("complete")).await;
    assert_eq!((s, st["state"].as_str()), (200, Some("uploaded")));
}

#[tokio::test]
async fn an_abandoned_upload_fails_and_its_parts_are_aborted() {
    let w = world();
    let (_, body) = call(&w, create_with(json!({"size": MULTIPART_THRESHOLD + 1}))).await;
    let (s, st) = status_of(&w, &body, Some("abort")).await;
    assert_eq!((s, st["state"].as_str()), (200, Some("failed")), "{st}");
    assert_eq!(st["reason"], file_upload::status::ABANDONED);
    assert_eq!(w.s3.aborted.lock().unwrap().len(), 1);
    assert!(w.s3.uploads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_upload_never_sent_ends_expired() {
    let w = world();
    let (_, body) = call(&w, fixture("apigw-create.json")).await;
    let id = body["uploadId"].as_str().unwrap().to_owned();
    // The presign's end in the past (as after 15 minutes).
    let mut row = w.repo.all().pop().unwrap();
    let mut ticket = w.repo.ticket(&id).await.unwrap().unwrap();
    ticket.expires_at = 1;
    w.repo.delete(&id).await.unwrap();
    row.status = status::WAITING.into();
    w.repo
        .insert(&stt_common::repo::NewUpload {
            upload_id: id.clone(),
            email: row.email,
            filename: row.filename,
            language: row.language,
            audio_key: row.audio_key,
            source_ip: None,
            ticket: Some(ticket),
        })
        .await
        .unwrap();
    assert_eq!(status_of(&w, &body, None).await.1["state"], "expired");
    // The status read marked it (and nothing is left to mark).
    assert_eq!(w.repo.expire_waiting().await.unwrap(), 0);
    assert_eq!(
        w.repo.find(&id).await.unwrap().unwrap().status,
        status::EXPIRED
    );
}

#[tokio::test]
async fn a_wrong_token_or_id_is_not_found() {
    let w = world();
    let (_, body) = call(&w, fixture("apigw-create.json")).await;
    for bad in [
        json!({"uploadId": body["uploadId"], "token": "f".repeat(64)}),
        json!({"uploadId": "0".repeat(32), "token": body["token"]}),
        json!({"uploadId": body["uploadId"], "token": "short"}),
        json!({"uploadId": "../etc", "token": body["token"]}),
    ] {
        let (s, e) = call(&w, status_request(bad.clone())).await;
        assert_eq!((s, e["code"].as_str()), (404, Some("not_found")), "{bad}");
    }
    let (s, e) = call(
        &w,
        status_request(
            json!({"uploadId": body["uploadId"], "token": body["token"], "action": "delete"}),
        ),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (400, Some("bad_request")));
}

async fn refused(w: &World, changes: Value, status: i64, code: &str) -> Value {
    let (s, body) = call(w, create_with(changes.clone())).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (status, Some(code)),
        "{changes}: {body}"
    );
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        w.repo.all().is_empty(),
        "{changes}: a refusal writes nothing"
    );
    body
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_code_and_write_nothing() {
    let w = world();
    refused(&w, json!({"email": null}), 400, "email_missing").await;
    refused(&w, json!({"email": "  "}), 400, "email_missing").await;
    let masked = refused(
        &w,
        json!({"email": "secret-name@@example.com"}),
        400,
        "email_invalid",
    )
    .await;
    assert!(
        !masked["error"].as_str().unwrap().contains("secret-name"),
        "{masked}"
    );
    refused(
        &w,
        json!({"email": "averyveryverylongname@example.com"}),
        400,
        "email_too_long",
    )
    .await;
    let lang = refused(
        &w,
        json!({"language": "xx-XX"}),
        400,
        "language_unsupported",
    )
    .await;
    assert_eq!(lang["params"]["language"], "xx-XX");
    refused(
        &w,
        json!({"filename": "../../etc/passwd"}),
        400,
        "filename_invalid",
    )
    .await;
    refused(
        &w,
        json!({"filename": "a".repeat(601)}),
        400,
        "filename_too_long",
    )
    .await;
    refused(&w, json!({"size": 0}), 400, "file_empty").await;
    let big = refused(&w, json!({"size": MAX + 1}), 413, "file_too_large").await;
    assert_eq!(big["params"]["max"], MAX);
    let ty = refused(
        &w,
        json!({"contentType": "application/pdf"}),
        415,
        "type_unsupported",
    )
    .await;
    assert_eq!(ty["params"]["type"], "application/pdf");
    refused(
        &w,
        json!({"contentType": "", "filename": "notes.txt"}),
        415,
        "type_unsupported",
    )
    .await;
    refused(&w, json!({"size": "large"}), 400, "bad_request").await;
    let mut not_json = fixture("apigw-create.json");
    not_json.body = Some("email=a@example.com".into());
    assert_eq!(call(&w, not_json).await.1["code"], "bad_request");
}

#[tokio::test]
async fn the_key_ends_in_the_declared_format_or_the_names_extension() {
    let w = world();
    for (filename, content_type, want) in [
        ("녹음.MP3", "audio/mpeg", "녹음.mp3"),
        ("talk.wav", "audio/mpeg", "talk.wav.mp3"),
        ("memo.opus", "audio/ogg; codecs=opus", "memo.ogg"),
        ("voice.webm", "", "voice.webm"),
        ("clip.M4A", "application/octet-stream", "clip.m4a"),
    ] {
        let (s, body) = call(&w, create_with(json!({"filename": filename, "contentType": content_type, "email": format!("k{}@example.com", want.len())}))).await;
        assert_eq!(s, 201, "{body}");
        assert!(
            body["key"].as_str().unwrap().ends_with(&format!("/{want}")),
            "{filename}: {body}"
        );
    }
}

#[tokio::test]
async fn s3_failure_removes_the_row() {
    let w = world();
    w.s3.fail.store(true, Ordering::SeqCst);
    let (s, body) = call(&w, create_with(json!({"size": MULTIPART_THRESHOLD * 2}))).await;
    assert_eq!((s, body["code"].as_str()), (500, Some("server_error")));
    assert!(w.repo.all().is_empty());
}

#[tokio::test]
async fn db_failure_is_500_and_writes_nothing() {
    let w = world();
    w.repo.fail.store(true, Ordering::SeqCst);
    let (s, _) = call(&w, fixture("apigw-create.json")).await;
    assert_eq!(s, 500);
    assert!(w.s3.uploads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn preflight_and_cors() {
    let w = world();
    let resp = handler(&w.deps, fixture("apigw-options.json"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 204);
    assert_eq!(resp.headers["access-control-allow-origin"], ORIGIN);
    let mut other = fixture("apigw-create.json");
    other
        .headers
        .insert("origin", "https://evil.example".parse().unwrap());
    let resp = handler(&w.deps, other).await.unwrap();
    assert_eq!(resp.headers["access-control-allow-origin"], ORIGIN);
    let mut get = fixture("apigw-create.json");
    get.http_method = aws_lambda_events::http::Method::GET;
    assert_eq!(call(&w, get).await.0, 405);
}

#[tokio::test]
async fn uploads_over_an_hourly_quota_are_answered_429_and_write_nothing() {
    let w = world();
    for i in 0..5 {
        let (s, body) = call(&w, create_with(json!({"filename": format!("{i}.mp3")}))).await;
        assert_eq!(s, 201, "{body}");
    }
    let body = refused_after(&w, 5).await;
    assert_eq!(body["code"], "quota_address");
    assert_eq!(body["params"]["limit"], 5);
}

async fn refused_after(w: &World, rows: usize) -> Value {
    let (s, body) = call(w, fixture("apigw-create.json")).await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(w.repo.all().len(), rows);
    body
}
