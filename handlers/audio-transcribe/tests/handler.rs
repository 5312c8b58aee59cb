//! The handler on S3 event fixtures with an in-memory repository and a fake Transcribe.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use audio_transcribe::{
    handler, job_name, Deps, JobRequest, StartOutcome, Transcriber, DEFAULT_JOB_PREFIX,
};
use stt_common::events::S3Notification;
use stt_common::repo::{status, MemoryRepo, Upload, MAX_REASON_CHARS};
use stt_common::store::MemoryStore;

const ID: &str = "0123456789abcdef0123456789abcdef";

/// Remembers the jobs; a second start of the same name answers like Transcribe's
/// ConflictException. `refuse` makes it answer like a permanent refusal, `transient` like a
/// throttled or failing service once the SDK's retries are spent.
#[derive(Default)]
struct FakeTranscribe {
    jobs: Mutex<Vec<JobRequest>>,
    refuse: Mutex<Option<String>>,
    transient: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Transcriber for FakeTranscribe {
    async fn start(&self, job: &JobRequest) -> stt_common::Result<StartOutcome> {
        if let Some(reason) = self.refuse.lock().unwrap().clone() {
            return Ok(StartOutcome::Refused(reason));
        }
        if self.transient.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(stt_common::Error::service(
                "transcribe:StartTranscriptionJob",
                "InternalFailureException: service error",
            ));
        }
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.iter().any(|j| j.job_name == job.job_name) {
            return Ok(StartOutcome::AlreadyExists);
        }
        jobs.push(job.clone());
        Ok(StartOutcome::Started)
    }
}

fn event(name: &str) -> S3Notification {
    let path = format!("{}/../common/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn upload(filename: &str, language: &str) -> Upload {
    Upload {
        upload_id: ID.into(),
        email: "user@example.com".into(),
        filename: filename.into(),
        language: language.into(),
        audio_key: format!("input_audio/{ID}/{filename}"),
        job_name: None,
        status: status::UPLOADED.into(),
        failure_reason: None,
        text_key: None,
        emailed: false,
    }
}

fn deps(rows: Vec<Upload>) -> (Deps, Arc<MemoryRepo>, Arc<FakeTranscribe>) {
    let (deps, repo, t, _) = deps_and_store(rows);
    (deps, repo, t)
}

fn deps_and_store(
    rows: Vec<Upload>,
) -> (Deps, Arc<MemoryRepo>, Arc<FakeTranscribe>, Arc<MemoryStore>) {
    let repo = Arc::new(MemoryRepo::with(rows));
    let t = Arc::new(FakeTranscribe::default());
    let store = Arc::new(MemoryStore::new());
    (
        Deps {
            repo: repo.clone(),
            transcriber: t.clone(),
            store: store.clone(),
            job_prefix: audio_transcribe::DEFAULT_JOB_PREFIX.into(),
        },
        repo,
        t,
        store,
    )
}

#[tokio::test]
async fn korean_key_starts_a_job() {
    let (deps, repo, t) = deps(vec![upload("한글 녹음.mp3", "ko-KR")]);
    let out = handler(&deps, event("s3-put-korean.json")).await.unwrap();
    let jobs = t.jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), 1, "{out}");
    let j = &jobs[0];
    assert_eq!(j.language, "ko-KR");
    assert_eq!(j.media_format, Some("mp3"));
    assert_eq!(
        j.media_uri,
        format!("s3://stt-audio-bucket/input_audio/{ID}/한글 녹음.mp3")
    );
    assert_eq!(j.output_bucket, "stt-audio-bucket");
    // Transcribe refuses a Korean or spaced OutputKey (BadRequestException): an ASCII one.
    assert_eq!(j.output_key, format!("output_text/{ID}/transcript.json"));
    assert!(stt_common::keys::is_transcribe_output_key(&j.output_key));
    assert_eq!(
        j.job_name,
        job_name(
            DEFAULT_JOB_PREFIX,
            &format!("input_audio/{ID}/한글 녹음.mp3")
        )
    );
    let row = repo.all().pop().unwrap();
    assert_eq!(row.job_name.as_deref(), Some(j.job_name.as_str()));
    assert_eq!(row.status, status::TRANSCRIBING);
}

#[tokio::test]
async fn retried_event_starts_no_second_job() {
    let (deps, _, t) = deps(vec![upload("my first recording(1).mp3", "en-US")]);
    let first = handler(&deps, event("s3-put-encoded.json")).await.unwrap();
    let second = handler(&deps, event("s3-put-encoded.json")).await.unwrap();
    assert_eq!(t.jobs.lock().unwrap().len(), 1);
    assert_eq!(first["jobs"][0]["started"], true);
    assert_eq!(second["jobs"][0]["started"], false);
    assert_eq!(first["jobs"][0]["jobName"], second["jobs"][0]["jobName"]);
}

#[tokio::test]
async fn test_event_is_ignored() {
    let (deps, _, t) = deps(vec![]);
    let out = handler(&deps, event("s3-test-event.json")).await.unwrap();
    assert_eq!(out["skipped"], "s3:TestEvent");
    assert!(t.jobs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_upload_is_skipped() {
    let (deps, _, t) = deps(vec![]);
    let out = handler(&deps, event("s3-put-korean.json")).await.unwrap();
    assert_eq!(out["skipped"].as_array().unwrap().len(), 1);
    assert!(t.jobs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn database_error_fails_the_invocation() {
    let (deps, repo, _) = deps(vec![upload("한글 녹음.mp3", "ko-KR")]);
    repo.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = handler(&deps, event("s3-put-korean.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError");
}

#[tokio::test]
async fn permanent_refusal_marks_failed_writes_the_notice_and_succeeds() {
    let (deps, repo, t, store) = deps_and_store(vec![upload("한글 녹음.mp3", "ko-KR")]);
    // A reason longer than the column: stored cut to MAX_REASON_CHARS characters.
    let reason = format!(
        "StartTranscriptionJob: BadRequestException: {}",
        "지원하지 않는 형식입니다. ".repeat(200)
    );
    *t.refuse.lock().unwrap() = Some(reason.clone());
    let out = handler(&deps, event("s3-put-korean.json"))
        .await
        .expect("a permanent refusal is not retried: the invocation succeeds");
    let notice = format!("output_text/{ID}/.failure-notice.txt");
    assert_eq!(out["jobs"][0]["started"], false, "{out}");
    assert_eq!(out["jobs"][0]["notice"], notice.as_str());
    let row = repo.all().pop().unwrap();
    assert_eq!(row.status, status::FAILED);
    let stored = row.failure_reason.unwrap();
    assert_eq!(stored.chars().count(), MAX_REASON_CHARS);
    assert!(stored.starts_with("StartTranscriptionJob: BadRequestException: 지원하지"));
    let obj = store
        .object("stt-audio-bucket", &notice)
        .expect("failure notice written");
    assert_eq!(obj.content_type, "text/plain; charset=utf-8");
    assert!(std::str::from_utf8(&obj.body)
        .unwrap()
        .starts_with("StartTranscriptionJob: BadRequestException"));
    assert!(notice.ends_with(".txt"), "the send_email trigger's suffix");
}

#[tokio::test]
async fn transient_error_fails_the_invocation_and_records_nothing() {
    let (deps, repo, t, store) = deps_and_store(vec![upload("한글 녹음.mp3", "ko-KR")]);
    t.transient.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = handler(&deps, event("s3-put-korean.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ServiceError");
    let row = repo.all().pop().unwrap();
    assert_ne!(row.status, status::FAILED);
    assert!(store.keys().is_empty(), "no failure notice");
}

#[test]
fn job_names_are_valid_unique_and_deterministic() {
    let long = format!("input_audio/{ID}/{}.mp3", "가나다abc!@#".repeat(60));
    for key in [
        format!("input_audio/{ID}/한글 녹음.mp3"),
        format!("input_audio/{ID}/my file (1).mp3"),
        long.clone(),
        "input_audio/한.mp3".to_string(),
    ] {
        let n = job_name(DEFAULT_JOB_PREFIX, &key);
        assert!(n.len() <= 200, "{n}");
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{n}"
        );
        assert_eq!(n, job_name(DEFAULT_JOB_PREFIX, &key), "deterministic");
    }
    assert_ne!(
        job_name(DEFAULT_JOB_PREFIX, &format!("input_audio/{ID}/가.mp3")),
        job_name(DEFAULT_JOB_PREFIX, &format!("input_audio/{ID}/나.mp3")),
        "names that sanitise alike still differ"
    );
    assert_eq!(job_name(DEFAULT_JOB_PREFIX, &long).len(), 200);
}

#[test]
fn job_names_begin_with_the_stacks_prefix() {
    use audio_transcribe::job_prefix_from;
    let key = format!("input_audio/{ID}/meeting.mp3");
    let prefix = job_prefix_from(Some("stt-demo.")).unwrap();
    let name = job_name(&prefix, &key);
    assert!(
        name.starts_with(&format!("stt-demo.{ID}-meeting.mp3-")),
        "{name}"
    );
    let long = format!("input_audio/{ID}/{}.mp3", "x".repeat(300));
    assert_eq!(job_name(&prefix, &long).len(), 200);
    assert_eq!(job_prefix_from(None).unwrap(), DEFAULT_JOB_PREFIX);
    assert_eq!(job_prefix_from(Some("")).unwrap(), DEFAULT_JOB_PREFIX);
    for bad in ["stt demo.", "stt/", &"x".repeat(65)] {
        let err = job_prefix_from(Some(bad)).unwrap_err().to_string();
        assert!(err.contains("TRANSCRIBE_JOB_PREFIX"), "{bad}: {err}");
    }
}

/// A row as file_upload records a direct upload: waiting for a file of this size and type.
async fn waiting_upload(repo: &MemoryRepo, filename: &str, size: u64, content_type: &str) {
    use stt_common::repo::{NewUpload, Ticket, UploadRepo};
    repo.insert(&NewUpload {
        upload_id: ID.into(),
        email: "user@example.com".into(),
        filename: filename.into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{ID}/{filename}"),
        source_ip: None,
        ticket: Some(Ticket {
            declared_bytes: size,
            content_type: content_type.into(),
            token_hash: "0".repeat(64),
            expires_at: i64::MAX,
            multipart_id: None,
        }),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_file_as_declared_is_uploaded_then_transcribed() {
    let (deps, repo, t, store) = deps_and_store(vec![]);
    let mp3 = stt_common::audio::sample_mp3(3, true);
    waiting_upload(&repo, "한글 녹음.mp3", mp3.len() as u64, "audio/mpeg").await;
    store.insert(
        "stt-audio-bucket",
        &format!("input_audio/{ID}/한글 녹음.mp3"),
        mp3,
    );
    handler(&deps, event("s3-put-korean.json")).await.unwrap();
    assert_eq!(t.jobs.lock().unwrap().len(), 1);
    assert_eq!(repo.all().pop().unwrap().status, status::TRANSCRIBING);
}

#[tokio::test]
async fn a_file_unlike_its_declaration_fails_and_the_uploader_is_told() {
    let key = format!("input_audio/{ID}/한글 녹음.mp3");
    let mp3 = stt_common::audio::sample_mp3(3, true);
    for (stored, declared_size, declared_type, reason) in [
        (
            b"%PDF-1.7 not audio at all".to_vec(),
            25,
            "audio/mpeg",
            "not a recognised audio file",
        ),
        (
            mp3.clone(),
            mp3.len() as u64 + 1,
            "audio/mpeg",
            "were declared",
        ),
        (
            b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec(),
            16,
            "audio/mpeg",
            "holds wav audio but was declared audio/mpeg",
        ),
    ] {
        let (deps, repo, t, store) = deps_and_store(vec![]);
        waiting_upload(&repo, "한글 녹음.mp3", declared_size, declared_type).await;
        store.insert("stt-audio-bucket", &key, stored);
        let out = handler(&deps, event("s3-put-korean.json")).await.unwrap();
        assert!(t.jobs.lock().unwrap().is_empty(), "{out}");
        let row = repo.all().pop().unwrap();
        assert_eq!(row.status, status::FAILED);
        assert!(
            row.failure_reason.as_deref().unwrap().contains(reason),
            "{row:?}"
        );
        let notice = store
            .object(
                "stt-audio-bucket",
                &stt_common::keys::failure_notice_key(ID),
            )
            .expect("a failure notice, which send_email mails");
        assert!(String::from_utf8_lossy(&notice.body).contains(reason));
    }
}

#[tokio::test]
async fn a_file_for_an_abandoned_upload_starts_nothing() {
    use stt_common::repo::UploadRepo;
    let (deps, repo, t, store) = deps_and_store(vec![]);
    let mp3 = stt_common::audio::sample_mp3(3, true);
    waiting_upload(&repo, "한글 녹음.mp3", mp3.len() as u64, "audio/mpeg").await;
    repo.fail_upload(ID, "stopped").await.unwrap();
    store.insert(
        "stt-audio-bucket",
        &format!("input_audio/{ID}/한글 녹음.mp3"),
        mp3,
    );
    let out = handler(&deps, event("s3-put-korean.json")).await.unwrap();
    assert!(t.jobs.lock().unwrap().is_empty(), "{out}");
    assert_eq!(out["skipped"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_retried_rejection_still_writes_the_notice() {
    use stt_common::repo::UploadRepo;
    let key = format!("input_audio/{ID}/한글 녹음.mp3");
    let (deps, repo, _, store) = deps_and_store(vec![]);
    waiting_upload(&repo, "한글 녹음.mp3", 25, "audio/mpeg").await;
    store.insert(
        "stt-audio-bucket",
        &key,
        b"%PDF-1.7 not audio at all".to_vec(),
    );
    // The first run died after marking the row FAILED, before the notice.
    let reason =
        "the file is not a recognised audio file (mp3, wav, flac, ogg, m4a/mp4, webm, amr)";
    assert!(repo.fail_upload(ID, reason).await.unwrap());
    handler(&deps, event("s3-put-korean.json")).await.unwrap();
    assert!(store
        .object(
            "stt-audio-bucket",
            &stt_common::keys::failure_notice_key(ID)
        )
        .is_some());
}
