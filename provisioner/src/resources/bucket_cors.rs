//! A bucket's CORS rule (console step V7): which origins may read the converted videos. By
//! default only the player's own origin; others when `stack.yaml` names them. One rule, owned
//! whole by this resource.

use async_trait::async_trait;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use serde_json::json;

use super::bucket;

use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource, ResourceKey,
};
use crate::template::Part;

/// The one CORS rule, with its lists sorted so that order is not drift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub max_age_seconds: i32,
}

impl Rule {
    pub fn normalized(mut self) -> Rule {
        for list in [
            &mut self.allowed_origins,
            &mut self.allowed_methods,
            &mut self.allowed_headers,
        ] {
            list.sort();
            list.dedup();
        }
        self
    }

    fn from_live(rule: &CorsRule) -> Rule {
        Rule {
            allowed_origins: rule.allowed_origins().to_vec(),
            allowed_methods: rule.allowed_methods().to_vec(),
            allowed_headers: rule.allowed_headers().to_vec(),
            max_age_seconds: rule.max_age_seconds().unwrap_or_default(),
        }
        .normalized()
    }
}

pub struct BucketCors {
    pub key: ResourceKey,
    pub bucket: ResourceKey,
    pub bucket_name: String,
    pub rule: Rule,
    /// When `rule` names no origin: the distribution whose address is the one allowed (the
    /// player's own origin).
    pub own_origin: Option<ResourceKey>,
}

impl BucketCors {
    /// The rule with its origins filled in, or `None` while the distribution does not exist.
    fn wanted(&self, cx: &Context) -> Option<Rule> {
        let mut rule = self.rule.clone();
        if rule.allowed_origins.is_empty() {
            let distribution = self.own_origin.as_ref()?;
            let url = crate::systems::web::served_url(cx, distribution)?;
            rule.allowed_origins = vec![url.trim_end_matches('/').to_owned()];
        }
        Some(rule.normalized())
    }

    async fn live(&self, cx: &Context) -> Result<Option<Vec<Rule>>, Error> {
        match cx
            .aws
            .s3
            .get_bucket_cors()
            .bucket(&self.bucket_name)
            .send()
            .await
            .step(&self.key, "GetBucketCors")
        {
            Ok(out) => Ok(Some(out.cors_rules().iter().map(Rule::from_live).collect())),
            Err(e) if e.code() == Some("NoSuchCORSConfiguration") => Ok(Some(vec![])),
            Err(e) if e.code() == Some("NoSuchBucket") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Resource for BucketCors {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut keys = vec![self.bucket.clone()];
        keys.extend(self.own_origin.clone());
        keys
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let id = format!("s3://{}", self.bucket_name);
        if cx.output(&self.bucket, "name").is_none() {
            return Ok(Planned::create(self.key.clone(), id));
        }
        let live = self.live(cx).await?.unwrap_or_default();
        let Some(wanted) = self.wanted(cx) else {
            return Ok(Planned::create(self.key.clone(), id));
        };
        if live.is_empty() {
            return Ok(Planned::create(self.key.clone(), id));
        }
        let mut diff = Diff::default();
        diff.field("CORSRules.count", 1, live.len());
        let live = &live[0];
        diff.field(
            "CORSRules.AllowedOrigins",
            &wanted.allowed_origins,
            &live.allowed_origins,
        );
        diff.field(
            "CORSRules.AllowedMethods",
            &wanted.allowed_methods,
            &live.allowed_methods,
        );
        diff.field(
            "CORSRules.AllowedHeaders",
            &wanted.allowed_headers,
            &live.allowed_headers,
        );
        diff.field(
            "CORSRules.MaxAgeSeconds",
            wanted.max_age_seconds,
            live.max_age_seconds,
        );
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
        let rule = self.wanted(cx).ok_or_else(|| Error::Refused {
            resource: self.key.clone(),
            message: "the player's distribution has no address yet".into(),
        })?;
        let cors_rule = CorsRule::builder()
            .set_allowed_origins(Some(rule.allowed_origins))
            .set_allowed_methods(Some(rule.allowed_methods))
            .set_allowed_headers(Some(rule.allowed_headers))
            .max_age_seconds(rule.max_age_seconds)
            .build()
            .expect("origins and methods set");
        let configuration = CorsConfiguration::builder()
            .cors_rules(cors_rule)
            .build()
            .expect("one rule");
        bucket::configure(
            cx,
            &self.bucket_name,
            |_| false,
            || async {
                cx.aws
                    .s3
                    .put_bucket_cors()
                    .bucket(&self.bucket_name)
                    .cors_configuration(configuration.clone())
                    .send()
                    .await
                    .step(&self.key, "PutBucketCors")
            },
        )
        .await?;
        Ok(())
    }

    /// CORS is a property of `AWS::S3::Bucket` in CloudFormation: merged into the bucket.
    /// The player's own origin is the distribution's address (a reference to it, or the
    /// custom domain).
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let rule = self
            .wanted(cx)
            .ok_or("the player's distribution has no address in the template")?;
        let mut cors_rule = json!({
            "AllowedOrigins": rule.allowed_origins,
            "AllowedMethods": rule.allowed_methods,
            "MaxAge": rule.max_age_seconds,
        });
        // No headers allowed is the same as none named.
        if !rule.allowed_headers.is_empty() {
            cors_rule["AllowedHeaders"] = json!(rule.allowed_headers);
        }
        let mut properties = serde_json::Map::new();
        properties.insert(
            "CorsConfiguration".into(),
            json!({"CorsRules": [cors_rule]}),
        );
        Ok(vec![Part::Properties {
            of: self.bucket.clone(),
            properties,
            depends_on: vec![],
        }])
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        match self.live(cx).await? {
            None => Ok(Deleted::Absent),
            Some(rules) if rules.is_empty() => Ok(Deleted::Absent),
            Some(_) => {
                bucket::configure(
                    cx,
                    &self.bucket_name,
                    |_| false,
                    || async {
                        cx.aws
                            .s3
                            .delete_bucket_cors()
                            .bucket(&self.bucket_name)
                            .send()
                            .await
                            .step(&self.key, "DeleteBucketCors")
                    },
                )
                .await?;
                Ok(Deleted::Deleted)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_are_not_drift() {
        let a = Rule {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["PUT".into(), "GET".into(), "POST".into()],
            allowed_headers: vec!["*".into()],
            max_age_seconds: 3000,
        };
        let mut b = a.clone();
        b.allowed_methods = vec!["GET".into(), "POST".into(), "PUT".into(), "GET".into()];
        assert_eq!(a.clone().normalized(), b.normalized());
        let mut c = a.clone();
        c.allowed_methods.push("DELETE".into());
        assert_ne!(a.normalized(), c.normalized());
    }
}
