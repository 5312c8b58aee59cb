//! The SES identity transcripts are sent from (console step S29's mail settings): the
//! `mail_from` address as an SES v2 e-mail identity. AWS mails a verification link to the
//! address; until it is clicked SES refuses to send, so `up` says so. An identity someone
//! verified before (not tagged as the stack's) is used as it is and never deleted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sesv2::types::Tag;

use super::{owned_by, tag_diff};
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource, ResourceKey,
};

pub struct EmailIdentity {
    pub key: ResourceKey,
    pub address: String,
}

struct Live {
    verified: bool,
    tags: BTreeMap<String, String>,
}

impl EmailIdentity {
    async fn live(&self, cx: &Context) -> Result<Option<Live>, Error> {
        match cx
            .aws
            .ses
            .get_email_identity()
            .email_identity(&self.address)
            .send()
            .await
            .step(&self.key, "GetEmailIdentity")
        {
            Ok(out) => Ok(Some(Live {
                verified: out.verified_for_sending_status(),
                tags: out
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect(),
            })),
            Err(e) if e.code() == Some("NotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn arn(&self, cx: &Context) -> String {
        format!(
            "arn:aws:ses:{}:{}:identity/{}",
            cx.aws.region, cx.aws.account_id, self.address
        )
    }

    fn note_verification(&self, cx: &Context, verified: bool) {
        if !verified {
            cx.note(
                &self.key,
                format!(
                    "{} is not verified yet: SES sent it a verification link; no transcript is \
                     mailed until it is clicked (in the SES sandbox, recipients must be verified too)",
                    self.address
                ),
            );
        }
    }
}

#[async_trait]
impl Resource for EmailIdentity {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(live) = self.live(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.address.clone()));
        };
        self.note_verification(cx, live.verified);
        let mut diff = Diff::default();
        // An identity made by hand is the user's: used, not re-tagged.
        if owned_by(&live.tags, cx.stack_name()) {
            diff.extend(tag_diff(&cx.tags(), &live.tags));
        }
        Ok(Planned::from_diff(
            self.key.clone(),
            self.address.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
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
        if self.live(cx).await?.is_some() {
            cx.aws
                .ses
                .tag_resource()
                .resource_arn(self.arn(cx))
                .set_tags(Some(tags))
                .send()
                .await
                .step(&self.key, "TagResource")?;
            return Ok(());
        }
        let created = cx
            .aws
            .ses
            .create_email_identity()
            .email_identity(&self.address)
            .set_tags(Some(tags))
            .send()
            .await
            .step(&self.key, "CreateEmailIdentity");
        match created {
            Ok(out) => self.note_verification(cx, out.verified_for_sending_status()),
            // Made by a run interrupted before it saw the answer.
            Err(e) if e.code() == Some("AlreadyExistsException") => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        match self.live(cx).await? {
            Some(live) if owned_by(&live.tags, cx.stack_name()) => {
                match cx
                    .aws
                    .ses
                    .delete_email_identity()
                    .email_identity(&self.address)
                    .send()
                    .await
                    .step(&self.key, "DeleteEmailIdentity")
                {
                    Ok(_) => Ok(Deleted::Deleted),
                    Err(e) if e.code() == Some("NotFoundException") => Ok(Deleted::Absent),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(Deleted::Absent),
        }
    }

    /// Not a template resource: `AWS::SES::EmailIdentity` would fail on an address the
    /// account verified before, and could not leave such an identity to its owner.
    fn cloudformation(&self, _: &Context) -> crate::template::Rendering {
        Ok(vec![crate::template::Part::AfterDeploy(
            "an SES identity is the account's and often verified before the stack exists: \
             provision uses such an identity as it is and never deletes it, and makes (and \
             tags) one only when it is missing, SES then mailing the verification link; \
             CloudFormation would fail to create an identity that exists",
        )])
    }
}
