//! The speech-to-text functions and their wiring (console steps S8 to S14, S17, S22 to S29):
//! the audio bucket, one role per function allowed exactly what its handler does on the
//! stack's own resources, the functions, the upload API, the bucket's notifications, the
//! Transcribe rule, and the permissions that let each trigger invoke its function.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::Digest;

use super::stt::{subnet_key, DATABASE, FUNCTIONS_SG, SITE_DISTRIBUTION};
use crate::engine::{Context, Resource, ResourceKey};
use crate::resources::bucket_cors::{self, BucketCors};
use crate::resources::bucket_notification::{self, BucketNotification};
use crate::resources::email_identity::EmailIdentity;
use crate::resources::event_invoke_config::EventInvokeConfig;
use crate::resources::event_rule::{self, EventRule};
use crate::resources::function::{self, Function};
use crate::resources::lambda_permission::LambdaPermission;
use crate::resources::log_group::{lambda_log_group_name, LogGroup};
use crate::resources::queue::Queue;
use crate::resources::rest_api::{RestApi, Route, Throttling};
use crate::resources::role::Role;
use crate::resources::schema_migration::SchemaMigration;
use crate::resources::secret::Secret;
use crate::resources::site_files::GeneratedFile;
use crate::spec::{FunctionSettings, Functions};

pub const AUDIO_BUCKET: ResourceKey = ResourceKey::new("bucket", "stt-audio");
pub const AUDIO_BUCKET_POLICY: ResourceKey = ResourceKey::new("bucket_policy", "stt-audio");
pub const SCHEMA: ResourceKey = ResourceKey::new("schema_migration", "stt");
/// The database application user's credentials, written by `db_migrate`.
pub const APP_SECRET: ResourceKey = ResourceKey::new("secret", "stt-db-app");
pub const MAIL_IDENTITY: ResourceKey = ResourceKey::new("email_identity", "stt-mail-from");
pub const UPLOAD_API: ResourceKey = ResourceKey::new("rest_api", "stt-upload");
pub const AUDIO_NOTIFICATIONS: ResourceKey = ResourceKey::new("bucket_notification", "stt-audio");
pub const TRANSCRIBE_RULE: ResourceKey = ResourceKey::new("event_rule", "stt-transcribe-state");

/// The API's path and stage (console steps S12, S14).
pub const UPLOAD_PATH: &str = "file-upload";
pub const UPLOAD_STAGE: &str = "prod";
/// Where the confirmation page posts a link's token (to `send_email`).
pub const CONFIRM_PATH: &str = "confirm";
/// Where the upload page reads an upload's state, completes or gives it up (`file_upload`).
pub const STATUS_PATH: &str = "upload-status";
/// The audio bucket's CORS rule: the page sends the file there itself.
pub const AUDIO_CORS: ResourceKey = ResourceKey::new("bucket_cors", "stt-audio");

/// Suffixes of the audio keys file_upload writes: it names each file after the format it
/// detected (mp3, wav, flac, ogg, m4a, mp4, webm, amr), always in lower case. The console
/// build had only `.mp3`; one rule per format keeps the rules from overlapping.
pub const AUDIO_SUFFIXES: [&str; 8] = [
    ".mp3", ".wav", ".flac", ".ogg", ".m4a", ".mp4", ".webm", ".amr",
];

/// The five functions, by the name of their binary (and zip).
pub const FUNCTIONS: [&str; 5] = [
    "file_upload",
    "audio_transcribe",
    "save_text",
    "send_email",
    "db_migrate",
];

pub fn audio_bucket_name(cx: &Context) -> String {
    format!("{}-audio-{}", cx.stack_name(), cx.aws.account_id)
}

pub fn function_name(cx: &Context, function: &str) -> String {
    format!("{}-{function}", cx.stack_name())
}

fn permission_key(name: &'static str) -> ResourceKey {
    ResourceKey::new("lambda_permission", name)
}

pub fn role_key(function: &'static str) -> ResourceKey {
    ResourceKey::new("role", function)
}

pub fn function_key(function: &'static str) -> ResourceKey {
    ResourceKey::new("function", function)
}

/// The function's log group, `/aws/lambda/{stack}-{function}`.
pub fn log_group_key(function: &'static str) -> ResourceKey {
    ResourceKey::new("log_group", function)
}

/// What a role's policy is scoped to.
pub struct Scope {
    pub region: String,
    pub account: String,
    /// `{stack}-{function}`: the function's name and log group.
    pub function_name: String,
    pub bucket: String,
    /// The RDS-managed master secret (absent on the local emulator): `db_migrate` only.
    pub master_secret: Option<String>,
    /// The application user's secret, which every other function connects with and
    /// `db_migrate` fills.
    pub app_secret: Option<String>,
    /// The SES identity mail is sent from (`mail_from`).
    pub mail_from: String,
    /// The queue asynchronous invocations that keep failing are sent to (Lambda sends with
    /// the function's role).
    pub failed_events: String,
    /// The ids of the stack's subnets and of the functions' security group (once made).
    pub subnets: Vec<String>,
    pub security_group: Option<String>,
    /// The stack's Transcribe jobs' names begin with it ([`job_prefix`]).
    pub job_prefix: String,
}

/// How the names of the stack's Transcribe jobs begin: `{stack}.`. The account's jobs share
/// one name space and one stream of "Transcribe Job State Change" events; the prefix lets
/// EventBridge hand `save_text` its own stack's jobs only, and its role read only those. A dot
/// cannot be in a stack name, so no stack's prefix begins another's (`stt.` and `stt-demo.`).
pub fn job_prefix(stack: &str) -> String {
    format!("{stack}.")
}

/// The EventBridge pattern that hands `save_text` the stack's finished Transcribe jobs, and
/// only those (EventBridge's prefix matching on the job's name).
pub fn transcribe_rule_pattern(stack: &str) -> Value {
    json!({
        "source": ["aws.transcribe"],
        "detail-type": ["Transcribe Job State Change"],
        "detail": {
            "TranscriptionJobStatus": ["COMPLETED", "FAILED"],
            "TranscriptionJobName": [{"prefix": job_prefix(stack)}]
        }
    })
}

/// The functions S3 and EventBridge invoke asynchronously: their failed events go to the
/// stack's queue.
pub const ASYNC_FUNCTIONS: [&str; 3] = ["audio_transcribe", "save_text", "send_email"];

pub const FAILED_EVENTS: ResourceKey = ResourceKey::new("queue", "stt-failed-events");

pub fn failed_events_queue_name(cx: &Context) -> String {
    format!("{}-stt-failed-events", cx.stack_name())
}

/// Where `ec2:CreateNetworkInterface` may make interfaces: in the stack's subnets, with its
/// functions' security group (ARNs of the resource types the action takes).
fn ec2_interface_resources(scope: &Scope) -> Vec<String> {
    let Scope {
        region, account, ..
    } = scope;
    let mut resources = vec![format!(
        "arn:aws:ec2:{region}:{account}:network-interface/*"
    )];
    resources.extend(
        scope
            .subnets
            .iter()
            .map(|id| format!("arn:aws:ec2:{region}:{account}:subnet/{id}")),
    );
    resources.extend(
        scope
            .security_group
            .iter()
            .map(|id| format!("arn:aws:ec2:{region}:{account}:security-group/{id}")),
    );
    resources
}

/// The inline policy of one function's role: exactly what its handler does, on the stack's
/// own resources.
pub fn policy(scope: &Scope, function: &str) -> Value {
    let Scope {
        region,
        account,
        bucket,
        ..
    } = scope;
    let group = format!(
        "arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{}",
        scope.function_name
    );
    // No logs:CreateLogGroup: the stack makes the group, with its retention, before the
    // function. A group deleted by hand stays deleted (the logs are lost, `drift` says so)
    // rather than coming back without retention.
    let mut statements = vec![
        json!({"Sid": "OwnLogStreams", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": format!("{group}:*")}),
        // What Lambda does with the role to give the function its network interfaces (the
        // actions of the managed AWSLambdaVPCAccessExecutionRole), scoped to the stack's own
        // subnets and security group where the action has resource types.
        json!({
            "Sid": "VpcNetworkInterfaces",
            "Effect": "Allow",
            "Action": "ec2:CreateNetworkInterface",
            "Resource": ec2_interface_resources(scope)
        }),
        json!({
            "Sid": "VpcNetworkInterfaceAddresses",
            "Effect": "Allow",
            "Action": [
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses"
            ],
            "Resource": format!("arn:aws:ec2:{region}:{account}:network-interface/*")
        }),
        // Describe actions have no resource types: AWS authorizes them on "*" only.
        json!({
            "Sid": "VpcDescribe",
            "Effect": "Allow",
            "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            "Resource": "*"
        }),
    ];
    if function == "db_migrate" {
        if let Some(secret) = &scope.master_secret {
            statements.push(json!({"Sid": "MasterSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret}));
        }
        // Reads the application user's password, or makes it when the secret is empty.
        if let Some(secret) = &scope.app_secret {
            statements.push(json!({"Sid": "AppUserSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], "Resource": secret}));
        }
    } else if let Some(secret) = &scope.app_secret {
        statements.push(json!({"Sid": "DatabaseSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret}));
    }
    if ASYNC_FUNCTIONS.contains(&function) {
        statements.push(json!({"Sid": "FailedEvents", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": scope.failed_events}));
    }
    let objects = |prefix: &str| format!("arn:aws:s3:::{bucket}/{prefix}*");
    let jobs = format!(
        "arn:aws:transcribe:{region}:{account}:transcription-job/{}*",
        scope.job_prefix
    );
    match function {
        "file_upload" => {
            // The page's POST policy and presigned parts are authorized as this role: it
            // stores uploads under input_audio/ (PutObject covers CreateMultipartUpload,
            // UploadPart and CompleteMultipartUpload), lists an upload's parts before
            // completing it and aborts one the page gave up.
            statements.push(json!({"Sid": "StoreUploads", "Effect": "Allow", "Action": ["s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"], "Resource": objects("input_audio/")}));
        }
        "audio_transcribe" => {
            // StartTranscriptionJob has no resource type (Service Authorization Reference):
            // AWS authorizes it on "*", which a job ARN never matches. The condition keeps it
            // to jobs that write into the stack's bucket.
            statements.push(json!({
                "Sid": "StartJobs",
                "Effect": "Allow",
                "Action": "transcribe:StartTranscriptionJob",
                "Resource": "*",
                "Condition": {"StringEquals": {"transcribe:OutputBucketName": bucket}}
            }));
            // Transcribe reads the audio and writes the transcript with the caller's rights.
            statements.push(json!({"Sid": "ReadUploads", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects("input_audio/")}));
            statements.push(json!({"Sid": "WriteTranscripts", "Effect": "Allow", "Action": "s3:PutObject", "Resource": objects("output_text/")}));
        }
        "save_text" => {
            statements.push(json!({"Sid": "ReadJobs", "Effect": "Allow", "Action": "transcribe:GetTranscriptionJob", "Resource": jobs}));
            statements.push(json!({"Sid": "Transcripts", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": objects("output_text/")}));
        }
        "send_email" => {
            statements.push(json!({"Sid": "ReadTexts", "Effect": "Allow", "Action": "s3:GetObject", "Resource": objects("output_text/")}));
            // SES authorizes against the identity it sends with: the address the stack
            // verifies, or its domain where the account verified that instead. The domain
            // would let any of its addresses be the sender: the condition keeps it to the
            // stack's.
            let identity = |name: &str| format!("arn:aws:ses:{region}:{account}:identity/{name}");
            let domain = scope.mail_from.rsplit('@').next().unwrap_or_default();
            statements.push(json!({
                "Sid": "SendFromOwnIdentity",
                "Effect": "Allow",
                "Action": "ses:SendEmail",
                "Resource": [identity(&scope.mail_from), identity(domain)],
                "Condition": {"StringEquals": {"ses:FromAddress": scope.mail_from}}
            }));
        }
        _ => {}
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The key prefixes the functions read and write in the audio bucket (see [`policy`]).
pub const AUDIO_PREFIXES: [&str; 2] = ["input_audio/", "output_text/"];

/// The policy of the S3 gateway endpoint: through it, the VPC reaches only the objects the
/// functions read and write, in the stack's audio bucket, owned by the stack's account (a
/// bucket name anyone could take elsewhere is not enough). The roles still say who may do
/// what; this keeps stolen or outside credentials used from inside the VPC from reaching any
/// other bucket. Principal `*` is how endpoint policies are written: the endpoint has no
/// principal of its own to name. Only the name is needed, so the endpoint can be made before
/// the bucket.
pub fn s3_endpoint_policy(bucket: &str, account: &str) -> Value {
    let objects: Vec<String> = AUDIO_PREFIXES
        .iter()
        .map(|prefix| format!("arn:aws:s3:::{bucket}/{prefix}*"))
        .collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "StackAudioObjects",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": objects,
            "Condition": {"StringEquals": {"aws:ResourceAccount": account}}
        }, {
            // file_upload completes or gives up the multipart uploads of large files.
            "Sid": "StackMultipartUploads",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
            "Resource": format!("arn:aws:s3:::{bucket}/input_audio/*"),
            "Condition": {"StringEquals": {"aws:ResourceAccount": account}}
        }]
    })
}

fn scope(cx: &Context, function: &str, mail_from: &str) -> Scope {
    Scope {
        region: cx.aws.region.clone(),
        account: cx.aws.account_id.clone(),
        function_name: function_name(cx, function),
        bucket: audio_bucket_name(cx),
        master_secret: cx.output(&DATABASE, "secret_arn"),
        app_secret: cx.output(&APP_SECRET, "arn"),
        mail_from: mail_from.to_owned(),
        failed_events: format!(
            "arn:aws:sqs:{}:{}:{}",
            cx.aws.region,
            cx.aws.account_id,
            failed_events_queue_name(cx)
        ),
        subnets: cx
            .zones()
            .iter()
            .filter_map(|z| cx.output(&subnet_key(z), "id"))
            .collect(),
        security_group: cx.output(&FUNCTIONS_SG, "id"),
        job_prefix: job_prefix(cx.stack_name()),
    }
}

/// The MySQL user the functions connect as: `{database}_app`, or, when that is longer than
/// MySQL's 32 characters, the database name cut short with a digest of the whole.
pub fn app_user_name(database: &str) -> String {
    let plain = database.replace('$', "_");
    let name = format!("{plain}_app");
    if name.len() <= 32 {
        return name;
    }
    let digest = sha2::Sha256::digest(database.as_bytes());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}_{short}", &plain[..23])
}

/// Secrets Manager name of the application user's secret.
pub fn app_secret_name(cx: &Context) -> String {
    format!("{}/database/app-user", cx.stack_name())
}

/// The environment of one function. Never a password: the functions read the application
/// user's secret, and `db_migrate` the RDS-managed master secret; only on the local emulator,
/// whose MariaDB has no master secret, `db_migrate` gets a URL (root without a password).
pub fn environment(
    cx: &Context,
    functions: &Functions,
    function: &str,
    ipv6: bool,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let database = cx
        .stack
        .stt
        .database
        .as_ref()
        .expect("functions need a database");
    env.insert("DB_NAME".into(), database.database_name.as_str().to_owned());
    env.insert("RUST_LOG".into(), "info".into());
    let app_secret = cx.output(&APP_SECRET, "arn");
    let migrates = function == "db_migrate";
    if cx.aws.local {
        if let Some(endpoint) = &cx.aws.endpoint {
            // The emulator passes no endpoint to the functions it runs.
            env.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
        }
        if migrates {
            env.insert("DB_URL".into(), "mysql://root@127.0.0.1:3306".into());
        } else {
            env.insert("DB_HOST".into(), "127.0.0.1".into());
            env.insert("DB_PORT".into(), "3306".into());
            // The machine's MariaDB speaks no TLS (on AWS: verified TLS, the default).
            env.insert("DB_SSL_MODE".into(), "disabled".into());
        }
    } else {
        if let Some(address) = cx.output(&DATABASE, "address") {
            env.insert("DB_HOST".into(), address);
        }
        if let Some(port) = cx.output(&DATABASE, "port") {
            env.insert("DB_PORT".into(), port);
        }
        if migrates {
            if let Some(secret) = cx.output(&DATABASE, "secret_arn") {
                env.insert("DB_SECRET_ARN".into(), secret);
            }
        }
    }
    if migrates {
        env.insert(
            "DB_APP_USER".into(),
            app_user_name(database.database_name.as_str()),
        );
        if let Some(secret) = app_secret {
            env.insert("DB_APP_SECRET_ARN".into(), secret);
        }
    } else if let Some(secret) = app_secret {
        env.insert("DB_SECRET_ARN".into(), secret);
    }
    match function {
        "file_upload" => {
            env.insert("AUDIO_BUCKET".into(), audio_bucket_name(cx));
            if let Some(origin) = allowed_origin(cx, functions) {
                env.insert("ALLOWED_ORIGIN".into(), origin);
            }
            let quota = &functions.upload_quota;
            env.insert(
                "UPLOADS_PER_ADDRESS_PER_HOUR".into(),
                quota.per_address_per_hour.0.to_string(),
            );
            env.insert(
                "UPLOADS_PER_IP_PER_HOUR".into(),
                quota.per_ip_per_hour.0.to_string(),
            );
            env.insert(
                "MAX_UPLOAD_BYTES".into(),
                functions.uploads.max_bytes.0.to_string(),
            );
            env.insert(
                "UPLOAD_EXPIRY_SECONDS".into(),
                functions.uploads.expiry_s.0.to_string(),
            );
        }
        "audio_transcribe" => {
            env.insert("TRANSCRIBE_JOB_PREFIX".into(), job_prefix(cx.stack_name()));
        }
        "send_email" => {
            env.insert("MAIL_FROM".into(), functions.mail_from.as_str().to_owned());
            env.insert("AUDIO_BUCKET".into(), audio_bucket_name(cx));
            if let Some(page) = confirm_page_url(cx, functions) {
                env.insert("CONFIRM_PAGE_URL".into(), page);
            }
            if let Some(origin) = allowed_origin(cx, functions) {
                env.insert("ALLOWED_ORIGIN".into(), origin);
            }
            env.insert("MAIL_TRANSPORT".into(), "ses".into());
            if ipv6 && !cx.aws.local {
                // SES has no VPC endpoint here: it is reached at its dual-stack name over
                // IPv6. Only SES: the services with VPC endpoints (Transcribe, Secrets
                // Manager) serve their standard names there, which dual stack would bypass.
                env.insert("SES_USE_DUALSTACK_ENDPOINT".into(), "true".into());
            }
        }
        _ => {}
    }
    env
}

/// The origin the upload API answers CORS for: `stack.yaml`'s `allowed_origin`, else the
/// site's own CloudFront address.
pub fn allowed_origin(cx: &Context, functions: &Functions) -> Option<String> {
    functions.allowed_origin.clone().or_else(|| {
        let url = super::web::served_url(cx, &SITE_DISTRIBUTION)?;
        Some(url.trim_end_matches('/').to_owned())
    })
}

/// The page a confirmation mail links to: `confirm.html` of the site, or of the origin
/// `stack.yaml` names instead (the spec requires one of them).
pub fn confirm_page_url(cx: &Context, functions: &Functions) -> Option<String> {
    let base = match &functions.allowed_origin {
        Some(origin) if cx.stack.stt.website.is_none() => origin.clone(),
        _ => super::web::served_url(cx, &SITE_DISTRIBUTION)?,
    };
    Some(format!("{}/confirm.html", base.trim_end_matches('/')))
}

/// `config.js` next to the upload page: the API URL `up` created and Transcribe's languages.
pub fn site_config(cx: &Context) -> String {
    let languages: Vec<&str> = aws_sdk_transcribe::types::LanguageCode::values().to_vec();
    let max_bytes = cx
        .stack
        .stt
        .functions
        .as_ref()
        .map(|f| f.uploads.max_bytes.0);
    let config = json!({
        "apiUrl": cx.output(&UPLOAD_API, "url"),
        "statusUrl": cx.output(&UPLOAD_API, "status_url"),
        "confirmUrl": cx.output(&UPLOAD_API, "confirm_url"),
        "languages": languages,
        "maxUploadBytes": max_bytes,
    });
    format!("// Written by `provision up`; do not edit.\nwindow.STT_CONFIG = {config};\n")
}

pub fn site_config_file() -> GeneratedFile {
    GeneratedFile {
        key: "config.js",
        inputs: vec![UPLOAD_API],
        contents: Box::new(site_config),
    }
}

/// The upload API, the notifications, the Transcribe rule and their permissions.
fn wiring(cx: &Context, functions: &Functions) -> Vec<Arc<dyn Resource>> {
    let stack = cx.stack_name().to_owned();
    let audio_bucket = audio_bucket_name(cx);
    let site = cx.stack.stt.website.is_some();
    let spec = functions.clone();
    let mut api_inputs = vec![];
    if site {
        api_inputs.push(SITE_DISTRIBUTION);
    }
    let api = RestApi {
        key: UPLOAD_API,
        name: format!("{stack}-file-upload-api"),
        description: format!("Audio uploads of the {stack} speech-to-text service"),
        routes: vec![
            Route {
                path_part: UPLOAD_PATH,
                function: function_key("file_upload"),
                url_output: "url",
            },
            Route {
                path_part: STATUS_PATH,
                function: function_key("file_upload"),
                url_output: "status_url",
            },
            Route {
                path_part: CONFIRM_PATH,
                function: function_key("send_email"),
                url_output: "confirm_url",
            },
        ],
        // Every body is JSON: the audio goes straight to S3.
        binary_media_types: vec![],
        stage: UPLOAD_STAGE.to_owned(),
        // Without a site nor a configured origin, no browser page is expected: deny all.
        allowed_origin: Box::new(move |cx| {
            allowed_origin(cx, &spec).unwrap_or_else(|| "null".into())
        }),
        throttling: Throttling {
            rate: functions.api_throttling.rate_per_s.0,
            burst: functions.api_throttling.burst.0,
        },
        inputs: api_inputs,
    };
    let api_permission = LambdaPermission {
        key: permission_key("stt-api-file_upload"),
        function: function_key("file_upload"),
        function_name: function_name(cx, "file_upload"),
        statement_id: "apigateway-file-upload".into(),
        principal: "apigateway.amazonaws.com",
        // Only this API's POST on its one path, in any stage.
        source_arn: Box::new(|cx| {
            let api = cx.output(&UPLOAD_API, "execute_arn")?;
            Some(format!("{api}/*/POST/{UPLOAD_PATH}"))
        }),
        source_account: false,
        inputs: vec![UPLOAD_API],
    };
    let status_permission = LambdaPermission {
        key: permission_key("stt-api-file_upload-status"),
        function: function_key("file_upload"),
        function_name: function_name(cx, "file_upload"),
        statement_id: "apigateway-upload-status".into(),
        principal: "apigateway.amazonaws.com",
        // Only this API's POST on /upload-status, in any stage.
        source_arn: Box::new(|cx| {
            let api = cx.output(&UPLOAD_API, "execute_arn")?;
            Some(format!("{api}/*/POST/{STATUS_PATH}"))
        }),
        source_account: false,
        inputs: vec![UPLOAD_API],
    };
    let confirm_permission = LambdaPermission {
        key: permission_key("stt-api-send_email"),
        function: function_key("send_email"),
        function_name: function_name(cx, "send_email"),
        statement_id: "apigateway-confirm".into(),
        principal: "apigateway.amazonaws.com",
        // Only this API's POST on /confirm, in any stage.
        source_arn: Box::new(|cx| {
            let api = cx.output(&UPLOAD_API, "execute_arn")?;
            Some(format!("{api}/*/POST/{CONFIRM_PATH}"))
        }),
        source_account: false,
        inputs: vec![UPLOAD_API],
    };
    let s3_permission = |key: &'static str, function: &'static str| {
        let bucket = audio_bucket.clone();
        LambdaPermission {
            key: permission_key(key),
            function: function_key(function),
            function_name: function_name(cx, function),
            statement_id: "s3-audio-bucket".into(),
            principal: "s3.amazonaws.com",
            source_arn: Box::new(move |_| Some(format!("arn:aws:s3:::{bucket}"))),
            // Bucket ARNs name no account: someone else's bucket of that name must not call.
            source_account: true,
            inputs: vec![AUDIO_BUCKET],
        }
    };
    let transcribe_permission = s3_permission("stt-s3-audio_transcribe", "audio_transcribe");
    let email_permission = s3_permission("stt-s3-send_email", "send_email");
    let mut rules: Vec<bucket_notification::Rule> = AUDIO_SUFFIXES
        .iter()
        .map(|suffix| bucket_notification::Rule {
            id: format!("transcribe-{}", suffix.trim_start_matches('.')),
            function: function_key("audio_transcribe"),
            prefix: "input_audio/".into(),
            suffix: (*suffix).into(),
        })
        .collect();
    // Only the plain text: save_text also writes the transcript JSON there, and Transcribe
    // its `.write_access_check_file.temp`.
    rules.push(bucket_notification::Rule {
        id: "email-txt".into(),
        function: function_key("send_email"),
        prefix: "output_text/".into(),
        suffix: ".txt".into(),
    });
    let notifications = BucketNotification {
        key: AUDIO_NOTIFICATIONS,
        bucket: AUDIO_BUCKET,
        bucket_name: audio_bucket.clone(),
        rules,
        permissions: vec![
            transcribe_permission.key.clone(),
            email_permission.key.clone(),
        ],
    };
    let rule_name = format!("{stack}-transcribe-job-state");
    let rule = EventRule {
        key: TRANSCRIBE_RULE,
        name: rule_name.clone(),
        description: format!("Transcribe jobs of {stack} that finished or failed, to save_text"),
        pattern: transcribe_rule_pattern(&stack),
        target: function_key("save_text"),
        target_id: "save_text".into(),
    };
    let events_permission = LambdaPermission {
        key: permission_key("stt-events-save_text"),
        function: function_key("save_text"),
        function_name: function_name(cx, "save_text"),
        statement_id: "events-transcribe-job-state".into(),
        principal: "events.amazonaws.com",
        source_arn: Box::new(move |cx| {
            Some(event_rule::rule_arn(
                &cx.aws.region,
                &cx.aws.account_id,
                &rule_name,
            ))
        }),
        source_account: false,
        inputs: vec![],
    };
    vec![
        Arc::new(api),
        Arc::new(api_permission),
        Arc::new(status_permission),
        Arc::new(confirm_permission),
        Arc::new(transcribe_permission),
        Arc::new(email_permission),
        Arc::new(notifications),
        Arc::new(rule),
        Arc::new(events_permission),
    ]
}

fn settings<'a>(functions: &'a Functions, function: &str) -> &'a FunctionSettings {
    match function {
        "file_upload" => &functions.file_upload,
        "audio_transcribe" => &functions.audio_transcribe,
        "save_text" => &functions.save_text,
        "send_email" => &functions.send_email,
        _ => &functions.db_migrate,
    }
}

pub fn resources(cx: &Context, functions: &Functions) -> Vec<Arc<dyn Resource>> {
    let network = cx
        .stack
        .stt
        .network
        .as_ref()
        .expect("functions need a network");
    let ipv6 = network.ipv6 && !cx.aws.local;
    let zones = cx.zones().to_vec();
    let zips = cx.stack.base_dir.join(&functions.zips_dir);
    let mut resources = super::web::data_bucket(
        cx,
        AUDIO_BUCKET,
        AUDIO_BUCKET_POLICY,
        audio_bucket_name(cx),
        functions.data_retention_days.map(|d| d.0),
    );
    let site = cx.stack.stt.website.is_some();
    if site || functions.allowed_origin.is_some() {
        // The page sends the file itself: a POST (a single upload) or a PUT per part, from
        // the site's origin only. Without a site nor a configured origin no page is expected,
        // and the bucket answers no browser.
        resources.push(Arc::new(BucketCors {
            key: AUDIO_CORS,
            bucket: AUDIO_BUCKET,
            bucket_name: audio_bucket_name(cx),
            rule: bucket_cors::Rule {
                allowed_origins: functions
                    .allowed_origin
                    .as_deref()
                    .map(|o| {
                        o.split(',')
                            .map(|o| o.trim().trim_end_matches('/').to_owned())
                            .filter(|o| !o.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                allowed_methods: vec!["POST".into(), "PUT".into()],
                allowed_headers: vec!["content-type".into()],
                max_age_seconds: 600,
            },
            own_origin: site.then_some(SITE_DISTRIBUTION),
        }));
    }
    resources.push(Arc::new(Secret {
        key: APP_SECRET,
        name: app_secret_name(cx),
        description: format!(
            "MySQL user of the {} speech-to-text functions (written by db_migrate)",
            cx.stack_name()
        ),
    }));
    resources.push(Arc::new(EmailIdentity {
        key: MAIL_IDENTITY,
        address: functions.mail_from.as_str().to_owned(),
    }));
    for function in FUNCTIONS {
        let mail_from = functions.mail_from.as_str().to_owned();
        resources.push(Arc::new(Role {
            key: role_key(function),
            name: function_name(cx, function),
            service: "lambda.amazonaws.com",
            source_arn: None,
            // The database's secret; the subnets and security group its interfaces use.
            inputs: [DATABASE, APP_SECRET, FUNCTIONS_SG]
                .into_iter()
                .chain(zones.iter().map(|z| subnet_key(z)))
                .collect(),
            // `down` deletes the role only once the security group and subnets (which wait
            // for the functions' network interfaces to go) are gone: Lambda needs the role
            // to release those interfaces.
            outlives: std::iter::once(FUNCTIONS_SG)
                .chain(zones.iter().map(|z| subnet_key(z)))
                .collect(),
            policy: Box::new(move |cx| policy(&scope(cx, function, &mail_from), function)),
        }));
        resources.push(Arc::new(LogGroup {
            key: log_group_key(function),
            name: lambda_log_group_name(&function_name(cx, function)),
            retention_days: functions.log_retention_days.0,
        }));
        let s = settings(functions, function);
        let spec = functions.clone();
        // The log group first: the function's first invocation writes there, and its role
        // may not create it.
        let mut inputs = vec![DATABASE, APP_SECRET, AUDIO_BUCKET, log_group_key(function)];
        // Their CORS origin, and the confirmation link, are the site's address.
        if site && (function == "file_upload" || function == "send_email") {
            inputs.push(SITE_DISTRIBUTION);
        }
        if function == "send_email" {
            inputs.push(MAIL_IDENTITY);
        }
        resources.push(Arc::new(Function {
            key: function_key(function),
            name: function_name(cx, function),
            role: role_key(function),
            zip: zips.join(function).join("bootstrap.zip"),
            memory_mb: s.memory_mb.0,
            timeout_s: s.timeout_s.0,
            ephemeral_storage_mb: s.ephemeral_storage_mb.0,
            reserved_concurrency: functions.reserved_concurrency(function, s),
            concurrency_key: format!("stt.functions.{function}.reserved_concurrency"),
            network: Some(function::Network {
                subnets: zones.iter().map(|z| subnet_key(z)).collect(),
                security_group: FUNCTIONS_SG,
                ipv6,
            }),
            inputs,
            environment: Box::new(move |cx| environment(cx, &spec, function, ipv6)),
        }));
    }
    resources.push(Arc::new(Queue {
        key: FAILED_EVENTS,
        name: failed_events_queue_name(cx),
    }));
    for function in ASYNC_FUNCTIONS {
        resources.push(Arc::new(EventInvokeConfig {
            key: ResourceKey::new("event_invoke_config", function),
            function: function_key(function),
            function_name: function_name(cx, function),
            destination: FAILED_EVENTS,
            maximum_retry_attempts: functions.async_invocation.maximum_retry_attempts.0,
            maximum_event_age_s: functions.async_invocation.maximum_event_age_s.0,
        }));
    }
    resources.push(Arc::new(SchemaMigration {
        key: SCHEMA,
        function: function_key("db_migrate"),
        database: DATABASE,
        app_secret: APP_SECRET,
    }));
    resources.extend(wiring(cx, functions));
    resources
}

pub fn outputs(cx: &Context, out: &mut BTreeMap<&'static str, String>) {
    if let Some(name) = cx.output(&AUDIO_BUCKET, "name") {
        out.insert("stt_audio_bucket", name);
    }
    if let Some(url) = cx.output(&UPLOAD_API, "url") {
        out.insert("stt_api_url", url);
    }
    if let Some(url) = cx.output(&UPLOAD_API, "status_url") {
        out.insert("stt_upload_status_url", url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(function: &str) -> Scope {
        Scope {
            region: "us-east-1".into(),
            account: "111122223333".into(),
            function_name: format!("demo-{function}"),
            bucket: "demo-audio-111122223333".into(),
            master_secret: Some(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:rds!db-1".into(),
            ),
            app_secret: Some(
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:demo/database/app-user-AbCdEf"
                    .into(),
            ),
            mail_from: "transcripts@example.com".into(),
            failed_events: "arn:aws:sqs:us-east-1:111122223333:demo-stt-failed-events".into(),
            subnets: vec!["subnet-1".into(), "subnet-2".into()],
            security_group: Some("sg-functions".into()),
            job_prefix: job_prefix("demo"),
        }
    }

    fn statements(function: &str) -> Vec<Value> {
        policy(&scope(function), function)["Statement"]
            .as_array()
            .unwrap()
            .clone()
    }

    #[test]
    fn no_policy_grants_wildcard_actions_or_wildcard_s3_resources() {
        for function in FUNCTIONS {
            for statement in statements(function) {
                let actions = crate::policy::strings(&statement["Action"]);
                let resources = crate::policy::strings(&statement["Resource"]);
                assert!(
                    actions.iter().all(|a| !a.ends_with(":*") && a != "*"),
                    "{function}: {statement}"
                );
                assert_eq!(statement["Effect"], "Allow");
                if resources.contains(&"*".to_owned()) {
                    // Only actions without resource-level permissions: the VPC ones, and
                    // StartTranscriptionJob under a condition on the output bucket.
                    match statement["Sid"].as_str() {
                        Some("VpcDescribe") => {}
                        Some("StartJobs") => assert_eq!(
                            statement["Condition"]["StringEquals"]["transcribe:OutputBucketName"],
                            "demo-audio-111122223333"
                        ),
                        _ => panic!("{function}: {statement} uses * without need"),
                    }
                }
                for resource in resources.iter().filter(|r| r.starts_with("arn:aws:s3")) {
                    assert!(
                        resource.starts_with("arn:aws:s3:::demo-audio-111122223333/"),
                        "{function}: {resource}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_function_gets_exactly_its_own_grants() {
        let grants = |function: &str| -> Vec<(String, Vec<String>)> {
            statements(function)
                .iter()
                .filter(|s| {
                    !matches!(
                        s["Sid"].as_str(),
                        Some(
                            "OwnLogStreams"
                                | "VpcNetworkInterfaces"
                                | "VpcNetworkInterfaceAddresses"
                                | "VpcDescribe"
                                | "DatabaseSecret"
                                | "FailedEvents"
                        )
                    )
                })
                .map(|s| {
                    (
                        crate::policy::strings(&s["Action"]).join(","),
                        crate::policy::strings(&s["Resource"]),
                    )
                })
                .collect()
        };
        assert_eq!(
            grants("file_upload"),
            vec![(
                "s3:PutObject,s3:ListMultipartUploadParts,s3:AbortMultipartUpload".into(),
                vec!["arn:aws:s3:::demo-audio-111122223333/input_audio/*".into()]
            )]
        );
        assert_eq!(
            grants("db_migrate"),
            vec![
                (
                    "secretsmanager:GetSecretValue".into(),
                    vec!["arn:aws:secretsmanager:us-east-1:111122223333:secret:rds!db-1".into()]
                ),
                (
                    "secretsmanager:GetSecretValue,secretsmanager:PutSecretValue".into(),
                    vec![
                        "arn:aws:secretsmanager:us-east-1:111122223333:secret:demo/database/app-user-AbCdEf"
                            .into()
                    ]
                )
            ]
        );
        let email = grants("send_email");
        assert!(email.contains(&(
            "ses:SendEmail".into(),
            vec![
                "arn:aws:ses:us-east-1:111122223333:identity/transcripts@example.com".into(),
                "arn:aws:ses:us-east-1:111122223333:identity/example.com".into()
            ]
        )));
        let send = statements("send_email")
            .into_iter()
            .find(|s| s["Sid"] == "SendFromOwnIdentity")
            .unwrap();
        assert_eq!(
            send["Condition"]["StringEquals"]["ses:FromAddress"],
            "transcripts@example.com"
        );
        assert!(grants("audio_transcribe")
            .iter()
            .any(|(a, _)| a == "transcribe:StartTranscriptionJob"));
        assert!(!grants("save_text")
            .iter()
            .any(|(a, _)| a == "transcribe:StartTranscriptionJob"));
        let logs = &statements("save_text")[0];
        assert_eq!(
            logs["Resource"],
            "arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/demo-save_text:*"
        );
    }

    #[test]
    fn no_role_may_create_log_groups_and_each_writes_only_its_own() {
        for function in FUNCTIONS {
            let logs: Vec<(Vec<String>, Vec<String>)> = statements(function)
                .iter()
                .filter(|s| {
                    crate::policy::strings(&s["Action"])
                        .iter()
                        .any(|a| a.starts_with("logs:"))
                })
                .map(|s| {
                    (
                        crate::policy::strings(&s["Action"]),
                        crate::policy::strings(&s["Resource"]),
                    )
                })
                .collect();
            assert_eq!(
                logs,
                vec![(
                    vec!["logs:CreateLogStream".into(), "logs:PutLogEvents".into()],
                    vec![format!(
                        "arn:aws:logs:us-east-1:111122223333:log-group:/aws/lambda/demo-{function}:*"
                    )]
                )],
                "{function}"
            );
        }
    }

    #[test]
    fn each_function_waits_for_its_log_group() {
        let cx = crate::systems::tests::context(false);
        let functions = cx.stack.stt.functions.clone().unwrap();
        let all = resources(&cx, &functions);
        for function in FUNCTIONS {
            let made = all
                .iter()
                .find(|r| r.key() == function_key(function))
                .unwrap();
            assert!(
                made.depends_on().contains(&log_group_key(function)),
                "{function}"
            );
            assert!(all.iter().any(|r| r.key() == log_group_key(function)));
        }
    }

    #[test]
    fn only_the_ses_client_goes_dual_stack() {
        let cx = crate::systems::tests::context(false);
        let functions = cx.stack.stt.functions.clone().unwrap();
        for function in FUNCTIONS {
            let env = environment(&cx, &functions, function, true);
            // A global dual-stack switch would send Transcribe and Secrets Manager past their
            // VPC endpoints, which serve only the standard names.
            assert!(
                !env.contains_key("AWS_USE_DUALSTACK_ENDPOINT"),
                "{function}: {env:?}"
            );
            assert_eq!(
                env.get("SES_USE_DUALSTACK_ENDPOINT").map(String::as_str),
                (function == "send_email").then_some("true"),
                "{function}"
            );
        }
        let without_ipv6 = environment(&cx, &functions, "send_email", false);
        assert!(!without_ipv6.contains_key("SES_USE_DUALSTACK_ENDPOINT"));
    }

    #[test]
    fn the_s3_endpoint_lets_through_exactly_what_the_roles_grant_on_s3() {
        let endpoint = s3_endpoint_policy("demo-audio-111122223333", "111122223333");
        let statements_of_endpoint = endpoint["Statement"].as_array().unwrap();
        for allowed in statements_of_endpoint {
            assert_eq!(allowed["Principal"], "*");
            assert_eq!(allowed["Effect"], "Allow");
            assert_eq!(
                allowed["Condition"]["StringEquals"]["aws:ResourceAccount"],
                "111122223333"
            );
        }
        let pairs = |actions: &Value, resources: &Value| -> Vec<(String, String)> {
            let resources = crate::policy::strings(resources);
            crate::policy::strings(actions)
                .into_iter()
                .flat_map(|a| resources.iter().map(move |r| (a.clone(), r.clone())))
                .collect()
        };
        let through_endpoint: Vec<(String, String)> = statements_of_endpoint
            .iter()
            .flat_map(|s| pairs(&s["Action"], &s["Resource"]))
            .collect();
        let mut granted: Vec<(String, String)> = FUNCTIONS
            .iter()
            .flat_map(|f| statements(f))
            .flat_map(|s| pairs(&s["Action"], &s["Resource"]))
            .filter(|(a, _)| a.starts_with("s3:"))
            .collect();
        granted.sort();
        granted.dedup();
        // Every S3 grant of a role gets through (or the function would be refused inside
        // the VPC), and nothing else does.
        let mut endpoint_pairs = through_endpoint.clone();
        endpoint_pairs.sort();
        assert_eq!(endpoint_pairs, granted);
    }

    #[test]
    fn without_a_secret_there_is_no_secret_grant() {
        let mut s = scope("file_upload");
        s.app_secret = None;
        let doc = policy(&s, "file_upload");
        assert!(!doc.to_string().contains("secretsmanager"));
    }

    #[test]
    fn only_db_migrate_reads_the_master_secret() {
        for function in FUNCTIONS {
            let doc = policy(&scope(function), function).to_string();
            assert_eq!(
                doc.contains("rds!db-1"),
                function == "db_migrate",
                "{function}: {doc}"
            );
            assert!(doc.contains("demo/database/app-user-AbCdEf"), "{function}");
            assert_eq!(
                doc.contains("secretsmanager:PutSecretValue"),
                function == "db_migrate",
                "{function}"
            );
        }
    }

    #[test]
    fn each_stack_hears_and_reads_only_its_own_transcribe_jobs() {
        // One account, two stacks whose names begin alike: neither prefix begins the other's.
        let (short, long) = (job_prefix("stt"), job_prefix("stt-demo"));
        assert!(!long.starts_with(&short) && !short.starts_with(&long));
        let pattern = transcribe_rule_pattern("stt-demo");
        assert_eq!(
            pattern["detail"]["TranscriptionJobName"],
            json!([{"prefix": "stt-demo."}])
        );
        assert_eq!(pattern["source"], json!(["aws.transcribe"]));
        let reads: Vec<Value> = statements("save_text")
            .into_iter()
            .filter(|s| s["Sid"] == "ReadJobs")
            .collect();
        assert_eq!(
            reads[0]["Resource"],
            "arn:aws:transcribe:us-east-1:111122223333:transcription-job/demo.*"
        );
    }

    #[test]
    fn the_app_user_name_fits_mysql() {
        assert_eq!(app_user_name("stt"), "stt_app");
        assert_eq!(app_user_name("a$b"), "a_b_app");
        let long = "t_e2e_".repeat(10);
        let name = app_user_name(&long);
        assert_eq!(name.len(), 32);
        assert!(name.starts_with(&long[..23]));
        assert_ne!(name, app_user_name(&format!("{long}x")));
    }
}
