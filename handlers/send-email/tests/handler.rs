//! The handler on S3 event fixtures with in-memory repository and store and a recording
//! mailer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use send_email::{handler, html_escape, Deps, Mail, Mailer};
use stt_common::events::S3Notification;
use stt_common::repo::{status, MemoryRepo, Upload};
use stt_common::store::MemoryStore;

const ID: &str = "0123456789abcdef0123456789abcdef";
const BUCKET: &str = "stt-audio-bucket";

#[derive(Default)]
struct RecordingMailer {
    sent: Mutex<Vec<Mail>>,
    fail: AtomicBool,
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> stt_common::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(stt_common::Error::service("ses:SendEmail", "injected"));
        }
        self.sent.lock().unwrap().push(mail.clone());
        Ok(())
    }
}

fn event(name: &str) -> S3Notification {
    let path = format!("{}/../common/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn row() -> Upload {
    Upload {
        upload_id: ID.into(),
        email: "user@example.com".into(),
        filename: "한글 녹음.mp3".into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{ID}/한글 녹음.mp3"),
        job_name: Some("job".into()),
        status: status::TRANSCRIBED.into(),
        failure_reason: None,
        text_key: Some(format!("output_text/{ID}/한글 녹음.txt")),
        emailed: false,
    }
}

fn setup() -> (Deps, Arc<MemoryRepo>, Arc<RecordingMailer>) {
    let repo = Arc::new(MemoryRepo::with([row()]));
    let store = Arc::new(MemoryStore::new());
    store.insert(
        BUCKET,
        &format!("output_text/{ID}/한글 녹음.txt"),
        "안녕하세요 <b>굵게</b> & 끝".as_bytes().to_vec(),
    );
    let mailer = Arc::new(RecordingMailer::default());
    let deps = Deps {
        repo: repo.clone(),
        store,
        mailer: mailer.clone(),
        from: "stt@example.com".into(),
    };
    (deps, repo, mailer)
}

#[tokio::test]
async fn mails_the_text_once() {
    let (deps, repo, mailer) = setup();
    let out = handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    assert_eq!(out["sent"].as_array().unwrap().len(), 1);
    {
        let sent = mailer.sent.lock().unwrap();
        let m = &sent[0];
        assert_eq!(m.to, "user@example.com");
        assert_eq!(m.from, "stt@example.com");
        assert!(m.subject.contains("한글 녹음.mp3") && m.subject.contains("ko-KR"));
        assert!(m.text.contains("안녕하세요 <b>굵게</b> & 끝"));
        assert!(m
            .html
            .contains("안녕하세요 &lt;b&gt;굵게&lt;/b&gt; &amp; 끝"));
        assert!(!m.html.contains("<b>굵게"));
    }
    assert!(repo.all()[0].emailed);
    // The same event again: no second mail.
    let again = handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    assert_eq!(again["sent"].as_array().unwrap().len(), 0);
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn ignores_json_temp_and_test_events() {
    let (deps, _, mailer) = setup();
    for f in [
        "s3-put-transcript-json.json",
        "s3-put-write-check.json",
        "s3-test-event.json",
        "s3-put-korean.json",
    ] {
        handler(&deps, event(f)).await.unwrap();
    }
    assert!(mailer.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn failed_send_gives_the_claim_back() {
    let (deps, repo, mailer) = setup();
    mailer.fail.store(true, Ordering::SeqCst);
    let err = handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "ServiceError");
    assert!(!repo.all()[0].emailed, "claim released");
    mailer.fail.store(false, Ordering::SeqCst);
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    assert_eq!(mailer.sent.lock().unwrap().len(), 1, "the retry mails");
}

#[test]
fn escaping() {
    assert_eq!(
        html_escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}
