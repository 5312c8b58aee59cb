//! What protects the objects of a stack bucket besides its policy: object ownership (ACLs
//! disabled), default encryption, and for data buckets a lifecycle rule that ends the keeping
//! of personal data and of abandoned multipart uploads. Read and written by [`super::bucket`].

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, ObjectOwnership, OwnershipControls,
    OwnershipControlsRule, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};

use serde_json::{json, Map, Value};

use super::bucket::configure;
use crate::engine::retry::error_code;
use crate::engine::{AwsResultExt, Context, Diff, Error, ResourceKey};

/// Object ownership every stack bucket has: the bucket owner owns every object and ACLs are
/// off, so access is decided by policies alone (S3's default for buckets made since April
/// 2023; declared so a bucket changed by hand is drift).
pub const OWNERSHIP: &str = "BucketOwnerEnforced";

/// Default encryption every stack bucket has: SSE-S3. SSE-KMS with a key of the stack's would
/// add a key policy to every reader (CloudFront's OAC, MediaConvert, Transcribe) and a cost per
/// request; it stays the operator's choice (docs/security.md).
pub const SSE_ALGORITHM: &str = "AES256";

/// The id of the stack's lifecycle rule; rules of other ids, added by hand, are kept.
pub const LIFECYCLE_RULE_ID: &str = "provision-retention";

/// The stack's lifecycle rule on a data bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    /// Objects are deleted this many days after they were written; `None` keeps them.
    pub expire_after_days: Option<u32>,
    /// Parts of multipart uploads never completed are deleted after this many days (S3 keeps
    /// and bills them forever otherwise).
    pub abort_incomplete_uploads_after_days: u32,
}

impl Lifecycle {
    /// A data bucket's rule: objects kept `days` (or forever), unfinished uploads one day.
    pub fn data(days: Option<u32>) -> Lifecycle {
        Lifecycle {
            expire_after_days: days,
            abort_incomplete_uploads_after_days: 1,
        }
    }
}

/// What the three settings look like now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub ownership: Option<String>,
    pub sse_algorithm: Option<String>,
    /// The stack's rule: (enabled, expiration days, abort-incomplete days).
    pub lifecycle: Option<(bool, Option<i32>, Option<i32>)>,
}

/// The three settings, read at once.
pub async fn observe(cx: &Context, key: &ResourceKey, bucket: &str) -> Result<Live, Error> {
    let (ownership, sse_algorithm, rules) = tokio::try_join!(
        ownership(cx, key, bucket),
        sse_algorithm(cx, key, bucket),
        lifecycle_rules(cx, key, bucket),
    )?;
    let lifecycle = rules
        .iter()
        .find(|r| r.id() == Some(LIFECYCLE_RULE_ID))
        .map(|r| {
            (
                *r.status() == ExpirationStatus::Enabled,
                r.expiration().and_then(|e| e.days()),
                r.abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation()),
            )
        });
    Ok(Live {
        ownership,
        sse_algorithm,
        lifecycle,
    })
}

async fn ownership(cx: &Context, key: &ResourceKey, bucket: &str) -> Result<Option<String>, Error> {
    match cx
        .aws
        .s3
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .ownership_controls()
            .and_then(|c| c.rules().first())
            .map(|r| r.object_ownership().as_str().to_owned())),
        Err(e) if error_code(&e) == Some("OwnershipControlsNotFoundError") => Ok(None),
        Err(e) => Err(e).step(key, "GetBucketOwnershipControls"),
    }
}

async fn sse_algorithm(
    cx: &Context,
    key: &ResourceKey,
    bucket: &str,
) -> Result<Option<String>, Error> {
    match cx
        .aws
        .s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_owned())),
        Err(e) if error_code(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => {
            Ok(None)
        }
        Err(e) => Err(e).step(key, "GetBucketEncryption"),
    }
}

async fn lifecycle_rules(
    cx: &Context,
    key: &ResourceKey,
    bucket: &str,
) -> Result<Vec<LifecycleRule>, Error> {
    match cx
        .aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out.rules().to_vec()),
        Err(e) if error_code(&e) == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
        Err(e) => Err(e).step(key, "GetBucketLifecycleConfiguration"),
    }
}

/// The differences between what the bucket should have and `live`.
pub fn diff(diff: &mut Diff, wanted: Option<&Lifecycle>, live: &Live) {
    diff.field(
        "OwnershipControls.ObjectOwnership",
        Some(OWNERSHIP),
        live.ownership.as_deref(),
    );
    diff.field(
        "Encryption.SSEAlgorithm",
        Some(SSE_ALGORITHM),
        live.sse_algorithm.as_deref(),
    );
    let field = |name: &str| format!("Lifecycle.{LIFECYCLE_RULE_ID}.{name}");
    let (enabled, expire, abort) = match live.lifecycle {
        Some((enabled, expire, abort)) => (Some(enabled), expire, abort),
        None => (None, None, None),
    };
    match wanted {
        Some(w) => {
            diff.field(&field("Enabled"), Some(true), enabled);
            diff.field(
                &field("ExpirationDays"),
                w.expire_after_days.map(|d| d as i32),
                expire,
            );
            diff.field(
                &field("AbortIncompleteMultipartUploadDays"),
                Some(w.abort_incomplete_uploads_after_days as i32),
                abort,
            );
        }
        // A rule of ours on a bucket that should have none (its retention was removed from
        // stack.yaml by setting nothing): it goes.
        None => diff.field(&field("Enabled"), None::<bool>, enabled),
    }
}

pub async fn put_ownership(cx: &Context, key: &ResourceKey, bucket: &str) -> Result<(), Error> {
    let controls = OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::from(OWNERSHIP))
                .build()
                .expect("ownership set"),
        )
        .build()
        .expect("rules set");
    configure(
        cx,
        bucket,
        |_| false,
        || async {
            cx.aws
                .s3
                .put_bucket_ownership_controls()
                .bucket(bucket)
                .ownership_controls(controls.clone())
                .send()
                .await
                .step(key, "PutBucketOwnershipControls")
        },
    )
    .await?;
    Ok(())
}

pub async fn put_encryption(cx: &Context, key: &ResourceKey, bucket: &str) -> Result<(), Error> {
    let config = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::from(SSE_ALGORITHM))
                        .build()
                        .expect("algorithm set"),
                )
                .build(),
        )
        .build()
        .expect("rules set");
    configure(
        cx,
        bucket,
        |_| false,
        || async {
            cx.aws
                .s3
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(config.clone())
                .send()
                .await
                .step(key, "PutBucketEncryption")
        },
    )
    .await?;
    Ok(())
}

/// The stack's rule as S3 takes it: the whole bucket (an empty prefix filter).
pub fn rule(wanted: &Lifecycle) -> LifecycleRule {
    LifecycleRule::builder()
        .id(LIFECYCLE_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .set_expiration(
            wanted
                .expire_after_days
                .map(|d| LifecycleExpiration::builder().days(d as i32).build()),
        )
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(wanted.abort_incomplete_uploads_after_days as i32)
                .build(),
        )
        .build()
        .expect("status set")
}

/// The three settings as properties of `AWS::S3::Bucket`, from the same constants and
/// [`rule`] that `apply` writes. CloudFormation owns the whole lifecycle configuration: rules
/// added by hand are not kept there, unlike in [`put_lifecycle`].
pub fn cloudformation(wanted: Option<&Lifecycle>) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "OwnershipControls".into(),
        json!({"Rules": [{"ObjectOwnership": OWNERSHIP}]}),
    );
    properties.insert(
        "BucketEncryption".into(),
        json!({"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_ALGORITHM}}
        ]}),
    );
    if let Some(wanted) = wanted {
        let rule = rule(wanted);
        let mut cfn = Map::new();
        cfn.insert("Id".into(), json!(rule.id()));
        cfn.insert("Status".into(), json!(rule.status().as_str()));
        // An empty prefix is the whole bucket, as no prefix is.
        if let Some(prefix) = rule
            .filter()
            .and_then(|f| f.prefix())
            .filter(|p| !p.is_empty())
        {
            cfn.insert("Prefix".into(), json!(prefix));
        }
        if let Some(days) = rule.expiration().and_then(|e| e.days()) {
            cfn.insert("ExpirationInDays".into(), json!(days));
        }
        if let Some(days) = rule
            .abort_incomplete_multipart_upload()
            .and_then(|a| a.days_after_initiation())
        {
            cfn.insert(
                "AbortIncompleteMultipartUpload".into(),
                json!({"DaysAfterInitiation": days}),
            );
        }
        properties.insert(
            "LifecycleConfiguration".into(),
            json!({"Rules": [Value::Object(cfn)]}),
        );
    }
    properties
}

/// Writes the stack's rule (or removes it when `wanted` is `None`), keeping every other rule:
/// PutBucketLifecycleConfiguration replaces the whole set.
pub async fn put_lifecycle(
    cx: &Context,
    key: &ResourceKey,
    bucket: &str,
    wanted: Option<&Lifecycle>,
) -> Result<(), Error> {
    configure(
        cx,
        bucket,
        |_| false,
        || async {
            let mut rules: Vec<LifecycleRule> = lifecycle_rules(cx, key, bucket)
                .await?
                .into_iter()
                .filter(|r| r.id() != Some(LIFECYCLE_RULE_ID))
                .collect();
            rules.extend(wanted.map(rule));
            let s3 = &cx.aws.s3;
            if rules.is_empty() {
                s3.delete_bucket_lifecycle()
                    .bucket(bucket)
                    .send()
                    .await
                    .step(key, "DeleteBucketLifecycle")?;
                return Ok(());
            }
            let config = BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .expect("rules set");
            s3.put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(config)
                .send()
                .await
                .step(key, "PutBucketLifecycleConfiguration")?;
            Ok(())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(wanted: Option<&Lifecycle>, live: &Live) -> Vec<(String, String, String)> {
        let mut d = Diff::default();
        diff(&mut d, wanted, live);
        d.into_vec()
            .into_iter()
            .map(|f| (f.field, f.expected, f.actual))
            .collect()
    }

    fn protected(lifecycle: Option<(bool, Option<i32>, Option<i32>)>) -> Live {
        Live {
            ownership: Some(OWNERSHIP.into()),
            sse_algorithm: Some(SSE_ALGORITHM.into()),
            lifecycle,
        }
    }

    #[test]
    fn a_bucket_as_declared_has_no_difference() {
        let wanted = Lifecycle::data(Some(30));
        assert!(fields(Some(&wanted), &protected(Some((true, Some(30), Some(1))))).is_empty());
        let kept = Lifecycle::data(None);
        assert!(fields(Some(&kept), &protected(Some((true, None, Some(1))))).is_empty());
        assert!(fields(None, &protected(None)).is_empty());
    }

    #[test]
    fn acls_on_or_no_encryption_or_a_changed_retention_is_drift() {
        let wanted = Lifecycle::data(Some(30));
        let live = Live {
            ownership: Some("ObjectWriter".into()),
            sse_algorithm: None,
            lifecycle: Some((false, Some(365), Some(1))),
        };
        let names: Vec<String> = fields(Some(&wanted), &live)
            .into_iter()
            .map(|(f, _, _)| f)
            .collect();
        assert_eq!(
            names,
            [
                "OwnershipControls.ObjectOwnership",
                "Encryption.SSEAlgorithm",
                "Lifecycle.provision-retention.Enabled",
                "Lifecycle.provision-retention.ExpirationDays",
            ]
        );
        // A missing rule and a rule that should not be there.
        assert_eq!(fields(Some(&wanted), &protected(None)).len(), 3);
        assert_eq!(
            fields(None, &protected(Some((true, Some(30), Some(1))))).len(),
            1
        );
    }

    #[test]
    fn cloudformation_declares_the_rule_apply_writes() {
        let p = cloudformation(Some(&Lifecycle::data(Some(30))));
        assert_eq!(
            p["OwnershipControls"]["Rules"][0]["ObjectOwnership"],
            OWNERSHIP
        );
        assert_eq!(
            p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
                ["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
            SSE_ALGORITHM
        );
        let rule = &p["LifecycleConfiguration"]["Rules"][0];
        assert_eq!(rule["Id"], LIFECYCLE_RULE_ID);
        assert_eq!(rule["Status"], "Enabled");
        assert_eq!(rule["ExpirationInDays"], 30);
        assert_eq!(
            rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
            1
        );
        assert!(rule.get("Prefix").is_none(), "the whole bucket");
        let kept = cloudformation(Some(&Lifecycle::data(None)));
        assert!(kept["LifecycleConfiguration"]["Rules"][0]
            .get("ExpirationInDays")
            .is_none());
        assert!(cloudformation(None).get("LifecycleConfiguration").is_none());
    }

    #[test]
    fn the_rule_covers_the_whole_bucket() {
        let r = rule(&Lifecycle::data(Some(30)));
        assert_eq!(r.id(), Some(LIFECYCLE_RULE_ID));
        assert_eq!(r.filter().and_then(|f| f.prefix()), Some(""));
        assert_eq!(r.expiration().and_then(|e| e.days()), Some(30));
        assert_eq!(
            r.abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation()),
            Some(1)
        );
        assert!(rule(&Lifecycle::data(None)).expiration().is_none());
    }
}
