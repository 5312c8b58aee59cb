//! What an anonymous caller can make the stack spend, on the local target: the upload API's
//! stage throttles every method and `file_upload` and `audio_transcribe` have reserved
//! concurrency, as `stack.yaml` declares; limits raised (or added) by hand are drift and `up`
//! puts them back; a reservation removed from `stack.yaml` is removed; a throttled request is
//! answered 429 with the CORS headers the page needs. Needs the zips (`make zips`).

use system_tests::{line, root, Aws, Emulator, TestStack};

/// The `*/*` throttling of the stack's upload API stage: (rate, burst).
async fn stage_throttling(aws: &Aws, name: &str) -> Option<(f64, i32)> {
    let apis = aws
        .apigateway
        .get_rest_apis()
        .limit(500)
        .send()
        .await
        .unwrap();
    let api = apis
        .items()
        .iter()
        .find(|a| a.name() == Some(format!("{name}-file-upload-api").as_str()))
        .expect("the upload API");
    let stage = aws
        .apigateway
        .get_stage()
        .rest_api_id(api.id().unwrap())
        .stage_name("prod")
        .send()
        .await
        .unwrap();
    let all = stage.method_settings()?.get("*/*")?;
    Some((all.throttling_rate_limit(), all.throttling_burst_limit()))
}

async fn reserved(aws: &Aws, name: &str, function: &str) -> Option<i32> {
    aws.lambda
        .get_function_concurrency()
        .function_name(format!("{name}-{function}"))
        .send()
        .await
        .unwrap()
        .reserved_concurrent_executions()
}

/// The fields a drift report names for one resource.
fn fields(report: &serde_json::Value, resource: &str) -> Vec<String> {
    line(report, resource)["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_reserved_concurrency_are_declared_checked_and_repaired() {
    let zips = root().join("target/lambda");
    assert!(
        zips.join("file_upload/bootstrap.zip").exists(),
        "build the zips first: make zips"
    );
    let name = "lim-limits";
    // file_upload's reservation and the API's limits written; audio_transcribe keeps its
    // default (5); save_text has none.
    let stt = format!(
        "  network:\n    cidr: 10.61.0.0/16\n  database:\n    database_name: lim_limits\n  functions:\n    zips_dir: {}\n    mail_from: limits@example.com\n    allowed_origin: https://upload.example\n    file_upload:\n      memory_mb: 256\n      timeout_s: 30\n      reserved_concurrency: 3\n    api_throttling: {{rate_per_s: 7, burst: 14}}\n",
        zips.display()
    );
    let stack = TestStack::build(name, Emulator::Ministack, &stt);
    let aws = Aws::new().await;

    stack.run(&["--output", "json", "up"]).expect(0);
    assert_eq!(stage_throttling(&aws, name).await, Some((7.0, 14)));
    assert_eq!(reserved(&aws, name, "file_upload").await, Some(3));
    assert_eq!(reserved(&aws, name, "audio_transcribe").await, Some(5));
    assert_eq!(reserved(&aws, name, "save_text").await, None);

    // Converged: nothing written again.
    let second = stack.run(&["--output", "json", "up"]).expect(0).json();
    assert_eq!(second["api_calls"]["write"], 0, "{second:#}");
    let api_url = second["outputs"]["stt_api_url"]
        .as_str()
        .unwrap()
        .to_owned();

    // By hand: the stage's rate raised to API Gateway's account default, audio_transcribe's
    // ceiling raised, and a reservation put on save_text.
    let apis = aws.apigateway.get_rest_apis().send().await.unwrap();
    let api_id = apis
        .items()
        .iter()
        .find(|a| a.name() == Some(format!("{name}-file-upload-api").as_str()))
        .and_then(|a| a.id())
        .unwrap()
        .to_owned();
    aws.apigateway
        .update_stage()
        .rest_api_id(&api_id)
        .stage_name("prod")
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/*/*/throttling/rateLimit")
                .value("10000")
                .build(),
        )
        .send()
        .await
        .unwrap();
    for (function, value) in [("audio_transcribe", 50), ("save_text", 2)] {
        aws.lambda
            .put_function_concurrency()
            .function_name(format!("{name}-{function}"))
            .reserved_concurrent_executions(value)
            .send()
            .await
            .unwrap();
    }

    let drift = stack.run(&["--output", "json", "drift"]).expect(2).json();
    assert_eq!(
        fields(&drift, "rest_api/stt-upload"),
        ["Stages.prod.MethodSettings.*/*.ThrottlingRateLimit"],
        "{drift:#}"
    );
    for function in ["audio_transcribe", "save_text"] {
        assert_eq!(
            fields(&drift, &format!("function/{function}")),
            ["ReservedConcurrentExecutions"],
            "{drift:#}"
        );
    }
    let transcribe = &line(&drift, "function/audio_transcribe")["changes"][0];
    assert_eq!(
        (
            transcribe["expected"].as_str(),
            transcribe["actual"].as_str()
        ),
        (Some("5"), Some("50")),
        "{drift:#}"
    );

    stack.run(&["up"]).expect(0);
    stack.run(&["drift"]).expect(0);
    assert_eq!(stage_throttling(&aws, name).await, Some((7.0, 14)));
    assert_eq!(reserved(&aws, name, "audio_transcribe").await, Some(5));
    assert_eq!(reserved(&aws, name, "save_text").await, None);

    // Removed from stack.yaml (`null`): the reservation goes. And a stage that takes one
    // request per hundred seconds answers the second at once with 429, CORS headers included
    // (the preflight is answered by API Gateway itself: no function runs).
    stack.edit(
        "      reserved_concurrency: 3\n    api_throttling: {rate_per_s: 7, burst: 14}",
        "      reserved_concurrency: null\n    api_throttling: {rate_per_s: 0.01, burst: 1}",
    );
    stack.run(&["up"]).expect(0);
    assert_eq!(reserved(&aws, name, "file_upload").await, None);
    assert_eq!(stage_throttling(&aws, name).await, Some((0.01, 1)));
    let statuses: Vec<(u16, bool)> = (0..3)
        .map(|_| {
            let (status, headers, _) = system_tests::http_request(
                "OPTIONS",
                &api_url,
                &[("Origin", "https://upload.example")],
                b"",
            );
            let cors = headers
                .iter()
                .any(|(k, v)| k == "access-control-allow-origin" && v == "https://upload.example");
            (status, cors)
        })
        .collect();
    assert!(statuses.contains(&(429, true)), "{statuses:?}");
    stack.run(&["drift"]).expect(0);

    stack
        .run(&["down", "--delete-data", "--skip-final-snapshot"])
        .expect(0);
    aws.purge_snapshots(&format!("{name}-db")).await;
}
