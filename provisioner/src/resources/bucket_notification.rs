//! A bucket's event notifications to Lambda functions (console steps S24, S28, V6): one rule
//! per prefix and suffix. The notification configuration is one document per bucket, owned
//! whole by this resource; it is put only after the functions' permissions exist, since S3
//! validates the destinations when it is put (`aws-pitfalls.md`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, S3KeyFilter,
};
use serde_json::{json, Value};

use super::bucket;
use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Error, FieldDiff, Planned, Resource, ResourceKey,
};
use crate::template::Part;

pub struct Rule {
    /// The configuration id, e.g. `transcribe-mp3`.
    pub id: String,
    /// The function invoked (its `arn` output).
    pub function: ResourceKey,
    pub prefix: String,
    pub suffix: String,
}

pub struct BucketNotification {
    pub key: ResourceKey,
    pub bucket: ResourceKey,
    pub bucket_name: String,
    pub rules: Vec<Rule>,
    /// The Lambda permissions S3 must find when the configuration is put.
    pub permissions: Vec<ResourceKey>,
}

/// One rule as compared: function ARN, events, prefix, suffix.
pub type RuleState = (String, Vec<String>, String, String);

const EVENT: &str = "s3:ObjectCreated:*";

/// Rules by id, from a live configuration.
pub fn live_rules(configs: &[LambdaFunctionConfiguration]) -> BTreeMap<String, RuleState> {
    configs
        .iter()
        .map(|c| {
            let filter = |name: FilterRuleName| {
                c.filter()
                    .and_then(|f| f.key())
                    .map(|k| k.filter_rules())
                    .unwrap_or_default()
                    .iter()
                    .find(|r| {
                        r.name()
                            .is_some_and(|n| n.as_str().eq_ignore_ascii_case(name.as_str()))
                    })
                    .and_then(|r| r.value())
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut events: Vec<String> =
                c.events().iter().map(|e| e.as_str().to_owned()).collect();
            events.sort();
            (
                c.id().unwrap_or_default().to_owned(),
                (
                    c.lambda_function_arn().to_owned(),
                    events,
                    filter(FilterRuleName::Prefix),
                    filter(FilterRuleName::Suffix),
                ),
            )
        })
        .collect()
}

/// For each wanted rule no live rule has the id of, the id of a live rule with the same
/// content that no wanted rule claims by id. CloudFormation's `LambdaConfiguration` has no
/// `Id`: S3 generates one, so a rule CloudFormation put is found by what it does.
pub fn matched_by_content<'a>(
    wanted: &'a BTreeMap<String, RuleState>,
    live: &'a BTreeMap<String, RuleState>,
) -> BTreeMap<&'a str, &'a str> {
    let mut matched = BTreeMap::new();
    let mut unclaimed: Vec<(&String, &RuleState)> = live
        .iter()
        .filter(|(id, _)| !wanted.contains_key(*id))
        .collect();
    for (id, rule) in wanted.iter().filter(|(id, _)| !live.contains_key(*id)) {
        if let Some(i) = unclaimed.iter().position(|(_, r)| *r == rule) {
            let (live_id, _) = unclaimed.remove(i);
            matched.insert(id.as_str(), live_id.as_str());
        }
    }
    matched
}

/// One diff per rule that is missing, different or not ours (a live rule matching no wanted
/// one, by id or by content).
pub fn rule_diffs(
    wanted: &BTreeMap<String, RuleState>,
    live: &BTreeMap<String, RuleState>,
) -> Vec<FieldDiff> {
    let show = |r: Option<&RuleState>| match r {
        Some((arn, events, prefix, suffix)) => {
            let function = arn.rsplit(':').next().unwrap_or(arn);
            format!("{} {prefix}*{suffix} -> {function}", events.join(","))
        }
        None => "(missing)".to_owned(),
    };
    let matched = matched_by_content(wanted, live);
    let in_sync: std::collections::BTreeSet<&str> = matched
        .iter()
        .flat_map(|(wanted_id, live_id)| [*wanted_id, *live_id])
        .collect();
    let ids: std::collections::BTreeSet<&String> = wanted.keys().chain(live.keys()).collect();
    ids.into_iter()
        .filter(|id| !in_sync.contains(id.as_str()) && wanted.get(*id) != live.get(*id))
        .map(|id| {
            FieldDiff::new(
                format!("LambdaFunctionConfigurations.{id}"),
                show(wanted.get(id)),
                show(live.get(id)),
            )
        })
        .collect()
}

/// One rule as S3 takes it. An empty prefix or suffix is left out rather than sent as an
/// empty filter rule, and a rule with neither has no filter at all.
pub fn lambda_configuration(rule: &Rule, function_arn: String) -> LambdaFunctionConfiguration {
    let filter_rules: Vec<FilterRule> = [
        (FilterRuleName::Prefix, &rule.prefix),
        (FilterRuleName::Suffix, &rule.suffix),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| FilterRule::builder().name(name).value(value).build())
    .collect();
    let filter = (!filter_rules.is_empty()).then(|| {
        NotificationConfigurationFilter::builder()
            .key(
                S3KeyFilter::builder()
                    .set_filter_rules(Some(filter_rules))
                    .build(),
            )
            .build()
    });
    LambdaFunctionConfiguration::builder()
        .id(&rule.id)
        .lambda_function_arn(function_arn)
        .events(Event::from(EVENT))
        .set_filter(filter)
        .build()
        .expect("function ARN and events are set")
}

/// One rule as CloudFormation declares it, read from what `apply` puts: one
/// `LambdaConfiguration` per event, with the same filter rules.
fn cloudformation_configurations(config: &LambdaFunctionConfiguration) -> Vec<Value> {
    let rules: Vec<Value> = config
        .filter()
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            json!({
                "Name": r.name().map(|n| n.as_str()).unwrap_or_default(),
                "Value": r.value().unwrap_or_default(),
            })
        })
        .collect();
    config
        .events()
        .iter()
        .map(|event| {
            let mut out = json!({
                "Event": event.as_str(),
                "Function": config.lambda_function_arn(),
            });
            if !rules.is_empty() {
                out["Filter"] = json!({"S3Key": {"Rules": rules}});
            }
            out
        })
        .collect()
}

impl BucketNotification {
    fn wanted(&self, cx: &Context) -> BTreeMap<String, RuleState> {
        self.rules
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    (
                        cx.output(&r.function, "arn").unwrap_or_default(),
                        vec![EVENT.to_owned()],
                        r.prefix.clone(),
                        r.suffix.clone(),
                    ),
                )
            })
            .collect()
    }

    /// The whole configuration `apply` puts: the wanted rules under their own ids. The put
    /// replaces the bucket's configuration, so a wanted rule S3 holds under another id (one
    /// CloudFormation put) is replaced, not duplicated: S3 refuses two rules whose events and
    /// filters overlap ("Configurations overlap").
    fn configurations(&self, cx: &Context) -> Result<Vec<LambdaFunctionConfiguration>, Error> {
        self.rules
            .iter()
            .map(|r| {
                Ok(lambda_configuration(
                    r,
                    cx.require(&self.key, &r.function, "arn")?,
                ))
            })
            .collect()
    }

    async fn put(
        &self,
        cx: &Context,
        configs: Vec<LambdaFunctionConfiguration>,
    ) -> Result<(), Error> {
        let configuration = NotificationConfiguration::builder()
            .set_lambda_function_configurations(Some(configs))
            .build();
        // S3 checks the functions' policies, which Lambda propagates within seconds.
        let unvalidated = |e: &Error| {
            e.code() == Some("InvalidArgument") && e.to_string().contains("Unable to validate")
        };
        bucket::configure(cx, &self.bucket_name, unvalidated, || async {
            cx.aws
                .s3
                .put_bucket_notification_configuration()
                .bucket(&self.bucket_name)
                .notification_configuration(configuration.clone())
                .send()
                .await
                .step(&self.key, "PutBucketNotificationConfiguration")
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for BucketNotification {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        let mut deps = vec![self.bucket.clone()];
        deps.extend(self.rules.iter().map(|r| r.function.clone()));
        deps.extend(self.permissions.iter().cloned());
        deps
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let wanted = self.wanted(cx);
        let live = if cx.output(&self.bucket, "name").is_none() {
            BTreeMap::new()
        } else {
            let out = cx
                .aws
                .s3
                .get_bucket_notification_configuration()
                .bucket(&self.bucket_name)
                .send()
                .await
                .step(&self.key, "GetBucketNotificationConfiguration")?;
            live_rules(out.lambda_function_configurations())
        };
        Ok(Planned::from_diff(
            self.key.clone(),
            format!("s3://{}", self.bucket_name),
            rule_diffs(&wanted, &live),
        ))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
        self.put(cx, self.configurations(cx)?).await
    }

    /// Notifications are a property of `AWS::S3::Bucket` in CloudFormation: merged into the
    /// bucket, which then waits for the Lambda permissions (S3 validates the destinations).
    /// CloudFormation's `LambdaConfiguration` has no id: S3 names the rules itself.
    fn cloudformation(&self, cx: &Context) -> crate::template::Rendering {
        let configurations = self
            .rules
            .iter()
            .map(|r| {
                let arn = cx
                    .require(&self.key, &r.function, "arn")
                    .map_err(|e| e.to_string())?;
                Ok(cloudformation_configurations(&lambda_configuration(r, arn)))
            })
            .collect::<Result<Vec<Vec<Value>>, String>>()?
            .concat();
        let mut properties = serde_json::Map::new();
        properties.insert(
            "NotificationConfiguration".into(),
            json!({"LambdaConfigurations": configurations}),
        );
        Ok(vec![Part::Properties {
            of: self.bucket.clone(),
            properties,
            depends_on: self.permissions.clone(),
        }])
    }

    /// Puts an empty configuration: the functions are no longer invoked by the bucket.
    async fn delete(&self, cx: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        let live = match cx
            .aws
            .s3
            .get_bucket_notification_configuration()
            .bucket(&self.bucket_name)
            .send()
            .await
            .step(&self.key, "GetBucketNotificationConfiguration")
        {
            Ok(out) => out,
            Err(e) if e.code() == Some("NoSuchBucket") => return Ok(Deleted::Absent),
            Err(e) => return Err(e),
        };
        if live.lambda_function_configurations().is_empty() {
            return Ok(Deleted::Absent);
        }
        self.put(cx, vec![]).await?;
        Ok(Deleted::Deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(arn: &str, prefix: &str, suffix: &str) -> RuleState {
        (arn.into(), vec![EVENT.into()], prefix.into(), suffix.into())
    }

    #[test]
    fn live_rules_read_filters_case_insensitively() {
        let config = LambdaFunctionConfiguration::builder()
            .id("transcribe-mp3")
            .lambda_function_arn("arn:aws:lambda:us-east-1:1:function:demo-audio_transcribe")
            .events(Event::from(EVENT))
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            // S3 answers "Prefix"/"Suffix" although the request says lower case.
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::from("Prefix"))
                                    .value("input_audio/")
                                    .build(),
                            )
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::from("Suffix"))
                                    .value(".mp3")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
            .unwrap();
        let live = live_rules(&[config]);
        assert_eq!(
            live["transcribe-mp3"],
            rule(
                "arn:aws:lambda:us-east-1:1:function:demo-audio_transcribe",
                "input_audio/",
                ".mp3"
            )
        );
    }

    #[test]
    fn the_template_merges_the_rules_into_the_bucket_after_the_permissions() {
        let stack = crate::systems::tests::context(false).stack.clone();
        let cx = Context::symbolic(stack, vec![]);
        let function = ResourceKey::new("function", "stt-audio_transcribe");
        let permission = ResourceKey::new("lambda_permission", "stt-s3-audio_transcribe");
        let notification = BucketNotification {
            key: ResourceKey::new("bucket_notification", "stt-audio"),
            bucket: ResourceKey::new("bucket", "stt-audio"),
            bucket_name: "demo-audio".into(),
            rules: vec![
                Rule {
                    id: "transcribe-mp3".into(),
                    function: function.clone(),
                    prefix: "input_audio/".into(),
                    suffix: ".mp3".into(),
                },
                Rule {
                    id: "everything".into(),
                    function: function.clone(),
                    prefix: String::new(),
                    suffix: String::new(),
                },
            ],
            permissions: vec![permission.clone()],
        };
        let Part::Properties {
            of,
            properties,
            depends_on,
        } = notification.cloudformation(&cx).unwrap().remove(0)
        else {
            panic!("properties of the bucket");
        };
        assert_eq!(of, ResourceKey::new("bucket", "stt-audio"));
        assert_eq!(depends_on, vec![permission]);
        let configs = &properties["NotificationConfiguration"]["LambdaConfigurations"];
        assert_eq!(
            configs[0],
            json!({
                "Event": EVENT,
                "Function": cx.output(&function, "arn").unwrap(),
                "Filter": {"S3Key": {"Rules": [
                    {"Name": "prefix", "Value": "input_audio/"},
                    {"Name": "suffix", "Value": ".mp3"}
                ]}}
            })
        );
        assert!(configs[1].get("Filter").is_none());
    }

    #[test]
    fn empty_filter_rules_are_left_out() {
        let arn = "arn:aws:lambda:us-east-1:1:function:demo-vod_convert";
        let rule = |prefix: &str, suffix: &str| Rule {
            id: "convert-mp4".into(),
            function: ResourceKey::new("function", "vod_convert"),
            prefix: prefix.into(),
            suffix: suffix.into(),
        };
        let names = |config: &LambdaFunctionConfiguration| -> Vec<(String, String)> {
            config
                .filter()
                .and_then(|f| f.key())
                .map(|k| k.filter_rules())
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    (
                        r.name().unwrap().as_str().to_owned(),
                        r.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        };
        let suffix_only = lambda_configuration(&rule("", ".mp4"), arn.into());
        assert_eq!(
            names(&suffix_only),
            vec![("suffix".to_owned(), ".mp4".to_owned())]
        );
        let both = lambda_configuration(&rule("input_audio/", ".mp3"), arn.into());
        assert_eq!(names(&both).len(), 2);
        let neither = lambda_configuration(&rule("", ""), arn.into());
        assert!(neither.filter().is_none());
        // Read back, a rule without a prefix compares equal to the wanted empty prefix.
        assert_eq!(
            live_rules(&[suffix_only])["convert-mp4"],
            (
                arn.to_owned(),
                vec![EVENT.to_owned()],
                String::new(),
                ".mp4".to_owned()
            )
        );
    }

    #[test]
    fn a_removed_or_changed_rule_is_a_diff_and_an_extra_one_too() {
        let arn = "arn:aws:lambda:us-east-1:1:function:demo-send_email";
        let wanted: BTreeMap<String, RuleState> = [
            ("email-txt".to_owned(), rule(arn, "output_text/", ".txt")),
            (
                "transcribe-mp3".to_owned(),
                rule(arn, "input_audio/", ".mp3"),
            ),
        ]
        .into();
        let mut live = wanted.clone();
        assert!(rule_diffs(&wanted, &live).is_empty());
        live.remove("email-txt");
        live.insert("by-hand".into(), rule(arn, "", ""));
        let diffs = rule_diffs(&wanted, &live);
        let fields: Vec<(&str, &str, &str)> = diffs
            .iter()
            .map(|d| (d.field.as_str(), d.expected.as_str(), d.actual.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                (
                    "LambdaFunctionConfigurations.by-hand",
                    "(missing)",
                    "s3:ObjectCreated:* * -> demo-send_email"
                ),
                (
                    "LambdaFunctionConfigurations.email-txt",
                    "s3:ObjectCreated:* output_text/*.txt -> demo-send_email",
                    "(missing)"
                ),
            ]
        );
    }

    #[test]
    fn a_rule_s3_named_itself_is_matched_by_content() {
        // As CloudFormation leaves it: no Id in the template, S3 generated one.
        let convert = "arn:aws:lambda:us-east-1:1:function:eqv-vod_convert";
        let email = "arn:aws:lambda:us-east-1:1:function:eqv-send_email";
        let wanted: BTreeMap<String, RuleState> = [
            ("convert-uploads".to_owned(), rule(convert, "", "")),
            ("email-txt".to_owned(), rule(email, "output_text/", ".txt")),
        ]
        .into();
        let mut live: BTreeMap<String, RuleState> = [
            ("NjQ5ZjE4YzQtZjY2Ny00".to_owned(), rule(convert, "", "")),
            (
                "MzE0YjBiYjctNjQ4Zi00".to_owned(),
                rule(email, "output_text/", ".txt"),
            ),
        ]
        .into();
        assert!(rule_diffs(&wanted, &live).is_empty());
        // A live rule matching nothing wanted is still not ours; a wanted rule whose id is
        // live is compared by id, not matched elsewhere.
        live.insert("by-hand".into(), rule(convert, "input/", ""));
        live.insert("email-txt".into(), rule(email, "output_text/", ".md"));
        let fields: Vec<(String, String, String)> = rule_diffs(&wanted, &live)
            .into_iter()
            .map(|d| (d.field, d.expected, d.actual))
            .collect();
        assert_eq!(
            fields,
            vec![
                (
                    "LambdaFunctionConfigurations.MzE0YjBiYjctNjQ4Zi00".to_owned(),
                    "(missing)".to_owned(),
                    "s3:ObjectCreated:* output_text/*.txt -> eqv-send_email".to_owned()
                ),
                (
                    "LambdaFunctionConfigurations.by-hand".to_owned(),
                    "(missing)".to_owned(),
                    "s3:ObjectCreated:* input/* -> eqv-vod_convert".to_owned()
                ),
                (
                    "LambdaFunctionConfigurations.email-txt".to_owned(),
                    "s3:ObjectCreated:* output_text/*.txt -> eqv-send_email".to_owned(),
                    "s3:ObjectCreated:* output_text/*.md -> eqv-send_email".to_owned()
                ),
            ]
        );
        // A live rule differing in content under another id is no match.
        let other: BTreeMap<String, RuleState> = [
            ("NjQ5ZjE4YzQtZjY2Ny00".to_owned(), rule(convert, "", ".mp4")),
            (
                "MzE0YjBiYjctNjQ4Zi00".to_owned(),
                rule(email, "output_text/", ".txt"),
            ),
        ]
        .into();
        assert_eq!(
            rule_diffs(&wanted, &other)
                .iter()
                .map(|d| d.field.as_str())
                .collect::<Vec<_>>(),
            vec![
                "LambdaFunctionConfigurations.NjQ5ZjE4YzQtZjY2Ny00",
                "LambdaFunctionConfigurations.convert-uploads"
            ]
        );
    }

    #[test]
    fn apply_puts_a_rule_s3_holds_under_another_id_once() {
        let cx = crate::systems::tests::context(false);
        let convert = ResourceKey::new("function", "vod-vod_convert");
        let email = ResourceKey::new("function", "vod-send_email");
        let convert_arn = "arn:aws:lambda:us-east-1:111122223333:function:eqv-vod_convert";
        let email_arn = "arn:aws:lambda:us-east-1:111122223333:function:eqv-send_email";
        cx.publish(&convert, "arn", convert_arn);
        cx.publish(&email, "arn", email_arn);
        let notification = BucketNotification {
            key: ResourceKey::new("bucket_notification", "vod"),
            bucket: ResourceKey::new("bucket", "vod"),
            bucket_name: "eqv-vod".into(),
            rules: vec![
                Rule {
                    id: "convert-uploads".into(),
                    function: convert,
                    prefix: String::new(),
                    suffix: String::new(),
                },
                Rule {
                    id: "email-txt".into(),
                    function: email,
                    prefix: "output_text/".into(),
                    suffix: ".txt".into(),
                },
            ],
            permissions: vec![],
        };
        // Live: the convert rule under S3's id, the email rule changed: an update.
        let wanted = notification.wanted(&cx);
        let live: BTreeMap<String, RuleState> = [
            ("NjQ5ZjE4YzQtZjY2Ny00".to_owned(), rule(convert_arn, "", "")),
            (
                "email-txt".to_owned(),
                rule(email_arn, "output_text/", ".md"),
            ),
        ]
        .into();
        assert_eq!(rule_diffs(&wanted, &live).len(), 1);
        // The put replaces the whole configuration: each rule once, under its own id.
        let put = notification.configurations(&cx).unwrap();
        let ids: Vec<&str> = put.iter().map(|c| c.id().unwrap()).collect();
        assert_eq!(ids, vec!["convert-uploads", "email-txt"]);
        let read_back = live_rules(&put);
        assert_eq!(read_back, wanted);
        assert!(rule_diffs(&wanted, &read_back).is_empty());
    }
}
