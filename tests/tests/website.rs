//! The speech-to-text website (console steps S1 to S7) built, checked, repaired and torn down
//! by `provision` on the local emulator.

use std::time::Duration;

use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use system_tests::{eventually, http_get, http_request, Aws, TestStack};

fn site_url(report: &serde_json::Value) -> String {
    report["outputs"]["stt_site_url"]
        .as_str()
        .expect("site URL in outputs")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_builds_the_site_and_a_second_up_writes_nothing() {
    let stack = TestStack::new("t-up-twice");
    let plan = stack.run(&["--output", "json", "plan"]).expect(0).json();
    assert_eq!(plan["api_calls"]["write"], 0, "plan changes nothing");
    assert!(
        plan["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "create"),
        "{plan:#}"
    );

    let first = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(first["summary"]["created"], 5, "{first:#}");
    assert!(first["api_calls"]["write"].as_u64().unwrap() > 0);

    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    for field in ["created", "updated", "deleted", "failed"] {
        assert_eq!(second["summary"][field], 0, "{field}: {second:#}");
    }
    assert_eq!(second["summary"]["unchanged"], 6);
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");
    assert!(second["api_calls"]["read"].as_u64().unwrap() > 0);

    // The page is served through CloudFront (which may read the private bucket only through
    // OAC and the bucket policy), and an unknown path is answered with index.html (S6).
    let url = site_url(&second);
    let (status, body) = http_get(&url);
    assert_eq!(status, 200, "{url}: {body}");
    let heading = r#"<h1 data-t="title">Speech to text</h1>"#;
    assert!(body.contains(heading), "{body}");
    let (status, body) = http_get(&format!("{url}no/such/page"));
    assert_eq!((status, body.contains(heading)), (200, true));

    // A changed page is uploaded again, and only that one.
    std::fs::write(
        stack.dir.join("site/index.html"),
        "<h1>Speech to text</h1><p>v2</p>",
    )
    .unwrap();
    let third = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(third["summary"]["updated"], 1, "{third:#}");
    // One PutObject, and one invalidation of that page (and of `/`, which serves it),
    // marked pending on the distribution from before the upload until it is made.
    assert_eq!(
        third["api_calls"]["write"], 4,
        "TagResource + PutObject + CreateInvalidation + UntagResource: {third:#}"
    );
    assert!(http_get(&url).1.contains("v2"));
    let aws = system_tests::Aws::new().await;
    let id = third["outputs"]["stt_site_distribution_id"]
        .as_str()
        .unwrap();
    let invalidations = aws
        .cloudfront
        .list_invalidations()
        .distribution_id(id)
        .send()
        .await
        .unwrap();
    let list = invalidations.invalidation_list().unwrap();
    assert_eq!(list.quantity(), 1, "{list:?}");
    let only = aws
        .cloudfront
        .get_invalidation()
        .distribution_id(id)
        .id(list.items()[0].id())
        .send()
        .await
        .unwrap();
    let mut paths = only
        .invalidation()
        .unwrap()
        .invalidation_batch()
        .unwrap()
        .paths()
        .unwrap()
        .items()
        .to_vec();
    paths.sort();
    assert_eq!(paths, vec!["/", "/index.html"]);

    stack.run(&["down"]).expect(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_names_hand_made_changes_and_up_repairs_them() {
    let stack = TestStack::new("t-drift");
    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    let id = up["outputs"]["stt_site_distribution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.run(&["drift"]).expect(0);

    let aws = Aws::new().await;
    let current = aws
        .cloudfront
        .get_distribution_config()
        .id(&id)
        .send()
        .await
        .unwrap();
    let mut config = current.distribution_config().unwrap().clone();
    config.default_root_object = Some("other.html".into());
    aws.cloudfront
        .update_distribution()
        .id(&id)
        .if_match(current.e_tag().unwrap())
        .distribution_config(config)
        .send()
        .await
        .unwrap();
    let open = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(false)
        .restrict_public_buckets(true)
        .build();
    aws.s3
        .put_public_access_block()
        .bucket(stack.bucket())
        .public_access_block_configuration(open)
        .send()
        .await
        .unwrap();

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    assert_eq!(drift["drifted"], true);
    let changes: Vec<(String, String, String, String)> = drift["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let resource = r["resource"].as_str().unwrap().to_owned();
            r["changes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| {
                    (
                        resource.clone(),
                        c["field"].as_str().unwrap().to_owned(),
                        c["expected"].as_str().unwrap().to_owned(),
                        c["actual"].as_str().unwrap().to_owned(),
                    )
                })
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (
                "bucket/stt-site".into(),
                "PublicAccessBlock.BlockPublicPolicy".into(),
                "true".into(),
                "false".into()
            ),
            (
                "distribution/stt-site".into(),
                "DefaultRootObject".into(),
                "index.html".into(),
                "other.html".into()
            ),
        ]
    );
    let text = stack.run(&["drift"]).expect(2).stdout();
    assert!(
        text.contains("DefaultRootObject: expected index.html, found other.html"),
        "{text}"
    );

    let repair = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(repair["summary"]["updated"], 2, "{repair:#}");
    stack.run(&["drift"]).expect(0);
    stack.run(&["down"]).expect(0);
}

/// The headers CloudFront answered `url` with, by lower-case name.
fn answer_headers(url: &str) -> std::collections::BTreeMap<String, String> {
    let (status, headers, _) = http_request("GET", url, &[], &[]);
    assert_eq!(status, 200, "{url}");
    headers.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers_and_a_weakened_policy_is_drift() {
    let stack = TestStack::new("t-headers");
    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    let url = site_url(&up);
    let wanted = [
        ("strict-transport-security", "max-age=63072000"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
    ];
    // The page, a file, and the error answer that serves index.html for an unknown path.
    for path in ["", "style.css", "no/such/page"] {
        let headers = answer_headers(&format!("{url}{path}"));
        for (name, value) in wanted {
            assert_eq!(
                headers.get(name).map(String::as_str),
                Some(value),
                "{path}: {headers:?}"
            );
        }
        let csp = &headers["content-security-policy"];
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
    }

    // By hand: the CSP taken out of the policy, a header added, and the policy detached
    // from the distribution.
    let aws = Aws::new().await;
    let (id, _, config) = aws
        .headers_policies()
        .await
        .into_iter()
        .find(|(_, name, _)| *name == stack.headers_policy_name())
        .expect("the stack's policy");
    let mut security = config.security_headers_config().unwrap().clone();
    security.content_security_policy = None;
    let custom = aws_sdk_cloudfront::types::ResponseHeadersPolicyCustomHeadersConfig::builder()
        .quantity(1)
        .items(
            aws_sdk_cloudfront::types::ResponseHeadersPolicyCustomHeader::builder()
                .header("X-Debug")
                .value("1")
                .r#override(true)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let weakened = aws_sdk_cloudfront::types::ResponseHeadersPolicyConfig::builder()
        .name(config.name())
        .set_comment(config.comment().map(str::to_owned))
        .set_cors_config(config.cors_config().cloned())
        .security_headers_config(security)
        .custom_headers_config(custom)
        .build()
        .unwrap();
    let etag = aws
        .cloudfront
        .get_response_headers_policy()
        .id(&id)
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    aws.cloudfront
        .update_response_headers_policy()
        .id(&id)
        .if_match(etag)
        .response_headers_policy_config(weakened)
        .send()
        .await
        .unwrap();
    let distribution = up["outputs"]["stt_site_distribution_id"].as_str().unwrap();
    let current = aws
        .cloudfront
        .get_distribution_config()
        .id(distribution)
        .send()
        .await
        .unwrap();
    let mut dist_config = current.distribution_config().unwrap().clone();
    dist_config
        .default_cache_behavior
        .as_mut()
        .unwrap()
        .response_headers_policy_id = None;
    aws.cloudfront
        .update_distribution()
        .id(distribution)
        .if_match(current.e_tag().unwrap())
        .distribution_config(dist_config)
        .send()
        .await
        .unwrap();
    assert!(!answer_headers(&url).contains_key("content-security-policy"));

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    let fields = |resource: &str| -> Vec<String> {
        system_tests::line(&drift, resource)["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        fields("response_headers_policy/stt-site"),
        [
            "CustomHeadersConfig",
            "SecurityHeadersConfig.ContentSecurityPolicy"
        ],
        "{drift:#}"
    );
    assert_eq!(
        fields("distribution/stt-site"),
        ["DefaultCacheBehavior.ResponseHeadersPolicyId"],
        "{drift:#}"
    );

    let repair = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(repair["summary"]["updated"], 2, "{repair:#}");
    stack.run(&["drift"]).expect(0);
    let headers = answer_headers(&url);
    assert!(
        headers.contains_key("content-security-policy"),
        "{headers:?}"
    );
    assert!(!headers.contains_key("x-debug"), "{headers:?}");
    stack.run(&["down"]).expect(0);
}

/// Whether `stack` holds exactly one distribution, OAC, response headers policy and bucket.
async fn assert_one_of_each(aws: &Aws, stack: &TestStack, when: &str) {
    assert_eq!(
        aws.distributions_of(&stack.name).await.len(),
        1,
        "distributions {when}"
    );
    assert_eq!(aws.oacs_named(&stack.oac_name()).await, 1, "OACs {when}");
    assert_eq!(
        aws.headers_policies_named(&stack.headers_policy_name())
            .await,
        1,
        "response headers policies {when}"
    );
    assert!(aws.bucket_exists(&stack.bucket()).await, "bucket {when}");
}

/// Abort points tried at once, each on a stack of its own: the runs wait on the realism
/// layer's AWS durations (a distribution deploying), not on the CPU.
const CRASH_RUNS_AT_ONCE: usize = 6;

#[tokio::test(flavor = "multi_thread")]
async fn an_up_killed_anywhere_converges_to_exactly_one_of_each() {
    let stack = TestStack::new("t-crash");
    let aws = Aws::new().await;
    let runtime = tokio::runtime::Handle::current();

    // How many write calls a whole `up` makes from nothing.
    let writes = stack.run(&["--output", "json", "up"]).expect(0).json()["api_calls"]["write"]
        .as_u64()
        .unwrap();
    assert!(writes >= 8, "{writes}");
    stack.run(&["down"]).expect(0);

    // Abort right after each write call AWS has carried out, before the tool could note it,
    // until a run makes fewer writes than the abort waits for. (The count varies from run to
    // run: the realism layer answers some calls "not yet" or with faults, which are retried.)
    // Abort point n runs on stack t-crash-<n>; points above the first run that completed are
    // not started.
    let next = std::sync::atomic::AtomicU64::new(1);
    let completed_at = std::sync::atomic::AtomicU64::new(u64::MAX);
    let abort_at = |n: u64| {
        let stack = TestStack::new(&format!("t-crash-{n}"));
        let n_text = n.to_string();
        let crashed = stack.run_env(&["up"], &[("PROVISION_FAULT_ABORT_AFTER_WRITES", &n_text)]);
        if crashed.code() == 0 {
            completed_at.fetch_min(n, std::sync::atomic::Ordering::SeqCst);
            stack.run(&["down"]).expect(0);
            return;
        }
        assert!(
            crashed
                .stderr()
                .contains(&format!("aborting after write call {n} ")),
            "run {n} ended otherwise than by the abort: {}",
            crashed.stderr()
        );
        stack.run(&["up"]).expect(0);
        runtime.block_on(assert_one_of_each(
            &aws,
            &stack,
            &format!("after an abort at write {n}"),
        ));
        stack.run(&["up", "--output", "json"]).expect(0);
        stack.run(&["down"]).expect(0);
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CRASH_RUNS_AT_ONCE)
            .map(|_| {
                scope.spawn(|| loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    // A dropped connection may make a write count twice; never many more.
                    if n > completed_at.load(std::sync::atomic::Ordering::SeqCst) || n > writes + 10
                    {
                        return;
                    }
                    abort_at(n);
                })
            })
            .collect();
        // And killed from outside at moments that fall between or inside calls, on the first
        // stack meanwhile.
        let kills = scope.spawn(|| {
            for delay_ms in [5, 20, 40, 80] {
                let mut child = stack.spawn_up(&[]);
                std::thread::sleep(Duration::from_millis(delay_ms));
                let _ = child.kill();
                let _ = child.wait();
                stack.run(&["up"]).expect(0);
                runtime.block_on(assert_one_of_each(
                    &aws,
                    &stack,
                    &format!("after a kill at {delay_ms} ms"),
                ));
            }
            stack.run(&["down"]).expect(0);
        });
        for worker in workers.into_iter().chain([kills]) {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let completed_at = completed_at.into_inner();
    assert!(
        completed_at <= writes + 10,
        "every abort point up to {} ended in the abort: more than the writes of a whole up ({writes})",
        writes + 10
    );
    assert!(
        completed_at > 8,
        "a whole up carried out only {} writes",
        completed_at - 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn down_removes_everything_and_a_second_down_does_nothing() {
    let stack = TestStack::new("t-down");
    stack.run(&["up"]).expect(0);
    let aws = Aws::new().await;
    assert_eq!(aws.distributions_of(&stack.name).await.len(), 1);

    let down = stack.run(&["--output", "json", "down"]).expect(0).json();
    assert_eq!(down["summary"]["deleted"], 6, "{down:#}");
    assert!(!aws.bucket_exists(&stack.bucket()).await);
    assert!(aws.distributions_of(&stack.name).await.is_empty());
    assert_eq!(aws.oacs_named(&stack.oac_name()).await, 0);
    assert_eq!(
        aws.headers_policies_named(&stack.headers_policy_name())
            .await,
        0
    );

    let again = stack.run(&["--output", "json", "down"]).expect(0).json();
    assert_eq!(again["summary"]["deleted"], 0);
    assert_eq!(again["api_calls"]["write"], 0, "{again:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn down_keeps_data_the_stack_did_not_put_there_unless_told() {
    let stack = TestStack::new("t-keep-data");
    stack.run(&["up"]).expect(0);
    let aws = Aws::new().await;
    aws.s3
        .put_object()
        .bucket(stack.bucket())
        .key("uploads/someone.txt")
        .body(b"user data".to_vec().into())
        .send()
        .await
        .unwrap();

    let refused = stack.run(&["down"]).expect(1);
    assert!(
        refused.stdout().contains("uploads/someone.txt"),
        "{}",
        refused.stdout()
    );
    assert!(refused.stdout().contains("--delete-data"));
    let kept = aws
        .s3
        .get_object()
        .bucket(stack.bucket())
        .key("uploads/someone.txt")
        .send()
        .await;
    assert!(kept.is_ok(), "the user's object is still there");

    stack.run(&["down", "--delete-data"]).expect(0);
    assert!(eventually(Duration::from_secs(5), || true));
    assert!(!aws.bucket_exists(&stack.bucket()).await);
}

/// The caller references of the distribution's invalidations, and their paths.
async fn invalidations(aws: &Aws, distribution: &str) -> Vec<(String, Vec<String>)> {
    let list = aws
        .cloudfront
        .list_invalidations()
        .distribution_id(distribution)
        .send()
        .await
        .unwrap();
    let mut found = Vec::new();
    for summary in list
        .invalidation_list()
        .map(|l| l.items())
        .unwrap_or_default()
    {
        let out = aws
            .cloudfront
            .get_invalidation()
            .distribution_id(distribution)
            .id(summary.id())
            .send()
            .await
            .unwrap();
        let batch = out.invalidation().unwrap().invalidation_batch().unwrap();
        let mut paths = batch.paths().unwrap().items().to_vec();
        paths.sort();
        found.push((batch.caller_reference().to_owned(), paths));
    }
    found
}

/// Content that goes back to an earlier version is invalidated again: CloudFront answers a
/// reused caller reference with the earlier invalidation and invalidates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn every_change_of_a_page_is_invalidated_even_back_to_an_earlier_version() {
    let stack = TestStack::new("t-inval-revert");
    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    let id = up["outputs"]["stt_site_distribution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = stack.dir.join("site/index.html");
    for version in ["<h1>v2</h1>", "<h1>v1</h1>", "<h1>v2</h1>"] {
        std::fs::write(&page, version).unwrap();
        stack.run(&["up"]).expect(0);
    }
    let aws = Aws::new().await;
    let made = invalidations(&aws, &id).await;
    let references: std::collections::BTreeSet<&String> = made.iter().map(|(r, _)| r).collect();
    assert_eq!(
        (made.len(), references.len()),
        (3, 3),
        "three changes, three invalidations: {made:?}"
    );
    stack.run(&["down"]).expect(0);
}

/// A run killed after it replaced a page but before it invalidated it: the next run sees the
/// pending invalidation and makes it.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_whose_invalidation_was_interrupted_is_invalidated_by_the_next_run() {
    let stack = TestStack::new("t-inval-crash");
    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    let id = up["outputs"]["stt_site_distribution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(stack.dir.join("site/index.html"), "<h1>v2</h1>").unwrap();
    let killed = stack.run_env(
        &["up"],
        &[("PROVISION_FAULT_ABORT_AFTER_OPERATION", "PutObject")],
    );
    assert_ne!(killed.code(), 0, "the run was aborted: {}", killed.stderr());
    let aws = Aws::new().await;
    assert!(invalidations(&aws, &id).await.is_empty());

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    let files = system_tests::line(&drift, "site_files/stt-site");
    assert!(
        files.to_string().contains("Invalidation"),
        "the pending invalidation is drift: {files:#}"
    );
    stack.run(&["up"]).expect(0);
    let made = invalidations(&aws, &id).await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        made[0].1,
        vec!["/*"],
        "which files changed is lost: all of them"
    );
    let again = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(again["api_calls"]["write"], 0, "{again:#}");
    assert_eq!(invalidations(&aws, &id).await.len(), 1);
    stack.run(&["down"]).expect(0);
}
