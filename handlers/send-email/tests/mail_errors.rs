//! Errors that carry the recipient's address are returned (and so logged) with the local part
//! masked: SES v2 refusals from a local stub that answers as SES does (REST-JSON), and an
//! address the SMTP transport cannot parse.

use send_email::mail::{SesMailer, SmtpMailer};
use send_email::{Mail, Mailer};
use stt_common::testing::{stub_config, StubReply, StubServer};

fn mail(to: &str) -> Mail {
    Mail {
        from: "transcripts@example.org".into(),
        to: to.into(),
        subject: "음성 인식 결과: 회의 녹음 1.mp3".into(),
        text: "t".into(),
        html: "<p>t</p>".into(),
    }
}

async fn ses_error(reply: StubReply, to: &str) -> (String, usize) {
    let server = StubServer::start(move |_, _| reply.clone());
    let mailer = SesMailer {
        client: aws_sdk_sesv2::Client::new(&stub_config(&server.url)),
        configuration_set: None,
    };
    let err = mailer.send(&mail(to)).await.unwrap_err();
    assert_eq!(err.error_type(), "ServiceError");
    (err.to_string(), server.requests().len())
}

#[tokio::test]
async fn ses_sandbox_refusal_is_masked() {
    let (msg, calls) = ses_error(
        StubReply::rest_json_error(
            400,
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in \
             region AP-NORTHEAST-2: listener42@example.com, transcripts@example.org",
        ),
        "listener42@example.com",
    )
    .await;
    assert_eq!(calls, 1);
    assert!(msg.contains("MessageRejected"), "{msg}");
    assert!(msg.contains("l***@example.com"), "{msg}");
    assert!(!msg.contains("listener42"), "{msg}");
    assert!(
        msg.contains("transcripts@example.org"),
        "the sender stays: {msg}"
    );
    assert!(
        msg.contains("MAIL_TRANSPORT=smtp"),
        "the sandbox hint: {msg}"
    );
}

#[tokio::test]
async fn ses_bad_address_is_masked() {
    let (msg, _) = ses_error(
        StubReply::rest_json_error(
            400,
            "BadRequestException",
            "Illegal address: bad.person@exa_mple.com",
        ),
        "bad.person@exa_mple.com",
    )
    .await;
    assert!(msg.contains("BadRequestException"), "{msg}");
    assert!(!msg.contains("bad.person"), "{msg}");
    assert!(msg.contains("b***@exa"), "{msg}");
}

#[tokio::test]
async fn smtp_unparsable_address_is_masked() {
    let mailer = SmtpMailer {
        transport: lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
            "127.0.0.1",
        )
        .port(9)
        .build(),
    };
    let err = mailer
        .send(&mail("secret person@@example.com"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("secret person"), "{msg}");
    assert!(!msg.contains("person@"), "{msg}");
    assert!(msg.contains("s***@example.com"), "{msg}");
}
