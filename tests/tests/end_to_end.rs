//! The whole speech-to-text service on the local target (ministack + the machine's MariaDB),
//! as a person uses it: an mp3 posted to the deployed API leads, with no step driven by the
//! test, to the row in MySQL, the audio under `input_audio/`, a transcript, the `.txt` under
//! `output_text/` and, the address being new, a confirmation mail only (double opt-in); its
//! link, followed in headless Chromium, releases the transcript mail, and later uploads from
//! the address are mailed directly; an expired, reused or unknown link changes nothing. Then
//! the upload through the page in headless Chromium, with a good and a bad e-mail address. Needs the zips (`make zips`), the browser
//! driver (`make browser-deps`), espeak-ng and ffmpeg (`make test` installs and builds all).
//!
//! Runs through the realism proxy with IAM simulated on every call the functions make: Korean
//! and upper-case file names reach the mailbox in Korean, a Transcribe refusal forced by the
//! proxy ends FAILED with a mail saying so, no call is denied, and every statement of every
//! role is one the run needed (the mutation check, `system_tests::least_privilege`).

use std::time::Duration;

use system_tests::{
    browser_script, create_upload, direct_upload, eventually, http_get, http_request,
    least_privilege, line, multipart, mysql_drop_database, mysql_rows, root, upload_status, Aws,
    Emulator, Realism, TestStack,
};

const FUNCTIONS: [&str; 5] = [
    "file_upload",
    "audio_transcribe",
    "save_text",
    "send_email",
    "db_migrate",
];

/// The test stack's largest upload: room for the 30 MB recording, a clear refusal above.
const MAX_UPLOAD: u64 = 40_000_000;

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

/// Uploads `file` as the page does (the API, then straight to S3); (upload id, audio key).
fn upload(
    api_url: &str,
    origin: &str,
    email: &str,
    language: &str,
    file: &str,
    audio: &[u8],
) -> (String, String) {
    let answer = direct_upload(
        api_url,
        origin,
        serde_json::json!({"email": email, "language": language, "filename": file,
            "size": audio.len(), "contentType": "audio/mpeg"}),
        audio,
    );
    (
        answer["uploadId"].as_str().expect("uploadId").to_owned(),
        answer["key"].as_str().expect("key").to_owned(),
    )
}

/// No serious or critical axe-core violation in a run of stt-upload.mjs with `--axe`.
fn assert_axe_clean(run: &serde_json::Value) {
    let axe = &run["axe"];
    assert!(
        axe.is_object() && !axe.as_object().unwrap().is_empty(),
        "no axe result: {run:#}"
    );
    for (when, counts) in axe.as_object().unwrap() {
        for impact in ["serious", "critical"] {
            assert_eq!(
                counts[impact].as_u64().unwrap_or(0),
                0,
                "axe {when}: {run:#}"
            );
        }
    }
}

/// The subjects of the mails sent to `address`.
fn subjects_to(address: &str) -> Vec<String> {
    mails_to(address)
        .iter()
        .filter_map(|m| m["Subject"].as_str().map(str::to_owned))
        .collect()
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

/// S3's suffix rules are literal: the stack's rules and the suffixes the handlers give the
/// keys they store must be the same list, or an upload is stored and never transcribed.
#[test]
fn the_s3_rules_trigger_on_every_suffix_the_handlers_store() {
    let rules: Vec<String> = provisioner::systems::stt_functions::AUDIO_SUFFIXES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let stored: Vec<String> = stt_common::keys::AUDIO_EXTENSIONS
        .iter()
        .map(|e| format!(".{e}"))
        .collect();
    assert_eq!(rules, stored);
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
        "  website:\n    source_dir: site\n  network:\n    cidr: 10.50.0.0/16\n  database:\n    database_name: {database}\n  functions:\n    zips_dir: {}\n    mail_from: transcripts@example.com\n    uploads: {{max_bytes: {MAX_UPLOAD}, expiry_s: 300}}\n",
        zips.display()
    );
    let aws = Aws::new().await;
    let realism = Realism::on(Emulator::Ministack);
    aws.purge_snapshots(&format!("{name}-db")).await;
    let stack = TestStack::build(name, Emulator::Ministack, &stt);
    mysql_drop_database(database);
    let audio_bucket = format!("{name}-audio-000000000000");

    let since = realism.last_seq();
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

    // The upload, as the page sends it: the API answers a presigned form, the file goes
    // straight to S3.
    // Unique per run: ministack keeps the mails of earlier runs.
    let email = &format!("listener{}@example.com", std::process::id());
    let mp3 = spoken_mp3(&stack.dir);
    let (upload_id, audio_key) = upload(api_url, origin, email, "en-US", "hello world.mp3", &mp3);
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
    // A new address: a confirmation mail, nothing of the upload, and the result waits.
    let confirmation = || {
        mails_to(email)
            .into_iter()
            .find(|m| m["Subject"] == "Confirm your address for transcripts")
    };
    assert!(
        eventually(Duration::from_secs(60), || confirmation().is_some()),
        "no confirmation mail to {email}: {:#}",
        ses_messages()
    );
    let confirmation = confirmation().unwrap();
    assert_eq!(mails_to(email).len(), 1, "only the confirmation");
    let confirmation_text = confirmation["BodyText"].as_str().unwrap_or_default();
    assert!(
        !confirmation_text.contains("hello world") && !confirmation_text.contains(text.trim()),
        "{confirmation_text}"
    );
    let link = confirmation_text
        .split_whitespace()
        .find(|w| w.contains("/confirm.html#token="))
        .expect("a confirmation link")
        .to_owned();
    assert!(link.starts_with(site_url), "{link}");
    let unmailed = mysql_rows(
        database,
        &format!(
            "SELECT status, emailed_at IS NULL FROM fileTable WHERE upload_id = '{upload_id}'"
        ),
    );
    assert_eq!(
        unmailed,
        vec![vec!["TRANSCRIBED".to_owned(), "1".to_owned()]]
    );

    // The link, in headless Chromium: the page asks, the button confirms, the transcript goes.
    let followed = browser_script(
        "stt-confirm.mjs",
        &["--url", &link, "--expect", "confirmed"],
    );
    assert_eq!(
        followed.code(),
        0,
        "{}\n{}",
        followed.stdout(),
        followed.stderr()
    );
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
    // The link works once (the page in Korean for a Korean browser).
    let reused = browser_script(
        "stt-confirm.mjs",
        &["--url", &link, "--expect", "used", "--locale", "ko-KR"],
    );
    assert_eq!(reused.code(), 0, "{}\n{}", reused.stdout(), reused.stderr());
    assert_eq!(reused.json()["lang"], "ko", "{}", reused.stdout());
    // An expired link and an unknown one are refused and confirm nothing.
    let confirm_url = api_url.replace("/file-upload", "/confirm");
    assert!(config.contains(&confirm_url), "{config}");
    let late = format!("late{}@example.com", std::process::id());
    let late_token = stt_common::recipients::new_token();
    mysql_rows(
        database,
        &format!(
            "INSERT INTO recipients (email, token_hash, token_expires_at) VALUES ('{late}', '{}', CURRENT_TIMESTAMP - INTERVAL 1 SECOND)",
            stt_common::recipients::token_digest(&late_token)
        ),
    );
    for (token, status, code) in [
        (late_token.clone(), 410, "link_expired"),
        (stt_common::recipients::new_token(), 404, "unknown_link"),
    ] {
        let (got, _, answer) = http_request(
            "POST",
            &confirm_url,
            &[("Content-Type", "application/json"), ("Origin", origin)],
            format!("{{\"token\": \"{token}\"}}").as_bytes(),
        );
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(
        mysql_rows(
            database,
            &format!("SELECT confirmed_at IS NULL FROM recipients WHERE email = '{late}'")
        ),
        vec![vec!["1".to_owned()]]
    );

    // Korean names, and a suffix in capitals (S3's suffix rules are literal: the stored key
    // carries the lowercase one), uploaded in Korean: each mail in Korean.
    let korean_email = &format!("korean{}@example.com", std::process::id());
    // An address that confirmed before (the opt-in itself is checked above).
    mysql_rows(
        database,
        &format!("INSERT INTO recipients (email, confirmed_at) VALUES ('{korean_email}', CURRENT_TIMESTAMP)"),
    );
    let mut korean = Vec::new();
    for (file, stored) in [
        ("회의 녹음 1.mp3", "회의 녹음 1.mp3"),
        ("녹음.MP3", "녹음.mp3"),
    ] {
        let (id, key) = upload(api_url, origin, korean_email, "ko-KR", file, &mp3);
        assert_eq!(key, format!("input_audio/{id}/{stored}"));
        korean.push((id, format!("음성 인식 결과: {file}")));
    }
    for (id, subject) in &korean {
        assert!(
            eventually(Duration::from_secs(120), || subjects_to(korean_email)
                .contains(subject)),
            "no mail \"{subject}\" for upload {id}: {:?}",
            subjects_to(korean_email)
        );
        // The mail is recorded just after SES took it.
        let done = || {
            mysql_rows(
                database,
                &format!(
                    "SELECT status, emailed_at IS NOT NULL FROM fileTable WHERE upload_id = '{id}'"
                ),
            ) == vec![vec!["TRANSCRIBED".to_owned(), "1".to_owned()]]
        };
        assert!(
            eventually(Duration::from_secs(30), done),
            "upload {id} not recorded as mailed"
        );
    }

    // Transcribe refuses the job (a permanent error, forced by the realism proxy): the upload
    // ends FAILED and the uploader, confirmed by now, is told directly.
    let refused_file = "refused-by-transcribe.mp3";
    realism.inject(serde_json::json!({
        "service": "transcribe",
        "operation": "StartTranscriptionJob",
        "match": "refused-by-transcribe",
        "code": "BadRequestException",
        "message": "The media format that you specified doesn't match the detected media format. Check the media format and try your request again.",
        "status": 400,
    }));
    let (refused_id, _) = upload(api_url, origin, email, "en-US", refused_file, &mp3);
    let failure_subject = format!("Transcription failed: {refused_file}");
    assert!(
        eventually(Duration::from_secs(120), || subjects_to(email)
            .contains(&failure_subject)),
        "no mail \"{failure_subject}\": {:?}",
        subjects_to(email)
    );
    let rows = mysql_rows(
        database,
        &format!("SELECT status FROM fileTable WHERE upload_id = '{refused_id}'"),
    );
    assert_eq!(rows, vec![vec!["FAILED".to_owned()]]);
    // Only this upload's: the handler tests running beside this one arm faults of their own.
    let refusals: Vec<_> = realism
        .calls(
            since,
            "service=transcribe&operation=StartTranscriptionJob&verdict=injected",
        )
        .into_iter()
        .filter(|call| call.to_string().contains(refused_file))
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");

    // Every call the functions made was allowed by their roles as deployed, Transcribe's
    // reading of the media with audio_transcribe's rights included.
    let denied = realism.calls(since, "verdict=denied");
    assert!(denied.is_empty(), "denied: {denied:#?}");
    let starts: Vec<_> = realism
        .calls(
            since,
            "service=transcribe&operation=StartTranscriptionJob&verdict=forwarded",
        )
        .into_iter()
        .filter(|call| call.to_string().contains(&audio_bucket))
        .collect();
    assert!(starts.len() >= 3, "{starts:#?}");
    for call in &starts {
        let authz = call["iam"]["authorizations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let of = |action: &str| {
            authz
                .iter()
                .filter(|a| a["action"] == action)
                .map(|a| (a["decision"].clone(), a["via"].clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of("transcribe:StartTranscriptionJob"),
            vec![(serde_json::json!("Allowed"), serde_json::Value::Null)],
            "{call:#}"
        );
        assert_eq!(
            of("s3:GetObject"),
            vec![(
                serde_json::json!("Allowed"),
                serde_json::json!("transcribe.amazonaws.com")
            )],
            "{call:#}"
        );
    }

    // Straight to S3, S3 itself holds the uploader to what was declared: a form whose content
    // type is not the declared one is refused (the POST policy); the page then gives the
    // upload up, which ends FAILED with no job.
    let declared = serde_json::json!({"email": email, "language": "en-US",
        "filename": "declared.mp3", "size": mp3.len(), "contentType": "audio/mpeg"});
    let (status, created) = create_upload(api_url, origin, &declared);
    assert_eq!(status, 201, "{created}");
    let fields: Vec<(&str, &str)> = created["upload"]["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| match k.as_str() {
            "Content-Type" => (k.as_str(), "video/mp4"),
            _ => (k.as_str(), v.as_str().unwrap()),
        })
        .collect();
    let (form_type, form) = multipart(&fields, ("file", "declared.mp3", &mp3));
    let (status, _, reply) = http_request(
        "POST",
        created["upload"]["url"].as_str().unwrap(),
        &[("Content-Type", &form_type), ("Origin", origin)],
        &form,
    );
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(status, 403, "{reply}");
    assert!(reply.contains("AccessDenied"), "{reply}");
    assert!(!object_exists(&aws, &audio_bucket, created["key"].as_str().unwrap()).await);
    let (status, state) = upload_status(api_url, origin, &created, Some("abort"));
    assert_eq!(
        (status, state["state"].as_str()),
        (200, Some("failed")),
        "{state}"
    );
    // A multipart upload given up is aborted in S3 too.
    let (_, large) = create_upload(
        api_url,
        origin,
        &serde_json::json!({"email": email, "language": "en-US", "filename": "given-up.mp3",
            "size": 20_000_000, "contentType": "audio/mpeg"}),
    );
    assert_eq!(large["upload"]["method"], "MULTIPART", "{large}");
    let (status, state) = upload_status(api_url, origin, &large, Some("abort"));
    assert_eq!(
        (status, state["state"].as_str()),
        (200, Some("failed")),
        "{state}"
    );
    let open = aws
        .s3
        .list_multipart_uploads()
        .bucket(&audio_bucket)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "{open:?}");
    // A file of the declared size and type that is not audio at all: S3 takes it, and
    // audio_transcribe, which reads its first bytes, marks it FAILED and the uploader is told.
    let fake = vec![b'%'; 4096];
    let (fake_id, _) = upload(api_url, origin, email, "en-US", "not-audio.mp3", &fake);
    let fake_subject = "Transcription failed: not-audio.mp3".to_owned();
    assert!(
        eventually(Duration::from_secs(120), || subjects_to(email)
            .contains(&fake_subject)),
        "no mail \"{fake_subject}\": {:?}",
        subjects_to(email)
    );
    let rows = mysql_rows(
        database,
        &format!("SELECT status, job_name IS NULL FROM fileTable WHERE upload_id = '{fake_id}'"),
    );
    assert_eq!(rows, vec![vec!["FAILED".to_owned(), "1".to_owned()]]);

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
            "--ui-language",
            "en",
            "--axe",
            "--screenshot",
            "stt-upload-en.png",
        ],
    );
    assert_eq!(ok.code(), 0, "{}\n{}", ok.stdout(), ok.stderr());
    // The page was served with the stack's policy and posted to the API under it.
    let served = ok.json();
    let csp = served["contentSecurityPolicy"].as_str().unwrap_or_default();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("connect-src 'self' http"),
        "{served:#}"
    );
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
    let english = ok.json();
    assert_eq!(english["uploadMethod"], "POST", "{english:#}");
    assert_axe_clean(&english);

    // A meeting recording: 30 MB through the page in Korean. It goes in parts, one of which
    // the test breaks once (the page sends it again); the bar moves; the page follows the
    // upload to "mailed" and the mail arrives.
    let meeting_email = format!("meeting{}@example.com", std::process::id());
    mysql_rows(
        database,
        &format!("INSERT INTO recipients (email, confirmed_at) VALUES ('{meeting_email}', CURRENT_TIMESTAMP)"),
    );
    let meeting = stack.dir.join("회의 녹음.mp3");
    let made = std::process::Command::new(root().join("tests/browser/make-audio.sh"))
        .arg(&meeting)
        .arg("30000000")
        .arg("the meeting starts with the budget and ends with the plan")
        .status()
        .expect("run make-audio.sh (needs espeak-ng and ffmpeg: make test-tools)");
    assert!(made.success());
    let meeting_path = meeting.to_str().unwrap();
    let korean_page = browser_script(
        "stt-upload.mjs",
        &[
            "--url",
            site_url,
            "--file",
            meeting_path,
            "--email",
            &meeting_email,
            "--language",
            "ko-KR",
            "--ui-language",
            "ko",
            "--expect",
            "success",
            "--expect-state",
            "mailed",
            "--break-part",
            "2",
            "--upload-rate",
            "20",
            "--axe",
            "--screenshot",
            "stt-upload-ko.png",
            "--timeout",
            "300",
        ],
    );
    assert_eq!(
        korean_page.code(),
        0,
        "{}\n{}",
        korean_page.stdout(),
        korean_page.stderr()
    );
    let korean_run = korean_page.json();
    assert_eq!(korean_run["uploadMethod"], "MULTIPART", "{korean_run:#}");
    assert_eq!(
        korean_run["brokenParts"][0]["retried"], true,
        "{korean_run:#}"
    );
    assert!(
        korean_run["states"]
            .as_array()
            .is_some_and(|s| s.last() == Some(&"mailed".into())),
        "{korean_run:#}"
    );
    assert_axe_clean(&korean_run);
    assert!(
        subjects_to(&meeting_email)
            .iter()
            .any(|s| s.contains("회의 녹음.mp3")),
        "{:?}",
        subjects_to(&meeting_email)
    );
    for shot in ["stt-upload-en.png", "stt-upload-ko.png"] {
        assert!(root().join("tests/artifacts").join(shot).exists(), "{shot}");
    }
    // Over the stack's maximum: refused by the page itself, before any request.
    let too_large = stack.dir.join("too-large.mp3");
    std::fs::File::create(&too_large)
        .unwrap()
        .set_len(MAX_UPLOAD + 1)
        .unwrap();
    let refused_page = browser_script(
        "stt-upload.mjs",
        &[
            "--url",
            site_url,
            "--file",
            too_large.to_str().unwrap(),
            "--email",
            "browser@example.com",
            "--expect",
            "too-large",
        ],
    );
    assert_eq!(
        refused_page.code(),
        0,
        "{}\n{}",
        refused_page.stdout(),
        refused_page.stderr()
    );
    // A form whose content type is not the declared one (changed on its way by the test):
    // S3 refuses it, the page gives the upload up, which ends FAILED.
    let tampered = browser_script(
        "stt-upload.mjs",
        &[
            "--url",
            site_url,
            "--file",
            mp3_path,
            "--email",
            "browser@example.com",
            "--expect",
            "error",
            "--expect-state",
            "failed",
            "--expect-text",
            "Policy",
            "--tamper-type",
            "video/mp4",
        ],
    );
    assert_eq!(
        tampered.code(),
        0,
        "{}\n{}",
        tampered.stdout(),
        tampered.stderr()
    );
    assert_eq!(tampered.json()["tampered"]["from"], "audio/mpeg");
    let browser_rows = mysql_rows(
        database,
        "SELECT COUNT(*) FROM fileTable WHERE email IN ('browser@example.com', 'not-an-email')",
    );
    assert_eq!(
        browser_rows,
        vec![vec!["2".to_owned()]],
        "rows for the good upload and the refused form only, none for the bad address"
    );

    // Converged: a second `up` writes nothing.
    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");

    // The mutation check: every statement of every role is needed by what this run did.
    let roles: Vec<String> = FUNCTIONS.iter().map(|f| format!("{name}-{f}")).collect();
    let report = least_privilege::check_roles(&aws, &realism, &roles, since).await;
    println!("mutation check, speech-to-text roles: {}", report.summary());
    for outcome in &report.outcomes {
        println!("  {outcome}");
    }
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert!(report.statements_tried >= roles.len());
    // The check sees a statement the run never needed.
    let role = format!("{name}-save_text");
    let policy = aws
        .iam
        .get_role_policy()
        .role_name(&role)
        .policy_name(provisioner::resources::role::POLICY_NAME)
        .send()
        .await
        .unwrap();
    let mut doc = provisioner::resources::role::decode_policy_document(policy.policy_document());
    doc["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Sid": "NeverNeeded", "Effect": "Allow", "Action": "s3:DeleteObject",
            "Resource": format!("arn:aws:s3:::{audio_bucket}/*"),
        }));
    aws.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name(provisioner::resources::role::POLICY_NAME)
        .policy_document(doc.to_string())
        .send()
        .await
        .unwrap();
    let widened =
        least_privilege::check_roles(&aws, &realism, std::slice::from_ref(&role), since).await;
    assert_eq!(
        widened.problems,
        vec![format!(
            "{role}/{}: statement NeverNeeded is never needed by the run",
            provisioner::resources::role::POLICY_NAME
        )]
    );

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
