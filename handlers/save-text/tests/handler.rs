//! The handler on Transcribe state-change fixtures with in-memory repository and store and a
//! fake GetTranscriptionJob.

use std::sync::Arc;

use async_trait::async_trait;
use save_text::{extract_transcript, handler, Deps, JobInfo, Jobs, TranscribeEvent};
use stt_common::repo::{status, MemoryRepo, Upload};
use stt_common::store::MemoryStore;

const ID: &str = "0123456789abcdef0123456789abcdef";
const JOB: &str = "stt-0123456789abcdef0123456789abcdef-.mp3-3c5d7a1f0e9b2c4d";
const BUCKET: &str = "stt-audio";

struct FakeJobs(JobInfo);

#[async_trait]
impl Jobs for FakeJobs {
    async fn get(&self, job_name: &str) -> stt_common::Result<JobInfo> {
        assert_eq!(job_name, JOB);
        Ok(self.0.clone())
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn event(name: &str) -> TranscribeEvent {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn row() -> Upload {
    Upload {
        upload_id: ID.into(),
        email: "user@example.com".into(),
        filename: "한글 녹음.mp3".into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{ID}/한글 녹음.mp3"),
        job_name: Some(JOB.into()),
        status: status::TRANSCRIBING.into(),
        failure_reason: None,
        text_key: None,
        emailed: false,
    }
}

fn setup(info: JobInfo) -> (Deps, Arc<MemoryRepo>, Arc<MemoryStore>) {
    let repo = Arc::new(MemoryRepo::with([row()]));
    let store = Arc::new(MemoryStore::new());
    let deps = Deps {
        repo: repo.clone(),
        store: store.clone(),
        jobs: Arc::new(FakeJobs(info)),
    };
    (deps, repo, store)
}

fn completed_info() -> JobInfo {
    JobInfo {
        status: "COMPLETED".into(),
        transcript_uri: Some(format!(
            "https://s3.us-east-1.amazonaws.com/{BUCKET}/output_text/{ID}/transcript.json"
        )),
        failure_reason: None,
        media_uri: Some(media_uri()),
    }
}

fn media_uri() -> String {
    format!("s3://{BUCKET}/input_audio/{ID}/한글 녹음.mp3")
}

fn failed_info(reason: Option<&str>) -> JobInfo {
    JobInfo {
        status: "FAILED".into(),
        transcript_uri: None,
        failure_reason: reason.map(str::to_string),
        media_uri: Some(media_uri()),
    }
}

#[tokio::test]
async fn completed_writes_the_text() {
    let (deps, repo, store) = setup(completed_info());
    store.insert(
        BUCKET,
        &format!("output_text/{ID}/transcript.json"),
        fixture("transcript.json"),
    );
    let out = handler(&deps, event("transcribe-completed.json"))
        .await
        .unwrap();
    let text_key = format!("output_text/{ID}/한글 녹음.txt");
    assert_eq!(out["textKey"], text_key.as_str());
    let obj = store.object(BUCKET, &text_key).expect("text written");
    assert_eq!(obj.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        std::str::from_utf8(&obj.body).unwrap(),
        "안녕하세요. 음성 인식 <테스트> & 확인입니다."
    );
    let r = repo.all().pop().unwrap();
    assert_eq!(r.status, status::TRANSCRIBED);
    assert_eq!(r.text_key.as_deref(), Some(text_key.as_str()));
}

#[tokio::test]
async fn completed_without_transcript_object_fails() {
    let (deps, _, _) = setup(completed_info());
    let err = handler(&deps, event("transcribe-completed.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "StorageError");
}

#[tokio::test]
async fn failed_is_recorded_and_the_uploader_told() {
    let (deps, repo, store) = setup(failed_info(Some("from GetTranscriptionJob")));
    let out = handler(&deps, event("transcribe-failed.json"))
        .await
        .unwrap();
    assert_eq!(out["recorded"], true);
    let r = repo.all().pop().unwrap();
    assert_eq!(r.status, status::FAILED);
    assert!(
        r.failure_reason.unwrap().contains("media format"),
        "the event's reason wins"
    );
    // The failure notice, in the audio bucket of the job's media: it triggers send_email.
    let notice = format!("output_text/{ID}/.failure-notice.txt");
    assert_eq!(out["notice"], notice.as_str());
    assert_eq!(store.keys(), vec![notice.clone()]);
    let obj = store.object(BUCKET, &notice).unwrap();
    assert_eq!(obj.content_type, "text/plain; charset=utf-8");
    assert!(std::str::from_utf8(&obj.body)
        .unwrap()
        .contains("media format"));
}

#[tokio::test]
async fn failed_reason_is_cut_to_the_column() {
    let (deps, repo, _) = setup(failed_info(None));
    let mut ev = event("transcribe-failed.json");
    ev.detail.failure_reason = Some("오류 ".repeat(2000));
    handler(&deps, ev).await.unwrap();
    let reason = repo.all()[0].failure_reason.clone().unwrap();
    assert_eq!(reason.chars().count(), stt_common::repo::MAX_REASON_CHARS);
}

#[tokio::test]
async fn failed_of_an_unknown_job_writes_nothing() {
    let (deps, _, store) = setup(failed_info(None));
    let mut ev = event("transcribe-failed.json");
    ev.detail.job_name = "someone-elses-job".into();
    let out = handler(&deps, ev).await.unwrap();
    assert_eq!(out["recorded"], false);
    assert!(store.keys().is_empty());
}

#[tokio::test]
async fn failed_without_reason_asks_transcribe() {
    let (deps, repo, _) = setup(failed_info(Some("Unsupported audio")));
    let mut ev = event("transcribe-failed.json");
    ev.detail.failure_reason = None;
    handler(&deps, ev).await.unwrap();
    assert_eq!(
        repo.all()[0].failure_reason.as_deref(),
        Some("Unsupported audio")
    );
}

#[tokio::test]
async fn unknown_job_is_skipped() {
    let (deps, _, store) = setup(completed_info());
    let mut ev = event("transcribe-completed.json");
    ev.detail.job_name = "someone-elses-job".into();
    let out = handler(&deps, ev).await.unwrap();
    assert_eq!(out["skipped"], "unknown job");
    assert!(store.keys().is_empty());
}

#[test]
fn transcript_extraction() {
    assert_eq!(
        extract_transcript(br#"{"results":{"transcripts":[{"transcript":"hi"}]}}"#).unwrap(),
        "hi"
    );
    assert!(extract_transcript(b"{}").is_err());
    assert!(extract_transcript(b"not json").is_err());
}
