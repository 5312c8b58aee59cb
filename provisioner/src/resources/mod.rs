//! One module per resource kind, each implementing [`crate::engine::Resource`]:
//! plan (observe and diff), apply, delete.

pub mod bucket;
pub mod bucket_cors;
pub mod bucket_notification;
pub mod bucket_policy;
pub mod bucket_protection;
pub mod db_instance;
pub mod db_parameter_group;
pub mod db_subnet_group;
pub mod default_security_group;
pub mod distribution;
pub mod ec2;
pub mod egress_gateway;
pub mod email_identity;
pub mod event_invoke_config;
pub mod event_rule;
pub mod function;
pub mod lambda_permission;
pub mod log_group;
pub mod oac;
pub mod queue;
pub mod response_headers_policy;
pub mod rest_api;
pub mod role;
pub mod route_table;
pub mod schema_migration;
pub mod secret;
pub mod security_group;
pub mod site_files;
pub mod subnet;
pub mod vpc;
pub mod vpc_endpoint;

use std::collections::BTreeMap;

use crate::engine::OWNER_TAG;

/// Object metadata key (`x-amz-meta-provision-stack`) marking objects the stack uploaded, so
/// teardown can tell them from the user's data.
pub const OWNER_METADATA: &str = "provision-stack";

/// Differences between wanted tags and live ones. Tags added by hand that `stack.yaml` does not
/// name are left alone and are not drift.
pub fn tag_diff(
    wanted: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> Vec<crate::engine::FieldDiff> {
    wanted
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(v))
        .map(|(k, v)| {
            crate::engine::FieldDiff::new(
                format!("Tags.{k}"),
                v,
                live.get(k).map(String::as_str).unwrap_or("(not set)"),
            )
        })
        .collect()
}

/// Whether live tags mark the resource as this stack's.
pub fn owned_by(tags: &BTreeMap<String, String>, stack: &str) -> bool {
    tags.get(OWNER_TAG).map(String::as_str) == Some(stack)
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
    fn tag_diff_reports_missing_and_changed_but_not_extra() {
        let wanted = tags(&[(OWNER_TAG, "demo"), ("team", "audio")]);
        let live = tags(&[
            (OWNER_TAG, "demo"),
            ("team", "video"),
            ("cost-center", "42"),
        ]);
        let diffs = tag_diff(&wanted, &live);
        assert_eq!(diffs.len(), 1);
        assert_eq!(
            (
                diffs[0].field.as_str(),
                diffs[0].expected.as_str(),
                diffs[0].actual.as_str()
            ),
            ("Tags.team", "audio", "video")
        );
        assert_eq!(tag_diff(&wanted, &tags(&[]))[0].actual, "(not set)");
        assert!(owned_by(&live, "demo"));
        assert!(!owned_by(&live, "other"));
    }
}
