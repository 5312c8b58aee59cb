//! The handler on API Gateway proxy events (fixtures), with in-memory repository and store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use file_upload::audio::sample_mp3;
use file_upload::multipart::{build_body, PartSpec};
use file_upload::{handler, Deps};
use serde_json::Value;
use stt_common::repo::MemoryRepo;
use stt_common::store::MemoryStore;

const BUCKET: &str = "stt-audio";
const ORIGIN: &str = "https://d111111abcdef8.cloudfront.net";

fn deps() -> (Deps, Arc<MemoryRepo>, Arc<MemoryStore>) {
    let repo = Arc::new(MemoryRepo::new());
    let store = Arc::new(MemoryStore::new());
    let deps = Deps {
        repo: repo.clone(),
        store: store.clone(),
        bucket: BUCKET.into(),
        allowed_origins: vec![ORIGIN.into()],
        quota: file_upload::DEFAULT_QUOTA,
    };
    (deps, repo, store)
}

fn fixture(name: &str) -> ApiGatewayProxyRequest {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The base64 fixture with another multipart body.
fn with_parts(parts: &[PartSpec]) -> ApiGatewayProxyRequest {
    let mut req = fixture("apigw-upload-base64.json");
    let ct = "multipart/form-data; boundary=----WebKitFormBoundaryq7MA4YWxkTrZu0gW";
    let body = build_body("----WebKitFormBoundaryq7MA4YWxkTrZu0gW", parts);
    req.headers.insert("content-type", ct.parse().unwrap());
    req.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
    req
}

fn json(resp: &ApiGatewayProxyResponse) -> Value {
    match &resp.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

async fn run(
    req: ApiGatewayProxyRequest,
) -> (ApiGatewayProxyResponse, Arc<MemoryRepo>, Arc<MemoryStore>) {
    let (deps, repo, store) = deps();
    let resp = handler(&deps, req).await.unwrap();
    (resp, repo, store)
}

#[tokio::test]
async fn base64_upload_is_stored() {
    let (resp, repo, store) = run(fixture("apigw-upload-base64.json")).await;
    assert_eq!(resp.status_code, 201, "{:?}", resp.body);
    let body = json(&resp);
    let key = body["key"].as_str().unwrap();
    assert!(
        key.starts_with("input_audio/") && key.ends_with("/한글 녹음.mp3"),
        "{key}"
    );
    assert_eq!(body["language"], "ko-KR");
    let rows = repo.all();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].email, "user@example.com");
    assert_eq!(rows[0].filename, "한글 녹음.mp3");
    assert_eq!(rows[0].audio_key, key);
    let obj = store.object(BUCKET, key).unwrap();
    assert_eq!(obj.content_type, "audio/mpeg");
    assert_eq!(&obj.body[..], &sample_mp3(3, true)[..]);
    assert_eq!(resp.headers["access-control-allow-origin"], ORIGIN);
    assert!(resp.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

#[tokio::test]
async fn plain_text_body_upload_is_stored() {
    let (resp, repo, store) = run(fixture("apigw-upload-text.json")).await;
    assert_eq!(resp.status_code, 201, "{:?}", resp.body);
    let key = json(&resp)["key"].as_str().unwrap().to_string();
    assert!(key.ends_with("/voice memo.amr"));
    assert_eq!(repo.all()[0].language, "en-US");
    assert!(store
        .object(BUCKET, &key)
        .unwrap()
        .body
        .starts_with(b"#!AMR\n"));
}

#[tokio::test]
async fn preflight_is_answered() {
    let (resp, repo, _) = run(fixture("apigw-options.json")).await;
    assert_eq!(resp.status_code, 204);
    assert_eq!(resp.headers["access-control-allow-origin"], ORIGIN);
    assert_eq!(resp.headers["access-control-allow-methods"], "OPTIONS,POST");
    assert!(resp.body.is_none());
    assert!(repo.all().is_empty());
}

#[tokio::test]
async fn other_origin_gets_configured_origin() {
    let mut req = fixture("apigw-upload-base64.json");
    req.headers
        .insert("origin", "https://evil.example".parse().unwrap());
    let (resp, _, _) = run(req).await;
    assert_eq!(resp.headers["access-control-allow-origin"], ORIGIN);
}

/// Asserts a 4xx with a message containing `needle`, and that nothing was written.
async fn rejected(req: ApiGatewayProxyRequest, status: i64, needle: &str) {
    let (resp, repo, store) = run(req).await;
    assert_eq!(resp.status_code, status, "{:?}", resp.body);
    let msg = json(&resp)["error"].as_str().unwrap().to_string();
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    assert!(repo.all().is_empty(), "no row");
    assert!(store.keys().is_empty(), "no object");
    assert_eq!(resp.headers["access-control-allow-origin"], ORIGIN);
}

fn mp3() -> Vec<u8> {
    sample_mp3(3, true)
}

#[tokio::test]
async fn missing_fields() {
    let f = mp3();
    rejected(
        with_parts(&[
            ("language", None, None, b"ko-KR"),
            ("file", Some("a.mp3"), None, &f),
        ]),
        400,
        "missing field(s): email",
    )
    .await;
    rejected(
        with_parts(&[("email", None, None, b"a@b.co")]),
        400,
        "language, file",
    )
    .await;
}

#[tokio::test]
async fn bad_email() {
    let f = mp3();
    for email in [
        &b"not-an-address"[..],
        b"a@b",
        b"averyveryverylongname@example.com",
    ] {
        rejected(
            with_parts(&[
                ("email", None, None, email),
                ("language", None, None, b"ko-KR"),
                ("file", Some("a.mp3"), None, &f),
            ]),
            400,
            "email",
        )
        .await;
    }
}

#[tokio::test]
async fn unsupported_language() {
    let f = mp3();
    rejected(
        with_parts(&[
            ("email", None, None, b"a@b.co"),
            ("language", None, None, b"xx-YY"),
            ("file", Some("a.mp3"), None, &f),
        ]),
        400,
        "not a language code",
    )
    .await;
}

#[tokio::test]
async fn not_audio() {
    rejected(
        with_parts(&[
            ("email", None, None, b"a@b.co"),
            ("language", None, None, b"ko-KR"),
            (
                "file",
                Some("song.mp3"),
                None,
                b"%PDF-1.7 this is not audio",
            ),
        ]),
        415,
        "not a recognised audio file",
    )
    .await;
}

#[tokio::test]
async fn oversize() {
    let mut f = mp3();
    f.resize(file_upload::MAX_FILE_BYTES + 1, 0);
    rejected(
        with_parts(&[
            ("email", None, None, b"a@b.co"),
            ("language", None, None, b"ko-KR"),
            ("file", Some("a.mp3"), None, &f),
        ]),
        413,
        "larger than",
    )
    .await;
    // The whole body over the limit is refused before decoding.
    let mut req = fixture("apigw-upload-base64.json");
    req.body = Some("A".repeat(7_000_000));
    rejected(req, 413, "larger than").await;
}

#[tokio::test]
async fn path_traversal_filename() {
    let f = mp3();
    for name in ["../../etc/passwd.mp3", "..\\..\\x.mp3", "a\u{1}b.mp3"] {
        rejected(
            with_parts(&[
                ("email", None, None, b"a@b.co"),
                ("language", None, None, b"ko-KR"),
                ("file", Some(name), None, &f),
            ]),
            400,
            "file name",
        )
        .await;
    }
}

#[tokio::test]
async fn not_multipart_and_malformed() {
    let mut req = fixture("apigw-upload-base64.json");
    req.headers
        .insert("content-type", "application/json".parse().unwrap());
    rejected(req, 415, "multipart/form-data").await;
    let mut req = fixture("apigw-upload-base64.json");
    req.body = Some("!!!not base64".into());
    rejected(req, 400, "base64").await;
    let mut req = fixture("apigw-upload-text.json");
    req.body = Some(
        "--XyZzY-boundary\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nunterminated"
            .into(),
    );
    rejected(req, 400, "closing multipart boundary").await;
    let mut req = fixture("apigw-upload-text.json");
    req.body = None;
    rejected(req, 400, "no body").await;
}

#[tokio::test]
async fn field_given_twice() {
    let f = mp3();
    rejected(
        with_parts(&[
            ("email", None, None, b"a@b.co"),
            ("email", None, None, b"c@d.co"),
            ("language", None, None, b"ko-KR"),
            ("file", Some("a.mp3"), None, &f),
        ]),
        400,
        "twice",
    )
    .await;
}

#[tokio::test]
async fn s3_failure_removes_the_row() {
    let (deps, repo, store) = deps();
    store.fail_puts.store(true, Ordering::SeqCst);
    let resp = handler(&deps, fixture("apigw-upload-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 500);
    let msg = json(&resp)["error"].as_str().unwrap().to_string();
    assert!(!msg.contains("injected"), "no internal details: {msg}");
    assert!(repo.all().is_empty(), "row removed");
}

#[tokio::test]
async fn db_failure_is_500_and_writes_nothing() {
    let (deps, repo, store) = deps();
    repo.fail.store(true, Ordering::SeqCst);
    let resp = handler(&deps, fixture("apigw-upload-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 500);
    assert!(store.keys().is_empty());
}

#[tokio::test]
async fn keys_end_in_the_canonical_lowercase_suffix() {
    let wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    let ogg = b"OggS\x00\x02\x00\x00\x00\x00".to_vec();
    let flac = b"fLaC\x00\x00\x00\x22".to_vec();
    let m4a = b"\x00\x00\x00\x20ftypM4A \x00\x00".to_vec();
    let mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00".to_vec();
    let webm = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm".to_vec();
    let amr = b"#!AMR\n\x3c\x00".to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("녹음.MP3", mp3(), "녹음.mp3"),
        ("회의 녹음 1.mp3", mp3(), "회의 녹음 1.mp3"),
        ("talk", mp3(), "talk.mp3"),
        ("Interview.WAVE", wav.clone(), "Interview.wav"),
        ("Interview.Wav", wav, "Interview.wav"),
        ("memo.opus", ogg.clone(), "memo.ogg"),
        ("memo.OGA", ogg, "memo.ogg"),
        ("song.Flac", flac, "song.flac"),
        ("book.m4b", m4a, "book.m4a"),
        ("IMG_0001.M4V", mp4, "IMG_0001.mp4"),
        ("rec.WEBM", webm, "rec.webm"),
        ("voice.Amr", amr, "voice.amr"),
    ];
    for (name, data, want) in cases {
        let (resp, repo, store) = run(with_parts(&[
            ("email", None, None, b"a@b.co"),
            ("language", None, None, b"ko-KR"),
            ("file", Some(name), None, &data),
        ]))
        .await;
        assert_eq!(resp.status_code, 201, "{name}: {:?}", resp.body);
        let body = json(&resp);
        let key = body["key"].as_str().unwrap();
        assert!(key.ends_with(&format!("/{want}")), "{name}: {key}");
        assert!(stt_common::keys::has_audio_suffix(key), "{name}: {key}");
        // The readable original stays in the row (and so in the mail).
        assert_eq!(body["filename"], name);
        let row = repo.all().pop().unwrap();
        assert_eq!(row.filename, name);
        assert_eq!(row.audio_key, key);
        assert!(store.object(BUCKET, key).is_some(), "{name}");
    }
}

#[tokio::test]
async fn a_bad_address_is_answered_masked() {
    let f = mp3();
    let (resp, _, _) = run(with_parts(&[
        ("email", None, None, b"secret.person@@example.com"),
        ("language", None, None, b"ko-KR"),
        ("file", Some("a.mp3"), None, &f),
    ]))
    .await;
    assert_eq!(resp.status_code, 400);
    let msg = json(&resp)["error"].as_str().unwrap().to_string();
    assert!(msg.contains("s***@example.com"), "{msg}");
    assert!(!msg.contains("secret.person"), "{msg}");
}

#[tokio::test]
async fn wrong_method() {
    let mut req = fixture("apigw-upload-base64.json");
    req.http_method = aws_lambda_events::http::Method::GET;
    let (resp, _, _) = run(req).await;
    assert_eq!(resp.status_code, 405);
}

/// A request of the base64 fixture from `address` at `ip`.
fn upload_from(address: &str, ip: &str) -> ApiGatewayProxyRequest {
    let f = mp3();
    let mut req = with_parts(&[
        ("email", None, None, address.as_bytes()),
        ("language", None, None, b"en-US"),
        ("file", Some("a.mp3"), None, &f),
    ]);
    req.request_context.identity.source_ip = Some(ip.into());
    req
}

#[tokio::test]
async fn uploads_over_an_hourly_quota_are_answered_429_and_write_nothing() {
    let (mut deps, repo, store) = deps();
    deps.quota = stt_common::repo::Quota {
        per_address_per_hour: 2,
        per_ip_per_hour: 3,
    };
    let status = |resp: &ApiGatewayProxyResponse| resp.status_code;
    for _ in 0..2 {
        let resp = handler(&deps, upload_from("a@example.com", "203.0.113.7"))
            .await
            .unwrap();
        assert_eq!(status(&resp), 201, "{:?}", resp.body);
    }
    // The address's third upload this hour (in any letter case), from another network too.
    let resp = handler(&deps, upload_from("A@Example.com", "198.51.100.9"))
        .await
        .unwrap();
    assert_eq!(status(&resp), 429);
    let message = json(&resp)["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("e-mail address: at most 2 an hour"),
        "{message}"
    );
    assert_eq!((repo.all().len(), store.keys().len()), (2, 2));
    // The network's third upload is taken, its fourth is not, whatever the address.
    let resp = handler(&deps, upload_from("b@example.com", "203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(status(&resp), 201);
    let resp = handler(&deps, upload_from("c@example.com", "203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(status(&resp), 429);
    let message = json(&resp)["error"].as_str().unwrap().to_owned();
    assert!(message.contains("network: at most 3 an hour"), "{message}");
    assert_eq!((repo.all().len(), store.keys().len()), (3, 3));
    // The same address from elsewhere is still welcome.
    let resp = handler(&deps, upload_from("c@example.com", "198.51.100.9"))
        .await
        .unwrap();
    assert_eq!(status(&resp), 201);
}
