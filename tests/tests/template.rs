//! `provision template`: the repository's stack as a CloudFormation template, rendered without
//! a single AWS call, the same bytes every time, and clean under cfn-lint (AWS's published
//! resource schemas) and checkov, every skipped checkov check justified in docs/security.md.
//! Needs `make deps zips` (the scanners are in `.venv-scan`; the template names each zip by
//! its digest).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use system_tests::{root, run_provision};

/// The three templates a user can render: both systems, and each on its own.
const SELECTIONS: [&[&str]; 3] = [&[], &["--only", "stt"], &["--only", "vod"]];

/// Renders the repository's stack with `args`; asserts it made no connection to AWS.
fn render(args: &[&str]) -> String {
    render_stack(&root().join("stack.yaml"), args)
}

/// Renders `stack` with `args`; asserts it made no connection to AWS.
fn render_stack(stack: &Path, args: &[&str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut all = vec!["template"];
    all.extend_from_slice(args);
    let run = run_provision(stack, &all, &[("AWS_ENDPOINT_URL", &endpoint)]).expect(0);
    assert_eq!(
        std::iter::from_fn(|| listener.accept().ok()).count(),
        0,
        "`provision template` connected to AWS"
    );
    run.stdout()
}

/// Each selection's JSON template, written to a file of its own.
fn template_files() -> Vec<PathBuf> {
    let dir = std::env::temp_dir().join(format!("provision-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    SELECTIONS
        .iter()
        .map(|args| {
            let mut args = args.to_vec();
            let name = match args.get(1) {
                Some(system) => format!("{system}.json"),
                None => "stack.json".into(),
            };
            args.extend(["--format", "json"]);
            let file = dir.join(name);
            std::fs::write(&file, render(&args)).unwrap();
            file
        })
        .collect()
}

fn scanner(name: &str) -> PathBuf {
    let bin = root().join(".venv-scan/bin").join(name);
    assert!(bin.exists(), "{} missing: run `make deps`", bin.display());
    bin
}

#[test]
fn the_template_is_rendered_offline_and_is_the_same_bytes_twice() {
    for format in ["yaml", "json"] {
        let first = render(&["--format", format]);
        assert_eq!(first, render(&["--format", format]), "{format} differs");
        assert!(first.contains("AWS::RDS::DBInstance"), "{first}");
        assert!(first.contains("AWS::CloudFront::Distribution"), "{first}");
    }
    let stt: Value = serde_json::from_str(&render(&["--only", "stt", "--format", "json"])).unwrap();
    let vod: Value = serde_json::from_str(&render(&["--only", "vod", "--format", "json"])).unwrap();
    let both: Value = serde_json::from_str(&render(&["--format", "json"])).unwrap();
    let ids = |t: &Value| -> Vec<String> {
        t["Resources"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    // Each system alone is its part of the whole, and nothing of the other.
    let (stt_ids, vod_ids, both_ids) = (ids(&stt), ids(&vod), ids(&both));
    assert!(stt_ids
        .iter()
        .all(|id| both_ids.contains(id) && !vod_ids.contains(id)));
    assert_eq!(stt_ids.len() + vod_ids.len(), both_ids.len());
    assert!(stt_ids.contains(&"DbInstanceStt".to_owned()), "{stt_ids:?}");
    assert!(
        vod_ids.contains(&"FunctionVodConvert".to_owned()),
        "{vod_ids:?}"
    );
}

#[test]
fn cfn_lint_finds_no_error_and_no_warning() {
    let serious = cfn_lint(&template_files());
    assert!(
        serious.is_empty(),
        "{}",
        serde_json::to_string_pretty(&serious).unwrap()
    );
}

/// checkov's JSON report on one template.
fn checkov(file: &Path) -> Value {
    let output = Command::new(scanner("checkov"))
        .args([
            "--framework",
            "cloudformation",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ])
        .arg("--file")
        .arg(file)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .current_dir(file.parent().unwrap())
        .output()
        .expect("run checkov");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov did not answer JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// cfn-lint's errors and warnings on `files` (informational findings left out).
fn cfn_lint(files: &[PathBuf]) -> Vec<Value> {
    let output = Command::new(scanner("cfn-lint"))
        .args(["--format", "json", "--"])
        .args(files)
        .output()
        .expect("run cfn-lint");
    let findings: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "cfn-lint did not answer JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    findings
        .into_iter()
        .filter(|f| f["Level"] != "Informational")
        .collect()
}

/// The ids of the checks checkov reports in `section` (`failed_checks`, `skipped_checks`)
/// for the resource `logical_id`.
fn checks_on(report: &Value, section: &str, logical_id: &str) -> Vec<String> {
    report["results"][section]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|c| {
            c["resource"]
                .as_str()
                .is_some_and(|r| r.ends_with(logical_id))
        })
        .map(|c| c["check_id"].as_str().unwrap().to_owned())
        .collect()
}

/// checkov passes every check it runs but those skipped in the template's metadata, and each
/// skip has its justification in docs/security.md.
#[test]
fn checkov_fails_nothing_and_every_skip_is_justified() {
    let security = std::fs::read_to_string(root().join("docs/security.md")).unwrap();
    for file in template_files() {
        let report = checkov(&file);
        let results = &report["results"];
        let failed = results["failed_checks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let failed: Vec<String> = failed
            .iter()
            .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["check_name"]))
            .collect();
        assert!(failed.is_empty(), "{}: {failed:#?}", file.display());
        let passed = results["passed_checks"].as_array().map_or(0, Vec::len);
        assert!(
            passed > 20,
            "{}: checkov passed only {passed} checks",
            file.display()
        );
        for skipped in results["skipped_checks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let id = skipped["check_id"].as_str().unwrap();
            assert!(
                security.contains(id),
                "{}: {id} is skipped on {} but docs/security.md does not say why",
                file.display(),
                skipped["resource"]
            );
        }
    }
}

/// With `custom_domain`, the site is served on its own names with an ACM certificate, SNI and
/// TLS 1.2 at least: checkov's TLS check (skipped with the default certificate) then passes.
#[test]
fn a_custom_domain_gets_tls_1_2_and_passes_checkovs_tls_check() {
    let repo = root();
    let zips = repo.join("target/lambda");
    let yaml = std::fs::read_to_string(repo.join("stack.yaml"))
        .unwrap()
        .replace(
            "zips_dir: target/lambda",
            &format!("zips_dir: {}", zips.display()),
        )
        .replace(
            "      # custom_domain:\n      #   names: [stt.example.com]\n      #   certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/…",
            "      custom_domain:\n        names: [stt.example.com]\n        certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        );
    assert!(
        yaml.contains("\n      custom_domain:"),
        "stack.yaml's example moved"
    );
    let dir =
        std::env::temp_dir().join(format!("provision-template-domain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stack = dir.join("stack.yaml");
    std::fs::write(&stack, yaml).unwrap();
    let file = dir.join("stt.json");
    let json = render_stack(&stack, &["--only", "stt", "--format", "json"]);
    std::fs::write(&file, &json).unwrap();

    let template: Value = serde_json::from_str(&json).unwrap();
    let config = &template["Resources"]["DistributionSttSite"]["Properties"]["DistributionConfig"];
    assert_eq!(config["Aliases"], serde_json::json!(["stt.example.com"]));
    let certificate = &config["ViewerCertificate"];
    assert_eq!(certificate["MinimumProtocolVersion"], "TLSv1.2_2021");
    assert_eq!(certificate["SslSupportMethod"], "sni-only");
    assert!(certificate["AcmCertificateArn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:acm:us-east-1:"));

    assert_eq!(cfn_lint(std::slice::from_ref(&file)), Vec::<Value>::new());
    let report = checkov(&file);
    let site = "DistributionSttSite";
    assert!(
        checks_on(&report, "failed_checks", site).is_empty(),
        "{report:#}"
    );
    assert!(
        !checks_on(&report, "skipped_checks", site).contains(&"CKV_AWS_174".to_owned()),
        "the TLS check is skipped though a custom domain is set"
    );
    assert!(
        checks_on(&report, "passed_checks", site).contains(&"CKV_AWS_174".to_owned()),
        "{:?}",
        checks_on(&report, "passed_checks", site)
    );
}
