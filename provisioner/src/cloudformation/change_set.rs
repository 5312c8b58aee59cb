//! Change sets: what CloudFormation will do to a stack, created and described before
//! anything is executed.

use std::time::Duration;

use aws_sdk_cloudformation::types::{
    Capability, Change, ChangeSetStatus, ChangeSetType, ExecutionStatus, RequiresRecreation, Tag,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::stack::{self, aws_error, poll_interval, StackError};
use crate::engine::{Context, FieldDiff};
use crate::output::ResourceLine;

/// A change set ready to be executed.
pub struct ChangeSet {
    /// Its ARN.
    pub id: String,
    pub name: String,
    /// The stack's ARN (a `CREATE` change set makes the stack, in `REVIEW_IN_PROGRESS`).
    pub stack_id: String,
    pub changes: Vec<ResourceLine>,
}

pub enum Prepared {
    /// The template asks for nothing new; the empty change set was deleted.
    NoChanges,
    Ready(ChangeSet),
}

/// What a change set is made from.
pub struct Request<'a> {
    pub stack: &'a str,
    pub template_url: String,
    pub create: bool,
    /// Names the change set (`provision-{name}`): the same template on the same state of the
    /// stack gives the same name, so that a run interrupted after creating it finds it again
    /// instead of making another.
    pub name: String,
    pub description: &'a str,
    /// Tags of the CloudFormation stack itself (the ownership tag), which CloudFormation
    /// also propagates to the resources.
    pub tags: Vec<Tag>,
}

/// How long CloudFormation may take to compute a change set; minutes are unusual.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Creates the change set (or finds the one an interrupted run created), waits for it and
/// describes its changes.
pub async fn prepare(cx: &Context, request: &Request<'_>) -> Result<Prepared, StackError> {
    let name = format!("provision-{}", request.name);
    let cfn = &cx.aws.cloudformation;
    let created = cfn
        .create_change_set()
        .stack_name(request.stack)
        .change_set_name(&name)
        .template_url(&request.template_url)
        .change_set_type(if request.create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        })
        // The template names its roles (RoleName): CAPABILITY_NAMED_IAM acknowledges that.
        .capabilities(Capability::CapabilityNamedIam)
        .set_tags(Some(request.tags.clone()))
        .description(request.description)
        // No ClientToken: a retried call finds the change set by its name
        // (AlreadyExistsException below), and a token derived from the name would be the same
        // for the same template on a stack of the same name made again later.
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("AlreadyExistsException") => {
            // Made by an interrupted run from the same template: used as it is, unless it
            // failed (then made again).
            let existing = cfn
                .describe_change_set()
                .stack_name(request.stack)
                .change_set_name(&name)
                .send()
                .await
                .map_err(aws_error(request.stack, "DescribeChangeSet"))?;
            // One that failed, or that cannot be executed any more (executed already, on a
            // stack since deleted: an emulator may still list it), is made again.
            let usable = existing.status() != Some(&ChangeSetStatus::Failed)
                && existing.execution_status().is_none_or(|e| {
                    matches!(e, ExecutionStatus::Available | ExecutionStatus::Unavailable)
                });
            if !usable {
                delete(cx, request.stack, existing.change_set_id().unwrap_or(&name)).await?;
                return Box::pin(prepare(cx, request)).await;
            }
        }
        Err(e) => return Err(aws_error(request.stack, "CreateChangeSet")(e)),
    }
    let began = std::time::Instant::now();
    let described = loop {
        let out = cfn
            .describe_change_set()
            .stack_name(request.stack)
            .change_set_name(&name)
            .include_property_values(true)
            .send()
            .await
            .map_err(aws_error(request.stack, "DescribeChangeSet"))?;
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) => break out,
            Some(ChangeSetStatus::Failed) => {
                let reason = out.status_reason().unwrap_or_default().to_owned();
                if no_changes(&reason) {
                    delete(cx, request.stack, &name).await?;
                    return Ok(Prepared::NoChanges);
                }
                // Early validation (a name taken) fails the change set itself; its reason
                // only points at DescribeEvents, which says what failed.
                let cause = match out.change_set_id() {
                    Some(arn) => stack::validation_failure(cx, stack::Of::ChangeSet(arn)).await?,
                    None => None,
                };
                let message = match cause {
                    Some(cause) => format!("change set {name} failed: {cause} ({reason})"),
                    None => format!("change set {name} failed: {reason}"),
                };
                return Err(StackError::Failed {
                    stack: request.stack.to_owned(),
                    message,
                });
            }
            _ if began.elapsed() > CREATE_TIMEOUT => {
                return Err(StackError::Failed {
                    stack: request.stack.to_owned(),
                    message: format!(
                        "change set {name} was not ready after {} minutes",
                        CREATE_TIMEOUT.as_secs() / 60
                    ),
                })
            }
            _ => tokio::time::sleep(poll_interval(cx)).await,
        }
    };
    let id = described.change_set_id().unwrap_or(&name).to_owned();
    let stack_id = described.stack_id().unwrap_or(request.stack).to_owned();
    let mut changes: Vec<Change> = described.changes().to_vec();
    let mut token = described.next_token().map(str::to_owned);
    while let Some(next) = token {
        let page = cfn
            .describe_change_set()
            .change_set_name(&id)
            .next_token(next)
            .include_property_values(true)
            .send()
            .await
            .map_err(aws_error(request.stack, "DescribeChangeSet"))?;
        changes.extend(page.changes().iter().cloned());
        token = page.next_token().map(str::to_owned);
    }
    Ok(Prepared::Ready(ChangeSet {
        id,
        name,
        stack_id,
        changes: changes
            .iter()
            .filter_map(|c| line(request.stack, c))
            .collect(),
    }))
}

/// CloudFormation fails a change set that changes nothing, and says so in its reason.
fn no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

pub async fn delete(cx: &Context, stack: &str, change_set: &str) -> Result<(), StackError> {
    match cx
        .aws
        .cloudformation
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(change_set)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ChangeSetNotFound") => Ok(()),
        Err(e) => Err(aws_error(stack, "DeleteChangeSet")(e)),
    }
}

/// Executes it, with the unique part of its ARN as the idempotency token: a retried call
/// executes it once, and no other change set ever has the same token.
pub async fn execute(cx: &Context, stack: &str, change_set: &ChangeSet) -> Result<(), StackError> {
    let token = change_set.id.rsplit('/').next().unwrap_or(&change_set.name);
    cx.aws
        .cloudformation
        .execute_change_set()
        .change_set_name(&change_set.id)
        .client_request_token(token)
        .send()
        .await
        .map_err(aws_error(stack, "ExecuteChangeSet"))?;
    Ok(())
}

/// A change as a report line: the resource, what will be done (create, update, replace,
/// delete) and, for updates, each property with its values when CloudFormation gives them.
fn line(stack: &str, change: &Change) -> Option<ResourceLine> {
    let rc = change.resource_change()?;
    let action = rc.action().map(|a| a.as_str()).unwrap_or_default();
    let replacement = rc.replacement().map(|r| r.as_str()).unwrap_or_default();
    // "Conditional": a property that forces replacement changes to a value known only during
    // the deploy (RequiresRecreation Always, Evaluation Dynamic): it may replace, so it counts
    // as a replacement (`up` refuses it without --allow-replace).
    let may_recreate = rc.details().iter().any(|d| {
        d.target()
            .and_then(|t| t.requires_recreation())
            .is_some_and(|r| *r != RequiresRecreation::Never)
    });
    let result = match (action, replacement) {
        ("Add", _) => "create",
        ("Remove", _) => "delete",
        ("Modify", "True") => "replace",
        ("Modify", "Conditional") if may_recreate => "replace",
        _ => "update",
    };
    let resource = format!(
        "{stack}/{} ({})",
        rc.logical_resource_id().unwrap_or_default(),
        rc.resource_type().unwrap_or_default()
    );
    let mut line = ResourceLine::named(resource, result);
    line.physical_id = rc.physical_resource_id().map(str::to_owned);
    if replacement == "Conditional" {
        line.notes
            .push("may be replaced: CloudFormation decides when it runs".into());
    }
    for detail in rc.details() {
        let Some(target) = detail.target() else {
            continue;
        };
        let attribute = target.attribute().map(|a| a.as_str()).unwrap_or_default();
        let mut field = match target.name() {
            Some(name) => format!("{attribute}.{name}"),
            None => attribute.to_owned(),
        };
        if target.requires_recreation() == Some(&RequiresRecreation::Always) {
            field.push_str(" (forces replacement)");
        }
        if line.changes.iter().any(|c| c.field == field) {
            continue;
        }
        line.changes.push(FieldDiff::new(
            field,
            target.after_value().unwrap_or("(changed)"),
            target.before_value().unwrap_or("(as deployed)"),
        ));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{
        ChangeAction, Replacement, ResourceAttribute, ResourceChange, ResourceChangeDetail,
        ResourceTargetDefinition,
    };

    fn change(action: ChangeAction, replacement: Option<Replacement>) -> Change {
        let detail = ResourceChangeDetail::builder()
            .target(
                ResourceTargetDefinition::builder()
                    .attribute(ResourceAttribute::Properties)
                    .name("Timeout")
                    .requires_recreation(RequiresRecreation::Never)
                    .before_value("10")
                    .after_value("30")
                    .build(),
            )
            .build();
        Change::builder()
            .resource_change(
                ResourceChange::builder()
                    .action(action)
                    .logical_resource_id("FunctionSaveText")
                    .physical_resource_id("stt-save-text")
                    .resource_type("AWS::Lambda::Function")
                    .set_replacement(replacement)
                    .details(detail)
                    .build(),
            )
            .build()
    }

    #[test]
    fn changes_read_as_the_sdk_engine_plan_reads() {
        let l = line(
            "demo-stt",
            &change(ChangeAction::Modify, Some(Replacement::False)),
        )
        .unwrap();
        assert_eq!(
            l.resource,
            "demo-stt/FunctionSaveText (AWS::Lambda::Function)"
        );
        assert_eq!(l.result, "update");
        assert_eq!(l.physical_id.as_deref(), Some("stt-save-text"));
        assert_eq!(
            l.changes,
            vec![FieldDiff::new("Properties.Timeout", "30", "10")]
        );
        let l = line(
            "demo-stt",
            &change(ChangeAction::Modify, Some(Replacement::True)),
        )
        .unwrap();
        assert_eq!(l.result, "replace");
        let l = line(
            "demo-stt",
            &change(ChangeAction::Modify, Some(Replacement::Conditional)),
        )
        .unwrap();
        assert_eq!(
            l.result, "update",
            "no property that forces replacement changes"
        );
        assert_eq!(l.notes.len(), 1);
        let mut recreating = change(ChangeAction::Modify, Some(Replacement::Conditional));
        let rc = recreating.resource_change.as_mut().unwrap();
        rc.details.as_mut().unwrap()[0]
            .target
            .as_mut()
            .unwrap()
            .requires_recreation = Some(RequiresRecreation::Always);
        assert_eq!(line("s", &recreating).unwrap().result, "replace");
        assert_eq!(
            line("s", &change(ChangeAction::Add, None)).unwrap().result,
            "create"
        );
        assert_eq!(
            line("s", &change(ChangeAction::Remove, None))
                .unwrap()
                .result,
            "delete"
        );
    }

    #[test]
    fn an_empty_change_set_is_recognised_by_its_reason() {
        assert!(no_changes(
            "The submitted information didn't contain changes. Submit different information \
             to create a change set."
        ));
        assert!(no_changes("No updates are to be performed."));
        assert!(!no_changes(
            "Template format error: Unresolved resource dependencies"
        ));
    }
}
