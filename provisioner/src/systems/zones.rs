//! The availability zones of the speech-to-text network, chosen before the resource graph is
//! built (subnets are named after their zone).
//!
//! Zone names are per account (`us-east-1a` is a different data centre in each account), and
//! not every zone offers every interface endpoint service or DB instance class. When
//! `stack.yaml` names no zones, the zones are those of the stack's existing subnets (so a
//! re-run never moves them), completed with the first zones, by name, that are available and
//! offer every interface endpoint service and the database's instance class.

use std::collections::{BTreeMap, BTreeSet};

use crate::aws::Clients;
use crate::engine::OWNER_TAG;
use crate::spec::{Ipv4Cidr, Stack};

/// RDS needs a subnet group in two zones.
pub const ZONES: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("cannot choose availability zones: {step} failed: {message}")]
    Aws { step: &'static str, message: String },
    #[error(
        "cannot choose availability zones in {region}: only {found:?} offer {needs}; \
         name two zones in stt.network.availability_zones"
    )]
    TooFew {
        region: String,
        found: Vec<String>,
        needs: String,
    },
}

fn aws_error<E>(step: &'static str) -> impl FnOnce(E) -> ZoneError
where
    E: std::error::Error,
{
    move |e| ZoneError::Aws {
        step,
        message: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
    }
}

/// The zones to build the network in.
pub async fn resolve(stack: &Stack, aws: &Clients) -> Result<Vec<String>, ZoneError> {
    let Some(network) = &stack.stt.network else {
        return Ok(Vec::new());
    };
    if let Some(zones) = &network.availability_zones {
        return Ok(zones.clone());
    }
    let existing = existing_subnets(stack, aws, &network.cidr).await?;
    if existing.len() >= ZONES {
        return Ok(existing.into_values().collect());
    }
    let mut offered: Vec<(String, BTreeSet<String>)> = Vec::new();
    let region = &aws.region;
    let names: Vec<String> = network
        .interface_endpoints
        .iter()
        .map(|s| format!("com.amazonaws.{region}.{}", s.as_str()))
        .collect();
    let mut services = endpoint_service_zones(aws, &names).await?;
    for (service, name) in network.interface_endpoints.iter().zip(&names) {
        offered.push((
            format!("the {} endpoint service", service.as_str()),
            services.remove(name).unwrap_or_default(),
        ));
    }
    if let Some(db) = &stack.stt.database {
        offered.push((
            format!("{} {}", db.engine.as_str(), db.instance_class.as_str()),
            db_class_zones(
                aws,
                db.engine.as_str(),
                &db.engine_version,
                db.instance_class.as_str(),
            )
            .await?,
        ));
    }
    let available = available_zones(aws).await?;
    pick(region, &available, &offered, &existing)
}

/// Chooses [`ZONES`] zones: the existing subnets' zones at their positions (the subnet's
/// position fixes its address range), the free positions filled with the first available
/// zones, by name, that every service offers.
pub fn pick(
    region: &str,
    available: &[String],
    offered: &[(String, BTreeSet<String>)],
    existing: &BTreeMap<usize, String>,
) -> Result<Vec<String>, ZoneError> {
    let mut candidates: Vec<&String> = available
        .iter()
        .filter(|z| offered.iter().all(|(_, zones)| zones.contains(*z)))
        .filter(|z| !existing.values().any(|e| e == *z))
        .collect();
    candidates.sort();
    let mut candidates = candidates.into_iter();
    let mut zones = Vec::new();
    for position in 0..ZONES.max(existing.keys().max().map_or(0, |m| m + 1)) {
        match existing.get(&position) {
            Some(zone) => zones.push(zone.clone()),
            None => match candidates.next() {
                Some(zone) => zones.push(zone.clone()),
                None => {
                    let found = available
                        .iter()
                        .filter(|z| offered.iter().all(|(_, zones)| zones.contains(*z)))
                        .cloned()
                        .collect();
                    let needs = offered
                        .iter()
                        .map(|(what, _)| what.as_str())
                        .collect::<Vec<_>>()
                        .join(" and ");
                    return Err(ZoneError::TooFew {
                        region: region.to_owned(),
                        found,
                        needs: if needs.is_empty() {
                            "subnets".into()
                        } else {
                            needs
                        },
                    });
                }
            },
        }
    }
    Ok(zones)
}

/// The stack's subnets (by ownership tag and `{stack}-` name) by their position in the VPC's
/// range, with their zones.
async fn existing_subnets(
    stack: &Stack,
    aws: &Clients,
    vpc: &Ipv4Cidr,
) -> Result<BTreeMap<usize, String>, ZoneError> {
    use aws_sdk_ec2::types::Filter;
    let name = stack.name();
    let out = aws
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name(format!("tag:{OWNER_TAG}"))
                .values(name)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("tag:Name")
                .values(format!("{name}-*"))
                .build(),
        )
        .send()
        .await
        .map_err(aws_error("DescribeSubnets"))?;
    let mut found = BTreeMap::new();
    for subnet in out.subnets() {
        let (Some(zone), Some(cidr)) = (subnet.availability_zone(), subnet.cidr_block()) else {
            continue;
        };
        let named = subnet
            .tags()
            .iter()
            .any(|t| t.key() == Some("Name") && t.value() == Some(&format!("{name}-{zone}")));
        if let (true, Some(position)) = (named, position_in(vpc, cidr)) {
            found.insert(position, zone.to_owned());
        }
    }
    Ok(found)
}

/// The position of a subnet's block among the VPC's /+4 blocks (as `stt::network` lays them
/// out), if it is one of them.
pub fn position_in(vpc: &Ipv4Cidr, subnet: &str) -> Option<usize> {
    let subnet: Ipv4Cidr = subnet.parse().ok()?;
    (0..16u32)
        .find(|&i| vpc.subnet(4, i) == Some(subnet))
        .map(|i| i as usize)
}

async fn available_zones(aws: &Clients) -> Result<Vec<String>, ZoneError> {
    use aws_sdk_ec2::types::{AvailabilityZoneState, Filter};
    let out = aws
        .ec2
        .describe_availability_zones()
        .filters(
            Filter::builder()
                .name("zone-type")
                .values("availability-zone")
                .build(),
        )
        .send()
        .await
        .map_err(aws_error("DescribeAvailabilityZones"))?;
    Ok(out
        .availability_zones()
        .iter()
        .filter(|z| z.state() == Some(&AvailabilityZoneState::Available))
        .filter_map(|z| z.zone_name().map(str::to_owned))
        .collect())
}

/// The zones each of the interface endpoint services is offered in.
async fn endpoint_service_zones(
    aws: &Clients,
    services: &[String],
) -> Result<BTreeMap<String, BTreeSet<String>>, ZoneError> {
    let mut zones: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if services.is_empty() {
        return Ok(zones);
    }
    // One call for all of them (a handful of names fits one page).
    let out = aws
        .ec2
        .describe_vpc_endpoint_services()
        .set_service_names(Some(services.to_vec()))
        .send()
        .await
        .map_err(aws_error("DescribeVpcEndpointServices"))?;
    for detail in out.service_details() {
        if let Some(name) = detail
            .service_name()
            .filter(|n| services.iter().any(|s| s == n))
        {
            zones
                .entry(name.to_owned())
                .or_default()
                .extend(detail.availability_zones().iter().cloned());
        }
    }
    Ok(zones)
}

/// Zones where the instance class can run a version of the engine the stack asks for.
async fn db_class_zones(
    aws: &Clients,
    engine: &str,
    version: &str,
    class: &str,
) -> Result<BTreeSet<String>, ZoneError> {
    let pages: Vec<_> = aws
        .rds
        .describe_orderable_db_instance_options()
        .engine(engine)
        .db_instance_class(class)
        .vpc(true)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(aws_error("DescribeOrderableDBInstanceOptions"))?;
    // `8.0` names the major version: any `8.0.x` will do.
    let matches = |v: &str| v == version || v.starts_with(&format!("{version}."));
    Ok(pages
        .iter()
        .flat_map(|p| p.orderable_db_instance_options())
        .filter(|o| o.engine_version().is_some_and(matches))
        .flat_map(|o| o.availability_zones())
        .filter_map(|z| z.name().map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|z| z.to_string()).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|z| z.to_string()).collect()
    }

    #[test]
    fn zones_that_lack_a_service_or_the_db_class_are_skipped() {
        let available = zones(&["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]);
        let offered = vec![
            (
                "the transcribe endpoint service".to_owned(),
                set(&["us-east-1b", "us-east-1c", "us-east-1d"]),
            ),
            (
                "mysql db.t3.micro".to_owned(),
                set(&["us-east-1a", "us-east-1c", "us-east-1d"]),
            ),
        ];
        let picked = pick("us-east-1", &available, &offered, &BTreeMap::new()).unwrap();
        assert_eq!(picked, zones(&["us-east-1c", "us-east-1d"]));
    }

    #[test]
    fn existing_subnets_keep_their_zones_and_positions() {
        let available = zones(&["us-east-1a", "us-east-1b", "us-east-1c"]);
        let offered = vec![(
            "x".to_owned(),
            set(&["us-east-1a", "us-east-1b", "us-east-1c"]),
        )];
        // A run that made only the second subnet (in c) before it was interrupted.
        let existing = BTreeMap::from([(1, "us-east-1c".to_owned())]);
        let picked = pick("us-east-1", &available, &offered, &existing).unwrap();
        assert_eq!(picked, zones(&["us-east-1a", "us-east-1c"]));
    }

    #[test]
    fn too_few_zones_is_a_clear_error() {
        let available = zones(&["us-east-1a", "us-east-1b"]);
        let offered = vec![(
            "the transcribe endpoint service".to_owned(),
            set(&["us-east-1b"]),
        )];
        let error = pick("us-east-1", &available, &offered, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("[\"us-east-1b\"]"), "{error}");
        assert!(error.contains("transcribe"), "{error}");
        assert!(error.contains("stt.network.availability_zones"), "{error}");
    }

    #[test]
    fn a_subnet_position_is_read_back_from_its_range() {
        let vpc: Ipv4Cidr = "10.20.0.0/16".parse().unwrap();
        assert_eq!(position_in(&vpc, "10.20.0.0/20"), Some(0));
        assert_eq!(position_in(&vpc, "10.20.16.0/20"), Some(1));
        assert_eq!(position_in(&vpc, "10.20.16.0/24"), None);
        assert_eq!(position_in(&vpc, "10.21.0.0/20"), None);
    }
}
