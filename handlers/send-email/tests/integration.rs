//! send_email against ministack (S3, SES v2) and MariaDB. Runs with STT_INTEGRATION=1.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use send_email::mail::SesMailer;
use send_email::{confirm, handler, Deps};
use stt_common::repo::{MySqlRepo, NewUpload, UploadRepo};
use stt_common::store::S3Store;
use stt_common::testing::{self, integration_enabled, require_services};

fn messages_to(addr: &str) -> Vec<serde_json::Value> {
    let (code, body) = testing::http(
        "GET",
        &format!("{}/_ministack/ses/messages", testing::ministack_url()),
    )
    .expect("GET /_ministack/ses/messages");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let mut out = Vec::new();
    for (_, msgs) in v["messages"].as_object().unwrap() {
        for m in msgs.as_array().unwrap() {
            if m["To"].as_array().unwrap().iter().any(|t| t == addr) {
                out.push(m.clone());
            }
        }
    }
    out
}

/// What both tests start from: a bucket, a fresh database, the sender's SES identity, a
/// recipient and an upload id of this run, and the handler's dependencies.
struct Mailbox {
    s3: aws_sdk_s3::Client,
    bucket: String,
    db: String,
    repo: Arc<MySqlRepo>,
    to: String,
    upload_id: String,
    deps: Deps,
}

async fn mailbox(bucket: &str, database: &str, tag: &str, id_base: u128) -> Mailbox {
    let cfg = testing::ministack_config().await;
    let s3 = testing::s3_client(&cfg);
    let ses = aws_sdk_sesv2::Client::new(&cfg);
    let bucket = testing::create_bucket(&s3, bucket).await;
    let (db, pool) = testing::fresh_database(database).await;
    let repo = Arc::new(MySqlRepo::new(pool));
    let from = "stt@example.com";
    let _ = ses
        .create_email_identity()
        .email_identity(from)
        .send()
        .await;
    let n = std::process::id() % 100_000;
    let to = format!(
        "{tag}{n}x{}@example.com",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 10_000
    );
    let upload_id = format!("{:032x}", id_base + n as u128);
    let deps = Deps {
        repo: repo.clone(),
        recipients: repo.clone(),
        store: Arc::new(S3Store::new(s3.clone())),
        mailer: Arc::new(SesMailer {
            client: ses,
            configuration_set: None,
        }),
        from: from.into(),
        bucket: bucket.clone(),
        confirm_page: "https://d111111abcdef8.cloudfront.net/confirm.html".into(),
        link_valid_for: std::time::Duration::from_secs(3600),
        allowed_origins: vec!["https://d111111abcdef8.cloudfront.net".into()],
    };
    Mailbox {
        s3,
        bucket,
        db,
        repo,
        to,
        upload_id,
        deps,
    }
}

/// The confirmation page's POST of `token`, as API Gateway hands it to the function.
fn confirm_request(token: &str) -> ApiGatewayProxyRequest {
    let raw = std::fs::read_to_string(format!(
        "{}/../common/fixtures/apigw-confirm.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("TOKEN", token);
    serde_json::from_str(&raw).unwrap()
}

/// The token of the confirmation link in a mail's text.
fn token_in(text: &str) -> String {
    let at = text.find("#token=").expect("a confirmation link") + "#token=".len();
    text[at..at + 64].to_owned()
}

#[tokio::test]
async fn mails_once_and_only_after_the_address_confirmed() {
    if !integration_enabled("send_email::integration") {
        return;
    }
    require_services().await;
    let Mailbox {
        s3,
        bucket,
        db,
        repo,
        to,
        upload_id,
        deps,
    } = mailbox("stt-mail", "stt_mail", "u", 0xb0b0_0000_u128).await;
    repo.insert(&NewUpload {
        upload_id: upload_id.clone(),
        email: to.clone(),
        filename: "한글 녹음.mp3".into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{upload_id}/한글 녹음.mp3"),
        source_ip: None,
        ticket: None,
    })
    .await
    .unwrap();
    let key = format!("output_text/{upload_id}/한글 녹음.txt");
    repo.set_job(&upload_id, &format!("job-{upload_id}"))
        .await
        .unwrap();
    repo.set_transcribed(&format!("job-{upload_id}"), &key)
        .await
        .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body("안녕하세요 <script>x</script>".as_bytes().to_vec().into())
        .content_type("text/plain; charset=utf-8")
        .send()
        .await
        .unwrap();
    let raw = std::fs::read_to_string(format!(
        "{}/../common/fixtures/s3-put-text-korean.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("stt-audio-bucket", &bucket)
    .replace("0123456789abcdef0123456789abcdef", &upload_id);

    // The first result for the address: a confirmation mail, nothing of the upload.
    let out = handler(&deps, serde_json::from_str(&raw).unwrap())
        .await
        .expect("send_email");
    assert_eq!(out["waiting"].as_array().unwrap().len(), 1, "{out}");
    let msgs = messages_to(&to);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let confirmation = msgs[0]["BodyText"].as_str().unwrap().to_owned();
    assert!(!confirmation.contains("한글 녹음") && !confirmation.contains("script"));
    assert!(!msgs[0]["Subject"].as_str().unwrap().contains("한글 녹음"));
    // The database keeps the link's digest, never the token.
    let token = token_in(&confirmation);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT token_hash FROM recipients WHERE email = ?")
            .bind(&to)
            .fetch_one(repo.pool())
            .await
            .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(stt_common::recipients::token_digest(&token).as_str())
    );
    // The event again (S3 retries): no second confirmation.
    handler(&deps, serde_json::from_str(&raw).unwrap())
        .await
        .unwrap();
    assert_eq!(messages_to(&to).len(), 1);

    // The link: the address is confirmed and the transcript goes out, once.
    let resp = confirm::handler(&deps, confirm_request(&token)).await;
    assert_eq!(resp.status_code, 200, "{:?}", resp.body);
    let msgs = messages_to(&to);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let transcript = msgs
        .iter()
        .find(|m| m["Subject"].as_str().unwrap().contains("한글 녹음.mp3"))
        .expect("the transcript mail");
    assert!(transcript["BodyText"]
        .as_str()
        .unwrap()
        .contains("안녕하세요 <script>"));
    if let Some(html) = transcript["BodyHtml"].as_str() {
        assert!(
            html.contains("&lt;script&gt;") && !html.contains("<script>"),
            "{html}"
        );
    }
    assert_eq!(
        confirm::handler(&deps, confirm_request(&token))
            .await
            .status_code,
        409
    );

    // The repeated event sends nothing more.
    handler(&deps, serde_json::from_str(&raw).unwrap())
        .await
        .unwrap();
    assert_eq!(messages_to(&to).len(), 2, "no second mail");

    // An expired link confirms nothing.
    let late = format!("late{to}");
    let late_token = stt_common::recipients::new_token();
    let digest = stt_common::recipients::token_digest(&late_token);
    use stt_common::recipients::RecipientRepo;
    assert!(repo
        .issue_link(&late, &digest, std::time::Duration::from_secs(3600))
        .await
        .unwrap());
    sqlx::query("UPDATE recipients SET token_expires_at = CURRENT_TIMESTAMP - INTERVAL 1 SECOND WHERE email = ?")
        .bind(&late)
        .execute(repo.pool())
        .await
        .unwrap();
    assert_eq!(
        confirm::handler(&deps, confirm_request(&late_token))
            .await
            .status_code,
        410
    );
    assert_eq!(
        repo.consent(&late).await.unwrap(),
        stt_common::recipients::Consent::Unasked
    );
    testing::drop_database(&db).await;
}

#[tokio::test]
async fn failure_notice_mails_the_failure_in_korean_once() {
    if !integration_enabled("send_email::integration") {
        return;
    }
    require_services().await;
    let Mailbox {
        s3,
        bucket,
        db,
        repo,
        to,
        upload_id,
        deps,
    } = mailbox("stt-mail-fail", "stt_mail_fail", "f", 0xfa11_0000_u128).await;
    // An address that confirmed before: the failure mail goes out directly.
    sqlx::query("INSERT INTO recipients (email, confirmed_at) VALUES (?, CURRENT_TIMESTAMP)")
        .bind(&to)
        .execute(repo.pool())
        .await
        .unwrap();
    let job = format!("stt-fail-{upload_id}");
    repo.insert(&NewUpload {
        upload_id: upload_id.clone(),
        email: to.clone(),
        filename: "회의 녹음 1.mp3".into(),
        language: "ko-KR".into(),
        audio_key: format!("input_audio/{upload_id}/회의 녹음 1.mp3"),
        source_ip: None,
        ticket: None,
    })
    .await
    .unwrap();
    repo.set_job(&upload_id, &job).await.unwrap();
    repo.set_failed(
        &job,
        "StartTranscriptionJob: BadRequestException: unsupported",
    )
    .await
    .unwrap();
    // The notice audio_transcribe writes, and its S3 event.
    let key = stt_common::keys::failure_notice_key(&upload_id);
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(
            b"StartTranscriptionJob: BadRequestException: unsupported\n"
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let raw = std::fs::read_to_string(format!(
        "{}/../common/fixtures/s3-put-failure-notice.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("stt-audio-bucket", &bucket)
    .replace("0123456789abcdef0123456789abcdef", &upload_id);
    let out = handler(&deps, serde_json::from_str(&raw).unwrap())
        .await
        .expect("send_email");
    assert_eq!(out["sent"].as_array().unwrap().len(), 1, "{out}");
    let msgs = messages_to(&to);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(
        msgs[0]["Subject"].as_str().unwrap(),
        "음성 인식 실패: 회의 녹음 1.mp3"
    );
    let body = msgs[0]["BodyText"].as_str().unwrap();
    assert!(body.contains("텍스트로 변환하지 못했습니다"), "{body}");
    assert!(body.contains("BadRequestException"), "{body}");

    // save_text's notice for the same upload, or a retried event: no second mail.
    handler(&deps, serde_json::from_str(&raw).unwrap())
        .await
        .unwrap();
    assert_eq!(messages_to(&to).len(), 1, "no second mail");
    testing::drop_database(&db).await;
}
