//! An API Gateway REST API whose resources are each proxied to a Lambda function (console
//! steps S11 to S14): Regional endpoint, `binaryMediaTypes`, on each resource `POST` with Lambda
//! proxy integration and `OPTIONS` answered by a mock integration with the CORS headers,
//! deployed to a stage.
//!
//! A deployment is made only when the API's definition changed: the stage's deployment carries
//! the SHA-256 of the definition it was made from in its description, so a run interrupted
//! between changing a method and deploying it still deploys on the next run.
//!
//! The stage throttles every method (`*/*`), so an anonymous caller cannot spend more than the
//! stack allows (nor the account's API Gateway quota, which every API of the region shares).
//! The stage is made by the first deployment; its throttling is compared and set after it, on
//! every run, so a run interrupted in between sets it on the next.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_apigateway::operation::get_stage::GetStageOutput;
use aws_sdk_apigateway::types::{
    EndpointConfiguration, EndpointType, GatewayResponseType, IntegrationType, Op, PatchOperation,
    RestApi as LiveApi,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{owned_by, tag_diff};
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, FromContext,
    Planned, Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part};

/// Written into deployment descriptions, before the definition's digest.
const DEPLOYMENT_MARK: &str = "provision definition sha256:";
/// The description of a deployment the template makes. Its digest is of the definition with
/// references where `up` has ARNs, so it cannot be compared with `up`'s; CloudFormation makes
/// a new deployment whenever the definition changes (its logical id ends with the digest),
/// and the definition itself is compared field by field.
const TEMPLATE_DEPLOYMENT_MARK: &str = "provision template definition sha256:";

/// The API's endpoint type: served from its region (no edge-optimized CloudFront in front,
/// the site has its own distribution).
const ENDPOINT_TYPE: &str = "REGIONAL";

/// Every method is open: the upload page is public (the console build's API had no
/// authorizer); throttling, the upload quotas and the recipient's confirmation limit abuse.
const AUTHORIZATION: &str = "NONE";

/// The status of the mock answer to a CORS preflight.
const PREFLIGHT_STATUS: &str = "200";

/// The mock integration's request template (content type, template): it answers
/// [`PREFLIGHT_STATUS`].
const PREFLIGHT_TEMPLATE: (&str, &str) = ("application/json", r#"{"statusCode": 200}"#);

pub struct RestApi {
    pub key: ResourceKey,
    pub name: String,
    pub description: String,
    /// The resources below the root and the function each one's `POST` is proxied to.
    pub routes: Vec<Route>,
    pub binary_media_types: Vec<String>,
    pub stage: String,
    /// The origin allowed by CORS, computed from other resources' outputs.
    pub allowed_origin: FromContext<String>,
    /// The stage's limits for every method.
    pub throttling: Throttling,
    pub inputs: Vec<ResourceKey>,
}

/// One resource below the root, e.g. `file-upload`, whose `POST` goes to `function` (its `arn`
/// output).
#[derive(Debug, Clone)]
pub struct Route {
    pub path_part: &'static str,
    pub function: ResourceKey,
    /// The output that carries the resource's URL.
    pub url_output: &'static str,
}

/// API Gateway's token bucket for a stage's methods: `rate` requests a second on average,
/// `burst` at once. Requests over it are answered 429 by API Gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttling {
    pub rate: f64,
    pub burst: i32,
}

/// The method-settings key (and patch path prefix) for every method of a stage.
const ALL_METHODS: &str = "*/*";

/// The throttling a stage applies to every method, when set.
fn live_throttling(stage: &GetStageOutput) -> Option<Throttling> {
    let all = stage.method_settings()?.get(ALL_METHODS)?;
    Some(Throttling {
        rate: all.throttling_rate_limit(),
        burst: all.throttling_burst_limit(),
    })
}

/// Differences of the stage's throttling from the wanted one.
fn throttling_diffs(stage: &str, wanted: Throttling, live: Option<Throttling>) -> Vec<FieldDiff> {
    let prefix = format!("Stages.{stage}.MethodSettings.{ALL_METHODS}");
    let mut diff = Diff::default();
    diff.field(
        &format!("{prefix}.ThrottlingRateLimit"),
        Some(wanted.rate),
        live.map(|t| t.rate),
    );
    diff.field(
        &format!("{prefix}.ThrottlingBurstLimit"),
        Some(wanted.burst),
        live.map(|t| t.burst),
    );
    diff.into_vec()
}

/// UpdateStage operations that set what differs (`/*/*/throttling/...`: the method-settings
/// path for every resource and method; `*` needs no escaping).
fn throttling_patch(wanted: Throttling, live: Option<Throttling>) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    if live.map(|t| t.rate) != Some(wanted.rate) {
        ops.push(patch(
            Op::Replace,
            &format!("/{ALL_METHODS}/throttling/rateLimit"),
            Some(&wanted.rate.to_string()),
        ));
    }
    if live.map(|t| t.burst) != Some(wanted.burst) {
        ops.push(patch(
            Op::Replace,
            &format!("/{ALL_METHODS}/throttling/burstLimit"),
            Some(&wanted.burst.to_string()),
        ));
    }
    ops
}

/// What the API must look like; its digest decides whether to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub binary_media_types: Vec<String>,
    /// Each resource's path (`/file-upload`) and the URI its `POST` is proxied to.
    pub routes: Vec<(String, String)>,
    pub cors: BTreeMap<String, String>,
    /// Headers of API Gateway's own error answers (413 over 10 MB, 429, 502, 504), so that
    /// the page may read them: without them the browser shows a CORS failure instead.
    pub gateway_cors: BTreeMap<String, String>,
}

/// The gateway responses that carry CORS headers: every 4xx and 5xx API Gateway answers itself.
pub const GATEWAY_RESPONSES: [&str; 2] = ["DEFAULT_4XX", "DEFAULT_5XX"];

impl Definition {
    pub fn digest(&self) -> String {
        let resources: Vec<_> = self
            .routes
            .iter()
            .map(|(path, uri)| {
                json!({
                    "path": path,
                    "POST": {"type": "AWS_PROXY", "httpMethod": "POST", "uri": uri},
                    "OPTIONS": {"type": "MOCK", "responseParameters": self.cors},
                })
            })
            .collect();
        let canonical = json!({
            "binaryMediaTypes": self.binary_media_types,
            "resources": resources,
            "gatewayResponses": self.gateway_cors,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The integration URI API Gateway uses to invoke a Lambda function.
pub fn lambda_integration_uri(region: &str, function_arn: &str) -> String {
    integration_uri_in("aws", region, function_arn)
}

/// [`lambda_integration_uri`] in any partition (the template's is a reference).
fn integration_uri_in(partition: &str, region: &str, function_arn: &str) -> String {
    format!(
        "arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    )
}

/// Integration response parameters answering a CORS preflight (values are quoted literals).
pub fn cors_parameters(origin: &str) -> BTreeMap<String, String> {
    [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Methods", "OPTIONS,POST"),
        ("Access-Control-Allow-Headers", "Content-Type"),
    ]
    .into_iter()
    .map(|(h, v)| (format!("method.response.header.{h}"), format!("'{v}'")))
    .collect()
}

/// Gateway response parameters with the CORS headers of an answer to a real request.
pub fn gateway_cors_parameters(origin: &str) -> BTreeMap<String, String> {
    [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Headers", "Content-Type"),
    ]
    .into_iter()
    .map(|(h, v)| (format!("gatewayresponse.header.{h}"), format!("'{v}'")))
    .collect()
}

/// The URL a client posts to.
pub fn invoke_url(
    api_id: &str,
    region: &str,
    stage: &str,
    path: &str,
    emulator: Option<&str>,
) -> String {
    match emulator {
        Some(endpoint) => format!(
            "{}/restapis/{api_id}/{stage}/_user_request_/{path}",
            endpoint.trim_end_matches('/')
        ),
        None => execute_api_url(api_id, region, "amazonaws.com", stage, path),
    }
}

/// The URL of a stage's resource on AWS, under the partition's domain (`url_suffix`).
fn execute_api_url(
    api_id: &str,
    region: &str,
    url_suffix: &str,
    stage: &str,
    path: &str,
) -> String {
    format!("https://{api_id}.execute-api.{region}.{url_suffix}/{stage}/{path}")
}

/// `/` in a JSON-patch path is written `~1`.
fn patch_path(value: &str) -> String {
    value.replace('~', "~0").replace('/', "~1")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

impl RestApi {
    fn definition(&self, cx: &Context) -> Definition {
        Definition {
            binary_media_types: sorted(self.binary_media_types.clone()),
            routes: self
                .routes
                .iter()
                .map(|r| {
                    let function_arn = cx.output(&r.function, "arn").unwrap_or_default();
                    (
                        format!("/{}", r.path_part),
                        lambda_integration_uri(&cx.aws.region, &function_arn),
                    )
                })
                .collect(),
            cors: cors_parameters(&(self.allowed_origin)(cx)),
            gateway_cors: gateway_cors_parameters(&(self.allowed_origin)(cx)),
        }
    }

    /// The response parameters of one gateway response (a default one never put has none).
    async fn gateway_response(
        &self,
        cx: &Context,
        api_id: &str,
        response_type: &str,
    ) -> Result<BTreeMap<String, String>, Error> {
        match cx
            .aws
            .apigateway
            .get_gateway_response()
            .rest_api_id(api_id)
            .response_type(GatewayResponseType::from(response_type))
            .send()
            .await
        {
            Ok(out) => Ok(out
                .response_parameters()
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) =>
            {
                Ok(BTreeMap::new())
            }
            Err(e) => Err(e).step(&self.key, "GetGatewayResponse"),
        }
    }

    fn arn(cx: &Context, api_id: &str) -> String {
        format!("arn:aws:apigateway:{}::/restapis/{api_id}", cx.aws.region)
    }

    /// Every API with our name and ownership tag, oldest first.
    async fn find(&self, cx: &Context) -> Result<Vec<LiveApi>, Error> {
        let pages: Vec<_> = cx
            .aws
            .apigateway
            .get_rest_apis()
            .limit(500)
            .into_paginator()
            .send()
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .step(&self.key, "GetRestApis")?;
        let mut apis: Vec<LiveApi> = pages
            .into_iter()
            .flat_map(|p| p.items.unwrap_or_default())
            .filter(|a| a.name() == Some(self.name.as_str()) && owned_by(&tags(a), cx.stack_name()))
            .collect();
        apis.sort_by_key(|a| a.created_date().map(|d| d.secs()).unwrap_or(i64::MAX));
        Ok(apis)
    }

    fn publish(&self, cx: &Context, api_id: &str) {
        cx.publish(&self.key, "id", api_id);
        let emulator = cx.aws.local.then_some(cx.aws.endpoint.as_deref()).flatten();
        for route in &self.routes {
            let url = invoke_url(
                api_id,
                &cx.aws.region,
                &self.stage,
                route.path_part,
                emulator,
            );
            cx.publish(&self.key, route.url_output, url);
        }
        cx.publish(
            &self.key,
            "execute_arn",
            format!(
                "arn:aws:execute-api:{}:{}:{api_id}",
                cx.aws.region, cx.aws.account_id
            ),
        );
    }

    /// The root's id and the ids of the routes' resources that exist, by path.
    async fn resource_ids(
        &self,
        cx: &Context,
        api_id: &str,
    ) -> Result<(String, BTreeMap<String, String>), Error> {
        let out = cx
            .aws
            .apigateway
            .get_resources()
            .rest_api_id(api_id)
            .limit(500)
            .send()
            .await
            .step(&self.key, "GetResources")?;
        let items = out.items();
        let root = items
            .iter()
            .find(|r| r.path() == Some("/"))
            .and_then(|r| r.id())
            .unwrap_or_default()
            .to_owned();
        let ours = items
            .iter()
            .filter_map(|r| Some((r.path()?.to_owned(), r.id()?.to_owned())))
            .filter(|(path, _)| {
                self.routes
                    .iter()
                    .any(|r| *path == format!("/{}", r.path_part))
            })
            .collect();
        Ok((root, ours))
    }

    /// Differences of one resource's two methods from the definition, named
    /// `Resources.{path}.{method}...`.
    async fn method_diffs(
        &self,
        cx: &Context,
        api_id: &str,
        resource_id: &str,
        path: &str,
        proxy_uri: &str,
        wanted: &Definition,
    ) -> Result<Vec<FieldDiff>, Error> {
        let mut diff = Diff::default();
        let at = |rest: &str| format!("Resources.{path}.{rest}");
        for method in ["POST", "OPTIONS"] {
            let live = match cx
                .aws
                .apigateway
                .get_method()
                .rest_api_id(api_id)
                .resource_id(resource_id)
                .http_method(method)
                .send()
                .await
            {
                Ok(m) => Some(m),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_not_found_exception()) =>
                {
                    None
                }
                Err(e) => return Err(e).step(&self.key, "GetMethod"),
            };
            let Some(live) = live else {
                diff.push(FieldDiff::new(at(method), "present", "(missing)"));
                continue;
            };
            let integration = live.method_integration();
            let kind = integration
                .and_then(|i| i.r#type())
                .map(|t| t.as_str().to_owned());
            diff.field(
                &at(&format!("{method}.AuthorizationType")),
                Some(AUTHORIZATION),
                live.authorization_type(),
            );
            if method == "POST" {
                diff.field(
                    &at("POST.Integration.Type"),
                    Some("AWS_PROXY".to_owned()),
                    kind,
                );
                diff.field(
                    &at("POST.Integration.HttpMethod"),
                    Some("POST"),
                    integration.and_then(|i| i.http_method()),
                );
                diff.field(
                    &at("POST.Integration.Uri"),
                    Some(proxy_uri),
                    integration.and_then(|i| i.uri()),
                );
            } else {
                diff.field(
                    &at("OPTIONS.Integration.Type"),
                    Some("MOCK".to_owned()),
                    kind,
                );
                let live_cors: BTreeMap<String, String> = integration
                    .and_then(|i| i.integration_responses())
                    .and_then(|r| r.get(PREFLIGHT_STATUS))
                    .and_then(|r| r.response_parameters())
                    .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                diff.field(
                    &at("OPTIONS.IntegrationResponse.200"),
                    &wanted.cors,
                    &live_cors,
                );
            }
        }
        Ok(diff.into_vec())
    }

    /// The stage, once a deployment has made it.
    async fn live_stage(
        &self,
        cx: &Context,
        api_id: &str,
    ) -> Result<Option<GetStageOutput>, Error> {
        match cx
            .aws
            .apigateway
            .get_stage()
            .rest_api_id(api_id)
            .stage_name(&self.stage)
            .send()
            .await
        {
            Ok(s) => Ok(Some(s)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "GetStage"),
        }
    }

    /// The digest in the description of the deployment the stage serves, if any;
    /// [`TEMPLATE_DEPLOYMENT_MARK`] itself for a deployment the template made.
    async fn deployed_digest(
        &self,
        cx: &Context,
        api_id: &str,
        stage: Option<&GetStageOutput>,
    ) -> Result<Option<String>, Error> {
        let Some(deployment_id) = stage.and_then(|s| s.deployment_id()) else {
            return Ok(None);
        };
        let deployment = cx
            .aws
            .apigateway
            .get_deployment()
            .rest_api_id(api_id)
            .deployment_id(deployment_id)
            .send()
            .await
            .step(&self.key, "GetDeployment")?;
        Ok(deployment.description().and_then(|d| {
            if d.starts_with(TEMPLATE_DEPLOYMENT_MARK) {
                return Some(TEMPLATE_DEPLOYMENT_MARK.to_owned());
            }
            d.strip_prefix(DEPLOYMENT_MARK).map(str::to_owned)
        }))
    }

    async fn create_api(&self, cx: &Context) -> Result<String, Error> {
        let out = cx
            .aws
            .apigateway
            .create_rest_api()
            .name(&self.name)
            .description(&self.description)
            .endpoint_configuration(
                EndpointConfiguration::builder()
                    .types(EndpointType::from(ENDPOINT_TYPE))
                    .build(),
            )
            .set_binary_media_types(Some(sorted(self.binary_media_types.clone())))
            .set_tags(Some(cx.tags().into_iter().collect()))
            .send()
            .await
            .step(&self.key, "CreateRestApi")?;
        Ok(out.id().unwrap_or_default().to_owned())
    }

    /// Brings the API's own settings (endpoint type, binary media types) in line.
    async fn update_api(&self, cx: &Context, live: &LiveApi, api_id: &str) -> Result<(), Error> {
        let mut ops = Vec::new();
        let live_types: Vec<String> = live.binary_media_types().to_vec();
        for t in self
            .binary_media_types
            .iter()
            .filter(|t| !live_types.contains(t))
        {
            ops.push(patch(
                Op::Add,
                &format!("/binaryMediaTypes/{}", patch_path(t)),
                None,
            ));
        }
        for t in live_types
            .iter()
            .filter(|t| !self.binary_media_types.contains(t))
        {
            ops.push(patch(
                Op::Remove,
                &format!("/binaryMediaTypes/{}", patch_path(t)),
                None,
            ));
        }
        let endpoint = endpoint_types(live);
        if endpoint != [ENDPOINT_TYPE] {
            if let Some(current) = endpoint.first() {
                ops.push(patch(
                    Op::Replace,
                    &format!("/endpointConfiguration/types/{current}"),
                    Some(ENDPOINT_TYPE),
                ));
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        cx.aws
            .apigateway
            .update_rest_api()
            .rest_api_id(api_id)
            .set_patch_operations(Some(ops))
            .send()
            .await
            .step(&self.key, "UpdateRestApi")?;
        Ok(())
    }

    /// (Re)creates one method with its integration and responses.
    async fn put_method(
        &self,
        cx: &Context,
        api_id: &str,
        resource_id: &str,
        method: &str,
        proxy_uri: &str,
        wanted: &Definition,
    ) -> Result<(), Error> {
        let api = &cx.aws.apigateway;
        // A method cannot be put over an existing one: remove it first (absent is fine).
        match api
            .delete_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(method)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) => {}
            Err(e) => return Err(e).step(&self.key, "DeleteMethod"),
        }
        api.put_method()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method(method)
            .authorization_type(AUTHORIZATION)
            .send()
            .await
            .step(&self.key, "PutMethod")?;
        if method == "POST" {
            api.put_integration()
                .rest_api_id(api_id)
                .resource_id(resource_id)
                .http_method("POST")
                .r#type(IntegrationType::AwsProxy)
                .integration_http_method("POST")
                .uri(proxy_uri)
                .send()
                .await
                .step(&self.key, "PutIntegration")?;
            return Ok(());
        }
        api.put_integration()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method("OPTIONS")
            .r#type(IntegrationType::Mock)
            .request_templates(PREFLIGHT_TEMPLATE.0, PREFLIGHT_TEMPLATE.1)
            .send()
            .await
            .step(&self.key, "PutIntegration")?;
        api.put_method_response()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method("OPTIONS")
            .status_code(PREFLIGHT_STATUS)
            .set_response_parameters(Some(
                wanted.cors.keys().map(|k| (k.clone(), false)).collect(),
            ))
            .send()
            .await
            .step(&self.key, "PutMethodResponse")?;
        api.put_integration_response()
            .rest_api_id(api_id)
            .resource_id(resource_id)
            .http_method("OPTIONS")
            .status_code(PREFLIGHT_STATUS)
            .set_response_parameters(Some(wanted.cors.clone().into_iter().collect()))
            // No response template: API Gateway answers an empty one as `null` in every later
            // read of the method, which the SDK cannot parse (aws-cli#1610).
            .send()
            .await
            .step(&self.key, "PutIntegrationResponse")?;
        Ok(())
    }

    async fn delete_api(&self, cx: &Context, api_id: &str) -> Result<Deleted, Error> {
        // DeleteRestApi is limited to one call every 30 s per account.
        let throttled = |e: &Error| e.code() == Some("TooManyRequestsException");
        let backoff = Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(30),
            total: Duration::from_secs(300),
        };
        let result = retry_when(backoff, throttled, || async {
            cx.aws
                .apigateway
                .delete_rest_api()
                .rest_api_id(api_id)
                .send()
                .await
                .step(&self.key, "DeleteRestApi")
        })
        .await;
        match result {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if e.code() == Some("NotFoundException") => Ok(Deleted::Absent),
            Err(e) => Err(e),
        }
    }
}

fn patch(op: Op, path: &str, value: Option<&str>) -> PatchOperation {
    PatchOperation::builder()
        .op(op)
        .path(path)
        .set_value(value.map(str::to_owned))
        .build()
}

fn tags(api: &LiveApi) -> BTreeMap<String, String> {
    api.tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn endpoint_types(api: &LiveApi) -> Vec<String> {
    api.endpoint_configuration()
        .map(|e| e.types().iter().map(|t| t.as_str().to_owned()).collect())
        .unwrap_or_default()
}

#[async_trait]
impl Resource for RestApi {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps: Vec<ResourceKey> = self.routes.iter().map(|r| r.function.clone()).collect();
        deps.extend(self.inputs.iter().cloned());
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let apis = self.find(cx).await?;
        let Some(live) = apis.first() else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        let api_id = live.id().unwrap_or_default().to_owned();
        self.publish(cx, &api_id);
        let wanted = self.definition(cx);
        let mut diff = Diff::default();
        for extra in &apis[1..] {
            // Left by a create whose answer was lost; `apply` removes it.
            diff.push(FieldDiff::new(
                format!("Duplicate.{}", extra.id().unwrap_or_default()),
                "(absent)",
                "present",
            ));
        }
        diff.field(
            "EndpointConfiguration.Types",
            vec![ENDPOINT_TYPE.to_owned()],
            endpoint_types(live),
        );
        diff.field(
            "BinaryMediaTypes",
            wanted.binary_media_types.clone(),
            sorted(live.binary_media_types().to_vec()),
        );
        diff.extend(tag_diff(&cx.tags(), &tags(live)));
        let existing = self.resource_ids(cx, &api_id).await?.1;
        for (path, uri) in &wanted.routes {
            match existing.get(path) {
                Some(resource_id) => diff.extend(
                    self.method_diffs(cx, &api_id, resource_id, path, uri, &wanted)
                        .await?,
                ),
                None => diff.push(FieldDiff::new(
                    format!("Resources.{path}"),
                    "present",
                    "(missing)",
                )),
            }
        }
        for response_type in GATEWAY_RESPONSES {
            diff.field(
                &format!("GatewayResponses.{response_type}.ResponseParameters"),
                wanted.gateway_cors.clone(),
                self.gateway_response(cx, &api_id, response_type).await?,
            );
        }
        let digest = wanted.digest();
        let stage = self.live_stage(cx, &api_id).await?;
        let deployed = self.deployed_digest(cx, &api_id, stage.as_ref()).await?;
        if deployed.as_deref() != Some(TEMPLATE_DEPLOYMENT_MARK) {
            diff.field(
                &format!("Stages.{}.Definition", self.stage),
                Some(digest),
                deployed,
            );
        }
        diff.extend(throttling_diffs(
            &self.stage,
            self.throttling,
            stage.as_ref().and_then(live_throttling),
        ));
        Ok(Planned::from_diff(
            self.key.clone(),
            api_id,
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let (api_id, live) = if planned.action == Action::Create {
            (self.create_api(cx).await?, None)
        } else {
            let apis = self.find(cx).await?;
            for extra in apis.iter().skip(1) {
                self.delete_api(cx, extra.id().unwrap_or_default()).await?;
            }
            let live = apis.into_iter().next();
            let id = live
                .as_ref()
                .and_then(|a| a.id())
                .unwrap_or_default()
                .to_owned();
            (id, live)
        };
        self.publish(cx, &api_id);
        if let Some(live) = &live {
            self.update_api(cx, live, &api_id).await?;
            if planned.touches("Tags.") {
                cx.aws
                    .apigateway
                    .tag_resource()
                    .resource_arn(Self::arn(cx, &api_id))
                    .set_tags(Some(cx.tags().into_iter().collect()))
                    .send()
                    .await
                    .step(&self.key, "TagResource")?;
            }
        }
        let wanted = self.definition(cx);
        let (root, existing) = self.resource_ids(cx, &api_id).await?;
        for (route, (path, uri)) in self.routes.iter().zip(&wanted.routes) {
            let resource_id = match existing.get(path) {
                Some(id) => id.clone(),
                None => cx
                    .aws
                    .apigateway
                    .create_resource()
                    .rest_api_id(&api_id)
                    .parent_id(&root)
                    .path_part(route.path_part)
                    .send()
                    .await
                    .step(&self.key, "CreateResource")?
                    .id()
                    .unwrap_or_default()
                    .to_owned(),
            };
            let methods_changed =
                planned.action == Action::Create || planned.touches(&format!("Resources.{path}"));
            if !methods_changed {
                continue;
            }
            let diffs = self
                .method_diffs(cx, &api_id, &resource_id, path, uri, &wanted)
                .await?;
            for method in ["POST", "OPTIONS"] {
                let prefix = format!("Resources.{path}.{method}");
                if diffs.iter().any(|d| d.field.starts_with(&prefix)) {
                    self.put_method(cx, &api_id, &resource_id, method, uri, &wanted)
                        .await?;
                }
            }
        }
        if planned.action == Action::Create || planned.touches("GatewayResponses.") {
            for response_type in GATEWAY_RESPONSES {
                cx.aws
                    .apigateway
                    .put_gateway_response()
                    .rest_api_id(&api_id)
                    .response_type(GatewayResponseType::from(response_type))
                    .set_response_parameters(Some(
                        wanted.gateway_cors.clone().into_iter().collect(),
                    ))
                    .send()
                    .await
                    .step(&self.key, "PutGatewayResponse")?;
            }
        }
        let digest = wanted.digest();
        let mut stage = self.live_stage(cx, &api_id).await?;
        let deployed = self.deployed_digest(cx, &api_id, stage.as_ref()).await?;
        if deployed.as_deref() != Some(digest.as_str()) {
            cx.aws
                .apigateway
                .create_deployment()
                .rest_api_id(&api_id)
                .stage_name(&self.stage)
                .description(format!("{DEPLOYMENT_MARK}{digest}"))
                .send()
                .await
                .step(&self.key, "CreateDeployment")?;
            // The stage as the deployment left it (the first one makes it).
            stage = self.live_stage(cx, &api_id).await?;
        }
        let ops = throttling_patch(self.throttling, stage.as_ref().and_then(live_throttling));
        if !ops.is_empty() {
            // API Gateway refuses a change overlapping another one on the same API
            // ("concurrent modification"), such as the deployment just made.
            let conflict = |e: &Error| e.code() == Some("ConflictException");
            retry_when(Backoff::READ_AFTER_CREATE, conflict, || async {
                cx.aws
                    .apigateway
                    .update_stage()
                    .rest_api_id(&api_id)
                    .stage_name(&self.stage)
                    .set_patch_operations(Some(ops.clone()))
                    .send()
                    .await
                    .step(&self.key, "UpdateStage")
            })
            .await?;
        }
        Ok(())
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let mut deleted = Deleted::Absent;
        for api in self.find(cx).await? {
            if self.delete_api(cx, api.id().unwrap_or_default()).await? == Deleted::Deleted {
                deleted = Deleted::Deleted;
            }
        }
        Ok(deleted)
    }

    /// The routes' URLs, from the API's id in the template (`id` and `execute_arn` are
    /// references of their own, see [`crate::template::output_reference`]).
    fn known_outputs(&self, cx: &Context) {
        if !cx.is_symbolic() {
            return;
        }
        let api_id = template::reference(&template::logical_id(&self.key));
        let suffix = template::reference("AWS::URLSuffix");
        for route in &self.routes {
            let url = execute_api_url(
                &api_id,
                &cx.aws.region,
                &suffix,
                &self.stage,
                route.path_part,
            );
            cx.publish(&self.key, route.url_output, url);
        }
    }

    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        Ok(self
            .cfn_resources(cx)
            .into_iter()
            .map(Part::Resource)
            .collect())
    }
}

/// Why checkov's API Gateway checks do not apply (the SDK engine sets none of these either).
const OPEN_BY_DESIGN: &str = "public by design: the upload page posts without signing in (the \
     console build's API had no authorizer); the stage's throttling, the per-address and per-IP \
     upload quotas and the recipient's confirmation limit abuse";
const NO_CACHE: &str = "nothing to cache: every request is a distinct upload or confirmation \
     token, answered once";
const NO_ACCESS_LOG: &str = "no access log: it needs the account-wide CloudWatch role of API \
     Gateway, which the stack does not own; the requests that pass the throttling reach a \
     function, which logs them in its own log group";
const NO_TRACING: &str = "no X-Ray: each route is one Lambda proxy call, whose duration and \
     errors the function's logs and metrics show already";

impl RestApi {
    /// The API, each route's resource and two methods, the gateway responses, a deployment
    /// named after the definition's digest (a changed definition is a new deployment, as the
    /// SDK engine deploys it anew) and the stage serving it.
    fn cfn_resources(&self, cx: &Context) -> Vec<CfnResource> {
        let api = template::reference(&template::logical_id(&self.key));
        let root = template::reference(&format!(
            "{}.RootResourceId",
            template::logical_id(&self.key)
        ));
        let wanted = self.definition(cx);
        let mut parts = vec![CfnResource::new(
            &self.key,
            "AWS::ApiGateway::RestApi",
            json!({
                "Name": self.name,
                "Description": self.description,
                "BinaryMediaTypes": wanted.binary_media_types,
                "EndpointConfiguration": {"Types": [ENDPOINT_TYPE]},
                "Tags": template::tags(cx),
            }),
        )];
        let mut deployed = Vec::new();
        for route in &self.routes {
            let resource = CfnResource::part(
                &self.key,
                &format!("resource {}", route.path_part),
                "AWS::ApiGateway::Resource",
                json!({"RestApiId": api, "ParentId": root, "PathPart": route.path_part}),
            );
            let resource_id = template::reference(&resource.logical_id);
            let function_arn = cx.output(&route.function, "arn").unwrap_or_default();
            let uri = integration_uri_in(
                &template::reference("AWS::Partition"),
                &cx.aws.region,
                &function_arn,
            );
            let post = CfnResource::part(
                &self.key,
                &format!("post {}", route.path_part),
                "AWS::ApiGateway::Method",
                json!({
                    "RestApiId": api,
                    "ResourceId": resource_id,
                    "HttpMethod": "POST",
                    "AuthorizationType": AUTHORIZATION,
                    "Integration": {
                        "Type": IntegrationType::AwsProxy.as_str(),
                        "IntegrationHttpMethod": "POST",
                        "Uri": uri,
                    },
                }),
            )
            .skip_check("CKV_AWS_59", OPEN_BY_DESIGN);
            let method_parameters: BTreeMap<&String, bool> =
                wanted.cors.keys().map(|k| (k, false)).collect();
            let options = CfnResource::part(
                &self.key,
                &format!("options {}", route.path_part),
                "AWS::ApiGateway::Method",
                json!({
                    "RestApiId": api,
                    "ResourceId": resource_id,
                    "HttpMethod": "OPTIONS",
                    "AuthorizationType": AUTHORIZATION,
                    "Integration": {
                        "Type": IntegrationType::Mock.as_str(),
                        "RequestTemplates": {PREFLIGHT_TEMPLATE.0: PREFLIGHT_TEMPLATE.1},
                        "IntegrationResponses": [{
                            "StatusCode": PREFLIGHT_STATUS,
                            "ResponseParameters": wanted.cors,
                        }],
                    },
                    "MethodResponses": [{
                        "StatusCode": PREFLIGHT_STATUS,
                        "ResponseParameters": method_parameters,
                    }],
                }),
            );
            deployed.push(post.logical_id.clone());
            deployed.push(options.logical_id.clone());
            parts.extend([resource, post, options]);
        }
        for response_type in GATEWAY_RESPONSES {
            let response = CfnResource::part(
                &self.key,
                &format!("gateway response {}", response_type.to_lowercase()),
                "AWS::ApiGateway::GatewayResponse",
                json!({
                    "RestApiId": api,
                    "ResponseType": response_type,
                    "ResponseParameters": wanted.gateway_cors,
                }),
            );
            deployed.push(response.logical_id.clone());
            parts.push(response);
        }
        let digest = wanted.digest();
        let mut deployment = CfnResource::part(
            &self.key,
            &format!("deployment {}", &digest[..12]),
            "AWS::ApiGateway::Deployment",
            json!({
                "RestApiId": api,
                "Description": format!("{TEMPLATE_DEPLOYMENT_MARK}{digest}"),
            }),
        );
        deployment.depends_on.extend(deployed);
        let (resource_path, http_method) = ALL_METHODS.split_once('/').unwrap_or(("*", "*"));
        let stage = CfnResource::part(
            &self.key,
            "stage",
            "AWS::ApiGateway::Stage",
            json!({
                "RestApiId": api,
                "StageName": self.stage,
                "DeploymentId": template::reference(&deployment.logical_id),
                "MethodSettings": [{
                    "ResourcePath": format!("/{resource_path}"),
                    "HttpMethod": http_method,
                    "ThrottlingRateLimit": self.throttling.rate,
                    "ThrottlingBurstLimit": self.throttling.burst,
                }],
                "Tags": template::tags(cx),
            }),
        )
        .skip_check("CKV_AWS_120", NO_CACHE)
        .skip_check("CKV_AWS_76", NO_ACCESS_LOG)
        .skip_check("CKV_AWS_73", NO_TRACING);
        parts.extend([deployment, stage]);
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(origin: &str) -> Definition {
        Definition {
            binary_media_types: vec!["multipart/form-data".into()],
            routes: vec![
                (
                    "/file-upload".into(),
                    lambda_integration_uri(
                        "us-east-1",
                        "arn:aws:lambda:us-east-1:111122223333:function:demo-file_upload",
                    ),
                ),
                (
                    "/confirm".into(),
                    lambda_integration_uri(
                        "us-east-1",
                        "arn:aws:lambda:us-east-1:111122223333:function:demo-send_email",
                    ),
                ),
            ],
            cors: cors_parameters(origin),
            gateway_cors: gateway_cors_parameters(origin),
        }
    }

    #[test]
    fn the_digest_changes_with_the_definition_only() {
        let a = definition("https://d1.cloudfront.net");
        assert_eq!(a.digest(), definition("https://d1.cloudfront.net").digest());
        assert_ne!(a.digest(), definition("https://d2.cloudfront.net").digest());
        let mut b = a.clone();
        b.binary_media_types.push("audio/mpeg".into());
        assert_ne!(a.digest(), b.digest());
        // A route more, or one proxied elsewhere, is a new definition to deploy.
        let mut c = a.clone();
        c.routes.pop();
        assert_ne!(a.digest(), c.digest());
        let mut d = a.clone();
        d.routes[1].1 = d.routes[0].1.clone();
        assert_ne!(a.digest(), d.digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn integration_uri_and_invoke_urls_follow_aws_formats() {
        assert_eq!(
            lambda_integration_uri("eu-west-1", "arn:aws:lambda:eu-west-1:1:function:f"),
            "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:1:function:f/invocations"
        );
        assert_eq!(
            invoke_url("abc123", "eu-west-1", "prod", "file-upload", None),
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/file-upload"
        );
        assert_eq!(
            invoke_url(
                "abc123",
                "us-east-1",
                "prod",
                "file-upload",
                Some("http://127.0.0.1:4566/")
            ),
            "http://127.0.0.1:4566/restapis/abc123/prod/_user_request_/file-upload"
        );
    }

    #[test]
    fn api_gateway_errors_carry_cors_headers() {
        let cors = gateway_cors_parameters("https://d1.cloudfront.net");
        assert_eq!(
            cors["gatewayresponse.header.Access-Control-Allow-Origin"],
            "'https://d1.cloudfront.net'"
        );
        assert_eq!(GATEWAY_RESPONSES, ["DEFAULT_4XX", "DEFAULT_5XX"]);
        // A change of the gateway responses is a change of the deployed definition.
        let mut other = definition("https://d1.cloudfront.net");
        other.gateway_cors.clear();
        assert_ne!(
            other.digest(),
            definition("https://d1.cloudfront.net").digest()
        );
    }

    #[test]
    fn stage_throttling_is_compared_and_set_field_by_field() {
        let wanted = Throttling {
            rate: 10.0,
            burst: 20,
        };
        assert!(throttling_diffs("prod", wanted, Some(wanted)).is_empty());
        assert!(throttling_patch(wanted, Some(wanted)).is_empty());
        // A stage never throttled (just made by its deployment): both set.
        let diffs = throttling_diffs("prod", wanted, None);
        assert_eq!(
            diffs
                .iter()
                .map(|d| (d.field.as_str(), d.actual.as_str()))
                .collect::<Vec<_>>(),
            [
                (
                    "Stages.prod.MethodSettings.*/*.ThrottlingRateLimit",
                    "(not set)"
                ),
                (
                    "Stages.prod.MethodSettings.*/*.ThrottlingBurstLimit",
                    "(not set)"
                ),
            ]
        );
        let ops = throttling_patch(wanted, None);
        let shown: Vec<_> = ops
            .iter()
            .map(|o| (o.op().map(|o| o.as_str()), o.path(), o.value()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    Some("replace"),
                    Some("/*/*/throttling/rateLimit"),
                    Some("10")
                ),
                (
                    Some("replace"),
                    Some("/*/*/throttling/burstLimit"),
                    Some("20")
                ),
            ]
        );
        // Raised by hand: only the changed limit is named and put back.
        let raised = Throttling {
            rate: 10000.0,
            burst: 20,
        };
        let diffs = throttling_diffs("prod", wanted, Some(raised));
        assert_eq!(diffs.len(), 1);
        assert_eq!(
            diffs[0].field,
            "Stages.prod.MethodSettings.*/*.ThrottlingRateLimit"
        );
        assert_eq!(
            (diffs[0].expected.as_str(), diffs[0].actual.as_str()),
            ("10.0", "10000.0")
        );
        let ops = throttling_patch(wanted, Some(raised));
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].value(), Some("10"));
        // A fractional rate is sent as written.
        let slow = Throttling {
            rate: 0.5,
            burst: 1,
        };
        assert_eq!(throttling_patch(slow, Some(wanted))[0].value(), Some("0.5"));
    }

    fn api() -> RestApi {
        RestApi {
            key: ResourceKey::new("rest_api", "up"),
            name: "demo-api".into(),
            description: "uploads".into(),
            routes: vec![Route {
                path_part: "file-upload",
                function: ResourceKey::new("function", "file_upload"),
                url_output: "url",
            }],
            binary_media_types: vec!["multipart/form-data".into()],
            stage: "prod".into(),
            allowed_origin: Box::new(|_| "https://example.org".into()),
            throttling: Throttling {
                rate: 10.0,
                burst: 20,
            },
            inputs: vec![],
        }
    }

    #[test]
    fn the_template_proxies_each_route_and_throttles_the_stage() {
        let cx = crate::systems::tests::symbolic_context();
        let api = api();
        api.known_outputs(&cx);
        assert_eq!(
            cx.output(&api.key, "url").unwrap(),
            format!(
                "https://{}.execute-api.{}.{}/prod/file-upload",
                template::reference("RestApiUp"),
                template::reference("AWS::Region"),
                template::reference("AWS::URLSuffix")
            )
        );
        let parts = api.cfn_resources(&cx);
        let by_id = |id: &str| {
            parts
                .iter()
                .find(|r| r.logical_id == id)
                .unwrap_or_else(|| panic!("{id} in {parts:?}"))
        };
        let post = &by_id("RestApiUpPostFileUpload").properties;
        assert_eq!(post["AuthorizationType"], "NONE");
        assert_eq!(post["Integration"]["Type"], "AWS_PROXY");
        assert_eq!(
            post["Integration"]["Uri"],
            format!(
                "arn:{}:apigateway:{}:lambda:path/2015-03-31/functions/{}/invocations",
                template::reference("AWS::Partition"),
                template::reference("AWS::Region"),
                template::reference("FunctionFileUpload.Arn")
            )
        );
        let options = &by_id("RestApiUpOptionsFileUpload").properties;
        assert_eq!(
            options["Integration"]["IntegrationResponses"][0]["ResponseParameters"]
                ["method.response.header.Access-Control-Allow-Origin"],
            "'https://example.org'"
        );
        assert_eq!(
            options["MethodResponses"][0]["ResponseParameters"]
                ["method.response.header.Access-Control-Allow-Origin"],
            false
        );
        let deployment = parts
            .iter()
            .find(|r| r.type_name == "AWS::ApiGateway::Deployment")
            .unwrap();
        for method in ["RestApiUpPostFileUpload", "RestApiUpOptionsFileUpload"] {
            assert!(deployment.depends_on.iter().any(|d| d == method));
        }
        assert_eq!(
            deployment.logical_id,
            template::pascal(&format!(
                "rest api up deployment {}",
                &api.definition(&cx).digest()[..12]
            ))
        );
        // Marked as the template's: `up`'s drift does not take it for a stale deployment.
        assert!(deployment.properties["Description"]
            .as_str()
            .unwrap()
            .starts_with(TEMPLATE_DEPLOYMENT_MARK));
        let stage = &by_id("RestApiUpStage").properties;
        assert_eq!(stage["StageName"], "prod");
        assert_eq!(
            stage["MethodSettings"],
            json!([{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 10.0, "ThrottlingBurstLimit": 20}])
        );
        assert_eq!(
            stage["DeploymentId"],
            template::reference(&deployment.logical_id)
        );
        assert_eq!(
            parts
                .iter()
                .filter(|r| r.type_name == "AWS::ApiGateway::GatewayResponse")
                .count(),
            GATEWAY_RESPONSES.len()
        );
    }

    #[test]
    fn cors_values_are_quoted_literals_and_patch_paths_escape_slashes() {
        let cors = cors_parameters("https://d1.cloudfront.net");
        assert_eq!(
            cors["method.response.header.Access-Control-Allow-Origin"],
            "'https://d1.cloudfront.net'"
        );
        assert_eq!(cors.len(), 3);
        assert_eq!(patch_path("multipart/form-data"), "multipart~1form-data");
    }
}
