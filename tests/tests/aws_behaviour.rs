//! Each AWS behaviour the realism layer replays (docs/realism.md), met by `provision` alone:
//! one behaviour switched on at a time, without faults, so that a failure names the behaviour
//! `provision` does not survive. The tests of this file take turns (they change the layer's
//! settings, and put them back after).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use system_tests::{mysql_drop_database, root, Aws, Emulator, Realism, TestStack};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn zips() -> PathBuf {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("db_migrate/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    zips
}

/// `network`, `database` and `functions` sections of a stack of its own.
fn functions_yaml(cidr: &str, database: &str, zips: &Path) -> String {
    format!(
        "  network:\n    cidr: {cidr}\n  database:\n    database_name: {database}\n  functions:\n    zips_dir: {}\n    mail_from: aws-behaviour@example.com\n    allowed_origin: https://upload.example\n",
        zips.display()
    )
}

/// The same zip with an archive comment: other bytes, other `CodeSha256`, same contents.
fn with_comment(zip: &[u8], comment: &str) -> Vec<u8> {
    let end = zip
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .expect("a zip ends with its end-of-central-directory record");
    let mut out = zip[..end + 20].to_vec();
    out.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    out.extend_from_slice(comment.as_bytes());
    out
}

/// Verdicts the layer gave since `since` for calls of `service`.
fn verdicts(realism: &Realism, since: u64, service: &str) -> Vec<String> {
    realism
        .calls(since, &format!("service={service}"))
        .iter()
        .filter_map(|c| c["verdict"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_answer_no_such_bucket_and_operation_aborted_right_after_create() {
    let _turn = TURN.lock().await;
    let realism = Realism::on(Emulator::Ministack);
    let _settings = realism.set(json!({
        "mode": "test", "fault_rate": 0,
        "behaviours": ["read_after_create", "s3_conflicting_writes"],
        "scales": {"s3_read_after_create": 1}
    }));
    let zips = zips();
    let sections = format!(
        "stt:\n  website:\n    source_dir: site\nvod:\n  player:\n    source_dir: {}\n  function:\n    zips_dir: {}\n",
        root().join("site/vod").display(),
        zips.display()
    );
    let stack = TestStack::with_sections("t-aws-s3", Emulator::Ministack, &sections);
    let since = realism.last_seq();
    stack.run(&["up"]).expect(0);
    let seen = verdicts(&realism, since, "s3");
    assert!(
        seen.iter().any(|v| v == "timing:read_after_create"),
        "the layer refused a write to a new bucket at least once: {seen:?}"
    );
    // Overlapping writes to one bucket's configuration are what S3 refuses; provision makes
    // them one at a time.
    assert!(
        !seen.iter().any(|v| v == "timing:s3_conflicting_writes"),
        "{seen:?}"
    );
    stack
        .run(&["down", "--delete-data", "--skip-final-snapshot"])
        .expect(0);
    let seen = verdicts(&realism, since, "s3");
    assert!(
        !seen.iter().any(|v| v == "timing:s3_conflicting_writes"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_does_not_know_new_ids_for_seconds() {
    let _turn = TURN.lock().await;
    let realism = Realism::on(Emulator::Ministack);
    let _settings = realism.set(json!({
        "mode": "test", "fault_rate": 0,
        "behaviours": ["read_after_create", "ec2_client_tokens"],
        "scales": {"ec2_read_after_create": 1}
    }));
    let stack = TestStack::build(
        "t-aws-ec2",
        Emulator::Ministack,
        "  network:\n    cidr: 10.71.0.0/16\n",
    );
    // A CreateVpcEndpoint whose answer is lost: the SDK sends it again, with the same
    // ClientToken, and EC2 answers the endpoint the first call made.
    realism.inject(json!({
        "service": "ec2", "operation": "CreateVpcEndpoint",
        "lose_answer": true, "count": 1
    }));
    let since = realism.last_seq();
    stack.run(&["up"]).expect(0);
    let seen = verdicts(&realism, since, "ec2");
    assert!(
        seen.iter().any(|v| v == "timing:read_after_create"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|v| v == "injected:lost-answer"), "{seen:?}");
    assert!(
        seen.iter().any(|v| v == "answered:client-token"),
        "the repeated create carried the first one's token: {seen:?}"
    );
    let endpoints = Aws::new()
        .await
        .ec2
        .describe_vpc_endpoints()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:provision:stack")
                .values("t-aws-ec2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state() != Some(&aws_sdk_ec2::types::State::Deleted))
        .filter_map(|e| {
            e.tags()
                .iter()
                .find(|t| t.key() == Some("Name"))
                .and_then(|t| t.value())
                .map(str::to_owned)
        })
        .collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(all, names.len(), "one endpoint per name: {names:?}");
    stack.run(&["--output", "json", "up"]).expect(0);
    stack.run(&["down"]).expect(0);
}

/// Roles IAM has not propagated, functions still `Pending`, and code updates still
/// `InProgress` (during which an invocation runs the previous code): `up` waits for each, and
/// the schema migration runs the code `up` just deployed.
#[tokio::test(flavor = "multi_thread")]
async fn functions_wait_for_iam_for_active_and_for_their_updates() {
    let _turn = TURN.lock().await;
    let realism = Realism::on(Emulator::Ministack);
    let _settings = realism.set(json!({
        "mode": "test", "fault_rate": 0,
        "behaviours": ["iam_propagation", "lambda_pending", "lambda_update"],
        "scales": {"iam_propagation": 0.5, "lambda_pending": 1, "lambda_pending_vpc": 0.1,
                   "lambda_update": 1, "lambda_update_vpc": 0.1}
    }));
    let name = "t-aws-lambda";
    let database = "t_aws_lambda";
    let zips = std::env::temp_dir().join(format!("{name}-zips-{}", std::process::id()));
    for function in [
        "file_upload",
        "audio_transcribe",
        "save_text",
        "send_email",
        "db_migrate",
    ] {
        std::fs::create_dir_all(zips.join(function)).unwrap();
        std::fs::copy(
            self::zips().join(function).join("bootstrap.zip"),
            zips.join(function).join("bootstrap.zip"),
        )
        .unwrap();
    }
    mysql_drop_database(database);
    let stack = TestStack::build(
        name,
        Emulator::Ministack,
        &functions_yaml("10.72.0.0/16", database, &zips),
    );
    // An AddPermission whose answer is lost: the SDK sends it again and Lambda answers that
    // the statement already exists. It is ours: done, not retried for minutes.
    realism.inject(json!({
        "service": "lambda", "operation": "AddPermission",
        "lose_answer": true, "count": 1
    }));
    let since = realism.last_seq();
    let first = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(first["summary"]["failed"], 0, "{first:#}");
    let seen = verdicts(&realism, since, "lambda");
    assert!(seen.iter().any(|v| v == "injected:lost-answer"), "{seen:?}");
    assert!(
        seen.iter().any(|v| v == "timing:iam_propagation"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|v| v == "timing:lambda_pending"),
        "{seen:?}"
    );

    // New code for db_migrate: the migration must run it, not the code before.
    let zip = zips.join("db_migrate/bootstrap.zip");
    let bytes = std::fs::read(&zip).unwrap();
    std::fs::write(&zip, with_comment(&bytes, "new build")).unwrap();
    let since = realism.last_seq();
    let started = Instant::now();
    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    let function = format!("{name}-db_migrate");
    // The migration ran the new code: every Invoke after the deferred code was applied.
    let migrated_with_new_code = |deploys_since: u64, invokes_since: u64, report: &str| {
        let deployed = realism
            .calls(deploys_since, "service=lambda&operation=UpdateFunctionCode")
            .into_iter()
            .rfind(|c| {
                c["internal"] == true
                    && c["note"]
                        .as_str()
                        .is_some_and(|n| n.contains(&format!("of {function} forwarded")))
            })
            .unwrap_or_else(|| panic!("the new code of {function} was never applied: {report}"));
        let invokes: Vec<u64> = realism
            .calls(invokes_since, "service=lambda&operation=Invoke")
            .iter()
            .filter(|c| c["params"]["FunctionName"] == function.as_str())
            .filter_map(|c| c["seq"].as_u64())
            .collect();
        assert!(!invokes.is_empty(), "the migration ran: {report}");
        let applied = deployed["seq"].as_u64().unwrap();
        assert!(
            invokes.iter().all(|&seq| seq > applied),
            "db_migrate was invoked (calls {invokes:?}) before its new code was applied (call {applied}): \
             the migration ran the previous code"
        );
    };
    migrated_with_new_code(since, since, &second.to_string());
    eprintln!("second up with a code update: {:?}", started.elapsed());

    // A run interrupted right after UpdateFunctionCode: the next run finds db_migrate still
    // updating, and waits for it before running the migration.
    std::fs::write(&zip, with_comment(&bytes, "newer build")).unwrap();
    let interrupted_since = realism.last_seq();
    let interrupted = stack.run_env(
        &["up"],
        &[(
            "PROVISION_FAULT_ABORT_AFTER_OPERATION",
            "UpdateFunctionCode",
        )],
    );
    assert_ne!(interrupted.code(), 0, "{}", interrupted.stdout());
    let resumed_since = realism.last_seq();
    let resumed = stack.run(&["--output", "json", "up"]).expect(0).json();
    migrated_with_new_code(interrupted_since, resumed_since, &resumed.to_string());
    let third = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(third["api_calls"]["write"], 0, "{third:#}");
    stack
        .run(&["down", "--delete-data", "--skip-final-snapshot"])
        .expect(0);
    mysql_drop_database(database);
    let _ = std::fs::remove_dir_all(zips);
}

/// Lambda keeps a deleted VPC function's network interfaces for a while, and releases them
/// only with the function's role: `down` keeps the roles until the security group and the
/// subnets those interfaces block are gone.
#[tokio::test(flavor = "multi_thread")]
async fn down_waits_for_the_functions_network_interfaces_with_their_roles() {
    let _turn = TURN.lock().await;
    let realism = Realism::on(Emulator::Ministack);
    let name = "t-aws-eni";
    let database = "t_aws_eni";
    mysql_drop_database(database);
    let stack = TestStack::build(
        name,
        Emulator::Ministack,
        &functions_yaml("10.73.0.0/16", database, &zips()),
    );
    let _settings = realism.set(json!({
        "mode": "test", "fault_rate": 0,
        "behaviours": ["lambda_eni"],
        "scales": {"lambda_eni_release": 0.005}
    }));
    stack.run(&["up"]).expect(0);
    let since = realism.last_seq();
    let down = stack
        .run(&[
            "--output",
            "json",
            "down",
            "--delete-data",
            "--skip-final-snapshot",
        ])
        .expect(0)
        .json();
    assert_eq!(down["summary"]["failed"], 0, "{down:#}");
    let seen = verdicts(&realism, since, "ec2");
    assert!(
        seen.iter().any(|v| v == "timing:lambda_eni"),
        "the interfaces held a deletion back at least once: {seen:?}"
    );
    let left = Aws::new().await.owned_by(name).await;
    assert!(left.is_empty(), "down left: {left:?}");
    mysql_drop_database(database);
}

/// RDS takes a change only from an available instance, and a wait for the database survives
/// a read that failed even after the SDK's retries.
#[tokio::test(flavor = "multi_thread")]
async fn the_database_is_changed_only_when_available_and_waits_survive_a_failed_read() {
    let _turn = TURN.lock().await;
    let realism = Realism::on(Emulator::Ministack);
    let _settings = realism.set(json!({
        "mode": "test", "fault_rate": 0,
        "behaviours": ["rds"],
        "scales": {"rds_creating": 0.02, "rds_modifying": 0.1, "rds_deleting": 0.02}
    }));
    let name = "t-aws-rds";
    let stack = TestStack::build(
        name,
        Emulator::Ministack,
        "  network:\n    cidr: 10.74.0.0/16\n  database:\n    database_name: t_aws_rds\n    backup_retention_days: 3\n",
    );
    Aws::new()
        .await
        .purge_snapshots(&format!("{name}-db"))
        .await;
    stack.run(&["up"]).expect(0);
    // Two changes in a row: the second meets the instance still `modifying` unless the first
    // `up` waited for it.
    stack.edit("backup_retention_days: 3", "backup_retention_days: 5");
    stack.run(&["up"]).expect(0);
    stack.edit("backup_retention_days: 5", "backup_retention_days: 6");
    stack.run(&["up"]).expect(0);
    let again = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(again["api_calls"]["write"], 0, "{again:#}");

    // The reads of the deletion's wait fail for a while, more than the SDK retries (two
    // attempts here, to keep the test short): the wait goes on.
    realism.inject(json!({
        "service": "rds", "operation": "DescribeDBInstances", "code": "InternalFailure",
        "message": "injected by the test", "status": 500, "count": 4, "after": "DeleteDBInstance"
    }));
    let since = realism.last_seq();
    stack
        .run_env(
            &["down", "--delete-data", "--skip-final-snapshot"],
            &[("AWS_MAX_ATTEMPTS", "2")],
        )
        .expect(0);
    let failed = realism
        .calls(since, "operation=DescribeDBInstances&verdict=injected")
        .len();
    assert_eq!(failed, 4, "the injected failures were met");
    assert!(!Aws::new()
        .await
        .owned_by(name)
        .await
        .iter()
        .any(|r| r.starts_with("db_instance")));
    mysql_drop_database("t_aws_rds");
}

/// CloudFront deploys for minutes, and a create whose answer was lost is found again by the
/// id CloudFront names when the create is repeated.
#[tokio::test(flavor = "multi_thread")]
async fn a_distribution_whose_create_answer_was_lost_is_adopted_by_its_id() {
    let _turn = TURN.lock().await;
    let realism = Realism::on(Emulator::Ministack);
    let _settings = realism.set(json!({
        "mode": "test", "fault_rate": 0,
        "behaviours": ["cloudfront_deploy"],
        "scales": {"cloudfront_deploy": 0.02}
    }));
    let stack = TestStack::new("t-aws-cf");
    realism.inject(json!({
        "service": "cloudfront", "operation": "CreateDistributionWithTags",
        "lose_answer": true, "count": 1
    }));
    let since = realism.last_seq();
    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(up["summary"]["failed"], 0, "{up:#}");
    let calls = realism.calls(since, "service=cloudfront");
    let operations: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| {
            (
                c["operation"].as_str().unwrap_or_default(),
                c["verdict"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let repeated = operations
        .iter()
        .position(|(op, verdict)| {
            *op == "CreateDistributionWithTags" && *verdict == "forwarded"
                || verdict.contains("DistributionAlreadyExists")
        })
        .expect("the create was sent again after its answer was lost");
    // Read by the id CloudFront names in its refusal, not searched for in listings that may
    // not show a distribution made moments ago.
    assert_eq!(
        operations.get(repeated + 1).map(|(op, _)| *op),
        Some("GetDistribution"),
        "the existing distribution was read by its id: {operations:?}"
    );
    assert_eq!(
        Aws::new().await.distributions_of("t-aws-cf").await.len(),
        1,
        "one distribution"
    );
    assert!(
        operations
            .iter()
            .any(|(_, verdict)| *verdict == "timing:cloudfront_deploy"),
        "{operations:?}"
    );
    stack.run(&["down"]).expect(0);
}
