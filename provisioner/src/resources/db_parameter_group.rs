//! The database's parameter group: the engine's defaults plus the settings the stack insists
//! on, today `require_secure_transport`, so that MySQL refuses any connection without TLS
//! (the functions verify the server's certificate against the RDS CA bundle they carry).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, Parameter};

use serde_json::json;

use super::db_subnet_group::rds_tags;
use super::tag_diff;
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

pub struct DbParameterGroup {
    pub key: ResourceKey,
    pub name: String,
    /// `mysql8.0`, `mysql8.4`, ...
    pub family: String,
    /// Parameter name to value; all dynamic, applied at once.
    pub parameters: BTreeMap<String, String>,
}

/// The parameter group family of an engine version: `mysql` 8.0.x is `mysql8.0`.
pub fn family(engine: &str, version: &str) -> String {
    let major_minor: Vec<&str> = version.split('.').take(2).collect();
    format!("{engine}{}", major_minor.join("."))
}

/// A parameter group name of a stack: letters, digits and single hyphens.
pub fn group_name(stack: &str, family: &str) -> String {
    format!("{stack}-{}", family.replace('.', "-"))
}

/// The group's description (RDS requires one).
fn description(cx: &Context) -> String {
    format!("{}: TLS required", cx.stack_name())
}

struct Live {
    family: String,
    arn: String,
    /// Values set by the user (source `user`), by name.
    parameters: BTreeMap<String, String>,
}

impl DbParameterGroup {
    async fn live(&self, cx: &Context) -> Result<Option<Live>, Error> {
        let out = match cx
            .aws
            .rds
            .describe_db_parameter_groups()
            .db_parameter_group_name(&self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_parameter_group_not_found_fault()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e).step(&self.key, "DescribeDBParameterGroups"),
        };
        let Some(group) = out.db_parameter_groups().first() else {
            return Ok(None);
        };
        let pages: Vec<_> = cx
            .aws
            .rds
            .describe_db_parameters()
            .db_parameter_group_name(&self.name)
            .source("user")
            .into_paginator()
            .send()
            .try_collect()
            .await
            .step(&self.key, "DescribeDBParameters")?;
        let parameters = pages
            .iter()
            .flat_map(|p| p.parameters())
            .filter_map(|p| {
                Some((
                    p.parameter_name()?.to_owned(),
                    p.parameter_value()?.to_owned(),
                ))
            })
            .collect();
        Ok(Some(Live {
            family: group
                .db_parameter_group_family()
                .unwrap_or_default()
                .to_owned(),
            arn: group
                .db_parameter_group_arn()
                .unwrap_or_default()
                .to_owned(),
            parameters,
        }))
    }

    async fn tags(&self, cx: &Context, arn: &str) -> Result<BTreeMap<String, String>, Error> {
        let out = cx
            .aws
            .rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .step(&self.key, "ListTagsForResource")?;
        Ok(out
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    fn rds_parameters(&self) -> Vec<Parameter> {
        self.parameters
            .iter()
            .map(|(name, value)| {
                Parameter::builder()
                    .parameter_name(name)
                    .parameter_value(value)
                    .apply_method(ApplyMethod::Immediate)
                    .build()
            })
            .collect()
    }
}

#[async_trait]
impl Resource for DbParameterGroup {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(live) = self.live(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        cx.publish(&self.key, "name", &self.name);
        let mut replacing = Vec::new();
        if live.family != self.family {
            replacing.push(FieldDiff::new(
                "DBParameterGroupFamily",
                &self.family,
                &live.family,
            ));
        }
        let mut diff = Diff::default();
        for (name, value) in &self.parameters {
            diff.field(
                &format!("Parameters.{name}"),
                Some(value),
                live.parameters.get(name),
            );
        }
        diff.extend(tag_diff(&cx.tags(), &self.tags(cx, &live.arn).await?));
        Ok(Planned::with_replacement(
            self.key.clone(),
            self.name.clone(),
            replacing,
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let rds = &cx.aws.rds;
        match planned.action {
            Action::Replace => {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                        "parameter group {} exists but is not of family {}, which the engine \
                         version needs (the stack names its groups after their family, so this one \
                         was changed or made by hand): delete or rename it, then run `up` again",
                        self.name, self.family
                    ),
                })
            }
            Action::Create => {
                let created = rds
                    .create_db_parameter_group()
                    .db_parameter_group_name(&self.name)
                    .db_parameter_group_family(&self.family)
                    .description(description(cx))
                    .set_tags(Some(rds_tags(cx)))
                    .send()
                    .await;
                match created {
                    Ok(_) => {}
                    // Made by a run interrupted before it saw the answer.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_db_parameter_group_already_exists_fault()) => {}
                    Err(e) => return Err(e).step(&self.key, "CreateDBParameterGroup"),
                }
            }
            _ => {}
        }
        if planned.action == Action::Create || planned.touches("Parameters.") {
            rds.modify_db_parameter_group()
                .db_parameter_group_name(&self.name)
                .set_parameters(Some(self.rds_parameters()))
                .send()
                .await
                .step(&self.key, "ModifyDBParameterGroup")?;
        }
        if planned.action != Action::Create && planned.touches("Tags.") {
            if let Some(live) = self.live(cx).await? {
                rds.add_tags_to_resource()
                    .resource_name(live.arn)
                    .set_tags(Some(rds_tags(cx)))
                    .send()
                    .await
                    .step(&self.key, "AddTagsToResource")?;
            }
        }
        cx.publish(&self.key, "name", &self.name);
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        if self.live(cx).await?.is_none() {
            return Ok(Deleted::Absent);
        }
        // Refused while the database being deleted still uses it.
        let in_use = |e: &Error| e.code() == Some("InvalidDBParameterGroupState");
        let backoff = if cx.aws.local {
            Backoff::SETTLING
        } else {
            Backoff {
                total: std::time::Duration::from_secs(20 * 60),
                ..Backoff::SETTLING
            }
        };
        retry_when(backoff, in_use, || async {
            match cx
                .aws
                .rds
                .delete_db_parameter_group()
                .db_parameter_group_name(&self.name)
                .send()
                .await
            {
                Ok(_) => Ok(Deleted::Deleted),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_db_parameter_group_not_found_fault()) =>
                {
                    Ok(Deleted::Absent)
                }
                Err(e) => Err(e).step(&self.key, "DeleteDBParameterGroup"),
            }
        })
        .await
    }

    /// `AWS::RDS::DBParameterGroup`. CloudFormation applies the parameters itself: dynamic
    /// ones at once, as `up` does with `ApplyMethod::Immediate`.
    fn cloudformation(&self, cx: &Context) -> Rendering {
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::RDS::DBParameterGroup",
            json!({
                "DBParameterGroupName": self.name,
                "Family": self.family,
                "Description": description(cx),
                "Parameters": self.parameters,
                "Tags": template::tags(cx),
            }),
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_and_name_follow_the_engine_version() {
        assert_eq!(family("mysql", "8.0"), "mysql8.0");
        assert_eq!(family("mysql", "8.0.40"), "mysql8.0");
        assert_eq!(family("mysql", "8.4.3"), "mysql8.4");
        assert_eq!(group_name("stt-demo", "mysql8.0"), "stt-demo-mysql8-0");
    }
}
