//! The VPC's default security group, kept without rules (CIS AWS Foundations 5.4, Security
//! Hub EC2.2).
//!
//! AWS makes it with every VPC, named `default`, letting in all traffic from its own members
//! and out all traffic to `0.0.0.0/0` (and `::/0` when the VPC has an IPv6 block). The stack
//! never uses it, but whatever is placed in the VPC without a group named (an interface
//! endpoint, an instance or a function made by hand) lands in it. It cannot be deleted, so
//! `up` revokes its rules, `drift` reports any rule on it, and `down` leaves it to go with the
//! VPC.
//!
//! A resource of its own rather than part of the VPC: it is found through the VPC (by id and
//! the name `default`, as AWS tags it with nothing), and its drift reads as rules of a group,
//! apart from the VPC's own settings.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::SecurityGroup as Ec2Group;

use super::ec2::{self, filter};
use super::security_group::{live_rule, Rule};
use crate::engine::wait::{self, Poll, Wait};
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Error, FieldDiff, Planned, Resource, ResourceKey,
};
use crate::template::{Part, Rendering};

pub struct DefaultSecurityGroup {
    pub key: ResourceKey,
    pub vpc: ResourceKey,
}

/// What `drift` says of rules found on the group: each one is unwanted.
pub fn rule_drift(live: &[(String, Rule)]) -> Vec<FieldDiff> {
    live.iter()
        .map(|(_, rule)| FieldDiff::new(rule.to_string(), "(absent)", "present"))
        .collect()
}

impl DefaultSecurityGroup {
    /// The VPC's group named `default` (checked on the answer too: a lenient filter must not
    /// hand over another group).
    async fn find(&self, cx: &Context, vpc: &str) -> Result<Option<String>, Error> {
        let out = cx
            .aws
            .ec2
            .describe_security_groups()
            .filters(filter("vpc-id", vpc))
            .filters(filter("group-name", "default"))
            .send()
            .await
            .step(&self.key, "DescribeSecurityGroups")?;
        let found: Vec<Ec2Group> = out
            .security_groups()
            .iter()
            .filter(|g| g.vpc_id() == Some(vpc) && g.group_name() == Some("default"))
            .cloned()
            .collect();
        Ok(
            ec2::single(&self.key, "default", &found)?
                .and_then(|g| g.group_id().map(str::to_owned)),
        )
    }

    /// Every rule on the group, with its id (a rule names a CIDR, a prefix list or a group:
    /// [`live_rule`] reads all three).
    async fn rules(&self, cx: &Context, id: &str) -> Result<Vec<(String, Rule)>, Error> {
        let mut rules = Vec::new();
        let mut token = None;
        loop {
            let out = cx
                .aws
                .ec2
                .describe_security_group_rules()
                .filters(filter("group-id", id))
                .set_next_token(token)
                .send()
                .await
                .step(&self.key, "DescribeSecurityGroupRules")?;
            rules.extend(
                out.security_group_rules()
                    .iter()
                    // Only this group's own rules, whatever a lenient filter lets through.
                    .filter(|r| r.group_id() == Some(id))
                    .filter_map(live_rule),
            );
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(rules);
            }
        }
    }

    /// The group's id, waiting for it if the VPC was made moments ago.
    async fn wait_for_group(&self, cx: &Context, vpc: &str) -> Result<String, Error> {
        let wait = Wait::new(cx, Duration::from_secs(2), Duration::from_secs(2 * 60));
        wait::until(
            cx,
            &self.key,
            "the VPC's default security group",
            wait,
            || async {
                Ok(match self.find(cx, vpc).await {
                    Ok(Some(id)) => Poll::Ready(id),
                    Ok(None) => Poll::Pending("not listed yet".into()),
                    Err(e) if ec2::not_found_yet(&e) => Poll::Pending("VPC not known yet".into()),
                    Err(e) => return Err(e),
                })
            },
        )
        .await
    }

    /// Revokes one rule by its id. One call per rule: a rule another run revoked meanwhile
    /// (`InvalidSecurityGroupRuleId.NotFound`) is done, and does not stop the others.
    async fn revoke(
        &self,
        cx: &Context,
        group: &str,
        rule_id: &str,
        egress: bool,
    ) -> Result<(), Error> {
        let ec2c = &cx.aws.ec2;
        let result = if egress {
            ec2c.revoke_security_group_egress()
                .group_id(group)
                .security_group_rule_ids(rule_id)
                .send()
                .await
                .map(|_| ())
                .step(&self.key, "RevokeSecurityGroupEgress")
        } else {
            ec2c.revoke_security_group_ingress()
                .group_id(group)
                .security_group_rule_ids(rule_id)
                .send()
                .await
                .map(|_| ())
                .step(&self.key, "RevokeSecurityGroupIngress")
        };
        match result {
            Err(e) if e.code() == Some("InvalidSecurityGroupRuleId.NotFound") => Ok(()),
            other => other,
        }
    }
}

#[async_trait]
impl Resource for DefaultSecurityGroup {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![self.vpc.clone()]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        // No VPC yet: `up` makes it, then empties the group AWS makes with it.
        let Some(vpc) = cx.output(&self.vpc, "id") else {
            return Ok(Planned::create(self.key.clone(), None::<String>));
        };
        let Some(id) = self.find(cx, &vpc).await? else {
            return Ok(Planned::create(self.key.clone(), None::<String>));
        };
        cx.publish(&self.key, "id", &id);
        let live = self.rules(cx, &id).await?;
        Ok(Planned::from_diff(self.key.clone(), id, rule_drift(&live)))
    }

    async fn apply(&self, cx: &Context, _planned: &Planned) -> Result<(), Error> {
        let vpc = cx.require(&self.key, &self.vpc, "id")?;
        let id = self.wait_for_group(cx, &vpc).await?;
        cx.publish(&self.key, "id", &id);
        // Read again rather than trust the plan: on a new VPC the plan saw no group at all.
        for (rule_id, rule) in self.rules(cx, &id).await? {
            self.revoke(cx, &id, &rule_id, rule.egress).await?;
        }
        Ok(())
    }

    /// The group goes with the VPC; there is nothing to delete on its own.
    async fn delete(&self, _cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        Ok(Deleted::Absent)
    }

    /// AWS makes the group with the VPC (the template names it as the VPC's
    /// `DefaultSecurityGroup`), and CloudFormation has no resource for the rules of a group it
    /// did not make.
    fn cloudformation(&self, _cx: &Context) -> Rendering {
        Ok(vec![Part::AfterDeploy(
            "revoking every rule of the VPC's default security group, which AWS makes with the \
             VPC with allow-all rules and CloudFormation cannot manage",
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::security_group::Peer;

    #[test]
    fn every_rule_on_the_default_group_is_drift_named_by_the_rule() {
        let from_itself = Rule {
            egress: false,
            protocol: "-1".into(),
            from_port: -1,
            to_port: -1,
            peer: Peer::Group("sg-default".into()),
        };
        let to_anywhere_v6 = Rule {
            egress: true,
            protocol: "-1".into(),
            from_port: -1,
            to_port: -1,
            peer: Peer::Ipv6("::/0".into()),
        };
        let drift = rule_drift(&[
            ("sgr-1".into(), from_itself),
            ("sgr-2".into(), to_anywhere_v6),
        ]);
        let fields: Vec<(&str, &str, &str)> = drift
            .iter()
            .map(|d| (d.field.as_str(), d.expected.as_str(), d.actual.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("Ingress[all from sg-default]", "(absent)", "present"),
                ("Egress[all to ::/0]", "(absent)", "present"),
            ]
        );
        assert!(rule_drift(&[]).is_empty());
    }

    #[test]
    fn the_template_leaves_the_rules_to_provision() {
        let cx = crate::systems::tests::context(false);
        let group = DefaultSecurityGroup {
            key: crate::systems::stt::DEFAULT_SG,
            vpc: crate::systems::stt::VPC,
        };
        let parts = group.cloudformation(&cx).unwrap();
        assert!(
            matches!(parts.as_slice(), [Part::AfterDeploy(_)]),
            "{parts:?}"
        );
        // What names the group in the template is the VPC's attribute.
        let cx = Context::symbolic(cx.stack.clone(), vec![]);
        assert_eq!(
            cx.output(&group.key, "id").as_deref(),
            Some(crate::template::reference("VpcStt.DefaultSecurityGroup").as_str())
        );
    }
}
