//! The VPC (console steps S16, S18): an IPv4 range from `stack.yaml`, an Amazon-provided IPv6
//! block, and the DNS settings that interface endpoints with private DNS need.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, ResourceType, Vpc as Ec2Vpc, VpcAttributeName, VpcCidrBlockStateCode,
};

use std::time::Duration;

use serde_json::json;

use super::ec2::{self, filter};
use crate::engine::wait::{self, Poll, Wait};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

/// DNS support and DNS hostnames, both on: interface endpoints with private DNS need them.
const DNS: bool = true;

/// Names the VPC's IPv6 block in the template (`AWS::EC2::VPCCidrBlock`, a resource of its
/// own in CloudFormation).
const IPV6_BLOCK: &str = "ipv6";

/// The logical id of the VPC's IPv6 block: what needs the block (a subnet's /64, a route
/// to `::/0`) is made after it.
pub fn ipv6_block_logical_id(vpc: &ResourceKey) -> String {
    format!(
        "{}{}",
        template::logical_id(vpc),
        template::pascal(IPV6_BLOCK)
    )
}

pub struct Vpc {
    pub key: ResourceKey,
    pub name: String,
    pub cidr: String,
    pub ipv6: bool,
}

fn ipv6_block(vpc: &Ec2Vpc) -> Option<String> {
    vpc.ipv6_cidr_block_association_set()
        .iter()
        .find(|a| {
            a.ipv6_cidr_block_state().and_then(|s| s.state())
                == Some(&VpcCidrBlockStateCode::Associated)
        })
        .and_then(|a| a.ipv6_cidr_block().map(str::to_owned))
}

impl Vpc {
    pub async fn find(&self, cx: &Context) -> Result<Option<Ec2Vpc>, Error> {
        let out = cx
            .aws
            .ec2
            .describe_vpcs()
            .set_filters(Some(ec2::owned(cx, &self.name)))
            .send()
            .await
            .step(&self.key, "DescribeVpcs")?;
        let ours: Vec<Ec2Vpc> = out
            .vpcs()
            .iter()
            .filter(|v| ec2::is_ours(cx, v.tags(), &self.name))
            .cloned()
            .collect();
        ec2::single(&self.key, &self.name, &ours)
    }

    async fn attribute(
        &self,
        cx: &Context,
        id: &str,
        attribute: VpcAttributeName,
    ) -> Result<bool, Error> {
        let out = cx
            .aws
            .ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(attribute.clone())
            .send()
            .await
            .step(&self.key, "DescribeVpcAttribute")?;
        let value = match attribute {
            VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames(),
            _ => out.enable_dns_support(),
        };
        Ok(value.and_then(|v| v.value()).unwrap_or(false))
    }

    fn publish(&self, cx: &Context, vpc: &Ec2Vpc) {
        cx.publish(&self.key, "id", vpc.vpc_id().unwrap_or_default());
        if let Some(block) = ipv6_block(vpc) {
            cx.publish(&self.key, "ipv6_cidr", block);
        }
    }

    async fn enable_dns(&self, cx: &Context, id: &str) -> Result<(), Error> {
        let on = || AttributeBooleanValue::builder().value(DNS).build();
        // One attribute per call, support before hostnames (AWS requires that order).
        ec2::naming_new(|| async {
            cx.aws
                .ec2
                .modify_vpc_attribute()
                .vpc_id(id)
                .enable_dns_support(on())
                .send()
                .await
                .step(&self.key, "ModifyVpcAttribute")
        })
        .await?;
        ec2::naming_new(|| async {
            cx.aws
                .ec2
                .modify_vpc_attribute()
                .vpc_id(id)
                .enable_dns_hostnames(on())
                .send()
                .await
                .step(&self.key, "ModifyVpcAttribute")
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Vpc {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(vpc) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        self.publish(cx, &vpc);
        let id = vpc.vpc_id().unwrap_or_default().to_owned();
        let mut replacing = Vec::new();
        if vpc.cidr_block() != Some(self.cidr.as_str()) {
            replacing.push(FieldDiff::new(
                "CidrBlock",
                &self.cidr,
                vpc.cidr_block().unwrap_or("(none)"),
            ));
        }
        let mut diff = Diff::default();
        diff.field("Ipv6CidrBlock", self.ipv6, ipv6_block(&vpc).is_some());
        diff.field(
            "EnableDnsSupport",
            DNS,
            self.attribute(cx, &id, VpcAttributeName::EnableDnsSupport)
                .await?,
        );
        diff.field(
            "EnableDnsHostnames",
            DNS,
            self.attribute(cx, &id, VpcAttributeName::EnableDnsHostnames)
                .await?,
        );
        diff.extend(ec2::tag_drift(cx, &self.name, vpc.tags()));
        Ok(Planned::with_replacement(
            self.key.clone(),
            id,
            replacing,
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let changed = |f: &str| planned.touches(f);
        let vpc = match planned.action {
            Action::Replace => {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: "a VPC's IPv4 range cannot change in place, and replacing the VPC means replacing \
                              everything in it: run `provision down`, change the range, then `provision up`"
                        .into(),
                })
            }
            Action::Create => {
                let out = cx
                    .aws
                    .ec2
                    .create_vpc()
                    .cidr_block(&self.cidr)
                    .amazon_provided_ipv6_cidr_block(self.ipv6)
                    .tag_specifications(ec2::tag_spec(cx, ResourceType::Vpc, &self.name))
                    .send()
                    .await
                    .step(&self.key, "CreateVpc")?;
                let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_owned();
                self.enable_dns(cx, &id).await?;
                id
            }
            _ => {
                let id = planned.physical_id.clone().unwrap_or_default();
                if changed("Ipv6CidrBlock") && self.ipv6 {
                    ec2::naming_new(|| async {
                        cx.aws
                            .ec2
                            .associate_vpc_cidr_block()
                            .vpc_id(&id)
                            .amazon_provided_ipv6_cidr_block(true)
                            .send()
                            .await
                            .step(&self.key, "AssociateVpcCidrBlock")
                    })
                    .await?;
                }
                if changed("EnableDns") {
                    self.enable_dns(cx, &id).await?;
                }
                if changed("Tags.") {
                    ec2::put_tags(cx, &self.key, &id, &self.name).await?;
                }
                id
            }
        };
        // The IPv6 block is assigned asynchronously; subnets need it. A VPC made moments ago
        // may not be known yet.
        let wait = Wait::new(cx, Duration::from_secs(2), Duration::from_secs(5 * 60));
        let live = wait::until(
            cx,
            &self.key,
            "the VPC and its IPv6 block",
            wait,
            || async {
                let out = cx
                    .aws
                    .ec2
                    .describe_vpcs()
                    .vpc_ids(&vpc)
                    .send()
                    .await
                    .step(&self.key, "DescribeVpcs");
                Ok(match out {
                    Ok(out) => match out.vpcs().first() {
                        Some(v) if !self.ipv6 || ipv6_block(v).is_some() => Poll::Ready(v.clone()),
                        Some(_) => Poll::Pending("no IPv6 block yet".into()),
                        None => Poll::Pending("not listed yet".into()),
                    },
                    Err(e) if ec2::not_found_yet(&e) => Poll::Pending("not known yet".into()),
                    Err(e) => return Err(e),
                })
            },
        )
        .await?;
        self.publish(cx, &live);
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(vpc) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        let id = vpc.vpc_id().unwrap_or_default().to_owned();
        ec2::delete_when_released(
            cx,
            &self.key,
            filter("vpc-id", &id),
            format!("VPC {id}"),
            || async {
                cx.aws
                    .ec2
                    .delete_vpc()
                    .vpc_id(&id)
                    .send()
                    .await
                    .step(&self.key, "DeleteVpc")?;
                Ok(())
            },
        )
        .await?;
        Ok(Deleted::Deleted)
    }

    /// `AWS::EC2::VPC`, and the Amazon-provided IPv6 block as `AWS::EC2::VPCCidrBlock`
    /// (CloudFormation's VPC takes no IPv6 setting of its own).
    fn cloudformation(&self, cx: &Context) -> Rendering {
        let vpc = CfnResource::new(
            &self.key,
            "AWS::EC2::VPC",
            json!({
                "CidrBlock": self.cidr,
                "EnableDnsSupport": DNS,
                "EnableDnsHostnames": DNS,
                "Tags": ec2::cfn_tags(cx, &self.name),
            }),
        );
        let mut parts = vec![Part::Resource(vpc)];
        if self.ipv6 {
            parts.push(Part::Resource(CfnResource::part(
                &self.key,
                IPV6_BLOCK,
                "AWS::EC2::VPCCidrBlock",
                json!({
                    "VpcId": template::reference(&template::logical_id(&self.key)),
                    "AmazonProvidedIpv6CidrBlock": true,
                }),
            )));
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv6_block_is_a_resource_of_its_own_named_as_subnets_expect() {
        let cx = crate::systems::tests::context(false);
        let vpc = Vpc {
            key: crate::systems::stt::VPC,
            name: "stt-demo-vpc".into(),
            cidr: "10.20.0.0/16".into(),
            ipv6: true,
        };
        let parts = vpc.cloudformation(&cx).unwrap();
        let [Part::Resource(v), Part::Resource(block)] = parts.as_slice() else {
            panic!("{parts:?}")
        };
        assert_eq!(v.properties["EnableDnsSupport"], true);
        assert_eq!(v.properties["EnableDnsHostnames"], true);
        assert_eq!(block.type_name, "AWS::EC2::VPCCidrBlock");
        assert_eq!(block.logical_id, ipv6_block_logical_id(&vpc.key));
        assert_eq!(block.properties["AmazonProvidedIpv6CidrBlock"], true);
        let no_ipv6 = Vpc { ipv6: false, ..vpc };
        assert_eq!(no_ipv6.cloudformation(&cx).unwrap().len(), 1);
    }
}
