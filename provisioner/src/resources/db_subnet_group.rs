//! The RDS subnet group: the subnets (in at least two zones) the database may live in.

use async_trait::async_trait;
use aws_sdk_rds::types::Tag;

use serde_json::json;

use super::tag_diff;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

pub struct DbSubnetGroup {
    pub key: ResourceKey,
    pub name: String,
    pub subnets: Vec<ResourceKey>,
}

pub fn rds_tags(cx: &Context) -> Vec<Tag> {
    cx.tags()
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The group's description (RDS requires one).
fn description(cx: &Context) -> String {
    format!("Subnets of the database of stack {}", cx.stack_name())
}

impl DbSubnetGroup {
    fn wanted(&self, cx: &Context) -> Vec<String> {
        let mut ids: Vec<String> = self
            .subnets
            .iter()
            .filter_map(|s| cx.output(s, "id"))
            .collect();
        ids.sort();
        ids
    }

    /// (subnet ids, arn) of the live group.
    async fn find(&self, cx: &Context) -> Result<Option<(Vec<String>, String)>, Error> {
        match cx
            .aws
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_subnet_groups().first().map(|g| {
                let mut ids: Vec<String> = g
                    .subnets()
                    .iter()
                    .filter_map(|s| s.subnet_identifier().map(str::to_owned))
                    .collect();
                ids.sort();
                (ids, g.db_subnet_group_arn().unwrap_or_default().to_owned())
            })),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_subnet_group_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "DescribeDBSubnetGroups"),
        }
    }
}

#[async_trait]
impl Resource for DbSubnetGroup {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        self.subnets.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some((subnets, arn)) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        cx.publish(&self.key, "name", &self.name);
        let tags = cx
            .aws
            .rds
            .list_tags_for_resource()
            .resource_name(&arn)
            .send()
            .await
            .step(&self.key, "ListTagsForResource")?;
        let live_tags = tags
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let mut diff = Diff::default();
        diff.field("SubnetIds", self.wanted(cx), subnets);
        diff.extend(tag_diff(&cx.tags(), &live_tags));
        cx.publish(&self.key, "arn", arn);
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let rds = &cx.aws.rds;
        if planned.action == Action::Create {
            let created = rds
                .create_db_subnet_group()
                .db_subnet_group_name(&self.name)
                .db_subnet_group_description(description(cx))
                .set_subnet_ids(Some(self.wanted(cx)))
                .set_tags(Some(rds_tags(cx)))
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_db_subnet_group_already_exists_fault()) => {}
                Err(e) => return Err(e).step(&self.key, "CreateDBSubnetGroup"),
            }
        } else {
            if planned.changes.iter().any(|c| c.field == "SubnetIds") {
                rds.modify_db_subnet_group()
                    .db_subnet_group_name(&self.name)
                    .set_subnet_ids(Some(self.wanted(cx)))
                    .send()
                    .await
                    .step(&self.key, "ModifyDBSubnetGroup")?;
            }
            if planned.touches("Tags.") {
                let arn = cx.require(&self.key, &self.key, "arn")?;
                rds.add_tags_to_resource()
                    .resource_name(arn)
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
        match cx
            .aws
            .rds
            .delete_db_subnet_group()
            .db_subnet_group_name(&self.name)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_subnet_group_not_found_fault()) =>
            {
                Ok(Deleted::Absent)
            }
            Err(e) => Err(e).step(&self.key, "DeleteDBSubnetGroup"),
        }
    }

    fn cloudformation(&self, cx: &Context) -> Rendering {
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::RDS::DBSubnetGroup",
            json!({
                "DBSubnetGroupName": self.name,
                "DBSubnetGroupDescription": description(cx),
                "SubnetIds": self.wanted(cx),
                "Tags": template::tags(cx),
            }),
        ))])
    }
}
