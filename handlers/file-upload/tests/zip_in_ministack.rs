//! The release zip of `file_upload` run by ministack's Lambda (provided.al2023) on the API
//! Gateway fixture: the real runtime, event decoding and response encoding, and a POST policy
//! signed with the function's own credentials that S3 accepts. Runs with
//! STT_INTEGRATION=1; skips with a message when the zip is not built (fails instead with
//! STT_REQUIRE_ZIPS=1).

use std::path::PathBuf;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::Environment;
use stt_common::testing::{self, integration_enabled, require_services};

#[tokio::test]
async fn built_zip_answers_an_upload_s3_accepts() {
    if !integration_enabled("file_upload::built_zip_answers_an_upload_s3_accepts") {
        return;
    }
    let zip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/lambda/file_upload/bootstrap.zip");
    if !zip.exists() {
        let msg = format!(
            "{} is missing: build the zips first (handlers/README.md)",
            zip.display()
        );
        if std::env::var("STT_REQUIRE_ZIPS").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("built_zip_answers_an_upload_s3_accepts skipped: {msg}");
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let lambda = aws_sdk_lambda::Client::new(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-zip-upload").await;
    let (db, _pool) = testing::fresh_database("stt_zip_upload").await;
    let name = testing::unique("stt-file-upload");
    let env = Environment::builder()
        .variables("DB_URL", testing::db_url())
        .variables("DB_NAME", &db)
        .variables("AUDIO_BUCKET", &bucket)
        // ministack's native provided.al2023 runner passes AWS_ENDPOINT_URL only when
        // ministack itself was started with it; the local target sets it per function.
        .variables("AWS_ENDPOINT_URL", testing::ministack_url())
        .variables("ALLOWED_ORIGIN", "https://d111111abcdef8.cloudfront.net")
        .build();
    // What the stack grants file_upload: storing uploads under input_audio/.
    let statements = serde_json::json!([{"Effect": "Allow", "Action": "s3:PutObject",
        "Resource": format!("arn:aws:s3:::{bucket}/input_audio/*")}]);
    testing::deploy_zip(&cfg, &name, &zip, env, 512, 90, statements).await;
    let mp3 = file_upload::audio::sample_mp3(3, true);
    let mut event: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/tests/fixtures/apigw-create.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    event["body"] = serde_json::json!({"email": "user@example.com", "language": "ko-KR",
        "filename": "한글 녹음.mp3", "size": mp3.len(), "contentType": "audio/mpeg"})
    .to_string()
    .into();
    let event = serde_json::to_vec(&event).unwrap();
    let out = lambda
        .invoke()
        .function_name(&name)
        .payload(Blob::new(event))
        .send()
        .await
        .expect("Invoke");
    let payload =
        String::from_utf8_lossy(out.payload().map(|p| p.as_ref()).unwrap_or_default()).into_owned();
    let _ = lambda.delete_function().function_name(&name).send().await;
    assert!(out.function_error().is_none(), "function error: {payload}");
    let resp: serde_json::Value = serde_json::from_str(&payload).expect("JSON answer");
    assert_eq!(resp["statusCode"], 201, "{payload}");
    let body: serde_json::Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    let key = body["key"].as_str().unwrap();
    assert!(key.ends_with("/한글 녹음.mp3"), "{key}");
    // The browser's part: the form as the function signed it, the file last.
    let file = std::env::temp_dir().join(testing::unique("zip-upload.mp3"));
    std::fs::write(&file, &mp3).unwrap();
    let mut curl = std::process::Command::new("curl");
    curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
    for (name, value) in body["upload"]["fields"].as_object().unwrap() {
        curl.arg("--form-string")
            .arg(format!("{name}={}", value.as_str().unwrap()));
    }
    curl.arg("-F").arg(format!("file=@{}", file.display()));
    let posted = curl
        .arg(body["upload"]["url"].as_str().unwrap())
        .output()
        .expect("curl");
    let _ = std::fs::remove_file(&file);
    let code = String::from_utf8_lossy(&posted.stdout).into_owned();
    assert!(code.starts_with('2'), "S3 answered {code} to the form");
    s3.head_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .expect("the object the form stored");
    assert_eq!(
        resp["headers"]["access-control-allow-origin"],
        "https://d111111abcdef8.cloudfront.net"
    );
    testing::drop_database(&db).await;
}
