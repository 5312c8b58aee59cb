//! Security groups and their rules (console step S16). Rules are compared as a set: a rule
//! added by hand is drift and `up` revokes it; a missing one is authorized again.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, SecurityGroupRule,
    UserIdGroupPair,
};

use serde_json::{json, Map, Value};

use super::ec2::{self, filter};
use super::tag_diff;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

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

/// A rule's protocol, ports and peer as CloudFormation names them, in a group's
/// `SecurityGroupIngress`/`SecurityGroupEgress` or in a rule resource of its own.
fn cfn_rule(rule: &Rule) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("IpProtocol".into(), json!(rule.protocol));
    properties.insert("FromPort".into(), json!(rule.from_port));
    properties.insert("ToPort".into(), json!(rule.to_port));
    let (name, value) = match (&rule.peer, rule.egress) {
        (Peer::Ipv4(c), _) => ("CidrIp", c),
        (Peer::Ipv6(c), _) => ("CidrIpv6", c),
        (Peer::Group(g), false) => ("SourceSecurityGroupId", g),
        (Peer::Group(g), true) => ("DestinationSecurityGroupId", g),
        (Peer::PrefixList(l), false) => ("SourcePrefixListId", l),
        (Peer::PrefixList(l), true) => ("DestinationPrefixListId", l),
    };
    properties.insert(name.into(), json!(value));
    properties
}

/// What a rule lets through, in words: its `Description` in the template (checkov CKV_AWS_23).
/// `up` sets none and compares none, so neither engine sees the other's as drift.
fn cfn_description(wanted: &WantedRule) -> String {
    let traffic = match wanted.port {
        Some(port) => format!("{} {port}", wanted.protocol),
        None => "all traffic".to_owned(),
    };
    let peer = match &wanted.peer {
        WantedPeer::Ipv4(cidr) | WantedPeer::Ipv6(cidr) => cidr.clone(),
        WantedPeer::Group(key) => format!("the {} group", key.name),
    };
    let direction = if wanted.egress { "to" } else { "from" };
    format!("{traffic} {direction} {peer}")
}

/// The egress of a group that sends nothing, in CloudFormation. A group made there without
/// egress rules gets AWS's allow-all egress (which `up` revokes), so such a group gets this
/// one rule instead, which matches no packet: ICMP type 252 code 86 to the limited broadcast
/// address (the rule the AWS CDK writes for the same purpose).
fn cfn_no_egress() -> Value {
    let mut rule = cfn_rule(&no_traffic());
    rule.insert("Description".into(), json!("Disallow all traffic"));
    Value::Object(rule)
}

fn no_traffic() -> Rule {
    Rule {
        egress: true,
        protocol: "icmp".into(),
        from_port: 252,
        to_port: 86,
        peer: Peer::Ipv4("255.255.255.255/32".into()),
    }
}

/// Rules to authorize and rule ids to revoke so that `live` becomes `wanted`. The rule that
/// matches no traffic (on a group CloudFormation made, see [`cfn_no_egress`]) is neither: it
/// lets nothing out, as no rule does.
pub fn rule_diff(wanted: &[Rule], live: &[(String, Rule)]) -> (Vec<Rule>, Vec<(String, Rule)>) {
    let missing = wanted
        .iter()
        .filter(|w| !live.iter().any(|(_, l)| l == *w))
        .cloned()
        .collect();
    let extra = live
        .iter()
        .filter(|(_, l)| !wanted.contains(l) && *l != no_traffic())
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

    /// `AWS::EC2::SecurityGroup` with its address rules; a rule naming another group of the
    /// stack is an `AWS::EC2::SecurityGroupIngress`/`Egress` of its own, so that two groups
    /// naming each other make no cycle (CloudFormation's advice).
    fn cloudformation(&self, cx: &Context) -> Rendering {
        let group_id = cx
            .output(&self.key, "id")
            .ok_or_else(|| format!("{} has no id", self.key))?;
        let mut ingress = Vec::new();
        let mut egress = Vec::new();
        let mut parts = Vec::new();
        for wanted in &self.rules {
            let rule = wanted
                .resolve(cx)
                .ok_or_else(|| format!("a rule of {} names a group with no id", self.key))?;
            let mut properties = cfn_rule(&rule);
            properties.insert("Description".into(), json!(cfn_description(wanted)));
            match &wanted.peer {
                WantedPeer::Group(peer) => {
                    let (direction, type_name) = if rule.egress {
                        ("egress", "AWS::EC2::SecurityGroupEgress")
                    } else {
                        ("ingress", "AWS::EC2::SecurityGroupIngress")
                    };
                    properties.insert("GroupId".into(), json!(group_id));
                    let suffix = format!(
                        "{direction} {} {} {}",
                        rule.protocol,
                        rule.from_port,
                        template::logical_id(peer)
                    );
                    parts.push(Part::Resource(CfnResource::part(
                        &self.key,
                        &suffix,
                        type_name,
                        Value::Object(properties),
                    )));
                }
                _ if rule.egress => egress.push(Value::Object(properties)),
                _ => ingress.push(Value::Object(properties)),
            }
        }
        // Always given: left out, CloudFormation keeps AWS's allow-all egress.
        if egress.is_empty() {
            egress.push(cfn_no_egress());
        }
        let mut properties = json!({
            "GroupName": self.name,
            "GroupDescription": self.description,
            "VpcId": cx.output(&self.vpc, "id"),
            "SecurityGroupEgress": egress,
            "Tags": ec2::cfn_tags(cx, &self.name),
        });
        if !ingress.is_empty() {
            properties["SecurityGroupIngress"] = Value::Array(ingress);
        }
        parts.insert(
            0,
            Part::Resource(CfnResource::new(
                &self.key,
                "AWS::EC2::SecurityGroup",
                properties,
            )),
        );
        Ok(parts)
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

    /// The stack's network as the template renders it: every output a reference.
    fn symbolic() -> Context {
        let stack = crate::systems::tests::context(false).stack.clone();
        Context::symbolic(stack, vec![template::zone(0), template::zone(1)])
    }

    fn rendered(cx: &Context, key: &ResourceKey) -> Vec<CfnResource> {
        let network = cx
            .stack
            .stt
            .network
            .clone()
            .expect("the stack has a network");
        let group = crate::systems::stt::network(cx, &network)
            .into_iter()
            .find(|r| r.key() == *key)
            .expect("the stack has the group");
        group
            .cloudformation(cx)
            .unwrap()
            .into_iter()
            .map(|part| match part {
                Part::Resource(r) => r,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_group_sending_nothing_gets_an_egress_rule_matching_nothing_not_aws_allow_all() {
        let cx = symbolic();
        let parts = rendered(&cx, &crate::systems::stt::DATABASE_SG);
        let group = &parts[0];
        assert_eq!(group.type_name, "AWS::EC2::SecurityGroup");
        assert_eq!(group.properties["GroupName"], "stt-demo-database");
        assert_eq!(
            group.properties["SecurityGroupEgress"],
            json!([cfn_no_egress()])
        );
        // MySQL from the functions' group: a rule resource of its own, so no cycle.
        assert!(group.properties.get("SecurityGroupIngress").is_none());
        let rule = &parts[1];
        assert_eq!(rule.type_name, "AWS::EC2::SecurityGroupIngress");
        assert_eq!(
            rule.properties["GroupId"],
            template::reference("SecurityGroupSttDatabase.GroupId")
        );
        assert_eq!(
            rule.properties["SourceSecurityGroupId"],
            template::reference("SecurityGroupSttFunctions.GroupId")
        );
        assert_eq!(
            (&rule.properties["FromPort"], &rule.properties["ToPort"]),
            (&json!(3306), &json!(3306))
        );
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn the_template_declares_exactly_the_rules_up_keeps() {
        let cx = symbolic();
        let parts = rendered(&cx, &crate::systems::stt::FUNCTIONS_SG);
        let egress: Vec<(String, i64, String)> = parts[0].properties["SecurityGroupEgress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let peer = r.get("CidrIp").or(r.get("CidrIpv6")).unwrap();
                (
                    r["IpProtocol"].as_str().unwrap().to_owned(),
                    r["FromPort"].as_i64().unwrap(),
                    peer.as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            egress,
            vec![
                ("tcp".into(), 443, "0.0.0.0/0".into()),
                ("tcp".into(), 3306, "10.20.0.0/16".into()),
                ("tcp".into(), 443, "::/0".into()),
            ]
        );
        assert_eq!(
            parts[0].properties["SecurityGroupEgress"][2]["Description"],
            "tcp 443 to ::/0"
        );
        assert_eq!(parts.len(), 1, "no ingress at all");
    }

    #[test]
    fn the_rule_matching_nothing_is_not_drift() {
        let (missing, extra) = rule_diff(&[], &[("sgr-cfn".to_owned(), no_traffic())]);
        assert!(missing.is_empty() && extra.is_empty());
        assert_eq!(
            no_traffic().to_string(),
            "Egress[icmp 252-86 to 255.255.255.255/32]"
        );
    }

    #[test]
    fn aws_default_egress_is_extra_unless_wanted() {
        let default_egress = rule(true, "-1", -1, Peer::Ipv4("0.0.0.0/0".into()));
        let (_, extra) = rule_diff(&[], &[("sgr-default".to_owned(), default_egress.clone())]);
        assert_eq!(extra.len(), 1);
        assert_eq!(default_egress.to_string(), "Egress[all to 0.0.0.0/0]");
    }
}
