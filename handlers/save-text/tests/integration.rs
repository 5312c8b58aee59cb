//! save_text against ministack (Transcribe, S3) and MariaDB. Runs with STT_INTEGRATION=1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_transcribe::types::{LanguageCode, Media, TranscriptionJobStatus};
use save_text::{handler, Deps, TranscribeEvent, TranscribeJobs};
use stt_common::repo::{status, MySqlRepo, NewUpload, UploadRepo};
use stt_common::store::S3Store;
use stt_common::testing::{self, integration_enabled, require_services};

fn event(job: &str, status: &str) -> TranscribeEvent {
    let raw = std::fs::read_to_string(format!(
        "{}/tests/fixtures/transcribe-{}.json",
        env!("CARGO_MANIFEST_DIR"),
        status.to_ascii_lowercase()
    ))
    .unwrap();
    let mut ev: TranscribeEvent = serde_json::from_str(&raw).unwrap();
    ev.detail.job_name = job.to_string();
    ev
}

#[tokio::test]
async fn completed_job_text_lands_in_s3_and_failure_in_mysql() {
    if !integration_enabled("save_text::integration") {
        return;
    }
    require_services().await;
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let transcribe = aws_sdk_transcribe::Client::new(&cfg);
    let bucket = testing::create_bucket(&s3, "stt-save").await;
    let (db, pool) = testing::fresh_database("stt_save").await;
    let repo = Arc::new(MySqlRepo::new(pool));

    let upload_id = "a".repeat(24) + &format!("{:08x}", std::process::id());
    let key = format!("input_audio/{upload_id}/회의 녹음.mp3");
    let job = testing::unique("stt-save-job");
    repo.insert(&NewUpload {
        upload_id: upload_id.clone(),
        email: "user@example.com".into(),
        filename: "회의 녹음.mp3".into(),
        language: "ko-KR".into(),
        audio_key: key.clone(),
        source_ip: None,
        ticket: None,
    })
    .await
    .unwrap();
    repo.set_job(&upload_id, &job).await.unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(vec![0xFFu8, 0xFB, 0x90, 0x64].into())
        .send()
        .await
        .unwrap();
    transcribe
        .start_transcription_job()
        .transcription_job_name(&job)
        .language_code(LanguageCode::KoKr)
        .media(
            Media::builder()
                .media_file_uri(format!("s3://{bucket}/{key}"))
                .build(),
        )
        .output_bucket_name(&bucket)
        .output_key(stt_common::keys::transcript_key(&upload_id))
        .send()
        .await
        .expect("StartTranscriptionJob");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = transcribe
            .get_transcription_job()
            .transcription_job_name(&job)
            .send()
            .await
            .unwrap();
        let st = out
            .transcription_job()
            .and_then(|j| j.transcription_job_status())
            .cloned();
        if st == Some(TranscriptionJobStatus::Completed) {
            break;
        }
        assert!(Instant::now() < deadline, "job did not complete: {st:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let deps = Deps {
        repo: repo.clone(),
        store: Arc::new(S3Store::new(s3.clone())),
        jobs: Arc::new(TranscribeJobs(transcribe.clone())),
    };
    let out = handler(&deps, event(&job, "COMPLETED"))
        .await
        .expect("save_text");
    let text_key = format!("output_text/{upload_id}/회의 녹음.txt");
    assert_eq!(out["textKey"], text_key.as_str(), "{out}");
    let obj = s3
        .get_object()
        .bucket(&bucket)
        .key(&text_key)
        .send()
        .await
        .expect("text object");
    let text = obj.body.collect().await.unwrap().into_bytes();
    let json_doc = s3
        .get_object()
        .bucket(&bucket)
        .key(stt_common::keys::transcript_key(&upload_id))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(
        std::str::from_utf8(&text).unwrap(),
        save_text::extract_transcript(&json_doc).unwrap()
    );
    let row = repo.find(&upload_id).await.unwrap().unwrap();
    assert_eq!(row.status, status::TRANSCRIBED);
    assert_eq!(row.text_key.as_deref(), Some(text_key.as_str()));

    // A FAILED event records status and reason.
    let out = handler(&deps, event(&job, "FAILED"))
        .await
        .expect("failed event");
    assert_eq!(out["recorded"], true);
    let row = repo.find(&upload_id).await.unwrap().unwrap();
    assert_eq!(row.status, status::FAILED);
    assert!(row.failure_reason.unwrap().contains("media format"));
    // The failure notice in the job's audio bucket (from GetTranscriptionJob's media URI).
    let notice = stt_common::keys::failure_notice_key(&upload_id);
    assert_eq!(out["notice"], notice.as_str());
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key(&notice)
        .send()
        .await
        .expect("failure notice in S3")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(std::str::from_utf8(&body).unwrap().contains("media format"));
    testing::drop_database(&db).await;
}
