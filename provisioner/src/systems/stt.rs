//! The speech-to-text system: its static website (console steps S1 to S7), its network and
//! its database (S15 to S18, S20, S21).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{stt_functions, web};
use crate::engine::{Context, Resource, ResourceKey};
use crate::resources::bucket;
use crate::resources::db_instance::{DbInstance, DbSettings};
use crate::resources::db_parameter_group::{self, DbParameterGroup};
use crate::resources::db_subnet_group::DbSubnetGroup;
use crate::resources::default_security_group::DefaultSecurityGroup;
use crate::resources::egress_gateway::EgressGateway;
use crate::resources::route_table::RouteTable;
use crate::resources::security_group::{SecurityGroup, WantedPeer, WantedRule};
use crate::resources::subnet::Subnet;
use crate::resources::vpc::Vpc;
use crate::resources::vpc_endpoint::{Attachment, VpcEndpoint};
use crate::spec::{Database, EndpointService, GatewayService, Network, Website};

pub const SITE_BUCKET: ResourceKey = ResourceKey::new("bucket", "stt-site");
pub const SITE_OAC: ResourceKey = ResourceKey::new("origin_access_control", "stt-site");
pub const SITE_DISTRIBUTION: ResourceKey = ResourceKey::new("distribution", "stt-site");
pub const SITE_HEADERS: ResourceKey = ResourceKey::new("response_headers_policy", "stt-site");
pub const SITE_BUCKET_POLICY: ResourceKey = ResourceKey::new("bucket_policy", "stt-site");
pub const SITE_FILES: ResourceKey = ResourceKey::new("site_files", "stt-site");

/// Bucket names are global: the account id keeps two accounts' stacks of the same name apart.
pub fn site_bucket_name(cx: &Context) -> String {
    format!("{}-site-{}", cx.stack_name(), cx.aws.account_id)
}

pub fn website(cx: &Context, site: &Website) -> Vec<Arc<dyn Resource>> {
    web::served_bucket(
        cx,
        web::ServedBucket {
            label: "stt-site",
            bucket: SITE_BUCKET,
            oac: SITE_OAC,
            distribution: SITE_DISTRIBUTION,
            headers_policy: SITE_HEADERS,
            content_security_policy: site_content_security_policy(cx),
            policy: SITE_BUCKET_POLICY,
            files: SITE_FILES,
            bucket_name: site_bucket_name(cx),
            // S3: the console build turned on static website hosting.
            static_website: Some(bucket::Website {
                index_document: site.index_document.clone(),
                error_document: site.error_document.clone(),
            }),
            settings: site.distribution.clone(),
            source_dir: cx.stack.site_dir(site),
            exclude: vec!["config.example.js"],
            cors: None,
            // The site's own files only: nothing to expire.
            lifecycle: None,
            generated: if cx.stack.stt.functions.is_some() {
                vec![super::stt_functions::site_config_file()]
            } else {
                vec![]
            },
        },
    )
}

/// The upload page's scripts post to the upload API and send the file to the audio bucket.
/// The API's exact address is not known when the policy is made (the API's CORS names the
/// distribution, which carries this policy), so on AWS the page may connect to API Gateway
/// hosts of the stack's region and to the audio bucket's regional address; on the emulator,
/// to the emulator.
fn site_content_security_policy(cx: &Context) -> String {
    if cx.stack.stt.functions.is_none() {
        return web::content_security_policy(&[]);
    }
    let sources = match (cx.aws.local, cx.aws.endpoint.as_deref()) {
        (true, Some(endpoint)) => origin_of(endpoint),
        _ => format!(
            "https://*.execute-api.{region}.amazonaws.com https://{bucket}.s3.{region}.amazonaws.com",
            region = cx.aws.region,
            bucket = super::stt_functions::audio_bucket_name(cx),
        ),
    };
    web::content_security_policy(&[("connect-src", &sources)])
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

pub fn outputs(cx: &Context) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    if let Some(name) = cx.output(&SITE_BUCKET, "name") {
        out.insert("stt_site_bucket", name);
    }
    if let Some(id) = cx.output(&SITE_DISTRIBUTION, "id") {
        out.insert("stt_site_distribution_id", id);
    }
    if let Some(url) = web::served_url(cx, &SITE_DISTRIBUTION) {
        out.insert("stt_site_url", url);
    }
    network_outputs(cx, &mut out);
    out
}

pub const VPC: ResourceKey = ResourceKey::new("vpc", "stt");
pub const DEFAULT_SG: ResourceKey = ResourceKey::new("default_security_group", "stt");
pub const EGRESS_GATEWAY: ResourceKey = ResourceKey::new("egress_gateway", "stt");
pub const ROUTE_TABLE: ResourceKey = ResourceKey::new("route_table", "stt");
pub const FUNCTIONS_SG: ResourceKey = ResourceKey::new("security_group", "stt-functions");
pub const DATABASE_SG: ResourceKey = ResourceKey::new("security_group", "stt-database");
pub const ENDPOINTS_SG: ResourceKey = ResourceKey::new("security_group", "stt-endpoints");
pub const DB_SUBNET_GROUP: ResourceKey = ResourceKey::new("db_subnet_group", "stt");
pub const DB_PARAMETER_GROUP: ResourceKey = ResourceKey::new("db_parameter_group", "stt");
pub const DATABASE: ResourceKey = ResourceKey::new("db_instance", "stt");

pub fn subnet_key(zone: &str) -> ResourceKey {
    ResourceKey::named("subnet", format!("stt-{zone}"))
}

/// Console steps S16 to S18, S20, S21: the network the functions and the database live in.
pub fn network(cx: &Context, network: &Network) -> Vec<Arc<dyn Resource>> {
    let stack = cx.stack_name();
    let region = &cx.aws.region;
    let zones = cx.zones().to_vec();
    // The local emulator models no IPv6 blocks.
    let ipv6 = network.ipv6 && !cx.aws.local;
    let mut resources: Vec<Arc<dyn Resource>> = Vec::new();
    resources.push(Arc::new(Vpc {
        key: VPC,
        name: format!("{stack}-vpc"),
        cidr: network.cidr.to_string(),
        ipv6,
    }));
    // The group AWS makes with the VPC: unused, and kept without rules.
    resources.push(Arc::new(DefaultSecurityGroup {
        key: DEFAULT_SG,
        vpc: VPC,
    }));
    let subnets: Vec<ResourceKey> = zones.iter().map(|z| subnet_key(z)).collect();
    for (i, zone) in zones.iter().enumerate() {
        resources.push(Arc::new(Subnet {
            key: subnets[i].clone(),
            vpc: VPC,
            name: format!("{stack}-{zone}"),
            cidr: network
                .cidr
                .subnet(4, i as u32)
                .expect("at most 16 zones")
                .to_string(),
            availability_zone: zone.clone(),
            ipv6_index: ipv6.then_some(i as u8),
        }));
    }
    if ipv6 {
        resources.push(Arc::new(EgressGateway {
            key: EGRESS_GATEWAY,
            vpc: VPC,
            name: format!("{stack}-egress"),
        }));
    }
    resources.push(Arc::new(RouteTable {
        key: ROUTE_TABLE,
        vpc: VPC,
        name: format!("{stack}-private"),
        subnets: subnets.clone(),
        ipv6_gateway: ipv6.then_some(EGRESS_GATEWAY),
    }));

    // Functions: HTTPS out (endpoints in the VPC, dual-stack AWS endpoints over IPv6) and
    // MySQL inside the VPC; nothing in.
    let mut function_rules = vec![
        WantedRule::tcp(true, 443, WantedPeer::Ipv4("0.0.0.0/0".into())),
        WantedRule::tcp(true, 3306, WantedPeer::Ipv4(network.cidr.to_string())),
    ];
    if ipv6 {
        function_rules.push(WantedRule::tcp(true, 443, WantedPeer::Ipv6("::/0".into())));
    }
    if network
        .interface_endpoints
        .contains(&EndpointService::EmailSmtp)
    {
        function_rules.push(WantedRule::tcp(
            true,
            587,
            WantedPeer::Ipv4(network.cidr.to_string()),
        ));
    }
    resources.push(Arc::new(SecurityGroup {
        key: FUNCTIONS_SG,
        vpc: VPC,
        name: format!("{stack}-functions"),
        description: "Lambda functions of the speech-to-text service".into(),
        rules: function_rules,
    }));
    // The database: MySQL from the functions only (and the operator, if stack.yaml says so).
    let mut database_rules = vec![WantedRule::tcp(
        false,
        3306,
        WantedPeer::Group(FUNCTIONS_SG),
    )];
    if let Some(operator) = &network.operator_cidr {
        database_rules.push(WantedRule::tcp(
            false,
            3306,
            WantedPeer::Ipv4(operator.to_string()),
        ));
    }
    resources.push(Arc::new(SecurityGroup {
        key: DATABASE_SG,
        vpc: VPC,
        name: format!("{stack}-database"),
        description: "MySQL of the speech-to-text service, reachable from its functions".into(),
        rules: database_rules,
    }));
    let mut endpoint_ports = vec![WantedRule::tcp(false, 443, WantedPeer::Group(FUNCTIONS_SG))];
    if network
        .interface_endpoints
        .contains(&EndpointService::EmailSmtp)
    {
        endpoint_ports.push(WantedRule::tcp(false, 587, WantedPeer::Group(FUNCTIONS_SG)));
    }
    resources.push(Arc::new(SecurityGroup {
        key: ENDPOINTS_SG,
        vpc: VPC,
        name: format!("{stack}-endpoints"),
        description: "Interface endpoints, reachable from the functions".into(),
        rules: endpoint_ports,
    }));

    for service in &network.gateway_endpoints {
        resources.push(Arc::new(VpcEndpoint {
            key: ResourceKey::named("vpc_endpoint", format!("stt-{}", service.as_str())),
            vpc: VPC,
            name: format!("{stack}-{}", service.as_str()),
            service_name: format!("com.amazonaws.{region}.{}", service.as_str()),
            attachment: Attachment::Gateway {
                route_tables: vec![ROUTE_TABLE],
            },
            // Only the stack's audio bucket, whose name is known before it exists.
            policy: (*service == GatewayService::S3).then(|| {
                stt_functions::s3_endpoint_policy(
                    &stt_functions::audio_bucket_name(cx),
                    &cx.aws.account_id,
                )
            }),
        }));
    }
    for service in &network.interface_endpoints {
        resources.push(Arc::new(VpcEndpoint {
            key: ResourceKey::named("vpc_endpoint", format!("stt-{}", service.as_str())),
            vpc: VPC,
            name: format!("{stack}-{}", service.as_str()),
            service_name: format!("com.amazonaws.{region}.{}", service.as_str()),
            attachment: Attachment::Interface {
                subnets: subnets.clone(),
                security_groups: vec![ENDPOINTS_SG],
            },
            policy: None,
        }));
    }
    resources
}

/// Console step S15: the database, started as soon as its network allows.
pub fn database(cx: &Context, db: &Database) -> Vec<Arc<dyn Resource>> {
    let stack = cx.stack_name();
    let zones = cx.zones().to_vec();
    let subnet_group = format!("{stack}-db");
    let family = db_parameter_group::family(db.engine.as_str(), &db.engine_version);
    let parameter_group = db_parameter_group::group_name(stack, &family);
    let d = db.clone();
    let deletion_protection = db.deletion_protection_on(cx.aws.local);
    let group_name = subnet_group.clone();
    let parameters_name = parameter_group.clone();
    let settings = move |security_groups: Vec<String>| DbSettings {
        engine: d.engine.as_str().into(),
        engine_version: d.engine_version.clone(),
        instance_class: d.instance_class.as_str().into(),
        allocated_storage: d.allocated_storage_gb.0,
        storage_type: d.storage_type.as_str().into(),
        backup_retention: d.backup_retention_days.0,
        master_username: d.master_username.as_str().into(),
        db_name: d.database_name.as_str().into(),
        storage_encrypted: true,
        publicly_accessible: false,
        deletion_protection,
        managed_password: true,
        subnet_group: group_name.clone(),
        security_groups,
        parameter_group: parameters_name.clone(),
    };
    vec![
        Arc::new(DbSubnetGroup {
            key: DB_SUBNET_GROUP,
            name: subnet_group,
            subnets: zones.iter().map(|z| subnet_key(z)).collect(),
        }),
        Arc::new(DbParameterGroup {
            key: DB_PARAMETER_GROUP,
            name: parameter_group,
            family,
            // MySQL refuses connections without TLS (the functions verify the certificate).
            parameters: [("require_secure_transport".to_owned(), "1".to_owned())].into(),
        }),
        Arc::new(DbInstance {
            key: DATABASE,
            identifier: format!("{stack}-db"),
            subnet_group: DB_SUBNET_GROUP,
            parameter_group: DB_PARAMETER_GROUP,
            security_group: DATABASE_SG,
            settings: Box::new(settings),
            final_snapshot: db.final_snapshot,
            apply_immediately: db.apply_immediately,
        }),
    ]
}

pub fn network_outputs(cx: &Context, out: &mut BTreeMap<&'static str, String>) {
    if let Some(id) = cx.output(&VPC, "id") {
        out.insert("stt_vpc_id", id);
    }
    if let (Some(address), Some(port)) = (
        cx.output(&DATABASE, "address"),
        cx.output(&DATABASE, "port"),
    ) {
        out.insert("stt_database_endpoint", format!("{address}:{port}"));
    }
    if let Some(secret) = cx.output(&DATABASE, "secret_arn") {
        out.insert("stt_database_secret_arn", secret);
    }
}
