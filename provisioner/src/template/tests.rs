use std::path::Path;

use super::*;
use crate::spec::Stack;

/// The repository's stack.yaml, its functions' zips stand-ins of fixed bytes (a template
/// names each zip by its digest; the real ones may not be built).
fn repository_stack() -> Stack {
    let mut stack = Stack::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack.yaml"))
        .expect("the repository's stack.yaml is valid");
    let zips = std::env::temp_dir().join(format!("provision-template-zips-{}", std::process::id()));
    for function in crate::systems::stt_functions::FUNCTIONS
        .iter()
        .chain(["vod_convert"].iter())
    {
        let dir = zips.join(function);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bootstrap.zip"), format!("zip of {function}")).unwrap();
    }
    if let Some(functions) = stack.stt.functions.as_mut() {
        functions.zips_dir = zips.clone();
    }
    if let Some(vod) = stack.vod.as_mut() {
        vod.function.zips_dir = zips;
    }
    stack
}

#[test]
fn logical_ids_are_pascal_case_of_kind_and_name() {
    assert_eq!(
        logical_id(&ResourceKey::new("bucket", "stt-audio")),
        "BucketSttAudio"
    );
    assert_eq!(
        logical_id(&ResourceKey::named("subnet", format!("stt-{}", zone(1)))),
        "SubnetSttAz1"
    );
    assert_eq!(pascal("stt_site_url"), "SttSiteUrl");
}

#[test]
fn a_whole_reference_is_an_intrinsic_and_a_mixed_string_a_sub() {
    let mut refs = BTreeSet::new();
    let arn = reference("RoleSttFileUpload.Arn");
    assert_eq!(
        resolve_string(&arn, &mut refs).unwrap(),
        json!({"Fn::GetAtt": ["RoleSttFileUpload", "Arn"]})
    );
    assert_eq!(
        resolve_string(&reference("VpcStt"), &mut refs).unwrap(),
        json!({"Ref": "VpcStt"})
    );
    let mixed = format!(
        "arn:aws:s3:::{}-audio/${{literal}}/{}",
        reference("AWS::AccountId"),
        reference("DbInstanceStt.Endpoint.Address")
    );
    assert_eq!(
        resolve_string(&mixed, &mut refs).unwrap(),
        json!({"Fn::Sub": "arn:aws:s3:::${AWS::AccountId}-audio/${!literal}/${DbInstanceStt.Endpoint.Address}"})
    );
    assert_eq!(
        resolve_string(&format!("x-{}", zone(0)), &mut refs).unwrap(),
        json!({"Fn::Sub": ["x-${Az0}", {"Az0": {"Fn::Select": [0, {"Fn::GetAZs": ""}]}}]})
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["DbInstanceStt", "RoleSttFileUpload", "VpcStt"]
    );
    assert_eq!(
        resolve_string("plain ${x}", &mut BTreeSet::new()).unwrap(),
        json!("plain ${x}"),
        "a string without references is no Fn::Sub and needs no escaping"
    );
}

#[test]
fn the_first_label_of_a_referenced_domain_is_a_select_of_a_split() {
    assert_eq!(first_label("d111.cloudfront.net"), "d111");
    let domain = reference("DistributionSttSite.DomainName");
    let mut refs = BTreeSet::new();
    let url = format!("http://{}.cloudfront.localhost:4566", first_label(&domain));
    assert_eq!(
        resolve_string(&url, &mut refs).unwrap(),
        json!({"Fn::Sub": [
            "http://${LabelDistributionSttSiteDomainName}.cloudfront.localhost:4566",
            {"LabelDistributionSttSiteDomainName": {"Fn::Select": [0, {"Fn::Split": [
                ".", {"Fn::GetAtt": ["DistributionSttSite", "DomainName"]}
            ]}]}}
        ]})
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["DistributionSttSite"]
    );
}

#[test]
fn an_output_unknown_before_the_deploy_is_an_error_where_it_is_used() {
    let key = ResourceKey::new("distribution", "stt-site");
    let pending = output_reference(&key, "pending_invalidation");
    assert!(resolve_string(&pending, &mut BTreeSet::new()).is_err());
    assert_eq!(
        output_reference(&key, "domain_name"),
        reference("DistributionSttSite.DomainName")
    );
}

#[test]
fn the_symbolic_context_answers_every_output_with_a_reference() {
    let cx = Context::symbolic(
        std::sync::Arc::new(repository_stack()),
        vec![zone(0), zone(1)],
    );
    let role = ResourceKey::new("role", "stt-file_upload");
    assert_eq!(
        cx.output(&role, "arn").as_deref(),
        Some(reference("RoleSttFileUpload.Arn").as_str())
    );
    cx.publish(&role, "arn", "literal");
    assert_eq!(cx.output(&role, "arn").as_deref(), Some("literal"));
    assert_eq!(cx.aws.region, reference("AWS::Region"));
}

/// Every resource of both systems renders, the template refers only to what it holds, and
/// rendering twice gives the same bytes.
#[test]
fn the_repository_stack_renders_completely_and_deterministically() {
    let template = for_stack(repository_stack()).unwrap_or_else(|e| panic!("{e:#}"));
    let json = to_json(&template);
    assert_eq!(json, to_json(&for_stack(repository_stack()).unwrap()));
    assert_eq!(
        to_yaml(&template),
        to_yaml(&for_stack(repository_stack()).unwrap())
    );
    assert!(
        !json.contains(OPEN) && !json.contains(CLOSE),
        "a reference was left unresolved"
    );
    let resources = template.body["Resources"].as_object().unwrap();
    assert!(resources.len() > 40, "{} resources", resources.len());
}
