//! The subnets' route table: `::/0` through the egress-only gateway (S18), associated with
//! every subnet; the S3 gateway endpoint adds its own routes to it.

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, RouteTable as Ec2RouteTable};

use serde_json::json;

use super::ec2;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

/// Every IPv6 address: the destination of the route through the egress-only gateway.
const IPV6_DEFAULT_ROUTE: &str = "::/0";

pub struct RouteTable {
    pub key: ResourceKey,
    pub vpc: ResourceKey,
    pub name: String,
    pub subnets: Vec<ResourceKey>,
    /// The egress-only gateway for `::/0`, when IPv6 is on.
    pub ipv6_gateway: Option<ResourceKey>,
}

impl RouteTable {
    async fn find(&self, cx: &Context) -> Result<Option<Ec2RouteTable>, Error> {
        let out = cx
            .aws
            .ec2
            .describe_route_tables()
            .set_filters(Some(ec2::owned(cx, &self.name)))
            .send()
            .await
            .step(&self.key, "DescribeRouteTables")?;
        let ours: Vec<Ec2RouteTable> = out
            .route_tables()
            .iter()
            .filter(|t| ec2::is_ours(cx, t.tags(), &self.name))
            .cloned()
            .collect();
        ec2::single(&self.key, &self.name, &ours)
    }

    fn ipv6_target(table: &Ec2RouteTable) -> Option<String> {
        table
            .routes()
            .iter()
            .find(|r| r.destination_ipv6_cidr_block() == Some(IPV6_DEFAULT_ROUTE))
            .and_then(|r| r.egress_only_internet_gateway_id().map(str::to_owned))
    }

    fn associated(table: &Ec2RouteTable) -> Vec<String> {
        let mut ids: Vec<String> = table
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    fn wanted_subnets(&self, cx: &Context) -> Vec<String> {
        let mut ids: Vec<String> = self
            .subnets
            .iter()
            .filter_map(|s| cx.output(s, "id"))
            .collect();
        ids.sort();
        ids
    }
}

#[async_trait]
impl Resource for RouteTable {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.vpc.clone()];
        deps.extend(self.subnets.iter().cloned());
        deps.extend(self.ipv6_gateway.iter().cloned());
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(table) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let id = table.route_table_id().unwrap_or_default().to_owned();
        cx.publish(&self.key, "id", &id);
        let mut diff = Diff::default();
        diff.field(
            "Route[::/0]",
            self.ipv6_gateway.as_ref().and_then(|g| cx.output(g, "id")),
            Self::ipv6_target(&table),
        );
        diff.field(
            "Associations",
            self.wanted_subnets(cx),
            Self::associated(&table),
        );
        diff.extend(ec2::tag_drift(cx, &self.name, table.tags()));
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let ec2c = &cx.aws.ec2;
        let table = match planned.action {
            Action::Create => {
                let vpc = cx.require(&self.key, &self.vpc, "id")?;
                let out = ec2::naming_new(|| async {
                    ec2c.create_route_table()
                        .vpc_id(&vpc)
                        .tag_specifications(ec2::tag_spec(cx, ResourceType::RouteTable, &self.name))
                        .send()
                        .await
                        .step(&self.key, "CreateRouteTable")
                })
                .await?;
                out.route_table()
                    .cloned()
                    .unwrap_or_else(|| Ec2RouteTable::builder().build())
            }
            _ => self.find(cx).await?.ok_or_else(|| Error::Refused {
                resource: self.key.clone(),
                message: "route table vanished".into(),
            })?,
        };
        let id = table.route_table_id().unwrap_or_default().to_owned();
        if let Some(gateway) = &self.ipv6_gateway {
            let wanted = cx.require(&self.key, gateway, "id")?;
            match Self::ipv6_target(&table) {
                Some(current) if current == wanted => {}
                Some(_) => {
                    ec2::naming_new(|| async {
                        ec2c.replace_route()
                            .route_table_id(&id)
                            .destination_ipv6_cidr_block(IPV6_DEFAULT_ROUTE)
                            .egress_only_internet_gateway_id(&wanted)
                            .send()
                            .await
                            .step(&self.key, "ReplaceRoute")
                    })
                    .await?;
                }
                None => {
                    ec2::naming_new(|| async {
                        ec2c.create_route()
                            .route_table_id(&id)
                            .destination_ipv6_cidr_block(IPV6_DEFAULT_ROUTE)
                            .egress_only_internet_gateway_id(&wanted)
                            .send()
                            .await
                            .step(&self.key, "CreateRoute")
                    })
                    .await?;
                }
            }
        }
        let associated = Self::associated(&table);
        for subnet in self
            .wanted_subnets(cx)
            .into_iter()
            .filter(|s| !associated.contains(s))
        {
            ec2::naming_new(|| async {
                ec2c.associate_route_table()
                    .route_table_id(&id)
                    .subnet_id(&subnet)
                    .send()
                    .await
                    .step(&self.key, "AssociateRouteTable")
            })
            .await?;
        }
        if planned.touches("Tags.") {
            ec2::put_tags(cx, &self.key, &id, &self.name).await?;
        }
        cx.publish(&self.key, "id", id);
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(table) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        let id = table.route_table_id().unwrap_or_default();
        for association in table
            .associations()
            .iter()
            .filter(|a| a.main() != Some(true))
        {
            if let Some(a) = association.route_table_association_id() {
                cx.aws
                    .ec2
                    .disassociate_route_table()
                    .association_id(a)
                    .send()
                    .await
                    .step(&self.key, "DisassociateRouteTable")?;
            }
        }
        cx.aws
            .ec2
            .delete_route_table()
            .route_table_id(id)
            .send()
            .await
            .step(&self.key, "DeleteRouteTable")?;
        Ok(Deleted::Deleted)
    }

    /// `AWS::EC2::RouteTable`, its route to `::/0` as an `AWS::EC2::Route` and one
    /// `AWS::EC2::SubnetRouteTableAssociation` per subnet (CloudFormation's route table
    /// holds neither).
    fn cloudformation(&self, cx: &Context) -> Rendering {
        let table = template::reference(&template::logical_id(&self.key));
        let mut parts = vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::EC2::RouteTable",
            json!({
                "VpcId": cx.output(&self.vpc, "id"),
                "Tags": ec2::cfn_tags(cx, &self.name),
            }),
        ))];
        if let Some(gateway) = &self.ipv6_gateway {
            let mut route = CfnResource::part(
                &self.key,
                "ipv6-default",
                "AWS::EC2::Route",
                json!({
                    "RouteTableId": table,
                    "DestinationIpv6CidrBlock": IPV6_DEFAULT_ROUTE,
                    "EgressOnlyInternetGatewayId": cx.output(gateway, "id"),
                }),
            );
            // As in `up`, where the VPC has its IPv6 block before the route is made.
            route
                .depends_on
                .push(super::vpc::ipv6_block_logical_id(&self.vpc));
            parts.push(Part::Resource(route));
        }
        for subnet in &self.subnets {
            parts.push(Part::Resource(CfnResource::part(
                &self.key,
                &template::logical_id(subnet),
                "AWS::EC2::SubnetRouteTableAssociation",
                json!({
                    "RouteTableId": table,
                    "SubnetId": cx.output(subnet, "id"),
                }),
            )));
        }
        Ok(parts)
    }
}
