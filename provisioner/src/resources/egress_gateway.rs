//! An egress-only internet gateway: the functions reach dual-stack AWS endpoints over IPv6
//! (the console build's fix in S18), and nothing on the internet can open a connection to
//! them, which a full internet gateway would allow for addresses that are public.

use async_trait::async_trait;
use aws_sdk_ec2::types::{EgressOnlyInternetGateway, ResourceType};

use serde_json::json;

use super::ec2;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{CfnResource, Part, Rendering};

pub struct EgressGateway {
    pub key: ResourceKey,
    pub vpc: ResourceKey,
    pub name: String,
}

impl EgressGateway {
    async fn find(&self, cx: &Context) -> Result<Option<EgressOnlyInternetGateway>, Error> {
        let out = cx
            .aws
            .ec2
            .describe_egress_only_internet_gateways()
            .set_filters(Some(ec2::owned(cx, &self.name)))
            .send()
            .await
            .step(&self.key, "DescribeEgressOnlyInternetGateways")?;
        let ours: Vec<EgressOnlyInternetGateway> = out
            .egress_only_internet_gateways()
            .iter()
            .filter(|g| ec2::is_ours(cx, g.tags(), &self.name))
            .cloned()
            .collect();
        ec2::single(&self.key, &self.name, &ours)
    }
}

#[async_trait]
impl Resource for EgressGateway {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![self.vpc.clone()]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(gw) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let id = gw
            .egress_only_internet_gateway_id()
            .unwrap_or_default()
            .to_owned();
        cx.publish(&self.key, "id", &id);
        let mut diff = Diff::default();
        let attached = gw
            .attachments()
            .iter()
            .find_map(|a| a.vpc_id())
            .map(str::to_owned);
        diff.field("Attachment.VpcId", cx.output(&self.vpc, "id"), attached);
        diff.extend(ec2::tag_drift(cx, &self.name, gw.tags()));
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        if planned.action != Action::Create {
            if planned.touches_more_than_tags() {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: "the gateway is attached to another VPC; delete it by hand or run `provision down`".into(),
                });
            }
            return ec2::put_tags(
                cx,
                &self.key,
                planned.physical_id.as_deref().unwrap_or_default(),
                &self.name,
            )
            .await;
        }
        let vpc = cx.require(&self.key, &self.vpc, "id")?;
        let token = ec2::client_token();
        let out = ec2::naming_new(|| async {
            cx.aws
                .ec2
                .create_egress_only_internet_gateway()
                .client_token(&token)
                .vpc_id(&vpc)
                .tag_specifications(ec2::tag_spec(
                    cx,
                    ResourceType::EgressOnlyInternetGateway,
                    &self.name,
                ))
                .send()
                .await
                .step(&self.key, "CreateEgressOnlyInternetGateway")
        })
        .await?;
        let id = out
            .egress_only_internet_gateway()
            .and_then(|g| g.egress_only_internet_gateway_id())
            .unwrap_or_default();
        cx.publish(&self.key, "id", id);
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(gw) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        let id = gw.egress_only_internet_gateway_id().unwrap_or_default();
        cx.aws
            .ec2
            .delete_egress_only_internet_gateway()
            .egress_only_internet_gateway_id(id)
            .send()
            .await
            .step(&self.key, "DeleteEgressOnlyInternetGateway")?;
        Ok(Deleted::Deleted)
    }

    fn cloudformation(&self, cx: &Context) -> Rendering {
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::EC2::EgressOnlyInternetGateway",
            json!({
                "VpcId": cx.output(&self.vpc, "id"),
                "Tags": ec2::cfn_tags(cx, &self.name),
            }),
        ))])
    }
}
