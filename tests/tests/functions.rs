//! The functions, their roles and their triggers (console steps S8 to S14, S17, S22 to S29)
//! on the local target: created from the zips `make zips` builds, left alone by a second
//! `up`, a changed memory size, a widened IAM policy and a removed S3 notification found as
//! drift and repaired, removed by `down`. Needs the zips (`make zips`; `make test` builds
//! them first).

use system_tests::{line, root, Aws, Emulator, TestStack};

const FUNCTIONS: [&str; 5] = [
    "file_upload",
    "audio_transcribe",
    "save_text",
    "send_email",
    "db_migrate",
];

#[tokio::test(flavor = "multi_thread")]
async fn functions_and_roles_on_the_local_target() {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("db_migrate/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    let name = "t-functions";
    let stt = format!(
        "  network:\n    cidr: 10.40.0.0/16\n  database:\n    database_name: t_functions\n  functions:\n    zips_dir: {}\n    mail_from: functions@example.com\n    allowed_origin: https://upload.example\n    file_upload:\n      memory_mb: 256\n      timeout_s: 30\n",
        zips.display()
    );
    let stack = TestStack::build(name, Emulator::Ministack, &stt);
    let aws = Aws::new().await;

    let first = stack.run(&["--output", "json", "up"]).expect(0).json();
    for function in FUNCTIONS {
        assert_eq!(
            line(&first, &format!("role/{function}"))["result"],
            "create",
            "{first:#}"
        );
        assert_eq!(
            line(&first, &format!("function/{function}"))["result"],
            "create",
            "{first:#}"
        );
    }
    let upload = aws
        .lambda
        .get_function_configuration()
        .function_name(format!("{name}-file_upload"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.memory_size(), Some(256));
    assert_eq!(upload.timeout(), Some(30));
    assert_eq!(
        upload.runtime().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    let env = upload.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(
        env.get("AUDIO_BUCKET").map(String::as_str),
        Some(format!("{name}-audio-000000000000").as_str())
    );
    assert!(!env.keys().any(|k| k.contains("PASSWORD")), "{env:?}");

    // The schema: db_migrate invoked inside the stack, its answer reported.
    let schema = line(&first, "schema_migration/stt");
    assert_eq!(schema["result"], "update", "{first:#}");
    let note = schema["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains("\"database\":\"t_functions\"")
            || note.contains("\"database\": \"t_functions\""),
        "{note}"
    );
    assert!(note.contains("current_version"), "{note}");

    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");
    assert_eq!(line(&second, "schema_migration/stt")["result"], "noop");

    // API Gateway's own errors (here 403 for a path the API does not have; also 413 over
    // 10 MB, 429, 502, 504) carry the CORS headers, so the page can show them. Without a site
    // the allowed origin is the one `stack.yaml` names.
    let api = second["outputs"]["stt_api_url"].as_str().unwrap();
    let (status, headers, _) = system_tests::http_request(
        "POST",
        &api.replace("/file-upload", "/no-such-path"),
        &[("Origin", "https://upload.example")],
        b"",
    );
    assert_eq!(status, 403, "{headers:?}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "access-control-allow-origin" && v == "https://upload.example"),
        "{headers:?}"
    );

    // By hand: more memory for save_text, and file_upload's role widened to all of S3.
    aws.lambda
        .update_function_configuration()
        .function_name(format!("{name}-save_text"))
        .memory_size(1024)
        .send()
        .await
        .unwrap();
    let widened = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    aws.iam
        .put_role_policy()
        .role_name(format!("{name}-file_upload"))
        .policy_name("provision-least-privilege")
        .policy_document(widened.to_string())
        .send()
        .await
        .unwrap();

    // And the notification that mails transcripts removed from the audio bucket.
    let bucket = format!("{name}-audio-000000000000");
    let live = aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let kept: Vec<_> = live
        .lambda_function_configurations()
        .iter()
        .filter(|c| c.id() != Some("email-txt"))
        .cloned()
        .collect();
    assert_eq!(kept.len(), 8, "one rule per audio format: {live:?}");
    aws.s3
        .put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .set_lambda_function_configurations(Some(kept))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    let notification = &line(&drift, "bucket_notification/stt-audio")["changes"][0];
    assert_eq!(
        (
            notification["field"].as_str(),
            notification["actual"].as_str()
        ),
        (
            Some("LambdaFunctionConfigurations.email-txt"),
            Some("(missing)")
        ),
        "{drift:#}"
    );
    assert!(
        notification["expected"]
            .as_str()
            .unwrap()
            .ends_with("output_text/*.txt -> t-functions-send_email"),
        "{drift:#}"
    );
    let memory = &line(&drift, "function/save_text")["changes"][0];
    assert_eq!(
        (
            memory["field"].as_str(),
            memory["expected"].as_str(),
            memory["actual"].as_str()
        ),
        (Some("MemorySize"), Some("128"), Some("1024")),
        "{drift:#}"
    );
    let policy = &line(&drift, "role/file_upload")["changes"][0];
    assert_eq!(
        policy["field"], "Policy.provision-least-privilege",
        "{drift:#}"
    );
    assert!(
        policy["actual"].as_str().unwrap().contains("s3:*"),
        "{drift:#}"
    );
    assert_eq!(line(&drift, "role/save_text")["result"], "noop");

    stack.run(&["up"]).expect(0);
    stack.run(&["drift"]).expect(0);
    let memory = aws
        .lambda
        .get_function_configuration()
        .function_name(format!("{name}-save_text"))
        .send()
        .await
        .unwrap();
    assert_eq!(memory.memory_size(), Some(128));

    stack.run(&["down", "--skip-final-snapshot"]).expect(0);
    for function in FUNCTIONS {
        assert!(
            aws.lambda
                .get_function()
                .function_name(format!("{name}-{function}"))
                .send()
                .await
                .is_err(),
            "{function} left"
        );
        assert!(
            aws.iam
                .get_role()
                .role_name(format!("{name}-{function}"))
                .send()
                .await
                .is_err(),
            "role of {function} left"
        );
    }
    assert!(
        aws.events
            .describe_rule()
            .name(format!("{name}-transcribe-job-state"))
            .send()
            .await
            .is_err(),
        "Transcribe rule left"
    );
    let apis = aws.apigateway.get_rest_apis().send().await.unwrap();
    assert!(
        !apis
            .items()
            .iter()
            .any(|a| a.name() == Some(&format!("{name}-file-upload-api"))),
        "upload API left"
    );
}

/// The same functions stack on moto, as against AWS (no `--local`): API Gateway, the bucket's
/// notifications, the EventBridge rule and the SES identity included. moto runs no Lambda code
/// without Docker: its "simple" Lambda answers an invocation with its payload, so the schema
/// migration's invocation is the one thing skipped (no migration runs; docs/realism.md lists
/// what each emulator leaves out).
#[tokio::test(flavor = "multi_thread")]
async fn functions_stack_on_moto() {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("db_migrate/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    Emulator::Moto.ensure_without_lambda_code();
    let name = "t-functions-moto";
    let stt = format!(
        "  network:\n    cidr: 10.41.0.0/16\n  database:\n    database_name: t_functions_moto\n  functions:\n    zips_dir: {}\n    mail_from: functions-moto@example.com\n    allowed_origin: https://upload.example\n",
        zips.display()
    );
    let aws = Aws::on(Emulator::Moto).await;
    aws.purge_snapshots(&format!("{name}-db")).await;
    let stack = TestStack::build(name, Emulator::Moto, &stt);

    let first = stack.run(&["--output", "json", "up"]).expect(0).json();
    for resource in [
        "rest_api/stt-upload",
        "bucket_notification/stt-audio",
        "bucket_policy/stt-audio",
        "event_rule/stt-transcribe-state",
        "email_identity/stt-mail-from",
        "lambda_permission/stt-api-file_upload",
        "function/file_upload",
    ] {
        assert_ne!(line(&first, resource)["result"], "failed", "{first:#}");
    }
    // As against AWS, the audio bucket refuses every request made without TLS.
    let audio_bucket = format!("{name}-audio-{}", Emulator::Moto.account());
    let policy = aws
        .s3
        .get_bucket_policy()
        .bucket(&audio_bucket)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"], "false",
        "{policy:#}"
    );
    assert_eq!(policy["Statement"][0]["Effect"], "Deny", "{policy:#}");
    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");
    stack.run(&["drift"]).expect(0);
    // On moto as on AWS, the database is protected from deletion by default.
    stack
        .run(&[
            "down",
            "--delete-data",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ])
        .expect(0);
    let left = aws.owned_by(name).await;
    assert!(left.is_empty(), "down left: {left:?}");
    aws.purge_snapshots(&format!("{name}-db")).await;
}
