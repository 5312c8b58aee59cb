//! A CloudFront distribution in front of a private S3 bucket reached through OAC (console steps
//! S4 to S6, V2).
//!
//! Found by its ownership tag (set atomically by `CreateDistributionWithTags`); created with a
//! deterministic `CallerReference`, so a create repeated after a crash can never make a second
//! distribution.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    Aliases, AllowedMethods, CachedMethods, CustomErrorResponse, CustomErrorResponses,
    DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, HttpVersion, Method,
    MinimumProtocolVersion, Origin, OriginShield, Origins, PriceClass, S3OriginConfig,
    SslSupportMethod, Tag, Tags, ViewerCertificate, ViewerProtocolPolicy,
};
use serde_json::{json, Value};

use super::{owned_by, tag_diff};
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::wait::{self, Poll, Wait};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource,
    ResourceKey,
};
use crate::template::{self, CfnResource, Part};

/// Tag on a distribution while files it serves were replaced but its caches not yet
/// invalidated (see `site_files`); its value is the invalidation's caller reference.
pub const PENDING_INVALIDATION_TAG: &str = "provision:pending-invalidation";

/// The id of the one origin inside the distribution.
const ORIGIN_ID: &str = "s3-origin";

/// The settings the stack manages, read from or written into a `DistributionConfig`. Anything
/// else in the config (logging, say) is kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub comment: String,
    pub enabled: bool,
    pub default_root_object: String,
    pub price_class: String,
    pub http_version: String,
    pub ipv6: bool,
    pub origin_domain: String,
    pub origin_access_control_id: String,
    /// The Origin Shield region, when Origin Shield is on.
    pub origin_shield: Option<String>,
    pub viewer_protocol_policy: String,
    pub cache_policy_id: String,
    /// What CloudFront passes on to the origin beyond the cache key (e.g. `CORS-S3Origin`,
    /// which forwards `Origin` so S3 answers CORS).
    pub origin_request_policy_id: Option<String>,
    /// Headers CloudFront adds to its answers (the stack's security headers).
    pub response_headers_policy_id: Option<String>,
    pub allowed_methods: Vec<String>,
    pub cached_methods: Vec<String>,
    pub compress: bool,
    /// (error code, response page path, response code, caching min TTL), sorted.
    pub error_responses: Vec<(i32, String, String, i64)>,
    /// Alternate domain names (CNAMEs), sorted; none: `*.cloudfront.net` only.
    pub aliases: Vec<String>,
    /// The ACM certificate of the aliases; none: CloudFront's default certificate.
    pub certificate: Option<Certificate>,
}

/// A distribution's own certificate and the TLS it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub acm_arn: String,
    /// `TLSv1.2_2021`: TLS 1.2 at least, with its strong ciphers.
    pub minimum_protocol_version: String,
    /// `sni-only` (a dedicated-IP `vip` costs a monthly fee).
    pub ssl_support_method: String,
}

impl Certificate {
    /// The stack's TLS for an ACM certificate.
    pub fn tls12(acm_arn: &str) -> Certificate {
        Certificate {
            acm_arn: acm_arn.to_owned(),
            minimum_protocol_version: "TLSv1.2_2021".into(),
            ssl_support_method: "sni-only".into(),
        }
    }
}

fn sorted(methods: &[Method]) -> Vec<String> {
    let mut m: Vec<String> = methods.iter().map(|m| m.as_str().to_owned()).collect();
    m.sort();
    m
}

impl Settings {
    pub fn read(cfg: &DistributionConfig) -> Settings {
        let origin = cfg.origins.as_ref().and_then(|o| {
            o.items
                .iter()
                .find(|o| o.id == ORIGIN_ID)
                .or(o.items.first())
        });
        let behavior = cfg.default_cache_behavior.as_ref();
        let allowed = behavior.and_then(|b| b.allowed_methods.as_ref());
        let mut error_responses: Vec<_> = cfg
            .custom_error_responses
            .as_ref()
            .map(|r| r.items.clone().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                (
                    r.error_code,
                    r.response_page_path.unwrap_or_default(),
                    r.response_code.unwrap_or_default(),
                    r.error_caching_min_ttl.unwrap_or_default(),
                )
            })
            .collect();
        error_responses.sort();
        let mut aliases = cfg
            .aliases
            .as_ref()
            .and_then(|a| a.items.clone())
            .unwrap_or_default();
        aliases.sort();
        let certificate = cfg
            .viewer_certificate
            .as_ref()
            .filter(|c| {
                c.acm_certificate_arn
                    .as_deref()
                    .is_some_and(|a| !a.is_empty())
            })
            .map(|c| Certificate {
                acm_arn: c.acm_certificate_arn.clone().unwrap_or_default(),
                minimum_protocol_version: c
                    .minimum_protocol_version
                    .as_ref()
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default(),
                ssl_support_method: c
                    .ssl_support_method
                    .as_ref()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
            });
        Settings {
            comment: cfg.comment.clone(),
            enabled: cfg.enabled,
            default_root_object: cfg.default_root_object.clone().unwrap_or_default(),
            price_class: cfg
                .price_class
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            http_version: cfg
                .http_version
                .as_ref()
                .map(|h| h.as_str().to_owned())
                .unwrap_or_default(),
            ipv6: cfg.is_ipv6_enabled.unwrap_or(false),
            origin_domain: origin.map(|o| o.domain_name.clone()).unwrap_or_default(),
            origin_access_control_id: origin
                .and_then(|o| o.origin_access_control_id.clone())
                .unwrap_or_default(),
            origin_shield: origin
                .and_then(|o| o.origin_shield.as_ref())
                .filter(|s| s.enabled)
                .map(|s| s.origin_shield_region.clone().unwrap_or_default()),
            viewer_protocol_policy: behavior
                .map(|b| b.viewer_protocol_policy.as_str().to_owned())
                .unwrap_or_default(),
            cache_policy_id: behavior
                .and_then(|b| b.cache_policy_id.clone())
                .unwrap_or_default(),
            origin_request_policy_id: behavior
                .and_then(|b| b.origin_request_policy_id.clone())
                .filter(|id| !id.is_empty()),
            response_headers_policy_id: behavior
                .and_then(|b| b.response_headers_policy_id.clone())
                .filter(|id| !id.is_empty()),
            allowed_methods: allowed.map(|a| sorted(&a.items)).unwrap_or_default(),
            cached_methods: allowed
                .and_then(|a| a.cached_methods.as_ref())
                .map(|c| sorted(&c.items))
                .unwrap_or_default(),
            compress: behavior.and_then(|b| b.compress).unwrap_or(false),
            error_responses,
            aliases,
            certificate,
        }
    }

    /// Field-by-field differences, named as in the CloudFront API.
    pub fn diff(&self, live: &Settings) -> Diff {
        let mut d = Diff::default();
        d.field("Comment", &self.comment, &live.comment);
        d.field("Enabled", self.enabled, live.enabled);
        d.field(
            "DefaultRootObject",
            &self.default_root_object,
            &live.default_root_object,
        );
        d.field("PriceClass", &self.price_class, &live.price_class);
        d.field("HttpVersion", &self.http_version, &live.http_version);
        d.field("IsIPV6Enabled", self.ipv6, live.ipv6);
        d.field(
            "Origin.DomainName",
            &self.origin_domain,
            &live.origin_domain,
        );
        d.field(
            "Origin.OriginAccessControlId",
            &self.origin_access_control_id,
            &live.origin_access_control_id,
        );
        d.field(
            "Origin.OriginShield",
            &self.origin_shield,
            &live.origin_shield,
        );
        d.field(
            "DefaultCacheBehavior.ViewerProtocolPolicy",
            &self.viewer_protocol_policy,
            &live.viewer_protocol_policy,
        );
        d.field(
            "DefaultCacheBehavior.CachePolicyId",
            &self.cache_policy_id,
            &live.cache_policy_id,
        );
        d.field(
            "DefaultCacheBehavior.OriginRequestPolicyId",
            &self.origin_request_policy_id,
            &live.origin_request_policy_id,
        );
        d.field(
            "DefaultCacheBehavior.ResponseHeadersPolicyId",
            &self.response_headers_policy_id,
            &live.response_headers_policy_id,
        );
        d.field(
            "DefaultCacheBehavior.AllowedMethods",
            &self.allowed_methods,
            &live.allowed_methods,
        );
        d.field(
            "DefaultCacheBehavior.CachedMethods",
            &self.cached_methods,
            &live.cached_methods,
        );
        d.field(
            "DefaultCacheBehavior.Compress",
            self.compress,
            live.compress,
        );
        d.field(
            "CustomErrorResponses",
            &self.error_responses,
            &live.error_responses,
        );
        d.field("Aliases", &self.aliases, &live.aliases);
        let cert =
            |c: &Option<Certificate>, f: fn(&Certificate) -> &String| c.as_ref().map(f).cloned();
        d.field(
            "ViewerCertificate.ACMCertificateArn",
            cert(&self.certificate, |c| &c.acm_arn),
            cert(&live.certificate, |c| &c.acm_arn),
        );
        if self.certificate.is_some() {
            d.field(
                "ViewerCertificate.MinimumProtocolVersion",
                cert(&self.certificate, |c| &c.minimum_protocol_version),
                cert(&live.certificate, |c| &c.minimum_protocol_version),
            );
            d.field(
                "ViewerCertificate.SSLSupportMethod",
                cert(&self.certificate, |c| &c.ssl_support_method),
                cert(&live.certificate, |c| &c.ssl_support_method),
            );
        }
        d
    }

    /// Writes these settings into `cfg`, keeping what the stack does not manage.
    pub fn write(&self, cfg: &mut DistributionConfig) {
        let methods = |m: &[String]| {
            m.iter()
                .map(|m| Method::from(m.as_str()))
                .collect::<Vec<_>>()
        };
        cfg.comment = self.comment.clone();
        cfg.enabled = self.enabled;
        cfg.default_root_object = Some(self.default_root_object.clone());
        cfg.price_class = Some(PriceClass::from(self.price_class.as_str()));
        cfg.http_version = Some(HttpVersion::from(self.http_version.as_str()));
        cfg.is_ipv6_enabled = Some(self.ipv6);

        let origin = Origin::builder()
            .id(ORIGIN_ID)
            .domain_name(&self.origin_domain)
            .origin_access_control_id(&self.origin_access_control_id)
            // OAC replaces the legacy OAI, which must then be the empty string.
            .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
            .origin_shield(
                OriginShield::builder()
                    .enabled(self.origin_shield.is_some())
                    .set_origin_shield_region(self.origin_shield.clone())
                    .build()
                    .expect("enabled set"),
            )
            .build()
            .expect("id and domain set");
        cfg.origins = Some(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .expect("quantity and items set"),
        );

        let allowed = AllowedMethods::builder()
            .quantity(self.allowed_methods.len() as i32)
            .set_items(Some(methods(&self.allowed_methods)))
            .cached_methods(
                CachedMethods::builder()
                    .quantity(self.cached_methods.len() as i32)
                    .set_items(Some(methods(&self.cached_methods)))
                    .build()
                    .expect("quantity and items set"),
            )
            .build()
            .expect("quantity and items set");
        let behavior = match cfg.default_cache_behavior.take() {
            Some(mut b) => {
                b.target_origin_id = ORIGIN_ID.into();
                b.viewer_protocol_policy =
                    ViewerProtocolPolicy::from(self.viewer_protocol_policy.as_str());
                b.cache_policy_id = Some(self.cache_policy_id.clone());
                b.origin_request_policy_id = self.origin_request_policy_id.clone();
                b.response_headers_policy_id = self.response_headers_policy_id.clone();
                b.allowed_methods = Some(allowed);
                b.compress = Some(self.compress);
                // Legacy cache settings cannot stand beside a cache policy.
                #[allow(deprecated)]
                {
                    b.forwarded_values = None;
                    b.min_ttl = None;
                    b.default_ttl = None;
                    b.max_ttl = None;
                }
                b
            }
            None => DefaultCacheBehavior::builder()
                .target_origin_id(ORIGIN_ID)
                .viewer_protocol_policy(ViewerProtocolPolicy::from(
                    self.viewer_protocol_policy.as_str(),
                ))
                .cache_policy_id(&self.cache_policy_id)
                .set_origin_request_policy_id(self.origin_request_policy_id.clone())
                .set_response_headers_policy_id(self.response_headers_policy_id.clone())
                .allowed_methods(allowed)
                .compress(self.compress)
                .build()
                .expect("target origin and viewer policy set"),
        };
        cfg.default_cache_behavior = Some(behavior);

        let errors: Vec<CustomErrorResponse> = self
            .error_responses
            .iter()
            .map(|(code, path, response, ttl)| {
                CustomErrorResponse::builder()
                    .error_code(*code)
                    .response_page_path(path)
                    .response_code(response)
                    .error_caching_min_ttl(*ttl)
                    .build()
                    .expect("error code set")
            })
            .collect();
        cfg.custom_error_responses = Some(
            CustomErrorResponses::builder()
                .quantity(errors.len() as i32)
                .set_items(Some(errors))
                .build()
                .expect("quantity set"),
        );

        cfg.aliases = Some(
            Aliases::builder()
                .quantity(self.aliases.len() as i32)
                .set_items((!self.aliases.is_empty()).then(|| self.aliases.clone()))
                .build()
                .expect("quantity set"),
        );
        cfg.viewer_certificate = Some(match &self.certificate {
            Some(c) => ViewerCertificate::builder()
                .cloud_front_default_certificate(false)
                .acm_certificate_arn(&c.acm_arn)
                .ssl_support_method(SslSupportMethod::from(c.ssl_support_method.as_str()))
                .minimum_protocol_version(MinimumProtocolVersion::from(
                    c.minimum_protocol_version.as_str(),
                ))
                .build(),
            // CloudFront's certificate for *.cloudfront.net: it decides the TLS versions.
            None => ViewerCertificate::builder()
                .cloud_front_default_certificate(true)
                .build(),
        });
    }
}

impl Settings {
    /// These settings as CloudFormation's `DistributionConfig`, field for field what
    /// [`Settings::write`] puts into the CloudFront API's config.
    pub fn cloudformation(&self) -> Value {
        let mut origin = json!({
            "Id": ORIGIN_ID,
            "DomainName": self.origin_domain,
            "OriginAccessControlId": self.origin_access_control_id,
            // OAC replaces the legacy OAI, which must then be the empty string.
            "S3OriginConfig": {"OriginAccessIdentity": ""},
            "OriginShield": {"Enabled": self.origin_shield.is_some()},
        });
        if let Some(region) = &self.origin_shield {
            origin["OriginShield"]["OriginShieldRegion"] = json!(region);
        }
        let mut behavior = json!({
            "TargetOriginId": ORIGIN_ID,
            "ViewerProtocolPolicy": self.viewer_protocol_policy,
            "CachePolicyId": self.cache_policy_id,
            "AllowedMethods": self.allowed_methods,
            "CachedMethods": self.cached_methods,
            "Compress": self.compress,
        });
        if let Some(id) = &self.origin_request_policy_id {
            behavior["OriginRequestPolicyId"] = json!(id);
        }
        if let Some(id) = &self.response_headers_policy_id {
            behavior["ResponseHeadersPolicyId"] = json!(id);
        }
        let errors: Vec<Value> = self
            .error_responses
            .iter()
            .map(|(code, path, response, ttl)| {
                // CloudFormation takes the response code as a number, the API as a string.
                let response = response
                    .parse::<u16>()
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(response));
                json!({
                    "ErrorCode": code,
                    "ResponsePagePath": path,
                    "ResponseCode": response,
                    "ErrorCachingMinTTL": ttl,
                })
            })
            .collect();
        let mut config = json!({
            "Comment": self.comment,
            "Enabled": self.enabled,
            "DefaultRootObject": self.default_root_object,
            "PriceClass": self.price_class,
            "HttpVersion": self.http_version,
            "IPV6Enabled": self.ipv6,
            "Origins": [origin],
            "DefaultCacheBehavior": behavior,
        });
        if !errors.is_empty() {
            config["CustomErrorResponses"] = json!(errors);
        }
        if !self.aliases.is_empty() {
            config["Aliases"] = json!(self.aliases);
        }
        config["ViewerCertificate"] = match &self.certificate {
            Some(c) => json!({
                "AcmCertificateArn": c.acm_arn,
                "SslSupportMethod": c.ssl_support_method,
                "MinimumProtocolVersion": c.minimum_protocol_version,
            }),
            // CloudFront's certificate for *.cloudfront.net: it decides the TLS versions.
            None => json!({"CloudFrontDefaultCertificate": true}),
        };
        config
    }
}

/// checkov's findings on the distributions that do not apply, each with its reason.
const NO_WAF: &str = "No web ACL: the distribution serves the files of a private bucket whose \
     policy lets CloudFront only read them (s3:GetObject), so nothing is written through it; \
     AWS WAF costs a monthly fee per web ACL and rule and stays the operator's choice";
const NO_ACCESS_LOG: &str = "No standard logs, as the SDK engine sets none: the Logging setting \
     needs a bucket with ACLs enabled, which every stack bucket refuses (BucketOwnerEnforced), \
     and the logs would hold viewers' IP addresses with no retention of their own";
const DEFAULT_CERTIFICATE_TLS: &str = "Served on *.cloudfront.net with CloudFront's default \
     certificate, whose TLS versions CloudFront chooses; only an alternate domain with an ACM \
     certificate can set a minimum: distribution.custom_domain serves TLSv1.2_2021 \
     (docs/security.md, Findings left)";

/// What the stack knows of a live distribution.
#[derive(Debug, Clone)]
struct Found {
    id: String,
    arn: String,
    domain_name: String,
    tags: BTreeMap<String, String>,
}

/// Builds the wanted settings from the origin domain and the OAC id.
pub type SettingsFn = Box<dyn Fn(&str, &str) -> Settings + Send + Sync>;

pub struct Distribution {
    pub key: ResourceKey,
    /// The origin bucket (a dependency) and its REST domain, which follows from its name.
    pub bucket: ResourceKey,
    pub origin_domain: String,
    pub oac: ResourceKey,
    /// The stack's response headers policy on the default behaviour (its id known once it
    /// exists); sets the settings' `response_headers_policy_id`.
    pub headers_policy: ResourceKey,
    /// Builds the wanted settings from the origin domain and the OAC id (known once it exists).
    pub settings: SettingsFn,
    /// Stable marker in the comment, used to pick candidates before checking tags.
    pub comment: String,
    /// The first name of the custom domain, when there is one: the address given out.
    pub served_domain: Option<String>,
}

/// The id CloudFront names in its `DistributionAlreadyExists` message: "The caller reference
/// that you are using to create a distribution is associated with another distribution.
/// Already exists: E1ABCDEFGHIJKL".
pub fn existing_id(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("Already exists:")?;
    let id = rest
        .trim_start()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()?;
    (!id.is_empty()).then_some(id)
}

impl Distribution {
    /// A distribution's tags; `None` when it no longer exists.
    async fn tags_of(
        &self,
        cx: &Context,
        arn: &str,
    ) -> Result<Option<BTreeMap<String, String>>, Error> {
        match cx
            .aws
            .cloudfront
            .list_tags_for_resource()
            .resource(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.tags()
                    .map(|t| t.items())
                    .unwrap_or_default()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
                    .collect(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_resource()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "ListTagsForResource"),
        }
    }

    /// Takes over the distribution CloudFront says an earlier run created with this caller
    /// reference (its answer was lost), once its tag shows it is the stack's.
    async fn adopt(&self, cx: &Context, message: &str) -> Result<Found, Error> {
        let refused = |why: String| Error::Refused {
            resource: self.key.clone(),
            message: format!("CloudFront refused the create as a repeat ({message}); {why}"),
        };
        let Some(id) = existing_id(message) else {
            return match self.find(cx, Some(&self.origin_domain)).await? {
                Some(found) => Ok(found),
                None => Err(refused("no distribution carries the stack's tag".into())),
            };
        };
        let out = cx
            .aws
            .cloudfront
            .get_distribution()
            .id(id)
            .send()
            .await
            .step(&self.key, "GetDistribution")?;
        let d = out
            .distribution()
            .ok_or_else(|| refused(format!("GetDistribution {id} returned nothing")))?;
        let tags = self.tags_of(cx, d.arn()).await?.unwrap_or_default();
        if !owned_by(&tags, cx.stack_name()) {
            return Err(refused(format!(
                "distribution {id} does not carry the tag {}={}; it is left alone",
                crate::engine::OWNER_TAG,
                cx.stack_name()
            )));
        }
        Ok(Found {
            id: d.id().to_owned(),
            arn: d.arn().to_owned(),
            domain_name: d.domain_name().to_owned(),
            tags,
        })
    }

    async fn find(
        &self,
        cx: &Context,
        origin_domain: Option<&str>,
    ) -> Result<Option<Found>, Error> {
        let cf = &cx.aws.cloudfront;
        let mut marker = None;
        loop {
            let out = cf
                .list_distributions()
                .set_marker(marker)
                .send()
                .await
                .step(&self.key, "ListDistributions")?;
            let Some(list) = out.distribution_list() else {
                return Ok(None);
            };
            for d in list.items() {
                let serves_bucket = origin_domain.is_some_and(|domain| {
                    d.origins()
                        .is_some_and(|o| o.items().iter().any(|o| o.domain_name() == domain))
                });
                if d.comment() != self.comment && !serves_bucket {
                    continue;
                }
                // Deleted between the listing and now: not a candidate any more.
                let Some(tags) = self.tags_of(cx, d.arn()).await? else {
                    continue;
                };
                if owned_by(&tags, cx.stack_name()) {
                    return Ok(Some(Found {
                        id: d.id().to_owned(),
                        arn: d.arn().to_owned(),
                        domain_name: d.domain_name().to_owned(),
                        tags,
                    }));
                }
            }
            match list.next_marker() {
                Some(next) if list.is_truncated() => marker = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    fn publish(&self, cx: &Context, found: &Found) {
        cx.publish(&self.key, "id", &found.id);
        cx.publish(&self.key, "arn", &found.arn);
        cx.publish(&self.key, "domain_name", &found.domain_name);
        // The address the stack gives out: its own domain when it has one.
        cx.publish(
            &self.key,
            "served_domain",
            self.served_domain.as_deref().unwrap_or(&found.domain_name),
        );
        if let Some(reference) = found.tags.get(PENDING_INVALIDATION_TAG) {
            cx.publish(&self.key, "pending_invalidation", reference);
        }
    }

    async fn config(&self, cx: &Context, id: &str) -> Result<(DistributionConfig, String), Error> {
        let out = cx
            .aws
            .cloudfront
            .get_distribution_config()
            .id(id)
            .send()
            .await
            .step(&self.key, "GetDistributionConfig")?;
        let cfg = out
            .distribution_config()
            .cloned()
            .ok_or_else(|| Error::Refused {
                resource: self.key.clone(),
                message: format!("GetDistributionConfig returned no config for {id}"),
            })?;
        Ok((cfg, out.e_tag().unwrap_or_default().to_owned()))
    }

    fn cf_tags(cx: &Context) -> Tags {
        let items = cx
            .tags()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key set"))
            .collect();
        Tags::builder().set_items(Some(items)).build()
    }

    async fn create(&self, cx: &Context, wanted: &Settings) -> Result<Found, Error> {
        // Unique per OAC, which is new whenever the stack is built anew: a repeated create after
        // a crash reuses it, a rebuild after `down` does not collide with the old distribution.
        let caller_reference = format!("{}-{}", self.comment, wanted.origin_access_control_id);
        let mut cfg = DistributionConfig::builder()
            .caller_reference(caller_reference)
            .comment(&self.comment)
            .enabled(wanted.enabled)
            .build()
            .expect("required fields set");
        wanted.write(&mut cfg);
        let request = DistributionConfigWithTags::builder()
            .distribution_config(cfg)
            .tags(Self::cf_tags(cx))
            .build();
        match cx
            .aws
            .cloudfront
            .create_distribution_with_tags()
            .distribution_config_with_tags(request)
            .send()
            .await
        {
            Ok(out) => {
                let d = out.distribution().ok_or_else(|| Error::Refused {
                    resource: self.key.clone(),
                    message: "CreateDistributionWithTags returned no distribution".into(),
                })?;
                Ok(Found {
                    id: d.id().to_owned(),
                    arn: d.arn().to_owned(),
                    domain_name: d.domain_name().to_owned(),
                    tags: cx.tags(),
                })
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_distribution_already_exists()) =>
            {
                let message = aws_sdk_cloudfront::error::ProvideErrorMetadata::message(&e)
                    .unwrap_or_default()
                    .to_owned();
                self.adopt(cx, &message).await
            }
            Err(e) => Err(e).step(&self.key, "CreateDistributionWithTags"),
        }
    }

    async fn update(&self, cx: &Context, id: &str, wanted: &Settings) -> Result<(), Error> {
        retry_when(
            Backoff::SETTLING,
            |e: &Error| e.code() == Some("PreconditionFailed"),
            || async {
                let (mut cfg, etag) = self.config(cx, id).await?;
                wanted.write(&mut cfg);
                cx.aws
                    .cloudfront
                    .update_distribution()
                    .id(id)
                    .if_match(etag)
                    .distribution_config(cfg)
                    .send()
                    .await
                    .step(&self.key, "UpdateDistribution")?;
                Ok(())
            },
        )
        .await
    }

    /// Polls until CloudFront has pushed the configuration to its edge locations (minutes).
    async fn wait_deployed(&self, cx: &Context, id: &str) -> Result<(), Error> {
        let wait = Wait::new(cx, Duration::from_secs(10), Duration::from_secs(45 * 60));
        let what = format!("CloudFront distribution {id} to deploy");
        wait::until(cx, &self.key, &what, wait, || async {
            let out = cx
                .aws
                .cloudfront
                .get_distribution()
                .id(id)
                .send()
                .await
                .step(&self.key, "GetDistribution")?;
            let status = out
                .distribution()
                .map(|d| d.status().to_owned())
                .unwrap_or_default();
            Ok(if status == "Deployed" {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("status {status}"))
            })
        })
        .await
    }
}

#[async_trait]
impl Resource for Distribution {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    /// CloudFront deploys a new distribution, or a disabled one before deletion, in minutes.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(240)
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![
            self.bucket.clone(),
            self.oac.clone(),
            self.headers_policy.clone(),
        ]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(found) = self.find(cx, Some(&self.origin_domain)).await? else {
            return Ok(Planned::create(self.key.clone(), None));
        };
        self.publish(cx, &found);
        let (cfg, _) = self.config(cx, &found.id).await?;
        let oac_id = cx
            .output(&self.oac, "id")
            .unwrap_or_else(|| "(known after apply)".into());
        let mut wanted = (self.settings)(&self.origin_domain, &oac_id);
        wanted.response_headers_policy_id = Some(
            cx.output(&self.headers_policy, "id")
                .unwrap_or_else(|| "(known after apply)".into()),
        );
        let mut diff = wanted.diff(&Settings::read(&cfg));
        diff.extend(tag_diff(&cx.tags(), &found.tags));
        Ok(Planned::from_diff(
            self.key.clone(),
            found.id,
            diff.into_vec(),
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        let origin_domain = &self.origin_domain;
        let oac_id = cx.require(&self.key, &self.oac, "id")?;
        let mut wanted = (self.settings)(origin_domain, &oac_id);
        wanted.response_headers_policy_id =
            Some(cx.require(&self.key, &self.headers_policy, "id")?);
        let found = match (planned.action, planned.physical_id.as_deref()) {
            (Action::Create, _) => self.create(cx, &wanted).await?,
            (_, Some(id)) => {
                let found =
                    self.find(cx, Some(origin_domain))
                        .await?
                        .ok_or_else(|| Error::Refused {
                            resource: self.key.clone(),
                            message: format!("distribution {id} disappeared while being updated"),
                        })?;
                if planned.touches_more_than_tags() {
                    self.update(cx, &found.id, &wanted).await?;
                }
                if planned.touches("Tags.") {
                    cx.aws
                        .cloudfront
                        .tag_resource()
                        .resource(&found.arn)
                        .tags(Self::cf_tags(cx))
                        .send()
                        .await
                        .step(&self.key, "TagResource")?;
                }
                found
            }
            (_, None) => unreachable!("an existing distribution has an id"),
        };
        self.publish(cx, &found);
        Ok(())
    }

    /// `AWS::CloudFront::Distribution` with the settings `apply` writes. CloudFormation makes
    /// its own caller reference; the engine finds the distribution by comment and tag either
    /// way. The bucket is named by its literal REST domain, which CloudFront does not check:
    /// no `DependsOn` on it, since the output bucket's CORS names the distribution's domain.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let oac_id = cx
            .require(&self.key, &self.oac, "id")
            .map_err(|e| e.to_string())?;
        let mut wanted = (self.settings)(&self.origin_domain, &oac_id);
        wanted.response_headers_policy_id = Some(
            cx.require(&self.key, &self.headers_policy, "id")
                .map_err(|e| e.to_string())?,
        );
        let mut distribution = CfnResource::new(
            &self.key,
            "AWS::CloudFront::Distribution",
            json!({
                "DistributionConfig": wanted.cloudformation(),
                "Tags": template::tags(cx),
            }),
        )
        .skip_check("CKV_AWS_68", NO_WAF)
        .skip_check("CKV_AWS_86", NO_ACCESS_LOG);
        if wanted.certificate.is_none() {
            distribution = distribution.skip_check("CKV_AWS_174", DEFAULT_CERTIFICATE_TLS);
        }
        Ok(vec![Part::Resource(distribution)])
    }

    /// With a custom domain, the address the stack gives out is its first name.
    fn known_outputs(&self, cx: &Context) {
        if let Some(domain) = &self.served_domain {
            cx.publish(&self.key, "served_domain", domain);
        }
    }

    async fn wait_ready(&self, cx: &Context) -> Result<(), Error> {
        match cx.output(&self.key, "id") {
            Some(id) => self.wait_deployed(cx, &id).await,
            None => Ok(()),
        }
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(found) = self.find(cx, Some(&self.origin_domain)).await? else {
            return Ok(Deleted::Absent);
        };
        // CloudFront deletes only a disabled distribution, once the disabling is deployed.
        retry_when(
            Backoff::SETTLING,
            |e: &Error| e.code() == Some("PreconditionFailed"),
            || async {
                let (mut cfg, etag) = self.config(cx, &found.id).await?;
                if !cfg.enabled {
                    return Ok(());
                }
                cfg.enabled = false;
                cx.aws
                    .cloudfront
                    .update_distribution()
                    .id(&found.id)
                    .if_match(etag)
                    .distribution_config(cfg)
                    .send()
                    .await
                    .step(&self.key, "UpdateDistribution")?;
                Ok(())
            },
        )
        .await?;
        self.wait_deployed(cx, &found.id).await?;
        retry_when(
            Backoff::SETTLING,
            |e: &Error| {
                matches!(
                    e.code(),
                    Some("DistributionNotDisabled" | "PreconditionFailed")
                )
            },
            || async {
                // Always the fresh ETag: the one from before disabling is stale.
                let (_, etag) = self.config(cx, &found.id).await?;
                match cx
                    .aws
                    .cloudfront
                    .delete_distribution()
                    .id(&found.id)
                    .if_match(etag)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Deleted::Deleted),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_no_such_distribution()) =>
                    {
                        Ok(Deleted::Absent)
                    }
                    Err(e) => Err(e).step(&self.key, "DeleteDistribution"),
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Settings {
        Settings {
            comment: "provision:demo:site".into(),
            enabled: true,
            default_root_object: "index.html".into(),
            price_class: "PriceClass_All".into(),
            http_version: "http2".into(),
            ipv6: true,
            origin_domain: "demo-site-1.s3.us-east-1.amazonaws.com".into(),
            origin_access_control_id: "E2OAC".into(),
            origin_shield: Some("us-east-1".into()),
            viewer_protocol_policy: "redirect-to-https".into(),
            cache_policy_id: "658327ea-f89d-4fab-a63d-7e88639e58f6".into(),
            origin_request_policy_id: None,
            response_headers_policy_id: None,
            allowed_methods: vec!["GET".into(), "HEAD".into()],
            cached_methods: vec!["GET".into(), "HEAD".into()],
            compress: true,
            error_responses: vec![(403, "/index.html".into(), "200".into(), 10)],
            aliases: vec![],
            certificate: None,
        }
    }

    #[test]
    fn a_custom_domain_is_served_with_its_certificate_and_tls_1_2() {
        let mut s = wanted();
        s.aliases = vec!["stt.example.com".into()];
        s.certificate = Some(Certificate::tls12(
            "arn:aws:acm:us-east-1:111122223333:certificate/abc",
        ));
        let cfg = config_from(&s);
        let cert = cfg.viewer_certificate.as_ref().unwrap();
        assert_eq!(cert.cloud_front_default_certificate, Some(false));
        assert_eq!(
            cert.minimum_protocol_version,
            Some(MinimumProtocolVersion::TlSv122021)
        );
        assert_eq!(cert.ssl_support_method, Some(SslSupportMethod::SniOnly));
        assert_eq!(cfg.aliases.as_ref().unwrap().quantity, 1);
        assert!(s.diff(&Settings::read(&cfg)).into_vec().is_empty());

        // TLS lowered by hand: drift names the field; the default certificate put back by
        // hand: drift names the certificate and the aliases.
        let mut weakened = cfg.clone();
        weakened
            .viewer_certificate
            .as_mut()
            .unwrap()
            .minimum_protocol_version = Some(MinimumProtocolVersion::TlSv12016);
        let fields: Vec<String> = s
            .diff(&Settings::read(&weakened))
            .into_vec()
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, ["ViewerCertificate.MinimumProtocolVersion"]);
        let plain = config_from(&wanted());
        let fields: Vec<String> = s
            .diff(&Settings::read(&plain))
            .into_vec()
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(
            fields,
            [
                "Aliases",
                "ViewerCertificate.ACMCertificateArn",
                "ViewerCertificate.MinimumProtocolVersion",
                "ViewerCertificate.SSLSupportMethod"
            ]
        );
        // Without a custom domain: CloudFront's certificate, no aliases, and a domain added
        // by hand is drift.
        let default = wanted();
        let cfg = config_from(&default);
        assert_eq!(
            cfg.viewer_certificate
                .as_ref()
                .unwrap()
                .cloud_front_default_certificate,
            Some(true)
        );
        assert!(default.diff(&Settings::read(&cfg)).into_vec().is_empty());
        assert!(!default
            .diff(&Settings::read(&config_from(&s)))
            .into_vec()
            .is_empty());
    }

    #[test]
    fn the_template_declares_what_write_puts() {
        let mut s = wanted();
        s.response_headers_policy_id = Some("H1".into());
        let cfn = s.cloudformation();
        assert_eq!(cfn["Comment"], "provision:demo:site");
        let origin = &cfn["Origins"][0];
        assert_eq!(origin["Id"], ORIGIN_ID);
        assert_eq!(origin["OriginAccessControlId"], "E2OAC");
        assert_eq!(origin["S3OriginConfig"]["OriginAccessIdentity"], "");
        assert_eq!(
            origin["OriginShield"],
            json!({"Enabled": true, "OriginShieldRegion": "us-east-1"})
        );
        let behavior = &cfn["DefaultCacheBehavior"];
        assert_eq!(behavior["TargetOriginId"], ORIGIN_ID);
        assert_eq!(
            behavior["CachePolicyId"],
            "658327ea-f89d-4fab-a63d-7e88639e58f6"
        );
        assert_eq!(behavior["ResponseHeadersPolicyId"], "H1");
        assert!(behavior.get("OriginRequestPolicyId").is_none());
        assert_eq!(
            cfn["CustomErrorResponses"][0],
            json!({
                "ErrorCode": 403,
                "ResponsePagePath": "/index.html",
                "ResponseCode": 200,
                "ErrorCachingMinTTL": 10
            })
        );
        assert!(cfn.get("Aliases").is_none());
        assert_eq!(
            cfn["ViewerCertificate"],
            json!({"CloudFrontDefaultCertificate": true})
        );

        s.aliases = vec!["stt.example.com".into()];
        s.certificate = Some(Certificate::tls12("arn:aws:acm:us-east-1:1:certificate/a"));
        s.origin_shield = None;
        let cfn = s.cloudformation();
        assert_eq!(cfn["Aliases"], json!(["stt.example.com"]));
        assert_eq!(
            cfn["ViewerCertificate"],
            json!({
                "AcmCertificateArn": "arn:aws:acm:us-east-1:1:certificate/a",
                "SslSupportMethod": "sni-only",
                "MinimumProtocolVersion": "TLSv1.2_2021"
            })
        );
        assert_eq!(cfn["Origins"][0]["OriginShield"], json!({"Enabled": false}));
        s.error_responses.clear();
        assert!(s.cloudformation().get("CustomErrorResponses").is_none());
    }

    /// The speech-to-text site alone (bucket, OAC, headers policy, distribution, bucket
    /// policy, files) renders as a template whose references all resolve.
    #[test]
    fn the_site_renders_as_one_template() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack.yaml");
        let mut stack = crate::spec::Stack::load(&path).unwrap();
        // Without the functions, the site's config.js needs no upload API.
        stack.stt.functions = None;
        let cx = Context::symbolic(std::sync::Arc::new(stack), vec![]);
        let site = cx
            .stack
            .stt
            .website
            .clone()
            .expect("the repository has a site");
        let graph =
            crate::engine::executor::Graph::new(crate::systems::stt::website(&cx, &site)).unwrap();
        let template = crate::template::render(&cx, &graph, "site").unwrap();
        let resources = &template.body["Resources"];
        let distribution = &resources["DistributionSttSite"];
        assert_eq!(distribution["Type"], "AWS::CloudFront::Distribution");
        let config = &distribution["Properties"]["DistributionConfig"];
        assert_eq!(
            config["Origins"][0]["OriginAccessControlId"],
            json!({"Fn::GetAtt": ["OriginAccessControlSttSite", "Id"]})
        );
        assert_eq!(
            config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"],
            json!({"Fn::GetAtt": ["ResponseHeadersPolicySttSite", "Id"]})
        );
        // The bucket's REST domain, literal: no reference to the bucket.
        assert_eq!(
            config["Origins"][0]["DomainName"],
            json!({"Fn::Sub": format!(
                "{}-site-${{AWS::AccountId}}.s3.${{AWS::Region}}.amazonaws.com",
                cx.stack_name()
            )})
        );
        assert!(distribution.get("DependsOn").is_none());
        let policy = &resources["BucketPolicySttSite"];
        assert_eq!(policy["DependsOn"], json!(["BucketSttSite"]));
        let source_arn = &policy["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]
            ["StringEquals"]["AWS:SourceArn"];
        assert_eq!(
            source_arn,
            &json!({"Fn::Sub":
                "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${DistributionSttSite}"})
        );
        assert!(resources["BucketSttSite"].get("DeletionPolicy").is_none());
        assert_eq!(
            template.after_deploy,
            vec![(
                ResourceKey::new("site_files", "stt-site"),
                template.after_deploy[0].1
            )]
        );
    }

    fn config_from(settings: &Settings) -> DistributionConfig {
        let mut cfg = DistributionConfig::builder()
            .caller_reference("r")
            .comment("")
            .enabled(false)
            .build()
            .unwrap();
        settings.write(&mut cfg);
        cfg
    }

    #[test]
    fn the_existing_distribution_is_read_from_the_refusal() {
        let message = "The caller reference that you are using to create a distribution is \
                       associated with another distribution. Already exists: E1SXXXXXXXXXX";
        assert_eq!(existing_id(message), Some("E1SXXXXXXXXXX"));
        assert_eq!(
            existing_id("Already exists: E2O6U8DECVP5UD (Service: CloudFront)"),
            Some("E2O6U8DECVP5UD")
        );
        assert_eq!(
            existing_id("The caller reference is associated with another distribution."),
            None
        );
    }

    #[test]
    fn written_settings_read_back_equal() {
        let s = wanted();
        assert_eq!(Settings::read(&config_from(&s)), s);
        assert!(s
            .diff(&Settings::read(&config_from(&s)))
            .into_vec()
            .is_empty());
    }

    #[test]
    fn a_changed_field_is_named_with_both_values() {
        let mut cfg = config_from(&wanted());
        cfg.default_root_object = Some("other.html".into());
        cfg.is_ipv6_enabled = Some(false);
        let diffs = wanted().diff(&Settings::read(&cfg)).into_vec();
        let fields: Vec<(&str, &str, &str)> = diffs
            .iter()
            .map(|d| (d.field.as_str(), d.expected.as_str(), d.actual.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("DefaultRootObject", "index.html", "other.html"),
                ("IsIPV6Enabled", "true", "false")
            ]
        );
    }

    #[test]
    fn order_of_methods_and_error_responses_is_not_drift() {
        let mut live = wanted();
        live.allowed_methods.reverse();
        let mut cfg = config_from(&live);
        let items = cfg
            .custom_error_responses
            .as_mut()
            .unwrap()
            .items
            .as_mut()
            .unwrap();
        items.push(
            CustomErrorResponse::builder()
                .error_code(404)
                .response_page_path("/error.html")
                .response_code("404")
                .error_caching_min_ttl(10)
                .build()
                .unwrap(),
        );
        items.reverse();
        let mut want = wanted();
        want.error_responses
            .push((404, "/error.html".into(), "404".into(), 10));
        assert!(want.diff(&Settings::read(&cfg)).into_vec().is_empty());
    }

    #[test]
    fn origin_shield_off_reads_as_none_and_write_keeps_unmanaged_fields() {
        let mut s = wanted();
        s.origin_shield = None;
        let mut cfg = config_from(&wanted());
        cfg.aliases = None;
        cfg.web_acl_id = Some("acl".into());
        s.write(&mut cfg);
        assert_eq!(Settings::read(&cfg).origin_shield, None);
        assert_eq!(cfg.web_acl_id.as_deref(), Some("acl"));
    }
}
