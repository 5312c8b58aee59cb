//! One AWS configuration per command, built the way every AWS tool builds it (environment,
//! profiles, `AWS_ENDPOINT_URL`), and the service clients made from it.

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_sdk_apigateway as apigateway;
use aws_sdk_cloudformation as cloudformation;
use aws_sdk_cloudfront as cloudfront;
use aws_sdk_cloudwatchlogs as logs;
use aws_sdk_ec2 as ec2;
use aws_sdk_eventbridge as eventbridge;
use aws_sdk_iam as iam;
use aws_sdk_lambda as lambda;
use aws_sdk_rds as rds;
use aws_sdk_s3 as s3;
use aws_sdk_secretsmanager as secretsmanager;
use aws_sdk_sesv2 as ses;
use aws_sdk_sqs as sqs;
use aws_sdk_sts as sts;

use crate::engine::CallCounter;

/// Where the commands send their calls.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The local emulator with test credentials.
    pub local: bool,
    /// A named profile from the AWS config files (otherwise `AWS_PROFILE` or the default).
    pub profile: Option<String>,
}

/// Attempts per AWS call (throttling, 5xx, dropped connections) unless `AWS_MAX_ATTEMPTS`
/// says otherwise.
pub const MAX_ATTEMPTS: u32 = 10;

/// Endpoint of the local emulator unless `AWS_ENDPOINT_URL` names another.
pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:4566";

#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: s3::Client,
    pub cloudfront: cloudfront::Client,
    /// CloudFormation: only the `--engine cloudformation` commands use it.
    pub cloudformation: cloudformation::Client,
    pub ec2: ec2::Client,
    pub rds: rds::Client,
    pub iam: iam::Client,
    pub lambda: lambda::Client,
    pub apigateway: apigateway::Client,
    pub events: eventbridge::Client,
    pub ses: ses::Client,
    pub sqs: sqs::Client,
    /// CloudWatch Logs: the functions' log groups.
    pub logs: logs::Client,
    pub secretsmanager: secretsmanager::Client,
    pub calls: CallCounter,
    pub region: String,
    pub account_id: String,
    pub local: bool,
    /// The endpoint override in force, if any (for URLs that point at the emulator).
    pub endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot tell which AWS account to use (sts:GetCallerIdentity failed): {0}\n\
         Set credentials (AWS_PROFILE, --profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), \
         or use --local for the local emulator"
    )]
    Identity(String),
}

impl Clients {
    pub async fn connect(region: &str, target: &Target) -> Result<Clients, ConnectError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()));
        if let Some(profile) = &target.profile {
            loader = loader.profile_name(profile);
        }
        let mut endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty());
        if target.local {
            let url = endpoint.get_or_insert_with(|| LOCAL_ENDPOINT.to_owned());
            loader = loader.endpoint_url(url.clone()).credentials_provider(
                s3::config::Credentials::new("test", "test", None, None, "provision-local"),
            );
        }
        let mut sdk = loader.load().await;
        if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
            // A run makes hundreds of calls, some in bursts that AWS throttles: try each up to
            // ten times (Terraform allows 25) unless the user chose otherwise.
            let retry = sdk
                .retry_config()
                .cloned()
                .unwrap_or_else(RetryConfig::standard)
                .with_max_attempts(MAX_ATTEMPTS);
            sdk = sdk.into_builder().retry_config(retry).build();
        }
        let mut clients = Clients::from_sdk(&sdk, region, target.local, endpoint);
        let sts = sts::Client::from_conf(
            sts::config::Builder::from(&sdk)
                .interceptor(clients.calls.clone())
                .build(),
        );
        // The first call: a wrong endpoint or missing credentials should be told at once, not
        // after ten attempts.
        let identity = sts
            .get_caller_identity()
            .customize()
            .config_override(
                sts::config::Builder::default()
                    .retry_config(RetryConfig::standard().with_max_attempts(3)),
            )
            .send()
            .await
            .map_err(|e| {
                ConnectError::Identity(
                    aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                )
            })?;
        clients.account_id = identity.account().unwrap_or_default().to_owned();
        Ok(clients)
    }

    /// The service clients of one configuration, all counting their calls in one counter.
    fn from_sdk(
        sdk: &aws_config::SdkConfig,
        region: &str,
        local: bool,
        endpoint: Option<String>,
    ) -> Clients {
        let calls = CallCounter::from_env();
        macro_rules! client {
            ($service:ident) => {
                $service::Client::from_conf(
                    $service::config::Builder::from(sdk)
                        .interceptor(calls.clone())
                        .build(),
                )
            };
        }
        let s3 = s3::Client::from_conf(
            s3::config::Builder::from(sdk)
                // The emulator answers path-style requests on its one host name.
                .force_path_style(local)
                .interceptor(calls.clone())
                .build(),
        );
        Clients {
            s3,
            cloudfront: client!(cloudfront),
            cloudformation: client!(cloudformation),
            ec2: client!(ec2),
            rds: client!(rds),
            iam: client!(iam),
            lambda: client!(lambda),
            apigateway: client!(apigateway),
            events: client!(eventbridge),
            ses: client!(ses),
            sqs: client!(sqs),
            logs: client!(logs),
            secretsmanager: client!(secretsmanager),
            calls,
            region: region.to_owned(),
            account_id: String::new(),
            local,
            endpoint,
        }
    }

    /// Clients that never connect: for unit tests of what the stack is made of, and for
    /// rendering the template.
    pub fn offline(region: &str, account_id: &str, local: bool) -> Clients {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        let mut clients = Clients::from_sdk(&sdk, region, local, None);
        clients.account_id = account_id.to_owned();
        clients
    }
}
