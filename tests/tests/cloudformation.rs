//! `--engine cloudformation` on the local target: each system deployed by ministack's
//! CloudFormation from `provision template`'s rendering (zips and template uploaded to the
//! artifact bucket, read through TemplateURL), a second `up` an empty change set that changes
//! nothing, a setting changed by hand found by CloudFormation's drift detection (exit 2, the
//! resource and property named), the SDK engine's `drift` clean on what CloudFormation made
//! (the two engines agree), and `down` keeping a non-empty data bucket unless
//! `--delete-data`. ministack 1.5.33's CloudFormation lacks four EC2 types; the local target
//! adds them (tests/local/ministack_cfn_extensions.py, docs/cloudformation.md).
//! Needs the zips (`make zips`) and the player's hls.js (`make web`); `make test` does both.

use system_tests::{
    line, mysql_drop_database, repository_sections, require_zips, root, Aws, Emulator, TestStack,
};

const CFN: [&str; 2] = ["--engine", "cloudformation"];

fn cfn<'a>(args: &[&'a str]) -> Vec<&'a str> {
    CFN.iter().copied().chain(args.iter().copied()).collect()
}

/// The stack's status and how many events it has, as CloudFormation answers.
async fn status_and_events(aws: &Aws, stack: &str) -> (String, usize) {
    let stacks = aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .expect("the stack exists");
    let status = stacks.stacks()[0]
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let mut events = 0;
    let mut token = None;
    loop {
        let page = aws
            .cloudformation
            .describe_stack_events()
            .stack_name(stack)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        events += page.stack_events().len();
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    (status, events)
}

async fn stack_exists(aws: &Aws, stack: &str) -> bool {
    match aws
        .cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(out) => out
            .stacks()
            .iter()
            .any(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE")),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudformation_deploys_the_video_system_with_the_same_promises() {
    require_zips(&["vod_convert"]);
    let zips = root().join("target/lambda");
    let name = "t-cfn-vod";
    let sections = format!(
        "vod:\n  player:\n    source_dir: {}\n  function:\n    zips_dir: {}\n",
        root().join("site/vod").display(),
        zips.display()
    );
    let source_bucket = format!("{name}-vod-source-000000000000");
    // The foreign bucket an earlier run of this test may have left (below).
    Emulator::Ministack.ensure();
    let aws = Aws::new().await;
    let _ = aws
        .s3
        .delete_object()
        .bucket(&source_bucket)
        .key("theirs.txt")
        .send()
        .await;
    let stack = TestStack::with_sections(name, Emulator::Ministack, &sections);
    // What an earlier run of this test left in CloudFormation.
    stack.run(&cfn(&["down", "--delete-data"])).expect(0);
    let cfn_stack = format!("{name}-vod");
    let stack_line = format!("cloudformation/{cfn_stack}");
    let artifacts = format!("{name}-artifacts-000000000000");

    // A creation that fails: someone else's bucket holds the source bucket's name.
    aws.s3
        .create_bucket()
        .bucket(&source_bucket)
        .send()
        .await
        .unwrap();
    aws.s3
        .put_object()
        .bucket(&source_bucket)
        .key("theirs.txt")
        .body(b"not the stack's".to_vec().into())
        .send()
        .await
        .unwrap();
    let failed = stack
        .run(&cfn(&["--output", "json", "up"]))
        .expect(1)
        .json();
    let error = line(&failed, &stack_line)["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("BucketVodSource (AWS::S3::Bucket)") && error.ends_with("ROLLBACK_COMPLETE"),
        "the first failure and the rollback's outcome: {error}"
    );
    aws.s3
        .delete_object()
        .bucket(&source_bucket)
        .key("theirs.txt")
        .send()
        .await
        .unwrap();
    aws.s3
        .delete_bucket()
        .bucket(&source_bucket)
        .send()
        .await
        .unwrap();

    // Again: the failed stack can only be deleted, which `up` does first.
    let up = stack
        .run(&cfn(&["--output", "json", "up"]))
        .expect(0)
        .json();
    assert_eq!(line(&up, &stack_line)["result"], "create", "{up:#}");
    assert!(
        line(&up, &stack_line)["notes"][0]
            .as_str()
            .unwrap()
            .contains("ROLLBACK_COMPLETE"),
        "{up:#}"
    );
    assert!(
        up["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["resource"] == "site_files/vod-player" && l["result"] == "update"),
        "the player's files are put by provision after the deploy: {up:#}"
    );
    assert!(up["outputs"]["vod_player_url"].is_string(), "{up:#}");
    let (status, events) = status_and_events(&aws, &cfn_stack).await;
    assert_eq!(status, "CREATE_COMPLETE");
    assert!(aws.bucket_exists(&artifacts).await);

    // Again: an empty change set, deleted; CloudFormation touches no resource.
    let again = stack
        .run(&cfn(&["--output", "json", "up"]))
        .expect(0)
        .json();
    let again_stack = line(&again, &stack_line);
    assert_eq!(again_stack["result"], "noop", "{again:#}");
    assert!(again_stack["notes"][0]
        .as_str()
        .unwrap()
        .starts_with("no changes"));
    assert_eq!(again["summary"]["created"], 0, "{again:#}");
    assert_eq!(again["summary"]["updated"], 0, "{again:#}");
    assert_eq!(status_and_events(&aws, &cfn_stack).await, (status, events));
    let change_sets = aws
        .cloudformation
        .list_change_sets()
        .stack_name(&cfn_stack)
        .send()
        .await
        .unwrap();
    // Only the one executed by the first `up` is listed; none waits to be executed.
    assert!(
        change_sets.summaries().iter().all(|c| c.execution_status()
            == Some(&aws_sdk_cloudformation::types::ExecutionStatus::ExecuteComplete)),
        "{change_sets:?}"
    );

    // The two engines agree: the SDK engine finds what CloudFormation made in sync.
    let sdk_drift = stack.run(&["--output", "json", "drift"]);
    assert_eq!(sdk_drift.code(), 0, "{}", sdk_drift.stdout());

    // plan: a change set described, not executed, and deleted.
    let plan = stack
        .run(&cfn(&["--output", "json", "plan"]))
        .expect(0)
        .json();
    assert_eq!(line(&plan, &stack_line)["result"], "noop", "{plan:#}");

    // Interrupted runs converge: `up` killed right after CloudFormation took the change set,
    // then right after it started executing one; run again, it finishes the work.
    let zips_line = format!("zips_dir: {}", zips.display());
    stack.edit(
        &zips_line,
        &format!("{zips_line}\n    settings: {{memory_mb: 128, timeout_s: 90}}"),
    );
    for (abort_after, timeout) in [("CreateChangeSet", 90), ("ExecuteChangeSet", 100)] {
        if timeout == 100 {
            stack.edit("timeout_s: 90", "timeout_s: 100");
        }
        let killed = stack.run_env(
            &cfn(&["up"]),
            &[("PROVISION_FAULT_ABORT_AFTER_OPERATION", abort_after)],
        );
        assert_ne!(killed.code(), 0, "{abort_after}: {}", killed.stderr());
        let resumed = stack
            .run(&cfn(&["--output", "json", "up"]))
            .expect(0)
            .json();
        assert_eq!(resumed["summary"]["failed"], 0, "{resumed:#}");
        let live = aws
            .lambda
            .get_function_configuration()
            .function_name(format!("{name}-vod_convert"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            live.timeout(),
            Some(timeout),
            "after {abort_after}: {resumed:#}"
        );
    }

    // A setting changed by hand: CloudFormation's drift detection names it.
    aws.lambda
        .update_function_configuration()
        .function_name(format!("{name}-vod_convert"))
        .timeout(7)
        .send()
        .await
        .unwrap();
    let drift = stack
        .run(&cfn(&["--output", "json", "drift"]))
        .expect(2)
        .json();
    let drifted: Vec<&serde_json::Value> = drift["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["result"] == "update")
        .collect();
    assert_eq!(drifted.len(), 1, "{drift:#}");
    assert_eq!(
        drifted[0]["resource"],
        format!("{cfn_stack}/FunctionVodConvert (AWS::Lambda::Function)")
    );
    assert_eq!(drifted[0]["changes"][0]["field"], "Timeout", "{drift:#}");
    assert_eq!(drifted[0]["changes"][0]["actual"], "7", "{drift:#}");
    let text = stack.run(&cfn(&["drift"])).expect(2).stdout();
    assert!(text.contains("Timeout: expected"), "{text}");

    // down: the stack goes, the source bucket holding a user's video stays.
    aws.s3
        .put_object()
        .bucket(&source_bucket)
        .key("uploads/holiday.mov")
        .body(b"not really a video".to_vec().into())
        .send()
        .await
        .unwrap();
    // The upload starts the converter (S3 invokes it asynchronously); its run writes its logs
    // once done. Waited for, so that it does not write them after `down` removed the group.
    let log_group = format!("/aws/lambda/{name}-vod_convert");
    let mut ran = false;
    for _ in 0..120 {
        let streams = aws
            .logs
            .describe_log_streams()
            .log_group_name(&log_group)
            .send()
            .await;
        if streams.is_ok_and(|s| !s.log_streams().is_empty()) {
            ran = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(ran, "the converter did not run on the upload");
    let down = stack
        .run(&cfn(&["--output", "json", "down"]))
        .expect(1)
        .json();
    assert_eq!(line(&down, &stack_line)["result"], "delete", "{down:#}");
    let kept = line(&down, "bucket/vod-source");
    assert_eq!(kept["result"], "failed", "{down:#}");
    assert!(
        kept["error"].as_str().unwrap().contains("--delete-data"),
        "{down:#}"
    );
    assert!(!stack_exists(&aws, &cfn_stack).await);
    assert!(aws
        .s3
        .head_object()
        .bucket(&source_bucket)
        .key("uploads/holiday.mov")
        .send()
        .await
        .is_ok());
    let down = stack
        .run(&cfn(&["--output", "json", "down", "--delete-data"]))
        .expect(0)
        .json();
    assert_eq!(line(&down, &stack_line)["result"], "absent", "{down:#}");
    assert!(!aws.bucket_exists(&source_bucket).await);
    assert!(!aws.bucket_exists(&artifacts).await);
    assert!(
        aws.owned_by(name).await.is_empty(),
        "{:?}",
        aws.owned_by(name).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudformation_deploys_both_systems_and_the_sdk_engine_agrees() {
    require_zips(&["db_migrate", "vod_convert"]);
    let name = "t-cfn-all";
    mysql_drop_database("t_cfn");
    let stack = TestStack::with_sections(
        name,
        Emulator::Ministack,
        &repository_sections("t_cfn", "10.70.0.0/16", "cfn@example.com"),
    );
    // Without the final snapshot, so that runs of this test do not pile snapshots up.
    stack.edit("final_snapshot: true", "final_snapshot: false");
    stack
        .run(&cfn(&[
            "down",
            "--delete-data",
            "--disable-deletion-protection",
        ]))
        .expect(0);
    let aws = Aws::new().await;
    let stacks = [format!("{name}-stt"), format!("{name}-vod")];

    let up = stack
        .run(&cfn(&["--output", "json", "up"]))
        .expect(0)
        .json();
    for s in &stacks {
        assert_eq!(
            line(&up, &format!("cloudformation/{s}"))["result"],
            "create",
            "{up:#}"
        );
    }
    for after in [
        "schema_migration/stt",
        "site_files/stt-site",
        "default_security_group/stt",
    ] {
        assert_ne!(line(&up, after)["result"], "failed", "{up:#}");
    }
    let mut before = Vec::new();
    for s in &stacks {
        let (status, events) = status_and_events(&aws, s).await;
        assert_eq!(status, "CREATE_COMPLETE", "{s}");
        before.push((status, events));
    }

    let again = stack
        .run(&cfn(&["--output", "json", "up"]))
        .expect(0)
        .json();
    assert_eq!(again["summary"]["created"], 0, "{again:#}");
    assert_eq!(again["summary"]["updated"], 0, "{again:#}");
    for (s, before) in stacks.iter().zip(&before) {
        assert_eq!(
            line(&again, &format!("cloudformation/{s}"))["result"],
            "noop",
            "{again:#}"
        );
        assert_eq!(&status_and_events(&aws, s).await, before, "{s} was touched");
    }

    // The two engines agree on every resource both manage.
    let sdk_drift = stack.run(&["--output", "json", "drift"]);
    assert_eq!(sdk_drift.code(), 0, "{}", sdk_drift.stdout());
    stack.run(&cfn(&["drift"])).expect(0);

    let down = stack
        .run(&cfn(&["--output", "json", "down", "--delete-data"]))
        .expect(0)
        .json();
    assert_eq!(down["summary"]["failed"], 0, "{down:#}");
    for s in &stacks {
        assert!(!stack_exists(&aws, s).await, "{s}");
    }
    let left = aws.owned_by(name).await;
    assert!(left.is_empty(), "down left: {left:?}");
    mysql_drop_database("t_cfn");
}
