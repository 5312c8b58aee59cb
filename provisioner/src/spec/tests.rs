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
