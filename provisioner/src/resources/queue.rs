//! An SQS queue that keeps the events asynchronous invocations gave up on (the functions'
//! on-failure destination): encrypted by SQS, messages kept the longest SQS allows (14 days) so
//! that someone can look at them, tagged. Found by its name (queue names are unique per account
//! and region); one not tagged as the stack's is left alone.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;

use super::{owned_by, tag_diff};
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part};

pub struct Queue {
    pub key: ResourceKey,
    pub name: String,
}

/// Fourteen days, the most SQS keeps a message.
pub const RETENTION_SECONDS: &str = "1209600";

/// The attributes the stack sets, as SQS names them.
pub fn wanted_attributes() -> BTreeMap<QueueAttributeName, String> {
    BTreeMap::from([
        (
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_SECONDS.to_owned(),
        ),
        (QueueAttributeName::SqsManagedSseEnabled, "true".to_owned()),
    ])
}

/// SQS refuses to create a queue under a name deleted less than 60 seconds before
/// (`QueueDeletedRecently`; `AWS.SimpleQueueService.QueueDeletedRecently` in the query-compatible
/// code the SDK may report).
fn deleted_recently(e: &Error) -> bool {
    matches!(
        e.code(),
        Some("QueueDeletedRecently" | "AWS.SimpleQueueService.QueueDeletedRecently")
    )
}

impl Queue {
    /// The queue's URL, if it exists.
    async fn url(&self, cx: &Context) -> Result<Option<String>, Error> {
        match cx
            .aws
            .sqs
            .get_queue_url()
            .queue_name(&self.name)
            .send()
            .await
            .step(&self.key, "GetQueueUrl")
        {
            Ok(out) => Ok(out.queue_url().map(str::to_owned)),
            Err(e) if e.code().is_some_and(is_missing) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn attributes(
        &self,
        cx: &Context,
        url: &str,
    ) -> Result<HashMap<QueueAttributeName, String>, Error> {
        let out = cx
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .step(&self.key, "GetQueueAttributes")?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    async fn tags(&self, cx: &Context, url: &str) -> Result<BTreeMap<String, String>, Error> {
        let out = cx
            .aws
            .sqs
            .list_queue_tags()
            .queue_url(url)
            .send()
            .await
            .step(&self.key, "ListQueueTags")?;
        Ok(out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn publish(&self, cx: &Context, url: &str, arn: &str) {
        cx.publish(&self.key, "url", url);
        cx.publish(&self.key, "arn", arn);
        cx.publish(&self.key, "name", &self.name);
    }

    fn arn(&self, cx: &Context) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{}",
            cx.aws.region, cx.aws.account_id, self.name
        )
    }
}

/// What SQS answers for a queue that does not exist (the query and the JSON protocol name it
/// differently).
fn is_missing(code: &str) -> bool {
    matches!(
        code,
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist"
    )
}

#[async_trait]
impl Resource for Queue {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(url) = self.url(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let tags = self.tags(cx, &url).await?;
        if !owned_by(&tags, cx.stack_name()) {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!(
                    "queue {} exists but is not tagged as this stack's; it is left alone",
                    self.name
                ),
            });
        }
        let live = self.attributes(cx, &url).await?;
        let arn = live
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .unwrap_or_else(|| self.arn(cx));
        self.publish(cx, &url, &arn);
        let mut diff = Diff::default();
        for (name, wanted) in wanted_attributes() {
            diff.field(name.as_str(), Some(wanted), live.get(&name).cloned());
        }
        diff.extend(tag_diff(&cx.tags(), &tags));
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let sqs = &cx.aws.sqs;
        let attributes: HashMap<QueueAttributeName, String> =
            wanted_attributes().into_iter().collect();
        let url = if planned.action == Action::Create {
            // CreateQueue with the same name and attributes answers the existing queue, so a
            // create repeated after a crash makes no second one. A name deleted less than 60
            // seconds ago (a `down` just before) is refused until then: retried.
            retry_when(Backoff::SETTLING, deleted_recently, || async {
                sqs.create_queue()
                    .queue_name(&self.name)
                    .set_attributes(Some(attributes.clone()))
                    .set_tags(Some(cx.tags().into_iter().collect()))
                    .send()
                    .await
                    .step(&self.key, "CreateQueue")
            })
            .await?
            .queue_url()
            .unwrap_or_default()
            .to_owned()
        } else {
            let url = cx.require(&self.key, &self.key, "url")?;
            if planned.touches_more_than_tags() {
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attributes))
                    .send()
                    .await
                    .step(&self.key, "SetQueueAttributes")?;
            }
            if planned.touches("Tags.") {
                sqs.tag_queue()
                    .queue_url(&url)
                    .set_tags(Some(cx.tags().into_iter().collect()))
                    .send()
                    .await
                    .step(&self.key, "TagQueue")?;
            }
            url
        };
        self.publish(cx, &url, &self.arn(cx));
        Ok(())
    }

    /// The queue holds events that were given up on: kept unless the user consents, as data.
    async fn delete(&self, cx: &Context, options: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(url) = self.url(cx).await? else {
            return Ok(Deleted::Absent);
        };
        if !owned_by(&self.tags(cx, &url).await?, cx.stack_name()) {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!(
                    "queue {} is not tagged as this stack's; it is left alone",
                    self.name
                ),
            });
        }
        let live = self.attributes(cx, &url).await?;
        let held: u64 = [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .filter_map(|a| live.get(a).and_then(|n| n.parse::<u64>().ok()))
        .sum();
        if held > 0 && !options.delete_data {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!(
                    "queue {} holds {held} failed event(s); they are kept. Run `provision down \
                     --delete-data` to delete them too",
                    self.name
                ),
            });
        }
        match cx.aws.sqs.delete_queue().queue_url(&url).send().await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.code().is_some_and(is_missing) => Ok(Deleted::Absent),
            Err(e) => Err(e).step(&self.key, "DeleteQueue"),
        }
    }

    /// [`wanted_attributes`] as the queue's properties. Retained when the stack is deleted:
    /// the failed events it holds are data, which `down` keeps unless told otherwise
    /// (CloudFormation cannot look whether the queue is empty first).
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let attributes = wanted_attributes();
        let retention: u64 = attributes[&QueueAttributeName::MessageRetentionPeriod]
            .parse()
            .map_err(|e| format!("MessageRetentionPeriod: {e}"))?;
        let sse = attributes[&QueueAttributeName::SqsManagedSseEnabled] == "true";
        Ok(vec![Part::Resource(
            CfnResource::new(
                &self.key,
                "AWS::SQS::Queue",
                serde_json::json!({
                    "QueueName": self.name,
                    "MessageRetentionPeriod": retention,
                    "SqsManagedSseEnabled": sse,
                    "Tags": template::tags(cx),
                }),
            )
            .keep("Retain")
            .skip_check(
                "CKV_AWS_27",
                "encrypted at rest with SQS-managed keys (SqsManagedSseEnabled), as the SDK \
                 engine sets it; the check recognises only KMS keys",
            ),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_kept_fourteen_days_and_encrypted() {
        let wanted = wanted_attributes();
        assert_eq!(
            wanted[&QueueAttributeName::MessageRetentionPeriod],
            (14 * 24 * 3600).to_string()
        );
        assert_eq!(wanted[&QueueAttributeName::SqsManagedSseEnabled], "true");
        assert!(is_missing("AWS.SimpleQueueService.NonExistentQueue"));
        assert!(is_missing("QueueDoesNotExist"));
    }

    #[test]
    fn the_template_keeps_messages_fourteen_days_encrypted_and_the_queue_on_delete() {
        let cx = crate::systems::tests::symbolic_context();
        let queue = Queue {
            key: ResourceKey::new("queue", "failed"),
            name: "demo-failed".into(),
        };
        let parts = queue.cloudformation(&cx).unwrap();
        let [Part::Resource(r)] = parts.as_slice() else {
            panic!("one resource: {parts:?}")
        };
        assert_eq!(r.properties["MessageRetentionPeriod"], 1_209_600);
        assert_eq!(r.properties["SqsManagedSseEnabled"], true);
        assert_eq!(r.properties["QueueName"], "demo-failed");
        assert_eq!(r.keep, Some("Retain"));
    }

    #[test]
    fn a_name_deleted_a_moment_ago_is_waited_for() {
        let error = |code: &str| {
            Error::Aws {
            resource: ResourceKey::new("queue", "q"),
            step: "CreateQueue",
            code: Some(code.into()),
            source: format!("{code}: You must wait 60 seconds after deleting a queue before you can create another with the same name.").into(),
        }
        };
        assert!(deleted_recently(&error(
            "AWS.SimpleQueueService.QueueDeletedRecently"
        )));
        assert!(deleted_recently(&error("QueueDeletedRecently")));
        assert!(!deleted_recently(&error("QueueAlreadyExists")));
    }
}
