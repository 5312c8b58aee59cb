//! The real Transcribe client against a local stub that answers as Transcribe does
//! (`awsJson1_1` errors): which answers are permanent, which are retried by the SDK and then
//! fail the invocation, and that the handler records a permanent refusal and succeeds.

use std::sync::Arc;

use audio_transcribe::{
    handler, JobRequest, StartOutcome, TranscribeClient, Transcriber, MAX_ATTEMPTS,
};
use stt_common::events::S3Notification;
use stt_common::repo::{status, MemoryRepo, Upload};
use stt_common::store::MemoryStore;
use stt_common::testing::{stub_config, StubReply, StubServer};

const ID: &str = "0123456789abcdef0123456789abcdef";

fn job() -> JobRequest {
    JobRequest {
        job_name: "stt-test-0123456789abcdef".into(),
        media_uri: format!("s3://stt-audio-bucket/input_audio/{ID}/a.mp3"),
        media_format: Some("mp3"),
        language: "ko-KR".into(),
        output_bucket: "stt-audio-bucket".into(),
        output_key: format!("output_text/{ID}/transcript.json"),
    }
}

fn started() -> StubReply {
    StubReply::json(
        200,
        serde_json::json!({ "TranscriptionJob": {
            "TranscriptionJobName": "stt-test-0123456789abcdef",
            "TranscriptionJobStatus": "IN_PROGRESS",
            "LanguageCode": "ko-KR"
        }}),
    )
}

async fn start_against(
    respond: impl Fn(usize) -> StubReply + Send + 'static,
) -> (stt_common::Result<StartOutcome>, usize) {
    let server = StubServer::start(move |n, _| respond(n));
    let client = TranscribeClient::new(&stub_config(&server.url));
    let out = client.start(&job()).await;
    let calls = server.requests().len();
    (out, calls)
}

#[tokio::test]
async fn bad_request_is_permanent_at_once() {
    let (out, calls) = start_against(|_| {
        StubReply::aws_json_error(
            400,
            "BadRequestException",
            "The media format provided does not match the detected media format.",
        )
    })
    .await;
    assert_eq!(
        out.unwrap(),
        StartOutcome::Refused(
            "StartTranscriptionJob: BadRequestException: The media format provided does not \
             match the detected media format."
                .into()
        )
    );
    assert_eq!(calls, 1, "a 400 is not retried");
}

#[tokio::test]
async fn limit_exceeded_is_permanent_once_the_retries_are_spent() {
    let (out, calls) = start_against(|_| {
        StubReply::aws_json_error(
            400,
            "LimitExceededException",
            "You have sent too many requests in too short a period of time. Wait and try again.",
        )
    })
    .await;
    match out.unwrap() {
        StartOutcome::Refused(r) => assert!(r.contains("LimitExceededException"), "{r}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        calls, MAX_ATTEMPTS as usize,
        "the SDK retries LimitExceededException as throttling first"
    );
}

#[tokio::test]
async fn limit_exceeded_that_passes_starts_the_job() {
    let (out, calls) = start_against(|n| {
        if n < 2 {
            StubReply::aws_json_error(400, "LimitExceededException", "slow down")
        } else {
            started()
        }
    })
    .await;
    assert_eq!(out.unwrap(), StartOutcome::Started);
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn internal_failure_is_transient() {
    let (out, calls) = start_against(|_| {
        StubReply::aws_json_error(
            500,
            "InternalFailureException",
            "We can't process the request.",
        )
    })
    .await;
    let err = out.unwrap_err();
    assert_eq!(err.error_type(), "ServiceError");
    assert!(
        err.to_string().contains("InternalFailureException"),
        "{err}"
    );
    assert_eq!(calls, MAX_ATTEMPTS as usize, "retried by the SDK first");
}

#[tokio::test]
async fn access_denied_is_not_taken_for_permanent() {
    // An operator's problem (IAM): the invocation fails and the event waits in the
    // failed-event queue instead of the upload being marked FAILED.
    let (out, _) = start_against(|_| {
        StubReply::aws_json_error(400, "AccessDeniedException", "User is not authorized")
    })
    .await;
    assert!(out.is_err());
}

#[tokio::test]
async fn conflict_is_success() {
    let (out, calls) = start_against(|_| {
        StubReply::aws_json_error(
            400,
            "ConflictException",
            "The requested job name already exists. Use a different job name.",
        )
    })
    .await;
    assert_eq!(out.unwrap(), StartOutcome::AlreadyExists);
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    // Nothing listens on the port any more.
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let client = TranscribeClient::new(&stub_config(&url));
    let err = client.start(&job()).await.unwrap_err();
    assert_eq!(err.error_type(), "ServiceError");
}

#[tokio::test]
async fn handler_records_a_refusal_from_the_real_client() {
    let server = StubServer::start(|_, _| {
        StubReply::aws_json_error(
            400,
            "BadRequestException",
            "Your audio file must have a speech segment long enough in duration to perform \
             automatic language identification.",
        )
    });
    let key = format!("input_audio/{ID}/한글 녹음.mp3");
    let repo = Arc::new(MemoryRepo::with([Upload {
        upload_id: ID.into(),
        email: "user@example.com".into(),
        filename: "한글 녹음.MP3".into(),
        language: "ko-KR".into(),
        audio_key: key,
        job_name: None,
        status: status::UPLOADED.into(),
        failure_reason: None,
        text_key: None,
        emailed: false,
    }]));
    let store = Arc::new(MemoryStore::new());
    let deps = audio_transcribe::Deps {
        repo: repo.clone(),
        transcriber: Arc::new(TranscribeClient::new(&stub_config(&server.url))),
        store: store.clone(),
        job_prefix: audio_transcribe::DEFAULT_JOB_PREFIX.into(),
    };
    let raw = std::fs::read(format!(
        "{}/../common/fixtures/s3-put-korean.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let ev: S3Notification = serde_json::from_slice(&raw).unwrap();
    let out = handler(&deps, ev).await.expect("succeeds");
    assert!(out["jobs"][0]["failed"]
        .as_str()
        .unwrap()
        .contains("BadRequestException"));
    let row = repo.all().pop().unwrap();
    assert_eq!(row.status, status::FAILED);
    assert!(row.failure_reason.unwrap().contains("speech segment"));
    assert_eq!(
        store.keys(),
        vec![format!("output_text/{ID}/.failure-notice.txt")]
    );
    // What went on the wire: one StartTranscriptionJob.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("x-amz-target"),
        Some("Transcribe.StartTranscriptionJob")
    );
}
