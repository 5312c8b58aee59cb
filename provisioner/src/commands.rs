//! The commands: each runs the resource graph with one step and builds its report.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::aws::{Clients, Target};
use crate::engine::executor::{Graph, Order, Outcome};
use crate::engine::{Action, Context, DeleteOptions, Deleted, Error, Planned, ResourceKey};
use crate::output::{Report, ResourceLine, Summary, Timing};
use crate::spec::Stack;
use crate::systems;

/// How many resources are worked on at once.
const PARALLELISM: usize = 6;

pub struct Session {
    cx: Arc<Context>,
    graph: Graph,
}

impl Session {
    /// Connects to AWS (after `stack.yaml` has been read and checked) and builds the graph.
    pub async fn open(
        stack: Stack,
        target: &Target,
        show_progress: bool,
    ) -> anyhow::Result<Session> {
        let aws = Clients::connect(stack.stack.region.as_str(), target).await?;
        let zones = systems::zones::resolve(&stack, &aws).await?;
        let cx = Arc::new(Context::new(Arc::new(stack), aws, show_progress).with_zones(zones));
        let graph = systems::graph(&cx)?;
        Ok(Session { cx, graph })
    }

    /// A session over `resources` alone, sharing `cx` (the CloudFormation engine's artifact
    /// bucket).
    pub fn over(
        cx: Arc<Context>,
        resources: Vec<Arc<dyn crate::engine::Resource>>,
    ) -> Result<Session, crate::engine::executor::GraphError> {
        Ok(Session {
            cx,
            graph: Graph::new(resources)?,
        })
    }

    fn report(&self, command: &'static str, resources: Vec<ResourceLine>) -> Report {
        Report {
            command,
            stack: self.cx.stack_name().to_owned(),
            summary: Summary::count(&resources),
            resources,
            api_calls: self.cx.aws.calls.counts(),
            outputs: systems::outputs(&self.cx),
            drifted: None,
        }
    }

    /// Reads everything, changes nothing.
    pub async fn plan(&self) -> Report {
        let clock = Clock::start();
        let outcomes = self
            .graph
            .run(Order::Forward, PARALLELISM, |r| {
                let cx = self.cx.clone();
                clock.time(r.key(), async move { r.plan(&cx).await })
            })
            .await;
        let lines = self.lines(outcomes, |key, p: Planned| {
            ResourceLine::planned(key, p.physical_id, p.action, p.changes)
        });
        self.report("plan", clock.annotate(lines, &self.graph, Order::Forward))
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.cx
    }

    /// Converges: each resource is planned and, if needed, applied as soon as its
    /// dependencies are done; then waits for what is still settling.
    pub async fn up(&self, allow_replace: bool) -> Report {
        self.converge(allow_replace, None).await
    }

    /// `up` of `only` (what CloudFormation cannot do, after its deploy): every other resource
    /// is read, never written, so that what it publishes (ids, names, endpoints) is known to
    /// these. The report holds `only`'s lines.
    pub async fn up_only(&self, only: &BTreeSet<ResourceKey>) -> Report {
        self.converge(false, Some(only)).await
    }

    /// `plan` of everything, reported for `only`.
    pub async fn plan_only(&self, only: &BTreeSet<ResourceKey>) -> Report {
        let mut report = self.plan().await;
        keep_lines(&mut report, only);
        report
    }

    async fn converge(&self, allow_replace: bool, only: Option<&BTreeSet<ResourceKey>>) -> Report {
        let clock = Clock::start();
        // Each created or changed resource is waited for (CloudFront deploying) as soon as
        // its own step is done, beside the rest of the graph: nothing waits on it.
        let settling = Mutex::new(Vec::new());
        let outcomes = self.graph.run(Order::Forward, PARALLELISM, |r| {
            let cx = self.cx.clone();
            let (clock, settling) = (&clock, &settling);
            let key = r.key();
            let read_only = only.is_some_and(|only| !only.contains(&key));
            let step = async move {
                let planned = r.plan(&cx).await?;
                if read_only {
                    return Ok(planned);
                }
                if planned.action == Action::Replace && !allow_replace {
                    let fields: Vec<&str> = planned.changes.iter().map(|c| c.field.as_str()).collect();
                    return Err(Error::Refused {
                        resource: planned.resource.clone(),
                        message: format!(
                            "must be replaced to apply {}; nothing was changed. Run `provision up --allow-replace` \
                             to replace it (a database gets a final snapshot first)",
                            fields.join(", ")
                        ),
                    });
                }
                if planned.action != Action::NoOp {
                    r.apply(&cx, &planned).await?;
                    tracing::info!(resource = %planned.resource, action = ?planned.action, "applied");
                    progress(&planned);
                    let began = clock.start;
                    let wait = tokio::spawn(async move {
                        let result = r.wait_ready(&cx).await;
                        (millis_since(began), result)
                    });
                    settling.lock().expect("not poisoned").push((planned.resource.clone(), wait));
                }
                Ok(planned)
            };
            clock.time(key, step)
        }).await;
        let mut resources = self.lines(outcomes, |key, p: Planned| {
            ResourceLine::planned(key, p.physical_id, p.action, p.changes)
        });
        let settling = settling.into_inner().expect("not poisoned");
        let (keys, waits): (Vec<_>, Vec<_>) = settling.into_iter().unzip();
        for (key, joined) in keys.into_iter().zip(futures::future::join_all(waits).await) {
            // A wait that panicked (a bug) fails its own resource's line, not the report.
            let result = match joined {
                Ok((settled_ms, result)) => {
                    clock.settled(&key, settled_ms);
                    result.map_err(|e| e.to_string())
                }
                Err(e) => Err(format!("the wait for it to settle ended abnormally: {e}")),
            };
            if let Err(e) = result {
                let line = resources
                    .iter_mut()
                    .find(|l| l.resource == key.to_string())
                    .expect("every resource has a line");
                line.result = "failed".into();
                line.error = Some(e);
            }
        }
        let mut report = self.report("up", clock.annotate(resources, &self.graph, Order::Forward));
        if let Some(only) = only {
            keep_lines(&mut report, only);
        }
        report
    }

    /// Compares every resource's live settings with `stack.yaml`.
    pub async fn drift(&self) -> Report {
        self.plan().await.into_drift()
    }

    /// Deletes what the stack owns, dependents first; nothing at all if a resource refuses
    /// to be deleted with these options (a protected database).
    pub async fn down(&self, options: DeleteOptions) -> Report {
        self.delete(options, None).await
    }

    /// `down` of `only` (the CloudFormation engine's: what it did after the deploy, and what
    /// the template keeps when its stack is deleted); the other resources are left alone.
    pub async fn down_only(&self, options: DeleteOptions, only: &BTreeSet<ResourceKey>) -> Report {
        self.delete(options, Some(only)).await
    }

    async fn delete(&self, options: DeleteOptions, only: Option<&BTreeSet<ResourceKey>>) -> Report {
        let checks = self.graph.resources().iter().map(|r| {
            let cx = self.cx.clone();
            let r = r.clone();
            async move { (r.key(), r.before_delete(&cx, &options).await) }
        });
        let checked = futures::future::join_all(checks).await;
        if let Some((refused, _)) = checked.iter().find(|(_, result)| result.is_err()) {
            let refused = refused.clone();
            let lines = checked
                .into_iter()
                .map(|(key, result)| match result {
                    Err(e) => ResourceLine::failed(&key, e.to_string()),
                    Ok(()) => ResourceLine::skipped(&key, &refused),
                })
                .collect();
            return self.report("down", lines);
        }
        let clock = Clock::start();
        let outcomes = self
            .graph
            .run(Order::Reverse, PARALLELISM, |r| {
                let cx = self.cx.clone();
                let left_alone = only.is_some_and(|only| !only.contains(&r.key()));
                clock.time(r.key(), async move {
                    if left_alone {
                        return Ok(Deleted::Absent);
                    }
                    let deleted = r.delete(&cx, &options).await?;
                    eprintln!("{:<13} {}", format!("{deleted:?}").to_lowercase(), r.key());
                    Ok(deleted)
                })
            })
            .await;
        let lines = self.lines(outcomes, ResourceLine::deleted);
        let mut report = self.report("down", clock.annotate(lines, &self.graph, Order::Reverse));
        if let Some(only) = only {
            keep_lines(&mut report, only);
        }
        report
    }
}

/// Drops the lines of resources outside `only` (unless they failed: what `only` needed from
/// them is then missing), and counts again.
fn keep_lines(report: &mut Report, only: &BTreeSet<ResourceKey>) {
    let names: BTreeSet<String> = only.iter().map(ToString::to_string).collect();
    report
        .resources
        .retain(|l| names.contains(&l.resource) || l.result == "failed");
    report.summary = Summary::count(&report.resources);
}

/// One line per finished resource on stderr, so long runs show where they are.
fn progress(planned: &Planned) {
    let verb = match planned.action {
        Action::Create => "created",
        Action::Replace => "replaced",
        _ => "updated",
    };
    eprintln!("{verb:<13} {}", planned.resource);
}

impl Session {
    /// One report line per resource, with the notes its steps left.
    fn lines<T>(
        &self,
        outcomes: Vec<(ResourceKey, Outcome<T>)>,
        done: impl Fn(&ResourceKey, T) -> ResourceLine,
    ) -> Vec<ResourceLine> {
        outcomes
            .into_iter()
            .map(|(key, outcome)| {
                let mut line = match outcome {
                    Outcome::Done(v) => done(&key, v),
                    Outcome::Failed(e) => ResourceLine::failed(&key, e.to_string()),
                    Outcome::Skipped { because_of } => ResourceLine::skipped(&key, &because_of),
                };
                line.notes = self.cx.notes(&key);
                line
            })
            .collect()
    }
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// When each resource's step ran, for the reports' `timing` (and `make bench`'s critical path).
struct Clock {
    start: Instant,
    spans: Mutex<HashMap<ResourceKey, Timing>>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            start: Instant::now(),
            spans: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        millis_since(self.start)
    }

    /// Runs `step`, noting when it started and ended.
    async fn time<T>(&self, key: ResourceKey, step: impl std::future::Future<Output = T>) -> T {
        let started_ms = self.now_ms();
        let result = step.await;
        let span = Timing {
            started_ms,
            finished_ms: self.now_ms(),
            settled_ms: None,
        };
        self.spans.lock().expect("not poisoned").insert(key, span);
        result
    }

    /// Notes when a resource's wait ended (measured in its own task: the waits end in any
    /// order, and are collected only once all have).
    fn settled(&self, key: &ResourceKey, settled_ms: u64) {
        if let Some(span) = self.spans.lock().expect("not poisoned").get_mut(key) {
            span.settled_ms = Some(settled_ms);
        }
    }

    /// Adds each line's timing and what it waited for.
    fn annotate(
        &self,
        mut lines: Vec<ResourceLine>,
        graph: &Graph,
        order: Order,
    ) -> Vec<ResourceLine> {
        let spans = self.spans.lock().expect("not poisoned");
        let waits = graph.waits_for(order);
        for (line, resource) in lines.iter_mut().zip(graph.resources()) {
            let key = resource.key();
            debug_assert_eq!(line.resource, key.to_string());
            line.timing = spans.get(&key).copied();
            line.waited_for = waits
                .get(&key)
                .map(|w| w.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
        }
        lines
    }
}
