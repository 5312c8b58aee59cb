//! What Lambda does with an asynchronous invocation (S3 notifications, EventBridge rules) that
//! keeps failing: how often it tries again, how long it keeps the event, and the on-failure
//! destination that receives it in the end, so that no event is dropped unseen.

use async_trait::async_trait;
use aws_sdk_lambda::types::{DestinationConfig, OnFailure};

use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource, ResourceKey,
};
use crate::template::{CfnResource, Part};

/// The version the configuration applies to: the unpublished one, which the triggers invoke
/// (the SDK engine's calls name no qualifier, which means the same).
pub const QUALIFIER: &str = "$LATEST";

pub struct EventInvokeConfig {
    pub key: ResourceKey,
    /// The function (its `name` output).
    pub function: ResourceKey,
    pub function_name: String,
    /// The on-failure destination (its `arn` output).
    pub destination: ResourceKey,
    /// 0 to 2.
    pub maximum_retry_attempts: i32,
    /// 60 to 21600.
    pub maximum_event_age_s: i32,
}

/// Settings compared for drift: retries, event age, on-failure destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub maximum_retry_attempts: Option<i32>,
    pub maximum_event_age_s: Option<i32>,
    pub on_failure: Option<String>,
}

impl EventInvokeConfig {
    fn wanted(&self, cx: &Context) -> Settings {
        Settings {
            maximum_retry_attempts: Some(self.maximum_retry_attempts),
            maximum_event_age_s: Some(self.maximum_event_age_s),
            on_failure: cx.output(&self.destination, "arn"),
        }
    }

    async fn live(&self, cx: &Context) -> Result<Option<Settings>, Error> {
        match cx
            .aws
            .lambda
            .get_function_event_invoke_config()
            .function_name(&self.function_name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Settings {
                maximum_retry_attempts: out.maximum_retry_attempts(),
                maximum_event_age_s: out.maximum_event_age_in_seconds(),
                on_failure: out
                    .destination_config()
                    .and_then(|d| d.on_failure())
                    .and_then(|f| f.destination())
                    .map(str::to_owned),
            })),
            // No configuration yet, or no function yet.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "GetFunctionEventInvokeConfig"),
        }
    }
}

#[async_trait]
impl Resource for EventInvokeConfig {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![self.function.clone(), self.destination.clone()]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(live) = self.live(cx).await? else {
            return Ok(Planned::create(
                self.key.clone(),
                self.function_name.clone(),
            ));
        };
        let wanted = self.wanted(cx);
        let mut diff = Diff::default();
        diff.field(
            "MaximumRetryAttempts",
            wanted.maximum_retry_attempts,
            live.maximum_retry_attempts,
        );
        diff.field(
            "MaximumEventAgeInSeconds",
            wanted.maximum_event_age_s,
            live.maximum_event_age_s,
        );
        diff.field(
            "DestinationConfig.OnFailure.Destination",
            wanted.on_failure,
            live.on_failure,
        );
        Ok(Planned::from_diff(
            self.key.clone(),
            self.function_name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
        let destination = cx.require(&self.key, &self.destination, "arn")?;
        // Put replaces the whole configuration; Lambda checks that the function's role may
        // send to the destination, which IAM may not have propagated yet.
        let settling = |e: &Error| {
            e.code() == Some("ResourceConflictException")
                || (e.code() == Some("InvalidParameterValueException")
                    && e.to_string().contains("permission"))
        };
        retry_when(Backoff::SETTLING, settling, || async {
            cx.aws
                .lambda
                .put_function_event_invoke_config()
                .function_name(&self.function_name)
                .maximum_retry_attempts(self.maximum_retry_attempts)
                .maximum_event_age_in_seconds(self.maximum_event_age_s)
                .destination_config(
                    DestinationConfig::builder()
                        .on_failure(OnFailure::builder().destination(&destination).build())
                        .build(),
                )
                .send()
                .await
                .step(&self.key, "PutFunctionEventInvokeConfig")
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        match cx
            .aws
            .lambda
            .delete_function_event_invoke_config()
            .function_name(&self.function_name)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(Deleted::Absent)
            }
            Err(e) => Err(e).step(&self.key, "DeleteFunctionEventInvokeConfig"),
        }
    }

    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let wanted = self.wanted(cx);
        let function = cx
            .require(&self.key, &self.function, "name")
            .map_err(|e| e.to_string())?;
        let destination = wanted
            .on_failure
            .ok_or_else(|| format!("{}: no arn", self.destination))?;
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::Lambda::EventInvokeConfig",
            serde_json::json!({
                "FunctionName": function,
                "Qualifier": QUALIFIER,
                "MaximumRetryAttempts": wanted.maximum_retry_attempts,
                "MaximumEventAgeInSeconds": wanted.maximum_event_age_s,
                "DestinationConfig": {"OnFailure": {"Destination": destination}},
            }),
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_sends_failed_events_of_latest_to_the_queue() {
        let cx = crate::systems::tests::symbolic_context();
        let config = EventInvokeConfig {
            key: ResourceKey::new("event_invoke_config", "save_text"),
            function: ResourceKey::new("function", "save_text"),
            function_name: "demo-save_text".into(),
            destination: ResourceKey::new("queue", "failed"),
            maximum_retry_attempts: 2,
            maximum_event_age_s: 3600,
        };
        let parts = config.cloudformation(&cx).unwrap();
        let [Part::Resource(r)] = parts.as_slice() else {
            panic!("one resource: {parts:?}")
        };
        let p = &r.properties;
        assert_eq!(
            p["FunctionName"],
            crate::template::reference("FunctionSaveText")
        );
        assert_eq!(p["Qualifier"], "$LATEST");
        assert_eq!(p["MaximumRetryAttempts"], 2);
        assert_eq!(p["MaximumEventAgeInSeconds"], 3600);
        assert_eq!(
            p["DestinationConfig"]["OnFailure"]["Destination"],
            crate::template::reference("QueueFailed.Arn")
        );
    }
}
