//! The speech-to-text system. So far: its static website (console steps S1 to S7).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::{Context, Resource, ResourceKey};
use crate::resources::bucket::{self, Bucket};
use crate::resources::bucket_policy::BucketPolicy;
use crate::resources::distribution::{Distribution, Settings};
use crate::resources::oac::OriginAccessControl;
use crate::resources::site_files::SiteFiles;
use crate::spec::ViewerProtocolPolicy;

pub const SITE_BUCKET: ResourceKey = ResourceKey::new("bucket", "stt-site");
pub const SITE_OAC: ResourceKey = ResourceKey::new("origin_access_control", "stt-site");
pub const SITE_DISTRIBUTION: ResourceKey = ResourceKey::new("distribution", "stt-site");
pub const SITE_BUCKET_POLICY: ResourceKey = ResourceKey::new("bucket_policy", "stt-site");
pub const SITE_FILES: ResourceKey = ResourceKey::new("site_files", "stt-site");

/// Bucket names are global: the account id keeps two accounts' stacks of the same name apart.
pub fn site_bucket_name(cx: &Context) -> String {
    format!("{}-site-{}", cx.stack_name(), cx.aws.account_id)
}

pub fn website(cx: &Context) -> Vec<Arc<dyn Resource>> {
    let stack = &cx.stack;
    let site = &stack.stt.website;
    let bucket_name = site_bucket_name(cx);
    let origin_domain = Bucket::regional_domain(&bucket_name, &cx.aws.region);
    let comment = format!("provision:{}:stt-site", stack.name());

    let d = site.distribution.clone();
    let origin_shield = stack
        .origin_shield_region()
        .ok()
        .filter(|_| d.origin_shield.enabled);
    let settings_comment = comment.clone();
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
    };

    vec![
        Arc::new(Bucket {
            key: SITE_BUCKET,
            name: bucket_name.clone(),
            website: Some(bucket::Website {
                index_document: site.index_document.clone(),
                error_document: site.error_document.clone(),
            }),
        }),
        Arc::new(OriginAccessControl {
            key: SITE_OAC,
            name: format!("{}-stt-site", stack.name()),
        }),
        Arc::new(Distribution {
            key: SITE_DISTRIBUTION,
            bucket: SITE_BUCKET,
            origin_domain,
            oac: SITE_OAC,
            settings: Box::new(settings),
            comment,
        }),
        Arc::new(BucketPolicy {
            key: SITE_BUCKET_POLICY,
            bucket: SITE_BUCKET,
            bucket_name: bucket_name.clone(),
            distribution: SITE_DISTRIBUTION,
            tls_only: !cx.aws.local,
        }),
        Arc::new(SiteFiles {
            key: SITE_FILES,
            bucket: SITE_BUCKET,
            bucket_name,
            source_dir: stack.site_dir(),
        }),
    ]
}

fn sorted(methods: &[&str]) -> Vec<String> {
    let mut m: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    m.sort();
    m
}

pub fn outputs(cx: &Context) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    if let Some(name) = cx.output(&SITE_BUCKET, "name") {
        out.insert("stt_site_bucket", name);
    }
    if let Some(id) = cx.output(&SITE_DISTRIBUTION, "id") {
        out.insert("stt_site_distribution_id", id);
    }
    if let Some(domain) = cx.output(&SITE_DISTRIBUTION, "domain_name") {
        out.insert(
            "stt_site_url",
            site_url(
                &domain,
                cx.aws.local.then_some(cx.aws.endpoint.as_deref()).flatten(),
            ),
        );
    }
    out
}

/// The address a person opens. On the emulator, CloudFront answers on
/// `{label}.cloudfront.localhost` at the emulator's port (browsers resolve `*.localhost` to
/// the loopback address).
pub fn site_url(domain: &str, local_endpoint: Option<&str>) -> String {
    match local_endpoint {
        None => format!("https://{domain}/"),
        Some(endpoint) => {
            let label = domain.split('.').next().unwrap_or(domain);
            let port = endpoint
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
                .unwrap_or(4566);
            format!("http://{label}.cloudfront.localhost:{port}/")
        }
    }
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
