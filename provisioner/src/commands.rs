//! The commands: each runs the resource graph with one step and builds its report.

use std::sync::Arc;

use crate::aws::{Clients, Target};
use crate::engine::executor::{Graph, Order, Outcome};
use crate::engine::{Action, Context, DeleteOptions, Error, Planned, ResourceKey};
use crate::output::{Report, ResourceLine, Summary};
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
        let outcomes = self
            .graph
            .run(Order::Forward, PARALLELISM, |r| {
                let cx = self.cx.clone();
                async move { r.plan(&cx).await }
            })
            .await;
        self.report(
            "plan",
            self.lines(outcomes, |key, p: Planned| {
                ResourceLine::planned(key, p.physical_id, p.action, p.changes)
            }),
        )
    }

    /// Converges: each resource is planned and, if needed, applied as soon as its
    /// dependencies are done; then waits for what is still settling.
    pub async fn up(&self, allow_replace: bool) -> Report {
        let outcomes = self.graph.run(Order::Forward, PARALLELISM, |r| {
            let cx = self.cx.clone();
            async move {
                let planned = r.plan(&cx).await?;
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
                }
                Ok(planned)
            }
        }).await;
        let changed: Vec<ResourceKey> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Done(p) if p.action != Action::NoOp))
            .map(|(k, _)| k.clone())
            .collect();
        let mut resources = self.lines(outcomes, |key, p: Planned| {
            ResourceLine::planned(key, p.physical_id, p.action, p.changes)
        });
        let waits = self
            .graph
            .resources()
            .iter()
            .filter(|r| changed.contains(&r.key()))
            .map(|r| {
                let cx = self.cx.clone();
                let r = r.clone();
                async move { (r.key(), r.wait_ready(&cx).await) }
            });
        for (key, result) in futures::future::join_all(waits).await {
            if let Err(e) = result {
                let line = resources
                    .iter_mut()
                    .find(|l| l.resource == key.to_string())
                    .expect("every resource has a line");
                line.result = "failed".into();
                line.error = Some(e.to_string());
            }
        }
        self.report("up", resources)
    }

    /// Compares every resource's live settings with `stack.yaml`.
    pub async fn drift(&self) -> Report {
        let mut report = self.plan().await;
        report.command = "drift";
        report.drifted = Some(
            report
                .resources
                .iter()
                .any(|l| matches!(l.result.as_str(), "create" | "update" | "replace")),
        );
        report
    }

    /// Deletes what the stack owns, dependents first; nothing at all if a resource refuses
    /// to be deleted with these options (a protected database).
    pub async fn down(&self, options: DeleteOptions) -> Report {
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
        let outcomes = self
            .graph
            .run(Order::Reverse, PARALLELISM, |r| {
                let cx = self.cx.clone();
                async move {
                    let deleted = r.delete(&cx, &options).await?;
                    eprintln!("{:<13} {}", format!("{deleted:?}").to_lowercase(), r.key());
                    Ok(deleted)
                }
            })
            .await;
        self.report("down", self.lines(outcomes, ResourceLine::deleted))
    }
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
