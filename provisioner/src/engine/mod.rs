//! The engine every resource kind plugs into: the resource contract, plans and diffs, the
//! dependency-ordered parallel executor, API-call accounting and the retries AWS needs.

pub mod calls;
pub mod executor;
pub mod retry;
pub mod wait;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::aws::Clients;
use crate::spec::Stack;

pub use calls::CallCounter;

/// Tag key that marks a resource as owned by a stack; its value is the stack name.
pub const OWNER_TAG: &str = "provision:stack";

/// Names a resource of the stack: its kind and its role in the system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ResourceKey {
    pub kind: &'static str,
    pub name: Cow<'static, str>,
}

impl ResourceKey {
    pub const fn new(kind: &'static str, name: &'static str) -> Self {
        ResourceKey {
            kind,
            name: Cow::Borrowed(name),
        }
    }

    /// A key whose name is only known at run time (one subnet per availability zone).
    pub fn named(kind: &'static str, name: String) -> Self {
        ResourceKey {
            kind,
            name: Cow::Owned(name),
        }
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// What converging a resource needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    /// The changed fields cannot be changed in place: the resource must be made anew.
    Replace,
    NoOp,
}

/// One field whose live value differs from `stack.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub expected: String,
    pub actual: String,
}

impl FieldDiff {
    pub fn new(field: impl Into<String>, expected: impl ToString, actual: impl ToString) -> Self {
        FieldDiff {
            field: field.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
}

/// Compares field by field; builds the list of differences.
#[derive(Default)]
pub struct Diff(Vec<FieldDiff>);

impl Diff {
    pub fn field<T: PartialEq + fmt::Debug>(&mut self, field: &str, expected: T, actual: T) {
        if expected != actual {
            self.0
                .push(FieldDiff::new(field, show(&expected), show(&actual)));
        }
    }
    pub fn push(&mut self, diff: FieldDiff) {
        self.0.push(diff);
    }
    pub fn extend(&mut self, diffs: impl IntoIterator<Item = FieldDiff>) {
        self.0.extend(diffs);
    }
    pub fn into_vec(self) -> Vec<FieldDiff> {
        self.0
    }
}

/// Debug output without the quotes and `Some(..)` noise, for people reading a diff.
fn show<T: fmt::Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    let text = text
        .strip_prefix("Some(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(&text);
    if text == "None" {
        return "(not set)".into();
    }
    text.trim_matches('"').to_owned()
}

/// What `plan` found for one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub resource: ResourceKey,
    /// The AWS name or id, when known.
    pub physical_id: Option<String>,
    pub action: Action,
    pub changes: Vec<FieldDiff>,
}

impl Planned {
    pub fn create(resource: ResourceKey, physical_id: impl Into<Option<String>>) -> Self {
        Planned {
            resource,
            physical_id: physical_id.into(),
            action: Action::Create,
            changes: vec![],
        }
    }
    /// `Update` when there are differences, `NoOp` otherwise.
    pub fn from_diff(resource: ResourceKey, physical_id: String, changes: Vec<FieldDiff>) -> Self {
        let action = if changes.is_empty() {
            Action::NoOp
        } else {
            Action::Update
        };
        Planned {
            resource,
            physical_id: Some(physical_id),
            action,
            changes,
        }
    }

    /// Whether a field whose name starts with `prefix` is among the changes.
    pub fn touches(&self, prefix: &str) -> bool {
        self.changes.iter().any(|c| c.field.starts_with(prefix))
    }

    /// Whether anything but tags changed.
    pub fn touches_more_than_tags(&self) -> bool {
        self.changes.iter().any(|c| !c.field.starts_with("Tags."))
    }

    /// `Replace` when any of `replacing` differs, else as [`Planned::from_diff`]; all
    /// differences are listed either way.
    pub fn with_replacement(
        resource: ResourceKey,
        physical_id: String,
        replacing: Vec<FieldDiff>,
        updating: Vec<FieldDiff>,
    ) -> Self {
        if replacing.is_empty() {
            return Self::from_diff(resource, physical_id, updating);
        }
        let replacing = replacing.into_iter().map(|mut d| {
            d.field.push_str(" (forces replacement)");
            d
        });
        Planned {
            resource,
            physical_id: Some(physical_id),
            action: Action::Replace,
            changes: replacing.chain(updating).collect(),
        }
    }
}

/// What `down` did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Deleted {
    Deleted,
    Absent,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    /// Also delete objects the stack did not put into its buckets.
    pub delete_data: bool,
    /// Delete the database without a final snapshot.
    pub skip_final_snapshot: bool,
    /// Turn the database's deletion protection off first (`ModifyDBInstance`); without it,
    /// `down` refuses to delete a protected database.
    pub disable_deletion_protection: bool,
}

/// A failure of one resource's step, with the AWS error as its source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{resource}: {step}: {source}")]
    Aws {
        resource: ResourceKey,
        step: &'static str,
        /// The AWS error code, when the service sent one.
        code: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{resource}: {message}")]
    Refused {
        resource: ResourceKey,
        message: String,
    },
    #[error("{resource}: needs {dependency} which does not exist yet")]
    MissingDependency {
        resource: ResourceKey,
        dependency: String,
    },
    #[error("{resource}: timed out after {seconds} s waiting for {what}")]
    Timeout {
        resource: ResourceKey,
        what: String,
        seconds: u64,
    },
}

/// Shorthand to wrap an SDK error with the resource and the step that failed.
pub trait AwsResultExt<T> {
    fn step(self, resource: &ResourceKey, step: &'static str) -> Result<T, Error>;
}

impl<T, E> AwsResultExt<T> for Result<T, E>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    fn step(self, resource: &ResourceKey, step: &'static str) -> Result<T, Error> {
        self.map_err(|e| {
            let code = e.code().map(str::to_owned);
            // A service's own answer reads best as "Code: message"; anything else (no
            // connection, no credentials) needs the whole chain of causes.
            let source: Box<dyn std::error::Error + Send + Sync> = match &code {
                Some(code) => format!("{code}: {}", e.message().unwrap_or("(no message)")).into(),
                None => Box::new(DisplayErrorContext(e)),
            };
            Error::Aws {
                resource: resource.clone(),
                step,
                code,
                source,
            }
        })
    }
}

impl Error {
    /// The AWS error code behind this error, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Shows an SDK error with its whole chain of causes (the SDK's own Display is terse).
#[derive(Debug)]
struct DisplayErrorContext<E>(E);

impl<E: std::error::Error> fmt::Display for DisplayErrorContext<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(&self.0)
        )
    }
}

impl<E: std::error::Error> std::error::Error for DisplayErrorContext<E> {}

/// The contract of a resource kind. Every method is safe to call again after a crash at any
/// point: resources are found by deterministic name and ownership tag, never remembered.
#[async_trait]
pub trait Resource: Send + Sync {
    fn key(&self) -> ResourceKey;

    /// Resources that must exist (and whose outputs are known) before this one.
    fn depends_on(&self) -> Vec<ResourceKey> {
        Vec::new()
    }

    /// Resources whose outputs this one needs before it is made, but which it does not need
    /// while it exists (a role's policy names the database's secret): `down` may delete them
    /// first.
    fn reads(&self) -> Vec<ResourceKey> {
        Vec::new()
    }

    /// Resources that must be deleted before this one, though this one does not need them
    /// to exist first: `down` keeps it until they are gone.
    fn delete_after(&self) -> Vec<ResourceKey> {
        Vec::new()
    }

    /// Roughly how long AWS takes to make this resource usable for what waits on it, or to
    /// delete it: the executor starts the resources heading the longest chains first, so a
    /// database's minutes never queue behind quick ones. Only the order the figures give
    /// matters; the default is a call or two.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    /// Reads the live state (read calls only), publishes the outputs it learns, and says
    /// what `apply` would do.
    async fn plan(&self, cx: &Context) -> Result<Planned, Error>;

    /// Makes the live state match `stack.yaml`; called only when `plan` found work.
    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error>;

    /// Waits until a created or changed resource is in service (CloudFront deploying, a
    /// database starting). `up` runs these after the graph, so slow settling blocks no one.
    async fn wait_ready(&self, _cx: &Context) -> Result<(), Error> {
        Ok(())
    }

    /// Checks, before `down` deletes anything, that this resource may be deleted with these
    /// options (read calls only), so that a refusal leaves the whole stack in place rather
    /// than half of it.
    async fn before_delete(&self, _cx: &Context, _options: &DeleteOptions) -> Result<(), Error> {
        Ok(())
    }

    /// Deletes what the stack owns; a resource that is already gone counts as done.
    async fn delete(&self, cx: &Context, options: &DeleteOptions) -> Result<Deleted, Error>;

    /// The same settings as CloudFormation declares them (`provision template`), built from
    /// the fields `apply` writes, with other resources' outputs as references (`cx` is
    /// symbolic there, see [`Context::symbolic`]). Err says why it cannot be rendered.
    fn cloudformation(&self, _cx: &Context) -> crate::template::Rendering {
        Err("this kind of resource has no CloudFormation rendering yet".into())
    }

    /// Publishes the outputs that follow from the resource's settings alone (a bucket's name
    /// and ARN), without reading anything. The template uses them as literals where a
    /// reference would tie resources into a cycle CloudFormation refuses.
    fn known_outputs(&self, _cx: &Context) {}
}

/// A value a resource computes from other resources' outputs once they are known (an
/// environment, a policy, a source ARN).
pub type FromContext<T> = Box<dyn Fn(&Context) -> T + Send + Sync>;

/// Shared by every resource during one command: the stack, the clients, the outputs resources
/// publish for their dependents, and progress display.
pub struct Context {
    pub stack: Arc<Stack>,
    pub aws: Clients,
    /// The availability zones of the network, chosen when the session opens.
    zones: Vec<String>,
    outputs: Mutex<HashMap<ResourceKey, BTreeMap<&'static str, String>>>,
    notes: Mutex<HashMap<ResourceKey, Vec<String>>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    progress: MultiProgress,
    /// Rendering a template: an output nobody published is a reference to it
    /// ([`crate::template::output_reference`]) instead of unknown.
    symbolic: bool,
}

impl Context {
    pub fn new(stack: Arc<Stack>, aws: Clients, show_progress: bool) -> Self {
        let target = if show_progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Context {
            stack,
            aws,
            zones: Vec::new(),
            outputs: Mutex::new(HashMap::new()),
            notes: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            progress: MultiProgress::with_draw_target(target),
            symbolic: false,
        }
    }

    /// A context for rendering the template: no AWS call is made; the region, the account
    /// and every output another resource would publish are CloudFormation references.
    pub fn symbolic(stack: Arc<Stack>, zones: Vec<String>) -> Self {
        let aws = Clients::offline(
            &crate::template::reference("AWS::Region"),
            &crate::template::reference("AWS::AccountId"),
            false,
        );
        let mut cx = Context::new(stack, aws, false).with_zones(zones);
        cx.symbolic = true;
        cx
    }

    pub fn is_symbolic(&self) -> bool {
        self.symbolic
    }

    pub fn stack_name(&self) -> &str {
        self.stack.name()
    }

    /// With the network's availability zones (see `systems::zones`).
    pub fn with_zones(mut self, zones: Vec<String>) -> Self {
        self.zones = zones;
        self
    }

    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// The ownership tag plus the user's tags from `stack.yaml`.
    pub fn tags(&self) -> BTreeMap<String, String> {
        let mut tags: BTreeMap<String, String> = self
            .stack
            .stack
            .tags
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect();
        tags.insert(OWNER_TAG.to_owned(), self.stack_name().to_owned());
        tags
    }

    pub fn publish(&self, resource: &ResourceKey, name: &'static str, value: impl Into<String>) {
        self.outputs
            .lock()
            .expect("outputs lock")
            .entry(resource.clone())
            .or_default()
            .insert(name, value.into());
    }

    pub fn output(&self, resource: &ResourceKey, name: &str) -> Option<String> {
        let published = self
            .outputs
            .lock()
            .expect("outputs lock")
            .get(resource)
            .and_then(|outputs| outputs.get(name))
            .cloned();
        if published.is_none() && self.symbolic {
            return Some(crate::template::output_reference(resource, name));
        }
        published
    }

    /// An output a dependency must have published, for `apply` (which runs after it).
    pub fn require(
        &self,
        me: &ResourceKey,
        resource: &ResourceKey,
        name: &str,
    ) -> Result<String, Error> {
        self.output(resource, name)
            .ok_or_else(|| Error::MissingDependency {
                resource: me.clone(),
                dependency: format!("{resource} ({name})"),
            })
    }

    /// Something the user must know about a resource (a snapshot kept, an ENI waited for);
    /// shown under the resource in the report.
    pub fn note(&self, resource: &ResourceKey, message: impl Into<String>) {
        self.notes
            .lock()
            .expect("notes lock")
            .entry(resource.clone())
            .or_default()
            .push(message.into());
    }

    pub fn notes(&self, resource: &ResourceKey) -> Vec<String> {
        self.notes
            .lock()
            .expect("notes lock")
            .get(resource)
            .cloned()
            .unwrap_or_default()
    }

    /// Serialises writes AWS refuses or loses when they overlap: one bucket's configurations
    /// (S3 answers `OperationAborted`), one function's resource policy (concurrent
    /// `AddPermission` calls can drop statements). Held until the guard is dropped.
    pub async fn exclusive(&self, what: String) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .expect("locks lock")
            .entry(what)
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// A spinner for a long wait; it clears itself when dropped.
    pub fn spinner(&self, message: String) -> Spinner {
        let bar = self.progress.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Spinner(bar)
    }
}

pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn set_message(&self, message: String) {
        self.0.set_message(message);
    }

    /// Prints with the spinner out of the way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.0.suspend(print)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_lists_only_differing_fields() {
        let mut diff = Diff::default();
        diff.field("DefaultRootObject", Some("index.html"), Some("other.html"));
        diff.field("HttpVersion", "http2", "http2");
        diff.field("IsIPV6Enabled", true, false);
        diff.field("OriginShieldRegion", Some("us-east-1"), None);
        let diffs = diff.into_vec();
        assert_eq!(
            diffs,
            vec![
                FieldDiff::new("DefaultRootObject", "index.html", "other.html"),
                FieldDiff::new("IsIPV6Enabled", "true", "false"),
                FieldDiff::new("OriginShieldRegion", "us-east-1", "(not set)"),
            ]
        );
    }

    #[test]
    fn planned_action_follows_the_diff() {
        let key = ResourceKey::new("bucket", "site");
        assert_eq!(
            Planned::from_diff(key.clone(), "b".into(), vec![]).action,
            Action::NoOp
        );
        let changed = vec![FieldDiff::new("f", 1, 2)];
        assert_eq!(
            Planned::from_diff(key, "b".into(), changed).action,
            Action::Update
        );
    }
}
