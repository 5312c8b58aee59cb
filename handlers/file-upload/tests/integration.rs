//! file_upload against ministack (S3) and MariaDB. Runs with STT_INTEGRATION=1.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use base64::Engine;
use file_upload::audio::sample_mp3;
use file_upload::multipart::{build_body, PartSpec};
use file_upload::{handler, Deps};
use sqlx::mysql::MySqlPool;
use stt_common::repo::MySqlRepo;
use stt_common::store::S3Store;
use stt_common::testing::{self, integration_enabled, require_services};

const BOUNDARY: &str = "----WebKitFormBoundaryq7MA4YWxkTrZu0gW";

fn fixture(name: &str) -> ApiGatewayProxyRequest {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn with_parts(parts: &[PartSpec]) -> ApiGatewayProxyRequest {
    let mut req = fixture("apigw-upload-base64.json");
    req.body = Some(base64::engine::general_purpose::STANDARD.encode(build_body(BOUNDARY, parts)));
    req
}

async fn rows(pool: &MySqlPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM fileTable")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn uploads_reach_s3_and_mysql_and_bad_ones_leave_nothing() {
    if !integration_enabled("file_upload::integration") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-upload").await;
    let (db, pool) = testing::fresh_database("stt_upload").await;
    let deps = Deps {
        repo: Arc::new(MySqlRepo::new(pool.clone())),
        store: Arc::new(S3Store::new(s3.clone())),
        bucket: bucket.clone(),
        allowed_origins: vec!["https://d111111abcdef8.cloudfront.net".into()],
        quota: file_upload::DEFAULT_QUOTA,
    };

    // A good upload: the object in S3 and the row in MySQL.
    let resp = handler(&deps, fixture("apigw-upload-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 201, "{:?}", resp.body);
    let Some(Body::Text(text)) = &resp.body else {
        panic!()
    };
    let body: serde_json::Value = serde_json::from_str(text).unwrap();
    let key = body["key"].as_str().unwrap().to_string();
    let obj = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .expect("object stored");
    assert_eq!(obj.content_type(), Some("audio/mpeg"));
    let data = obj.body.collect().await.unwrap().into_bytes();
    assert_eq!(&data[..], &sample_mp3(3, true)[..]);
    let (email, filename, language, audio_key): (String, String, String, String) = sqlx::query_as(
        "SELECT email, filename, language, audio_key FROM fileTable WHERE upload_id = ?",
    )
    .bind(body["uploadId"].as_str().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (
            email.as_str(),
            filename.as_str(),
            language.as_str(),
            audio_key.as_str()
        ),
        ("user@example.com", "한글 녹음.mp3", "ko-KR", key.as_str())
    );
    let resp = handler(&deps, fixture("apigw-upload-text.json"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 201, "{:?}", resp.body);
    assert_eq!(rows(&pool).await, 2);
    assert_eq!(testing::list_keys(&s3, &bucket).await.len(), 2);

    // Bad uploads: 4xx, and neither a row nor an object.
    let mp3 = sample_mp3(3, true);
    let mut big = mp3.clone();
    big.resize(file_upload::MAX_FILE_BYTES + 10, 0);
    let cases: Vec<(&str, ApiGatewayProxyRequest)> = vec![
        (
            "missing field",
            with_parts(&[
                ("email", None, None, b"a@b.co"),
                ("file", Some("a.mp3"), None, &mp3),
            ]),
        ),
        (
            "bad e-mail",
            with_parts(&[
                ("email", None, None, b"a@@b"),
                ("language", None, None, b"ko-KR"),
                ("file", Some("a.mp3"), None, &mp3),
            ]),
        ),
        (
            "unsupported language",
            with_parts(&[
                ("email", None, None, b"a@b.co"),
                ("language", None, None, b"tlh-KL"),
                ("file", Some("a.mp3"), None, &mp3),
            ]),
        ),
        (
            "non-audio file",
            with_parts(&[
                ("email", None, None, b"a@b.co"),
                ("language", None, None, b"ko-KR"),
                ("file", Some("a.mp3"), None, b"<?php echo 1; ?>"),
            ]),
        ),
        (
            "oversize",
            with_parts(&[
                ("email", None, None, b"a@b.co"),
                ("language", None, None, b"ko-KR"),
                ("file", Some("a.mp3"), None, &big),
            ]),
        ),
        (
            "path traversal",
            with_parts(&[
                ("email", None, None, b"a@b.co"),
                ("language", None, None, b"ko-KR"),
                ("file", Some("../../../etc/cron.d/x.mp3"), None, &mp3),
            ]),
        ),
    ];
    for (what, req) in cases {
        let resp = handler(&deps, req).await.unwrap();
        assert!(
            (400..500).contains(&resp.status_code),
            "{what}: {} {:?}",
            resp.status_code,
            resp.body
        );
    }
    assert_eq!(rows(&pool).await, 2, "bad uploads wrote no row");
    assert_eq!(
        testing::list_keys(&s3, &bucket).await.len(),
        2,
        "bad uploads wrote no object"
    );

    // An S3 failure (the bucket does not exist) removes the row again.
    let broken = Deps {
        bucket: testing::unique("stt-missing-bucket"),
        repo: deps.repo.clone(),
        store: deps.store.clone(),
        allowed_origins: vec![],
        quota: deps.quota,
    };
    let resp = handler(&broken, fixture("apigw-upload-base64.json"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 500);
    assert_eq!(rows(&pool).await, 2, "row rolled back");

    testing::drop_database(&db).await;
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
    let deps = Deps {
        repo: Arc::new(MySqlRepo::with_database(database.clone())),
        store: Arc::new(S3Store::new(s3.clone())),
        bucket: bucket.clone(),
        allowed_origins: vec!["*".into()],
        quota: file_upload::DEFAULT_QUOTA,
    };
    let mp3 = sample_mp3(3, true);
    let upload = |name: &'static str| {
        with_parts(&[
            ("email", None, None, b"user@example.com"),
            ("language", None, None, b"ko-KR"),
            ("file", Some(name), None, &mp3),
        ])
    };

    let first = handler(&deps, upload("회의 녹음 1.mp3")).await.unwrap();
    assert_eq!(first.status_code, 201, "{:?}", first.body);
    secret.rotate("second-Passw0rd").await;
    let next = handler(&deps, upload("녹음.MP3")).await.unwrap();
    assert_eq!(next.status_code, 201, "{:?}", next.body);
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
/// fourth are answered 429 and write neither a row nor an object; uploads older than an hour
/// no longer count.
#[tokio::test]
async fn the_hourly_quotas_count_in_the_database() {
    if !integration_enabled("file_upload::integration") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-quota").await;
    let (_db, pool) = testing::fresh_database("stt_quota").await;
    let deps = Deps {
        repo: Arc::new(MySqlRepo::new(pool.clone())),
        store: Arc::new(S3Store::new(s3.clone())),
        bucket: bucket.clone(),
        allowed_origins: vec!["*".into()],
        quota: stt_common::repo::Quota {
            per_address_per_hour: 2,
            per_ip_per_hour: 3,
        },
    };
    let mp3 = sample_mp3(3, true);
    let upload = |address: &str, ip: &str| {
        let mut req = with_parts(&[
            ("email", None, None, address.as_bytes()),
            ("language", None, None, b"en-US"),
            ("file", Some("a.mp3"), None, &mp3),
        ]);
        req.request_context.identity.source_ip = Some(ip.into());
        req
    };
    for (address, ip, expected) in [
        ("a@example.com", "203.0.113.7", 201),
        ("a@example.com", "203.0.113.7", 201),
        ("A@example.com", "198.51.100.9", 429),
        ("b@example.com", "203.0.113.7", 201),
        ("c@example.com", "203.0.113.7", 429),
        ("c@example.com", "198.51.100.9", 201),
    ] {
        let resp = handler(&deps, upload(address, ip)).await.unwrap();
        assert_eq!(
            resp.status_code, expected,
            "{address} {ip}: {:?}",
            resp.body
        );
    }
    assert_eq!(rows(&pool).await, 4, "refused uploads wrote no row");
    assert_eq!(testing::list_keys(&s3, &bucket).await.len(), 4);
    let ips: Vec<Option<String>> =
        sqlx::query_scalar("SELECT source_ip FROM fileTable ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(ips[0].as_deref(), Some("203.0.113.7"));
    // An hour later the address may upload again.
    sqlx::query("UPDATE fileTable SET time = time - INTERVAL 2 HOUR")
        .execute(&pool)
        .await
        .unwrap();
    let resp = handler(&deps, upload("a@example.com", "203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(resp.status_code, 201, "{:?}", resp.body);
}
