//! Which resources make up each system, how they are named and how they link.

pub mod stt;
pub mod stt_functions;
pub mod vod;
pub mod web;
pub mod zones;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::executor::{Graph, GraphError};
use crate::engine::{Context, Resource};

/// Every resource of the stack, as one dependency graph.
pub fn graph(cx: &Context) -> Result<Graph, GraphError> {
    let mut resources: Vec<Arc<dyn Resource>> = Vec::new();
    if let Some(website) = &cx.stack.stt.website {
        resources.extend(stt::website(cx, website));
    }
    if let Some(network) = &cx.stack.stt.network {
        resources.extend(stt::network(cx, network));
    }
    if let Some(database) = &cx.stack.stt.database {
        resources.extend(stt::database(cx, database));
    }
    if let Some(functions) = &cx.stack.stt.functions {
        resources.extend(stt_functions::resources(cx, functions));
    }
    if let Some(vod) = &cx.stack.vod {
        resources.extend(vod::resources(cx, vod));
    }
    Graph::new(resources)
}

/// What a person needs after `up`: URLs, names, ids.
pub fn outputs(cx: &Context) -> BTreeMap<&'static str, String> {
    let mut out = stt::outputs(cx);
    stt_functions::outputs(cx, &mut out);
    vod::outputs(cx, &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::aws::Clients;
    use crate::engine::executor::Order;
    use crate::engine::ResourceKey;
    use crate::spec::Stack;

    /// The repository's stack.yaml, with clients that never connect.
    pub(crate) fn context(local: bool) -> Context {
        let stack = Stack::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack.yaml"))
            .expect("the repository's stack.yaml is valid");
        Context::new(
            Arc::new(stack),
            Clients::offline("us-east-1", "111122223333", local),
            false,
        )
        .with_zones(vec!["us-east-1a".into(), "us-east-1b".into()])
    }

    /// The repository's stack.yaml on a symbolic context, as `provision template` renders it.
    pub(crate) fn symbolic_context() -> Context {
        let cx = context(false);
        Context::symbolic(cx.stack.clone(), cx.zones().to_vec())
    }

    async fn order(cx: &Context, order: Order) -> Vec<ResourceKey> {
        let graph = graph(cx).expect("the stack's graph is valid");
        let seen = Mutex::new(Vec::new());
        graph
            .run(order, 1, |r| {
                seen.lock().unwrap().push(r.key());
                async { Ok(()) }
            })
            .await;
        seen.into_inner().unwrap()
    }

    #[tokio::test]
    async fn down_keeps_the_function_roles_until_their_network_interfaces_are_gone() {
        let cx = context(false);
        let deleted = order(&cx, Order::Reverse).await;
        let at = |key: &ResourceKey| {
            deleted
                .iter()
                .position(|k| k == key)
                .unwrap_or_else(|| panic!("{key} is not deleted"))
        };
        let blocked_by_interfaces: Vec<ResourceKey> = std::iter::once(stt::FUNCTIONS_SG)
            .chain(["us-east-1a", "us-east-1b"].map(stt::subnet_key))
            .collect();
        for function in stt_functions::FUNCTIONS {
            let role = stt_functions::role_key(function);
            assert!(at(&stt_functions::function_key(function)) < at(&role));
            for blocked in &blocked_by_interfaces {
                assert!(
                    at(blocked) < at(&role),
                    "{role} is deleted before {blocked}, whose network interfaces Lambda \
                     releases with that role"
                );
            }
        }
    }

    #[tokio::test]
    async fn up_does_not_wait_for_the_network_to_make_the_roles() {
        let cx = context(false);
        let made = order(&cx, Order::Forward).await;
        let role = made
            .iter()
            .position(|k| *k == stt_functions::role_key("file_upload"))
            .unwrap();
        let group = made.iter().position(|k| *k == stt::FUNCTIONS_SG).unwrap();
        let database = made.iter().position(|k| *k == stt::DATABASE).unwrap();
        // The role needs the database's secret for its policy, not the security group.
        assert!(database < role);
        assert!(made.len() > group);
    }
}
