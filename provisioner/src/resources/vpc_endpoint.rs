//! VPC endpoints (console steps S20, S21): a gateway endpoint for S3 on the subnets' route
//! table, interface endpoints with private DNS for the other services functions in the VPC
//! call.
//!
//! An endpoint may carry a policy (the S3 gateway endpoint does: only the stack's bucket);
//! it is compared as a document (`policy::same`) and set again with `ModifyVpcEndpoint`.
//!
//! `CreateVpcEndpoint` takes a `ClientToken`; the SDK fills one in per call and reuses it for
//! its own retries. A create interrupted after AWS acted is found by its tags, which come with
//! the endpoint in the same call. A fixed token would be wrong here: after an endpoint is
//! deleted, AWS would answer a repeat of the same token with the deleted endpoint.

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, State, VpcEndpoint as Ec2Endpoint, VpcEndpointType};
use serde_json::{json, Value};

use super::ec2::{self, filter};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};
use crate::policy;
use crate::template::{CfnResource, Part, Rendering};

/// Interface endpoints answer the services' own names inside the VPC, so the functions' SDKs
/// reach them without an endpoint setting.
const PRIVATE_DNS: bool = true;

pub enum Attachment {
    /// Routes in these route tables (S3, DynamoDB).
    Gateway { route_tables: Vec<ResourceKey> },
    /// Network interfaces in these subnets, behind these security groups, with private DNS.
    Interface {
        subnets: Vec<ResourceKey>,
        security_groups: Vec<ResourceKey>,
    },
}

pub struct VpcEndpoint {
    pub key: ResourceKey,
    pub vpc: ResourceKey,
    pub name: String,
    /// `com.amazonaws.{region}.{service}`
    pub service_name: String,
    pub attachment: Attachment,
    /// The endpoint policy; `None` leaves AWS's default (full access) alone.
    pub policy: Option<Value>,
}

/// Whether an endpoint in this state no longer counts. EC2 answers these states in lower case
/// ("deleted") while the SDK's enum spells them capitalised, so they are compared as text.
fn is_gone(state: Option<&State>) -> bool {
    let state = state
        .map(|s| s.as_str().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        state.as_str(),
        "deleted" | "deleting" | "failed" | "rejected" | "expired"
    )
}

/// The difference between the wanted endpoint policy and the live one, if any. `live` is the
/// JSON text EC2 answers (AWS may reformat it: only the document counts).
pub fn policy_drift(wanted: &Value, live: Option<&str>) -> Option<FieldDiff> {
    let parsed = live.and_then(|l| serde_json::from_str::<Value>(l).ok());
    if parsed.as_ref().is_some_and(|l| policy::same(wanted, l)) {
        return None;
    }
    let shown = match (&parsed, live) {
        (Some(doc), _) => policy::normalize(doc).to_string(),
        (None, Some(text)) => text.to_owned(),
        (None, None) => "(not set)".to_owned(),
    };
    Some(FieldDiff::new(
        "PolicyDocument",
        policy::normalize(wanted),
        shown,
    ))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl VpcEndpoint {
    async fn find(&self, cx: &Context) -> Result<Option<Ec2Endpoint>, Error> {
        let mut filters = ec2::owned(cx, &self.name);
        filters.push(filter("service-name", &self.service_name));
        let out = cx
            .aws
            .ec2
            .describe_vpc_endpoints()
            .set_filters(Some(filters))
            .send()
            .await
            .step(&self.key, "DescribeVpcEndpoints")?;
        // Deleted endpoints stay visible for a while; they no longer count.
        let live: Vec<Ec2Endpoint> = out
            .vpc_endpoints()
            .iter()
            .filter(|e| {
                e.service_name() == Some(self.service_name.as_str())
                    && ec2::is_ours(cx, e.tags(), &self.name)
            })
            .filter(|e| !is_gone(e.state()))
            .cloned()
            .collect();
        ec2::single(&self.key, &self.name, &live)
    }

    fn ids(cx: &Context, keys: &[ResourceKey]) -> Vec<String> {
        sorted(keys.iter().filter_map(|k| cx.output(k, "id")).collect())
    }

    fn dependencies(&self) -> Vec<ResourceKey> {
        match &self.attachment {
            Attachment::Gateway { route_tables } => route_tables.clone(),
            Attachment::Interface {
                subnets,
                security_groups,
            } => subnets.iter().chain(security_groups).cloned().collect(),
        }
    }
}

#[async_trait]
impl Resource for VpcEndpoint {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    /// An interface endpoint's network interfaces take a minute or two to come up.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(90)
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.vpc.clone()];
        deps.extend(self.dependencies());
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(endpoint) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let id = endpoint.vpc_endpoint_id().unwrap_or_default().to_owned();
        cx.publish(&self.key, "id", &id);
        let mut diff = Diff::default();
        match &self.attachment {
            Attachment::Gateway { route_tables } => {
                diff.field(
                    "RouteTableIds",
                    Self::ids(cx, route_tables),
                    sorted(endpoint.route_table_ids().to_vec()),
                );
            }
            Attachment::Interface {
                subnets,
                security_groups,
            } => {
                diff.field(
                    "SubnetIds",
                    Self::ids(cx, subnets),
                    sorted(endpoint.subnet_ids().to_vec()),
                );
                // On AWS an interface endpoint always has at least one group (the VPC's default
                // one if none was named), so an empty list means an emulator that keeps none.
                let groups: Vec<String> = endpoint
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned))
                    .collect();
                if !groups.is_empty() {
                    diff.field(
                        "SecurityGroupIds",
                        Self::ids(cx, security_groups),
                        sorted(groups),
                    );
                }
                // The local emulator does not keep this setting; AWS and moto do.
                if !cx.aws.local {
                    diff.field(
                        "PrivateDnsEnabled",
                        PRIVATE_DNS,
                        endpoint.private_dns_enabled().unwrap_or(false),
                    );
                }
            }
        }
        if let Some(wanted) = &self.policy {
            // The local emulator neither keeps nor answers endpoint policies; AWS always
            // answers one (full access unless set).
            let live = endpoint.policy_document();
            if live.is_some() || !cx.aws.local {
                diff.extend(policy_drift(wanted, live));
            }
        }
        diff.extend(ec2::tag_drift(cx, &self.name, endpoint.tags()));
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let ec2c = &cx.aws.ec2;
        if planned.action == Action::Create {
            let vpc = cx.require(&self.key, &self.vpc, "id")?;
            let token = ec2::client_token();
            let out = ec2::naming_new(|| async {
                let request = ec2c
                    .create_vpc_endpoint()
                    .client_token(&token)
                    .vpc_id(&vpc)
                    .service_name(&self.service_name)
                    .set_policy_document(self.policy.as_ref().map(Value::to_string))
                    .tag_specifications(ec2::tag_spec(cx, ResourceType::VpcEndpoint, &self.name));
                let request = match &self.attachment {
                    Attachment::Gateway { route_tables } => request
                        .vpc_endpoint_type(VpcEndpointType::Gateway)
                        .set_route_table_ids(Some(Self::ids(cx, route_tables))),
                    Attachment::Interface {
                        subnets,
                        security_groups,
                    } => request
                        .vpc_endpoint_type(VpcEndpointType::Interface)
                        .set_subnet_ids(Some(Self::ids(cx, subnets)))
                        .set_security_group_ids(Some(Self::ids(cx, security_groups)))
                        .private_dns_enabled(PRIVATE_DNS),
                };
                request.send().await.step(&self.key, "CreateVpcEndpoint")
            })
            .await?;
            cx.publish(
                &self.key,
                "id",
                out.vpc_endpoint()
                    .and_then(|e| e.vpc_endpoint_id())
                    .unwrap_or_default(),
            );
            return Ok(());
        }
        let id = planned.physical_id.clone().unwrap_or_default();
        let endpoint = self.find(cx).await?.ok_or_else(|| Error::Refused {
            resource: self.key.clone(),
            message: format!("endpoint {id} vanished"),
        })?;
        let change = |wanted: Vec<String>, live: Vec<String>| {
            let add: Vec<String> = wanted
                .iter()
                .filter(|w| !live.contains(w))
                .cloned()
                .collect();
            let remove: Vec<String> = live
                .iter()
                .filter(|l| !wanted.contains(l))
                .cloned()
                .collect();
            (add, remove)
        };
        let mut modify = ec2c.modify_vpc_endpoint().vpc_endpoint_id(&id);
        match &self.attachment {
            Attachment::Gateway { route_tables } => {
                let (add, remove) = change(
                    Self::ids(cx, route_tables),
                    endpoint.route_table_ids().to_vec(),
                );
                modify = modify
                    .set_add_route_table_ids(Some(add))
                    .set_remove_route_table_ids(Some(remove));
            }
            Attachment::Interface {
                subnets,
                security_groups,
            } => {
                let (add, remove) = change(Self::ids(cx, subnets), endpoint.subnet_ids().to_vec());
                modify = modify
                    .set_add_subnet_ids(Some(add))
                    .set_remove_subnet_ids(Some(remove));
                let groups = endpoint
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_owned))
                    .collect();
                let (add, remove) = change(Self::ids(cx, security_groups), groups);
                modify = modify
                    .set_add_security_group_ids(Some(add))
                    .set_remove_security_group_ids(Some(remove))
                    .private_dns_enabled(PRIVATE_DNS);
            }
        }
        if planned.touches("PolicyDocument") {
            modify = modify.set_policy_document(self.policy.as_ref().map(Value::to_string));
        }
        if planned.touches_more_than_tags() {
            ec2::naming_new(|| async {
                modify
                    .clone()
                    .send()
                    .await
                    .step(&self.key, "ModifyVpcEndpoint")
            })
            .await?;
        }
        if planned.touches("Tags.") {
            ec2::put_tags(cx, &self.key, &id, &self.name).await?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(endpoint) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        let id = endpoint.vpc_endpoint_id().unwrap_or_default();
        let out = cx
            .aws
            .ec2
            .delete_vpc_endpoints()
            .vpc_endpoint_ids(id)
            .send()
            .await
            .step(&self.key, "DeleteVpcEndpoints")?;
        if let Some(failure) = out.unsuccessful().first() {
            let message = failure
                .error()
                .and_then(|e| e.message())
                .unwrap_or("unknown error")
                .to_owned();
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!("could not delete endpoint {id}: {message}"),
            });
        }
        Ok(Deleted::Deleted)
    }

    fn cloudformation(&self, cx: &Context) -> Rendering {
        let mut properties = json!({
            "VpcId": cx.output(&self.vpc, "id"),
            "ServiceName": self.service_name,
            "Tags": ec2::cfn_tags(cx, &self.name),
        });
        match &self.attachment {
            Attachment::Gateway { route_tables } => {
                properties["VpcEndpointType"] = json!(VpcEndpointType::Gateway.as_str());
                properties["RouteTableIds"] = json!(Self::ids(cx, route_tables));
            }
            Attachment::Interface {
                subnets,
                security_groups,
            } => {
                properties["VpcEndpointType"] = json!(VpcEndpointType::Interface.as_str());
                properties["SubnetIds"] = json!(Self::ids(cx, subnets));
                properties["SecurityGroupIds"] = json!(Self::ids(cx, security_groups));
                properties["PrivateDnsEnabled"] = json!(PRIVATE_DNS);
            }
        }
        if let Some(policy) = &self.policy {
            properties["PolicyDocument"] = policy.clone();
        }
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::EC2::VPCEndpoint",
            properties,
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wanted() -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
            "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/in/*"}]})
    }

    #[test]
    fn the_same_policy_reformatted_is_no_drift() {
        let live = r#"{ "Statement" : [ { "Resource" : ["arn:aws:s3:::b/in/*"], "Action" : ["s3:PutObject", "s3:GetObject"],
            "Principal" : {"AWS": "*"}, "Effect" : "Allow" } ], "Version" : "2012-10-17" }"#;
        assert_eq!(policy_drift(&wanted(), Some(live)), None);
    }

    #[test]
    fn a_widened_missing_or_unreadable_policy_is_drift() {
        let full = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;
        let diff = policy_drift(&wanted(), Some(full)).unwrap();
        assert_eq!(diff.field, "PolicyDocument");
        assert!(diff.actual.contains(r#""Resource":"*""#), "{}", diff.actual);
        assert!(diff.expected.contains("arn:aws:s3:::b/in/*"));
        assert_eq!(policy_drift(&wanted(), None).unwrap().actual, "(not set)");
        assert_eq!(
            policy_drift(&wanted(), Some("not json")).unwrap().actual,
            "not json"
        );
    }
}
