//! Which SES endpoint the mailer's client calls: the dual-stack name only when asked, so that
//! a function in an IPv6 VPC reaches SES (which has no VPC endpoint there) while the other
//! services keep their VPC endpoints' standard names. The request is stopped before it leaves.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Records the URI of the request about to be sent, then stops it.
#[derive(Debug, Clone, Default)]
struct StopBeforeSending(Arc<Mutex<Option<String>>>);

impl Intercept for StopBeforeSending {
    fn name(&self) -> &'static str {
        "StopBeforeSending"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self.0.lock().unwrap() = Some(context.request().uri().to_owned());
        Err("stopped before sending".into())
    }
}

async fn host_called(dual_stack: bool) -> String {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::SharedCredentialsProvider::new(
            aws_sdk_sesv2::config::Credentials::new("AKID", "secret", None, None, "test"),
        ))
        .build();
    let stop = StopBeforeSending::default();
    let client = aws_sdk_sesv2::Client::from_conf(
        send_email::mail::ses_config(&sdk, dual_stack)
            .interceptor(stop.clone())
            .build(),
    );
    let result = client.get_account().send().await;
    assert!(result.is_err(), "the request must not leave the test");
    let uri = stop.0.lock().unwrap().clone().expect("a request was built");
    uri.split('/').nth(2).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn ses_uses_its_dual_stack_name_only_when_asked() {
    assert_eq!(host_called(true).await, "email.us-east-1.api.aws");
    assert_eq!(host_called(false).await, "email.us-east-1.amazonaws.com");
}
