//! The whole speech-to-text service on the local target (ministack + the machine's MariaDB),
//! as a person uses it: an mp3 posted to the deployed API leads, with no step driven by the
//! test, to the row in MySQL, the audio under `input_audio/`, a transcript, the `.txt` under
//! `output_text/` and an e-mail to the uploader; then the same through the page in headless
//! Chromium, with a good and a bad e-mail address. Needs the zips (`make zips`), the browser
//! driver (`make browser-deps`), espeak-ng and ffmpeg (`make test` installs and builds all).

use std::time::Duration;

use system_tests::{
    browser_script, eventually, http_get, http_request, line, multipart, mysql_drop_database,
    mysql_rows, root, Aws, Emulator, TestStack,
};

const FUNCTIONS: [&str; 5] = [
    "file_upload",
    "audio_transcribe",
    "save_text",
    "send_email",
    "db_migrate",
];

/// An mp3 of a spoken sentence, made with espeak-ng and ffmpeg.
fn spoken_mp3(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("hello.mp3");
    let status = std::process::Command::new(root().join("tests/browser/make-mp3.sh"))
        .arg(&path)
        .arg("hello from the end to end test")
        .status()
        .expect("run make-mp3.sh (needs espeak-ng and ffmpeg: make test-tools)");
    assert!(status.success(), "make-mp3.sh failed");
    std::fs::read(path).unwrap()
}

async fn object_exists(aws: &Aws, bucket: &str, key: &str) -> bool {
    aws.s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// The messages ministack's SES keeps, as JSON.
fn ses_messages() -> serde_json::Value {
    let (status, body) = http_get("http://127.0.0.1:4566/_ministack/ses/messages");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_default()
}

/// The messages sent to `address` (ministack keeps them per account).
fn mails_to(address: &str) -> Vec<serde_json::Value> {
    let all = ses_messages();
    let lists: Vec<serde_json::Value> = match &all["messages"] {
        serde_json::Value::Object(per_account) => per_account.values().cloned().collect(),
        other => vec![other.clone()],
    };
    lists
        .iter()
        .filter_map(|l| l.as_array())
        .flatten()
        .filter(|m| {
            m["To"]
                .as_array()
                .is_some_and(|to| to.iter().any(|t| t == address))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_mp3_is_transcribed_saved_and_mailed() {
    let zips = root().join("target/lambda");
    for function in FUNCTIONS {
        assert!(
            zips.join(function).join("bootstrap.zip").exists(),
            "build the zips first: make zips"
        );
    }
    let name = "t-e2e";
    let database = "t_e2e";
    let stt = format!(
        "  website:\n    source_dir: site\n  network:\n    cidr: 10.50.0.0/16\n  database:\n    database_name: {database}\n  functions:\n    zips_dir: {}\n    mail_from: transcripts@example.com\n",
        zips.display()
    );
    let aws = Aws::new().await;
    aws.purge_snapshots(&format!("{name}-db")).await;
    let stack = TestStack::build(name, Emulator::Ministack, &stt);
    mysql_drop_database(database);
    let audio_bucket = format!("{name}-audio-000000000000");

    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    for resource in [
        "rest_api/stt-upload",
        "bucket_notification/stt-audio",
        "event_rule/stt-transcribe-state",
        "lambda_permission/stt-api-file_upload",
        "lambda_permission/stt-s3-audio_transcribe",
        "lambda_permission/stt-s3-send_email",
        "lambda_permission/stt-events-save_text",
    ] {
        // Made by this `up` (kinds that live inside a bucket report "update").
        let result = line(&up, resource)["result"].as_str().unwrap_or_default();
        assert!(matches!(result, "create" | "update"), "{resource}: {up:#}");
    }
    let outputs = &up["outputs"];
    let api_url = outputs["stt_api_url"].as_str().expect("API URL in outputs");
    let site_url = outputs["stt_site_url"]
        .as_str()
        .expect("site URL in outputs");
    assert!(
        api_url.ends_with("/prod/_user_request_/file-upload"),
        "{api_url}"
    );
    for key in ["stt_audio_bucket", "stt_database_endpoint"] {
        assert!(outputs[key].is_string(), "{key} missing: {outputs:#}");
    }

    // The page's configuration, written by `up`, served through CloudFront.
    let (status, config) = http_get(&format!("{site_url}config.js"));
    assert_eq!(status, 200, "{config}");
    assert!(config.contains(api_url), "{config}");
    assert!(config.contains("\"ko-KR\""), "{config}");

    // The preflight a browser sends from the site is answered for the site's origin only.
    let origin = site_url.trim_end_matches('/');
    let (status, headers, _) = http_request(
        "OPTIONS",
        api_url,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
        ],
        &[],
    );
    assert_eq!(status, 200);
    let allowed: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "access-control-allow-origin")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(allowed, vec![origin], "{headers:?}");

    // The upload, as the page sends it.
    // Unique per run: ministack keeps the mails of earlier runs.
    let email = &format!("listener{}@example.com", std::process::id());
    let mp3 = spoken_mp3(&stack.dir);
    let (content_type, body) = multipart(
        &[("email", email), ("language", "en-US")],
        ("file", "hello world.mp3", &mp3),
    );
    let (status, _, answer) = http_request(
        "POST",
        api_url,
        &[("Content-Type", &content_type), ("Origin", origin)],
        &body,
    );
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
    assert_eq!(status, 201, "{answer}");
    let upload_id = answer["uploadId"].as_str().expect("uploadId").to_owned();
    let audio_key = answer["key"].as_str().expect("key").to_owned();
    assert!(
        audio_key.starts_with(&format!("input_audio/{upload_id}/")),
        "{audio_key}"
    );

    let rows = mysql_rows(
        database,
        &format!("SELECT email, language FROM fileTable WHERE upload_id = '{upload_id}'"),
    );
    assert_eq!(rows, vec![vec![email.to_owned(), "en-US".to_owned()]]);
    assert!(object_exists(&aws, &audio_bucket, &audio_key).await);

    // From here on nothing is driven by the test: S3 -> audio_transcribe -> Transcribe ->
    // EventBridge -> save_text -> S3 -> send_email -> SES.
    let text_key = format!("output_text/{upload_id}/hello world.txt");
    let deadline = Duration::from_secs(120);
    let mut found = false;
    let start = std::time::Instant::now();
    while start.elapsed() < deadline && !found {
        found = object_exists(&aws, &audio_bucket, &text_key).await;
        if !found {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(found, "no {text_key} after {deadline:?}");
    // Transcribe's own output under an ASCII key (its OutputKey pattern has no spaces).
    let transcript_key = format!("output_text/{upload_id}/transcript.json");
    assert!(object_exists(&aws, &audio_bucket, &transcript_key).await);
    let text = aws
        .s3
        .get_object()
        .bucket(&audio_bucket)
        .key(&text_key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(!text.trim().is_empty());
    // The mail of this upload: its body carries this upload's transcript.
    let transcript_mailed = || {
        mails_to(email).iter().any(|m| {
            m["Source"] == "transcripts@example.com"
                && m["BodyText"]
                    .as_str()
                    .is_some_and(|b| b.contains(text.trim()))
        })
    };
    assert!(
        eventually(Duration::from_secs(60), transcript_mailed),
        "no e-mail with the transcript to {email}: {:#}",
        ses_messages()
    );

    // The page in headless Chromium: a good upload, then a bad e-mail address.
    let mp3_path = stack.dir.join("hello.mp3");
    let mp3_path = mp3_path.to_str().unwrap();
    let ok = browser_script(
        "stt-upload.mjs",
        &[
            "--url",
            site_url,
            "--file",
            mp3_path,
            "--email",
            "browser@example.com",
            "--expect",
            "success",
        ],
    );
    assert_eq!(ok.code(), 0, "{}\n{}", ok.stdout(), ok.stderr());
    let bad = browser_script(
        "stt-upload.mjs",
        &[
            "--url",
            site_url,
            "--file",
            mp3_path,
            "--email",
            "not-an-email",
            "--expect",
            "error",
        ],
    );
    assert_eq!(bad.code(), 0, "{}\n{}", bad.stdout(), bad.stderr());
    assert!(root()
        .join("tests/artifacts/stt-upload-success.png")
        .exists());
    let browser_rows = mysql_rows(
        database,
        "SELECT COUNT(*) FROM fileTable WHERE email IN ('browser@example.com', 'not-an-email')",
    );
    assert_eq!(
        browser_rows,
        vec![vec!["1".to_owned()]],
        "one row for the good upload only"
    );

    // Converged: a second `up` writes nothing.
    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");

    // `down` keeps the user's data unless told otherwise.
    let refused = stack.run(&["down"]);
    assert_eq!(refused.code(), 1, "{}", refused.stdout());
    assert!(
        refused.stdout().contains(&audio_bucket),
        "{}",
        refused.stdout()
    );
    assert!(aws.bucket_exists(&audio_bucket).await);
    stack
        .run(&["down", "--delete-data", "--skip-final-snapshot"])
        .expect(0);
    // The first `down` did delete the database, keeping a final snapshot.
    aws.purge_snapshots(&format!("{name}-db")).await;
    assert!(!aws.bucket_exists(&audio_bucket).await);
    let apis = aws.apigateway.get_rest_apis().send().await.unwrap();
    assert!(
        !apis
            .items()
            .iter()
            .any(|a| a.name() == Some("t-e2e-file-upload-api")),
        "API left"
    );
}
