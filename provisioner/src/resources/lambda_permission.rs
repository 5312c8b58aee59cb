//! A statement of a Lambda function's resource policy letting one AWS service invoke it from
//! one source (console steps S13, S24, S26, S28, V6): API Gateway from this API's method, S3
//! from this bucket, EventBridge from this rule. Found by statement id in `GetPolicy`, or,
//! without it, by what the statement grants (CloudFormation names its statements itself).

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FromContext, Planned, Resource,
    ResourceKey,
};
use crate::template::{CfnResource, Part};

/// What every permission allows its principal to do.
pub const ACTION: &str = "lambda:InvokeFunction";

pub struct LambdaPermission {
    pub key: ResourceKey,
    /// The function (its `name` output).
    pub function: ResourceKey,
    pub function_name: String,
    pub statement_id: String,
    /// `apigateway.amazonaws.com`, `s3.amazonaws.com`, `events.amazonaws.com`.
    pub principal: &'static str,
    /// The ARN the call must come from; computed from the stack's names and outputs.
    pub source_arn: FromContext<Option<String>>,
    /// S3 ARNs carry no account: AWS recommends `SourceAccount` with them.
    pub source_account: bool,
    pub inputs: Vec<ResourceKey>,
}

/// The parts of a policy statement this resource manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: Option<String>,
    pub action: Option<String>,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
}

/// The statement with id `sid` of a function policy document, as a [`Grant`].
pub fn grant_in_policy(policy: &str, sid: &str) -> Option<Grant> {
    let doc: Value = serde_json::from_str(policy).ok()?;
    let statement = doc["Statement"]
        .as_array()?
        .iter()
        .find(|s| s["Sid"] == sid)?;
    Some(statement_grant(statement))
}

/// The parts of one policy statement a [`Grant`] holds.
fn statement_grant(statement: &Value) -> Grant {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let condition = &statement["Condition"];
    Grant {
        principal: text(&statement["Principal"]["Service"])
            .or_else(|| text(&statement["Principal"])),
        action: text(&statement["Action"]),
        source_arn: text(&condition["ArnLike"]["AWS:SourceArn"])
            .or_else(|| text(&condition["ArnEquals"]["AWS:SourceArn"])),
        source_account: text(&condition["StringEquals"]["AWS:SourceAccount"]),
    }
}

/// The id of a statement allowing exactly `wanted` on the (unqualified) function
/// `function_arn`, whatever its id: what `AddPermission` writes, an `Allow` of the function
/// ARN whose only conditions are the source ARN and account [`statement_grant`] reads (any
/// other condition, e.g. `aws:PrincipalOrgID`, grants less).
pub fn equivalent_statement(policy: &str, wanted: &Grant, function_arn: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(policy).ok()?;
    let only_source_conditions = |condition: &Value| match condition {
        Value::Null => true,
        Value::Object(operators) => operators.iter().all(|(operator, keys)| {
            keys.as_object().is_some_and(|keys| {
                keys.keys().all(|key| {
                    matches!(
                        (operator.as_str(), key.as_str()),
                        ("ArnLike" | "ArnEquals", "AWS:SourceArn")
                            | ("StringEquals", "AWS:SourceAccount")
                    )
                })
            })
        }),
        _ => false,
    };
    doc["Statement"]
        .as_array()?
        .iter()
        .find(|s| {
            s["Effect"] == "Allow"
                && s["Resource"] == function_arn
                && only_source_conditions(&s["Condition"])
                && statement_grant(s) == *wanted
        })
        .and_then(|s| s["Sid"].as_str().map(str::to_owned))
}

impl LambdaPermission {
    fn wanted(&self, cx: &Context) -> Grant {
        Grant {
            principal: Some(self.principal.to_owned()),
            action: Some(ACTION.to_owned()),
            source_arn: (self.source_arn)(cx),
            source_account: self.source_account.then(|| cx.aws.account_id.clone()),
        }
    }

    /// The function's policy document; `None` without a function or a policy.
    async fn policy(&self, cx: &Context) -> Result<Option<String>, Error> {
        match cx
            .aws
            .lambda
            .get_policy()
            .function_name(&self.function_name)
            .send()
            .await
        {
            Ok(out) => Ok(out.policy().map(str::to_owned)),
            // No function or no policy yet.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "GetPolicy"),
        }
    }

    async fn live(&self, cx: &Context) -> Result<Option<Grant>, Error> {
        Ok(self
            .policy(cx)
            .await?
            .and_then(|p| grant_in_policy(&p, &self.statement_id)))
    }

    async fn remove(&self, cx: &Context) -> Result<Deleted, Error> {
        let conflict = |e: &Error| e.code() == Some("ResourceConflictException");
        retry_when(Backoff::SETTLING, conflict, || async {
            match cx
                .aws
                .lambda
                .remove_permission()
                .function_name(&self.function_name)
                .statement_id(&self.statement_id)
                .send()
                .await
            {
                Ok(_) => Ok(Deleted::Deleted),
                // No such statement, or no such function.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    Ok(Deleted::Absent)
                }
                Err(e) => Err(e).step(&self.key, "RemovePermission"),
            }
        })
        .await
    }
}

/// What Lambda answers while the function or the principal is settling: a principal IAM has
/// not propagated yet, a function still being created or updated (`ResourceConflictException`),
/// or one Lambda does not list yet (`ResourceNotFoundException`) right after its creation.
fn transient(e: &Error) -> bool {
    match e.code() {
        Some("ResourceConflictException" | "ResourceNotFoundException") => true,
        Some("InvalidParameterValueException") => e.to_string().contains("principal was invalid"),
        _ => false,
    }
}

/// Lambda's answer to a statement id the function's policy already has
/// (`ResourceConflictException`: "The statement id (…) provided already exists").
fn already_exists(e: &Error) -> bool {
    e.code() == Some("ResourceConflictException") && e.to_string().contains("already exists")
}

#[async_trait]
impl Resource for LambdaPermission {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.function.clone()];
        deps.extend(self.inputs.iter().cloned());
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let id = format!("{}#{}", self.function_name, self.statement_id);
        let Some(policy) = self.policy(cx).await? else {
            return Ok(Planned::create(self.key.clone(), id));
        };
        let wanted = self.wanted(cx);
        let Some(live) = grant_in_policy(&policy, &self.statement_id) else {
            // CloudFormation (`AWS::Lambda::Permission`) and other tools choose their own
            // statement ids: the same grant under another id is this permission. Only with a
            // known source, the condition every statement of ours has.
            let function_arn = cx.output(&self.function, "arn");
            if let Some(sid) = function_arn
                .filter(|_| wanted.source_arn.is_some())
                .and_then(|arn| equivalent_statement(&policy, &wanted, &arn))
            {
                let found = format!("{}#{sid}", self.function_name);
                return Ok(Planned::from_diff(self.key.clone(), found, vec![]));
            }
            return Ok(Planned::create(self.key.clone(), id));
        };
        let mut diff = Diff::default();
        diff.field("Principal", wanted.principal, live.principal);
        diff.field("Action", wanted.action, live.action);
        diff.field("Condition.SourceArn", wanted.source_arn, live.source_arn);
        diff.field(
            "Condition.SourceAccount",
            wanted.source_account,
            live.source_account,
        );
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
        // One policy change at a time per function: Lambda can lose a statement added while
        // another is being written.
        let _one_at_a_time = cx
            .exclusive(format!("lambda-policy:{}", self.function_name))
            .await;
        // A statement cannot be changed in place: replace it (absent is fine).
        self.remove(cx).await?;
        let wanted = self.wanted(cx);
        let source_arn = wanted
            .source_arn
            .clone()
            .ok_or_else(|| Error::MissingDependency {
                resource: self.key.clone(),
                dependency: "the source ARN".into(),
            })?;
        retry_when(Backoff::SETTLING, transient, || async {
            let added = cx
                .aws
                .lambda
                .add_permission()
                .function_name(&self.function_name)
                .statement_id(&self.statement_id)
                .action(ACTION)
                .principal(self.principal)
                .source_arn(&source_arn)
                .set_source_account(wanted.source_account.clone())
                .send()
                .await
                .step(&self.key, "AddPermission");
            match added {
                // The statement was removed above under the lock: an earlier attempt of this
                // call made it and its answer was lost (the SDK retried). Done if it is ours;
                // otherwise removed again and the add retried.
                Err(e) if already_exists(&e) => {
                    if self.live(cx).await?.as_ref() == Some(&wanted) {
                        return Ok(());
                    }
                    self.remove(cx).await?;
                    Err(e)
                }
                other => other.map(|_| ()),
            }
        })
        .await
    }

    /// Removes this engine's statement only: an equivalent one under another id belongs to
    /// whoever made it (CloudFormation deletes its own stacks).
    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let _one_at_a_time = cx
            .exclusive(format!("lambda-policy:{}", self.function_name))
            .await;
        self.remove(cx).await
    }

    /// The same grant; CloudFormation names the statement itself (`statement_id` is the SDK
    /// engine's handle on it, not part of what is allowed).
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let wanted = self.wanted(cx);
        let function = cx
            .require(&self.key, &self.function, "name")
            .map_err(|e| e.to_string())?;
        let source_arn = wanted
            .source_arn
            .ok_or_else(|| "the source ARN is not known".to_owned())?;
        let mut properties = serde_json::json!({
            "Action": wanted.action,
            "FunctionName": function,
            "Principal": wanted.principal,
            "SourceArn": source_arn,
        });
        if let Some(account) = wanted.source_account {
            properties["SourceAccount"] = account.into();
        }
        Ok(vec![Part::Resource(CfnResource::new(
            &self.key,
            "AWS::Lambda::Permission",
            properties,
        ))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str, message: &str) -> Error {
        Error::Aws {
            resource: ResourceKey::new("lambda_permission", "p"),
            step: "AddPermission",
            code: Some(code.into()),
            source: format!("{code}: {message}").into(),
        }
    }

    #[test]
    fn settling_answers_are_retried_and_refusals_are_not() {
        for (code, message) in [
            ("ResourceConflictException", "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:1:function:f"),
            ("ResourceConflictException", "The operation cannot be performed at this time. The function is currently in the following state: Pending"),
            ("ResourceNotFoundException", "Function not found: arn:aws:lambda:us-east-1:1:function:f"),
            ("InvalidParameterValueException", "The provided principal was invalid. Please check the principal and try again."),
        ] {
            assert!(transient(&error(code, message)), "{code}: {message}");
        }
        let duplicate = error(
            "ResourceConflictException",
            "The statement id (s3) provided already exists. Please provide a new statement id, or remove the existing statement.",
        );
        assert!(already_exists(&duplicate));
        assert!(!already_exists(&error(
            "ResourceConflictException",
            "The function is currently in the following state: Pending"
        )));
        assert!(!transient(&error("AccessDeniedException", "not allowed")));
    }

    #[test]
    fn the_template_grants_the_same_source_and_account() {
        let cx = crate::systems::tests::symbolic_context();
        let permission = LambdaPermission {
            key: ResourceKey::new("lambda_permission", "s3"),
            function: ResourceKey::new("function", "audio_transcribe"),
            function_name: "demo-audio_transcribe".into(),
            statement_id: "s3-audio-bucket".into(),
            principal: "s3.amazonaws.com",
            source_arn: Box::new(|_| Some("arn:aws:s3:::demo-audio".into())),
            source_account: true,
            inputs: vec![],
        };
        let parts = permission.cloudformation(&cx).unwrap();
        let [Part::Resource(r)] = parts.as_slice() else {
            panic!("one resource: {parts:?}")
        };
        let p = &r.properties;
        assert_eq!(p["Action"], ACTION);
        assert_eq!(
            p["FunctionName"],
            crate::template::reference("FunctionAudioTranscribe")
        );
        assert_eq!(p["Principal"], "s3.amazonaws.com");
        assert_eq!(p["SourceArn"], "arn:aws:s3:::demo-audio");
        assert_eq!(
            p["SourceAccount"],
            crate::template::reference("AWS::AccountId")
        );
    }

    #[test]
    fn reads_the_statement_as_lambda_writes_it() {
        // The shape GetPolicy returns for AddPermission with SourceArn and SourceAccount.
        let policy = r#"{"Version":"2012-10-17","Id":"default","Statement":[
          {"Sid":"other","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111122223333:function:f"},
          {"Sid":"s3-invoke","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111122223333:function:f",
           "Condition":{"StringEquals":{"AWS:SourceAccount":"111122223333"},"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::demo-audio"}}}]}"#;
        assert_eq!(
            grant_in_policy(policy, "s3-invoke"),
            Some(Grant {
                principal: Some("s3.amazonaws.com".into()),
                action: Some("lambda:InvokeFunction".into()),
                source_arn: Some("arn:aws:s3:::demo-audio".into()),
                source_account: Some("111122223333".into()),
            })
        );
        let other = grant_in_policy(policy, "other").unwrap();
        assert_eq!(other.source_arn, None);
        assert_eq!(grant_in_policy(policy, "missing"), None);
        assert_eq!(grant_in_policy("not json", "s3-invoke"), None);
    }

    #[test]
    fn the_same_grant_under_another_statement_id_is_found() {
        // As CloudFormation's AWS::Lambda::Permission leaves it: its own Sid, same content.
        let function = "arn:aws:lambda:us-east-1:111122223333:function:eqv-vod_convert";
        let policy = |source_arn: &str| {
            serde_json::json!({"Version": "2012-10-17", "Id": "default", "Statement": [
                {"Sid": "other", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                 "Action": ACTION, "Resource": function,
                 "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:events:us-east-1:111122223333:rule/r"}}},
                {"Sid": "eqv-vod-LambdaPermissionVodS3VodConvert-a0bda437", "Effect": "Allow",
                 "Principal": {"Service": "s3.amazonaws.com"}, "Action": ACTION, "Resource": function,
                 "Condition": {"StringEquals": {"AWS:SourceAccount": "111122223333"},
                               "ArnLike": {"AWS:SourceArn": source_arn}}}]})
            .to_string()
        };
        let wanted = Grant {
            principal: Some("s3.amazonaws.com".into()),
            action: Some(ACTION.into()),
            source_arn: Some("arn:aws:s3:::eqv-vod".into()),
            source_account: Some("111122223333".into()),
        };
        let same = policy("arn:aws:s3:::eqv-vod");
        assert_eq!(grant_in_policy(&same, "eqv-vod_convert#s3-vod"), None);
        assert_eq!(
            equivalent_statement(&same, &wanted, function).as_deref(),
            Some("eqv-vod-LambdaPermissionVodS3VodConvert-a0bda437")
        );
        // Another source is another grant.
        let other_source = policy("arn:aws:s3:::another-bucket");
        assert_eq!(equivalent_statement(&other_source, &wanted, function), None);
        // So is a statement on an alias, or a missing account condition.
        assert_eq!(
            equivalent_statement(&same, &wanted, &format!("{function}:live")),
            None
        );
        let no_account = Grant {
            source_account: None,
            ..wanted.clone()
        };
        assert_eq!(equivalent_statement(&same, &no_account, function), None);
    }

    #[test]
    fn a_statement_with_more_conditions_or_denying_is_not_the_same_grant() {
        let function = "arn:aws:lambda:us-east-1:111122223333:function:f";
        let wanted = Grant {
            principal: Some("apigateway.amazonaws.com".into()),
            action: Some(ACTION.into()),
            source_arn: Some("arn:aws:execute-api:us-east-1:111122223333:abc/*/POST/upload".into()),
            source_account: None,
        };
        let policy = |effect: &str, condition: Value| {
            serde_json::json!({"Statement": [{"Sid": "cfn", "Effect": effect,
                "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": ACTION,
                "Resource": function, "Condition": condition}]})
            .to_string()
        };
        let source = serde_json::json!({"ArnLike": {"AWS:SourceArn": wanted.source_arn}});
        assert_eq!(
            equivalent_statement(&policy("Allow", source.clone()), &wanted, function).as_deref(),
            Some("cfn")
        );
        assert_eq!(
            equivalent_statement(&policy("Deny", source), &wanted, function),
            None
        );
        let narrower = serde_json::json!({
            "ArnLike": {"AWS:SourceArn": wanted.source_arn},
            "StringEquals": {"aws:PrincipalOrgID": "o-1"}
        });
        assert_eq!(
            equivalent_statement(&policy("Allow", narrower), &wanted, function),
            None
        );
    }
}
