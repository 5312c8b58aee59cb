//! One CloudFormation stack: its status, its events streamed as progress, and the wait for
//! an operation to end.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_cloudformation::types::{EventFilter, OperationEvent, Stack, StackEvent};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::engine::Context;

/// What went wrong, told as CloudFormation told it.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("{stack}: {call}: {message}")]
    Aws {
        stack: String,
        call: &'static str,
        message: String,
    },
    #[error("{stack}: {0}", .message)]
    Failed { stack: String, message: String },
}

/// Wraps an SDK error with the stack and the call.
pub fn aws_error<'a, E>(stack: &'a str, call: &'static str) -> impl FnOnce(E) -> StackError + 'a
where
    E: std::error::Error + ProvideErrorMetadata,
{
    move |e| StackError::Aws {
        stack: stack.to_owned(),
        call,
        message: match e.code() {
            Some(code) => format!("{code}: {}", e.message().unwrap_or("(no message)")),
            None => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        },
    }
}

/// How often statuses are read: CloudFormation's own waiters poll every 30 s; a person
/// watching wants more, and the local emulator answers at once.
pub fn poll_interval(cx: &Context) -> Duration {
    if cx.aws.local {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    }
}

/// The stack named `name` (or with this stack id), or `None` if it does not exist or was
/// deleted.
pub async fn describe(cx: &Context, name: &str) -> Result<Option<Stack>, StackError> {
    match cx
        .aws
        .cloudformation
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| status(s) != "DELETE_COMPLETE")
            .cloned()),
        // CloudFormation answers a missing stack with a ValidationError "Stack with id X does
        // not exist".
        Err(e)
            if e.code() == Some("ValidationError")
                && e.message().is_some_and(|m| m.contains("does not exist")) =>
        {
            Ok(None)
        }
        Err(e) => Err(aws_error(name, "DescribeStacks")(e)),
    }
}

pub fn status(stack: &Stack) -> &str {
    stack.stack_status().map(|s| s.as_str()).unwrap_or_default()
}

/// An operation is under way; `REVIEW_IN_PROGRESS` (a stack made by a change set, never
/// executed) is at rest.
pub fn in_progress(status: &str) -> bool {
    status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS"
}

/// The stack's newest event id, where the events of the next operation will start.
pub async fn latest_event(cx: &Context, stack_id: &str) -> Result<Option<String>, StackError> {
    let out = cx
        .aws
        .cloudformation
        .describe_stack_events()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(aws_error(stack_id, "DescribeStackEvents"))?;
    Ok(out
        .stack_events()
        .first()
        .and_then(|e| e.event_id())
        .map(str::to_owned))
}

/// What [`validation_failure`] looks at.
pub enum Of<'a> {
    Stack(&'a str),
    ChangeSet(&'a str),
}

/// How an operation ended.
pub struct Ended {
    pub status: String,
    /// The first resource that failed, and CloudFormation's reason, if any did.
    pub first_failure: Option<String>,
}

impl Ended {
    pub fn succeeded(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
        )
    }

    /// The failure as a person should read it: what failed first and why, and where the
    /// rollback left the stack.
    pub fn failure(&self) -> String {
        let first = self
            .first_failure
            .as_deref()
            .unwrap_or("CloudFormation named no failing resource");
        format!("{first}; the stack ended {}", self.status)
    }
}

/// Streams the events after `since` (one line each on stderr, `label` first) until the
/// stack's operation ends; returns how it ended. `stack_id` is the stack's ARN, which still
/// answers once the stack is deleted.
pub async fn follow(
    cx: &Context,
    label: &str,
    stack_id: &str,
    since: Option<String>,
    show: bool,
) -> Result<Ended, StackError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut first_failure = None;
    // DescribeStacks is eventually consistent: right after ExecuteChangeSet or DeleteStack it
    // may still answer the status from before (UPDATE_COMPLETE, say). A status at rest counts
    // only once the operation is seen under way (an in-progress status, or a stack event of
    // its own after `since`).
    let mut under_way = false;
    let spinner = cx.spinner(format!("{label}: waiting for CloudFormation"));
    loop {
        let stack = cx
            .aws
            .cloudformation
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await
            .map_err(aws_error(label, "DescribeStacks"))?;
        let status = stack
            .stacks()
            .first()
            .map(|s| status(s).to_owned())
            .unwrap_or_default();
        under_way |= in_progress(&status);
        for event in new_events(cx, stack_id, since.as_deref(), &mut seen).await? {
            under_way |= event.resource_type() == Some("AWS::CloudFormation::Stack");
            let line = describe_event(&event);
            if first_failure.is_none() && is_cause(&event) {
                first_failure = Some(line.clone());
            }
            if show {
                spinner.suspend(|| eprintln!("{label}: {line}"));
            }
        }
        spinner.set_message(format!("{label}: {status}"));
        if under_way && !in_progress(&status) {
            let mut ended = Ended {
                status,
                first_failure,
            };
            if !ended.succeeded() && ended.first_failure.is_none() {
                ended.first_failure = validation_failure(cx, Of::Stack(stack_id)).await?;
            }
            return Ok(ended);
        }
        tokio::time::sleep(poll_interval(cx)).await;
    }
}

/// The events newer than `since` not shown yet, oldest first. CloudFormation lists events
/// newest first, a page at a time: pages are read until `since` (or the end) is reached.
async fn new_events(
    cx: &Context,
    stack_id: &str,
    since: Option<&str>,
    seen: &mut HashSet<String>,
) -> Result<Vec<StackEvent>, StackError> {
    let mut fresh = Vec::new();
    let mut token = None;
    'pages: loop {
        let page = cx
            .aws
            .cloudformation
            .describe_stack_events()
            .stack_name(stack_id)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_error(stack_id, "DescribeStackEvents"))?;
        for event in page.stack_events() {
            let id = event.event_id().unwrap_or_default();
            if Some(id) == since || seen.contains(id) {
                break 'pages;
            }
            fresh.push(event.clone());
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    for event in &fresh {
        seen.insert(event.event_id().unwrap_or_default().to_owned());
    }
    fresh.reverse();
    Ok(fresh)
}

/// CloudFormation validates a change before it deploys anything (a bucket name taken, for
/// one); such a failure is no resource's event, the stack's or the change set's status says
/// "use the DescribeEvents API": the first failed event of the latest operation, with what
/// was checked and why it failed. `of` is the stack or the change set (its ARN).
pub async fn validation_failure(cx: &Context, of: Of<'_>) -> Result<Option<String>, StackError> {
    let request = cx
        .aws
        .cloudformation
        .describe_events()
        .filters(EventFilter::builder().failed_events(true).build());
    let (request, label) = match of {
        Of::Stack(id) => (request.stack_name(id), id),
        Of::ChangeSet(arn) => (request.change_set_name(arn), arn),
    };
    let pages: Vec<_> = request
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(aws_error(label, "DescribeEvents"))?;
    let failed: Vec<&OperationEvent> = pages
        .iter()
        .flat_map(|p| p.operation_events())
        .filter(|e| {
            e.logical_resource_id().is_some()
                && e.resource_type() != Some("AWS::CloudFormation::Stack")
        })
        .collect();
    fn when(e: &&OperationEvent) -> Option<(i64, u32)> {
        e.timestamp().map(|t| (t.secs(), t.subsec_nanos()))
    }
    // The stack's history holds earlier operations' failures too: the latest operation's.
    let latest = failed
        .iter()
        .max_by_key(|e| when(e))
        .and_then(|e| e.operation_id());
    let mut events: Vec<&OperationEvent> = failed
        .iter()
        .copied()
        .filter(|e| e.operation_id() == latest)
        .collect();
    events.sort_by_key(when);
    Ok(events.first().map(|e| {
        let reason = e
            .validation_status_reason()
            .or(e.resource_status_reason())
            .unwrap_or("no reason given");
        let check = e
            .validation_name()
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        format!(
            "validation failed on {} ({}): {check}{reason}",
            e.logical_resource_id().unwrap_or_default(),
            e.resource_type().unwrap_or_default()
        )
    }))
}

/// A failure that is a cause, not a consequence: CloudFormation cancels the resources in
/// flight when one fails ("Resource creation cancelled"), and fails the stack itself.
fn is_cause(event: &StackEvent) -> bool {
    let status = event
        .resource_status()
        .map(|s| s.as_str())
        .unwrap_or_default();
    let reason = event.resource_status_reason().unwrap_or_default();
    status.ends_with("_FAILED")
        && event.resource_type() != Some("AWS::CloudFormation::Stack")
        && !reason.contains("cancelled")
}

fn describe_event(event: &StackEvent) -> String {
    let mut line = format!(
        "{} {} ({})",
        event
            .resource_status()
            .map(|s| s.as_str())
            .unwrap_or_default(),
        event.logical_resource_id().unwrap_or_default(),
        event.resource_type().unwrap_or_default(),
    );
    if let Some(reason) = event.resource_status_reason().filter(|r| !r.is_empty()) {
        line.push_str(": ");
        line.push_str(reason);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::ResourceStatus;

    fn event(status: &str, kind: &str, reason: &str) -> StackEvent {
        StackEvent::builder()
            .event_id("e")
            .stack_id("s")
            .stack_name("s")
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .logical_resource_id("FunctionSave")
            .resource_type(kind)
            .resource_status(ResourceStatus::from(status))
            .resource_status_reason(reason)
            .build()
    }

    #[test]
    fn the_cause_is_the_first_failure_that_was_not_cancelled() {
        let cause = event("CREATE_FAILED", "AWS::Lambda::Function", "Role not found");
        assert!(is_cause(&cause));
        assert_eq!(
            describe_event(&cause),
            "CREATE_FAILED FunctionSave (AWS::Lambda::Function): Role not found"
        );
        assert!(!is_cause(&event(
            "CREATE_FAILED",
            "AWS::S3::Bucket",
            "Resource creation cancelled"
        )));
        assert!(!is_cause(&event(
            "ROLLBACK_IN_PROGRESS",
            "AWS::CloudFormation::Stack",
            "The following resource(s) failed to create: [FunctionSave]."
        )));
        assert!(!is_cause(&event("CREATE_COMPLETE", "AWS::S3::Bucket", "")));
    }

    #[test]
    fn review_in_progress_is_at_rest() {
        assert!(in_progress("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"));
        assert!(in_progress("ROLLBACK_IN_PROGRESS"));
        assert!(!in_progress("REVIEW_IN_PROGRESS"));
        assert!(!in_progress("ROLLBACK_COMPLETE"));
    }
}
