//! `--engine cloudformation`: the stack deployed by CloudFormation itself, from the template
//! `provision template` renders. Each system is one CloudFormation stack
//! (`{stack}-stt`, `{stack}-vod`), so that one system's failure rolls back only its own
//! resources. `provision` keeps the promises of its own engine around CloudFormation's work:
//! it uploads what the templates point at, takes the steps CloudFormation cannot (site files,
//! the schema migration, the default security group, the SES identity) with the SDK engine,
//! and deletes what the templates retain only as the SDK engine's `down` would.

pub mod artifacts;
mod change_set;
mod drift;
mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_cloudformation::types::Tag;
use sha2::{Digest, Sha256};

use crate::aws::Target;
use crate::commands::Session;
use crate::engine::{Context, DeleteOptions, ResourceKey};
use crate::output::{Report, ResourceLine, Summary};
use crate::spec::Stack;
use crate::template::{self, Template};
use change_set::{ChangeSet, Prepared, Request};
use stack::StackError;

/// One system of the stack as one CloudFormation stack.
struct SystemStack {
    /// The CloudFormation stack's name: `{stack}-stt` or `{stack}-vod`.
    name: String,
    template: Template,
    /// The template as uploaded (JSON) and its SHA-256 (hex), which names it in the
    /// artifact bucket and names its change sets.
    body: String,
    digest: String,
}

impl SystemStack {
    fn template_key(&self) -> String {
        format!("templates/{}/{}.json", self.name, self.digest)
    }
}

pub struct Engine {
    /// The SDK engine on the same stack.yaml: the after-deploy steps, the retained resources,
    /// the reads that publish what those need.
    session: Session,
    /// The artifact bucket, as the SDK engine makes buckets.
    artifacts: Session,
    stacks: Vec<SystemStack>,
    show_progress: bool,
}

impl Engine {
    /// Connects and renders each system's template on the zones the SDK engine chose, so
    /// that both engines make the same subnets.
    pub async fn open(
        stack: Stack,
        target: &Target,
        show_progress: bool,
    ) -> anyhow::Result<Engine> {
        let mut systems = Vec::new();
        let stt = &stack.stt;
        if stt.website.is_some()
            || stt.network.is_some()
            || stt.database.is_some()
            || stt.functions.is_some()
        {
            let mut only = stack.clone();
            only.vod = None;
            systems.push(("stt", only));
        }
        if stack.vod.is_some() {
            let mut only = stack.clone();
            only.stt = Default::default();
            systems.push(("vod", only));
        }
        let session = Session::open(stack, target, show_progress).await?;
        let cx = session.context().clone();
        let mut stacks = Vec::new();
        for (system, only) in systems {
            let template = template::for_stack_in(
                only,
                cx.zones().to_vec(),
                cx.aws.local,
                cx.aws.endpoint.clone(),
            )?;
            let body = template::to_json(&template);
            let digest = hex(&Sha256::digest(body.as_bytes()));
            stacks.push(SystemStack {
                name: format!("{}-{system}", cx.stack_name()),
                template,
                body,
                digest,
            });
        }
        let artifacts = Session::over(cx.clone(), artifacts::resources(&cx))?;
        Ok(Engine {
            session,
            artifacts,
            stacks,
            show_progress,
        })
    }

    fn cx(&self) -> &Arc<Context> {
        self.session.context()
    }

    fn report(&self, command: &'static str, resources: Vec<ResourceLine>) -> Report {
        let cx = self.cx();
        Report {
            command,
            stack: cx.stack_name().to_owned(),
            summary: Summary::count(&resources),
            resources,
            api_calls: cx.aws.calls.counts(),
            outputs: crate::systems::outputs(cx),
            drifted: None,
        }
    }

    fn after_deploy(&self) -> BTreeSet<ResourceKey> {
        self.stacks
            .iter()
            .flat_map(|s| s.template.after_deploy.iter().map(|(key, _)| key.clone()))
            .collect()
    }

    fn retained(&self) -> BTreeSet<ResourceKey> {
        self.stacks
            .iter()
            .flat_map(|s| s.template.retained.iter().cloned())
            .collect()
    }

    /// The ownership tag and the user's tags, on each CloudFormation stack.
    fn stack_tags(&self) -> Vec<Tag> {
        self.cx()
            .tags()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// The artifact bucket made, then every zip and template uploaded to it (each once: the
    /// keys are their digests).
    async fn stage(&self, lines: &mut Vec<ResourceLine>) -> bool {
        let bucket = self.artifacts.up(false).await;
        let failed = bucket.failed();
        lines.extend(bucket.resources);
        if failed {
            return false;
        }
        let cx = self.cx();
        let mut files: Vec<(String, artifacts::Source)> = Vec::new();
        for s in &self.stacks {
            for (key, path) in &s.template.artifacts {
                files.push((key.clone(), artifacts::Source::File(path.clone())));
            }
            files.push((
                s.template_key(),
                artifacts::Source::Bytes(s.body.clone().into_bytes()),
            ));
        }
        match artifacts::upload(cx, files).await {
            Ok(line) => {
                lines.push(line);
                true
            }
            Err(line) => {
                lines.push(line);
                false
            }
        }
    }

    /// Change sets created and described, never executed, then deleted (with the empty stack
    /// a `CREATE` change set makes). Uploads what `up` would (the change set reads the
    /// template from the artifact bucket).
    pub async fn plan(&self) -> Report {
        let mut lines = Vec::new();
        let staged = self.stage(&mut lines).await;
        // Done, not planned: the change sets read the template from the artifact bucket.
        for line in &mut lines {
            match line.result.as_str() {
                "create" => line.result = "made".into(),
                "update" => line.result = "uploaded".into(),
                _ => {}
            }
        }
        if staged {
            for s in &self.stacks {
                lines.extend(
                    self.plan_stack(s)
                        .await
                        .unwrap_or_else(|e| vec![stack_failed(&s.name, e)]),
                );
            }
            lines.extend(self.session.plan_only(&self.after_deploy()).await.resources);
        }
        self.report("plan", lines)
    }

    async fn plan_stack(&self, s: &SystemStack) -> Result<Vec<ResourceLine>, StackError> {
        let cx = self.cx();
        let existing = self.existing(s).await?;
        let create = existing
            .as_ref()
            .is_none_or(|e| e.status == "REVIEW_IN_PROGRESS");
        if let Some(e) = existing.as_ref().filter(|e| stack::in_progress(&e.status)) {
            return Err(StackError::Failed {
                stack: s.name.clone(),
                message: format!(
                    "an operation is under way ({}); plan again once it ends",
                    e.status
                ),
            });
        }
        if let Some(e) = existing.as_ref() {
            if let Some(message) = stuck(&s.name, &e.status) {
                return Err(StackError::Failed {
                    stack: s.name.clone(),
                    message,
                });
            }
            if failed_creation(&e.status) {
                let note = format!(
                    "its failed creation ({}) can only be deleted: `up` deletes it, then creates \
                     the stack from the template",
                    e.status
                );
                return Ok(vec![stack_line(s, "replace", &note)]);
            }
        }
        let planned = change_set::prepare(cx, &self.request(s, existing.as_ref())).await;
        if create && planned.is_err() {
            // A CREATE change set that failed leaves its empty REVIEW_IN_PROGRESS stack.
            if let Ok(Some(left)) = stack::describe(cx, &s.name).await {
                if stack::status(&left) == "REVIEW_IN_PROGRESS" {
                    delete_stack(cx, left.stack_id().unwrap_or(&s.name)).await?;
                }
            }
        }
        match planned? {
            Prepared::NoChanges => Ok(vec![stack_line(s, "noop", "no changes")]),
            Prepared::Ready(cs) => {
                change_set::delete(cx, &s.name, &cs.id).await?;
                if create {
                    // The CREATE change set made the stack (REVIEW_IN_PROGRESS, no resource).
                    delete_stack(cx, &cs.stack_id).await?;
                }
                let mut lines = vec![stack_line(
                    s,
                    if create { "create" } else { "update" },
                    &format!(
                        "change set {} described and deleted; nothing was executed",
                        cs.name
                    ),
                )];
                lines.extend(cs.changes);
                Ok(lines)
            }
        }
    }

    /// Each system's stack created or updated through a change set, events streamed; then
    /// the steps CloudFormation cannot take.
    pub async fn up(&self, allow_replace: bool) -> Report {
        let mut lines = Vec::new();
        if !self.stage(&mut lines).await {
            return self.report("up", lines);
        }
        let deploys = self.stacks.iter().map(|s| async move {
            self.deploy(s, allow_replace)
                .await
                .unwrap_or_else(|e| vec![stack_failed(&s.name, e)])
        });
        for deployed in futures::future::join_all(deploys).await {
            lines.extend(deployed);
        }
        if lines.iter().any(|l| l.result == "failed") {
            return self.report("up", lines);
        }
        let after = self.session.up_only(&self.after_deploy()).await;
        lines.extend(after.resources);
        self.report("up", lines)
    }

    async fn deploy(
        &self,
        s: &SystemStack,
        allow_replace: bool,
    ) -> Result<Vec<ResourceLine>, StackError> {
        let cx = self.cx();
        let mut notes = Vec::new();
        let mut existing = self.existing(s).await?;
        if let Some(e) = existing.as_ref().filter(|e| stack::in_progress(&e.status)) {
            // An earlier run was interrupted: its operation goes on in CloudFormation.
            let since = stack::latest_event(cx, &e.id).await?;
            stack::follow(cx, &s.name, &e.id, since, self.show_progress).await?;
            existing = self.existing(s).await?;
        }
        if let Some(message) = existing.as_ref().and_then(|e| stuck(&s.name, &e.status)) {
            return Err(StackError::Failed {
                stack: s.name.clone(),
                message,
            });
        }
        if let Some(e) = existing.as_ref().filter(|e| failed_creation(&e.status)) {
            // A failed creation leaves a stack CloudFormation can only delete.
            let since = stack::latest_event(cx, &e.id).await?;
            delete_stack(cx, &e.id).await?;
            let ended = stack::follow(cx, &s.name, &e.id, since, self.show_progress).await?;
            if !ended.succeeded() {
                return Err(StackError::Failed {
                    stack: s.name.clone(),
                    message: ended.failure(),
                });
            }
            notes.push(format!(
                "its failed creation ({}) was deleted first",
                e.status
            ));
            // The rollback kept what the template retains; empty, it would only stand in the
            // way of the new creation ("already exists"). Deleted as `down` would: anything
            // holding data is kept, and the creation then says why it fails.
            let retained: BTreeSet<ResourceKey> = s.template.retained.iter().cloned().collect();
            let cleanup = self
                .session
                .down_only(DeleteOptions::default(), &retained)
                .await;
            for l in cleanup.resources.iter().filter(|l| l.result == "delete") {
                notes.push(format!(
                    "{} left by the failed creation was deleted",
                    l.resource
                ));
            }
            existing = None;
        }
        let create = existing
            .as_ref()
            .is_none_or(|e| e.status == "REVIEW_IN_PROGRESS");
        let cs: ChangeSet = match change_set::prepare(cx, &self.request(s, existing.as_ref())).await? {
            Prepared::NoChanges => {
                return Ok(vec![stack_line(
                    s,
                    "noop",
                    "no changes: CloudFormation found nothing to change; the empty change set was deleted",
                )])
            }
            Prepared::Ready(cs) => cs,
        };
        let replaced: Vec<&str> = cs
            .changes
            .iter()
            .filter(|c| c.result == "replace")
            .map(|c| c.resource.as_str())
            .collect();
        if !replaced.is_empty() && !allow_replace {
            // The SDK engine's promise: nothing is replaced (a database made anew) unasked.
            let message = format!(
                "the change set replaces {}; nothing was changed. Run `provision --engine \
                 cloudformation up --allow-replace` to replace (a database is snapshotted first: \
                 UpdateReplacePolicy: Snapshot)",
                replaced.join(", ")
            );
            change_set::delete(cx, &s.name, &cs.id).await?;
            return Err(StackError::Failed {
                stack: s.name.clone(),
                message,
            });
        }
        let since = stack::latest_event(cx, &cs.stack_id).await?;
        change_set::execute(cx, &s.name, &cs).await?;
        let ended = stack::follow(cx, &s.name, &cs.stack_id, since, self.show_progress).await?;
        let mut line = stack_line(s, if create { "create" } else { "update" }, "");
        line.notes = notes;
        line.physical_id = Some(cs.stack_id.clone());
        if !ended.succeeded() {
            line.result = "failed".into();
            line.error = Some(ended.failure());
        }
        let mut lines = vec![line];
        lines.extend(cs.changes);
        Ok(lines)
    }

    /// CloudFormation's drift detection on each stack, and the SDK engine's on the steps
    /// taken after the deploy; exit code 2 when anything differs.
    pub async fn drift(&self) -> Report {
        let mut lines = Vec::new();
        for s in &self.stacks {
            let checked = match self.existing(s).await {
                Ok(None) => Ok(vec![stack_line(s, "create", "the stack does not exist")]),
                Ok(Some(_)) => drift::detect(self.cx(), &s.name).await,
                Err(e) => Err(e),
            };
            lines.extend(checked.unwrap_or_else(|e| vec![stack_failed(&s.name, e)]));
        }
        lines.extend(self.session.plan_only(&self.after_deploy()).await.resources);
        self.report("drift", lines).into_drift()
    }

    /// Deletes each stack with the SDK engine's promises: nothing is deleted if anything
    /// refuses; the database is snapshotted as its `DeletionPolicy` says; what the templates
    /// retain (data buckets, failed-events queues) is then deleted as the SDK engine's `down`
    /// would, so a non-empty data bucket is kept unless `--delete-data`.
    pub async fn down(&self, options: DeleteOptions) -> Report {
        if options.skip_final_snapshot && self.snapshots_database() {
            let mut line = ResourceLine::named("cloudformation".into(), "failed");
            line.error = Some(
                "--skip-final-snapshot: the template's DeletionPolicy decides, and it says \
                 Snapshot. Set stt.database.final_snapshot: false, run `provision --engine \
                 cloudformation up`, then `down`; nothing was deleted"
                    .into(),
            );
            return self.report("down", vec![line]);
        }
        // First what provision did after the deploy (the site files keep CloudFormation
        // from deleting the site bucket); its checks cover every resource, so a refusal (a
        // protected database) stops everything here.
        let after = self.session.down_only(options, &self.after_deploy()).await;
        let mut lines = after.resources;
        if lines
            .iter()
            .any(|l| matches!(l.result.as_str(), "failed" | "skipped"))
        {
            return self.report("down", lines);
        }
        let deletes = self.stacks.iter().map(|s| async move {
            self.delete(s, &options)
                .await
                .unwrap_or_else(|e| stack_failed(&s.name, e))
        });
        let deleted = futures::future::join_all(deletes).await;
        let all_deleted = deleted.iter().all(|l| l.result != "failed");
        lines.extend(deleted);
        if all_deleted {
            lines.extend(
                self.session
                    .down_only(options, &self.retained())
                    .await
                    .resources,
            );
        }
        if lines.iter().all(|l| l.result != "failed") {
            lines.extend(self.artifacts.down(options).await.resources);
        }
        self.report("down", lines)
    }

    async fn delete(
        &self,
        s: &SystemStack,
        options: &DeleteOptions,
    ) -> Result<ResourceLine, StackError> {
        let cx = self.cx();
        let Some(existing) = self.existing(s).await? else {
            return Ok(stack_line(s, "absent", ""));
        };
        if options.disable_deletion_protection {
            lift_database_protection(cx, &existing.id).await?;
        }
        let since = stack::latest_event(cx, &existing.id).await?;
        delete_stack(cx, &existing.id).await?;
        let ended = stack::follow(cx, &s.name, &existing.id, since, self.show_progress).await?;
        let mut line = stack_line(s, "delete", "");
        line.physical_id = Some(existing.id);
        if !ended.succeeded() {
            line.result = "failed".into();
            line.error = Some(ended.failure());
        }
        Ok(line)
    }

    /// The stacks' outputs, as CloudFormation holds them (`SttSiteUrl` read as
    /// `stt_site_url`).
    pub async fn outputs(&self) -> Result<BTreeMap<String, String>, StackError> {
        let mut outputs = BTreeMap::new();
        for s in &self.stacks {
            let Some(found) = stack::describe(self.cx(), &s.name).await? else {
                continue;
            };
            for output in found.outputs() {
                if let (Some(k), Some(v)) = (output.output_key(), output.output_value()) {
                    outputs.insert(snake(k), v.to_owned());
                }
            }
        }
        Ok(outputs)
    }

    /// The change set for `s` on the stack as it is (`existing`).
    fn request<'a>(&self, s: &'a SystemStack, existing: Option<&Existing>) -> Request<'a> {
        Request {
            stack: &s.name,
            template_url: artifacts::url(self.cx(), &s.template_key()),
            create: existing.is_none_or(|e| e.status == "REVIEW_IN_PROGRESS"),
            name: change_set_name(&s.digest, existing),
            description: "made by provision",
            tags: self.stack_tags(),
        }
    }

    /// Whether a template deletes its database only after a snapshot.
    fn snapshots_database(&self) -> bool {
        self.stacks.iter().any(|s| {
            s.template.body["Resources"].as_object().is_some_and(|r| {
                r.values().any(|r| {
                    r["Type"] == "AWS::RDS::DBInstance" && r["DeletionPolicy"] == "Snapshot"
                })
            })
        })
    }

    /// The stack if it exists, refused if it is not this stack's (its ownership tag).
    async fn existing(&self, s: &SystemStack) -> Result<Option<Existing>, StackError> {
        let Some(found) = stack::describe(self.cx(), &s.name).await? else {
            return Ok(None);
        };
        let owner = found
            .tags()
            .iter()
            .find(|t| t.key() == Some(crate::engine::OWNER_TAG))
            .and_then(|t| t.value());
        if owner != Some(self.cx().stack_name()) {
            return Err(StackError::Failed {
                stack: s.name.clone(),
                message: format!(
                    "a CloudFormation stack of this name exists and is not tagged {}={}; it is \
                     left alone",
                    crate::engine::OWNER_TAG,
                    self.cx().stack_name()
                ),
            });
        }
        Ok(Some(Existing {
            id: found.stack_id().unwrap_or(&s.name).to_owned(),
            status: stack::status(&found).to_owned(),
            updated: found
                .last_updated_time()
                .or(found.creation_time())
                .map(|t| t.to_string())
                .unwrap_or_default(),
        }))
    }
}

struct Existing {
    /// The stack's ARN.
    id: String,
    status: String,
    /// When it was last changed (or made).
    updated: String,
}

async fn delete_stack(cx: &Context, stack_id: &str) -> Result<(), StackError> {
    cx.aws
        .cloudformation
        .delete_stack()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(stack::aws_error(stack_id, "DeleteStack"))?;
    Ok(())
}

/// `--disable-deletion-protection`: the stack's database may be deleted. (CloudFormation
/// would fail on a protected one, after deleting everything that does not need it.)
async fn lift_database_protection(cx: &Context, stack_id: &str) -> Result<(), StackError> {
    let resources = cx
        .aws
        .cloudformation
        .describe_stack_resources()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(stack::aws_error(stack_id, "DescribeStackResources"))?;
    for db in resources
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::RDS::DBInstance"))
        .filter_map(|r| r.physical_resource_id())
    {
        let lifted = cx
            .aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(db)
            .deletion_protection(false)
            .apply_immediately(true)
            .send()
            .await;
        match lifted {
            Ok(_) => {}
            // Deleted outside CloudFormation: nothing to lift, and DeleteStack will find it gone.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_instance_not_found_fault()) => {}
            Err(e) => return Err(stack::aws_error(stack_id, "ModifyDBInstance")(e)),
        }
    }
    Ok(())
}

/// A creation that failed: CloudFormation can only delete such a stack.
fn failed_creation(status: &str) -> bool {
    matches!(status, "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED")
}

/// States no change set can leave, and what the user does about them.
fn stuck(stack: &str, status: &str) -> Option<String> {
    match status {
        "UPDATE_ROLLBACK_FAILED" => Some(format!(
            "CloudFormation could not roll back the last update (UPDATE_ROLLBACK_FAILED). Fix \
             what its events name, run `aws cloudformation continue-update-rollback \
             --stack-name {stack}`, then `up` again"
        )),
        "DELETE_FAILED" => Some(
            "a deletion failed (DELETE_FAILED): run `provision --engine cloudformation down` \
             again once what its events name is fixed"
                .to_owned(),
        ),
        _ => None,
    }
}

fn stack_line(s: &SystemStack, result: &str, note: &str) -> ResourceLine {
    let mut line = ResourceLine::named(format!("cloudformation/{}", s.name), result);
    if !note.is_empty() {
        line.notes.push(note.to_owned());
    }
    line
}

fn stack_failed(name: &str, error: StackError) -> ResourceLine {
    let mut line = ResourceLine::named(format!("cloudformation/{name}"), "failed");
    line.error = Some(error.to_string());
    line
}

/// The same template on the same state of the stack (its id and last change) gives the same
/// name; anything else, another.
fn change_set_name(template_digest: &str, existing: Option<&Existing>) -> String {
    // A stack in REVIEW_IN_PROGRESS is the one an interrupted run's CREATE change set made:
    // the same name finds that change set again.
    let state = match existing {
        Some(e) if e.status != "REVIEW_IN_PROGRESS" => format!("{}@{}", e.id, e.updated),
        _ => "new".to_owned(),
    };
    hex(&Sha256::digest(
        format!("{template_digest}\n{state}").as_bytes(),
    ))[..16]
        .to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `SttSiteUrl` as `stt_site_url`: the template's output names are the SDK engine's in
/// PascalCase.
fn snake(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_set_is_named_by_the_template_and_the_state_of_the_stack() {
        let stack = |updated: &str| Existing {
            id: "arn:aws:cloudformation:us-east-1:1:stack/demo-stt/1".into(),
            status: "UPDATE_COMPLETE".into(),
            updated: updated.into(),
        };
        let name = change_set_name("abc", Some(&stack("t1")));
        assert_eq!(name, change_set_name("abc", Some(&stack("t1"))));
        assert_eq!(name.len(), 16);
        assert_ne!(name, change_set_name("abd", Some(&stack("t1"))));
        assert_ne!(name, change_set_name("abc", Some(&stack("t2"))));
        assert_ne!(name, change_set_name("abc", None));
        let mut review = stack("t1");
        review.status = "REVIEW_IN_PROGRESS".into();
        assert_eq!(
            change_set_name("abc", Some(&review)),
            change_set_name("abc", None)
        );
    }

    #[test]
    fn failed_states_are_told_apart() {
        assert!(failed_creation("ROLLBACK_COMPLETE") && failed_creation("ROLLBACK_FAILED"));
        assert!(!failed_creation("UPDATE_ROLLBACK_COMPLETE"));
        assert!(stuck("demo-stt", "UPDATE_ROLLBACK_FAILED")
            .unwrap()
            .contains("continue-update-rollback --stack-name demo-stt"));
        assert!(stuck("demo-stt", "DELETE_FAILED").is_some());
        assert!(stuck("demo-stt", "UPDATE_ROLLBACK_COMPLETE").is_none());
    }

    #[test]
    fn output_names_read_back_as_the_sdk_engine_names_them() {
        for name in ["stt_site_url", "vod_player_url", "stt_database_secret_arn"] {
            assert_eq!(snake(&template::pascal(name)), name);
        }
    }
}
