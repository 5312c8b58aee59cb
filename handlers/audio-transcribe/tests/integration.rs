//! audio_transcribe against ministack (S3, Transcribe) and MariaDB. Runs with
//! STT_INTEGRATION=1.

use std::sync::Arc;

use audio_transcribe::{handler, job_name, Deps, TranscribeClient};
use stt_common::events::S3Notification;
use stt_common::repo::{MySqlRepo, NewUpload, UploadRepo};
use stt_common::testing::{self, integration_enabled, require_services};

#[tokio::test]
async fn starts_one_job_for_a_korean_key() {
    if !integration_enabled("audio_transcribe::integration") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let transcribe = aws_sdk_transcribe::Client::new(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-transcribe").await;
    let (db, pool) = testing::fresh_database("stt_transcribe").await;
    let repo = Arc::new(MySqlRepo::new(pool));

    let upload_id = uuid_like();
    let key = format!("input_audio/{upload_id}/한글 녹음.mp3");
    repo.insert(&NewUpload {
        upload_id: upload_id.clone(),
        email: "user@example.com".into(),
        filename: "한글 녹음.mp3".into(),
        language: "ko-KR".into(),
        audio_key: key.clone(),
    })
    .await
    .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(vec![0xFFu8, 0xFB, 0x90, 0x64].into())
        .send()
        .await
        .unwrap();

    // The event as S3 sends it: key URL-encoded.
    let encoded = format!("input_audio/{upload_id}/%ED%95%9C%EA%B8%80+%EB%85%B9%EC%9D%8C.mp3");
    let raw = std::fs::read_to_string(format!(
        "{}/../common/fixtures/s3-put-korean.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("stt-audio-bucket", &bucket)
    .replace(
        "input_audio/0123456789abcdef0123456789abcdef/%ED%95%9C%EA%B8%80+%EB%85%B9%EC%9D%8C.mp3",
        &encoded,
    );
    let deps = Deps {
        repo: repo.clone(),
        transcriber: Arc::new(TranscribeClient(transcribe.clone())),
    };
    let ev: S3Notification = serde_json::from_str(&raw).unwrap();
    let first = handler(&deps, ev).await.expect("first start");
    assert_eq!(first["jobs"][0]["started"], true, "{first}");
    let name = job_name(&key);
    let job = transcribe
        .get_transcription_job()
        .transcription_job_name(&name)
        .send()
        .await
        .expect("the job exists in Transcribe");
    let job = job.transcription_job().unwrap();
    assert_eq!(job.language_code().map(|l| l.as_str()), Some("ko-KR"));
    assert_eq!(
        job.media().and_then(|m| m.media_file_uri()),
        Some(format!("s3://{bucket}/{key}").as_str())
    );

    // The retried event: no failure, no second job (ConflictException is success).
    let ev: S3Notification = serde_json::from_str(&raw).unwrap();
    let second = handler(&deps, ev).await.expect("retry succeeds");
    assert_eq!(second["jobs"][0]["started"], false, "{second}");
    assert_eq!(
        repo.find(&upload_id)
            .await
            .unwrap()
            .unwrap()
            .job_name
            .as_deref(),
        Some(name.as_str())
    );
    testing::drop_database(&db).await;
}

fn uuid_like() -> String {
    let u = testing::unique("x");
    let mut h: u128 = 0xcbf29ce484222325;
    for b in u.bytes() {
        h = (h ^ b as u128).wrapping_mul(0x100000001b3);
    }
    format!("{h:032x}")
}
