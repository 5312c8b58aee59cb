//! The handler on S3 event fixtures with in-memory repository and store and a recording
//! mailer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use send_email::compose::{CONFIRMATION_SUBJECT_KO, MAX_SUBJECT_COLUMNS};
use send_email::{confirm, handler, html_escape, Deps, Mail, Mailer};
use stt_common::events::S3Notification;
use stt_common::recipients::MemoryRecipients;
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

/// Deps whose uploader (`user@example.com`) confirmed the address before.
fn setup() -> (Deps, Arc<MemoryRepo>, Arc<RecordingMailer>) {
    let (deps, repo, mailer, recipients) = setup_unconfirmed();
    recipients.confirm("user@example.com");
    (deps, repo, mailer)
}

fn setup_unconfirmed() -> (
    Deps,
    Arc<MemoryRepo>,
    Arc<RecordingMailer>,
    Arc<MemoryRecipients>,
) {
    let repo = Arc::new(MemoryRepo::with([row()]));
    let recipients = Arc::new(MemoryRecipients::new());
    let store = Arc::new(MemoryStore::new());
    store.insert(
        BUCKET,
        &format!("output_text/{ID}/한글 녹음.txt"),
        "안녕하세요 <b>굵게</b> & 끝".as_bytes().to_vec(),
    );
    let mailer = Arc::new(RecordingMailer::default());
    let deps = Deps {
        repo: repo.clone(),
        recipients: recipients.clone(),
        store,
        mailer: mailer.clone(),
        from: "stt@example.com".into(),
        bucket: BUCKET.into(),
        confirm_page: "https://d111111abcdef8.cloudfront.net/confirm.html".into(),
        link_valid_for: std::time::Duration::from_secs(24 * 3600),
        allowed_origins: vec!["https://d111111abcdef8.cloudfront.net".into()],
    };
    (deps, repo, mailer, recipients)
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
        assert_eq!(
            m.subject, "음성 인식 결과: 한글 녹음.mp3",
            "Korean for ko-KR"
        );
        assert!(m.text.starts_with("안녕하세요."));
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

fn failed_row(reason: &str) -> Upload {
    Upload {
        status: status::FAILED.into(),
        failure_reason: Some(reason.into()),
        text_key: None,
        ..row()
    }
}

fn setup_with(row: Upload) -> (Deps, Arc<MemoryRepo>, Arc<RecordingMailer>) {
    let (mut deps, _, mailer) = setup();
    let repo = Arc::new(MemoryRepo::with([row]));
    deps.repo = repo.clone();
    (deps, repo, mailer)
}

#[tokio::test]
async fn failure_notice_mails_the_failure_once() {
    let (deps, repo, mailer) = setup_with(failed_row(
        "StartTranscriptionJob: BadRequestException: The media format provided does not match \
         the detected media format.",
    ));
    // The notice's body is never read (the store has no such object): the row decides.
    let out = handler(&deps, event("s3-put-failure-notice.json"))
        .await
        .unwrap();
    assert_eq!(out["sent"].as_array().unwrap().len(), 1, "{out}");
    {
        let sent = mailer.sent.lock().unwrap();
        let m = &sent[0];
        assert_eq!(m.to, "user@example.com");
        assert_eq!(m.subject, "음성 인식 실패: 한글 녹음.mp3");
        assert!(m.text.contains("텍스트로 변환하지 못했습니다"));
        assert!(m
            .text
            .contains("사유: StartTranscriptionJob: BadRequestException"));
        assert!(!m.text.contains("안녕하세요 <b>굵게</b>"), "no transcript");
    }
    assert!(repo.all()[0].emailed);
    // The notice again (audio_transcribe's retry, or save_text's notice too): no second mail.
    let again = handler(&deps, event("s3-put-failure-notice.json"))
        .await
        .unwrap();
    assert_eq!(again["sent"].as_array().unwrap().len(), 0);
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn failed_row_never_gets_a_transcript() {
    let (deps, _, mailer) = setup_with(failed_row("Unsupported audio"));
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].subject.starts_with("음성 인식 실패"));
}

#[tokio::test]
async fn notice_for_an_upload_that_did_not_fail_is_skipped() {
    let (deps, repo, mailer) = setup();
    let out = handler(&deps, event("s3-put-failure-notice.json"))
        .await
        .unwrap();
    assert_eq!(out["skipped"].as_array().unwrap().len(), 1);
    assert!(mailer.sent.lock().unwrap().is_empty());
    assert!(
        !repo.all()[0].emailed,
        "the claim stays free for the transcript"
    );
}

#[tokio::test]
async fn english_for_other_languages() {
    let (deps, _, mailer) = setup_with(Upload {
        language: "en-US".into(),
        filename: "회의 녹음 1.mp3".into(),
        ..row()
    });
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent[0].subject, "Transcript of 회의 녹음 1.mp3 (en-US)");
    assert!(sent[0].text.starts_with("Hello,"));
}

#[tokio::test]
async fn failure_mail_in_english_for_other_languages() {
    let (deps, _, mailer) = setup_with(Upload {
        language: "en-GB".into(),
        ..failed_row("Unsupported audio")
    });
    handler(&deps, event("s3-put-failure-notice.json"))
        .await
        .unwrap();
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent[0].subject, "Transcription failed: 한글 녹음.mp3");
    assert!(sent[0].text.contains("Reason: Unsupported audio"));
}

#[tokio::test]
async fn a_subject_with_line_breaks_stays_one_line() {
    let (deps, _, mailer) = setup_with(Upload {
        filename: "회의\r\nBcc: x@example.com 녹음.mp3".into(),
        ..row()
    });
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(
        sent[0].subject,
        "음성 인식 결과: 회의 Bcc: x@example.com 녹음.mp3"
    );
}

#[test]
fn mail_debug_masks_the_recipient() {
    let m = send_email::compose(
        "stt@example.com",
        &Upload {
            email: "listener@example.com".into(),
            ..row()
        },
        "t",
    );
    let d = format!("{m:?}");
    assert!(
        d.contains("l***@example.com") && !d.contains("listener@"),
        "{d}"
    );
    let d = format!("{:?}", row());
    assert!(
        d.contains("u***@example.com") && !d.contains("user@"),
        "{d}"
    );
}

#[test]
fn escaping() {
    assert_eq!(
        html_escape(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
}

/// The API Gateway request the confirmation page sends, with `body` as its JSON.
fn confirm_request(body: &str) -> ApiGatewayProxyRequest {
    let path = format!(
        "{}/../common/fixtures/apigw-confirm.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut req: ApiGatewayProxyRequest =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert!(confirm::is_api_request(
        &serde_json::to_value(&req).unwrap()
    ));
    req.body = Some(body.to_owned());
    req
}

fn answer(resp: &aws_lambda_events::apigw::ApiGatewayProxyResponse) -> serde_json::Value {
    match &resp.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        other => panic!("no JSON body: {other:?}"),
    }
}

/// The token in the link of a confirmation mail.
fn token_in(mail: &Mail) -> String {
    let at = mail.text.find("#token=").expect("a link with a token") + "#token=".len();
    mail.text[at..at + 64].to_owned()
}

#[tokio::test]
async fn a_first_result_sends_only_a_confirmation_and_the_link_releases_it() {
    let (deps, repo, mailer, _) = setup_unconfirmed();
    let out = handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    assert_eq!(out["waiting"].as_array().unwrap().len(), 1, "{out}");
    let confirmation = {
        let sent = mailer.sent.lock().unwrap();
        assert_eq!(sent.len(), 1, "only the confirmation: {sent:?}");
        sent[0].clone()
    };
    assert_eq!(confirmation.subject, CONFIRMATION_SUBJECT_KO);
    assert_eq!(confirmation.to, "user@example.com");
    assert!(confirmation.subject.chars().count() <= MAX_SUBJECT_COLUMNS);
    // Nothing the uploader chose reaches an unconfirmed address.
    for part in [
        &confirmation.text,
        &confirmation.html,
        &confirmation.subject,
    ] {
        assert!(!part.contains("한글 녹음"), "{part}");
        assert!(!part.contains("굵게"), "{part}");
    }
    assert!(confirmation
        .text
        .contains("https://d111111abcdef8.cloudfront.net/confirm.html#token="));
    assert!(!repo.all()[0].emailed);

    // The same result again (S3 retries): no second confirmation.
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);

    let token = token_in(&confirmation);
    let resp = confirm::handler(
        &deps,
        confirm_request(&format!("{{\"token\": \"{token}\"}}")),
    )
    .await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body);
    assert_eq!(answer(&resp)["sent"], 1);
    assert_eq!(
        resp.headers["access-control-allow-origin"],
        "https://d111111abcdef8.cloudfront.net"
    );
    {
        let sent = mailer.sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].subject, "음성 인식 결과: 한글 녹음.mp3");
        assert!(sent[1].text.contains("안녕하세요 <b>굵게</b> & 끝"));
    }
    assert!(repo.all()[0].emailed);

    // The link works once.
    let again = confirm::handler(
        &deps,
        confirm_request(&format!("{{\"token\": \"{token}\"}}")),
    )
    .await;
    assert_eq!(again.status_code, 409);
    assert_eq!(answer(&again)["code"], "link_used");
    assert_eq!(mailer.sent.lock().unwrap().len(), 2);

    // Later results for the address go out directly (`mails_the_text_once`).
    assert_eq!(
        stt_common::recipients::RecipientRepo::consent(
            deps.recipients.as_ref(),
            "USER@example.com"
        )
        .await
        .unwrap(),
        stt_common::recipients::Consent::Confirmed
    );
}

#[tokio::test]
async fn an_expired_link_is_refused_and_the_next_result_sends_a_new_one() {
    let (deps, repo, mailer, recipients) = setup_unconfirmed();
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let first = token_in(&mailer.sent.lock().unwrap()[0]);
    recipients.expire_links();
    let resp = confirm::handler(
        &deps,
        confirm_request(&format!("{{\"token\": \"{first}\"}}")),
    )
    .await;
    assert_eq!(resp.status_code, 410);
    assert_eq!(answer(&resp)["code"], "link_expired");
    assert!(!repo.all()[0].emailed);
    assert_eq!(mailer.sent.lock().unwrap().len(), 1, "nothing released");

    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let second = token_in(&mailer.sent.lock().unwrap()[1]);
    assert_ne!(first, second);
    // The old link is gone for good; the new one works.
    let old = confirm::handler(
        &deps,
        confirm_request(&format!("{{\"token\": \"{first}\"}}")),
    )
    .await;
    assert_eq!(old.status_code, 404);
    let new = confirm::handler(
        &deps,
        confirm_request(&format!("{{\"token\": \"{second}\"}}")),
    )
    .await;
    assert_eq!(new.status_code, 200);
    assert_eq!(mailer.sent.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn malformed_unknown_and_non_post_requests_change_nothing() {
    let (deps, repo, mailer, _) = setup_unconfirmed();
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let unknown = "0".repeat(64);
    for (body, status, code) in [
        ("", 400, "bad_request"),
        ("not json", 400, "bad_request"),
        ("{\"token\": 5}", 400, "bad_request"),
        ("{\"token\": \"ABC\"}", 400, "bad_request"),
        (
            &format!("{{\"token\": \"{unknown}\"}}") as &str,
            404,
            "unknown_link",
        ),
    ] {
        let resp = confirm::handler(&deps, confirm_request(body)).await;
        assert_eq!(resp.status_code, status, "{body}");
        assert_eq!(answer(&resp)["code"], code, "{body}");
    }
    let mut get = confirm_request("");
    get.http_method = aws_lambda_events::http::Method::GET;
    assert_eq!(confirm::handler(&deps, get).await.status_code, 405);
    let mut preflight = confirm_request("");
    preflight.http_method = aws_lambda_events::http::Method::OPTIONS;
    let preflight = confirm::handler(&deps, preflight).await;
    assert_eq!(preflight.status_code, 204);
    assert!(preflight.body.is_none());
    assert_eq!(
        mailer.sent.lock().unwrap().len(),
        1,
        "only the confirmation"
    );
    assert!(!repo.all()[0].emailed);
}

#[tokio::test]
async fn a_confirmation_mail_that_failed_is_sent_again_by_the_retry() {
    let (deps, _, mailer, recipients) = setup_unconfirmed();
    mailer.fail.store(true, Ordering::SeqCst);
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap_err();
    assert_eq!(
        stt_common::recipients::RecipientRepo::consent(recipients.as_ref(), "user@example.com")
            .await
            .unwrap(),
        stt_common::recipients::Consent::Unasked,
        "the link of the failed mail is taken back"
    );
    mailer.fail.store(false, Ordering::SeqCst);
    handler(&deps, event("s3-put-text-korean.json"))
        .await
        .unwrap();
    let sent = mailer.sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].subject, CONFIRMATION_SUBJECT_KO);
}
