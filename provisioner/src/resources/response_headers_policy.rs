//! A CloudFront response headers policy: the security headers every page of the stack is served
//! with (HSTS, a Content-Security-Policy, `nosniff`, frame and referrer policy), and, where
//! other sites' players read the files, `Access-Control-Allow-Origin: *`. Not a console step:
//! the console build served its pages with S3's headers only (see `docs/security.md`).
//!
//! Like OACs, these policies carry no tags: the stack finds its own by a deterministic name,
//! which CloudFront keeps unique per account.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    FrameOptionsList, ReferrerPolicyList, ResponseHeadersPolicyAccessControlAllowHeaders,
    ResponseHeadersPolicyAccessControlAllowMethods,
    ResponseHeadersPolicyAccessControlAllowMethodsValues,
    ResponseHeadersPolicyAccessControlAllowOrigins, ResponseHeadersPolicyConfig,
    ResponseHeadersPolicyContentSecurityPolicy, ResponseHeadersPolicyContentTypeOptions,
    ResponseHeadersPolicyCorsConfig, ResponseHeadersPolicyFrameOptions,
    ResponseHeadersPolicyReferrerPolicy, ResponseHeadersPolicySecurityHeadersConfig,
    ResponseHeadersPolicyStrictTransportSecurity, ResponseHeadersPolicyType,
};
use serde_json::{json, Map, Value};

use crate::engine::retry::{error_code, retry_when, Backoff};
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, Planned, Resource, ResourceKey,
};
use crate::template::{CfnResource, Part};

/// Two years, the value the HSTS preload list asks for.
pub const HSTS_MAX_AGE_S: i32 = 63_072_000;

/// The headers the stack wants on every answer of one distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    pub content_security_policy: String,
    /// `Access-Control-Allow-Origin: *` on GET and HEAD answers (the VOD renditions when any
    /// origin's player may read them).
    pub cors_any_origin: bool,
}

impl Headers {
    /// The policy's configuration. Every header overrides what the origin sends: S3 sends
    /// none of them, and an object's own metadata must not weaken them.
    fn config(&self, name: &str, comment: &str) -> ResponseHeadersPolicyConfig {
        let security = ResponseHeadersPolicySecurityHeadersConfig::builder()
            .strict_transport_security(
                ResponseHeadersPolicyStrictTransportSecurity::builder()
                    .r#override(true)
                    .access_control_max_age_sec(HSTS_MAX_AGE_S)
                    // The stack's domain only: an operator's other subdomains are theirs to
                    // decide.
                    .include_subdomains(false)
                    .preload(false)
                    .build()
                    .expect("override and max age set"),
            )
            .content_security_policy(
                ResponseHeadersPolicyContentSecurityPolicy::builder()
                    .r#override(true)
                    .content_security_policy(&self.content_security_policy)
                    .build()
                    .expect("override and policy set"),
            )
            .content_type_options(
                ResponseHeadersPolicyContentTypeOptions::builder()
                    .r#override(true)
                    .build()
                    .expect("override set"),
            )
            .frame_options(
                ResponseHeadersPolicyFrameOptions::builder()
                    .r#override(true)
                    .frame_option(FrameOptionsList::Deny)
                    .build()
                    .expect("override and option set"),
            )
            .referrer_policy(
                ResponseHeadersPolicyReferrerPolicy::builder()
                    .r#override(true)
                    .referrer_policy(ReferrerPolicyList::StrictOriginWhenCrossOrigin)
                    .build()
                    .expect("override and policy set"),
            )
            .build();
        let cors = self.cors_any_origin.then(|| {
            ResponseHeadersPolicyCorsConfig::builder()
                .access_control_allow_origins(
                    ResponseHeadersPolicyAccessControlAllowOrigins::builder()
                        .quantity(1)
                        .items("*")
                        .build()
                        .expect("quantity and items set"),
                )
                .access_control_allow_headers(
                    ResponseHeadersPolicyAccessControlAllowHeaders::builder()
                        .quantity(1)
                        .items("*")
                        .build()
                        .expect("quantity and items set"),
                )
                .access_control_allow_methods(
                    ResponseHeadersPolicyAccessControlAllowMethods::builder()
                        .quantity(2)
                        .items(ResponseHeadersPolicyAccessControlAllowMethodsValues::Get)
                        .items(ResponseHeadersPolicyAccessControlAllowMethodsValues::Head)
                        .build()
                        .expect("quantity and items set"),
                )
                .access_control_allow_credentials(false)
                // A CORS answer S3 gives (from the bucket's own rules) is kept.
                .origin_override(false)
                .build()
                .expect("required fields set")
        });
        ResponseHeadersPolicyConfig::builder()
            .name(name)
            .comment(comment)
            .security_headers_config(security)
            .set_cors_config(cors)
            .build()
            .expect("name set")
    }
}

/// A configuration reduced to one line per setting, named as in the CloudFront API, so the
/// wanted and the live policy compare field by field (headers added by hand included).
pub fn describe(cfg: &ResponseHeadersPolicyConfig) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    out.insert("Comment", cfg.comment().unwrap_or_default().to_owned());
    let sec = cfg.security_headers_config();
    let overridden = |value: String, over: bool| {
        if over {
            format!("{value} (override)")
        } else {
            value
        }
    };
    out.insert(
        "SecurityHeadersConfig.StrictTransportSecurity",
        sec.and_then(|s| s.strict_transport_security())
            .map(|h| {
                let mut v = format!("max-age={}", h.access_control_max_age_sec());
                if h.include_subdomains() == Some(true) {
                    v.push_str("; includeSubDomains");
                }
                if h.preload() == Some(true) {
                    v.push_str("; preload");
                }
                overridden(v, h.r#override())
            })
            .unwrap_or_else(not_set),
    );
    out.insert(
        "SecurityHeadersConfig.ContentSecurityPolicy",
        sec.and_then(|s| s.content_security_policy())
            .map(|h| overridden(h.content_security_policy().to_owned(), h.r#override()))
            .unwrap_or_else(not_set),
    );
    out.insert(
        "SecurityHeadersConfig.ContentTypeOptions",
        sec.and_then(|s| s.content_type_options())
            .map(|h| overridden("nosniff".into(), h.r#override()))
            .unwrap_or_else(not_set),
    );
    out.insert(
        "SecurityHeadersConfig.FrameOptions",
        sec.and_then(|s| s.frame_options())
            .map(|h| overridden(h.frame_option().as_str().to_owned(), h.r#override()))
            .unwrap_or_else(not_set),
    );
    out.insert(
        "SecurityHeadersConfig.ReferrerPolicy",
        sec.and_then(|s| s.referrer_policy())
            .map(|h| overridden(h.referrer_policy().as_str().to_owned(), h.r#override()))
            .unwrap_or_else(not_set),
    );
    out.insert(
        "SecurityHeadersConfig.XSSProtection",
        sec.and_then(|s| s.xss_protection())
            .map(|h| overridden(format!("protection={}", h.protection()), h.r#override()))
            .unwrap_or_else(not_set),
    );
    out.insert(
        "CorsConfig",
        cfg.cors_config()
            .map(|c| {
                let origins = c
                    .access_control_allow_origins()
                    .map(|o| o.items().join(","))
                    .unwrap_or_default();
                let methods = c
                    .access_control_allow_methods()
                    .map(|m| {
                        let mut m: Vec<&str> = m.items().iter().map(|v| v.as_str()).collect();
                        m.sort();
                        m.join(",")
                    })
                    .unwrap_or_default();
                let headers = c
                    .access_control_allow_headers()
                    .map(|h| h.items().join(","))
                    .unwrap_or_default();
                format!(
                    "origins={origins}; methods={methods}; headers={headers}; credentials={}; \
                     override={}",
                    c.access_control_allow_credentials(),
                    c.origin_override()
                )
            })
            .unwrap_or_else(not_set),
    );
    out.insert(
        "CustomHeadersConfig",
        cfg.custom_headers_config()
            .map(|c| {
                c.items()
                    .iter()
                    .map(|h| format!("{}: {}", h.header(), h.value()))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(not_set),
    );
    out.insert(
        "RemoveHeadersConfig",
        cfg.remove_headers_config()
            .map(|c| {
                c.items()
                    .iter()
                    .map(|h| h.header().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(not_set),
    );
    out.insert(
        "ServerTimingHeadersConfig",
        cfg.server_timing_headers_config()
            .filter(|c| c.enabled())
            .map(|_| "enabled".to_owned())
            .unwrap_or_else(not_set),
    );
    out
}

/// A configuration as CloudFormation's `ResponseHeadersPolicyConfig` declares it: the
/// settings [`Headers::config`] makes (security headers, CORS), read from that configuration.
pub fn cloudformation_config(cfg: &ResponseHeadersPolicyConfig) -> Value {
    let mut out = Map::new();
    out.insert("Name".into(), json!(cfg.name()));
    if let Some(comment) = cfg.comment() {
        out.insert("Comment".into(), json!(comment));
    }
    if let Some(sec) = cfg.security_headers_config() {
        let mut headers = Map::new();
        if let Some(h) = sec.strict_transport_security() {
            headers.insert(
                "StrictTransportSecurity".into(),
                json!({
                    "AccessControlMaxAgeSec": h.access_control_max_age_sec(),
                    "IncludeSubdomains": h.include_subdomains().unwrap_or(false),
                    "Preload": h.preload().unwrap_or(false),
                    "Override": h.r#override(),
                }),
            );
        }
        if let Some(h) = sec.content_security_policy() {
            headers.insert(
                "ContentSecurityPolicy".into(),
                json!({
                    "ContentSecurityPolicy": h.content_security_policy(),
                    "Override": h.r#override(),
                }),
            );
        }
        if let Some(h) = sec.content_type_options() {
            headers.insert(
                "ContentTypeOptions".into(),
                json!({"Override": h.r#override()}),
            );
        }
        if let Some(h) = sec.frame_options() {
            headers.insert(
                "FrameOptions".into(),
                json!({"FrameOption": h.frame_option().as_str(), "Override": h.r#override()}),
            );
        }
        if let Some(h) = sec.referrer_policy() {
            headers.insert(
                "ReferrerPolicy".into(),
                json!({
                    "ReferrerPolicy": h.referrer_policy().as_str(),
                    "Override": h.r#override(),
                }),
            );
        }
        if let Some(h) = sec.xss_protection() {
            let mut xss = json!({"Protection": h.protection(), "Override": h.r#override()});
            if let Some(mode) = h.mode_block() {
                xss["ModeBlock"] = json!(mode);
            }
            if let Some(uri) = h.report_uri() {
                xss["ReportUri"] = json!(uri);
            }
            headers.insert("XSSProtection".into(), xss);
        }
        out.insert("SecurityHeadersConfig".into(), Value::Object(headers));
    }
    if let Some(c) = cfg.cors_config() {
        let mut cors = json!({
            "AccessControlAllowCredentials": c.access_control_allow_credentials(),
            "AccessControlAllowHeaders": {
                "Items": c.access_control_allow_headers().map(|h| h.items()).unwrap_or_default(),
            },
            "AccessControlAllowMethods": {
                "Items": c
                    .access_control_allow_methods()
                    .map(|m| m.items().iter().map(|v| v.as_str()).collect::<Vec<_>>())
                    .unwrap_or_default(),
            },
            "AccessControlAllowOrigins": {
                "Items": c.access_control_allow_origins().map(|o| o.items()).unwrap_or_default(),
            },
            "OriginOverride": c.origin_override(),
        });
        if let Some(age) = c.access_control_max_age_sec() {
            cors["AccessControlMaxAgeSec"] = json!(age);
        }
        out.insert("CorsConfig".into(), cors);
    }
    Value::Object(out)
}

fn not_set() -> String {
    "(not set)".into()
}

pub struct ResponseHeadersPolicy {
    pub key: ResourceKey,
    /// At most 128 characters; unique per account.
    pub name: String,
    pub headers: Headers,
}

impl ResponseHeadersPolicy {
    fn comment(cx: &Context) -> String {
        format!("Managed by provision for stack {}", cx.stack_name())
    }

    fn wanted(&self, cx: &Context) -> ResponseHeadersPolicyConfig {
        self.headers.config(&self.name, &Self::comment(cx))
    }

    /// The stack's policy: its id and configuration.
    async fn find(
        &self,
        cx: &Context,
    ) -> Result<Option<(String, ResponseHeadersPolicyConfig)>, Error> {
        let mut marker = None;
        loop {
            let out = cx
                .aws
                .cloudfront
                .list_response_headers_policies()
                .r#type(ResponseHeadersPolicyType::Custom)
                .set_marker(marker)
                .send()
                .await
                .step(&self.key, "ListResponseHeadersPolicies")?;
            let Some(list) = out.response_headers_policy_list() else {
                return Ok(None);
            };
            let found = list
                .items()
                .iter()
                .filter_map(|s| s.response_headers_policy())
                .find_map(|p| {
                    let cfg = p.response_headers_policy_config()?;
                    (cfg.name() == self.name).then(|| (p.id().to_owned(), cfg.clone()))
                });
            if found.is_some() {
                return Ok(found);
            }
            match list.next_marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    async fn etag(&self, cx: &Context, id: &str) -> Result<Option<String>, Error> {
        match cx
            .aws
            .cloudfront
            .get_response_headers_policy()
            .id(id)
            .send()
            .await
        {
            Ok(out) => Ok(out.e_tag().map(str::to_owned)),
            Err(e) if error_code(&e) == Some("NoSuchResponseHeadersPolicy") => Ok(None),
            Err(e) => Err(e).step(&self.key, "GetResponseHeadersPolicy"),
        }
    }

    async fn create(&self, cx: &Context) -> Result<String, Error> {
        match cx
            .aws
            .cloudfront
            .create_response_headers_policy()
            .response_headers_policy_config(self.wanted(cx))
            .send()
            .await
        {
            Ok(out) => Ok(out
                .response_headers_policy()
                .map(|p| p.id().to_owned())
                .unwrap_or_default()),
            // Made by a run that crashed before it could see the answer; updated next.
            Err(e) if error_code(&e) == Some("ResponseHeadersPolicyAlreadyExists") => {
                let (id, _) = self.find(cx).await?.ok_or_else(|| Error::Refused {
                    resource: self.key.clone(),
                    message: format!(
                        "CloudFront says a response headers policy named {} exists, but it is \
                         not among the account's custom policies",
                        self.name
                    ),
                })?;
                self.update(cx, &id).await?;
                Ok(id)
            }
            Err(e) => Err(e).step(&self.key, "CreateResponseHeadersPolicy"),
        }
    }

    async fn update(&self, cx: &Context, id: &str) -> Result<(), Error> {
        retry_when(
            Backoff::SETTLING,
            |e: &Error| e.code() == Some("PreconditionFailed"),
            || async {
                let etag = self.etag(cx, id).await?;
                cx.aws
                    .cloudfront
                    .update_response_headers_policy()
                    .id(id)
                    .set_if_match(etag)
                    .response_headers_policy_config(self.wanted(cx))
                    .send()
                    .await
                    .step(&self.key, "UpdateResponseHeadersPolicy")?;
                Ok(())
            },
        )
        .await
    }
}

#[async_trait]
impl Resource for ResponseHeadersPolicy {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some((id, live)) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.name.clone()));
        };
        cx.publish(&self.key, "id", &id);
        let wanted = describe(&self.wanted(cx));
        let live = describe(&live);
        let mut diff = Diff::default();
        for (field, expected) in &wanted {
            diff.field(field, expected.as_str(), live[field].as_str());
        }
        Ok(Planned::from_diff(self.key.clone(), id, diff.into_vec()))
    }

    async fn apply(&self, cx: &Context, _planned: &Planned) -> Result<(), Error> {
        let id = match self.find(cx).await? {
            Some((id, _)) => {
                self.update(cx, &id).await?;
                id
            }
            None => self.create(cx).await?,
        };
        cx.publish(&self.key, "id", id);
        Ok(())
    }

    /// `AWS::CloudFront::ResponseHeadersPolicy` with the configuration `apply` writes.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let policy = CfnResource::new(
            &self.key,
            "AWS::CloudFront::ResponseHeadersPolicy",
            json!({"ResponseHeadersPolicyConfig": cloudformation_config(&self.wanted(cx))}),
        );
        Ok(vec![Part::Resource(policy)])
    }

    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let Some((id, _)) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        // The distribution being deleted holds the policy until CloudFront has let it go.
        retry_when(
            Backoff::SETTLING,
            |e: &Error| {
                matches!(
                    e.code(),
                    Some("ResponseHeadersPolicyInUse" | "PreconditionFailed")
                )
            },
            || async {
                let Some(etag) = self.etag(cx, &id).await? else {
                    return Ok(Deleted::Absent);
                };
                match cx
                    .aws
                    .cloudfront
                    .delete_response_headers_policy()
                    .id(&id)
                    .if_match(etag)
                    .send()
                    .await
                {
                    Ok(_) => Ok(Deleted::Deleted),
                    Err(e) if error_code(&e) == Some("NoSuchResponseHeadersPolicy") => {
                        Ok(Deleted::Absent)
                    }
                    Err(e) => Err(e).step(&self.key, "DeleteResponseHeadersPolicy"),
                }
            },
        )
        .await
    }
}

/// A Content-Security-Policy for a page of the stack: its own scripts, styles and images only,
/// no plugins, no framing, no `<base>` and no form posted elsewhere; `extra` adds sources to a
/// directive (or the directive itself), in the order given, so the text is deterministic.
pub fn content_security_policy(extra: &[(&str, &str)]) -> String {
    let mut directives: Vec<(&str, Vec<&str>)> = vec![
        ("default-src", vec!["'none'"]),
        ("script-src", vec!["'self'"]),
        ("style-src", vec!["'self'"]),
        ("img-src", vec!["'self'", "data:"]),
        ("connect-src", vec!["'self'"]),
        ("base-uri", vec!["'none'"]),
        ("form-action", vec!["'none'"]),
        ("frame-ancestors", vec!["'none'"]),
        ("object-src", vec!["'none'"]),
    ];
    for (name, source) in extra {
        match directives.iter_mut().find(|(n, _)| n == name) {
            Some((_, sources)) if !sources.contains(source) => sources.push(source),
            Some(_) => {}
            None => directives.push((name, vec![source])),
        }
    }
    directives
        .iter()
        .map(|(name, sources)| format!("{name} {}", sources.join(" ")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_adds_sources_in_order_and_new_directives_at_the_end() {
        let csp = content_security_policy(&[
            (
                "connect-src",
                "https://*.execute-api.eu-west-1.amazonaws.com",
            ),
            ("media-src", "'self'"),
            ("media-src", "blob:"),
            ("connect-src", "'self'"),
        ]);
        assert_eq!(
            csp,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' https://*.execute-api.eu-west-1.amazonaws.com; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'; \
             media-src 'self' blob:"
        );
        // No inline script, no eval: the pages load their scripts from files.
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn the_template_declares_the_headers_apply_writes() {
        let headers = Headers {
            content_security_policy: content_security_policy(&[]),
            cors_any_origin: true,
        };
        let cfn = cloudformation_config(&headers.config("demo-vod-output-headers", "Managed"));
        assert_eq!(cfn["Name"], "demo-vod-output-headers");
        let sec = &cfn["SecurityHeadersConfig"];
        assert_eq!(
            sec["StrictTransportSecurity"],
            json!({
                "AccessControlMaxAgeSec": HSTS_MAX_AGE_S,
                "IncludeSubdomains": false,
                "Preload": false,
                "Override": true
            })
        );
        assert_eq!(
            sec["ContentSecurityPolicy"]["ContentSecurityPolicy"],
            headers.content_security_policy
        );
        assert_eq!(sec["ContentTypeOptions"], json!({"Override": true}));
        assert_eq!(sec["FrameOptions"]["FrameOption"], "DENY");
        assert_eq!(
            sec["ReferrerPolicy"]["ReferrerPolicy"],
            "strict-origin-when-cross-origin"
        );
        assert_eq!(
            cfn["CorsConfig"]["AccessControlAllowMethods"]["Items"],
            json!(["GET", "HEAD"])
        );
        assert_eq!(cfn["CorsConfig"]["OriginOverride"], false);
        let own_origin_only = Headers {
            cors_any_origin: false,
            ..headers
        };
        assert!(cloudformation_config(&own_origin_only.config("n", "c"))
            .get("CorsConfig")
            .is_none());
    }

    #[test]
    fn a_config_read_back_equals_the_wanted_one_and_a_hand_change_shows() {
        let headers = Headers {
            content_security_policy: content_security_policy(&[]),
            cors_any_origin: true,
        };
        let wanted = headers.config("demo-vod-output-headers", "Managed by provision");
        let described = describe(&wanted);
        assert_eq!(
            described["SecurityHeadersConfig.StrictTransportSecurity"],
            "max-age=63072000 (override)"
        );
        assert_eq!(
            described["CorsConfig"],
            "origins=*; methods=GET,HEAD; headers=*; credentials=false; override=false"
        );
        assert_eq!(described["CustomHeadersConfig"], "(not set)");

        let weakened = Headers {
            content_security_policy: "default-src *".into(),
            cors_any_origin: false,
        }
        .config("demo-vod-output-headers", "Managed by provision");
        let live = describe(&weakened);
        let changed: Vec<&str> = described
            .iter()
            .filter(|(k, v)| live[*k] != **v)
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            changed,
            ["CorsConfig", "SecurityHeadersConfig.ContentSecurityPolicy"]
        );
    }
}
