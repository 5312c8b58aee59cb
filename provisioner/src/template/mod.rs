//! `provision template`: the stack as one CloudFormation template.
//!
//! Each resource kind renders its own CloudFormation resources from the same fields its
//! `apply` writes ([`crate::engine::Resource::cloudformation`]), so the SDK engine and the
//! template cannot disagree on a setting. What one resource needs of another (an ARN, an id)
//! comes from a symbolic [`Context`]: instead of a live value, a marker naming the
//! CloudFormation resource and attribute ([`reference`]); rendering turns strings holding
//! markers into `Ref`, `Fn::GetAtt` or `Fn::Sub`. The region and account are markers too
//! (`AWS::Region`, `AWS::AccountId`), so one template serves any account.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::engine::executor::Graph;
use crate::engine::{Context, ResourceKey};

/// Opens and closes a reference inside a string (characters no AWS name or setting holds).
const OPEN: char = '\u{1}';
const CLOSE: char = '\u{2}';

/// A reference inside a string: `Logical` (Ref), `Logical.Attribute` (GetAtt), a pseudo
/// parameter (`AWS::Region`), or `az:N` (the N-th availability zone of the region).
pub fn reference(expr: &str) -> String {
    format!("{OPEN}{expr}{CLOSE}")
}

/// The first dot-separated label of `domain` (`d111` of `d111.cloudfront.net`), also when the
/// domain is a reference (then `Fn::Select` of `Fn::Split`).
pub fn first_label(domain: &str) -> String {
    match domain
        .strip_prefix(OPEN)
        .and_then(|d| d.strip_suffix(CLOSE))
    {
        Some(expr) if !expr.contains(OPEN) => reference(&format!("label:{expr}")),
        _ => domain.split('.').next().unwrap_or(domain).to_owned(),
    }
}

/// The N-th availability zone of the region the template is deployed in.
pub fn zone(index: usize) -> String {
    reference(&format!("az:{index}"))
}

/// The CloudFormation logical id of a resource of the stack: its kind and name in
/// PascalCase (`bucket/stt-audio` is `BucketSttAudio`).
pub fn logical_id(key: &ResourceKey) -> String {
    pascal(&format!("{} {}", key.kind, key.name))
}

/// PascalCase of the ASCII letters and digits of `text`; anything else separates words.
pub fn pascal(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            let first = chars.next().expect("non-empty").to_ascii_uppercase();
            std::iter::once(first).chain(chars).collect::<String>()
        })
        .collect()
}

/// What an output of another resource is in the template. Outputs that follow from a
/// resource's settings alone are published by [`crate::engine::Resource::known_outputs`]
/// and never reach here.
pub fn output_reference(resource: &ResourceKey, name: &str) -> String {
    let id = logical_id(resource);
    let attribute = match (resource.kind, name) {
        ("security_group", "id") => Some("GroupId"),
        ("default_security_group", "id") => {
            let vpc = logical_id(&ResourceKey::named("vpc", resource.name.to_string()));
            return reference(&format!("{vpc}.DefaultSecurityGroup"));
        }
        (
            "vpc" | "subnet" | "route_table" | "egress_gateway" | "vpc_endpoint" | "rest_api"
            | "distribution",
            "id",
        ) => None,
        ("db_subnet_group" | "db_parameter_group" | "function" | "log_group", "name") => None,
        ("db_instance", "identifier") => None,
        ("db_instance", "address") => Some("Endpoint.Address"),
        ("db_instance", "port") => Some("Endpoint.Port"),
        ("db_instance", "arn") => Some("DBInstanceArn"),
        ("db_instance", "secret_arn") => Some("MasterUserSecret.SecretArn"),
        ("role" | "function" | "queue" | "event_rule" | "log_group", "arn") => Some("Arn"),
        ("queue", "url") => None,
        ("queue", "name") => Some("QueueName"),
        ("secret", "arn") => None,
        ("distribution", "domain_name" | "served_domain") => Some("DomainName"),
        ("distribution", "arn") => {
            return format!(
                "arn:{}:cloudfront::{}:distribution/{}",
                reference("AWS::Partition"),
                reference("AWS::AccountId"),
                reference(&id)
            )
        }
        ("origin_access_control" | "response_headers_policy", "id") => Some("Id"),
        ("rest_api", "execute_arn") => {
            return format!(
                "arn:{}:execute-api:{}:{}:{}",
                reference("AWS::Partition"),
                reference("AWS::Region"),
                reference("AWS::AccountId"),
                reference(&id)
            )
        }
        // Not known in a template (a pending invalidation): an error if a setting uses it.
        _ => return reference(&format!("unknown:{resource}:{name}")),
    };
    match attribute {
        Some(attribute) => reference(&format!("{id}.{attribute}")),
        None => reference(&id),
    }
}

/// One CloudFormation resource.
#[derive(Debug, Clone)]
pub struct CfnResource {
    pub logical_id: String,
    pub type_name: &'static str,
    pub properties: Value,
    /// Logical ids CloudFormation must make first though no property refers to them.
    pub depends_on: Vec<String>,
    /// `DeletionPolicy` and `UpdateReplacePolicy` (`Retain`, `Snapshot`); `None`: Delete.
    pub keep: Option<&'static str>,
    /// `UpdateReplacePolicy` where it differs from `keep` (a database snapshotted when
    /// replaced, whether or not when deleted).
    pub keep_on_replace: Option<&'static str>,
    /// checkov checks that do not apply, each with its reason (template metadata).
    pub skipped_checks: Vec<(&'static str, &'static str)>,
    /// cfn-lint rules that misjudge this resource, each with its reason (template metadata;
    /// cfn-lint keeps no reason, the code does).
    pub lint_ignored: Vec<(&'static str, &'static str)>,
}

impl CfnResource {
    /// The resource standing for `key` in the template.
    pub fn new(key: &ResourceKey, type_name: &'static str, properties: Value) -> Self {
        Self::with_id(logical_id(key), type_name, properties)
    }

    /// A further resource `key` is made of (an API's stage), `suffix` naming it.
    pub fn part(
        key: &ResourceKey,
        suffix: &str,
        type_name: &'static str,
        properties: Value,
    ) -> Self {
        Self::with_id(
            format!("{}{}", logical_id(key), pascal(suffix)),
            type_name,
            properties,
        )
    }

    fn with_id(logical_id: String, type_name: &'static str, properties: Value) -> Self {
        CfnResource {
            logical_id,
            type_name,
            properties,
            depends_on: Vec::new(),
            keep: None,
            keep_on_replace: None,
            skipped_checks: Vec::new(),
            lint_ignored: Vec::new(),
        }
    }

    /// Made only after these resources of the stack.
    pub fn after(mut self, keys: &[ResourceKey]) -> Self {
        self.depends_on.extend(keys.iter().map(logical_id));
        self
    }

    /// Kept (`Retain`) or snapshotted (`Snapshot`) when deleted or replaced.
    pub fn keep(mut self, policy: &'static str) -> Self {
        self.keep = Some(policy);
        self
    }

    /// Kept (`Retain`) or snapshotted (`Snapshot`) when replaced, whatever `keep` says of
    /// deleting.
    pub fn keep_on_replace(mut self, policy: &'static str) -> Self {
        self.keep_on_replace = Some(policy);
        self
    }

    /// A checkov check that does not apply to this resource, and why.
    pub fn skip_check(mut self, id: &'static str, reason: &'static str) -> Self {
        self.skipped_checks.push((id, reason));
        self
    }

    /// A cfn-lint rule that misjudges this resource (a value AWS accepts that cfn-lint's
    /// list lacks), and why.
    pub fn ignore_lint(mut self, id: &'static str, reason: &'static str) -> Self {
        self.lint_ignored.push((id, reason));
        self
    }
}

/// What a resource renders as, or why it cannot be rendered (a zip not built yet).
pub type Rendering = Result<Vec<Part>, String>;

/// The bucket `provision` makes outside the template for what the template points at (the
/// functions' zips, under content-addressed keys): it must exist before the stack does.
pub fn artifact_bucket_name(cx: &Context) -> String {
    format!("{}-artifacts-{}", cx.stack_name(), cx.aws.account_id)
}

/// What a resource of the stack is in the template.
#[derive(Debug, Clone)]
pub enum Part {
    Resource(CfnResource),
    /// Properties of another resource's CloudFormation resource (a bucket's CORS and
    /// notifications are properties of `AWS::S3::Bucket`), made after `depends_on`.
    Properties {
        of: ResourceKey,
        properties: Map<String, Value>,
        depends_on: Vec<ResourceKey>,
    },
    /// CloudFormation cannot do it; `provision` does it after the deploy (why).
    AfterDeploy(&'static str),
    /// A file the template points at in the artifact bucket (a function's zip), which
    /// `provision` uploads under `key` before the deploy.
    Artifact {
        key: String,
        path: std::path::PathBuf,
    },
}

/// The stack's tags as CloudFormation's list of `Key`/`Value` pairs.
pub fn tags(cx: &Context) -> Value {
    tag_list(cx.tags())
}

/// Tags as CloudFormation's list of `Key`/`Value` pairs.
pub fn tag_list(tags: BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.into_iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}: {1}")]
    NotRendered(ResourceKey, String),
    #[error("{resource}: sets {property} on {target}, which the template does not hold or which sets it already")]
    BadMerge {
        resource: ResourceKey,
        target: String,
        property: String,
    },
    #[error("{logical_id} refers to {target}, which the template does not hold")]
    Dangling { logical_id: String, target: String },
    #[error("{logical_id}: uses {what}, which is not known before the deploy")]
    Unknown { logical_id: String, what: String },
}

/// The rendered template, and what `provision` does after CloudFormation.
#[derive(Debug)]
pub struct Template {
    pub body: Value,
    pub after_deploy: Vec<(ResourceKey, &'static str)>,
    /// What deleting the stack leaves behind (`DeletionPolicy: Retain`: data buckets,
    /// failed-events queues), for `provision` to delete as the SDK engine's `down` would.
    pub retained: Vec<ResourceKey>,
    /// What the template points at in the artifact bucket: key and local file.
    pub artifacts: Vec<(String, std::path::PathBuf)>,
}

/// The stack described by `stack` as a template; no AWS call is made. The zones are those
/// `stack.yaml` names, or the region's first two.
pub fn for_stack(stack: crate::spec::Stack) -> anyhow::Result<Template> {
    let zones = match stack
        .stt
        .network
        .as_ref()
        .and_then(|n| n.availability_zones.clone())
    {
        Some(zones) => zones,
        None => (0..crate::systems::zones::ZONES).map(zone).collect(),
    };
    for_stack_in(stack, zones, false, None)
}

/// The template with the network in these zones (those `up` chose, for the CloudFormation
/// engine: both engines then make the same subnets), and on the `local` target at `endpoint`
/// made as `up` makes it there (no IPv6, no TLS-only statements: the emulator speaks plain
/// HTTP; the functions and pages told the emulator's address).
pub fn for_stack_in(
    stack: crate::spec::Stack,
    zones: Vec<String>,
    local: bool,
    endpoint: Option<String>,
) -> anyhow::Result<Template> {
    let mut cx = Context::symbolic(std::sync::Arc::new(stack), zones);
    cx.aws.local = local;
    cx.aws.endpoint = endpoint;
    let graph = crate::systems::graph(&cx)?;
    let description = format!(
        "{}: the speech-to-text and video-on-demand systems (rendered by `provision template`; \
         edit stack.yaml, not this file)",
        cx.stack_name()
    );
    Ok(render(&cx, &graph, &description)?)
}

/// Renders every resource of `graph`, built on the symbolic `cx`.
pub fn render(cx: &Context, graph: &Graph, description: &str) -> Result<Template, TemplateError> {
    debug_assert!(
        cx.is_symbolic(),
        "a template is rendered on a symbolic context"
    );
    for resource in graph.resources() {
        resource.known_outputs(cx);
    }
    let mut resources: BTreeMap<String, CfnResource> = BTreeMap::new();
    let mut merges = Vec::new();
    let mut after_deploy = Vec::new();
    let mut retained = Vec::new();
    let mut artifacts = Vec::new();
    for resource in graph.resources() {
        let key = resource.key();
        let parts = resource
            .cloudformation(cx)
            .map_err(|why| TemplateError::NotRendered(key.clone(), why))?;
        for part in parts {
            match part {
                Part::Resource(r) => {
                    if r.keep == Some("Retain") && r.logical_id == logical_id(&key) {
                        retained.push(key.clone());
                    }
                    resources.insert(r.logical_id.clone(), r);
                }
                Part::Properties {
                    of,
                    properties,
                    depends_on,
                } => merges.push((key.clone(), of, properties, depends_on)),
                Part::AfterDeploy(why) => after_deploy.push((key.clone(), why)),
                Part::Artifact { key, path } => artifacts.push((key, path)),
            }
        }
    }
    for (resource, of, properties, depends_on) in merges {
        let target = logical_id(&of);
        let Some(Value::Object(into)) = resources.get_mut(&target).map(|r| &mut r.properties)
        else {
            return Err(TemplateError::BadMerge {
                resource,
                target,
                property: properties.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        for (property, value) in properties {
            if into.contains_key(&property) {
                return Err(TemplateError::BadMerge {
                    resource,
                    target,
                    property,
                });
            }
            into.insert(property, value);
        }
        let r = resources.get_mut(&target).expect("looked up above");
        r.depends_on.extend(depends_on.iter().map(logical_id));
    }

    let mut body_resources = Map::new();
    for (id, r) in &resources {
        let mut refs = BTreeSet::new();
        let properties =
            resolve(&r.properties, &mut refs).map_err(|what| TemplateError::Unknown {
                logical_id: id.clone(),
                what,
            })?;
        for target in &refs {
            if !resources.contains_key(target) {
                return Err(TemplateError::Dangling {
                    logical_id: id.clone(),
                    target: target.clone(),
                });
            }
        }
        // Only the order references do not give already (cfn-lint W3005).
        let depends_on: BTreeSet<&String> = r
            .depends_on
            .iter()
            .filter(|d| !refs.contains(*d) && *d != id)
            .collect();
        for target in &depends_on {
            if !resources.contains_key(*target) {
                return Err(TemplateError::Dangling {
                    logical_id: id.clone(),
                    target: (*target).clone(),
                });
            }
        }
        let mut entry = Map::new();
        entry.insert("Type".into(), json!(r.type_name));
        if !depends_on.is_empty() {
            entry.insert("DependsOn".into(), json!(depends_on));
        }
        if let Some(policy) = r.keep_on_replace.or(r.keep) {
            entry.insert("DeletionPolicy".into(), json!(r.keep.unwrap_or("Delete")));
            entry.insert("UpdateReplacePolicy".into(), json!(policy));
        }
        let mut metadata = Map::new();
        if !r.skipped_checks.is_empty() {
            let skips: Vec<Value> = r
                .skipped_checks
                .iter()
                .map(|(id, comment)| json!({"id": id, "comment": comment}))
                .collect();
            metadata.insert("checkov".into(), json!({"skip": skips}));
        }
        if !r.lint_ignored.is_empty() {
            let ids: Vec<&str> = r.lint_ignored.iter().map(|(id, _)| *id).collect();
            metadata.insert("cfn-lint".into(), json!({"config": {"ignore_checks": ids}}));
        }
        if !metadata.is_empty() {
            entry.insert("Metadata".into(), Value::Object(metadata));
        }
        if properties.as_object().is_some_and(|p| !p.is_empty()) {
            entry.insert("Properties".into(), properties);
        }
        body_resources.insert(id.clone(), Value::Object(entry));
    }

    let mut outputs = Map::new();
    for (name, value) in crate::systems::outputs(cx) {
        let mut refs = BTreeSet::new();
        // An output that needs a live value (none today) is left out rather than guessed.
        let Ok(value) = resolve(&Value::String(value), &mut refs) else {
            continue;
        };
        if refs.iter().all(|r| resources.contains_key(r)) {
            outputs.insert(pascal(name), json!({"Value": value}));
        }
    }

    let mut body = Map::new();
    body.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
    body.insert("Description".into(), json!(description));
    body.insert("Resources".into(), Value::Object(body_resources));
    if !outputs.is_empty() {
        body.insert("Outputs".into(), Value::Object(outputs));
    }
    Ok(Template {
        body: Value::Object(body),
        after_deploy,
        retained,
        artifacts,
    })
}

/// Turns the markers in `value`'s strings into intrinsic functions; collects the logical ids
/// referred to. Err names a reference nothing can resolve before the deploy.
fn resolve(value: &Value, refs: &mut BTreeSet<String>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => resolve_string(s, refs)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, refs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, refs)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// One reference as an intrinsic function of its own.
fn intrinsic(expr: &str, refs: &mut BTreeSet<String>) -> Result<Value, String> {
    if let Some(what) = expr.strip_prefix("unknown:") {
        return Err(what.to_owned());
    }
    if let Some(domain) = expr.strip_prefix("label:") {
        return Ok(json!({"Fn::Select": [0, {"Fn::Split": [".", intrinsic(domain, refs)?]}]}));
    }
    if let Some(index) = expr.strip_prefix("az:") {
        let index: u64 = index.parse().map_err(|_| expr.to_owned())?;
        return Ok(json!({"Fn::Select": [index, {"Fn::GetAZs": ""}]}));
    }
    if expr.starts_with("AWS::") {
        return Ok(json!({"Ref": expr}));
    }
    Ok(match expr.split_once('.') {
        Some((id, attribute)) => {
            refs.insert(id.to_owned());
            json!({"Fn::GetAtt": [id, attribute]})
        }
        None => {
            refs.insert(expr.to_owned());
            json!({"Ref": expr})
        }
    })
}

fn resolve_string(s: &str, refs: &mut BTreeSet<String>) -> Result<Value, String> {
    if !s.contains(OPEN) {
        return Ok(Value::String(s.to_owned()));
    }
    // The whole string one reference: the intrinsic itself.
    if let Some(expr) = s.strip_prefix(OPEN).and_then(|r| r.strip_suffix(CLOSE)) {
        if !expr.contains(OPEN) && !expr.contains(CLOSE) {
            return intrinsic(expr, refs);
        }
    }
    // Otherwise Fn::Sub; literal `${` is written `${!`, and zones become variables.
    let mut text = String::new();
    let mut variables = Map::new();
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        text.push_str(&rest[..start].replace("${", "${!"));
        let after = &rest[start + OPEN.len_utf8()..];
        let end = after.find(CLOSE).ok_or_else(|| s.to_owned())?;
        let expr = &after[..end];
        if ["az:", "label:", "unknown:"]
            .iter()
            .any(|p| expr.starts_with(p))
        {
            let name = pascal(expr);
            variables.insert(name.clone(), intrinsic(expr, refs)?);
            text.push_str(&format!("${{{name}}}"));
        } else {
            if !expr.starts_with("AWS::") {
                refs.insert(expr.split('.').next().expect("split").to_owned());
            }
            text.push_str(&format!("${{{expr}}}"));
        }
        rest = &after[end + CLOSE.len_utf8()..];
    }
    text.push_str(&rest.replace("${", "${!"));
    Ok(if variables.is_empty() {
        json!({"Fn::Sub": text})
    } else {
        json!({"Fn::Sub": [text, variables]})
    })
}

/// The template as JSON (keys sorted: the same bytes every time).
pub fn to_json(template: &Template) -> String {
    let mut text = serde_json::to_string_pretty(&template.body).expect("JSON values serialise");
    text.push('\n');
    text
}

/// The template as YAML (long-form intrinsic functions, keys sorted).
pub fn to_yaml(template: &Template) -> String {
    serde_yaml::to_string(&template.body).expect("JSON values serialise as YAML")
}

#[cfg(test)]
mod tests;
