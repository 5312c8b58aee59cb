//! An EventBridge rule on the default bus with one Lambda target (console step S26): Amazon
//! Transcribe's job state changes to `save_text`. `PutRule` and `PutTargets` are upserts, so
//! re-running them after a crash converges.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_eventbridge::types::{RuleState, Tag, Target};
use serde_json::Value;

use super::tag_diff;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part};

/// The rule's state: it always delivers.
pub const STATE: &str = "ENABLED";

pub struct EventRule {
    pub key: ResourceKey,
    pub name: String,
    pub description: String,
    pub pattern: Value,
    /// The function targeted (its `arn` output).
    pub target: ResourceKey,
    pub target_id: String,
}

/// The ARN of a rule on the default bus, known before the rule exists (for permissions).
pub fn rule_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:events:{region}:{account}:rule/{name}")
}

impl EventRule {
    fn arn(&self, cx: &Context) -> String {
        rule_arn(&cx.aws.region, &cx.aws.account_id, &self.name)
    }

    async fn live_tags(&self, cx: &Context) -> Result<BTreeMap<String, String>, Error> {
        let out = cx
            .aws
            .events
            .list_tags_for_resource()
            .resource_arn(self.arn(cx))
            .send()
            .await
            .step(&self.key, "ListTagsForResource")?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    async fn targets(&self, cx: &Context) -> Result<Vec<(String, String)>, Error> {
        let out = cx
            .aws
            .events
            .list_targets_by_rule()
            .rule(&self.name)
            .send()
            .await
            .step(&self.key, "ListTargetsByRule")?;
        let mut targets: Vec<(String, String)> = out
            .targets()
            .iter()
            .map(|t| (t.id().to_owned(), t.arn().to_owned()))
            .collect();
        targets.sort();
        Ok(targets)
    }
}

fn not_found(e: &Error) -> bool {
    e.code() == Some("ResourceNotFoundException")
}

#[async_trait]
impl Resource for EventRule {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![self.target.clone()]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let live = match cx
            .aws
            .events
            .describe_rule()
            .name(&self.name)
            .send()
            .await
            .step(&self.key, "DescribeRule")
        {
            Ok(rule) => rule,
            Err(e) if not_found(&e) => {
                return Ok(Planned::create(self.key.clone(), self.name.clone()))
            }
            Err(e) => return Err(e),
        };
        cx.publish(&self.key, "arn", self.arn(cx));
        let mut diff = Diff::default();
        let live_pattern: Option<Value> = live
            .event_pattern()
            .and_then(|p| serde_json::from_str(p).ok());
        // Compared as JSON values: key order and spacing are not drift.
        diff.field("EventPattern", Some(&self.pattern), live_pattern.as_ref());
        diff.field("State", Some(STATE), live.state().map(|s| s.as_str()));
        let wanted_targets = vec![(
            self.target_id.clone(),
            cx.output(&self.target, "arn").unwrap_or_default(),
        )];
        diff.field("Targets", wanted_targets, self.targets(cx).await?);
        diff.extend(tag_diff(&cx.tags(), &self.live_tags(cx).await?));
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let tags: Vec<Tag> = cx
            .tags()
            .into_iter()
            .map(|(k, v)| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value")
            })
            .collect();
        let rule_changed = planned.action == Action::Create
            || planned.touches("EventPattern")
            || planned.touches("State");
        if rule_changed {
            cx.aws
                .events
                .put_rule()
                .name(&self.name)
                .description(&self.description)
                .event_pattern(self.pattern.to_string())
                .state(RuleState::from(STATE))
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .step(&self.key, "PutRule")?;
        }
        if planned.action == Action::Create || planned.touches("Targets") {
            let arn = cx.require(&self.key, &self.target, "arn")?;
            let stale: Vec<String> = self
                .targets(cx)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| *id != self.target_id)
                .collect();
            if !stale.is_empty() {
                cx.aws
                    .events
                    .remove_targets()
                    .rule(&self.name)
                    .set_ids(Some(stale))
                    .send()
                    .await
                    .step(&self.key, "RemoveTargets")?;
            }
            let out = cx
                .aws
                .events
                .put_targets()
                .rule(&self.name)
                .targets(
                    Target::builder()
                        .id(&self.target_id)
                        .arn(arn)
                        .build()
                        .expect("id and arn"),
                )
                .send()
                .await
                .step(&self.key, "PutTargets")?;
            if out.failed_entry_count() > 0 {
                let reasons: Vec<String> = out
                    .failed_entries()
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {}",
                            f.error_code().unwrap_or("?"),
                            f.error_message().unwrap_or("?")
                        )
                    })
                    .collect();
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!("PutTargets failed: {}", reasons.join("; ")),
                });
            }
        }
        // PutRule ignores tags for a rule that exists.
        if planned.touches("Tags.") {
            cx.aws
                .events
                .tag_resource()
                .resource_arn(self.arn(cx))
                .set_tags(Some(tags))
                .send()
                .await
                .step(&self.key, "TagResource")?;
        }
        cx.publish(&self.key, "arn", self.arn(cx));
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let targets = match self.targets(cx).await {
            Ok(t) => t,
            Err(e) if not_found(&e) => return Ok(Deleted::Absent),
            Err(e) => return Err(e),
        };
        // A rule with targets cannot be deleted.
        if !targets.is_empty() {
            cx.aws
                .events
                .remove_targets()
                .rule(&self.name)
                .set_ids(Some(targets.into_iter().map(|(id, _)| id).collect()))
                .send()
                .await
                .step(&self.key, "RemoveTargets")?;
        }
        match cx
            .aws
            .events
            .delete_rule()
            .name(&self.name)
            .send()
            .await
            .step(&self.key, "DeleteRule")
        {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if not_found(&e) => Ok(Deleted::Absent),
            Err(e) => Err(e),
        }
    }

    /// On the default bus (no `EventBusName`), as `PutRule` makes it.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let target = cx
            .require(&self.key, &self.target, "arn")
            .map_err(|e| e.to_string())?;
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::Events::Rule",
            serde_json::json!({
                "Name": self.name,
                "Description": self.description,
                "EventPattern": self.pattern,
                "State": STATE,
                "Targets": [{"Id": self.target_id, "Arn": target}],
                "Tags": template::tags(cx),
            }),
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_targets_the_function_with_the_same_pattern() {
        let cx = crate::systems::tests::symbolic_context();
        let rule = EventRule {
            key: ResourceKey::new("event_rule", "done"),
            name: "demo-done".into(),
            description: "done".into(),
            pattern: serde_json::json!({"source": ["aws.transcribe"]}),
            target: ResourceKey::new("function", "save_text"),
            target_id: "save_text".into(),
        };
        let parts = rule.cloudformation(&cx).unwrap();
        let [Part::Resource(r)] = parts.as_slice() else {
            panic!("one resource: {parts:?}")
        };
        let p = &r.properties;
        assert_eq!(p["EventPattern"], rule.pattern);
        assert_eq!(p["State"], "ENABLED");
        assert_eq!(
            p["Targets"],
            serde_json::json!([{"Id": "save_text", "Arn": template::reference("FunctionSaveText.Arn")}])
        );
    }

    #[test]
    fn rule_arns_are_on_the_default_bus() {
        assert_eq!(
            rule_arn("us-east-1", "111122223333", "demo-transcribe-done"),
            "arn:aws:events:us-east-1:111122223333:rule/demo-transcribe-done"
        );
    }
}
