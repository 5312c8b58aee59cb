//! The functions' log groups on the local target: `up` makes `/aws/lambda/{function}` for
//! every function of both systems, with the retention `stack.yaml` sets and the stack's tags,
//! before the function (db_migrate's run during `up` writes into it); no function role may
//! create log groups; a retention changed by hand and a removed ownership tag are drift that
//! `up` repairs; `down` deletes the groups. Needs the zips (`make zips`).

use system_tests::{line, root, Aws, Emulator, TestStack};

const STT_FUNCTIONS: [&str; 5] = [
    "file_upload",
    "audio_transcribe",
    "save_text",
    "send_email",
    "db_migrate",
];

async fn retention(aws: &Aws, group: &str) -> Option<i32> {
    let out = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .unwrap();
    out.log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .unwrap_or_else(|| panic!("{group} does not exist"))
        .retention_in_days()
}

fn group_arn(group: &str) -> String {
    format!("arn:aws:logs:us-east-1:000000000000:log-group:{group}")
}

#[tokio::test(flavor = "multi_thread")]
async fn function_log_groups_with_retention_made_by_the_stack() {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("db_migrate/bootstrap.zip").exists()
            && zips.join("vod_convert/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    let name = "lg-functions";
    let sections = format!(
        "stt:\n  network:\n    cidr: 10.43.0.0/16\n  database:\n    database_name: lg_functions\n  functions:\n    zips_dir: {zips}\n    mail_from: log-groups@example.com\n    allowed_origin: https://upload.example\n    log_retention_days: 14\nvod:\n  player:\n    source_dir: {player}\n  function:\n    zips_dir: {zips}\n",
        zips = zips.display(),
        player = root().join("site/vod").display(),
    );
    let stack = TestStack::with_sections(name, Emulator::Ministack, &sections);
    let aws = Aws::new().await;
    // (resource key name, function, retention stack.yaml sets)
    let functions: Vec<(&str, String, i32)> = STT_FUNCTIONS
        .iter()
        .map(|f| (*f, format!("{name}-{f}"), 14))
        .chain(std::iter::once((
            "vod_convert",
            format!("{name}-vod_convert"),
            30,
        )))
        .collect();

    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    for (key, function, days) in &functions {
        assert_eq!(
            line(&up, &format!("log_group/{key}"))["result"],
            "create",
            "{up:#}"
        );
        let group = format!("/aws/lambda/{function}");
        assert_eq!(retention(&aws, &group).await, Some(*days), "{group}");
        let tags = aws
            .logs
            .list_tags_for_resource()
            .resource_arn(group_arn(&group))
            .send()
            .await
            .unwrap();
        let tags = tags.tags().cloned().unwrap_or_default();
        assert_eq!(
            tags.get("provision:stack").map(String::as_str),
            Some(name),
            "{group}: {tags:?}"
        );
        assert_eq!(
            tags.get("test").map(String::as_str),
            Some("yes"),
            "{tags:?}"
        );
        // The role writes to its group and creates none.
        let policy = aws
            .iam
            .get_role_policy()
            .role_name(function)
            .policy_name("provision-least-privilege")
            .send()
            .await
            .unwrap();
        let document =
            provisioner::resources::role::decode_policy_document(policy.policy_document());
        assert!(
            !document.to_string().contains("logs:CreateLogGroup"),
            "{function}: {document}"
        );
        assert!(
            document
                .to_string()
                .contains(&format!("{}:*", group_arn(&group))),
            "{function}: {document}"
        );
    }
    // db_migrate ran during `up` (the schema): its logs went into the group the stack made,
    // which kept its retention.
    let streams = aws
        .logs
        .describe_log_streams()
        .log_group_name(format!("/aws/lambda/{name}-db_migrate"))
        .send()
        .await
        .unwrap();
    assert!(!streams.log_streams().is_empty(), "{streams:?}");
    assert_eq!(
        retention(&aws, &format!("/aws/lambda/{name}-db_migrate")).await,
        Some(14)
    );

    let again = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(again["api_calls"]["write"], 0, "{again:#}");

    // By hand: save_text's logs kept a single day, and vod_convert's group stripped of the
    // ownership tag (as a group Lambda made on its own would be).
    let save_text = format!("/aws/lambda/{name}-save_text");
    aws.logs
        .put_retention_policy()
        .log_group_name(&save_text)
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    let convert = format!("/aws/lambda/{name}-vod_convert");
    aws.logs
        .untag_resource()
        .resource_arn(group_arn(&convert))
        .tag_keys("provision:stack")
        .send()
        .await
        .unwrap();

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    let changed = line(&drift, "log_group/save_text");
    assert_eq!(changed["physical_id"], save_text.as_str(), "{drift:#}");
    let change = &changed["changes"][0];
    assert_eq!(
        (
            change["field"].as_str(),
            change["expected"].as_str(),
            change["actual"].as_str()
        ),
        (Some("RetentionInDays"), Some("14"), Some("1")),
        "{drift:#}"
    );
    let untagged = &line(&drift, "log_group/vod_convert")["changes"][0];
    assert_eq!(
        (untagged["field"].as_str(), untagged["actual"].as_str()),
        (Some("Tags.provision:stack"), Some("(not set)")),
        "{drift:#}"
    );
    assert_eq!(line(&drift, "log_group/file_upload")["result"], "noop");

    stack.run(&["up"]).expect(0);
    stack.run(&["drift"]).expect(0);
    assert_eq!(retention(&aws, &save_text).await, Some(14));

    stack.run(&["down", "--skip-final-snapshot"]).expect(0);
    let left = aws.log_groups(&format!("/aws/lambda/{name}-")).await;
    assert!(left.is_empty(), "down left {left:?}");
}

/// The same groups on moto, as against AWS (no `--local`): moto answers CloudWatch Logs as AWS
/// documents it (`logGroupArn`, tags by the ARN without `:*`), so the calls `provision` makes
/// on AWS are checked by a second implementation; a group deleted by hand is missing until `up`
/// makes it again, and a run killed between `CreateLogGroup` and `PutRetentionPolicy` is
/// finished by the next. moto's Lambda runs no code here.
#[tokio::test(flavor = "multi_thread")]
async fn function_log_groups_on_moto() {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("db_migrate/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    Emulator::Moto.ensure_without_lambda_code();
    let name = "lg-functions-moto";
    let stt = format!(
        "  network:\n    cidr: 10.44.0.0/16\n  database:\n    database_name: lg_moto\n  functions:\n    zips_dir: {}\n    mail_from: log-groups-moto@example.com\n    allowed_origin: https://upload.example\n    log_retention_days: 60\n",
        zips.display()
    );
    let aws = Aws::on(Emulator::Moto).await;
    aws.purge_snapshots(&format!("{name}-db")).await;
    let stack = TestStack::build(name, Emulator::Moto, &stt);

    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    for function in STT_FUNCTIONS {
        assert_eq!(
            line(&up, &format!("log_group/{function}"))["result"],
            "create",
            "{up:#}"
        );
        let group = format!("/aws/lambda/{name}-{function}");
        assert_eq!(retention(&aws, &group).await, Some(60), "{group}");
        let tags = aws
            .logs
            .list_tags_for_resource()
            .resource_arn(format!(
                "arn:aws:logs:us-east-1:{}:log-group:{group}",
                Emulator::Moto.account()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags.tags()
                .and_then(|t| t.get("provision:stack"))
                .map(String::as_str),
            Some(name),
            "{tags:?}"
        );
    }
    let again = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(again["api_calls"]["write"], 0, "{again:#}");

    // A group deleted by hand is missing (no role may make it again), and a run killed right
    // after CreateLogGroup leaves it without retention: the next run finishes it.
    let save_text = format!("/aws/lambda/{name}-save_text");
    aws.logs
        .delete_log_group()
        .log_group_name(&save_text)
        .send()
        .await
        .unwrap();
    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    assert_eq!(line(&drift, "log_group/save_text")["result"], "create");
    let killed = stack.run_env(
        &["up"],
        &[("PROVISION_FAULT_ABORT_AFTER_OPERATION", "CreateLogGroup")],
    );
    assert_ne!(killed.code(), 0, "{}", killed.stderr());
    assert_eq!(retention(&aws, &save_text).await, None);
    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    let change = &line(&drift, "log_group/save_text")["changes"][0];
    assert_eq!(
        (change["field"].as_str(), change["actual"].as_str()),
        (Some("RetentionInDays"), Some("(not set)")),
        "{drift:#}"
    );
    stack.run(&["up"]).expect(0);
    assert_eq!(retention(&aws, &save_text).await, Some(60));
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
