//! The dependency graph and its executor: runs a step on every resource, each as soon as the
//! resources it waits for are done, at most `limit` at a time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::{Error, Resource, ResourceKey};

/// Which way the edges point for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Dependencies first: plan, up, drift.
    Forward,
    /// Dependents first: down.
    Reverse,
}

/// How one resource's step ended.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    Failed(Error),
    /// Not run because something it waits for failed.
    Skipped {
        because_of: ResourceKey,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("{resource} depends on {missing}, which is not part of the stack")]
    UnknownDependency {
        resource: ResourceKey,
        missing: ResourceKey,
    },
    #[error("dependency cycle through {0}")]
    Cycle(ResourceKey),
    #[error("{0} is declared twice")]
    Duplicate(ResourceKey),
}

pub struct Graph {
    nodes: Vec<Arc<dyn Resource>>,
    /// For each node, the nodes that must be done before it is made: what it depends on and
    /// what it only reads outputs of.
    needs: Vec<Vec<usize>>,
    /// For each node, the nodes it depends on for as long as it exists ([`Resource::depends_on`]):
    /// it is deleted before them.
    deps: Vec<Vec<usize>>,
    /// For each node, the nodes that must be deleted before it (edges that only hold in
    /// reverse order; see [`Resource::delete_after`]).
    outlives: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(nodes: Vec<Arc<dyn Resource>>) -> Result<Graph, GraphError> {
        let mut index = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            if index.insert(node.key(), i).is_some() {
                return Err(GraphError::Duplicate(node.key()));
            }
        }
        let resolve = |node: &Arc<dyn Resource>, keys: Vec<ResourceKey>| {
            keys.into_iter()
                .map(|dep| {
                    index
                        .get(&dep)
                        .copied()
                        .ok_or_else(|| GraphError::UnknownDependency {
                            resource: node.key(),
                            missing: dep.clone(),
                        })
                })
                .collect::<Result<Vec<usize>, GraphError>>()
        };
        let mut needs = Vec::with_capacity(nodes.len());
        let mut deps = Vec::with_capacity(nodes.len());
        let mut outlives = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let depends = resolve(node, node.depends_on())?;
            let mut needed = depends.clone();
            needed.extend(resolve(node, node.reads())?);
            needs.push(needed);
            deps.push(depends);
            outlives.push(resolve(node, node.delete_after())?);
        }
        let graph = Graph {
            nodes,
            needs,
            deps,
            outlives,
        };
        graph.check_acyclic(Order::Forward)?;
        graph.check_acyclic(Order::Reverse)?;
        Ok(graph)
    }

    pub fn resources(&self) -> &[Arc<dyn Resource>] {
        &self.nodes
    }

    /// For each resource, what its step waits for in `order` (for reports).
    pub fn waits_for(&self, order: Order) -> HashMap<ResourceKey, Vec<ResourceKey>> {
        self.waits(order)
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                let keys = w.into_iter().map(|j| self.nodes[j].key()).collect();
                (self.nodes[i].key(), keys)
            })
            .collect()
    }

    /// Kahn's algorithm: a node that never becomes ready sits on a cycle.
    fn check_acyclic(&self, order: Order) -> Result<(), GraphError> {
        let waits = self.waits(order);
        let mut pending: Vec<usize> = waits.iter().map(Vec::len).collect();
        let mut ready: Vec<usize> = (0..self.nodes.len()).filter(|&i| pending[i] == 0).collect();
        let mut seen = 0;
        let unblocks = self.unblocks(&waits);
        while let Some(i) = ready.pop() {
            seen += 1;
            for &j in &unblocks[i] {
                pending[j] -= 1;
                if pending[j] == 0 {
                    ready.push(j);
                }
            }
        }
        match (0..self.nodes.len()).find(|&i| pending[i] > 0) {
            Some(i) if seen < self.nodes.len() => Err(GraphError::Cycle(self.nodes[i].key())),
            _ => Ok(()),
        }
    }

    /// For each node, the nodes that must finish before it runs in this order.
    fn waits(&self, order: Order) -> Vec<Vec<usize>> {
        match order {
            Order::Forward => self.needs.clone(),
            Order::Reverse => {
                let mut dependents = self.outlives.clone();
                for (i, deps) in self.deps.iter().enumerate() {
                    for &d in deps {
                        dependents[d].push(i);
                    }
                }
                dependents
            }
        }
    }

    fn unblocks(&self, waits: &[Vec<usize>]) -> Vec<Vec<usize>> {
        let mut unblocks = vec![Vec::new(); self.nodes.len()];
        for (i, w) in waits.iter().enumerate() {
            for &d in w {
                unblocks[d].push(i);
            }
        }
        unblocks
    }

    /// Runs `step` on every resource in `order`, independent ones concurrently (at most
    /// `limit` at once). A failure skips everything that waits for it; the rest goes on, so
    /// one broken resource does not leave unrelated work half-done.
    pub async fn run<T, F, Fut>(
        &self,
        order: Order,
        limit: usize,
        step: F,
    ) -> Vec<(ResourceKey, Outcome<T>)>
    where
        F: Fn(Arc<dyn Resource>) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let n = self.nodes.len();
        let waits = self.waits(order);
        let unblocks = self.unblocks(&waits);
        let mut pending: Vec<usize> = waits.iter().map(Vec::len).collect();
        let mut outcomes: Vec<Option<Outcome<T>>> = (0..n).map(|_| None).collect();
        // The longest remaining chain first (ties in declaration order, so runs are
        // reproducible): with `limit` slots, a slow chain never waits behind quick leaves.
        let chain = self.chain_lengths(&unblocks);
        let priority = |i: usize| (chain[i], Reverse(i));
        let mut ready: BinaryHeap<_> = (0..n).filter(|&i| pending[i] == 0).map(priority).collect();
        let mut running = FuturesUnordered::new();

        loop {
            while running.len() < limit.max(1) {
                let Some((_, Reverse(i))) = ready.pop() else {
                    break;
                };
                let fut = step(self.nodes[i].clone());
                running.push(async move { (i, fut.await) });
            }
            let Some((i, result)) = running.next().await else {
                break;
            };
            let failed = result.is_err();
            outcomes[i] = Some(match result {
                Ok(v) => Outcome::Done(v),
                Err(e) => Outcome::Failed(e),
            });
            if failed {
                self.skip_dependents(i, &unblocks, &mut outcomes);
            }
            for &j in &unblocks[i] {
                pending[j] -= 1;
                if pending[j] == 0 && outcomes[j].is_none() {
                    ready.push(priority(j));
                }
            }
        }

        self.nodes
            .iter()
            .zip(outcomes)
            .map(|(node, outcome)| {
                (
                    node.key(),
                    outcome.expect("every node runs, fails or is skipped"),
                )
            })
            .collect()
    }

    /// For each node, its typical duration plus the longest chain of typical durations among
    /// the nodes it unblocks (the "bottom level" of list scheduling), in milliseconds.
    fn chain_lengths(&self, unblocks: &[Vec<usize>]) -> Vec<u128> {
        fn visit(
            i: usize,
            graph: &Graph,
            unblocks: &[Vec<usize>],
            memo: &mut Vec<Option<u128>>,
        ) -> u128 {
            if let Some(known) = memo[i] {
                return known;
            }
            let tail = unblocks[i]
                .iter()
                .map(|&j| visit(j, graph, unblocks, memo))
                .max()
                .unwrap_or(0);
            let length = graph.nodes[i].typical_duration().as_millis() + tail;
            memo[i] = Some(length);
            length
        }
        let mut memo = vec![None; self.nodes.len()];
        (0..self.nodes.len())
            .map(|i| visit(i, self, unblocks, &mut memo))
            .collect()
    }

    fn skip_dependents<T>(
        &self,
        failed: usize,
        unblocks: &[Vec<usize>],
        outcomes: &mut [Option<Outcome<T>>],
    ) {
        let mut stack = vec![failed];
        while let Some(i) = stack.pop() {
            for &j in &unblocks[i] {
                if outcomes[j].is_none() {
                    outcomes[j] = Some(Outcome::Skipped {
                        because_of: self.nodes[failed].key(),
                    });
                    stack.push(j);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Context, DeleteOptions, Deleted, Planned};
    use async_trait::async_trait;
    use std::sync::Mutex;
    use std::time::Duration;

    struct Fake {
        key: ResourceKey,
        deps: Vec<ResourceKey>,
        reads: Vec<ResourceKey>,
        after: Vec<ResourceKey>,
        typical: Duration,
    }

    #[async_trait]
    impl Resource for Fake {
        fn key(&self) -> ResourceKey {
            self.key.clone()
        }
        fn depends_on(&self) -> Vec<ResourceKey> {
            self.deps.clone()
        }
        fn reads(&self) -> Vec<ResourceKey> {
            self.reads.clone()
        }
        fn delete_after(&self) -> Vec<ResourceKey> {
            self.after.clone()
        }
        fn typical_duration(&self) -> Duration {
            self.typical
        }
        async fn plan(&self, _: &Context) -> Result<Planned, Error> {
            unreachable!("the executor never calls resource methods itself")
        }
        async fn apply(&self, _: &Context, _: &Planned) -> Result<(), Error> {
            unreachable!()
        }
        async fn delete(&self, _: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
            unreachable!()
        }
    }

    fn key(name: &'static str) -> ResourceKey {
        ResourceKey::new("fake", name)
    }

    fn node(name: &'static str, deps: &[&'static str]) -> Arc<dyn Resource> {
        outliving(name, deps, &[])
    }

    fn outliving(
        name: &'static str,
        deps: &[&'static str],
        after: &[&'static str],
    ) -> Arc<dyn Resource> {
        Arc::new(Fake {
            key: key(name),
            deps: deps.iter().map(|d| key(d)).collect(),
            reads: vec![],
            after: after.iter().map(|d| key(d)).collect(),
            typical: Duration::from_secs(1),
        })
    }

    /// bucket, oac -> distribution -> policy; bucket -> files
    fn website() -> Graph {
        Graph::new(vec![
            node("policy", &["bucket", "distribution"]),
            node("distribution", &["bucket", "oac"]),
            node("bucket", &[]),
            node("oac", &[]),
            node("files", &["bucket"]),
        ])
        .unwrap()
    }

    /// Records start and end of each step; steps sleep so overlap is visible.
    async fn trace(
        graph: &Graph,
        order: Order,
        limit: usize,
        fail: Option<&'static str>,
    ) -> (Vec<String>, Vec<(ResourceKey, Outcome<()>)>) {
        let log = Mutex::new(Vec::new());
        let outcomes = graph
            .run(order, limit, |r| {
                let log = &log;
                async move {
                    let key = r.key();
                    let name = key.name.as_ref();
                    log.lock().unwrap().push(format!("start {name}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    log.lock().unwrap().push(format!("end {name}"));
                    if Some(name) == fail {
                        return Err(Error::Refused {
                            resource: r.key(),
                            message: "boom".into(),
                        });
                    }
                    Ok(())
                }
            })
            .await;
        (log.into_inner().unwrap(), outcomes)
    }

    fn position(log: &[String], entry: &str) -> usize {
        log.iter()
            .position(|l| l == entry)
            .unwrap_or_else(|| panic!("{entry} not in {log:?}"))
    }

    #[tokio::test]
    async fn dependencies_finish_before_dependents_start() {
        let (log, outcomes) = trace(&website(), Order::Forward, 4, None).await;
        assert!(outcomes.iter().all(|(_, o)| matches!(o, Outcome::Done(()))));
        for (before, after) in [
            ("bucket", "distribution"),
            ("oac", "distribution"),
            ("distribution", "policy"),
            ("bucket", "files"),
        ] {
            assert!(
                position(&log, &format!("end {before}"))
                    < position(&log, &format!("start {after}")),
                "{log:?}"
            );
        }
        // Independent roots run side by side.
        assert!(
            position(&log, "start oac") < position(&log, "end bucket"),
            "{log:?}"
        );
    }

    #[tokio::test]
    async fn reverse_order_deletes_dependents_first() {
        let (log, _) = trace(&website(), Order::Reverse, 4, None).await;
        assert!(position(&log, "end policy") < position(&log, "start distribution"));
        assert!(position(&log, "end distribution") < position(&log, "start oac"));
        assert!(position(&log, "end files") < position(&log, "start bucket"));
    }

    /// A VPC function's role outlives the security group its network interfaces block,
    /// without the group depending on the role when they are made.
    #[tokio::test]
    async fn delete_after_edges_hold_only_in_reverse() {
        let graph = Graph::new(vec![
            outliving("role", &[], &["group"]),
            node("group", &[]),
            node("function", &["role", "group"]),
        ])
        .unwrap();
        let (log, _) = trace(&graph, Order::Reverse, 4, None).await;
        assert!(position(&log, "end function") < position(&log, "start group"));
        assert!(
            position(&log, "end group") < position(&log, "start role"),
            "{log:?}"
        );
        let (log, _) = trace(&graph, Order::Forward, 4, None).await;
        assert!(
            position(&log, "start group") < position(&log, "end role"),
            "forward runs role and group side by side: {log:?}"
        );
        // Needed first and deleted first at once cannot be.
        let cycle = Graph::new(vec![
            outliving("role", &["group"], &["group"]),
            node("group", &[]),
        ])
        .err();
        assert!(matches!(cycle, Some(GraphError::Cycle(_))));
    }

    /// A role reads the database's secret for its policy, yet may outlive the database.
    #[tokio::test]
    async fn reads_order_only_the_making() {
        let reader: Arc<dyn Resource> = Arc::new(Fake {
            key: key("role"),
            deps: vec![],
            reads: vec![key("database")],
            after: vec![key("group")],
            typical: Duration::from_secs(1),
        });
        let graph = Graph::new(vec![
            reader,
            node("group", &[]),
            node("database", &["group"]),
        ])
        .unwrap();
        let (log, _) = trace(&graph, Order::Forward, 4, None).await;
        assert!(position(&log, "end database") < position(&log, "start role"));
        let (log, _) = trace(&graph, Order::Reverse, 4, None).await;
        assert!(position(&log, "end database") < position(&log, "start group"));
        assert!(position(&log, "end group") < position(&log, "start role"));
    }

    #[tokio::test]
    async fn limit_bounds_concurrency() {
        let (log, _) = trace(&website(), Order::Forward, 1, None).await;
        for pair in log.chunks(2) {
            assert!(
                pair[0].starts_with("start")
                    && pair[1].starts_with("end")
                    && pair[0][6..] == pair[1][4..],
                "{log:?}"
            );
        }
    }

    fn slow(name: &'static str, deps: &[&'static str], typical_s: u64) -> Arc<dyn Resource> {
        Arc::new(Fake {
            key: key(name),
            deps: deps.iter().map(|d| key(d)).collect(),
            reads: vec![],
            after: vec![],
            typical: Duration::from_secs(typical_s),
        })
    }

    #[tokio::test]
    async fn the_longest_chain_starts_first_whatever_the_declaration_order() {
        // Quick leaves declared first; the database and the role heading a function chain
        // must not wait behind them for a slot.
        let graph = Graph::new(vec![
            node("site-file-1", &[]),
            node("site-file-2", &[]),
            node("site-file-3", &[]),
            slow("role", &[], 10),
            slow("function", &["role"], 60),
            slow("database", &[], 360),
            node("migration", &["database", "function"]),
        ])
        .unwrap();
        let (log, _) = trace(&graph, Order::Forward, 1, None).await;
        let starts: Vec<&str> = log
            .iter()
            .filter_map(|l| l.strip_prefix("start "))
            .collect();
        // database (361 s chain), role (71 s), function (61 s); then the 1 s ones in
        // declaration order, the migration last.
        assert_eq!(
            starts,
            [
                "database",
                "role",
                "function",
                "site-file-1",
                "site-file-2",
                "site-file-3",
                "migration"
            ]
        );
    }

    #[tokio::test]
    async fn a_failure_skips_what_waits_for_it_and_nothing_else() {
        let (log, outcomes) = trace(&website(), Order::Forward, 4, Some("oac")).await;
        let outcome = |name| &outcomes.iter().find(|(k, _)| k.name == name).unwrap().1;
        assert!(matches!(outcome("oac"), Outcome::Failed(_)));
        assert!(
            matches!(outcome("distribution"), Outcome::Skipped { because_of } if because_of.name == "oac")
        );
        assert!(matches!(outcome("policy"), Outcome::Skipped { .. }));
        assert!(matches!(outcome("files"), Outcome::Done(())));
        assert!(!log.iter().any(|l| l.contains("distribution")));
    }

    #[test]
    fn graph_errors_are_found_before_running() {
        let unknown = Graph::new(vec![node("a", &["ghost"])]).err();
        assert_eq!(
            unknown,
            Some(GraphError::UnknownDependency {
                resource: key("a"),
                missing: key("ghost")
            })
        );
        let cycle = Graph::new(vec![node("a", &["b"]), node("b", &["a"])]).err();
        assert!(matches!(cycle, Some(GraphError::Cycle(_))));
        let twice = Graph::new(vec![node("a", &[]), node("a", &[])]).err();
        assert_eq!(twice, Some(GraphError::Duplicate(key("a"))));
    }
}
