//! The functions and their roles (console steps S8 to S10, S17, S22, S23, S25, S27, S29) on
//! the local target: created from the zips `make zips` builds, left alone by a second `up`,
//! a changed memory size and a widened IAM policy found as drift and repaired, removed by
//! `down`. Needs the zips (`make zips`; `make test` builds them first).

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
        "  network:\n    cidr: 10.40.0.0/16\n  database:\n    database_name: t_functions\n  functions:\n    zips_dir: {}\n    mail_from: transcripts@example.com\n    file_upload:\n      memory_mb: 256\n      timeout_s: 30\n",
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

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
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
}
