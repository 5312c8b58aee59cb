//! The video-on-demand system (console steps V1 to V8): a private source bucket whose new
//! videos `vod_convert` hands to MediaConvert, a private output bucket served by CloudFront
//! with origin access control (the tutorial's OAI is legacy) together with the player page,
//! CORS on the output bucket, and two roles allowed nothing beyond their own buckets.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::web;
use crate::engine::{Context, Resource, ResourceKey};
use crate::resources::bucket_cors::{self, BucketCors};
use crate::resources::bucket_notification::{self, BucketNotification};
use crate::resources::bucket_protection::Lifecycle;
use crate::resources::event_invoke_config::EventInvokeConfig;
use crate::resources::function::Function;
use crate::resources::lambda_permission::LambdaPermission;
use crate::resources::log_group::{lambda_log_group_name, LogGroup};
use crate::resources::queue::Queue;
use crate::resources::role::Role;
use crate::spec::{CorsOrigin, Vod};

pub const SOURCE_BUCKET: ResourceKey = ResourceKey::new("bucket", "vod-source");
pub const SOURCE_POLICY: ResourceKey = ResourceKey::new("bucket_policy", "vod-source");
pub const OUTPUT_BUCKET: ResourceKey = ResourceKey::new("bucket", "vod-output");
pub const OUTPUT_OAC: ResourceKey = ResourceKey::new("origin_access_control", "vod-output");
pub const OUTPUT_DISTRIBUTION: ResourceKey = ResourceKey::new("distribution", "vod-output");
pub const OUTPUT_POLICY: ResourceKey = ResourceKey::new("bucket_policy", "vod-output");
pub const OUTPUT_HEADERS: ResourceKey = ResourceKey::new("response_headers_policy", "vod-output");
pub const PLAYER_FILES: ResourceKey = ResourceKey::new("site_files", "vod-player");
pub const OUTPUT_CORS: ResourceKey = ResourceKey::new("bucket_cors", "vod-output");
pub const MEDIACONVERT_ROLE: ResourceKey = ResourceKey::new("role", "vod-mediaconvert");
pub const CONVERT_ROLE: ResourceKey = ResourceKey::new("role", "vod_convert");
pub const CONVERT_FUNCTION: ResourceKey = ResourceKey::new("function", "vod_convert");
pub const CONVERT_LOG_GROUP: ResourceKey = ResourceKey::new("log_group", "vod_convert");
pub const CONVERT_PERMISSION: ResourceKey =
    ResourceKey::new("lambda_permission", "vod-s3-vod_convert");
pub const SOURCE_NOTIFICATIONS: ResourceKey = ResourceKey::new("bucket_notification", "vod-source");

pub fn source_bucket_name(cx: &Context) -> String {
    format!("{}-vod-source-{}", cx.stack_name(), cx.aws.account_id)
}

pub fn output_bucket_name(cx: &Context) -> String {
    format!("{}-vod-output-{}", cx.stack_name(), cx.aws.account_id)
}

/// What the two roles' policies are scoped to.
pub struct Scope {
    pub region: String,
    pub account: String,
    pub function_name: String,
    pub source_bucket: String,
    pub output_bucket: String,
    pub mediaconvert_role_arn: String,
    /// The queue conversions that keep failing are sent to.
    pub failed_events: String,
}

pub const FAILED_EVENTS: ResourceKey = ResourceKey::new("queue", "vod-failed-events");

pub fn failed_events_queue_name(cx: &Context) -> String {
    format!("{}-vod-failed-events", cx.stack_name())
}

/// MediaConvert's role (V3): read the source videos, write the renditions. The tutorial
/// attached AmazonS3FullAccess and AmazonAPIGatewayInvokeFullAccess; the job needs neither.
pub fn mediaconvert_policy(scope: &Scope) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadSources", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": format!("arn:aws:s3:::{}/*", scope.source_bucket)},
            {"Sid": "WriteRenditions", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": format!("arn:aws:s3:::{}/*", scope.output_bucket)}
        ]
    })
}

/// The converter's role (V4): the tutorial's `VODLambdaPolicy` granted `mediaconvert:*` and
/// `s3:*` on everything; this is what `vod_convert` calls, on the stack's own resources.
/// What MediaConvert names as the source when it assumes the job role: a queue of this
/// account in this region. Its documentation's example pattern
/// (`arn:aws:mediaconvert:*:{account}:*`), narrowed to the stack's region.
pub fn mediaconvert_queues(scope: &Scope) -> String {
    format!("arn:aws:mediaconvert:{}:{}:*", scope.region, scope.account)
}

pub fn convert_policy(scope: &Scope) -> Value {
    let Scope {
        region, account, ..
    } = scope;
    let group = format!(
        "arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{}",
        scope.function_name
    );
    json!({
        "Version": "2012-10-17",
        "Statement": [
            // The stack makes the log group (with its retention) before the function: the
            // role writes to it and cannot create it.
            {"Sid": "OwnLogStreams", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": format!("{group}:*")},
            // Jobs go to the account's default queue, the only resource CreateJob needs here.
            {"Sid": "CreateJobs", "Effect": "Allow", "Action": "mediaconvert:CreateJob",
             "Resource": format!("arn:aws:mediaconvert:{region}:{account}:queues/Default")},
            {"Sid": "PassMediaConvertRole", "Effect": "Allow", "Action": "iam:PassRole",
             "Resource": scope.mediaconvert_role_arn,
             "Condition": {"StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}}},
            // The source video's settings file (`job.json`), if the uploader put one.
            {"Sid": "ReadSources", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": format!("arn:aws:s3:::{}/*", scope.source_bucket)},
            // Without it S3 answers a missing `job.json` with 403 instead of 404.
            {"Sid": "ListSources", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": format!("arn:aws:s3:::{}", scope.source_bucket)},
            // Lambda sends an upload whose conversion keeps failing there, with this role.
            {"Sid": "FailedEvents", "Effect": "Allow", "Action": "sqs:SendMessage",
             "Resource": scope.failed_events}
        ]
    })
}

fn scope(cx: &Context) -> Scope {
    Scope {
        region: cx.aws.region.clone(),
        account: cx.aws.account_id.clone(),
        function_name: format!("{}-vod_convert", cx.stack_name()),
        source_bucket: source_bucket_name(cx),
        output_bucket: output_bucket_name(cx),
        mediaconvert_role_arn: cx.output(&MEDIACONVERT_ROLE, "arn").unwrap_or_else(|| {
            format!(
                "arn:aws:iam::{}:role/{}-vod-mediaconvert",
                cx.aws.account_id,
                cx.stack_name()
            )
        }),
        failed_events: format!(
            "arn:aws:sqs:{}:{}:{}",
            cx.aws.region,
            cx.aws.account_id,
            failed_events_queue_name(cx)
        ),
    }
}

/// The environment of `vod_convert`, named as in the tutorial.
pub fn environment(cx: &Context, vod: &Vod) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("DestinationBucket".into(), output_bucket_name(cx));
    env.insert("MediaConvertRole".into(), scope(cx).mediaconvert_role_arn);
    env.insert("Application".into(), vod.function.application.clone());
    env.insert(
        "VideoSuffixes".into(),
        vod.function
            .video_suffixes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
    );
    env.insert("RUST_LOG".into(), "info".into());
    if cx.aws.local {
        if let Some(endpoint) = &cx.aws.endpoint {
            // The emulator passes no endpoint to the functions it runs.
            env.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
        }
    }
    env
}

/// What CloudFront does about CORS. The player is served by the same distribution as the
/// videos: its requests are same-origin and need nothing. Origins named in `stack.yaml` serve
/// players of their own, and need the bucket's answer (or CloudFront's, for any origin).
fn cors_mode(origins: &[CorsOrigin]) -> Option<web::Cors> {
    if origins.iter().any(|o| o.as_str() == "*") {
        Some(web::Cors::AnyOrigin)
    } else if origins.is_empty() {
        None
    } else {
        Some(web::Cors::NamedOrigins)
    }
}

pub fn resources(cx: &Context, vod: &Vod) -> Vec<Arc<dyn Resource>> {
    let stack = cx.stack_name().to_owned();
    let source = source_bucket_name(cx);
    let mut resources = web::data_bucket(
        cx,
        SOURCE_BUCKET,
        SOURCE_POLICY,
        source.clone(),
        vod.source_retention_days.map(|d| d.0),
    );
    resources.extend(web::served_bucket(
        cx,
        web::ServedBucket {
            label: "vod-output",
            bucket: OUTPUT_BUCKET,
            oac: OUTPUT_OAC,
            distribution: OUTPUT_DISTRIBUTION,
            headers_policy: OUTPUT_HEADERS,
            // hls.js plays through Media Source Extensions (a `blob:` URL on the video) and
            // demuxes in a worker it starts from a `blob:` URL.
            content_security_policy: web::content_security_policy(&[
                ("media-src", "'self'"),
                ("media-src", "blob:"),
                ("worker-src", "'self'"),
                ("worker-src", "blob:"),
            ]),
            policy: OUTPUT_POLICY,
            files: PLAYER_FILES,
            bucket_name: output_bucket_name(cx),
            static_website: None,
            settings: vod.player.distribution.clone(),
            source_dir: cx.stack.base_dir.join(&vod.player.source_dir),
            // The npm project that brings hls.js; `make web` copies it into vendor/.
            exclude: vec![
                "node_modules",
                "package.json",
                "package-lock.json",
                "copy-vendor.mjs",
            ],
            generated: vec![],
            // The converted videos are data too: unfinished multipart writes go after a day,
            // the videos when `output_retention_days` says.
            lifecycle: Some(Lifecycle::data(vod.output_retention_days.map(|d| d.0))),
            cors: cors_mode(&vod.cors.allowed_origins),
        },
    ));
    let cors = &vod.cors;
    resources.push(Arc::new(BucketCors {
        key: OUTPUT_CORS,
        bucket: OUTPUT_BUCKET,
        bucket_name: output_bucket_name(cx),
        rule: bucket_cors::Rule {
            allowed_origins: cors
                .allowed_origins
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
            allowed_methods: cors
                .allowed_methods
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            allowed_headers: cors.allowed_headers.clone(),
            max_age_seconds: cors.max_age_s.0,
        },
        own_origin: Some(OUTPUT_DISTRIBUTION),
    }));
    resources.push(Arc::new(Role {
        key: MEDIACONVERT_ROLE,
        name: format!("{stack}-vod-mediaconvert"),
        service: "mediaconvert.amazonaws.com",
        // MediaConvert assumes the role for a job of one of the account's queues; its
        // confused-deputy guidance: the queue's ARN in aws:SourceArn, the account in
        // aws:SourceAccount.
        source_arn: Some(Box::new(|cx| mediaconvert_queues(&scope(cx)))),
        inputs: vec![],
        outlives: vec![],
        policy: Box::new(|cx| mediaconvert_policy(&scope(cx))),
    }));
    resources.push(Arc::new(Role {
        key: CONVERT_ROLE,
        name: format!("{stack}-vod_convert"),
        service: "lambda.amazonaws.com",
        source_arn: None,
        inputs: vec![MEDIACONVERT_ROLE],
        outlives: vec![],
        policy: Box::new(|cx| convert_policy(&scope(cx))),
    }));
    let f = &vod.function;
    let spec = vod.clone();
    resources.push(Arc::new(LogGroup {
        key: CONVERT_LOG_GROUP,
        name: lambda_log_group_name(&format!("{stack}-vod_convert")),
        retention_days: f.log_retention_days.0,
    }));
    resources.push(Arc::new(Function {
        key: CONVERT_FUNCTION,
        name: format!("{stack}-vod_convert"),
        role: CONVERT_ROLE,
        zip: cx
            .stack
            .base_dir
            .join(&f.zips_dir)
            .join("vod_convert/bootstrap.zip"),
        memory_mb: f.settings.memory_mb.0,
        timeout_s: f.settings.timeout_s.0,
        ephemeral_storage_mb: f.settings.ephemeral_storage_mb.0,
        reserved_concurrency: f.settings.reserved_concurrency.flatten().map(|c| c.0),
        concurrency_key: "vod.function.settings.reserved_concurrency".into(),
        network: None,
        // The log group exists before the first invocation writes to it.
        inputs: vec![MEDIACONVERT_ROLE, OUTPUT_BUCKET, CONVERT_LOG_GROUP],
        environment: Box::new(move |cx| environment(cx, &spec)),
    }));
    let source_arn = format!("arn:aws:s3:::{source}");
    resources.push(Arc::new(LambdaPermission {
        key: CONVERT_PERMISSION,
        function: CONVERT_FUNCTION,
        function_name: format!("{stack}-vod_convert"),
        statement_id: "s3-vod-source".into(),
        principal: "s3.amazonaws.com",
        source_arn: Box::new(move |_| Some(source_arn.clone())),
        source_account: true,
        inputs: vec![SOURCE_BUCKET],
    }));
    resources.push(Arc::new(Queue {
        key: FAILED_EVENTS,
        name: failed_events_queue_name(cx),
    }));
    resources.push(Arc::new(EventInvokeConfig {
        key: ResourceKey::new("event_invoke_config", "vod_convert"),
        function: CONVERT_FUNCTION,
        function_name: format!("{stack}-vod_convert"),
        destination: FAILED_EVENTS,
        maximum_retry_attempts: f.async_invocation.maximum_retry_attempts.0,
        maximum_event_age_s: f.async_invocation.maximum_event_age_s.0,
    }));
    resources.push(Arc::new(BucketNotification {
        key: SOURCE_NOTIFICATIONS,
        bucket: SOURCE_BUCKET,
        bucket_name: source,
        // Every new object: S3's suffix filters are literal and case-sensitive, so
        // `IMG_0001.MOV` would never match `.mov`. vod_convert picks the videos by
        // `VideoSuffixes`, in any case, and skips the rest (a `job.json` settings file).
        rules: vec![bucket_notification::Rule {
            id: "convert-uploads".into(),
            function: CONVERT_FUNCTION,
            prefix: String::new(),
            suffix: String::new(),
        }],
        permissions: vec![CONVERT_PERMISSION],
    }));
    resources
}

pub fn outputs(cx: &Context, out: &mut BTreeMap<&'static str, String>) {
    if let Some(name) = cx.output(&SOURCE_BUCKET, "name") {
        out.insert("vod_source_bucket", name);
    }
    if let Some(name) = cx.output(&OUTPUT_BUCKET, "name") {
        out.insert("vod_output_bucket", name);
    }
    if let Some(url) = web::served_url(cx, &OUTPUT_DISTRIBUTION) {
        out.insert("vod_player_url", url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::strings as list;

    #[test]
    fn only_named_origins_make_cloudfront_handle_cors() {
        let origin = |s: &str| CorsOrigin(s.into());
        assert_eq!(cors_mode(&[]), None);
        assert_eq!(cors_mode(&[origin("*")]), Some(web::Cors::AnyOrigin));
        assert_eq!(
            cors_mode(&[origin("https://player.example")]),
            Some(web::Cors::NamedOrigins)
        );
    }

    fn scope() -> Scope {
        Scope {
            region: "us-east-1".into(),
            account: "111122223333".into(),
            function_name: "demo-vod_convert".into(),
            source_bucket: "demo-vod-source-111122223333".into(),
            output_bucket: "demo-vod-output-111122223333".into(),
            mediaconvert_role_arn: "arn:aws:iam::111122223333:role/demo-vod-mediaconvert".into(),
            failed_events: "arn:aws:sqs:us-east-1:111122223333:demo-vod-failed-events".into(),
        }
    }

    #[test]
    fn mediaconvert_reads_the_source_and_writes_the_output_only() {
        let doc = mediaconvert_policy(&scope());
        let grants: Vec<(Vec<String>, Vec<String>)> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (list(&s["Action"]), list(&s["Resource"])))
            .collect();
        assert_eq!(
            grants,
            vec![
                (
                    vec!["s3:GetObject".into()],
                    vec!["arn:aws:s3:::demo-vod-source-111122223333/*".into()]
                ),
                (
                    vec!["s3:PutObject".into()],
                    vec!["arn:aws:s3:::demo-vod-output-111122223333/*".into()]
                ),
            ]
        );
    }

    #[test]
    fn mediaconvert_may_assume_its_role_only_for_this_accounts_queues() {
        assert_eq!(
            mediaconvert_queues(&scope()),
            "arn:aws:mediaconvert:us-east-1:111122223333:*"
        );
    }

    #[test]
    fn the_converter_passes_exactly_the_mediaconvert_role_to_mediaconvert() {
        let doc = convert_policy(&scope());
        let statements = doc["Statement"].as_array().unwrap();
        for s in statements {
            for action in list(&s["Action"]) {
                assert!(!action.ends_with(":*") && action != "*", "{s}");
            }
            for resource in list(&s["Resource"]) {
                assert_ne!(resource, "*", "{s}");
            }
        }
        let pass = statements
            .iter()
            .find(|s| s["Action"] == "iam:PassRole")
            .unwrap();
        assert_eq!(
            pass["Resource"],
            "arn:aws:iam::111122223333:role/demo-vod-mediaconvert"
        );
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            "mediaconvert.amazonaws.com"
        );
        let s3: Vec<String> = statements
            .iter()
            .filter(|s| list(&s["Action"]).iter().any(|a| a.starts_with("s3:")))
            .flat_map(|s| list(&s["Action"]))
            .collect();
        assert_eq!(s3, vec!["s3:GetObject", "s3:ListBucket"]);
        let logs: Vec<String> = statements
            .iter()
            .flat_map(|s| list(&s["Action"]))
            .filter(|a| a.starts_with("logs:"))
            .collect();
        assert_eq!(logs, vec!["logs:CreateLogStream", "logs:PutLogEvents"]);
    }

    #[test]
    fn the_converter_waits_for_its_log_group() {
        let cx = crate::systems::tests::context(false);
        let vod = cx.stack.vod.clone().unwrap();
        let all = resources(&cx, &vod);
        let convert = all.iter().find(|r| r.key() == CONVERT_FUNCTION).unwrap();
        assert!(convert.depends_on().contains(&CONVERT_LOG_GROUP));
        assert!(all.iter().any(|r| r.key() == CONVERT_LOG_GROUP));
    }
}
