//! What the commands print: each report is `Serialize` for `--output json` and `Display` for
//! people.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::engine::calls::CallCounts;
use crate::engine::{Action, Deleted, FieldDiff, ResourceKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// One resource's line in a report.
#[derive(Debug, Serialize)]
pub struct ResourceLine {
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    /// create, update, noop, delete, absent, failed, skipped
    pub result: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The resources this one's step waited for in this run (the graph's edges), so that
    /// `make bench` can compute the critical path of the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waited_for: Vec<String>,
    /// When the step ran, in milliseconds since the command started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// When a resource's step ran, in milliseconds since the command started.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Timing {
    pub started_ms: u64,
    pub finished_ms: u64,
    /// `up`: when a created or changed resource was in service (CloudFront deployed), if
    /// that was waited for after its step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_ms: Option<u64>,
}

impl ResourceLine {
    fn new(resource: String, result: &str) -> Self {
        ResourceLine {
            resource,
            physical_id: None,
            result: result.into(),
            changes: vec![],
            error: None,
            notes: vec![],
            waited_for: vec![],
            timing: None,
        }
    }
    /// A line for something that is not one of the SDK engine's resources (a CloudFormation
    /// stack or one of its resources).
    pub fn named(resource: String, result: &str) -> Self {
        Self::new(resource, result)
    }
    pub fn planned(
        resource: &ResourceKey,
        physical_id: Option<String>,
        action: Action,
        changes: Vec<FieldDiff>,
    ) -> Self {
        let result = match action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::NoOp => "noop",
        };
        ResourceLine {
            physical_id,
            changes,
            ..Self::new(resource.to_string(), result)
        }
    }
    pub fn deleted(resource: &ResourceKey, deleted: Deleted) -> Self {
        let result = match deleted {
            Deleted::Deleted => "delete",
            Deleted::Absent => "absent",
        };
        Self::new(resource.to_string(), result)
    }
    pub fn failed(resource: &ResourceKey, error: String) -> Self {
        ResourceLine {
            error: Some(error),
            ..Self::new(resource.to_string(), "failed")
        }
    }
    pub fn skipped(resource: &ResourceKey, because_of: &ResourceKey) -> Self {
        ResourceLine {
            error: Some(format!("not attempted because {because_of} failed")),
            ..Self::new(resource.to_string(), "skipped")
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub failed: usize,
}

impl Summary {
    pub fn count(lines: &[ResourceLine]) -> Summary {
        let mut s = Summary::default();
        for line in lines {
            match line.result.as_str() {
                "create" => s.created += 1,
                "update" | "replace" => s.updated += 1,
                "noop" => s.unchanged += 1,
                "delete" => s.deleted += 1,
                "failed" | "skipped" => s.failed += 1,
                _ => {}
            }
        }
        s
    }
}

/// The report of `plan`, `up`, `down` and `drift`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub stack: String,
    pub resources: Vec<ResourceLine>,
    pub summary: Summary,
    /// AWS API operations made, split into reads and writes.
    pub api_calls: CallCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<&'static str, String>,
    /// `drift` only: whether anything differs from `stack.yaml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drifted: Option<bool>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.summary.failed > 0
    }

    /// A `drift` report: anything missing or differing is drift.
    pub fn into_drift(mut self) -> Report {
        self.command = "drift";
        self.drifted = Some(
            self.resources
                .iter()
                .any(|l| matches!(l.result.as_str(), "create" | "update" | "replace")),
        );
        self
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn verb<'a>(command: &str, result: &'a str) -> &'a str {
            match (command, result) {
                ("plan", "create") => "will create",
                ("plan", "update") => "will update",
                ("plan", "replace") => "will replace",
                ("up", "replace") => "replaced",
                ("drift", "replace") => "drifted",
                ("drift", "create") => "missing",
                ("drift", "update") => "drifted",
                ("drift" | "plan", "noop") => "in sync",
                ("up", "create") => "created",
                ("up", "update") => "updated",
                ("up", "noop") => "unchanged",
                ("down", "delete") => "deleted",
                ("down", "absent") => "already gone",
                (_, other) => other,
            }
        }
        for line in &self.resources {
            write!(
                f,
                "{:<13} {}",
                verb(self.command, &line.result),
                line.resource
            )?;
            if let Some(id) = &line.physical_id {
                write!(f, " ({id})")?;
            }
            writeln!(f)?;
            for c in &line.changes {
                writeln!(
                    f,
                    "    {}: expected {}, found {}",
                    c.field, c.expected, c.actual
                )?;
            }
            for note in &line.notes {
                writeln!(f, "    note: {note}")?;
            }
            if let Some(e) = &line.error {
                writeln!(f, "    error: {e}")?;
            }
        }
        let s = &self.summary;
        match self.command {
            "drift" => writeln!(
                f,
                "\n{}",
                if self.drifted == Some(true) {
                    "drift found"
                } else {
                    "no drift"
                }
            )?,
            "down" => writeln!(f, "\n{} deleted, {} failed", s.deleted, s.failed)?,
            _ => writeln!(
                f,
                "\n{} created, {} updated, {} unchanged, {} failed",
                s.created, s.updated, s.unchanged, s.failed
            )?,
        }
        writeln!(
            f,
            "AWS API calls: {} read, {} write",
            self.api_calls.read, self.api_calls.write
        )?;
        if !self.outputs.is_empty() {
            writeln!(f, "\nOutputs:")?;
            for (k, v) in &self.outputs {
                writeln!(f, "  {k} = {v}")?;
            }
        }
        Ok(())
    }
}

pub fn print<T: Serialize + fmt::Display>(format: Format, value: &T) {
    match format {
        Format::Text => print!("{value}"),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).expect("reports serialize")
        ),
    }
}
