//! The video-on-demand system (console steps V1 to V8) on the local target, next to the
//! speech-to-text site: created by `up`, left alone by a second `up`, settings changed by hand
//! (a CORS rule, a bucket's retention rule, a bucket's object ownership) found as drift and
//! repaired, the player page playing an HLS rendition in headless Chromium, `--only` acting on
//! one system, and `down` keeping the videos unless told. A phone's `IMG_0001.MOV` in the
//! source bucket starts a MediaConvert job through the realism proxy, with IAM simulated: the
//! converter may create it and pass the job's role, the job's role may read the source and
//! write the renditions, and every statement of both roles is one the run needed (the
//! mutation check, `system_tests::least_privilege`).
//! Needs the zips (`make zips`), the player's hls.js (`make web`), the browser driver
//! (`make browser-deps`) and ffmpeg (`make test-tools`); `make test` does all of it.

use std::time::Duration;

use system_tests::{
    browser_script, eventually, http_get, least_privilege, line, root, Aws, Emulator, Realism,
    TestStack,
};

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("jpg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// A bucket's object ownership, default encryption, and the stack's lifecycle rule
/// (expiration days, abort-incomplete-upload days), as S3 answers them.
struct Protection {
    ownership: Option<String>,
    sse: Option<String>,
    rule: Option<(Option<i32>, Option<i32>)>,
}

async fn protection(aws: &Aws, bucket: &str) -> Protection {
    let ownership = aws
        .s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.ownership_controls()
                .and_then(|c| c.rules().first())
                .map(|r| r.object_ownership().as_str().to_owned())
        });
    let sse = aws
        .s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_owned())
        });
    let rule = aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|o| {
            o.rules()
                .iter()
                .find(|r| r.id() == Some("provision-retention"))
                .map(|r| {
                    (
                        r.expiration().and_then(|e| e.days()),
                        r.abort_incomplete_multipart_upload()
                            .and_then(|a| a.days_after_initiation()),
                    )
                })
        });
    Protection {
        ownership,
        sse,
        rule,
    }
}

fn retention_rule(id: &str, days: i32) -> aws_sdk_s3::types::LifecycleRule {
    use aws_sdk_s3::types::{
        AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter,
    };
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(1)
                .build(),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn video_on_demand_next_to_the_speech_to_text_site() {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("vod_convert/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    assert!(
        root().join("site/vod/vendor/hls.min.js").exists(),
        "build the player first: make web"
    );
    let name = "t-vod";
    let sections = format!(
        "stt:\n  website:\n    source_dir: site\nvod:\n  player:\n    source_dir: {}\n  function:\n    zips_dir: {}\n",
        root().join("site/vod").display(),
        zips.display()
    );
    let stack = TestStack::with_sections(name, Emulator::Ministack, &sections);
    let aws = Aws::new().await;
    let realism = Realism::on(Emulator::Ministack);
    let since = realism.last_seq();
    let output_bucket = format!("{name}-vod-output-000000000000");
    let source_bucket = format!("{name}-vod-source-000000000000");

    let up = stack.run(&["--output", "json", "up"]).expect(0).json();
    for resource in [
        "bucket/vod-source",
        "bucket/vod-output",
        "distribution/vod-output",
        "bucket_cors/vod-output",
        "role/vod-mediaconvert",
        "role/vod_convert",
        "function/vod_convert",
        "bucket_notification/vod-source",
        "site_files/vod-player",
        "site_files/stt-site",
    ] {
        // Made by this `up` (kinds that live inside a bucket report "update").
        let result = line(&up, resource)["result"].as_str().unwrap_or_default();
        assert!(matches!(result, "create" | "update"), "{resource}: {up:#}");
    }
    let player_url = up["outputs"]["vod_player_url"]
        .as_str()
        .expect("player URL in outputs")
        .to_owned();

    // The converter's environment, as the tutorial names it.
    let convert = aws
        .lambda
        .get_function_configuration()
        .function_name(format!("{name}-vod_convert"))
        .send()
        .await
        .unwrap();
    let env = convert.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(env["DestinationBucket"], output_bucket);
    assert_eq!(
        env["MediaConvertRole"],
        format!("arn:aws:iam::000000000000:role/{name}-vod-mediaconvert")
    );
    assert_eq!(env["Application"], "VOD");
    // Only the player's files, not the npm project around it.
    let listed = aws
        .s3
        .list_objects_v2()
        .bucket(&output_bucket)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    keys.sort();
    assert!(keys.contains(&"vendor/hls.min.js"), "{keys:?}");
    assert!(keys.contains(&"index.html"), "{keys:?}");
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("node_modules") || k.starts_with("package")),
        "{keys:?}"
    );

    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");

    // By default the videos' CORS rule allows GET and HEAD from the player's own origin only.
    let player_origin = player_url.trim_end_matches('/').to_owned();
    let cors_rules = aws
        .s3
        .get_bucket_cors()
        .bucket(&output_bucket)
        .send()
        .await
        .unwrap();
    let rule = &cors_rules.cors_rules()[0];
    assert_eq!(rule.allowed_origins(), std::slice::from_ref(&player_origin));
    let mut methods = rule.allowed_methods().to_vec();
    methods.sort();
    assert_eq!(methods, ["GET", "HEAD"]);

    // A CORS rule changed by hand is drift; `up` puts it back.
    aws.s3
        .put_bucket_cors()
        .bucket(&output_bucket)
        .cors_configuration(
            aws_sdk_s3::types::CorsConfiguration::builder()
                .cors_rules(
                    aws_sdk_s3::types::CorsRule::builder()
                        .allowed_origins(&player_origin)
                        .allowed_methods("GET")
                        .allowed_methods("HEAD")
                        .allowed_methods("DELETE")
                        .allowed_headers("*")
                        .max_age_seconds(3000)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // Both buckets are protected as declared: ACLs off, encrypted, and a retention rule (the
    // sources 30 days by default, the videos kept; unfinished uploads one day on both).
    for (bucket, expiration) in [(&source_bucket, Some(30)), (&output_bucket, None)] {
        let p = protection(&aws, bucket).await;
        assert_eq!(
            p.ownership.as_deref(),
            Some("BucketOwnerEnforced"),
            "{bucket}"
        );
        assert_eq!(p.sse.as_deref(), Some("AES256"), "{bucket}");
        assert_eq!(p.rule, Some((expiration, Some(1))), "{bucket}");
    }
    // By hand: the sources kept a year, a rule of the operator's own added, ACLs turned on.
    let mut rules = vec![retention_rule("provision-retention", 365)];
    rules.push(retention_rule("operator-archive", 400));
    aws.s3
        .put_bucket_lifecycle_configuration()
        .bucket(&source_bucket)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    aws.s3
        .put_bucket_ownership_controls()
        .bucket(&output_bucket)
        .ownership_controls(
            aws_sdk_s3::types::OwnershipControls::builder()
                .rules(
                    aws_sdk_s3::types::OwnershipControlsRule::builder()
                        .object_ownership(aws_sdk_s3::types::ObjectOwnership::ObjectWriter)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    let fields = |resource: &str| -> Vec<String> {
        line(&drift, resource)["changes"]
            .as_array()
            .map(|c| {
                c.iter()
                    .map(|c| c["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        fields("bucket/vod-source"),
        ["Lifecycle.provision-retention.ExpirationDays"],
        "{drift:#}"
    );
    assert_eq!(
        fields("bucket/vod-output"),
        ["OwnershipControls.ObjectOwnership"],
        "{drift:#}"
    );
    let cors = &line(&drift, "bucket_cors/vod-output");
    assert_eq!(
        cors["changes"][0]["field"], "CORSRules.AllowedMethods",
        "{drift:#}"
    );
    assert!(
        cors["changes"][0]["actual"]
            .as_str()
            .unwrap()
            .contains("DELETE"),
        "{drift:#}"
    );
    assert_eq!(line(&drift, "site_files/stt-site")["result"], "noop");
    stack.run(&["up"]).expect(0);
    stack.run(&["drift"]).expect(0);
    // Repaired, and the operator's own rule is still there.
    assert_eq!(
        protection(&aws, &source_bucket).await.rule,
        Some((Some(30), Some(1)))
    );
    let rules = aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&source_bucket)
        .send()
        .await
        .unwrap();
    assert!(
        rules
            .rules()
            .iter()
            .any(|r| r.id() == Some("operator-archive")),
        "{rules:?}"
    );

    // A phone's video, its suffix in capitals (S3's suffix rules are literal): converted.
    let uploaded = realism.last_seq();
    aws.s3
        .put_object()
        .bucket(&source_bucket)
        .key("IMG_0001.MOV")
        .content_type("video/quicktime")
        .body(b"a QuickTime movie".to_vec().into())
        .send()
        .await
        .unwrap();
    let convert_name = format!("{name}-vod_convert");
    // The first CreateJob the layer did not answer with an injected fault (the handler's SDK
    // retries those).
    let jobs = || {
        realism
            .calls(uploaded, "service=mediaconvert&operation=CreateJob")
            .into_iter()
            .filter(|c| c["iam"]["function"] == convert_name.as_str())
            .filter(|c| {
                !c["verdict"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("fault:")
            })
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(60), || !jobs().is_empty()),
        "no CreateJob by {convert_name}"
    );
    let job = &jobs()[0];
    assert_eq!(job["verdict"], "answered:mediaconvert", "{job:#}");
    assert_eq!(job["status"], 201, "{job:#}");
    let authz = job["iam"]["authorizations"].as_array().unwrap();
    // An authorization names its role where it is not the caller's (the job's role).
    let role_of = |a: &serde_json::Value| {
        a.get("role")
            .unwrap_or(&job["iam"]["role"])
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let decision = |action: &str, role: &str| {
        authz
            .iter()
            .filter(|a| a["action"] == action && role_of(a) == role)
            .map(|a| a["decision"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let convert_role = convert_name.clone();
    let job_role = format!("{name}-vod-mediaconvert");
    assert_eq!(
        decision("mediaconvert:CreateJob", &convert_role),
        ["Allowed"],
        "{job:#}"
    );
    assert_eq!(
        decision("iam:PassRole", &convert_role),
        ["Allowed"],
        "{job:#}"
    );
    assert_eq!(decision("s3:GetObject", &job_role), ["Allowed"], "{job:#}");
    assert!(
        !decision("s3:PutObject", &job_role).is_empty()
            && decision("s3:PutObject", &job_role)
                .iter()
                .all(|d| d == "Allowed"),
        "{job:#}"
    );
    let input = authz
        .iter()
        .find(|a| a["action"] == "s3:GetObject" && role_of(a) == job_role)
        .unwrap();
    assert_eq!(
        input["resource"],
        format!("arn:aws:s3:::{source_bucket}/IMG_0001.MOV")
    );
    let denied = realism.calls(since, "verdict=denied");
    assert!(denied.is_empty(), "denied: {denied:#?}");

    // The mutation check: every statement of both roles is needed by what this run did.
    let report =
        least_privilege::check_roles(&aws, &realism, &[convert_role, job_role], since).await;
    println!(
        "mutation check, video-on-demand roles: {}",
        report.summary()
    );
    for outcome in &report.outcomes {
        println!("  {outcome}");
    }
    assert!(report.problems.is_empty(), "{:#?}", report.problems);

    // An HLS rendition where MediaConvert would have written it, played by the page.
    let hls_dir = stack.dir.join("hls");
    let status = std::process::Command::new(root().join("tests/browser/make-hls.sh"))
        .arg(&hls_dir)
        .arg("sample")
        .status()
        .expect("run make-hls.sh (needs ffmpeg: make test-tools)");
    assert!(status.success());
    let rendition = hls_dir.join("sample/hls");
    for entry in std::fs::read_dir(&rendition).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        aws.s3
            .put_object()
            .bucket(&output_bucket)
            .key(format!("sample/hls/{file}"))
            .content_type(content_type(&file))
            .body(std::fs::read(&path).unwrap().into())
            .send()
            .await
            .unwrap();
    }
    let (status, manifest) = http_get(&format!("{player_url}sample/hls/sample.m3u8"));
    assert_eq!(status, 200, "{manifest}");
    assert!(manifest.starts_with("#EXTM3U"), "{manifest}");
    // A page of another origin is not let read the stream: by default only the player's own
    // origin is (`vod.cors.allowed_origins` names others).
    let (status, headers, _) = system_tests::http_request(
        "GET",
        &format!("{player_url}sample/hls/sample.m3u8"),
        &[("Origin", "http://player.example")],
        &[],
    );
    assert_eq!(status, 200);
    let allow_origin = headers
        .iter()
        .find(|(k, _)| k == "access-control-allow-origin")
        .map(|(_, v)| v.as_str());
    assert_eq!(allow_origin, None, "{headers:?}");
    let play = browser_script("vod-play.mjs", &["--url", &player_url, "--video", "sample"]);
    assert_eq!(play.code(), 0, "{}\n{}", play.stdout(), play.stderr());
    // hls.js played under the player's policy (a refusal would have failed the script).
    let played = play.json();
    assert!(
        played["contentSecurityPolicy"]
            .as_str()
            .is_some_and(|csp| csp.contains("media-src 'self' blob:")),
        "{played:#}"
    );
    assert!(root().join("tests/artifacts/vod-play.png").exists());

    // `--only vod` leaves the speech-to-text site alone, and keeps the videos without consent.
    let refused = stack.run(&["--only", "vod", "down"]);
    assert_eq!(refused.code(), 1, "{}", refused.stdout());
    assert!(
        refused.stdout().contains(&output_bucket),
        "{}",
        refused.stdout()
    );
    assert!(aws.bucket_exists(&output_bucket).await);
    stack
        .run(&["--only", "vod", "down", "--delete-data"])
        .expect(0);
    for bucket in [&output_bucket, &source_bucket] {
        assert!(!aws.bucket_exists(bucket).await, "{bucket} left");
    }
    assert!(
        aws.bucket_exists(&stack.bucket()).await,
        "the STT site went too"
    );
    let stt = stack
        .run(&["--output", "json", "--only", "stt", "drift"])
        .expect(0)
        .json();
    assert!(stt["resources"].as_array().unwrap().len() >= 5, "{stt:#}");
    stack.run(&["down", "--delete-data"]).expect(0);
    assert!(!aws.bucket_exists(&stack.bucket()).await);
}
