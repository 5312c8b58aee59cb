//! An IAM role for one Lambda function (console steps S9, S22, S25, V4), with one inline
//! policy that allows exactly what its handler does on the stack's own resources. Both the
//! trust policy and the permissions are compared as documents: reordering is not drift, a
//! widened grant is.

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::tag_diff;
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, FromContext,
    Planned, Resource, ResourceKey,
};
use crate::policy;
use crate::template::{self, CfnResource, Part};

/// The name of the one inline policy the stack manages on each role.
pub const POLICY_NAME: &str = "provision-least-privilege";

pub struct Role {
    pub key: ResourceKey,
    pub name: String,
    /// Who may assume the role (`lambda.amazonaws.com`, `mediaconvert.amazonaws.com`).
    pub service: &'static str,
    /// For a service that assumes the role on behalf of a resource of its own (a MediaConvert
    /// queue): the ARNs of those resources, and the trust is limited to them and to this
    /// account, so that the service cannot be made to use the role for another account's
    /// requests (the confused deputy). `None` for Lambda, which names no source.
    pub source_arn: Option<FromContext<String>>,
    /// Resources whose outputs the policy needs (the database for its secret); the role does
    /// not need them to exist afterwards.
    pub inputs: Vec<ResourceKey>,
    /// Resources `down` must delete before the role: Lambda releases a VPC function's network
    /// interfaces with the function's role, so the role outlives the security group and
    /// subnets those interfaces keep in use.
    pub outlives: Vec<ResourceKey>,
    /// The inline policy, built once the inputs' outputs are known.
    pub policy: FromContext<Value>,
}

/// The role's trust policy: `service` may assume it, from `source` (account, source ARN
/// pattern) where given.
pub fn trust_policy(service: &str, source: Option<(&str, &str)>) -> Value {
    let mut statement = serde_json::json!({
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole"
    });
    if let Some((account, source_arn)) = source {
        statement["Condition"] = serde_json::json!({
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": source_arn}
        });
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": [statement]})
}

/// IAM hands policy documents back URL-encoded.
pub fn decode_policy_document(document: &str) -> Value {
    let text = percent_decode(document);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The role's description, as both engines write it.
fn description(cx: &Context) -> String {
    format!("Managed by provision for stack {}", cx.stack_name())
}

impl Role {
    fn trust(&self, cx: &Context) -> Value {
        let source_arn = self.source_arn.as_ref().map(|arn| arn(cx));
        trust_policy(
            self.service,
            source_arn
                .as_deref()
                .map(|arn| (cx.aws.account_id.as_str(), arn)),
        )
    }

    fn iam_tags(cx: &Context) -> Vec<Tag> {
        cx.tags()
            .into_iter()
            .map(|(k, v)| {
                Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value set")
            })
            .collect()
    }

    async fn live_policy(&self, cx: &Context) -> Result<Option<Value>, Error> {
        match cx
            .aws
            .iam
            .get_role_policy()
            .role_name(&self.name)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(out) => Ok(Some(decode_policy_document(out.policy_document()))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "GetRolePolicy"),
        }
    }

    async fn put_policy(&self, cx: &Context) -> Result<(), Error> {
        let document = (self.policy)(cx).to_string();
        cx.aws
            .iam
            .put_role_policy()
            .role_name(&self.name)
            .policy_name(POLICY_NAME)
            .policy_document(document)
            .send()
            .await
            .step(&self.key, "PutRolePolicy")?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Role {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    /// A new role is refused by Lambda ("cannot be assumed") for seconds, IAM propagation.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }

    fn reads(&self) -> Vec<ResourceKey> {
        self.inputs.clone()
    }

    fn delete_after(&self) -> Vec<ResourceKey> {
        self.outlives.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let role = match cx.aws.iam.get_role().role_name(&self.name).send().await {
            Ok(out) => out.role.ok_or_else(|| Error::Refused {
                resource: self.key.clone(),
                message: "GetRole returned no role".into(),
            })?,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                return Ok(Planned::create(self.key.clone(), self.name.clone()));
            }
            Err(e) => return Err(e).step(&self.key, "GetRole"),
        };
        let live_tags = role
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        if !super::owned_by(&live_tags, cx.stack_name()) {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!(
                    "role {} exists but is not tagged as this stack's; it is left alone",
                    self.name
                ),
            });
        }
        cx.publish(&self.key, "arn", role.arn());
        let mut diff = Diff::default();
        let trust = role
            .assume_role_policy_document()
            .map(decode_policy_document)
            .unwrap_or(Value::Null);
        let wanted_trust = self.trust(cx);
        if !policy::same(&wanted_trust, &trust) {
            diff.push(FieldDiff::new(
                "AssumeRolePolicyDocument",
                policy::normalize(&wanted_trust),
                policy::normalize(&trust),
            ));
        }
        let wanted = (self.policy)(cx);
        match self.live_policy(cx).await? {
            Some(live) if policy::same(&wanted, &live) => {}
            live => diff.push(FieldDiff::new(
                format!("Policy.{POLICY_NAME}"),
                policy::normalize(&wanted),
                live.map(|l| policy::normalize(&l).to_string())
                    .unwrap_or_else(|| "(missing)".into()),
            )),
        }
        diff.extend(tag_diff(&cx.tags(), &live_tags));
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let iam = &cx.aws.iam;
        if planned.action == Action::Create {
            let created = iam
                .create_role()
                .role_name(&self.name)
                .assume_role_policy_document(self.trust(cx).to_string())
                .description(description(cx))
                .set_tags(Some(Self::iam_tags(cx)))
                .send()
                .await;
            match created {
                Ok(out) => cx.publish(
                    &self.key,
                    "arn",
                    out.role().map(|r| r.arn()).unwrap_or_default(),
                ),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_entity_already_exists_exception()) =>
                {
                    let out = iam
                        .get_role()
                        .role_name(&self.name)
                        .send()
                        .await
                        .step(&self.key, "GetRole")?;
                    cx.publish(
                        &self.key,
                        "arn",
                        out.role().map(|r| r.arn()).unwrap_or_default(),
                    );
                }
                Err(e) => return Err(e).step(&self.key, "CreateRole"),
            }
            return self.put_policy(cx).await;
        }
        if planned.touches("AssumeRolePolicyDocument") {
            iam.update_assume_role_policy()
                .role_name(&self.name)
                .policy_document(self.trust(cx).to_string())
                .send()
                .await
                .step(&self.key, "UpdateAssumeRolePolicy")?;
        }
        if planned.touches("Policy.") {
            self.put_policy(cx).await?;
        }
        if planned.touches("Tags.") {
            iam.tag_role()
                .role_name(&self.name)
                .set_tags(Some(Self::iam_tags(cx)))
                .send()
                .await
                .step(&self.key, "TagRole")?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let iam = &cx.aws.iam;
        let policies = match iam.list_role_policies().role_name(&self.name).send().await {
            Ok(out) => out.policy_names().to_vec(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                return Ok(Deleted::Absent)
            }
            Err(e) => return Err(e).step(&self.key, "ListRolePolicies"),
        };
        for name in policies {
            iam.delete_role_policy()
                .role_name(&self.name)
                .policy_name(name)
                .send()
                .await
                .step(&self.key, "DeleteRolePolicy")?;
        }
        let attached = iam
            .list_attached_role_policies()
            .role_name(&self.name)
            .send()
            .await
            .step(&self.key, "ListAttachedRolePolicies")?;
        for p in attached.attached_policies() {
            if let Some(arn) = p.policy_arn() {
                iam.detach_role_policy()
                    .role_name(&self.name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .step(&self.key, "DetachRolePolicy")?;
            }
        }
        match iam.delete_role().role_name(&self.name).send().await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                Ok(Deleted::Absent)
            }
            Err(e) => Err(e).step(&self.key, "DeleteRole"),
        }
    }

    /// The trust policy and the one inline policy, both as `apply` writes them; no managed
    /// policy is attached.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::IAM::Role",
            serde_json::json!({
                "RoleName": self.name,
                "Description": description(cx),
                "AssumeRolePolicyDocument": self.trust(cx),
                "Policies": [{
                    "PolicyName": POLICY_NAME,
                    "PolicyDocument": (self.policy)(cx),
                }],
                "Tags": template::tags(cx),
            }),
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_come_back_url_encoded() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(
            decode_policy_document(encoded),
            serde_json::json!({"Version": "2012-10-17", "Statement": []})
        );
        // Plain JSON (as some emulators answer) decodes to itself.
        assert_eq!(
            decode_policy_document("{\"a\":\"50%\"}"),
            serde_json::json!({"a": "50%"})
        );
    }

    #[test]
    fn a_source_limits_the_trust_to_the_account_and_its_resources() {
        let lambda = trust_policy("lambda.amazonaws.com", None);
        assert!(lambda["Statement"][0].get("Condition").is_none());
        let queues = "arn:aws:mediaconvert:us-east-1:111122223333:*";
        let mediaconvert =
            trust_policy("mediaconvert.amazonaws.com", Some(("111122223333", queues)));
        let statement = &mediaconvert["Statement"][0];
        assert_eq!(
            statement["Principal"]["Service"],
            "mediaconvert.amazonaws.com"
        );
        assert_eq!(
            statement["Condition"]["StringEquals"]["aws:SourceAccount"],
            "111122223333"
        );
        assert_eq!(statement["Condition"]["ArnLike"]["aws:SourceArn"], queues);
    }

    #[test]
    fn the_template_declares_the_same_trust_and_inline_policy() {
        let cx = crate::systems::tests::symbolic_context();
        let role = Role {
            key: ResourceKey::new("role", "vod-mediaconvert"),
            name: "demo-vod-mediaconvert".into(),
            service: "mediaconvert.amazonaws.com",
            source_arn: Some(Box::new(|cx| {
                format!(
                    "arn:aws:mediaconvert:{}:{}:*",
                    cx.aws.region, cx.aws.account_id
                )
            })),
            inputs: vec![],
            outlives: vec![],
            policy: Box::new(|_| serde_json::json!({"Version": "2012-10-17", "Statement": []})),
        };
        let parts = role.cloudformation(&cx).unwrap();
        let [Part::Resource(r)] = parts.as_slice() else {
            panic!("one resource: {parts:?}")
        };
        assert_eq!(r.type_name, "AWS::IAM::Role");
        let p = &r.properties;
        assert_eq!(p["RoleName"], "demo-vod-mediaconvert");
        assert_eq!(p["Policies"][0]["PolicyName"], POLICY_NAME);
        assert_eq!(p["Policies"][0]["PolicyDocument"], (role.policy)(&cx));
        assert_eq!(p["AssumeRolePolicyDocument"], role.trust(&cx));
        let condition = &p["AssumeRolePolicyDocument"]["Statement"][0]["Condition"];
        assert_eq!(
            condition["StringEquals"]["aws:SourceAccount"],
            template::reference("AWS::AccountId")
        );
        assert!(p.get("ManagedPolicyArns").is_none());
    }
}
