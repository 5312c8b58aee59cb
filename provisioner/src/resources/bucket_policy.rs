//! The site bucket's policy (console step S7): only this distribution may read, through OAC,
//! and every request without TLS is denied.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::bucket;
use crate::engine::retry::error_code;
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Error, FieldDiff, Planned, Resource, ResourceKey,
};
use crate::policy;

pub struct BucketPolicy {
    pub key: ResourceKey,
    pub bucket: ResourceKey,
    pub bucket_name: String,
    pub distribution: ResourceKey,
    /// Deny every request made without TLS. Off only on the local emulator, which speaks
    /// plain HTTP (there the statement would deny CloudFront's own reads).
    pub tls_only: bool,
}

/// The document CloudFront's console proposes for OAC, scoped to one distribution, plus a
/// TLS-only statement.
pub fn document(bucket: &str, distribution_arn: &str, tls_only: bool) -> Value {
    let mut doc = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowCloudFrontServicePrincipalReadOnly",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/*"),
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}}
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }
        ]
    });
    if !tls_only {
        doc["Statement"].as_array_mut().expect("statements").pop();
    }
    doc
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
        vec![self.bucket.clone(), self.distribution.clone()]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let bucket = self.bucket_name.clone();
        let Some(arn) = cx.output(&self.distribution, "arn") else {
            return Ok(Planned::create(self.key.clone(), bucket));
        };
        let wanted = document(&bucket, &arn, self.tls_only);
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
        let arn = cx.require(&self.key, &self.distribution, "arn")?;
        let policy = document(bucket, &arn, self.tls_only).to_string();
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
        let doc = document("demo-site", "arn:aws:cloudfront::1:distribution/E1", true);
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
        let local = document("demo-site", "arn:aws:cloudfront::1:distribution/E1", false);
        assert_eq!(local["Statement"].as_array().unwrap().len(), 1);
    }
}
