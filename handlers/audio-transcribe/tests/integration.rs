//! audio_transcribe against ministack (S3, Transcribe) and MariaDB. Runs with
//! STT_INTEGRATION=1.

use std::sync::Arc;

use audio_transcribe::{
    handler, job_name, Deps, TranscribeClient, DEFAULT_JOB_PREFIX, MAX_ATTEMPTS,
};
use serde_json::json;
use stt_common::events::S3Notification;
use stt_common::keys::failure_notice_key;
use stt_common::repo::{status, MySqlRepo, NewUpload, UploadRepo, MAX_REASON_CHARS};
use stt_common::store::S3Store;
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
        source_ip: None,
        ticket: None,
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
        transcriber: Arc::new(TranscribeClient::new(&cfg)),
        store: Arc::new(S3Store::new(s3.clone())),
        job_prefix: DEFAULT_JOB_PREFIX.into(),
    };
    let ev: S3Notification = serde_json::from_str(&raw).unwrap();
    let first = handler(&deps, ev).await.expect("first start");
    assert_eq!(first["jobs"][0]["started"], true, "{first}");
    let name = job_name(DEFAULT_JOB_PREFIX, &key);
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

/// One upload of `name` in `language`, its object in a new bucket, and the S3 event for it.
struct Setup {
    db: String,
    bucket: String,
    upload_id: String,
    key: String,
    repo: Arc<MySqlRepo>,
    s3: aws_sdk_s3::Client,
    deps: Deps,
}

impl Setup {
    async fn new(prefix: &str, name: &str, language: &str) -> Setup {
        let cfg = testing::ministack_config().await;
        let s3 = testing::s3_client(&cfg);
        let bucket = testing::create_bucket(&s3, prefix).await;
        let (db, pool) = testing::fresh_database(&prefix.replace('-', "_")).await;
        let repo = Arc::new(MySqlRepo::new(pool));
        let upload_id = uuid_like();
        let key = format!("input_audio/{upload_id}/{name}");
        repo.insert(&NewUpload {
            upload_id: upload_id.clone(),
            email: "user@example.com".into(),
            filename: name.into(),
            language: language.into(),
            audio_key: key.clone(),
            source_ip: None,
            ticket: None,
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
        let deps = Deps {
            repo: repo.clone(),
            transcriber: Arc::new(TranscribeClient::new(&cfg)),
            store: Arc::new(S3Store::new(s3.clone())),
            job_prefix: DEFAULT_JOB_PREFIX.into(),
        };
        Setup {
            db,
            bucket,
            upload_id,
            key,
            repo,
            s3,
            deps,
        }
    }

    fn event(&self) -> S3Notification {
        let mut v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!(
                "{}/../common/fixtures/s3-put-korean.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        v["Records"][0]["s3"]["bucket"]["name"] = json!(self.bucket);
        v["Records"][0]["s3"]["object"]["key"] = json!(self.key.replace(' ', "+"));
        serde_json::from_value(v).unwrap()
    }

    async fn notice(&self) -> Option<String> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(failure_notice_key(&self.upload_id))
            .send()
            .await
            .ok()?;
        let body = out.body.collect().await.unwrap().into_bytes();
        Some(String::from_utf8(body.to_vec()).unwrap())
    }
}

#[tokio::test]
async fn permanent_refusals_mark_the_upload_failed_and_transient_errors_fail() {
    if !integration_enabled("audio_transcribe::integration") {
        return;
    }
    require_services().await;

    // 1. A request that breaks Transcribe's API model (a console-era row with a language
    //    Transcribe does not know): BadRequestException from the validating proxy, as AWS
    //    answers it. Permanent: FAILED, notice, success.
    let s = Setup::new("stt-refused", "legacy.mp3", "xx-XX").await;
    let out = handler(&s.deps, s.event())
        .await
        .expect("a refusal succeeds");
    assert_eq!(out["jobs"][0]["started"], false, "{out}");
    let row = s.repo.find(&s.upload_id).await.unwrap().unwrap();
    assert_eq!(row.status, status::FAILED);
    let reason = row.failure_reason.unwrap();
    assert!(reason.contains("BadRequestException"), "{reason}");
    assert!(reason.chars().count() <= MAX_REASON_CHARS);
    let notice = s.notice().await.expect("failure notice in S3");
    assert!(notice.contains("BadRequestException"), "{notice}");
    testing::drop_database(&s.db).await;

    // 2. LimitExceededException on every attempt (injected for this job only): permanent once
    //    the SDK's retries are spent. The reason is longer than the column allows.
    let s = Setup::new("stt-limit", "회의 녹음.mp3", "ko-KR").await;
    let long = format!("Your file is too long. {}", "너무 깁니다. ".repeat(400));
    testing::realism_inject(&json!({
        "service": "transcribe",
        "operation": "StartTranscriptionJob",
        "code": "LimitExceededException",
        "message": long,
        "status": 400,
        "count": MAX_ATTEMPTS,
        "match": job_name(DEFAULT_JOB_PREFIX, &s.key),
    }));
    let out = handler(&s.deps, s.event()).await.expect("permanent");
    assert!(out["jobs"][0]["failed"]
        .as_str()
        .unwrap()
        .contains("LimitExceededException"));
    let row = s.repo.find(&s.upload_id).await.unwrap().unwrap();
    assert_eq!(row.status, status::FAILED);
    assert_eq!(
        row.failure_reason.unwrap().chars().count(),
        MAX_REASON_CHARS,
        "cut to what the column holds"
    );
    assert!(s.notice().await.is_some());
    testing::drop_database(&s.db).await;

    // 3. InternalFailureException (500) on every attempt: transient, the invocation fails,
    //    nothing is recorded, and Lambda's retry then starts the job.
    let s = Setup::new("stt-transient", "회의 녹음.mp3", "ko-KR").await;
    testing::realism_inject(&json!({
        "service": "transcribe",
        "operation": "StartTranscriptionJob",
        "code": "InternalFailureException",
        "message": "We can't process the request.",
        "status": 500,
        "count": MAX_ATTEMPTS,
        "match": job_name(DEFAULT_JOB_PREFIX, &s.key),
    }));
    let err = handler(&s.deps, s.event()).await.unwrap_err();
    assert_eq!(err.error_type(), "ServiceError", "{err}");
    let row = s.repo.find(&s.upload_id).await.unwrap().unwrap();
    assert_ne!(row.status, status::FAILED);
    assert!(s.notice().await.is_none(), "no failure notice");
    let retry = handler(&s.deps, s.event()).await.expect("Lambda's retry");
    assert_eq!(retry["jobs"][0]["started"], true, "{retry}");
    testing::drop_database(&s.db).await;
}

fn uuid_like() -> String {
    let u = testing::unique("x");
    let mut h: u128 = 0xcbf29ce484222325;
    for b in u.bytes() {
        h = (h ^ b as u128).wrapping_mul(0x100000001b3);
    }
    format!("{h:032x}")
}
