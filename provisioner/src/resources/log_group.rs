//! A function's CloudWatch Logs group, `/aws/lambda/{function}`, made by the stack before the
//! function with the retention `stack.yaml` sets, and tagged. Lambda writes there with the
//! function's role, which may create streams and put events in that one group but not create
//! groups: a group deleted by hand is not silently made again (without retention, kept
//! forever) by the next invocation, and `down` removes the logs with the stack.
//!
//! Found by its name (unique per account and region). Ownership: a group tagged as another
//! stack's is refused; an untagged one is adopted (see [`Ownership`]).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::{owned_by, tag_diff};
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey, OWNER_TAG,
};
use crate::template::{self, CfnResource, Part};

pub struct LogGroup {
    pub key: ResourceKey,
    /// `/aws/lambda/{function name}`: the group Lambda writes the function's logs to.
    pub name: String,
    /// One of the values CloudWatch Logs accepts (checked when `stack.yaml` is read).
    pub retention_days: i32,
}

/// The log group Lambda writes a function's logs to by default.
pub fn lambda_log_group_name(function_name: &str) -> String {
    format!("/aws/lambda/{function_name}")
}

/// What the stack may do with a log group of its name, by the group's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    Owned,
    /// Untagged: Lambda made it on a first invocation under an earlier version of the stack,
    /// when the function roles could still create their log group (or someone made it by hand
    /// under the stack's own name). Its logs are the stack's functions': it is adopted, given
    /// the stack's tags and retention, and deleted by `down` like a group the stack made.
    Adoptable,
    /// Tagged as another stack's: left alone.
    Foreign(String),
}

pub fn ownership(tags: &BTreeMap<String, String>, stack: &str) -> Ownership {
    if owned_by(tags, stack) {
        Ownership::Owned
    } else {
        match tags.get(OWNER_TAG) {
            Some(other) => Ownership::Foreign(other.clone()),
            None => Ownership::Adoptable,
        }
    }
}

/// The live state `plan` compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    /// `None`: the group never expires its events.
    pub retention_days: Option<i32>,
    pub tags: BTreeMap<String, String>,
}

/// Differences between the wanted group and the live one: retention, and the stack's tags
/// (tags added by hand are not drift).
pub fn diff(retention_days: i32, tags: &BTreeMap<String, String>, live: &Live) -> Vec<FieldDiff> {
    let mut diff = Diff::default();
    diff.field("RetentionInDays", Some(retention_days), live.retention_days);
    diff.extend(tag_diff(tags, &live.tags));
    diff.into_vec()
}

/// CloudWatch Logs answers `OperationAbortedException` to concurrent changes of one group
/// (Lambda making it while `up` does): they pass at once.
fn aborted(e: &Error) -> bool {
    e.code() == Some("OperationAbortedException")
}

impl LogGroup {
    /// The group's ARN as the tagging APIs take it: without the trailing `:*` that
    /// `DescribeLogGroups` puts on `arn`.
    fn arn(&self, cx: &Context) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{}",
            cx.aws.region, cx.aws.account_id, self.name
        )
    }

    /// The group's retention, and its ARN for the tagging APIs, if it exists. The prefix
    /// search also finds longer names (`…-save_text2`): only the exact name counts.
    async fn find(&self, cx: &Context) -> Result<Option<(Option<i32>, String)>, Error> {
        let mut token: Option<String> = None;
        loop {
            let out = cx
                .aws
                .logs
                .describe_log_groups()
                .log_group_name_prefix(&self.name)
                .set_next_token(token.take())
                .send()
                .await
                .step(&self.key, "DescribeLogGroups")?;
            if let Some(group) = out
                .log_groups()
                .iter()
                .find(|g| g.log_group_name() == Some(self.name.as_str()))
            {
                let arn = group
                    .log_group_arn()
                    .map(str::to_owned)
                    .or_else(|| group.arn().map(|a| a.trim_end_matches(":*").to_owned()))
                    .unwrap_or_else(|| self.arn(cx));
                return Ok(Some((group.retention_in_days(), arn)));
            }
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    async fn tags(&self, cx: &Context, arn: &str) -> Result<BTreeMap<String, String>, Error> {
        let out = cx
            .aws
            .logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .step(&self.key, "ListTagsForResource")?;
        Ok(out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    fn refused(&self, other: &str) -> Error {
        Error::Refused {
            resource: self.key.clone(),
            message: format!(
                "log group {} is tagged as stack {other:?}'s; it is left alone",
                self.name
            ),
        }
    }

    fn publish(&self, cx: &Context, arn: &str) {
        cx.publish(&self.key, "name", &self.name);
        cx.publish(&self.key, "arn", arn);
    }

    async fn tag(&self, cx: &Context, arn: &str) -> Result<(), Error> {
        let tags: HashMap<String, String> = cx.tags().into_iter().collect();
        cx.aws
            .logs
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .step(&self.key, "TagResource")?;
        Ok(())
    }

    async fn put_retention(&self, cx: &Context) -> Result<(), Error> {
        retry_when(Backoff::READ_AFTER_CREATE, aborted, || async {
            cx.aws
                .logs
                .put_retention_policy()
                .log_group_name(&self.name)
                .retention_in_days(self.retention_days)
                .send()
                .await
                .step(&self.key, "PutRetentionPolicy")
        })
        .await?;
        Ok(())
    }

    /// Creates the group with the stack's tags. One that exists already was made by a run
    /// interrupted before it saw the answer (or before it set the retention), or by Lambda in
    /// the meantime: checked as `plan` checks it, and tagged.
    async fn create(&self, cx: &Context) -> Result<(), Error> {
        let tags: HashMap<String, String> = cx.tags().into_iter().collect();
        let created = retry_when(Backoff::READ_AFTER_CREATE, aborted, || async {
            cx.aws
                .logs
                .create_log_group()
                .log_group_name(&self.name)
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .step(&self.key, "CreateLogGroup")
        })
        .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {
                let arn = self.arn(cx);
                match ownership(&self.tags(cx, &arn).await?, cx.stack_name()) {
                    Ownership::Foreign(other) => Err(self.refused(&other)),
                    Ownership::Owned => Ok(()),
                    Ownership::Adoptable => self.tag(cx, &arn).await,
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Resource for LogGroup {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some((retention_days, arn)) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let tags = self.tags(cx, &arn).await?;
        if let Ownership::Foreign(other) = ownership(&tags, cx.stack_name()) {
            return Err(self.refused(&other));
        }
        self.publish(cx, &arn);
        let live = Live {
            retention_days,
            tags,
        };
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff(self.retention_days, &cx.tags(), &live),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let arn = cx.output(&self.key, "arn").unwrap_or_else(|| self.arn(cx));
        if planned.action == Action::Create {
            self.create(cx).await?;
            self.put_retention(cx).await?;
        } else {
            if planned.touches("RetentionInDays") {
                self.put_retention(cx).await?;
            }
            if planned.touches("Tags.") {
                self.tag(cx, &arn).await?;
            }
        }
        self.publish(cx, &arn);
        Ok(())
    }

    /// The functions' logs go with the stack: only a group of the stack's (or an untagged one,
    /// adopted) is deleted.
    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some((_, arn)) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        if let Ownership::Foreign(other) = ownership(&self.tags(cx, &arn).await?, cx.stack_name()) {
            return Err(self.refused(&other));
        }
        match cx
            .aws
            .logs
            .delete_log_group()
            .log_group_name(&self.name)
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
            Err(e) => Err(e).step(&self.key, "DeleteLogGroup"),
        }
    }

    /// Deleted with the stack, as `down` deletes it.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let group = CfnResource::new(
            &self.key,
            "AWS::Logs::LogGroup",
            serde_json::json!({
                "LogGroupName": self.name,
                "RetentionInDays": self.retention_days,
                "Tags": template::tags(cx),
            }),
        )
        .skip_check(
            "CKV_AWS_158",
            "no customer managed key: CloudWatch Logs encrypts every group at rest with its \
             own keys; a key of the stack's would need a key policy for the service, and the \
             SDK engine sets none either",
        );
        Ok(vec![Part::Resource(group)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_group_is_named_as_lambda_names_it() {
        assert_eq!(
            lambda_log_group_name("demo-save_text"),
            "/aws/lambda/demo-save_text"
        );
    }

    #[test]
    fn retention_and_the_stacks_tags_are_compared() {
        let wanted = tags(&[(OWNER_TAG, "demo"), ("team", "audio")]);
        let live = Live {
            retention_days: Some(30),
            tags: tags(&[(OWNER_TAG, "demo"), ("team", "audio"), ("extra", "by hand")]),
        };
        assert!(diff(30, &wanted, &live).is_empty());
        let changed = diff(7, &wanted, &live);
        assert_eq!(changed, vec![FieldDiff::new("RetentionInDays", "7", "30")]);
        // A group Lambda made keeps its events forever and has no tags.
        let auto = Live {
            retention_days: None,
            tags: BTreeMap::new(),
        };
        let fields: Vec<(String, String)> = diff(30, &wanted, &auto)
            .into_iter()
            .map(|d| (d.field, d.actual))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("RetentionInDays".into(), "(not set)".into()),
                (format!("Tags.{OWNER_TAG}"), "(not set)".into()),
                ("Tags.team".into(), "(not set)".into()),
            ]
        );
    }

    #[test]
    fn untagged_groups_are_adopted_and_other_stacks_groups_refused() {
        assert_eq!(
            ownership(&tags(&[(OWNER_TAG, "demo")]), "demo"),
            Ownership::Owned
        );
        assert_eq!(
            ownership(&tags(&[("team", "audio")]), "demo"),
            Ownership::Adoptable
        );
        assert_eq!(
            ownership(&tags(&[(OWNER_TAG, "other")]), "demo"),
            Ownership::Foreign("other".into())
        );
    }

    #[test]
    fn the_template_keeps_the_name_and_retention() {
        let cx = crate::systems::tests::symbolic_context();
        let group = LogGroup {
            key: ResourceKey::new("log_group", "save_text"),
            name: lambda_log_group_name("demo-save_text"),
            retention_days: 30,
        };
        let parts = group.cloudformation(&cx).unwrap();
        let [Part::Resource(r)] = parts.as_slice() else {
            panic!("one resource: {parts:?}")
        };
        assert_eq!(r.logical_id, "LogGroupSaveText");
        assert_eq!(r.properties["LogGroupName"], "/aws/lambda/demo-save_text");
        assert_eq!(r.properties["RetentionInDays"], 30);
    }

    #[test]
    fn only_concurrent_changes_are_retried() {
        let error = |code: &str| Error::Aws {
            resource: ResourceKey::new("log_group", "g"),
            step: "CreateLogGroup",
            code: Some(code.into()),
            source: code.to_owned().into(),
        };
        assert!(aborted(&error("OperationAbortedException")));
        assert!(!aborted(&error("ResourceAlreadyExistsException")));
        assert!(!aborted(&error("InvalidParameterException")));
    }
}
