//! CloudFormation's own drift detection (DetectStackDrift), read back as the SDK engine's
//! `drift` report: one line per resource, each differing property with both values.

use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{
    DifferenceType, PropertyDifference, StackDriftDetectionStatus, StackResourceDrift,
    StackResourceDriftStatus,
};

use super::stack::{aws_error, poll_interval, StackError};
use crate::engine::{Context, FieldDiff};
use crate::output::ResourceLine;

/// CloudFormation checks a stack's resources one by one; a large stack takes minutes.
const DETECTION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Detects drift on the stack and reads the result, one line per resource.
pub async fn detect(cx: &Context, stack: &str) -> Result<Vec<ResourceLine>, StackError> {
    let cfn = &cx.aws.cloudformation;
    let detection = cfn
        .detect_stack_drift()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_error(stack, "DetectStackDrift"))?;
    let id = detection
        .stack_drift_detection_id()
        .unwrap_or_default()
        .to_owned();
    let began = Instant::now();
    let _spinner = cx.spinner(format!("{stack}: CloudFormation is detecting drift"));
    let partial = loop {
        let status = cfn
            .describe_stack_drift_detection_status()
            .stack_drift_detection_id(&id)
            .send()
            .await
            .map_err(aws_error(stack, "DescribeStackDriftDetectionStatus"))?;
        match status.detection_status() {
            Some(StackDriftDetectionStatus::DetectionComplete) => break None,
            // Some resources could not be checked: the others' results still stand.
            Some(StackDriftDetectionStatus::DetectionFailed) => {
                break Some(
                    status
                        .detection_status_reason()
                        .unwrap_or_default()
                        .to_owned(),
                )
            }
            _ if began.elapsed() > DETECTION_TIMEOUT => {
                return Err(StackError::Failed {
                    stack: stack.to_owned(),
                    message: format!(
                        "drift detection {id} did not end within {} minutes",
                        DETECTION_TIMEOUT.as_secs() / 60
                    ),
                })
            }
            _ => tokio::time::sleep(poll_interval(cx)).await,
        }
    };
    let mut drifts = Vec::new();
    let mut token = None;
    loop {
        let page = cfn
            .describe_stack_resource_drifts()
            .stack_name(stack)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_error(stack, "DescribeStackResourceDrifts"))?;
        drifts.extend(page.stack_resource_drifts().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut lines: Vec<ResourceLine> = drifts.iter().map(|d| line(stack, d)).collect();
    // DescribeStackResourceDrifts leaves out the resources CloudFormation does not check
    // (types without drift support): listed too, so the report has every resource.
    let resources: Vec<_> = cfn
        .list_stack_resources()
        .stack_name(stack)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(aws_error(stack, "ListStackResources"))?;
    for r in resources.iter().flat_map(|p| p.stack_resource_summaries()) {
        let id = r.logical_resource_id().unwrap_or_default();
        if drifts.iter().any(|d| d.logical_resource_id() == Some(id)) {
            continue;
        }
        let mut unchecked = ResourceLine::named(
            format!("{stack}/{id} ({})", r.resource_type().unwrap_or_default()),
            "unchecked",
        );
        unchecked.physical_id = r.physical_resource_id().map(str::to_owned);
        let status = r
            .drift_information()
            .and_then(|d| d.stack_resource_drift_status())
            .map_or("no status", |s| s.as_str());
        unchecked
            .notes
            .push(format!("not checked by CloudFormation ({status})"));
        lines.push(unchecked);
    }
    lines.sort_by(|a, b| a.resource.cmp(&b.resource));
    if let Some(reason) = partial {
        let mut stack_line = ResourceLine::named(format!("cloudformation/{stack}"), "noop");
        stack_line
            .notes
            .push(format!("drift detection ended early: {reason}"));
        lines.insert(0, stack_line);
    }
    Ok(lines)
}

/// `update` (drifted) with the differing properties, `create` (missing: deleted by hand),
/// `noop` (in sync), or `unchecked` (CloudFormation checks only some types).
fn line(stack: &str, drift: &StackResourceDrift) -> ResourceLine {
    let resource = format!(
        "{stack}/{} ({})",
        drift.logical_resource_id().unwrap_or_default(),
        drift.resource_type().unwrap_or_default()
    );
    let status = drift.stack_resource_drift_status();
    let result = match status {
        Some(StackResourceDriftStatus::Modified) => "update",
        Some(StackResourceDriftStatus::Deleted) => "create",
        Some(StackResourceDriftStatus::InSync) => "noop",
        _ => "unchecked",
    };
    let mut line = ResourceLine::named(resource, result);
    line.physical_id = drift.physical_resource_id().map(str::to_owned);
    line.changes = drift
        .property_differences()
        .iter()
        .filter(|d| !kept_by_provision(d))
        .map(|d| {
            FieldDiff::new(
                field(d.property_path().unwrap_or_default()),
                d.expected_value().unwrap_or("(not set)"),
                d.actual_value().unwrap_or("(not set)"),
            )
        })
        .collect();
    if result == "update" && line.changes.is_empty() {
        line.result = "noop".into();
    }
    if !matches!(
        status,
        Some(
            StackResourceDriftStatus::InSync
                | StackResourceDriftStatus::Modified
                | StackResourceDriftStatus::Deleted
        )
    ) {
        line.notes.push(format!(
            "not checked by CloudFormation ({})",
            status.map(|s| s.as_str()).unwrap_or("no status")
        ));
    }
    line
}

/// The tag the schema migration (an after-deploy step) puts on the migration function: which
/// code migrated which database. The template cannot know it, and the SDK engine checks it.
fn kept_by_provision(difference: &PropertyDifference) -> bool {
    difference.difference_type() == Some(&DifferenceType::Add)
        && difference
            .property_path()
            .is_some_and(|p| p.contains("/Tags/"))
        && difference
            .actual_value()
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
            .is_some_and(|tag| tag["Key"] == crate::resources::schema_migration::SCHEMA_TAG)
}

/// `/Properties/Timeout` or `/Tags/0/Value` as the SDK engine names fields: `Timeout`,
/// `Tags.0.Value`.
fn field(path: &str) -> String {
    path.trim_start_matches('/')
        .trim_start_matches("Properties/")
        .replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drift(status: StackResourceDriftStatus) -> StackResourceDrift {
        StackResourceDrift::builder()
            .stack_id("arn:aws:cloudformation:us-east-1:1:stack/demo-stt/x")
            .logical_resource_id("LogGroupSaveText")
            .physical_resource_id("/aws/lambda/demo-save-text")
            .resource_type("AWS::Logs::LogGroup")
            .stack_resource_drift_status(status)
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .property_differences(
                PropertyDifference::builder()
                    .property_path("/RetentionInDays")
                    .expected_value("30")
                    .actual_value("1")
                    .difference_type(DifferenceType::NotEqual)
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_modified_resource_names_each_property_with_both_values() {
        let l = line("demo-stt", &drift(StackResourceDriftStatus::Modified));
        assert_eq!(
            l.resource,
            "demo-stt/LogGroupSaveText (AWS::Logs::LogGroup)"
        );
        assert_eq!(l.result, "update");
        assert_eq!(
            l.changes,
            vec![FieldDiff::new("RetentionInDays", "30", "1")]
        );
        assert!(l.notes.is_empty());
    }

    #[test]
    fn deleted_is_missing_and_unchecked_is_said() {
        assert_eq!(
            line("s", &drift(StackResourceDriftStatus::Deleted)).result,
            "create"
        );
        let unchecked = line("s", &drift(StackResourceDriftStatus::NotChecked));
        assert_eq!(unchecked.result, "unchecked");
        assert_eq!(
            unchecked.notes,
            vec!["not checked by CloudFormation (NOT_CHECKED)"]
        );
    }

    #[test]
    fn the_migration_tag_is_not_drift() {
        let tag = |key: &str| {
            PropertyDifference::builder()
                .property_path("/Tags/2")
                .expected_value("null")
                .actual_value(format!(r#"{{"Key": "{key}", "Value": "97b9"}}"#))
                .difference_type(DifferenceType::Add)
                .build()
        };
        assert!(kept_by_provision(&tag("provision:schema")));
        assert!(!kept_by_provision(&tag("owner")));
    }

    #[test]
    fn property_paths_read_as_field_names() {
        assert_eq!(field("/Timeout"), "Timeout");
        assert_eq!(field("/Properties/Timeout"), "Timeout");
        assert_eq!(field("/Tags/0/Value"), "Tags.0.Value");
    }
}
