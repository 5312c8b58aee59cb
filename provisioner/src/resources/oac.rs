//! CloudFront Origin Access Control (console steps S4, S7; V2 with OAC instead of the legacy
//! OAI). OACs carry no tags, so the stack finds its OAC by its deterministic name, which AWS
//! keeps unique per account.

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    OriginAccessControlConfig, OriginAccessControlOriginTypes, OriginAccessControlSigningBehaviors,
    OriginAccessControlSigningProtocols, OriginAccessControlSummary,
};
use serde_json::json;

use crate::engine::retry::{error_code, retry_when, Backoff};
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource, ResourceKey,
};
use crate::template::{CfnResource, Part};

pub struct OriginAccessControl {
    pub key: ResourceKey,
    /// At most 64 characters; unique per account.
    pub name: String,
}

impl OriginAccessControl {
    fn description(cx: &Context) -> String {
        format!("Managed by provision for stack {}", cx.stack_name())
    }

    fn config(&self, cx: &Context) -> OriginAccessControlConfig {
        OriginAccessControlConfig::builder()
            .name(&self.name)
            .description(Self::description(cx))
            .signing_protocol(OriginAccessControlSigningProtocols::Sigv4)
            .signing_behavior(OriginAccessControlSigningBehaviors::Always)
            .origin_access_control_origin_type(OriginAccessControlOriginTypes::S3)
            .build()
            .expect("required fields set")
    }

    async fn find(&self, cx: &Context) -> Result<Option<OriginAccessControlSummary>, Error> {
        let mut marker = None;
        loop {
            let out = cx
                .aws
                .cloudfront
                .list_origin_access_controls()
                .set_marker(marker)
                .send()
                .await
                .step(&self.key, "ListOriginAccessControls")?;
            let Some(list) = out.origin_access_control_list() else {
                return Ok(None);
            };
            if let Some(found) = list.items().iter().find(|o| o.name() == self.name) {
                return Ok(Some(found.clone()));
            }
            match list.next_marker() {
                Some(next) if list.is_truncated() => marker = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    async fn etag(&self, cx: &Context, id: &str) -> Result<Option<String>, Error> {
        match cx
            .aws
            .cloudfront
            .get_origin_access_control()
            .id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.e_tag().map(str::to_owned)),
            Err(e) if error_code(&e) == Some("NoSuchOriginAccessControl") => Ok(None),
            Err(e) => Err(e).step(&self.key, "GetOriginAccessControl"),
        }
    }
}

#[async_trait]
impl Resource for OriginAccessControl {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(live) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        cx.publish(&self.key, "id", live.id());
        let mut diff = Diff::default();
        diff.field("SigningProtocol", "sigv4", live.signing_protocol().as_str());
        diff.field(
            "SigningBehavior",
            "always",
            live.signing_behavior().as_str(),
        );
        diff.field(
            "OriginAccessControlOriginType",
            "s3",
            live.origin_access_control_origin_type().as_str(),
        );
        diff.field(
            "Description",
            Self::description(cx).as_str(),
            live.description(),
        );
        Ok(Planned::from_diff(
            self.key.clone(),
            live.id().to_owned(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, _planned: &Planned) -> Result<(), Error> {
        let cf = &cx.aws.cloudfront;
        let id = match self.find(cx).await? {
            Some(live) => {
                let etag = self.etag(cx, live.id()).await?;
                cf.update_origin_access_control()
                    .id(live.id())
                    .set_if_match(etag)
                    .origin_access_control_config(self.config(cx))
                    .send()
                    .await
                    .step(&self.key, "UpdateOriginAccessControl")?;
                live.id().to_owned()
            }
            None => match cf
                .create_origin_access_control()
                .origin_access_control_config(self.config(cx))
                .send()
                .await
            {
                Ok(out) => out
                    .origin_access_control()
                    .map(|o| o.id().to_owned())
                    .unwrap_or_default(),
                // Created by a run that crashed before it could see the answer.
                Err(e) if error_code(&e) == Some("OriginAccessControlAlreadyExists") => self
                    .find(cx)
                    .await?
                    .map(|o| o.id().to_owned())
                    .unwrap_or_default(),
                Err(e) => return Err(e).step(&self.key, "CreateOriginAccessControl"),
            },
        };
        cx.publish(&self.key, "id", id);
        Ok(())
    }

    /// `AWS::CloudFront::OriginAccessControl` with the configuration `apply` writes.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let config = self.config(cx);
        let origin_type = config.origin_access_control_origin_type().as_str();
        let oac = CfnResource::new(
            &self.key,
            "AWS::CloudFront::OriginAccessControl",
            json!({"OriginAccessControlConfig": {
                "Name": config.name(),
                "Description": config.description(),
                "OriginAccessControlOriginType": origin_type,
                "SigningBehavior": config.signing_behavior().as_str(),
                "SigningProtocol": config.signing_protocol().as_str(),
            }}),
        );
        Ok(vec![Part::Resource(oac)])
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(live) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        // A distribution being deleted may still hold the OAC for a moment.
        let result = retry_when(
            Backoff::SETTLING,
            |e: &Error| {
                matches!(
                    e.code(),
                    Some("OriginAccessControlInUse" | "PreconditionFailed")
                )
            },
            || async {
                let Some(etag) = self.etag(cx, live.id()).await? else {
                    return Ok(Deleted::Absent);
                };
                match cx
                    .aws
                    .cloudfront
                    .delete_origin_access_control()
                    .id(live.id())
                    .if_match(etag)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Deleted::Deleted),
                    Err(e) if error_code(&e) == Some("NoSuchOriginAccessControl") => {
                        Ok(Deleted::Absent)
                    }
                    Err(e) => Err(e).step(&self.key, "DeleteOriginAccessControl"),
                }
            },
        )
        .await?;
        Ok(result)
    }
}
