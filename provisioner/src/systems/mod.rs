//! Which resources make up each system, how they are named and how they link.

pub mod stt;
pub mod stt_functions;
pub mod vod;
pub mod web;

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
