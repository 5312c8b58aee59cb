//! A Secrets Manager secret the stack makes empty, for a value something inside the stack
//! writes: the database application user's credentials, which `db_migrate` makes and stores
//! (see `handlers/common/src/app_user.rs`). `provision` never reads nor writes the value, so
//! no password passes through it, its logs or its reports.
//!
//! Found by its deterministic name; made with the stack's tags in the same call, so a secret of
//! that name without them is not the stack's and is left alone.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::Tag;

use serde_json::json;

use super::{owned_by, tag_diff};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

pub struct Secret {
    pub key: ResourceKey,
    /// ASCII letters, digits and `/_+=.@-`, at most 512 characters.
    pub name: String,
    pub description: String,
}

/// What the stack knows of the live secret.
struct Found {
    arn: String,
    description: String,
    tags: BTreeMap<String, String>,
    /// Set while the secret waits out its recovery window after a `DeleteSecret`.
    scheduled_for_deletion: bool,
}

impl Secret {
    async fn find(&self, cx: &Context) -> Result<Option<Found>, Error> {
        let out = match cx
            .aws
            .secretsmanager
            .describe_secret()
            .secret_id(&self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e).step(&self.key, "DescribeSecret"),
        };
        let tags: BTreeMap<String, String> = out
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        if !owned_by(&tags, cx.stack_name()) {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!(
                    "a secret named {} exists without the tag {}={}; it is left alone (rename \
                     the stack or delete that secret)",
                    self.name,
                    crate::engine::OWNER_TAG,
                    cx.stack_name()
                ),
            });
        }
        Ok(Some(Found {
            arn: out.arn().unwrap_or_default().to_owned(),
            description: out.description().unwrap_or_default().to_owned(),
            tags,
            scheduled_for_deletion: out.deleted_date().is_some(),
        }))
    }

    fn tags(cx: &Context) -> Vec<Tag> {
        cx.tags()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }
}

#[async_trait]
impl Resource for Secret {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(found) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        cx.publish(&self.key, "arn", &found.arn);
        let mut diff = Diff::default();
        diff.field(
            "DeletedDate",
            "(not set)",
            if found.scheduled_for_deletion {
                "scheduled for deletion"
            } else {
                "(not set)"
            },
        );
        diff.field(
            "Description",
            self.description.as_str(),
            found.description.as_str(),
        );
        diff.extend(tag_diff(&cx.tags(), &found.tags));
        Ok(Planned::from_diff(
            self.key.clone(),
            found.arn,
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let sm = &cx.aws.secretsmanager;
        let found = match (planned.action, self.find(cx).await?) {
            (_, Some(found)) => found,
            (Action::Create, None) => {
                match sm
                    .create_secret()
                    .name(&self.name)
                    .description(&self.description)
                    .set_tags(Some(Self::tags(cx)))
                    .send()
                    .await
                {
                    Ok(out) => {
                        cx.publish(&self.key, "arn", out.arn().unwrap_or_default());
                        return Ok(());
                    }
                    // Made by a run that crashed before it could see the answer.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_resource_exists_exception()) =>
                    {
                        self.find(cx).await?.ok_or_else(|| Error::Refused {
                            resource: self.key.clone(),
                            message: format!(
                                "Secrets Manager says {} exists but cannot describe it",
                                self.name
                            ),
                        })?
                    }
                    Err(e) => return Err(e).step(&self.key, "CreateSecret"),
                }
            }
            (_, None) => {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!("the secret {} disappeared while being updated", self.name),
                })
            }
        };
        // Deleted by hand with a recovery window: the name cannot be used again until the
        // window ends, so the secret is brought back instead.
        if found.scheduled_for_deletion {
            sm.restore_secret()
                .secret_id(&found.arn)
                .send()
                .await
                .step(&self.key, "RestoreSecret")?;
        }
        if found.description != self.description {
            sm.update_secret()
                .secret_id(&found.arn)
                .description(&self.description)
                .send()
                .await
                .step(&self.key, "UpdateSecret")?;
        }
        if !tag_diff(&cx.tags(), &found.tags).is_empty() {
            sm.tag_resource()
                .secret_id(&found.arn)
                .set_tags(Some(Self::tags(cx)))
                .send()
                .await
                .step(&self.key, "TagResource")?;
        }
        cx.publish(&self.key, "arn", &found.arn);
        Ok(())
    }

    /// Deleted at once, without the recovery window: its value is made again by the next
    /// `up` (`db_migrate` sets the database user to a new password when the secret is new),
    /// while a secret waiting out a window would block that name for up to 30 days.
    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(found) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        match cx
            .aws
            .secretsmanager
            .delete_secret()
            .secret_id(&found.arn)
            .force_delete_without_recovery(true)
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
            Err(e) => Err(e).step(&self.key, "DeleteSecret"),
        }
    }

    /// `AWS::SecretsManager::Secret` without `SecretString` or `GenerateSecretString`: made
    /// empty, as `up` makes it; `db_migrate` writes the value at run time, so no value is in
    /// the template.
    fn cloudformation(&self, cx: &Context) -> Rendering {
        Ok(vec![Part::Resource(
            CfnResource::new(
                &self.key,
                "AWS::SecretsManager::Secret",
                json!({
                    "Name": self.name,
                    "Description": self.description,
                    "Tags": template::tags(cx),
                }),
            )
            .skip_check(
                "CKV_AWS_149",
                "encrypted with Secrets Manager's AWS managed key, as up makes it; a key of the \
                 stack's stays the operator's choice (docs/security.md)",
            ),
        )])
    }
}
