//! A subnet in one availability zone, with an IPv4 block and a /64 of the VPC's IPv6 block
//! (console steps S16, S18). RDS needs subnets in at least two zones.

use std::net::Ipv6Addr;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, Subnet as Ec2Subnet, SubnetCidrBlockStateCode};

use serde_json::{json, Value};

use super::ec2::{self, filter};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

/// How many /64s a /56 holds: every index a subnet may take.
const SUBNETS_PER_BLOCK: u32 = 1 << (64 - 56);

pub struct Subnet {
    pub key: ResourceKey,
    pub vpc: ResourceKey,
    pub name: String,
    pub cidr: String,
    pub availability_zone: String,
    /// Which /64 of the VPC's /56 this subnet takes, when IPv6 is on.
    pub ipv6_index: Option<u8>,
}

/// The `index`-th /64 of the VPC's IPv6 block as CloudFormation computes it: the same block
/// [`ipv6_subnet`] gives, from a block only known once the VPC's is assigned.
pub fn cfn_ipv6_subnet(vpc: &ResourceKey, index: u8) -> Value {
    let vpc_block =
        json!({"Fn::Select": [0, {"Fn::GetAtt": [template::logical_id(vpc), "Ipv6CidrBlocks"]}]});
    json!({"Fn::Select": [index, {"Fn::Cidr": [vpc_block, SUBNETS_PER_BLOCK, "64"]}]})
}

/// The `index`-th /64 inside an IPv6 /56 block.
pub fn ipv6_subnet(vpc_block: &str, index: u8) -> Option<String> {
    let (addr, prefix) = vpc_block.split_once('/')?;
    let addr: Ipv6Addr = addr.parse().ok()?;
    if prefix != "56" {
        return None;
    }
    let base = u128::from(addr);
    let subnet = base + (u128::from(index) << 64);
    Some(format!("{}/64", Ipv6Addr::from(subnet)))
}

fn ipv6_of(subnet: &Ec2Subnet) -> Option<String> {
    subnet
        .ipv6_cidr_block_association_set()
        .iter()
        // Associating counts: it becomes associated without further calls.
        .find(|a| {
            !matches!(
                a.ipv6_cidr_block_state().and_then(|s| s.state()),
                Some(
                    SubnetCidrBlockStateCode::Disassociating
                        | SubnetCidrBlockStateCode::Disassociated
                        | SubnetCidrBlockStateCode::Failing
                        | SubnetCidrBlockStateCode::Failed
                )
            )
        })
        .and_then(|a| a.ipv6_cidr_block().map(str::to_owned))
}

impl Subnet {
    async fn find(&self, cx: &Context) -> Result<Option<Ec2Subnet>, Error> {
        let out = cx
            .aws
            .ec2
            .describe_subnets()
            .set_filters(Some(ec2::owned(cx, &self.name)))
            .send()
            .await
            .step(&self.key, "DescribeSubnets")?;
        let ours: Vec<Ec2Subnet> = out
            .subnets()
            .iter()
            .filter(|s| ec2::is_ours(cx, s.tags(), &self.name))
            .cloned()
            .collect();
        ec2::single(&self.key, &self.name, &ours)
    }

    fn wanted_ipv6(&self, cx: &Context) -> Option<String> {
        let block = cx.output(&self.vpc, "ipv6_cidr")?;
        ipv6_subnet(&block, self.ipv6_index?)
    }
}

#[async_trait]
impl Resource for Subnet {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![self.vpc.clone()]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(subnet) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let id = subnet.subnet_id().unwrap_or_default().to_owned();
        cx.publish(&self.key, "id", &id);
        let mut replacing = Vec::new();
        if subnet.cidr_block() != Some(self.cidr.as_str()) {
            replacing.push(FieldDiff::new(
                "CidrBlock",
                &self.cidr,
                subnet.cidr_block().unwrap_or("(none)"),
            ));
        }
        if subnet.availability_zone() != Some(self.availability_zone.as_str()) {
            replacing.push(FieldDiff::new(
                "AvailabilityZone",
                &self.availability_zone,
                subnet.availability_zone().unwrap_or("(none)"),
            ));
        }
        let mut diff = Diff::default();
        if self.ipv6_index.is_some() {
            diff.field("Ipv6CidrBlock", self.wanted_ipv6(cx), ipv6_of(&subnet));
        }
        diff.extend(ec2::tag_drift(cx, &self.name, subnet.tags()));
        Ok(Planned::with_replacement(
            self.key.clone(),
            id,
            replacing,
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let changed = |f: &str| planned.touches(f);
        let id = match planned.action {
            Action::Replace => {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: "a subnet's range or zone cannot change in place: run `provision down`, then `provision up`".into(),
                })
            }
            Action::Create => {
                let vpc = cx.require(&self.key, &self.vpc, "id")?;
                let out = ec2::naming_new(|| async {
                    cx.aws
                        .ec2
                        .create_subnet()
                        .vpc_id(&vpc)
                        .cidr_block(&self.cidr)
                        .set_ipv6_cidr_block(self.wanted_ipv6(cx))
                        .availability_zone(&self.availability_zone)
                        .tag_specifications(ec2::tag_spec(cx, ResourceType::Subnet, &self.name))
                        .send()
                        .await
                        .step(&self.key, "CreateSubnet")
                })
                .await?;
                out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_owned()
            }
            _ => {
                let id = planned.physical_id.clone().unwrap_or_default();
                if changed("Ipv6CidrBlock") {
                    if let Some(block) = self.wanted_ipv6(cx) {
                        ec2::naming_new(|| async {
                            cx.aws
                                .ec2
                                .associate_subnet_cidr_block()
                                .subnet_id(&id)
                                .ipv6_cidr_block(&block)
                                .send()
                                .await
                                .step(&self.key, "AssociateSubnetCidrBlock")
                        })
                        .await?;
                    }
                }
                if changed("Tags.") {
                    ec2::put_tags(cx, &self.key, &id, &self.name).await?;
                }
                id
            }
        };
        cx.publish(&self.key, "id", id);
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(subnet) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        let id = subnet.subnet_id().unwrap_or_default().to_owned();
        ec2::delete_when_released(
            cx,
            &self.key,
            filter("subnet-id", &id),
            format!("subnet {id}"),
            || async {
                cx.aws
                    .ec2
                    .delete_subnet()
                    .subnet_id(&id)
                    .send()
                    .await
                    .step(&self.key, "DeleteSubnet")?;
                Ok(())
            },
        )
        .await?;
        Ok(Deleted::Deleted)
    }

    /// `AWS::EC2::Subnet`; its /64 is computed from the VPC's block in the template, after
    /// the block is assigned.
    fn cloudformation(&self, cx: &Context) -> Rendering {
        let mut properties = json!({
            "VpcId": cx.output(&self.vpc, "id"),
            "CidrBlock": self.cidr,
            "AvailabilityZone": self.availability_zone,
            "Tags": ec2::cfn_tags(cx, &self.name),
        });
        let mut after = Vec::new();
        if let Some(index) = self.ipv6_index {
            properties["Ipv6CidrBlock"] = cfn_ipv6_subnet(&self.vpc, index);
            after.push(super::vpc::ipv6_block_logical_id(&self.vpc));
        }
        let mut subnet = CfnResource::new(&self.key, "AWS::EC2::Subnet", properties);
        subnet.depends_on.extend(after);
        let named_zones = cx
            .stack
            .stt
            .network
            .as_ref()
            .is_some_and(|n| n.availability_zones.is_some());
        if named_zones {
            subnet = subnet.ignore_lint(
                "W3010",
                "stack.yaml names the zones: zone names differ per account, and the operator \
                 chose these",
            );
        }
        Ok(vec![Part::Resource(subnet)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_gives_a_subnet_the_same_64_after_the_vpc_block_exists() {
        let stack = crate::systems::tests::context(false).stack.clone();
        let cx = Context::symbolic(stack, vec![template::zone(0), template::zone(1)]);
        let subnet = Subnet {
            key: ResourceKey::named("subnet", format!("stt-{}", template::zone(1))),
            vpc: crate::systems::stt::VPC,
            name: format!("stt-demo-{}", template::zone(1)),
            cidr: "10.20.16.0/20".into(),
            availability_zone: template::zone(1),
            ipv6_index: Some(1),
        };
        let Part::Resource(r) = subnet.cloudformation(&cx).unwrap().remove(0) else {
            panic!("a subnet is a resource")
        };
        assert_eq!(r.logical_id, "SubnetSttAz1");
        assert_eq!(r.properties["AvailabilityZone"], template::zone(1));
        // The second /64 of the VPC's first IPv6 block, as `ipv6_subnet(block, 1)` computes.
        assert_eq!(
            r.properties["Ipv6CidrBlock"],
            json!({"Fn::Select": [1, {"Fn::Cidr": [
                {"Fn::Select": [0, {"Fn::GetAtt": ["VpcStt", "Ipv6CidrBlocks"]}]}, 256, "64"]}]})
        );
        assert_eq!(r.depends_on, vec!["VpcSttIpv6".to_owned()]);
        assert_eq!(r.properties["VpcId"], template::reference("VpcStt"));
    }

    #[test]
    fn subnets_take_consecutive_64s_of_the_vpc_block() {
        assert_eq!(
            ipv6_subnet("2600:1f18:4a3:6b00::/56", 0).as_deref(),
            Some("2600:1f18:4a3:6b00::/64")
        );
        assert_eq!(
            ipv6_subnet("2600:1f18:4a3:6b00::/56", 1).as_deref(),
            Some("2600:1f18:4a3:6b01::/64")
        );
        assert_eq!(
            ipv6_subnet("2600:1f18:4a3:6b00::/56", 255).as_deref(),
            Some("2600:1f18:4a3:6bff::/64")
        );
        assert_eq!(ipv6_subnet("2600:1f18:4a3:6b00::/48", 0), None);
    }
}
