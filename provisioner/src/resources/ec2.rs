//! What the EC2 resource kinds share: tags at creation (so a resource and its ownership tag
//! appear together, and a crash can never leave an untagged one behind), lookups by tag, and
//! waiting for the network interfaces that block deletion.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, NetworkInterfaceStatus, ResourceType, Tag, TagSpecification};

use crate::engine::retry::{retry_when, Backoff};
use crate::engine::{AwsResultExt, Context, Error, ResourceKey, OWNER_TAG};

/// An idempotency token for one create (`ClientToken`, at most 64 ASCII characters): the SDK
/// sends it again when it retries a call whose answer was lost, and EC2 then answers the
/// resource the first attempt made instead of making a second. Fresh for each run: EC2 keeps a
/// token for a while, and a later create under an old one would be answered the deleted
/// resource. The SDK fills one in by itself only for the calls whose model marks it
/// (`CreateRouteTable`), not for `CreateVpcEndpoint` or `CreateEgressOnlyInternetGateway`.
pub fn client_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The stack's tags plus `Name`, as EC2 wants them at creation.
pub fn tag_spec(cx: &Context, resource_type: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(tags(cx, name)))
        .build()
}

pub fn tags(cx: &Context, name: &str) -> Vec<Tag> {
    wanted_tags(cx, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub fn wanted_tags(cx: &Context, name: &str) -> BTreeMap<String, String> {
    let mut tags = cx.tags();
    tags.insert("Name".into(), name.into());
    tags
}

/// The same tags as [`tag_spec`] gives at creation, as CloudFormation's `Key`/`Value` list.
pub fn cfn_tags(cx: &Context, name: &str) -> serde_json::Value {
    crate::template::tag_list(wanted_tags(cx, name))
}

pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Tag drift of an EC2 resource: the stack's tags and its `Name`.
pub fn tag_drift(cx: &Context, name: &str, live: &[Tag]) -> Vec<crate::engine::FieldDiff> {
    super::tag_diff(&wanted_tags(cx, name), &tag_map(live))
}

/// Filters that select the stack's resource of this `Name`.
pub fn owned(cx: &Context, name: &str) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{OWNER_TAG}"))
            .values(cx.stack_name())
            .build(),
        Filter::builder().name("tag:Name").values(name).build(),
    ]
}

pub fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Whether tags carry the stack's ownership tag and this `Name`. Checked on every answer as
/// well as asked of the API in filters, so a lenient filter can never hand over another
/// resource.
pub fn is_ours(cx: &Context, tags: &[Tag], name: &str) -> bool {
    let tags = tag_map(tags);
    tags.get(OWNER_TAG).map(String::as_str) == Some(cx.stack_name())
        && tags.get("Name").map(String::as_str) == Some(name)
}

/// At most one resource may answer to a name; more means something outside made copies.
pub fn single<T: Clone>(key: &ResourceKey, name: &str, found: &[T]) -> Result<Option<T>, Error> {
    match found {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(Error::Refused {
            resource: key.clone(),
            message: format!("{} resources carry the name {name} and the stack's tag; remove the extra ones by hand", many.len()),
        }),
    }
}

/// What EC2 answers, for a few seconds after a create, to calls that name the new resource:
/// EC2 is eventually consistent, and another resource's id made moments ago may be unknown.
const NOT_FOUND_YET: [&str; 7] = [
    "InvalidVpcID.NotFound",
    "InvalidSubnetID.NotFound",
    "InvalidGroup.NotFound",
    "InvalidGroupId.NotFound",
    "InvalidRouteTableID.NotFound",
    "InvalidEgressOnlyInternetGatewayId.NotFound",
    "InvalidVpcEndpointId.NotFound",
];

pub fn not_found_yet(e: &Error) -> bool {
    e.code().is_some_and(|c| NOT_FOUND_YET.contains(&c))
}

/// Runs an EC2 call naming resources made moments ago, again while EC2 does not know them yet.
/// Only for ids this run has just created or read: for a resource deleted by hand, the call
/// fails after [`Backoff::READ_AFTER_CREATE`].
pub async fn naming_new<T, F, Fut>(call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    retry_when(Backoff::READ_AFTER_CREATE, not_found_yet, call).await
}

/// Applies the wanted tags to an existing resource (CreateTags adds or overwrites).
pub async fn put_tags(cx: &Context, key: &ResourceKey, id: &str, name: &str) -> Result<(), Error> {
    naming_new(|| async {
        cx.aws
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(tags(cx, name)))
            .send()
            .await
            .step(key, "CreateTags")
    })
    .await?;
    Ok(())
}

/// How long AWS may take to release the network interfaces of deleted VPC functions.
pub const ENI_RELEASE: Backoff = Backoff {
    first: Duration::from_secs(2),
    max: Duration::from_secs(30),
    total: Duration::from_secs(50 * 60),
};

/// Deletes a VPC-bound resource that AWS refuses with `DependencyViolation` while network
/// interfaces still use it: detached Lambda interfaces are deleted, in-use ones waited for
/// (after VPC functions are deleted, AWS releases theirs within 20 to 45 minutes).
pub async fn delete_when_released<F, Fut>(
    cx: &Context,
    key: &ResourceKey,
    eni_filter: Filter,
    what: String,
    delete: F,
) -> Result<(), Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let spinner = cx.spinner(format!("deleting {what}"));
    // The local target answers in seconds, or replays AWS's minutes scaled down.
    let interval = if cx.aws.local {
        Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(2),
            total: Duration::from_secs(10 * 60),
        }
    } else {
        ENI_RELEASE
    };
    retry_when(interval, |e: &Error| e.code() == Some("DependencyViolation"), || async {
        match delete().await {
            Err(e) if e.code() == Some("DependencyViolation") => {
                match release_lambda_interfaces(cx, key, eni_filter.clone()).await {
                    Ok(waiting) => spinner.set_message(format!(
                        "deleting {what}: waiting for {waiting} network interface(s) to be released"
                    )),
                    // A failed look at the interfaces does not end a wait of many minutes.
                    Err(read) if crate::engine::wait::transient(&read) => {
                        tracing::warn!(resource = %key, error = %read, "could not list the network interfaces; trying again");
                    }
                    Err(read) => return Err(read),
                }
                Err(e)
            }
            other => other,
        }
    })
    .await
}

/// Deletes detached interfaces Lambda left behind; returns how many are still in use.
async fn release_lambda_interfaces(
    cx: &Context,
    key: &ResourceKey,
    filter: Filter,
) -> Result<usize, Error> {
    let out = cx
        .aws
        .ec2
        .describe_network_interfaces()
        .filters(filter)
        .send()
        .await
        .step(key, "DescribeNetworkInterfaces")?;
    let mut in_use = 0;
    for eni in out.network_interfaces() {
        let lambda = eni
            .description()
            .is_some_and(|d| d.starts_with("AWS Lambda VPC ENI"));
        if lambda && eni.status() == Some(&NetworkInterfaceStatus::Available) {
            if let Some(id) = eni.network_interface_id() {
                cx.aws
                    .ec2
                    .delete_network_interface()
                    .network_interface_id(id)
                    .send()
                    .await
                    .step(key, "DeleteNetworkInterface")?;
            }
        } else {
            in_use += 1;
        }
    }
    Ok(in_use)
}
