//! A stack bucket's policy: every request without TLS is denied, and for a bucket served by
//! CloudFront (console step S7) only that distribution may read, through OAC.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::bucket;
use crate::engine::retry::error_code;
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Error, FieldDiff, Planned, Resource, ResourceKey,
};
use crate::policy;
use crate::template::{CfnResource, Part};

pub struct BucketPolicy {
    pub key: ResourceKey,
    pub bucket: ResourceKey,
    pub bucket_name: String,
    /// The distribution that reads the bucket through OAC, if it is served.
    pub reader: Option<ResourceKey>,
    /// Deny every request made without TLS. Off only on the local emulator, which speaks
    /// plain HTTP (there the statement would deny CloudFront's own reads).
    pub tls_only: bool,
}

/// The document CloudFront's console proposes for OAC, scoped to one distribution (when
/// `reader_arn` is given), plus a TLS-only statement.
pub fn document(bucket: &str, reader_arn: Option<&str>, tls_only: bool) -> Value {
    let mut statements = Vec::new();
    if let Some(arn) = reader_arn {
        statements.push(json!({
            "Sid": "AllowCloudFrontServicePrincipalReadOnly",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{bucket}/*"),
            "Condition": {"StringEquals": {"AWS:SourceArn": arn}}
        }));
    }
    if tls_only {
        statements.push(json!({
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Whether a bucket needs a policy at all: a data bucket on the plain-HTTP emulator has none
/// (an empty policy is refused by S3).
pub fn needed(served: bool, tls_only: bool) -> bool {
    served || tls_only
}

impl BucketPolicy {
    async fn live(&self, cx: &Context, bucket: &str) -> Result<Option<Value>, Error> {
        match cx.aws.s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => Ok(Some(
                serde_json::from_str(out.policy().unwrap_or("{}")).unwrap_or(Value::Null),
            )),
            Err(e) if matches!(error_code(&e), Some("NoSuchBucketPolicy" | "NoSuchBucket")) => {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "GetBucketPolicy"),
        }
    }
}

#[async_trait]
impl Resource for BucketPolicy {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut keys = vec![self.bucket.clone()];
        keys.extend(self.reader.clone());
        keys
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let bucket = self.bucket_name.clone();
        let arn = match &self.reader {
            Some(reader) => match cx.output(reader, "arn") {
                Some(arn) => Some(arn),
                None => return Ok(Planned::create(self.key.clone(), bucket)),
            },
            None => None,
        };
        let wanted = document(&bucket, arn.as_deref(), self.tls_only);
        let Some(live) = self.live(cx, &bucket).await? else {
            return Ok(Planned::create(self.key.clone(), bucket));
        };
        let changes = if policy::same(&wanted, &live) {
            vec![]
        } else {
            vec![FieldDiff::new(
                "Policy",
                policy::normalize(&wanted),
                policy::normalize(&live),
            )]
        };
        Ok(Planned::from_diff(self.key.clone(), bucket, changes))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
        let bucket = &self.bucket_name;
        let arn = match &self.reader {
            Some(reader) => Some(cx.require(&self.key, reader, "arn")?),
            None => None,
        };
        let policy = document(bucket, arn.as_deref(), self.tls_only).to_string();
        bucket::configure(
            cx,
            bucket,
            |_| false,
            || async {
                cx.aws
                    .s3
                    .put_bucket_policy()
                    .bucket(bucket)
                    .policy(&policy)
                    .send()
                    .await
                    .step(&self.key, "PutBucketPolicy")
            },
        )
        .await?;
        Ok(())
    }

    /// `AWS::S3::BucketPolicy` with the same document. The bucket is named by its literal
    /// name (see `Bucket::known_outputs`), so the order comes from `DependsOn`.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let arn = match &self.reader {
            Some(reader) => Some(
                cx.require(&self.key, reader, "arn")
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let policy = CfnResource::new(
            &self.key,
            "AWS::S3::BucketPolicy",
            json!({
                "Bucket": self.bucket_name,
                "PolicyDocument": document(&self.bucket_name, arn.as_deref(), self.tls_only),
            }),
        )
        .after(&self.depends_on());
        Ok(vec![Part::Resource(policy)])
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let bucket = &self.bucket_name;
        if self.live(cx, bucket).await?.is_none() {
            return Ok(Deleted::Absent);
        }
        let _one_at_a_time = cx.exclusive(format!("s3-bucket:{bucket}")).await;
        match cx.aws.s3.delete_bucket_policy().bucket(bucket).send().await {
            Ok(_) => Ok(Deleted::Deleted),
            Err(e) if error_code(&e) == Some("NoSuchBucket") => Ok(Deleted::Absent),
            Err(e) => Err(e).step(&self.key, "DeleteBucketPolicy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_distribution_reads_and_only_over_tls() {
        let doc = document(
            "demo-site",
            Some("arn:aws:cloudfront::1:distribution/E1"),
            true,
        );
        let allow = &doc["Statement"][0];
        assert_eq!(allow["Action"], "s3:GetObject");
        assert_eq!(allow["Resource"], "arn:aws:s3:::demo-site/*");
        assert_eq!(
            allow["Condition"]["StringEquals"]["AWS:SourceArn"],
            "arn:aws:cloudfront::1:distribution/E1"
        );
        let deny = &doc["Statement"][1];
        assert_eq!(deny["Effect"], "Deny");
        assert_eq!(deny["Condition"]["Bool"]["aws:SecureTransport"], "false");
        let local = document(
            "demo-site",
            Some("arn:aws:cloudfront::1:distribution/E1"),
            false,
        );
        assert_eq!(local["Statement"].as_array().unwrap().len(), 1);
        assert!(needed(true, false));
    }

    #[test]
    fn the_template_names_the_distribution_it_lets_read() {
        let stack = crate::systems::tests::context(false).stack.clone();
        let cx = Context::symbolic(stack, vec![]);
        let bucket = ResourceKey::new("bucket", "stt-site");
        let distribution = ResourceKey::new("distribution", "stt-site");
        let policy = BucketPolicy {
            key: ResourceKey::new("bucket_policy", "stt-site"),
            bucket: bucket.clone(),
            bucket_name: "demo-site".into(),
            reader: Some(distribution.clone()),
            tls_only: true,
        };
        let Part::Resource(r) = policy.cloudformation(&cx).unwrap().remove(0) else {
            panic!("a resource");
        };
        assert_eq!(r.type_name, "AWS::S3::BucketPolicy");
        assert_eq!(r.properties["Bucket"], "demo-site");
        let statements = &r.properties["PolicyDocument"]["Statement"];
        assert_eq!(
            statements[0]["Condition"]["StringEquals"]["AWS:SourceArn"],
            crate::template::output_reference(&distribution, "arn")
        );
        assert_eq!(statements[1]["Sid"], "DenyInsecureTransport");
        // The bucket is named literally: the order must be declared.
        assert!(r.depends_on.contains(&crate::template::logical_id(&bucket)));
    }

    #[test]
    fn a_data_bucket_only_refuses_requests_without_tls() {
        let doc = document("demo-audio", None, true);
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0]["Sid"], "DenyInsecureTransport");
        assert_eq!(
            statements[0]["Resource"],
            json!(["arn:aws:s3:::demo-audio", "arn:aws:s3:::demo-audio/*"])
        );
        // On the plain-HTTP emulator a data bucket has no policy at all.
        assert!(!needed(false, false));
    }
}
