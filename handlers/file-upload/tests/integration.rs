//! file_upload against ministack (S3) and MariaDB, the file sent as a browser sends it (with
//! curl): the presigned POST and the presigned parts reach S3, S3 refuses a form whose content
//! type is not the declared one, and the hourly quotas count in MySQL. Runs with
//! STT_INTEGRATION=1.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use file_upload::audio::sample_mp3;
use file_upload::direct::S3DirectUploads;
use file_upload::{handler, Deps};
use serde_json::{json, Value};
use sqlx::mysql::MySqlPool;
use stt_common::repo::{MySqlRepo, Quota};
use stt_common::testing::{self, integration_enabled, require_services};

fn fixture(name: &str) -> ApiGatewayProxyRequest {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn create(body: Value) -> ApiGatewayProxyRequest {
    let mut req = fixture("apigw-create.json");
    req.body = Some(body.to_string());
    req
}

async fn call(deps: &Deps, req: ApiGatewayProxyRequest) -> (i64, Value) {
    let resp = handler(deps, req).await.unwrap();
    let body = match &resp.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    };
    (resp.status_code, body)
}

async fn rows(pool: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM fileTable")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn deps(bucket: &str, repo: MySqlRepo, quota: Quota) -> Deps {
    let cfg = testing::ministack_config().await;
    Deps {
        repo: Arc::new(repo),
        s3: Arc::new(S3DirectUploads::new(&cfg)),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        s3_endpoint: Some(testing::ministack_url()),
        allowed_origins: vec!["*".into()],
        quota,
        max_bytes: 100_000_000,
        expiry: Duration::from_secs(300),
    }
}

/// Posts a presigned form as a browser does (`fields` in order, the file last); the status.
fn post_form(upload: &Value, file: &Path, content_type: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
    for (name, value) in upload["fields"].as_object().unwrap() {
        let value = match (name.as_str(), content_type) {
            ("Content-Type", Some(other)) => other,
            _ => value.as_str().unwrap(),
        };
        cmd.arg("--form-string").arg(format!("{name}={value}"));
    }
    cmd.arg("-F").arg(format!("file=@{}", file.display()));
    cmd.arg(upload["url"].as_str().unwrap());
    let out = cmd.output().expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

/// PUTs one part's bytes to its presigned URL; the status.
fn put_part(url: &str, bytes: &[u8], dir: &Path) -> u16 {
    let path = dir.join("part.bin");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-T"])
        .arg(&path)
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[tokio::test]
async fn files_sent_straight_to_s3_arrive_as_declared_and_others_are_refused() {
    if !integration_enabled("file_upload::integration") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-upload").await;
    let (db, pool) = testing::fresh_database("stt_upload").await;
    let deps = deps(
        &bucket,
        MySqlRepo::new(pool.clone()),
        file_upload::DEFAULT_QUOTA,
    )
    .await;
    let dir = tempdir();

    // A small file: one presigned POST for its key, its type and its size.
    let mp3 = sample_mp3(3, true);
    let file = dir.join("a.mp3");
    std::fs::write(&file, &mp3).unwrap();
    let (status, body) = call(
        &deps,
        create(json!({"email": "user@example.com", "language": "ko-KR",
        "filename": "회의 녹음.mp3", "size": mp3.len(), "contentType": "audio/mpeg"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["upload"]["method"], "POST");
    let key = body["key"].as_str().unwrap();
    // Another content type than declared: S3 checks the policy and refuses.
    assert_eq!(post_form(&body["upload"], &file, Some("video/mp4")), 403);
    assert!(testing::list_keys(&s3, &bucket).await.is_empty());
    assert!(post_form(&body["upload"], &file, None) / 100 == 2);
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("the object");
    assert_eq!(head.content_type(), Some("audio/mpeg"));
    assert_eq!(head.content_length(), Some(mp3.len() as i64));
    // A bigger file than declared is refused by the same policy.
    let (_, other) = call(
        &deps,
        create(json!({"email": "user@example.com", "language": "en-US",
        "filename": "b.mp3", "size": 100, "contentType": "audio/mpeg"})),
    )
    .await;
    assert_eq!(
        post_form(&other["upload"], &file, None),
        400,
        "EntityTooLarge"
    );

    // A large file in parts: each PUT to its presigned URL, then completed by the API.
    let size = 17 * 1024 * 1024 + 123;
    let mut big = sample_mp3(3, false);
    big.resize(size, 0x55);
    let (status, body) = call(
        &deps,
        create(json!({"email": "user@example.com", "language": "en-US",
        "filename": "long.mp3", "size": size, "contentType": "audio/mpeg"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["upload"]["method"], "MULTIPART");
    let parts = body["upload"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    let status_body =
        json!({"uploadId": body["uploadId"], "token": body["token"], "action": "complete"});
    let mut start = 0usize;
    for (i, p) in parts.iter().enumerate() {
        let len = p["size"].as_u64().unwrap() as usize;
        assert_eq!(
            put_part(p["url"].as_str().unwrap(), &big[start..start + len], &dir),
            200
        );
        start += len;
        if i == 1 {
            // Not every part is in yet.
            let mut early = fixture("apigw-status.json");
            early.body = Some(status_body.to_string());
            let (s, e) = call(&deps, early).await;
            assert_eq!(
                (s, e["code"].as_str()),
                (409, Some("parts_incomplete")),
                "{e}"
            );
        }
    }
    let mut complete = fixture("apigw-status.json");
    complete.body = Some(status_body.to_string());
    let (s, st) = call(&deps, complete).await;
    assert_eq!((s, st["state"].as_str()), (200, Some("uploaded")), "{st}");
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(body["key"].as_str().unwrap())
        .send()
        .await
        .expect("the completed object");
    assert_eq!(head.content_length(), Some(size as i64));
    assert_eq!(rows(&pool).await, 3);

    // An S3 failure (the bucket does not exist) removes the row again.
    let broken = Deps {
        bucket: testing::unique("stt-missing-bucket"),
        ..deps
    };
    let (s, _) = call(
        &broken,
        create(json!({"email": "user@example.com", "language": "en-US",
        "filename": "c.mp3", "size": size, "contentType": "audio/mpeg"})),
    )
    .await;
    assert_eq!(s, 500);
    assert_eq!(rows(&pool).await, 3, "row rolled back");
    testing::drop_database(&db).await;
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(testing::unique("stt-upload-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// RDS rotates the managed master secret (every 7 days by default): the password changes in
/// the database and the secret while the function is warm; the next upload still succeeds,
/// because the function reads the secret again after MySQL's "Access denied".
#[tokio::test]
async fn the_upload_after_the_secret_rotated_succeeds() {
    if !integration_enabled("file_upload::rotation") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-rotation").await;
    let (db, pool) = testing::fresh_database("stt_upload_rotation").await;
    let secret = testing::SecretUser::create(&cfg, "upl", &db, "first-Passw0rd").await;
    let database = stt_common::db::Database::connect(&secret.db_config(&db), &cfg)
        .await
        .expect("connect with the secret");
    let deps = deps(
        &bucket,
        MySqlRepo::with_database(database.clone()),
        file_upload::DEFAULT_QUOTA,
    )
    .await;
    let upload = |name: &str| {
        create(
            json!({"email": "user@example.com", "language": "ko-KR", "filename": name,
            "size": 1000, "contentType": "audio/mpeg"}),
        )
    };
    let (s, body) = call(&deps, upload("회의 녹음 1.mp3")).await;
    assert_eq!(s, 201, "{body}");
    secret.rotate("second-Passw0rd").await;
    let (s, body) = call(&deps, upload("녹음.MP3")).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(database.rotation().unwrap().refreshes(), 1);
    let names: Vec<String> = sqlx::query_scalar("SELECT filename FROM fileTable ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(names, vec!["회의 녹음 1.mp3", "녹음.MP3"]);
    secret.remove().await;
    testing::drop_database(&db).await;
}

/// The hourly quotas with MySQL's counting: the address's third upload and the network's
/// fourth are answered 429 and write no row; uploads older than an hour no longer count; an
/// upload never sent ends EXPIRED once its presign ended.
#[tokio::test]
async fn the_hourly_quotas_and_expiry_count_in_the_database() {
    if !integration_enabled("file_upload::integration") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-quota").await;
    let (_db, pool) = testing::fresh_database("stt_quota").await;
    let deps = deps(
        &bucket,
        MySqlRepo::new(pool.clone()),
        Quota {
            per_address_per_hour: 2,
            per_ip_per_hour: 3,
        },
    )
    .await;
    let upload = |address: &str, ip: &str| {
        let mut req = create(
            json!({"email": address, "language": "en-US", "filename": "a.mp3",
            "size": 1000, "contentType": "audio/mpeg"}),
        );
        req.request_context.identity.source_ip = Some(ip.into());
        req
    };
    let mut first = Value::Null;
    for (address, ip, expected) in [
        ("a@example.com", "203.0.113.7", 201),
        ("a@example.com", "203.0.113.7", 201),
        ("A@example.com", "198.51.100.9", 429),
        ("b@example.com", "203.0.113.7", 201),
        ("c@example.com", "203.0.113.7", 429),
        ("c@example.com", "198.51.100.9", 201),
    ] {
        let (s, body) = call(&deps, upload(address, ip)).await;
        assert_eq!(s, expected, "{address} {ip}: {body}");
        if first.is_null() {
            first = body;
        }
    }
    assert_eq!(rows(&pool).await, 4, "refused uploads wrote no row");
    // An hour later the address may upload again; the uploads never sent ended EXPIRED.
    sqlx::query("UPDATE fileTable SET time = time - INTERVAL 2 HOUR, expires_at = expires_at - INTERVAL 2 HOUR")
        .execute(&pool)
        .await
        .unwrap();
    let (s, body) = call(&deps, upload("a@example.com", "203.0.113.7")).await;
    assert_eq!(s, 201, "{body}");
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM fileTable ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        statuses,
        ["EXPIRED", "EXPIRED", "EXPIRED", "EXPIRED", "WAITING"]
    );
    let mut read = fixture("apigw-status.json");
    read.body = Some(json!({"uploadId": first["uploadId"], "token": first["token"]}).to_string());
    assert_eq!(call(&deps, read).await.1["state"], "expired");
}
