//! An S3 bucket: private (all public access blocked, ACLs off), encrypted by default, tagged,
//! optionally with static website hosting (console steps S1, S3, S8, V1) and, for data
//! buckets, a retention rule (see [`super::bucket_protection`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ErrorDocument, IndexDocument,
    ObjectIdentifier, PublicAccessBlockConfiguration, Tag, Tagging, WebsiteConfiguration,
};
use serde_json::{json, Value};

use super::bucket_protection::{self as protection, Lifecycle};
use super::{owned_by, tag_diff, OWNER_METADATA};
use crate::engine::retry::{error_code, retry_when, Backoff};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part};

/// Writes one of a bucket's configurations (tags, public access block, website, policy, CORS,
/// notifications): one at a time per bucket, since S3 answers overlapping ones with
/// `OperationAborted`, and again while a bucket made moments ago answers `NoSuchBucket`.
/// `also` names further answers to wait out.
pub async fn configure<T, F, Fut>(
    cx: &Context,
    bucket: &str,
    also: impl Fn(&Error) -> bool,
    write: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let _one_at_a_time = cx.exclusive(format!("s3-bucket:{bucket}")).await;
    retry_when(
        Backoff::READ_AFTER_CREATE,
        |e: &Error| matches!(e.code(), Some("NoSuchBucket" | "OperationAborted")) || also(e),
        write,
    )
    .await
}

/// Index and error documents of S3 static website hosting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Website {
    pub index_document: String,
    pub error_document: String,
}

pub struct Bucket {
    pub key: ResourceKey,
    pub name: String,
    pub website: Option<Website>,
    /// The retention rule of a data bucket; `None` for buckets of the stack's own files.
    pub lifecycle: Option<Lifecycle>,
}

/// What a bucket looks like now.
struct Live {
    tags: BTreeMap<String, String>,
    public_access_block: [Option<bool>; 4],
    website: Option<Website>,
    protection: protection::Live,
}

const PUBLIC_ACCESS_FIELDS: [&str; 4] = [
    "PublicAccessBlock.BlockPublicAcls",
    "PublicAccessBlock.IgnorePublicAcls",
    "PublicAccessBlock.BlockPublicPolicy",
    "PublicAccessBlock.RestrictPublicBuckets",
];

/// Every stack bucket blocks all public access, whatever its policy or ACLs say.
fn public_access_block() -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build()
}

/// checkov's access-logging check (CKV_AWS_18) on every stack bucket.
const NO_ACCESS_LOG: &str = "No server access log, as the SDK engine sets none: the stack keeps \
     no log bucket, and a log would hold requesters' IP addresses, personal data with no \
     retention of its own. Who may read is decided by the bucket policy and the roles";
/// checkov's versioning check (CKV_AWS_21) on a data bucket.
const NO_VERSIONING_DATA: &str = "Not versioned on purpose: the data is kept as long as \
     stack.yaml's retention says and no longer (the lifecycle rule, docs/security.md \
     Retention); versions would keep deleted and expired objects, personal data included";
/// checkov's versioning check (CKV_AWS_21) on a bucket of the stack's own files.
const NO_VERSIONING_SITE: &str = "Not versioned: the bucket holds only the stack's own files, \
     uploaded again from the repository by every deploy";

impl Bucket {
    /// Whether the bucket holds data besides the stack's own files (its retention rule says
    /// so): such a bucket outlives a deleted CloudFormation stack.
    fn holds_data(&self) -> bool {
        self.lifecycle.is_some()
    }

    /// The bucket's REST endpoint, the origin CloudFront reaches it by (OAC needs the REST
    /// endpoint, not the website endpoint).
    pub fn regional_domain(name: &str, region: &str) -> String {
        format!("{name}.s3.{region}.amazonaws.com")
    }

    /// Whether the bucket exists in this account, found without touching buckets of others.
    async fn exists(&self, cx: &Context) -> Result<bool, Error> {
        let out = cx
            .aws
            .s3
            .list_buckets()
            .prefix(&self.name)
            .send()
            .await
            .step(&self.key, "ListBuckets")?;
        Ok(out
            .buckets()
            .iter()
            .any(|b| b.name() == Some(self.name.as_str())))
    }

    async fn tags(&self, cx: &Context) -> Result<BTreeMap<String, String>, Error> {
        match cx
            .aws
            .s3
            .get_bucket_tagging()
            .bucket(&self.name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect()),
            Err(e) if error_code(&e) == Some("NoSuchTagSet") => Ok(BTreeMap::new()),
            Err(e) => Err(e).step(&self.key, "GetBucketTagging"),
        }
    }

    /// The bucket's settings, read with one call per setting, all at once (a no-op `up`
    /// spends most of its time waiting on reads).
    async fn observe(&self, cx: &Context) -> Result<Live, Error> {
        let (tags, public_access_block, website, protection) = tokio::try_join!(
            self.tags(cx),
            self.public_access_block(cx),
            self.website(cx),
            protection::observe(cx, &self.key, &self.name),
        )?;
        Ok(Live {
            tags,
            public_access_block,
            website,
            protection,
        })
    }

    async fn public_access_block(&self, cx: &Context) -> Result<[Option<bool>; 4], Error> {
        let s3 = &cx.aws.s3;
        Ok(
            match s3.get_public_access_block().bucket(&self.name).send().await {
                Ok(out) => {
                    let c = out.public_access_block_configuration();
                    [
                        c.and_then(|c| c.block_public_acls()),
                        c.and_then(|c| c.ignore_public_acls()),
                        c.and_then(|c| c.block_public_policy()),
                        c.and_then(|c| c.restrict_public_buckets()),
                    ]
                }
                Err(e) if error_code(&e) == Some("NoSuchPublicAccessBlockConfiguration") => {
                    [None; 4]
                }
                Err(e) => return Err(e).step(&self.key, "GetPublicAccessBlock"),
            },
        )
    }

    async fn website(&self, cx: &Context) -> Result<Option<Website>, Error> {
        let s3 = &cx.aws.s3;
        Ok(
            match s3.get_bucket_website().bucket(&self.name).send().await {
                Ok(out) => Some(Website {
                    index_document: out
                        .index_document()
                        .map(|d| d.suffix().to_owned())
                        .unwrap_or_default(),
                    error_document: out
                        .error_document()
                        .map(|d| d.key().to_owned())
                        .unwrap_or_default(),
                }),
                Err(e) if error_code(&e) == Some("NoSuchWebsiteConfiguration") => None,
                Err(e) => return Err(e).step(&self.key, "GetBucketWebsite"),
            },
        )
    }

    fn publish(&self, cx: &Context) {
        cx.publish(&self.key, "name", &self.name);
        cx.publish(&self.key, "arn", format!("arn:aws:s3:::{}", self.name));
        cx.publish(
            &self.key,
            "regional_domain",
            Self::regional_domain(&self.name, &cx.aws.region),
        );
    }

    /// A bucket that exists in this account but lacks the ownership tag belongs to the stack
    /// only if it is empty and untagged: a create interrupted before it could be tagged.
    async fn adoptable(&self, cx: &Context, live: &Live) -> Result<bool, Error> {
        if !live.tags.is_empty() {
            return Ok(false);
        }
        let out = cx
            .aws
            .s3
            .list_object_versions()
            .bucket(&self.name)
            .max_keys(1)
            .send()
            .await
            .step(&self.key, "ListObjectVersions")?;
        Ok(out.versions().is_empty() && out.delete_markers().is_empty())
    }

    fn s3_tags(cx: &Context) -> Vec<Tag> {
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

    async fn create(&self, cx: &Context) -> Result<(), Error> {
        let mut config = CreateBucketConfiguration::builder().set_tags(Some(Self::s3_tags(cx)));
        // us-east-1 is the default location and must not be named.
        if cx.aws.region != "us-east-1" {
            config =
                config.location_constraint(BucketLocationConstraint::from(cx.aws.region.as_str()));
        }
        let result = cx
            .aws
            .s3
            .create_bucket()
            .bucket(&self.name)
            .create_bucket_configuration(config.build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_bucket_already_exists()) =>
            {
                Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                    "the bucket name {} is taken by another AWS account; choose another stack name",
                    self.name
                ),
                })
            }
            Err(e) => Err(e).step(&self.key, "CreateBucket"),
        }
    }

    async fn put_tags(&self, cx: &Context) -> Result<(), Error> {
        configure(
            cx,
            &self.name,
            |_| false,
            || async {
                // PutBucketTagging replaces the whole set: keep tags added by hand.
                let mut tags = self.tags(cx).await?;
                tags.extend(cx.tags());
                let tag_set = tags
                    .into_iter()
                    .map(|(k, v)| {
                        Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .expect("key and value set")
                    })
                    .collect();
                let tagging = Tagging::builder()
                    .set_tag_set(Some(tag_set))
                    .build()
                    .expect("tag set given");
                cx.aws
                    .s3
                    .put_bucket_tagging()
                    .bucket(&self.name)
                    .tagging(tagging)
                    .send()
                    .await
                    .step(&self.key, "PutBucketTagging")
            },
        )
        .await?;
        Ok(())
    }

    async fn put_public_access_block(&self, cx: &Context) -> Result<(), Error> {
        let config = public_access_block();
        configure(
            cx,
            &self.name,
            |_| false,
            || async {
                cx.aws
                    .s3
                    .put_public_access_block()
                    .bucket(&self.name)
                    .public_access_block_configuration(config.clone())
                    .send()
                    .await
                    .step(&self.key, "PutPublicAccessBlock")
            },
        )
        .await?;
        Ok(())
    }

    async fn put_website(&self, cx: &Context) -> Result<(), Error> {
        let s3 = &cx.aws.s3;
        match &self.website {
            Some(w) => {
                let config = WebsiteConfiguration::builder()
                    .index_document(
                        IndexDocument::builder()
                            .suffix(&w.index_document)
                            .build()
                            .expect("suffix set"),
                    )
                    .error_document(
                        ErrorDocument::builder()
                            .key(&w.error_document)
                            .build()
                            .expect("key set"),
                    )
                    .build();
                configure(
                    cx,
                    &self.name,
                    |_| false,
                    || async {
                        s3.put_bucket_website()
                            .bucket(&self.name)
                            .website_configuration(config.clone())
                            .send()
                            .await
                            .step(&self.key, "PutBucketWebsite")
                    },
                )
                .await?;
            }
            None => {
                configure(
                    cx,
                    &self.name,
                    |_| false,
                    || async {
                        s3.delete_bucket_website()
                            .bucket(&self.name)
                            .send()
                            .await
                            .step(&self.key, "DeleteBucketWebsite")
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes every version of every object, refusing if any was not put there by the stack
    /// and the user did not consent to losing it.
    async fn empty(&self, cx: &Context, options: &DeleteOptions) -> Result<(), Error> {
        let s3 = &cx.aws.s3;
        let mut versions: Vec<(String, Option<String>)> = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = s3
                .list_object_versions()
                .bucket(&self.name)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .step(&self.key, "ListObjectVersions")?;
            for v in page.versions() {
                versions.push((
                    v.key().unwrap_or_default().to_owned(),
                    v.version_id().map(str::to_owned),
                ));
            }
            for m in page.delete_markers() {
                versions.push((
                    m.key().unwrap_or_default().to_owned(),
                    m.version_id().map(str::to_owned),
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        if versions.is_empty() {
            return Ok(());
        }
        if !options.delete_data {
            let mut foreign = Vec::new();
            let keys: std::collections::BTreeSet<&String> =
                versions.iter().map(|(k, _)| k).collect();
            for key in keys {
                if !self.put_by_stack(cx, key).await? {
                    foreign.push(key.clone());
                }
            }
            if !foreign.is_empty() {
                let examples: Vec<&str> = foreign.iter().take(3).map(String::as_str).collect();
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                        "bucket {} holds {} object(s) the stack did not put there (e.g. {}); \
                         they are kept. Run `provision down --delete-data` to delete them too",
                        self.name,
                        foreign.len(),
                        examples.join(", ")
                    ),
                });
            }
        }
        for chunk in versions.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|(k, v)| {
                    ObjectIdentifier::builder()
                        .key(k)
                        .set_version_id(v.clone())
                        .build()
                        .expect("key set")
                })
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects set");
            let out = s3
                .delete_objects()
                .bucket(&self.name)
                .delete(delete)
                .send()
                .await
                .step(&self.key, "DeleteObjects")?;
            if let Some(e) = out.errors().first() {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                        "could not delete {}: {}",
                        e.key().unwrap_or("?"),
                        e.message().unwrap_or("?")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether the current version of `key` carries the stack's metadata mark.
    async fn put_by_stack(&self, cx: &Context, key: &str) -> Result<bool, Error> {
        match cx
            .aws
            .s3
            .head_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(head
                .metadata()
                .and_then(|m| m.get(OWNER_METADATA))
                .map(String::as_str)
                == Some(cx.stack_name())),
            // Only old versions or a delete marker left: it is not the stack's to judge.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(e) => Err(e).step(&self.key, "HeadObject"),
        }
    }
}

#[async_trait]
impl Resource for Bucket {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        if !self.exists(cx).await? {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        }
        let live = self.observe(cx).await?;
        if !owned_by(&live.tags, cx.stack_name()) && !self.adoptable(cx, &live).await? {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!(
                    "bucket {} exists but is not tagged as this stack's; it is left alone",
                    self.name
                ),
            });
        }
        self.publish(cx);
        let mut diff = Diff::default();
        diff.extend(tag_diff(&cx.tags(), &live.tags));
        for (field, actual) in PUBLIC_ACCESS_FIELDS.iter().zip(live.public_access_block) {
            diff.field(field, Some(true), actual);
        }
        let website_field =
            |w: &Option<Website>, f: fn(&Website) -> &String| w.as_ref().map(f).cloned();
        diff.field(
            "Website.IndexDocument",
            website_field(&self.website, |w| &w.index_document),
            website_field(&live.website, |w| &w.index_document),
        );
        diff.field(
            "Website.ErrorDocument",
            website_field(&self.website, |w| &w.error_document),
            website_field(&live.website, |w| &w.error_document),
        );
        protection::diff(&mut diff, self.lifecycle.as_ref(), &live.protection);
        Ok(Planned::from_diff(
            self.key.clone(),
            self.name.clone(),
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let create = planned.action == Action::Create;
        let changed = |prefix: &str| create || planned.touches(prefix);
        if create {
            self.create(cx).await?;
        }
        // Tags first: they are what marks the bucket as the stack's after a crash.
        if changed("Tags.") {
            self.put_tags(cx).await?;
        }
        if changed("PublicAccessBlock.") {
            self.put_public_access_block(cx).await?;
        }
        if changed("OwnershipControls.") {
            protection::put_ownership(cx, &self.key, &self.name).await?;
        }
        if changed("Encryption.") {
            protection::put_encryption(cx, &self.key, &self.name).await?;
        }
        if changed("Lifecycle.") && (self.lifecycle.is_some() || !create) {
            protection::put_lifecycle(cx, &self.key, &self.name, self.lifecycle.as_ref()).await?;
        }
        if changed("Website.") && (self.website.is_some() || !create) {
            self.put_website(cx).await?;
        }
        self.publish(cx);
        Ok(())
    }

    /// `AWS::S3::Bucket` with everything `apply` writes; CORS and notifications are merged in
    /// by [`super::bucket_cors`] and [`super::bucket_notification`]. A data bucket is
    /// `Retain`ed: `down` keeps a bucket holding objects the stack did not put there unless
    /// `--delete-data` is given, and CloudFormation has no such consent, so the bucket and its
    /// recordings, transcripts or videos outlive the stack. The site bucket holds only the
    /// stack's files, which `down` deletes with it: `Delete` (CloudFormation refuses to delete
    /// a bucket that is not empty, so its files go first; nothing else is lost).
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let block = public_access_block();
        let mut properties = serde_json::Map::new();
        properties.insert("BucketName".into(), json!(self.name));
        properties.insert(
            "PublicAccessBlockConfiguration".into(),
            json!({
                "BlockPublicAcls": block.block_public_acls(),
                "IgnorePublicAcls": block.ignore_public_acls(),
                "BlockPublicPolicy": block.block_public_policy(),
                "RestrictPublicBuckets": block.restrict_public_buckets(),
            }),
        );
        properties.extend(protection::cloudformation(self.lifecycle.as_ref()));
        if let Some(w) = &self.website {
            properties.insert(
                "WebsiteConfiguration".into(),
                json!({"IndexDocument": w.index_document, "ErrorDocument": w.error_document}),
            );
        }
        properties.insert("Tags".into(), template::tags(cx));
        let mut bucket = CfnResource::new(&self.key, "AWS::S3::Bucket", Value::Object(properties))
            .skip_check("CKV_AWS_18", NO_ACCESS_LOG);
        bucket = if self.holds_data() {
            bucket
                .keep("Retain")
                .skip_check("CKV_AWS_21", NO_VERSIONING_DATA)
        } else {
            bucket.skip_check("CKV_AWS_21", NO_VERSIONING_SITE)
        };
        Ok(vec![Part::Resource(bucket)])
    }

    /// The name, ARN and REST domain follow from the deterministic name: the template uses
    /// them as literals, since a reference would close a cycle (bucket, notification, Lambda
    /// permission, function, role, bucket ARN).
    fn known_outputs(&self, cx: &Context) {
        self.publish(cx);
    }

    async fn delete(&self, cx: &Context, options: &DeleteOptions) -> Result<Deleted, Error> {
        if !self.exists(cx).await? {
            return Ok(Deleted::Absent);
        }
        let tags = self.tags(cx).await?;
        if !owned_by(&tags, cx.stack_name()) {
            let live = Live {
                tags,
                public_access_block: [None; 4],
                website: None,
                protection: Default::default(),
            };
            if !self.adoptable(cx, &live).await? {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                        "bucket {} is not tagged as this stack's; it is left alone",
                        self.name
                    ),
                });
            }
        }
        self.empty(cx, options).await?;
        match cx.aws.s3.delete_bucket().bucket(&self.name).send().await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if error_code(&e) == Some("NoSuchBucket") => Ok(Deleted::Absent),
            Err(e) => Err(e).step(&self.key, "DeleteBucket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::reference;

    fn rendered(bucket: &Bucket, cx: &Context) -> CfnResource {
        match bucket.cloudformation(cx).unwrap().remove(0) {
            Part::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_data_bucket_outlives_the_stack_and_the_site_bucket_does_not() {
        let cx = crate::systems::tests::context(false);
        let data = Bucket {
            key: ResourceKey::new("bucket", "stt-audio"),
            name: "demo-audio-111122223333".into(),
            website: None,
            lifecycle: Some(Lifecycle::data(Some(30))),
        };
        let r = rendered(&data, &cx);
        assert_eq!(r.type_name, "AWS::S3::Bucket");
        assert_eq!(r.keep, Some("Retain"));
        let p = &r.properties;
        assert_eq!(p["BucketName"], "demo-audio-111122223333");
        for field in [
            "BlockPublicAcls",
            "IgnorePublicAcls",
            "BlockPublicPolicy",
            "RestrictPublicBuckets",
        ] {
            assert_eq!(p["PublicAccessBlockConfiguration"][field], true, "{field}");
        }
        assert_eq!(
            p["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"],
            30
        );
        assert!(p.get("WebsiteConfiguration").is_none());
        assert!(p["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["Key"] == crate::engine::OWNER_TAG));

        let site = Bucket {
            key: ResourceKey::new("bucket", "stt-site"),
            name: "demo-site-111122223333".into(),
            website: Some(Website {
                index_document: "index.html".into(),
                error_document: "error.html".into(),
            }),
            lifecycle: None,
        };
        let r = rendered(&site, &cx);
        assert_eq!(r.keep, None, "only the stack's files: deleted with it");
        assert_eq!(
            r.properties["WebsiteConfiguration"],
            json!({"IndexDocument": "index.html", "ErrorDocument": "error.html"})
        );
        assert!(r.properties.get("LifecycleConfiguration").is_none());
        let skipped: Vec<&str> = r.skipped_checks.iter().map(|(id, _)| *id).collect();
        assert_eq!(skipped, ["CKV_AWS_18", "CKV_AWS_21"]);
    }

    #[test]
    fn the_name_arn_and_domain_are_known_before_the_deploy() {
        let stack = crate::systems::tests::context(false).stack.clone();
        let cx = Context::symbolic(stack, vec![]);
        let key = ResourceKey::new("bucket", "vod-source");
        let bucket = Bucket {
            key: key.clone(),
            name: "demo-vod-source".into(),
            website: None,
            lifecycle: None,
        };
        bucket.known_outputs(&cx);
        assert_eq!(
            cx.output(&key, "arn").as_deref(),
            Some("arn:aws:s3:::demo-vod-source")
        );
        assert_eq!(
            cx.output(&key, "regional_domain"),
            Some(format!(
                "demo-vod-source.s3.{}.amazonaws.com",
                reference("AWS::Region")
            ))
        );
    }
}
