use super::*;

const VALID: &str = "\
stack:
  name: demo
  region: us-east-1
  tags:
    team: audio
stt:
  website: {}
";

fn parse(text: &str) -> Result<Stack, SpecError> {
    Stack::parse(text, Path::new("stack.yaml"))
}

fn location(err: SpecError) -> (Option<(usize, usize)>, String) {
    match err {
        SpecError::Invalid {
            location, message, ..
        } => (location, message),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn defaults_match_the_console_build() {
    let stack = parse(VALID).unwrap();
    let website = stack.stt.website.as_ref().unwrap();
    let d = &website.distribution;
    assert_eq!(website.index_document, "index.html");
    assert_eq!(website.error_document, "error.html");
    assert_eq!(d.default_root_object, "index.html");
    assert_eq!(d.price_class, PriceClass::All);
    assert_eq!(d.http_version, HttpVersion::Http2);
    assert!(d.ipv6 && d.origin_shield.enabled && d.enabled);
    assert_eq!(d.cache_policy, CachePolicy::CachingOptimized);
    assert_eq!(d.allowed_methods.methods(), ["GET", "HEAD"]);
    assert_eq!(d.error_responses.len(), 1);
    assert_eq!(d.error_responses[0].error_code, values::ErrorCode(403));
    assert_eq!(d.error_responses[0].response_code, values::ErrorCode(200));
    assert_eq!(stack.origin_shield_region(d).unwrap(), "us-east-1");
}

#[test]
fn unknown_key_is_reported_at_its_line_and_column() {
    let text = VALID.replace("  website: {}", "  website:\n    index_documnt: home.html");
    let (loc, message) = location(parse(&text).unwrap_err());
    assert_eq!(loc, Some((8, 5)));
    assert!(
        message.contains("unknown field `index_documnt`"),
        "{message}"
    );
}

#[test]
fn wrong_type_is_reported_at_its_line_and_column() {
    let text = VALID.replace(
        "  website: {}",
        "  website:\n    distribution:\n      ipv6: sometimes",
    );
    let (loc, message) = location(parse(&text).unwrap_err());
    assert_eq!(loc, Some((9, 13)));
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn bad_region_is_reported_at_its_line_and_column() {
    let text = VALID.replace("us-east-1", "us-east-9");
    let err = parse(&text).unwrap_err();
    let shown = err.to_string();
    let (loc, message) = location(err);
    assert_eq!(loc, Some((3, 11)));
    assert!(
        message.contains("unknown AWS region \"us-east-9\""),
        "{message}"
    );
    assert!(shown.starts_with("stack.yaml:3:11: "), "{shown}");
}

#[test]
fn bad_stack_name_and_reserved_tag_are_rejected() {
    let (loc, _) = location(parse(&VALID.replace("name: demo", "name: Demo_Stack")).unwrap_err());
    assert_eq!(loc, Some((2, 9)));
    for bad in ["9lives", "two--hyphens", "trailing-", "ab"] {
        let err = parse(&VALID.replace("name: demo", &format!("name: {bad}"))).unwrap_err();
        assert!(
            err.to_string().contains("invalid stack name"),
            "{bad}: {err}"
        );
    }
    let (_, message) =
        location(parse(&VALID.replace("team: audio", "provision:stack: x")).unwrap_err());
    assert!(message.contains("reserved prefix"), "{message}");
}

#[test]
fn more_tags_than_aws_takes_are_refused_where_they_are() {
    let tags = |n: usize| (0..n).map(|i| format!("    t{i}: x\n")).collect::<String>();
    let with = |n: usize| VALID.replace("    team: audio\n", &tags(n));
    assert!(parse(&with(48)).is_ok());
    let (loc, message) = location(parse(&with(49)).unwrap_err());
    assert_eq!(loc, Some((4, 3)), "{message}");
    assert!(message.contains("at most 48"), "{message}");
}

#[test]
fn allowed_methods_must_be_a_cloudfront_set() {
    let ok = VALID.replace(
        "  website: {}",
        "  website:\n    distribution:\n      allowed_methods: [head, GET, OPTIONS]",
    );
    assert_eq!(
        parse(&ok)
            .unwrap()
            .stt
            .website
            .unwrap()
            .distribution
            .allowed_methods,
        AllowedMethods::GetHeadOptions
    );
    let bad = ok.replace("[head, GET, OPTIONS]", "[GET, POST]");
    let (loc, _) = location(parse(&bad).unwrap_err());
    assert_eq!(loc.map(|l| l.0), Some(9));
}

#[test]
fn origin_shield_region_must_be_offered() {
    let text = VALID.replace("us-east-1", "af-south-1");
    let (_, message) = location(parse(&text).unwrap_err());
    assert!(message.contains("must be set"), "{message}");
    let off = text.replace(
        "  website: {}",
        "  website:\n    distribution:\n      origin_shield: {enabled: false}",
    );
    assert!(parse(&off).is_ok());
    let text = VALID.replace(
        "  website: {}",
        "  website:\n    distribution:\n      origin_shield: {region: af-south-1}",
    );
    let (loc, _) = location(parse(&text).unwrap_err());
    assert_eq!(loc.map(|l| l.0), Some(9));
}

#[test]
fn missing_section_is_an_error() {
    let (_, message) = location(parse("stt:\n  website: {}\n").unwrap_err());
    assert!(message.contains("missing field `stack`"), "{message}");
    // Each system is optional: a stack may hold only one of them.
    let vod_only = parse("stack:\n  name: demo\n  region: us-east-1\nvod: {}\n").unwrap();
    assert!(vod_only.stt.website.is_none());
    assert_eq!(vod_only.vod.unwrap().cors.max_age_s.0, 3000);
}

#[test]
fn vod_values_are_checked_where_they_are_written() {
    let text = "stack:\n  name: demo\n  region: us-east-1\nvod:\n  cors:\n    allowed_origins: [\"example.com/path\"]\n";
    let (loc, message) = location(parse(text).unwrap_err());
    assert_eq!(loc, Some((6, 23)), "{message}");
    assert!(message.contains("not a CORS origin"), "{message}");
    let text =
        "stack:\n  name: demo\n  region: us-east-1\nvod:\n  function:\n    video_suffixes: [mp4]\n";
    let (loc, message) = location(parse(text).unwrap_err());
    assert_eq!(loc.map(|l| l.0), Some(6), "{message}");
    assert!(message.contains("not a file suffix"), "{message}");
}

#[test]
fn named_vod_origins_need_a_distribution_that_does_not_cache_one_answer_for_all() {
    let named = "stack:\n  name: demo\n  region: us-east-1\nvod:\n  cors:\n    allowed_origins: [\"https://player.example\"]\n";
    let (_, message) = location(parse(named).unwrap_err());
    assert!(message.contains("vod.cors.allowed_origins"), "{message}");
    assert!(message.contains("CachingDisabled"), "{message}");
    let uncached =
        format!("{named}  player:\n    distribution:\n      cache_policy: CachingDisabled\n");
    assert!(parse(&uncached).is_ok());
}

#[test]
fn functions_need_the_network_and_the_database() {
    let text = "stack:\n  name: demo\n  region: us-east-1\nstt:\n  functions:\n    mail_from: a@example.com\n";
    let (_, message) = location(parse(text).unwrap_err());
    assert!(
        message.contains("stt.functions needs stt.network and stt.database"),
        "{message}"
    );
}

#[test]
fn functions_need_a_page_for_the_confirmation_link() {
    let base = "stack:\n  name: demo\n  region: us-east-1\nstt:\n  network:\n    cidr: 10.0.0.0/16\n  database: {}\n  functions:\n    mail_from: a@example.com\n";
    let (loc, message) = location(parse(base).unwrap_err());
    assert!(message.contains("confirm.html"), "{message}");
    assert_eq!(loc, Some((8, 3)));
    let star = format!("{base}    allowed_origin: \"*\"\n");
    assert!(parse(&star).is_err());
    assert!(parse(&format!(
        "{base}    allowed_origin: https://upload.example\n"
    ))
    .is_ok());
    assert!(parse(&base.replace("stt:\n", "stt:\n  website: {}\n")).is_ok());
}

#[test]
fn errors_found_after_parsing_are_located_at_their_key() {
    let text = "stack:\n  name: demo\n  region: us-east-1\nstt:\n  functions:\n    mail_from: a@example.com\n";
    let (loc, _) = location(parse(text).unwrap_err());
    assert_eq!(loc, Some((5, 3)));
    let named = "stack:\n  name: demo\n  region: us-east-1\nvod:\n  cors:\n    allowed_origins: [\"https://player.example\"]\n";
    let (loc, _) = location(parse(named).unwrap_err());
    assert_eq!(loc, Some((6, 5)));
    let err = parse(named).unwrap_err().to_string();
    assert!(err.starts_with("stack.yaml:6:5: "), "{err}");
    // Origin Shield in a region without it, the region not written: the distribution's parent.
    let (loc, _) = location(parse(&VALID.replace("us-east-1", "af-south-1")).unwrap_err());
    assert_eq!(loc, Some((7, 3)));
}

#[test]
fn the_database_is_never_opened_to_the_whole_internet() {
    let network = |cidr: &str| {
        format!("stack:\n  name: demo\n  region: us-east-1\nstt:\n  network:\n    operator_cidr: {cidr}\n")
    };
    let (loc, message) = location(parse(&network("0.0.0.0/0")).unwrap_err());
    assert_eq!(loc, Some((6, 5)), "{message}");
    assert!(message.contains("every address"), "{message}");
    // IPv6 is not an operator address here at all.
    let (loc, message) = location(parse(&network("\"::/0\"")).unwrap_err());
    assert_eq!(loc.map(|l| l.0), Some(6), "{message}");
    assert!(message.contains("not an IPv4 address"), "{message}");
    let stack = parse(&network("203.0.113.7/32")).unwrap();
    let operator = stack.stt.network.unwrap().operator_cidr.unwrap();
    assert_eq!(operator.to_string(), "203.0.113.7/32");
}

#[test]
fn vod_defaults_keep_data_thirty_days_and_serve_cors_to_the_player_only() {
    let text = "\
stack:
  name: demo
  region: us-east-1
vod: {}
";
    let vod = parse(text).unwrap().vod.unwrap();
    // The videos' CORS rule: GET and HEAD from the player's own origin (an empty list).
    assert!(vod.cors.allowed_origins.is_empty());
    let methods: Vec<&str> = vod
        .cors
        .allowed_methods
        .iter()
        .map(|m| m.as_str())
        .collect();
    assert_eq!(methods, ["GET", "HEAD"]);
    assert_eq!(vod.source_retention_days, Some(ExpiryDays(30)));
    assert_eq!(vod.output_retention_days, None);
    let kept = parse(&text.replace("vod: {}", "vod:\n  source_retention_days: null")).unwrap();
    assert_eq!(kept.vod.unwrap().source_retention_days, None);
    let zero = text.replace("vod: {}", "vod:\n  source_retention_days: 0");
    let (loc, message) = location(parse(&zero).unwrap_err());
    assert_eq!(loc, Some((5, 26)));
    assert!(
        message.contains("data retention (days) must be from 1 to 36500, not 0"),
        "{message}"
    );
}

const FUNCTIONS: &str = "\
stack:
  name: demo
  region: us-east-1
stt:
  website: {}
  network: {}
  database: {}
  functions:
    mail_from: a@example.com
";

#[test]
fn the_public_api_and_its_functions_are_bounded_by_default() {
    let stack = parse(FUNCTIONS).unwrap();
    let f = stack.stt.functions.unwrap();
    assert_eq!(f.api_throttling.rate_per_s, ThrottleRate(10.0));
    assert_eq!(f.api_throttling.burst, ThrottleBurst(20));
    assert_eq!(
        f.reserved_concurrency("file_upload", &f.file_upload),
        Some(10)
    );
    assert_eq!(
        f.reserved_concurrency("audio_transcribe", &f.audio_transcribe),
        Some(5)
    );
    for (name, settings) in [
        ("save_text", &f.save_text),
        ("send_email", &f.send_email),
        ("db_migrate", &f.db_migrate),
    ] {
        assert_eq!(f.reserved_concurrency(name, settings), None, "{name}");
    }
    // Settings written without the key keep the function's default.
    let written = format!(
        "{FUNCTIONS}    file_upload: {{memory_mb: 256, timeout_s: 30}}\n    api_throttling: {{burst: 5}}\n"
    );
    let f = parse(&written).unwrap().stt.functions.unwrap();
    assert_eq!(
        f.reserved_concurrency("file_upload", &f.file_upload),
        Some(10)
    );
    assert_eq!(f.api_throttling.rate_per_s, ThrottleRate(10.0));
    assert_eq!(f.api_throttling.burst, ThrottleBurst(5));
}

#[test]
fn reserved_concurrency_may_be_changed_or_removed() {
    let text = format!(
        "{FUNCTIONS}    file_upload: {{memory_mb: 256, timeout_s: 30, reserved_concurrency: 3}}\n    audio_transcribe: {{memory_mb: 128, timeout_s: 60, reserved_concurrency: null}}\n    save_text: {{memory_mb: 128, timeout_s: 60, reserved_concurrency: 0}}\n"
    );
    let f = parse(&text).unwrap().stt.functions.unwrap();
    assert_eq!(
        f.reserved_concurrency("file_upload", &f.file_upload),
        Some(3)
    );
    assert_eq!(
        f.reserved_concurrency("audio_transcribe", &f.audio_transcribe),
        None
    );
    assert_eq!(f.reserved_concurrency("save_text", &f.save_text), Some(0));
    let negative = format!(
        "{FUNCTIONS}    file_upload: {{memory_mb: 256, timeout_s: 30, reserved_concurrency: -1}}\n"
    );
    let (loc, message) = location(parse(&negative).unwrap_err());
    assert_eq!(loc.map(|l| l.0), Some(10), "{message}");
    assert!(
        message.contains("reserved_concurrency") && message.contains("from 0 to 100000"),
        "{message}"
    );
}

#[test]
fn api_throttling_is_checked_where_it_is_written() {
    let with = |yaml: &str| format!("{FUNCTIONS}    api_throttling: {yaml}\n");
    for (bad, what) in [
        ("{rate_per_s: 0}", "above 0"),
        ("{rate_per_s: -2.5}", "above 0"),
        ("{rate_per_s: .nan}", "above 0"),
        ("{burst: 0}", "API burst"),
        ("{burst: 2.5}", "whole number"),
        ("{rate: 10}", "unknown field `rate`"),
    ] {
        let (loc, message) = location(parse(&with(bad)).unwrap_err());
        assert_eq!(loc.map(|l| l.0), Some(10), "{bad}: {message}");
        assert!(message.contains(what), "{bad}: {message}");
    }
    let f = parse(&with("{rate_per_s: 0.5, burst: 1}"))
        .unwrap()
        .stt
        .functions
        .unwrap();
    assert_eq!(f.api_throttling.rate_per_s, ThrottleRate(0.5));
    assert_eq!(f.api_throttling.burst, ThrottleBurst(1));
}

#[test]
fn log_retention_is_thirty_days_unless_set_to_a_period_cloudwatch_offers() {
    let vod = |extra: &str| {
        format!("stack:\n  name: demo\n  region: us-east-1\nvod:\n  function:\n    zips_dir: z\n{extra}")
    };
    let stack = parse(&vod("")).unwrap();
    assert_eq!(stack.vod.unwrap().function.log_retention_days.0, 30);
    let stack = parse(&vod("    log_retention_days: 3653\n")).unwrap();
    assert_eq!(stack.vod.unwrap().function.log_retention_days.0, 3653);
    for bad in ["10", "0", "-1", "3654"] {
        let (loc, message) =
            location(parse(&vod(&format!("    log_retention_days: {bad}\n"))).unwrap_err());
        assert_eq!(loc.map(|l| l.0), Some(7), "{bad}: {message}");
        assert!(
            message.contains("one of CloudWatch Logs' periods: 1, 3, 5, 7, 14, 30"),
            "{bad}: {message}"
        );
    }
    let functions = "stack:\n  name: demo\n  region: us-east-1\nstt:\n  website: {}\n  network: {}\n  database: {}\n  functions:\n    mail_from: a@example.com\n";
    let stack = parse(functions).unwrap();
    assert_eq!(stack.stt.functions.unwrap().log_retention_days.0, 30);
    let text = format!("{functions}    log_retention_days: 31\n");
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.starts_with("stack.yaml:10:25: "), "{err}");
    assert!(err.contains("not 31"), "{err}");
}

#[test]
fn deletion_protection_is_on_for_aws_and_off_locally_unless_set() {
    let with = |database: &str| {
        let text = format!(
            "stack:\n  name: demo\n  region: us-east-1\nstt:\n  network: {{}}\n  database: {database}\n"
        );
        parse(&text).unwrap().stt.database.unwrap()
    };
    let default = with("{}");
    assert!(default.deletion_protection_on(false), "on AWS");
    assert!(!default.deletion_protection_on(true), "on the local target");
    let off = with("{deletion_protection: false}");
    assert!(!off.deletion_protection_on(false));
    let on = with("{deletion_protection: true}");
    assert!(on.deletion_protection_on(true));
}

#[test]
fn a_custom_domain_needs_a_certificate_from_us_east_1_and_real_names() {
    let with = |domain: &str| {
        format!(
            "stack:\n  name: demo\n  region: eu-west-1\nstt:\n  website:\n    distribution:\n      custom_domain: {domain}\n"
        )
    };
    let good = with(
        "{names: [stt.example.com], certificate_arn: \"arn:aws:acm:us-east-1:111122223333:certificate/1a2b\"}",
    );
    let stack = parse(&good).unwrap();
    let domain = stack
        .stt
        .website
        .unwrap()
        .distribution
        .custom_domain
        .unwrap();
    assert_eq!(domain.names[0].as_str(), "stt.example.com");

    // The stack's region is eu-west-1, but CloudFront takes us-east-1 certificates only.
    let (loc, message) = location(
        parse(&with(
            "{names: [stt.example.com], certificate_arn: \"arn:aws:acm:eu-west-1:111122223333:certificate/1a2b\"}",
        ))
        .unwrap_err(),
    );
    assert_eq!(loc.map(|l| l.0), Some(7), "{message}");
    assert!(message.contains("us-east-1 only"), "{message}");
    for (bad, what) in [
        ("{names: [\"stt example.com\"], certificate_arn: \"arn:aws:acm:us-east-1:111122223333:certificate/1\"}", "not a domain name"),
        ("{names: [-x.example.com], certificate_arn: \"arn:aws:acm:us-east-1:111122223333:certificate/1\"}", "not a domain name"),
        ("{names: [stt.example.com], certificate_arn: \"arn:aws:iam::111122223333:server-certificate/x\"}", "not an ACM certificate ARN"),
        ("{names: [], certificate_arn: \"arn:aws:acm:us-east-1:111122223333:certificate/1\"}", "from 1 to 100 names"),
        ("{names: [stt.example.com]}", "certificate_arn"),
    ] {
        let (loc, message) = location(parse(&with(bad)).unwrap_err());
        assert!(message.contains(what), "{bad}: {message}");
        assert!(loc.is_some(), "{bad}: {message}");
    }
}

#[test]
fn direct_uploads_take_up_to_transcribes_two_gigabytes_unless_set_lower() {
    let f = parse(FUNCTIONS).unwrap().stt.functions.unwrap();
    assert_eq!(f.uploads.max_bytes.0, 2_000_000_000);
    assert_eq!(f.uploads.expiry_s.0, 900);
    let with = |yaml: &str| format!("{FUNCTIONS}    uploads: {yaml}\n");
    let f = parse(&with("{max_bytes: 40000000, expiry_s: 60}"))
        .unwrap()
        .stt
        .functions
        .unwrap();
    assert_eq!(
        (f.uploads.max_bytes.0, f.uploads.expiry_s.0),
        (40_000_000, 60)
    );
    for (bad, what) in [
        (
            "{max_bytes: 3000000000}",
            "largest upload (bytes) must be from 1000000 to 2000000000",
        ),
        ("{max_bytes: 0}", "largest upload (bytes)"),
        (
            "{expiry_s: 7200}",
            "upload expiry (seconds) must be from 60 to 3600",
        ),
        ("{expiry: 60}", "unknown field `expiry`"),
    ] {
        let (loc, message) = location(parse(&with(bad)).unwrap_err());
        assert_eq!(loc.map(|l| l.0), Some(10), "{bad}: {message}");
        assert!(message.contains(what), "{bad}: {message}");
    }
}
