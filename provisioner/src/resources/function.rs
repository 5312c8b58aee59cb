//! A Lambda function from a zip built by `make zips` (console steps S10, S17, S23, S27, S29,
//! V5): runtime `provided.al2023`, x86_64, memory, ephemeral storage and timeout from
//! `stack.yaml`, environment, and the VPC for the functions that reach the database. Code is
//! uploaded only when the zip's SHA-256 differs from the deployed `CodeSha256`.
//!
//! Reserved concurrency caps how many instances of a function run at once (what a flood of
//! requests can make it cost) and takes that many from the account's quota, of which AWS keeps
//! a minimum unreserved: `plan` reads the account's figures before asking for more, and a
//! refusal names the `stack.yaml` key to change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, EphemeralStorage, FunctionCode, LastUpdateStatus, Runtime, State,
    VpcConfig,
};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::tag_diff;
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::wait::{self, Poll, Wait};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FromContext, Planned,
    Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part};

/// Where a function runs inside the VPC.
pub struct Network {
    pub subnets: Vec<ResourceKey>,
    pub security_group: ResourceKey,
    /// Outbound IPv6 to dual-stack AWS endpoints.
    pub ipv6: bool,
}

pub struct Function {
    pub key: ResourceKey,
    pub name: String,
    pub role: ResourceKey,
    pub zip: PathBuf,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub ephemeral_storage_mb: i32,
    /// Concurrent executions reserved for the function, also the most it runs at once;
    /// `None`: none reserved (a reservation made by hand is removed).
    pub reserved_concurrency: Option<i32>,
    /// Where `reserved_concurrency` is set in `stack.yaml`, for messages.
    pub concurrency_key: String,
    pub network: Option<Network>,
    /// Other resources whose outputs the environment needs.
    pub inputs: Vec<ResourceKey>,
    pub environment: FromContext<BTreeMap<String, String>>,
}

/// How many of the account's concurrent executions AWS keeps unreserved: 100 (Lambda quotas),
/// or the whole quota when it is lower (new accounts may start with 10, and then nothing can
/// be reserved). AWS's refusal names the figure it applies.
const MIN_UNRESERVED: i32 = 100;

/// What AWS will say to reserving `wanted` for a function that has `live` reserved, given the
/// account's quota (`limit`) and what is not reserved yet (`unreserved`): `None` if it fits,
/// else how many would be left and the minimum.
pub fn reservation_shortfall(
    wanted: i32,
    live: Option<i32>,
    limit: i32,
    unreserved: i32,
) -> Option<(i32, i32)> {
    let minimum = MIN_UNRESERVED.min(limit);
    let left = unreserved + live.unwrap_or(0) - wanted;
    (wanted > live.unwrap_or(0) && left < minimum).then_some((left, minimum))
}

/// The runtime, handler and architecture of every function: a Rust binary named `bootstrap`
/// (what `make zips` builds), on Amazon Linux 2023, x86_64.
pub const RUNTIME: &str = "provided.al2023";
pub const HANDLER: &str = "bootstrap";
pub const ARCHITECTURE: &str = "x86_64";

/// Lambda's `CodeSha256`: the base64 of the zip's SHA-256.
pub fn code_sha256(zip: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(zip))
}

/// Where a template's function finds its zip in the artifact bucket: under the zip's SHA-256
/// (hex), so that new code is a new key and CloudFormation updates the function.
pub fn artifact_key(function_name: &str, zip: &[u8]) -> String {
    let digest: String = Sha256::digest(zip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("lambda/{function_name}/{digest}.zip")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

impl Function {
    fn zip(&self) -> Result<Vec<u8>, Error> {
        std::fs::read(&self.zip).map_err(|e| Error::Refused {
            resource: self.key.clone(),
            message: format!(
                "cannot read {}: {e}; build the zips with `make zips`",
                self.zip.display()
            ),
        })
    }

    fn ephemeral_storage(&self) -> EphemeralStorage {
        EphemeralStorage::builder()
            .size(self.ephemeral_storage_mb)
            .build()
            .expect("size set")
    }

    /// The system's variables for this function, plus what every function gets: the AWS
    /// SDK's retries (five attempts: calls AWS throttles or drops are tried again, as
    /// `provision` does with its own).
    fn wanted_environment(&self, cx: &Context) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([("AWS_MAX_ATTEMPTS".to_owned(), "5".to_owned())]);
        env.extend((self.environment)(cx));
        env
    }

    fn lambda_environment(&self, cx: &Context) -> Environment {
        Environment::builder()
            .set_variables(Some(self.wanted_environment(cx).into_iter().collect()))
            .build()
    }

    fn vpc_config(&self, cx: &Context) -> VpcConfig {
        match &self.network {
            Some(n) => VpcConfig::builder()
                .set_subnet_ids(Some(
                    n.subnets
                        .iter()
                        .filter_map(|s| cx.output(s, "id"))
                        .collect(),
                ))
                .set_security_group_ids(Some(
                    cx.output(&n.security_group, "id").into_iter().collect(),
                ))
                .ipv6_allowed_for_dual_stack(n.ipv6)
                .build(),
            // Empty lists detach a function from a VPC.
            None => VpcConfig::builder()
                .set_subnet_ids(Some(vec![]))
                .set_security_group_ids(Some(vec![]))
                .build(),
        }
    }

    /// What Lambda answers while something it needs is settling, all of which pass within
    /// seconds to a couple of minutes (the list Terraform's `retryFunctionOp` retries): a role
    /// or its policy IAM has not propagated yet, EC2 throttling the network interfaces, the
    /// KMS grant for the environment, and any conflict with a change still being applied.
    fn transient(e: &Error) -> bool {
        let message = e.to_string();
        match e.code() {
            Some("ResourceConflictException") => true,
            Some("InvalidParameterValueException") => [
                "The role defined for the function cannot be assumed by Lambda",
                "The provided execution role does not have permissions",
                "throttled by EC2",
                "Lambda was unable to configure access to your environment variables because the KMS key is invalid for CreateGrant",
            ]
            .iter()
            .any(|m| message.contains(m)),
            _ => false,
        }
    }

    async fn wait_settled(&self, cx: &Context) -> Result<(), Error> {
        wait_settled(cx, &self.key, &self.name).await
    }

    /// What to do about a reservation AWS would refuse.
    fn advice(&self, cx: &Context) -> String {
        format!(
            "lower {key}, remove it ({key}: null) so the function shares the account's pool, or \
             ask AWS for a higher Lambda \"Concurrent executions\" quota in {region} (Service \
             Quotas console)",
            key = self.concurrency_key,
            region = cx.aws.region,
        )
    }

    /// Reads the account's concurrency when the reservation grows, and says under the
    /// resource if AWS will refuse it, before `up` writes anything.
    async fn check_account(&self, cx: &Context, live: Option<i32>) {
        let Some(wanted) = self.reserved_concurrency else {
            return;
        };
        if wanted <= live.unwrap_or(0) {
            return;
        }
        let settings = cx
            .aws
            .lambda
            .get_account_settings()
            .send()
            .await
            .step(&self.key, "GetAccountSettings");
        let out = match settings {
            Ok(out) => out,
            // Only a warning ahead of time: PutFunctionConcurrency's answer is what counts.
            Err(e) => {
                cx.note(
                    &self.key,
                    format!(
                        "the account's Lambda concurrency could not be read ({e}): whether AWS \
                         allows reserving {wanted} is known only when `up` asks"
                    ),
                );
                return;
            }
        };
        let Some(limit) = out.account_limit() else {
            return;
        };
        let unreserved = limit
            .unreserved_concurrent_executions()
            .unwrap_or(limit.concurrent_executions());
        if let Some((left, minimum)) =
            reservation_shortfall(wanted, live, limit.concurrent_executions(), unreserved)
        {
            cx.note(
                &self.key,
                format!(
                    "{} reserves {wanted} concurrent executions, which would leave the account {left} \
                     unreserved of its {}: AWS keeps at least {minimum} unreserved and will refuse \
                     it; {}",
                    self.concurrency_key,
                    limit.concurrent_executions(),
                    self.advice(cx)
                ),
            );
        }
    }

    /// Puts (or removes) the function's reservation.
    async fn put_concurrency(&self, cx: &Context) -> Result<(), Error> {
        let lambda = &cx.aws.lambda;
        let Some(wanted) = self.reserved_concurrency else {
            return match lambda
                .delete_function_concurrency()
                .function_name(&self.name)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => Err(e).step(&self.key, "DeleteFunctionConcurrency"),
            };
        };
        let result = retry_when(Backoff::SETTLING, Self::transient, || async {
            lambda
                .put_function_concurrency()
                .function_name(&self.name)
                .reserved_concurrent_executions(wanted)
                .send()
                .await
                .step(&self.key, "PutFunctionConcurrency")
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if below_minimum(&e) => {
                // AWS's own words, without the resource and step `e` shows first.
                let source = match &e {
                    Error::Aws { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                        "AWS refused to reserve {wanted} concurrent executions for {} ({}): the \
                         account would keep too few unreserved ({source}); {}",
                        self.name,
                        self.concurrency_key,
                        self.advice(cx)
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn create(&self, cx: &Context) -> Result<(), Error> {
        let zip = self.zip()?;
        let role = cx.require(&self.key, &self.role, "arn")?;
        let environment = self.lambda_environment(cx);
        let tags: std::collections::HashMap<String, String> = cx.tags().into_iter().collect();
        // "already exist" is a create an interrupted run made: found, not worth waiting for.
        let transient = |e: &Error| Self::transient(e) && !e.to_string().contains("already exist");
        let result = retry_when(Backoff::SETTLING, transient, || async {
            cx.aws
                .lambda
                .create_function()
                .function_name(&self.name)
                .runtime(Runtime::from(RUNTIME))
                .handler(HANDLER)
                .architectures(Architecture::from(ARCHITECTURE))
                .role(&role)
                .code(
                    FunctionCode::builder()
                        .zip_file(Blob::new(zip.clone()))
                        .build(),
                )
                .memory_size(self.memory_mb)
                .timeout(self.timeout_s)
                .ephemeral_storage(self.ephemeral_storage())
                .environment(environment.clone())
                .vpc_config(self.vpc_config(cx))
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .step(&self.key, "CreateFunction")
        })
        .await;
        match result {
            Ok(_) => Ok(()),
            // Created by a run interrupted before it saw the answer.
            Err(e)
                if e.code() == Some("ResourceConflictException")
                    && e.to_string().contains("already exist") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Waits until the function can be invoked and changed: `State` Active after a create,
/// `LastUpdateStatus` Successful after an update. Until then Lambda refuses changes and
/// invocations, or runs the previous code. Also for whoever invokes the function after a
/// run that was interrupted before this wait.
pub async fn wait_settled(cx: &Context, key: &ResourceKey, name: &str) -> Result<(), Error> {
    let wait = Wait::new(cx, Duration::from_secs(2), Duration::from_secs(15 * 60));
    let what = format!("function {} to be active", name);
    wait::until(cx, key, &what, wait, || async {
        let out = cx
            .aws
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .step(key, "GetFunctionConfiguration")?;
        let state = out.state().cloned();
        let update = out.last_update_status().cloned();
        if matches!(state, Some(State::Failed)) || matches!(update, Some(LastUpdateStatus::Failed))
        {
            return Err(Error::Refused {
                resource: key.clone(),
                message: format!(
                    "function {} failed: {}",
                    name,
                    out.state_reason()
                        .or(out.last_update_status_reason())
                        .unwrap_or("no reason given")
                ),
            });
        }
        let active = matches!(state, None | Some(State::Active));
        let updated = matches!(update, None | Some(LastUpdateStatus::Successful));
        Ok(if active && updated {
            Poll::Ready(())
        } else {
            Poll::Pending(format!(
                "state {}, last update {}",
                state.as_ref().map_or("?", |s| s.as_str()),
                update.as_ref().map_or("?", |u| u.as_str())
            ))
        })
    })
    .await
}

/// Lambda's refusal of a reservation that would leave the account too little unreserved:
/// "Specified ReservedConcurrentExecutions for function decreases account's
/// UnreservedConcurrentExecution below its minimum value of [100]."
fn below_minimum(e: &Error) -> bool {
    e.code() == Some("InvalidParameterValueException")
        && e.to_string().contains("UnreservedConcurrentExecution")
}

#[async_trait]
impl Resource for Function {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    /// A function inside the VPC stays Pending until its network interfaces exist, about a
    /// minute; outside it, seconds. Deletion releases the interfaces even more slowly.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(if self.network.is_some() { 60 } else { 5 })
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.role.clone()];
        if let Some(n) = &self.network {
            deps.extend(n.subnets.iter().cloned());
            deps.push(n.security_group.clone());
        }
        deps.extend(self.inputs.iter().cloned());
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let zip = self.zip()?;
        let out = match cx
            .aws
            .lambda
            .get_function()
            .function_name(&self.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.check_account(cx, None).await;
                return Ok(Planned::create(self.key.clone(), self.name.clone()));
            }
            Err(e) => return Err(e).step(&self.key, "GetFunction"),
        };
        let Some(live) = out.configuration() else {
            self.check_account(cx, None).await;
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        if let Some(arn) = live.function_arn() {
            cx.publish(&self.key, "arn", arn);
        }
        cx.publish(&self.key, "name", &self.name);
        let mut diff = Diff::default();
        diff.field(
            "CodeSha256",
            code_sha256(&zip),
            live.code_sha256().unwrap_or_default().to_owned(),
        );
        diff.field(
            "Runtime",
            RUNTIME,
            live.runtime().map(|r| r.as_str()).unwrap_or_default(),
        );
        diff.field("Handler", HANDLER, live.handler().unwrap_or_default());
        diff.field(
            "Role",
            cx.output(&self.role, "arn"),
            live.role().map(str::to_owned),
        );
        diff.field("MemorySize", Some(self.memory_mb), live.memory_size());
        diff.field("Timeout", Some(self.timeout_s), live.timeout());
        diff.field(
            "EphemeralStorage",
            Some(self.ephemeral_storage_mb),
            live.ephemeral_storage().map(|e| e.size()),
        );
        let live_env: BTreeMap<String, String> = live
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        diff.field("Environment", self.wanted_environment(cx), live_env);
        let wanted_vpc = self.vpc_config(cx);
        let live_vpc = live.vpc_config();
        diff.field(
            "VpcConfig.SubnetIds",
            sorted(wanted_vpc.subnet_ids().to_vec()),
            sorted(
                live_vpc
                    .map(|v| v.subnet_ids().to_vec())
                    .unwrap_or_default(),
            ),
        );
        diff.field(
            "VpcConfig.SecurityGroupIds",
            sorted(wanted_vpc.security_group_ids().to_vec()),
            sorted(
                live_vpc
                    .map(|v| v.security_group_ids().to_vec())
                    .unwrap_or_default(),
            ),
        );
        let live_tags = out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        diff.extend(tag_diff(&cx.tags(), &live_tags));
        // Part of GetFunction's answer, not of the configuration.
        let live_reserved = out
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions());
        diff.field(
            "ReservedConcurrentExecutions",
            self.reserved_concurrency,
            live_reserved,
        );
        self.check_account(cx, live_reserved).await;
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let lambda = &cx.aws.lambda;
        if planned.action == Action::Create {
            self.create(cx).await?;
            // Dependents (permissions, the schema migration) act on it next.
            self.wait_settled(cx).await?;
            // Before any trigger may invoke it (they depend on the function).
            if self.reserved_concurrency.is_some() {
                self.put_concurrency(cx).await?;
            }
        } else {
            // One change at a time: Lambda refuses an update while another is in progress.
            self.wait_settled(cx).await?;
            let configuration = planned.changes.iter().any(|c| {
                !c.field.starts_with("Tags.")
                    && c.field != "CodeSha256"
                    && c.field != "ReservedConcurrentExecutions"
            });
            if configuration {
                let role = cx.require(&self.key, &self.role, "arn")?;
                let environment = self.lambda_environment(cx);
                retry_when(Backoff::SETTLING, Self::transient, || async {
                    lambda
                        .update_function_configuration()
                        .function_name(&self.name)
                        .runtime(Runtime::from(RUNTIME))
                        .handler(HANDLER)
                        .role(&role)
                        .memory_size(self.memory_mb)
                        .timeout(self.timeout_s)
                        .ephemeral_storage(self.ephemeral_storage())
                        .environment(environment.clone())
                        .vpc_config(self.vpc_config(cx))
                        .send()
                        .await
                        .step(&self.key, "UpdateFunctionConfiguration")
                })
                .await?;
                self.wait_settled(cx).await?;
            }
            if planned.touches("CodeSha256") {
                let zip = self.zip()?;
                retry_when(Backoff::SETTLING, Self::transient, || async {
                    lambda
                        .update_function_code()
                        .function_name(&self.name)
                        .zip_file(Blob::new(zip.clone()))
                        .send()
                        .await
                        .step(&self.key, "UpdateFunctionCode")
                })
                .await?;
                // Until the update is applied, invocations still run the previous code.
                self.wait_settled(cx).await?;
            }
            if planned.touches("ReservedConcurrentExecutions") {
                self.put_concurrency(cx).await?;
            }
            if planned.touches("Tags.") {
                let arn = cx.require(&self.key, &self.key, "arn")?;
                lambda
                    .tag_resource()
                    .resource(arn)
                    .set_tags(Some(cx.tags().into_iter().collect()))
                    .send()
                    .await
                    .step(&self.key, "TagResource")?;
            }
        }
        let out = lambda
            .get_function_configuration()
            .function_name(&self.name)
            .send()
            .await
            .step(&self.key, "GetFunctionConfiguration")?;
        if let Some(arn) = out.function_arn() {
            cx.publish(&self.key, "arn", arn);
        }
        cx.publish(&self.key, "name", &self.name);
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        match cx
            .aws
            .lambda
            .delete_function()
            .function_name(&self.name)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(Deleted::Absent)
            }
            Err(e) => Err(e).step(&self.key, "DeleteFunction"),
        }
    }

    /// The code is the zip `make zips` built, in the artifact bucket under its digest (see
    /// [`artifact_key`]); everything else as `apply` sets it. Made after its log group, as
    /// the SDK engine orders it.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let zip = std::fs::read(&self.zip)
            .map_err(|_| format!("{}: not built yet; run `make zips`", self.zip.display()))?;
        let role = cx
            .require(&self.key, &self.role, "arn")
            .map_err(|e| e.to_string())?;
        let mut properties = json!({
            "FunctionName": self.name,
            "Role": role,
            "Runtime": RUNTIME,
            "Handler": HANDLER,
            "Architectures": [ARCHITECTURE],
            "Code": {
                "S3Bucket": template::artifact_bucket_name(cx),
                "S3Key": artifact_key(&self.name, &zip),
            },
            "MemorySize": self.memory_mb,
            "Timeout": self.timeout_s,
            "EphemeralStorage": {"Size": self.ephemeral_storage().size()},
            "Environment": {"Variables": self.wanted_environment(cx)},
            "Tags": template::tags(cx),
        });
        if let Some(reserved) = self.reserved_concurrency {
            properties["ReservedConcurrentExecutions"] = json!(reserved);
        }
        // Outside a VPC the property is left out: what the SDK engine's empty lists mean.
        if self.network.is_some() {
            let vpc = self.vpc_config(cx);
            properties["VpcConfig"] = json!({
                "SubnetIds": vpc.subnet_ids(),
                "SecurityGroupIds": vpc.security_group_ids(),
                "Ipv6AllowedForDualStack": vpc.ipv6_allowed_for_dual_stack(),
            });
        }
        let log_groups: Vec<ResourceKey> = self
            .inputs
            .iter()
            .filter(|k| k.kind == "log_group")
            .cloned()
            .collect();
        let mut function = CfnResource::new(&self.key, "AWS::Lambda::Function", properties)
            .after(&log_groups)
            .skip_check(
                "CKV_AWS_116",
                "no dead-letter queue: the functions S3 and EventBridge invoke send the events \
                 they give up on to an SQS on-failure destination \
                 (AWS::Lambda::EventInvokeConfig), which supersedes a DLQ; the others are \
                 invoked synchronously, and their caller gets the error",
            )
            .skip_check(
                "CKV_AWS_173",
                "the environment holds no secret, only names, ARNs, addresses and limits (the \
                 functions read their credentials from Secrets Manager); Lambda encrypts it at \
                 rest with its own key, and a customer managed key would protect nothing more",
            );
        if self.network.is_none() {
            function = function.skip_check(
                "CKV_AWS_117",
                "outside a VPC by design: the function calls only public AWS APIs and reaches \
                 no private resource, so a VPC would add NAT or endpoints and protect nothing",
            );
        }
        if self.reserved_concurrency.is_none() {
            function = function.skip_check(
                "CKV_AWS_115",
                "stack.yaml reserves no concurrency for this function: a reservation comes out \
                 of the account's Lambda quota (AWS keeps 100 unreserved; new accounts may have \
                 10 in all), and its callers are bounded already (the API stage's throttling, \
                 the reserved upstream functions, private buckets)",
            );
        }
        let code = Part::Artifact {
            key: artifact_key(&self.name, &zip),
            path: self.zip.clone(),
        };
        Ok(vec![Part::Resource(function), code])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: &str, message: &str) -> Error {
        Error::Aws {
            resource: ResourceKey::new("function", "f"),
            step: "CreateFunction",
            code: Some(code.into()),
            source: format!("{code}: {message}").into(),
        }
    }

    #[test]
    fn what_lambda_answers_while_things_settle_is_retried() {
        for (code, message) in [
            (
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
            ),
            (
                "InvalidParameterValueException",
                "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
            ),
            (
                "InvalidParameterValueException",
                "Your request has been throttled by EC2, please make sure you have enough API rate limit.",
            ),
            (
                "InvalidParameterValueException",
                "Lambda was unable to configure access to your environment variables because the KMS key is invalid for CreateGrant. Please check your KMS key settings.",
            ),
            (
                "ResourceConflictException",
                "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:111122223333:function:demo-f",
            ),
            (
                "ResourceConflictException",
                "The operation cannot be performed at this time. The function is currently in the following state: Pending",
            ),
        ] {
            assert!(Function::transient(&error(code, message)), "{message}");
        }
        assert!(!Function::transient(&error(
            "InvalidParameterValueException",
            "Unzipped size must be smaller than 262144000 bytes"
        )));
        assert!(!Function::transient(&error(
            "ValidationException",
            "1 validation error detected"
        )));
    }

    #[test]
    fn a_reservation_must_leave_the_account_its_unreserved_minimum() {
        // 1000 in the account, 985 unreserved: 10 more fit, 900 do not.
        assert_eq!(reservation_shortfall(10, None, 1000, 985), None);
        assert_eq!(reservation_shortfall(900, None, 1000, 985), Some((85, 100)));
        // What the function holds already comes back to the pool first.
        assert_eq!(
            reservation_shortfall(20, Some(10), 1000, 105),
            Some((95, 100))
        );
        assert_eq!(reservation_shortfall(15, Some(10), 1000, 105), None);
        // A new account with a quota of 10 can reserve nothing at all.
        assert_eq!(reservation_shortfall(1, None, 10, 10), Some((9, 10)));
        // Lowering or keeping a reservation is never refused here.
        assert_eq!(reservation_shortfall(5, Some(10), 1000, 50), None);
        assert_eq!(reservation_shortfall(10, Some(10), 1000, 50), None);
    }

    #[test]
    fn aws_refusing_a_reservation_is_recognised() {
        let refused = Error::Aws {
            resource: ResourceKey::new("function", "f"),
            step: "PutFunctionConcurrency",
            code: Some("InvalidParameterValueException".into()),
            source: "InvalidParameterValueException: Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [100].".into(),
        };
        assert!(below_minimum(&refused));
        assert!(!Function::transient(&refused));
        assert!(!below_minimum(&error(
            "InvalidParameterValueException",
            "Unzipped size must be smaller than 262144000 bytes"
        )));
    }

    fn function(zip: PathBuf, network: Option<Network>, reserved: Option<i32>) -> Function {
        Function {
            key: ResourceKey::new("function", "save_text"),
            name: "demo-save_text".into(),
            role: ResourceKey::new("role", "save_text"),
            zip,
            memory_mb: 128,
            timeout_s: 60,
            ephemeral_storage_mb: 512,
            reserved_concurrency: reserved,
            concurrency_key: "k".into(),
            network,
            inputs: vec![
                ResourceKey::new("log_group", "save_text"),
                ResourceKey::new("bucket", "stt-audio"),
            ],
            environment: Box::new(|cx| {
                BTreeMap::from([(
                    "QUEUE".to_owned(),
                    cx.output(&ResourceKey::new("queue", "q"), "arn")
                        .unwrap_or_default(),
                )])
            }),
        }
    }

    fn symbolic() -> Context {
        crate::systems::tests::symbolic_context()
    }

    #[test]
    fn the_template_points_at_the_zip_by_digest_and_waits_for_the_log_group() {
        let dir = std::env::temp_dir().join(format!("provision-fn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let zip = dir.join("bootstrap.zip");
        std::fs::write(&zip, b"").unwrap();
        let network = Network {
            subnets: vec![ResourceKey::new("subnet", "a")],
            security_group: ResourceKey::new("security_group", "functions"),
            ipv6: true,
        };
        let cx = symbolic();
        let parts = function(zip.clone(), Some(network), Some(5))
            .cloudformation(&cx)
            .unwrap();
        let [Part::Resource(r), Part::Artifact { key, path }] = parts.as_slice() else {
            panic!("the function and its zip: {parts:?}")
        };
        assert_eq!(
            (key.as_str(), path),
            (r.properties["Code"]["S3Key"].as_str().unwrap(), &zip)
        );
        let p = &r.properties;
        assert_eq!(r.type_name, "AWS::Lambda::Function");
        assert_eq!(
            p["Code"]["S3Key"],
            "lambda/demo-save_text/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.zip"
        );
        assert_eq!(p["Code"]["S3Bucket"], template::artifact_bucket_name(&cx));
        assert_eq!(p["Role"], template::reference("RoleSaveText.Arn"));
        assert_eq!(p["Runtime"], RUNTIME);
        assert_eq!(p["ReservedConcurrentExecutions"], 5);
        assert_eq!(p["EphemeralStorage"]["Size"], 512);
        assert_eq!(
            p["VpcConfig"]["SubnetIds"][0],
            template::reference("SubnetA")
        );
        assert_eq!(p["VpcConfig"]["Ipv6AllowedForDualStack"], true);
        let env = &p["Environment"]["Variables"];
        assert_eq!(env["AWS_MAX_ATTEMPTS"], "5");
        assert_eq!(env["QUEUE"], template::reference("QueueQ.Arn"));
        assert_eq!(r.depends_on, vec!["LogGroupSaveText".to_owned()]);
        let skipped: Vec<&str> = r.skipped_checks.iter().map(|(id, _)| *id).collect();
        assert!(!skipped.contains(&"CKV_AWS_117") && !skipped.contains(&"CKV_AWS_115"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_zip_not_built_is_named_and_outside_a_vpc_nothing_is_set() {
        let cx = symbolic();
        let missing = PathBuf::from("/nonexistent/save_text/bootstrap.zip");
        let err = function(missing, None, None)
            .cloudformation(&cx)
            .unwrap_err();
        assert_eq!(
            err,
            "/nonexistent/save_text/bootstrap.zip: not built yet; run `make zips`"
        );
        let zip = std::env::temp_dir().join(format!("provision-fn-zip-{}", std::process::id()));
        std::fs::write(&zip, b"zip").unwrap();
        let parts = function(zip.clone(), None, None)
            .cloudformation(&cx)
            .unwrap();
        std::fs::remove_file(&zip).unwrap();
        let [Part::Resource(r), Part::Artifact { .. }] = parts.as_slice() else {
            panic!("the function and its zip: {parts:?}")
        };
        assert!(r.properties.get("VpcConfig").is_none());
        assert!(r.properties.get("ReservedConcurrentExecutions").is_none());
        let skipped: Vec<&str> = r.skipped_checks.iter().map(|(id, _)| *id).collect();
        assert!(skipped.contains(&"CKV_AWS_117") && skipped.contains(&"CKV_AWS_115"));
        assert_eq!(
            artifact_key("f", b"zip"),
            format!("lambda/f/{}.zip", hex(&Sha256::digest(b"zip")))
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn code_sha256_is_base64_of_the_digest() {
        // sha256("") = e3b0c442..., base64 as Lambda reports it.
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
