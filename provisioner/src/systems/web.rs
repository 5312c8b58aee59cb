//! A private bucket served through CloudFront with origin access control, and the files of a
//! folder uploaded into it: the speech-to-text site (console steps S1 to S7) and the
//! video-on-demand output with its player page (V1, V2, V8) are both built from this. Also the
//! buckets that only hold data (the audio uploads, the VOD sources), protected the same way.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Context, Resource, ResourceKey};
use crate::resources::bucket::{self, Bucket};
use crate::resources::bucket_policy::BucketPolicy;
use crate::resources::bucket_protection::Lifecycle;
use crate::resources::distribution::{Certificate, Distribution, Settings};
use crate::resources::oac::OriginAccessControl;
use crate::resources::response_headers_policy::{Headers, ResponseHeadersPolicy};
use crate::resources::site_files::{GeneratedFile, SiteFiles};
use crate::spec::{self, ViewerProtocolPolicy};

pub struct ServedBucket {
    /// Names the OAC and marks the distribution's comment, e.g. `stt-site`.
    pub label: &'static str,
    pub bucket: ResourceKey,
    pub oac: ResourceKey,
    pub distribution: ResourceKey,
    /// The security headers of every answer (and CORS for [`Cors::AnyOrigin`]).
    pub headers_policy: ResourceKey,
    /// The pages' Content-Security-Policy (see [`content_security_policy`]).
    pub content_security_policy: String,
    pub policy: ResourceKey,
    pub files: ResourceKey,
    pub bucket_name: String,
    pub static_website: Option<bucket::Website>,
    pub settings: spec::Distribution,
    pub source_dir: PathBuf,
    /// Names below `source_dir` never uploaded (build files, examples).
    pub exclude: Vec<&'static str>,
    pub generated: Vec<GeneratedFile>,
    /// Whether pages of other origins read the files (the VOD output): see [`Cors`].
    pub cors: Option<Cors>,
    /// The retention rule when the bucket holds data besides the uploaded files.
    pub lifecycle: Option<Lifecycle>,
}

/// CloudFront in front of a bucket with CORS rules. The managed cache policy keys on the path
/// only and forwards no `Origin`, so the bucket's CORS rules never apply and an answer cached
/// for a request without `Origin` would be served to cross-origin players too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    /// Any origin: CloudFront adds `Access-Control-Allow-Origin: *` itself (the stack's
    /// response headers policy), and forwards `Origin` to S3 (managed `CORS-S3Origin`).
    AnyOrigin,
    /// Named origins: `Origin` is forwarded so S3 answers from its CORS rules.
    NamedOrigins,
}

pub use crate::resources::response_headers_policy::content_security_policy;

/// Managed origin request policy `CORS-S3Origin`: forwards `Origin`,
/// `Access-Control-Request-Headers` and `Access-Control-Request-Method` to S3.
pub const CORS_S3_ORIGIN: &str = "88a5eaf4-2fd4-4709-b370-b4c650ea3fcf";

pub fn served_bucket(cx: &Context, s: ServedBucket) -> Vec<Arc<dyn Resource>> {
    let stack = &cx.stack;
    let origin_domain = Bucket::regional_domain(&s.bucket_name, &cx.aws.region);
    let comment = format!("provision:{}:{}", stack.name(), s.label);

    let d = s.settings.clone();
    // The emulator serves no custom domain (nothing resolves it): the names are left out.
    let custom_domain = d.custom_domain.clone().filter(|_| !cx.aws.local);
    let served_domain = custom_domain
        .as_ref()
        .and_then(|c| c.names.first())
        .map(|n| n.as_str().to_owned());
    let origin_shield = stack
        .origin_shield_region(&d)
        .ok()
        .filter(|_| d.origin_shield.enabled);
    let settings_comment = comment.clone();
    let cors = s.cors;
    // The emulator speaks plain HTTP only: a redirect to HTTPS would lead nowhere there.
    let viewer_protocol_policy = if cx.aws.local {
        ViewerProtocolPolicy::AllowAll
    } else {
        d.viewer_protocol_policy
    };
    let settings = move |origin_domain: &str, oac_id: &str| Settings {
        comment: settings_comment.clone(),
        enabled: d.enabled,
        default_root_object: d.default_root_object.clone(),
        price_class: d.price_class.as_str().into(),
        http_version: d.http_version.as_str().into(),
        ipv6: d.ipv6,
        origin_domain: origin_domain.into(),
        origin_access_control_id: oac_id.into(),
        origin_shield: origin_shield.clone(),
        viewer_protocol_policy: viewer_protocol_policy.as_str().into(),
        cache_policy_id: d.cache_policy.id().into(),
        origin_request_policy_id: cors.map(|_| CORS_S3_ORIGIN.to_owned()),
        // The stack's own policy, set by the distribution once it exists.
        response_headers_policy_id: None,
        allowed_methods: sorted(d.allowed_methods.methods()),
        // Only GET and HEAD answers are cached, as in the console's default.
        cached_methods: sorted(&["GET", "HEAD"]),
        compress: d.compress,
        error_responses: {
            let mut r: Vec<_> = d
                .error_responses
                .iter()
                .map(|e| {
                    (
                        i32::from(e.error_code.0),
                        e.response_page_path.as_str().to_owned(),
                        e.response_code.0.to_string(),
                        i64::from(e.caching_min_ttl),
                    )
                })
                .collect();
            r.sort();
            r
        },
        aliases: {
            let mut names: Vec<String> = custom_domain
                .iter()
                .flat_map(|c| c.names.iter().map(|n| n.as_str().to_owned()))
                .collect();
            names.sort();
            names
        },
        certificate: custom_domain
            .as_ref()
            .map(|c| Certificate::tls12(c.certificate_arn.as_str())),
    };

    vec![
        Arc::new(Bucket {
            key: s.bucket.clone(),
            name: s.bucket_name.clone(),
            website: s.static_website,
            lifecycle: s.lifecycle,
        }),
        Arc::new(OriginAccessControl {
            key: s.oac.clone(),
            name: format!("{}-{}", stack.name(), s.label),
        }),
        Arc::new(ResponseHeadersPolicy {
            key: s.headers_policy.clone(),
            name: format!("{}-{}-headers", stack.name(), s.label),
            headers: Headers {
                content_security_policy: s.content_security_policy,
                cors_any_origin: cors == Some(Cors::AnyOrigin),
            },
        }),
        Arc::new(Distribution {
            key: s.distribution.clone(),
            bucket: s.bucket.clone(),
            origin_domain,
            oac: s.oac,
            headers_policy: s.headers_policy,
            settings: Box::new(settings),
            comment,
            served_domain,
        }),
        Arc::new(BucketPolicy {
            key: s.policy,
            bucket: s.bucket.clone(),
            bucket_name: s.bucket_name.clone(),
            reader: Some(s.distribution.clone()),
            tls_only: !cx.aws.local,
        }),
        Arc::new(SiteFiles {
            key: s.files,
            bucket: s.bucket,
            bucket_name: s.bucket_name,
            source_dir: s.source_dir,
            exclude: s.exclude,
            generated: s.generated,
            distribution: Some(s.distribution),
        }),
    ]
}

/// A private bucket holding data (uploads, results), read by no distribution: encrypted, ACLs
/// off, objects kept `retention_days` (or forever when `None`), and requests without TLS
/// refused (on AWS; the emulator speaks plain HTTP).
pub fn data_bucket(
    cx: &Context,
    bucket: ResourceKey,
    policy: ResourceKey,
    name: String,
    retention_days: Option<u32>,
) -> Vec<Arc<dyn Resource>> {
    let tls_only = !cx.aws.local;
    let mut resources: Vec<Arc<dyn Resource>> = vec![Arc::new(Bucket {
        key: bucket.clone(),
        name: name.clone(),
        website: None,
        lifecycle: Some(Lifecycle::data(retention_days)),
    })];
    if crate::resources::bucket_policy::needed(false, tls_only) {
        resources.push(Arc::new(BucketPolicy {
            key: policy,
            bucket,
            bucket_name: name,
            reader: None,
            tls_only,
        }));
    }
    resources
}

/// The address a distribution of the stack serves, once it exists.
pub fn served_url(cx: &Context, distribution: &ResourceKey) -> Option<String> {
    let emulator = cx.aws.local.then_some(cx.aws.endpoint.as_deref()).flatten();
    let domain = match emulator {
        Some(_) => cx.output(distribution, "domain_name")?,
        // The custom domain when the stack has one.
        None => cx.output(distribution, "served_domain")?,
    };
    Some(site_url(&domain, emulator))
}

/// The address a person opens. On the emulator, CloudFront answers on
/// `{label}.cloudfront.localhost` at the emulator's port (browsers resolve `*.localhost` to
/// the loopback address).
pub fn site_url(domain: &str, local_endpoint: Option<&str>) -> String {
    match local_endpoint {
        None => format!("https://{domain}/"),
        Some(endpoint) => {
            let label = crate::template::first_label(domain);
            let port = endpoint
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
                .unwrap_or(4566);
            format!("http://{label}.cloudfront.localhost:{port}/")
        }
    }
}

fn sorted(methods: &[&str]) -> Vec<String> {
    let mut m: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    m.sort();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_url_points_at_cloudfront_or_the_emulator() {
        assert_eq!(
            site_url("d111.cloudfront.net", None),
            "https://d111.cloudfront.net/"
        );
        assert_eq!(
            site_url("d111.cloudfront.net", Some("http://127.0.0.1:4566")),
            "http://d111.cloudfront.localhost:4566/"
        );
    }
}
