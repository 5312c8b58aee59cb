//! Security groups and their rules (console step S16). Rules are compared as a set: a rule
//! added by hand is drift and `up` revokes it; a missing one is authorized again.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroupRule,
    UserIdGroupPair,
};

use super::ec2::{self, filter};
use super::tag_diff;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};

/// Where a rule's traffic comes from (ingress) or goes to (egress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Ipv4(String),
    Ipv6(String),
    Group(String),
    /// A managed prefix list (`pl-…`): never wanted here, but a rule added by hand is drift.
    PrefixList(String),
}

/// A rule in comparable form: protocol `-1` means all traffic, ports -1 then.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub egress: bool,
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let direction = if self.egress { "Egress" } else { "Ingress" };
        let ports = if self.protocol == "-1" {
            "all".to_owned()
        } else if self.from_port == self.to_port {
            format!("{} {}", self.protocol, self.from_port)
        } else {
            format!("{} {}-{}", self.protocol, self.from_port, self.to_port)
        };
        let (word, peer) = match &self.peer {
            Peer::Ipv4(c) | Peer::Ipv6(c) | Peer::Group(c) | Peer::PrefixList(c) => {
                (if self.egress { "to" } else { "from" }, c.as_str())
            }
        };
        write!(f, "{direction}[{ports} {word} {peer}]")
    }
}

/// A wanted rule whose peer group may not exist yet.
#[derive(Debug, Clone)]
pub struct WantedRule {
    pub egress: bool,
    pub protocol: &'static str,
    pub port: Option<i32>,
    pub peer: WantedPeer,
}

#[derive(Debug, Clone)]
pub enum WantedPeer {
    Ipv4(String),
    Ipv6(String),
    Group(ResourceKey),
}

impl WantedRule {
    pub fn tcp(egress: bool, port: i32, peer: WantedPeer) -> Self {
        WantedRule {
            egress,
            protocol: "tcp",
            port: Some(port),
            peer,
        }
    }

    fn resolve(&self, cx: &Context) -> Option<Rule> {
        let peer = match &self.peer {
            WantedPeer::Ipv4(c) => Peer::Ipv4(c.clone()),
            WantedPeer::Ipv6(c) => Peer::Ipv6(c.clone()),
            WantedPeer::Group(key) => Peer::Group(cx.output(key, "id")?),
        };
        let port = self.port.unwrap_or(-1);
        Some(Rule {
            egress: self.egress,
            protocol: self.protocol.into(),
            from_port: port,
            to_port: port,
            peer,
        })
    }
}

/// A live rule with its id (`sgr-…`), in comparable form.
pub fn live_rule(r: &SecurityGroupRule) -> Option<(String, Rule)> {
    let peer = if let Some(c) = r.cidr_ipv4() {
        Peer::Ipv4(c.into())
    } else if let Some(c) = r.cidr_ipv6() {
        Peer::Ipv6(c.into())
    } else if let Some(p) = r.prefix_list_id() {
        Peer::PrefixList(p.into())
    } else {
        Peer::Group(r.referenced_group_info()?.group_id()?.into())
    };
    let protocol = r.ip_protocol().unwrap_or("-1").to_owned();
    let (from_port, to_port) = if protocol == "-1" {
        (-1, -1)
    } else {
        (r.from_port().unwrap_or(-1), r.to_port().unwrap_or(-1))
    };
    Some((
        r.security_group_rule_id()?.to_owned(),
        Rule {
            egress: r.is_egress().unwrap_or(false),
            protocol,
            from_port,
            to_port,
            peer,
        },
    ))
}

/// Rules to authorize and rule ids to revoke so that `live` becomes `wanted`.
pub fn rule_diff(wanted: &[Rule], live: &[(String, Rule)]) -> (Vec<Rule>, Vec<(String, Rule)>) {
    let missing = wanted
        .iter()
        .filter(|w| !live.iter().any(|(_, l)| l == *w))
        .cloned()
        .collect();
    let extra = live
        .iter()
        .filter(|(_, l)| !wanted.contains(l))
        .cloned()
        .collect();
    (missing, extra)
}

pub struct SecurityGroup {
    pub key: ResourceKey,
    pub vpc: ResourceKey,
    pub name: String,
    pub description: String,
    pub rules: Vec<WantedRule>,
}

impl SecurityGroup {
    async fn find(&self, cx: &Context) -> Result<Option<String>, Error> {
        let out = cx
            .aws
            .ec2
            .describe_security_groups()
            .set_filters(Some(ec2::owned(cx, &self.name)))
            .send()
            .await
            .step(&self.key, "DescribeSecurityGroups")?;
        let ours: Vec<_> = out
            .security_groups()
            .iter()
            .filter(|g| ec2::is_ours(cx, g.tags(), &self.name))
            .cloned()
            .collect();
        Ok(
            ec2::single(&self.key, &self.name, &ours)?
                .and_then(|g| g.group_id().map(str::to_owned)),
        )
    }

    async fn live(
        &self,
        cx: &Context,
        id: &str,
    ) -> Result<
        (
            Vec<(String, Rule)>,
            std::collections::BTreeMap<String, String>,
        ),
        Error,
    > {
        let rules = cx
            .aws
            .ec2
            .describe_security_group_rules()
            .filters(filter("group-id", id))
            .send()
            .await
            .step(&self.key, "DescribeSecurityGroupRules")?;
        let groups = ec2::naming_new(|| async {
            cx.aws
                .ec2
                .describe_security_groups()
                .group_ids(id)
                .send()
                .await
                .step(&self.key, "DescribeSecurityGroups")
        })
        .await?;
        let tags = groups
            .security_groups()
            .first()
            .map(|g| ec2::tag_map(g.tags()))
            .unwrap_or_default();
        Ok((
            rules
                .security_group_rules()
                .iter()
                .filter_map(live_rule)
                .collect(),
            tags,
        ))
    }

    fn wanted(&self, cx: &Context) -> Vec<Rule> {
        self.rules.iter().filter_map(|r| r.resolve(cx)).collect()
    }

    fn permission(rule: &Rule) -> IpPermission {
        let p = IpPermission::builder()
            .ip_protocol(&rule.protocol)
            .from_port(rule.from_port)
            .to_port(rule.to_port);
        match &rule.peer {
            Peer::Ipv4(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).build()),
            Peer::Ipv6(c) => p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build()),
            Peer::Group(g) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
            Peer::PrefixList(l) => {
                p.prefix_list_ids(PrefixListId::builder().prefix_list_id(l).build())
            }
        }
        .build()
    }

    async fn converge_rules(&self, cx: &Context, id: &str) -> Result<(), Error> {
        let ec2c = &cx.aws.ec2;
        let (live, _) = self.live(cx, id).await?;
        let (missing, extra) = rule_diff(&self.wanted(cx), &live);
        for rule in missing {
            // The group, or the peer group a rule names, may have been made moments ago.
            let result = ec2::naming_new(|| async {
                if rule.egress {
                    ec2c.authorize_security_group_egress()
                        .group_id(id)
                        .ip_permissions(Self::permission(&rule))
                        .send()
                        .await
                        .map(|_| ())
                        .step(&self.key, "AuthorizeSecurityGroupEgress")
                } else {
                    ec2c.authorize_security_group_ingress()
                        .group_id(id)
                        .ip_permissions(Self::permission(&rule))
                        .send()
                        .await
                        .map(|_| ())
                        .step(&self.key, "AuthorizeSecurityGroupIngress")
                }
            })
            .await;
            match result {
                Err(e) if e.code() == Some("InvalidPermission.Duplicate") => {}
                other => other?,
            }
        }
        for (rule_id, rule) in extra {
            if rule.egress {
                ec2c.revoke_security_group_egress()
                    .group_id(id)
                    .security_group_rule_ids(rule_id)
                    .send()
                    .await
                    .step(&self.key, "RevokeSecurityGroupEgress")?;
            } else {
                ec2c.revoke_security_group_ingress()
                    .group_id(id)
                    .security_group_rule_ids(rule_id)
                    .send()
                    .await
                    .step(&self.key, "RevokeSecurityGroupIngress")?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for SecurityGroup {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.vpc.clone()];
        for r in &self.rules {
            if let WantedPeer::Group(g) = &r.peer {
                deps.push(g.clone());
            }
        }
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(id) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        cx.publish(&self.key, "id", &id);
        let (live, tags) = self.live(cx, &id).await?;
        let (missing, extra) = rule_diff(&self.wanted(cx), &live);
        let mut diff = Diff::default();
        for rule in missing {
            diff.push(FieldDiff::new(rule.to_string(), "present", "(absent)"));
        }
        for (_, rule) in extra {
            diff.push(FieldDiff::new(rule.to_string(), "(absent)", "present"));
        }
        diff.extend(tag_diff(&ec2::wanted_tags(cx, &self.name), &tags));
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let id = if planned.action == Action::Create {
            let vpc = cx.require(&self.key, &self.vpc, "id")?;
            let created = ec2::naming_new(|| async {
                cx.aws
                    .ec2
                    .create_security_group()
                    .group_name(&self.name)
                    .description(&self.description)
                    .vpc_id(&vpc)
                    .tag_specifications(ec2::tag_spec(cx, ResourceType::SecurityGroup, &self.name))
                    .send()
                    .await
                    .step(&self.key, "CreateSecurityGroup")
            })
            .await;
            match created {
                Ok(out) => out.group_id().unwrap_or_default().to_owned(),
                // Names are unique per VPC: an earlier run made it and lost the answer.
                Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
                    self.find(cx).await?.unwrap_or_default()
                }
                Err(e) => return Err(e),
            }
        } else {
            planned.physical_id.clone().unwrap_or_default()
        };
        cx.publish(&self.key, "id", &id);
        // Also removes the allow-all egress rule AWS adds to every new group.
        self.converge_rules(cx, &id).await?;
        if planned.touches("Tags.") {
            ec2::put_tags(cx, &self.key, &id, &self.name).await?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(id) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        ec2::delete_when_released(
            cx,
            &self.key,
            filter("group-id", &id),
            format!("security group {id}"),
            || async {
                cx.aws
                    .ec2
                    .delete_security_group()
                    .group_id(&id)
                    .send()
                    .await
                    .step(&self.key, "DeleteSecurityGroup")?;
                Ok(())
            },
        )
        .await?;
        Ok(Deleted::Deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(egress: bool, protocol: &str, port: i32, peer: Peer) -> Rule {
        Rule {
            egress,
            protocol: protocol.into(),
            from_port: port,
            to_port: port,
            peer,
        }
    }

    #[test]
    fn a_rule_added_by_hand_is_extra_and_a_removed_one_is_missing() {
        let mysql = rule(false, "tcp", 3306, Peer::Group("sg-functions".into()));
        let https = rule(true, "tcp", 443, Peer::Ipv4("0.0.0.0/0".into()));
        let ssh = rule(false, "tcp", 22, Peer::Ipv4("0.0.0.0/0".into()));
        let live = vec![
            ("sgr-1".to_owned(), mysql.clone()),
            ("sgr-2".to_owned(), ssh.clone()),
        ];
        let (missing, extra) = rule_diff(&[mysql.clone(), https.clone()], &live);
        assert_eq!(missing, vec![https]);
        assert_eq!(extra, vec![("sgr-2".to_owned(), ssh.clone())]);
        assert_eq!(ssh.to_string(), "Ingress[tcp 22 from 0.0.0.0/0]");
        // A rule to a prefix list added by hand is seen too, not skipped.
        let s3 = rule(true, "tcp", 443, Peer::PrefixList("pl-63a5400a".into()));
        let (_, extra) = rule_diff(&[], &[("sgr-3".to_owned(), s3.clone())]);
        assert_eq!(extra.len(), 1);
        assert_eq!(s3.to_string(), "Egress[tcp 443 to pl-63a5400a]");
    }

    #[test]
    fn the_same_rules_in_another_order_are_no_difference() {
        let a = rule(true, "-1", -1, Peer::Ipv6("::/0".into()));
        let b = rule(false, "tcp", 443, Peer::Group("sg-1".into()));
        let live = vec![("r2".to_owned(), b.clone()), ("r1".to_owned(), a.clone())];
        let (missing, extra) = rule_diff(&[a, b], &live);
        assert!(missing.is_empty() && extra.is_empty());
    }

    #[test]
    fn aws_default_egress_is_extra_unless_wanted() {
        let default_egress = rule(true, "-1", -1, Peer::Ipv4("0.0.0.0/0".into()));
        let (_, extra) = rule_diff(&[], &[("sgr-default".to_owned(), default_egress.clone())]);
        assert_eq!(extra.len(), 1);
        assert_eq!(default_egress.to_string(), "Egress[all to 0.0.0.0/0]");
    }
}
