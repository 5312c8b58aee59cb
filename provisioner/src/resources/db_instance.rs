//! The RDS MySQL instance (console step S15), the slowest resource of the stack: created as
//! soon as its subnet group and security group exist, and waited for while everything that
//! does not need it goes on.
//!
//! The master password is managed by RDS in Secrets Manager (never seen by this tool), storage
//! is encrypted, the instance is not publicly accessible, and `down` takes a final snapshot
//! unless told otherwise. Deletion protection (on by default on AWS) makes `down` refuse
//! before it deletes anything, unless run with `--disable-deletion-protection`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types::DbInstance as RdsInstance;

use serde_json::json;

use super::db_subnet_group::rds_tags;
use super::tag_diff;
use crate::engine::retry::{retry_when, Backoff};
use crate::engine::wait::{self, Poll, Wait};
use crate::engine::{
    Action, AwsResultExt, Context, DeleteOptions, Deleted, Diff, Error, FieldDiff, Planned,
    Resource, ResourceKey,
};
use crate::template::{self, CfnResource, Part, Rendering};

/// RDS keeps the master password in Secrets Manager: this tool never sees it.
const MANAGED_PASSWORD: bool = true;
const STORAGE_ENCRYPTED: bool = true;
const PUBLICLY_ACCESSIBLE: bool = false;
/// Snapshots (the final one of `down` too) carry the stack's tags.
const COPY_TAGS_TO_SNAPSHOT: bool = true;
/// Automated backups outlive the instance as retained backups: deleting them is the user's
/// call.
const DELETE_AUTOMATED_BACKUPS: bool = false;

/// The settings the stack manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    pub engine: String,
    pub engine_version: String,
    pub instance_class: String,
    pub allocated_storage: i32,
    pub storage_type: String,
    pub backup_retention: i32,
    pub master_username: String,
    pub db_name: String,
    pub storage_encrypted: bool,
    pub publicly_accessible: bool,
    pub deletion_protection: bool,
    pub managed_password: bool,
    pub subnet_group: String,
    pub security_groups: Vec<String>,
    /// The stack's parameter group (TLS required).
    pub parameter_group: String,
}

impl DbSettings {
    /// What the instance is, or will be once its pending modifications are applied.
    pub fn read(db: &RdsInstance) -> DbSettings {
        let pending = db.pending_modified_values();
        let mut groups: Vec<String> = db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id().map(str::to_owned))
            .collect();
        groups.sort();
        DbSettings {
            engine: db.engine().unwrap_or_default().to_owned(),
            engine_version: pending
                .and_then(|p| p.engine_version())
                .or(db.engine_version())
                .unwrap_or_default()
                .to_owned(),
            instance_class: pending
                .and_then(|p| p.db_instance_class())
                .or(db.db_instance_class())
                .unwrap_or_default()
                .to_owned(),
            allocated_storage: pending
                .and_then(|p| p.allocated_storage())
                .or(db.allocated_storage())
                .unwrap_or_default(),
            storage_type: pending
                .and_then(|p| p.storage_type())
                .or(db.storage_type())
                .unwrap_or_default()
                .to_owned(),
            backup_retention: pending
                .and_then(|p| p.backup_retention_period())
                .or(db.backup_retention_period())
                .unwrap_or_default(),
            master_username: db.master_username().unwrap_or_default().to_owned(),
            db_name: db.db_name().unwrap_or_default().to_owned(),
            storage_encrypted: db.storage_encrypted().unwrap_or(false),
            publicly_accessible: db.publicly_accessible().unwrap_or(false),
            deletion_protection: db.deletion_protection().unwrap_or(false),
            managed_password: db.master_user_secret().is_some(),
            subnet_group: db
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .unwrap_or_default()
                .to_owned(),
            security_groups: groups,
            parameter_group: db
                .db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name())
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// (fields that force a replacement, fields changed in place).
    pub fn diff(&self, live: &DbSettings, local: bool) -> (Vec<FieldDiff>, Vec<FieldDiff>) {
        let mut replacing = Diff::default();
        replacing.field("Engine", &self.engine, &live.engine);
        replacing.field(
            "StorageEncrypted",
            self.storage_encrypted,
            live.storage_encrypted,
        );
        replacing.field(
            "MasterUsername",
            &self.master_username,
            &live.master_username,
        );
        replacing.field("DBName", &self.db_name, &live.db_name);
        replacing.field("DBSubnetGroupName", &self.subnet_group, &live.subnet_group);
        if self.allocated_storage < live.allocated_storage {
            // RDS storage can grow, never shrink.
            replacing.field(
                "AllocatedStorage",
                self.allocated_storage,
                live.allocated_storage,
            );
        }
        let mut updating = Diff::default();
        if !version_matches(&self.engine_version, &live.engine_version) {
            updating.field("EngineVersion", &self.engine_version, &live.engine_version);
        }
        updating.field(
            "DBInstanceClass",
            &self.instance_class,
            &live.instance_class,
        );
        if self.allocated_storage > live.allocated_storage {
            updating.field(
                "AllocatedStorage",
                self.allocated_storage,
                live.allocated_storage,
            );
        }
        updating.field("StorageType", &self.storage_type, &live.storage_type);
        updating.field(
            "BackupRetentionPeriod",
            self.backup_retention,
            live.backup_retention,
        );
        updating.field(
            "PubliclyAccessible",
            self.publicly_accessible,
            live.publicly_accessible,
        );
        updating.field(
            "DeletionProtection",
            self.deletion_protection,
            live.deletion_protection,
        );
        updating.field(
            "VpcSecurityGroupIds",
            &self.security_groups,
            &live.security_groups,
        );
        updating.field(
            "DBParameterGroupName",
            &self.parameter_group,
            &live.parameter_group,
        );
        // The emulator accepts ManageMasterUserPassword but creates no secret.
        if !local {
            updating.field(
                "ManageMasterUserPassword",
                self.managed_password,
                live.managed_password,
            );
        }
        (replacing.into_vec(), updating.into_vec())
    }
}

/// "8.0" is met by "8.0.40"; "8.0.40" only by itself.
pub fn version_matches(wanted: &str, live: &str) -> bool {
    live == wanted || live.starts_with(&format!("{wanted}."))
}

fn major(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

pub struct DbInstance {
    pub key: ResourceKey,
    pub identifier: String,
    pub subnet_group: ResourceKey,
    pub parameter_group: ResourceKey,
    pub security_group: ResourceKey,
    /// The wanted settings, given the subnet group name and security group id.
    pub settings: Box<dyn Fn(Vec<String>) -> DbSettings + Send + Sync>,
    pub final_snapshot: bool,
    pub apply_immediately: bool,
}

impl DbInstance {
    async fn find(&self, cx: &Context) -> Result<Option<RdsInstance>, Error> {
        match cx
            .aws
            .rds
            .describe_db_instances()
            .db_instance_identifier(&self.identifier)
            .send()
            .await
        {
            Ok(out) => Ok(out.db_instances().first().cloned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).step(&self.key, "DescribeDBInstances"),
        }
    }

    fn wanted(&self, cx: &Context) -> DbSettings {
        (self.settings)(cx.output(&self.security_group, "id").into_iter().collect())
    }

    fn publish(&self, cx: &Context, db: &RdsInstance) {
        cx.publish(&self.key, "identifier", &self.identifier);
        if let Some(arn) = db.db_instance_arn() {
            cx.publish(&self.key, "arn", arn);
        }
        if let Some(endpoint) = db.endpoint() {
            cx.publish(&self.key, "address", endpoint.address().unwrap_or_default());
            cx.publish(
                &self.key,
                "port",
                endpoint.port().unwrap_or(3306).to_string(),
            );
        }
        if let Some(secret) = db.master_user_secret().and_then(|s| s.secret_arn()) {
            cx.publish(&self.key, "secret_arn", secret);
        }
    }

    async fn create(&self, cx: &Context) -> Result<(), Error> {
        let w = self.wanted(cx);
        let created = cx
            .aws
            .rds
            .create_db_instance()
            .db_instance_identifier(&self.identifier)
            .engine(&w.engine)
            .engine_version(&w.engine_version)
            .db_instance_class(&w.instance_class)
            .allocated_storage(w.allocated_storage)
            .storage_type(&w.storage_type)
            .master_username(&w.master_username)
            .manage_master_user_password(MANAGED_PASSWORD)
            .db_name(&w.db_name)
            .db_subnet_group_name(&w.subnet_group)
            .db_parameter_group_name(&w.parameter_group)
            .set_vpc_security_group_ids(Some(w.security_groups.clone()))
            .backup_retention_period(w.backup_retention)
            .storage_encrypted(STORAGE_ENCRYPTED)
            .publicly_accessible(PUBLICLY_ACCESSIBLE)
            .deletion_protection(w.deletion_protection)
            .copy_tags_to_snapshot(COPY_TAGS_TO_SNAPSHOT)
            .set_tags(Some(rds_tags(cx)))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // An earlier run created it and was interrupted before it saw the answer.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_db_instance_already_exists_fault()) =>
            {
                Ok(())
            }
            Err(e) => Err(e).step(&self.key, "CreateDBInstance"),
        }
    }

    async fn modify(
        &self,
        cx: &Context,
        planned: &Planned,
        live: &RdsInstance,
    ) -> Result<(), Error> {
        let w = self.wanted(cx);
        let changed = |f: &str| planned.changes.iter().any(|c| c.field == f);
        let mut m = cx
            .aws
            .rds
            .modify_db_instance()
            .db_instance_identifier(&self.identifier)
            .apply_immediately(self.apply_immediately);
        let mut any = false;
        if changed("EngineVersion") {
            let live_version = live.engine_version().unwrap_or_default();
            m = m
                .engine_version(&w.engine_version)
                .allow_major_version_upgrade(major(live_version) != major(&w.engine_version));
            any = true;
        }
        if changed("DBInstanceClass") {
            m = m.db_instance_class(&w.instance_class);
            any = true;
        }
        if changed("AllocatedStorage") {
            m = m.allocated_storage(w.allocated_storage);
            any = true;
        }
        if changed("StorageType") {
            m = m.storage_type(&w.storage_type);
            any = true;
        }
        if changed("BackupRetentionPeriod") {
            m = m.backup_retention_period(w.backup_retention);
            any = true;
        }
        if changed("PubliclyAccessible") {
            m = m.publicly_accessible(PUBLICLY_ACCESSIBLE);
            any = true;
        }
        if changed("DeletionProtection") {
            m = m.deletion_protection(w.deletion_protection);
            any = true;
        }
        if changed("VpcSecurityGroupIds") {
            m = m.set_vpc_security_group_ids(Some(w.security_groups.clone()));
            any = true;
        }
        if changed("ManageMasterUserPassword") {
            m = m.manage_master_user_password(MANAGED_PASSWORD);
            any = true;
        }
        if changed("DBParameterGroupName") {
            m = m.db_parameter_group_name(&w.parameter_group);
            any = true;
            cx.note(
                &self.key,
                "the new parameter group applies once the database restarts (RDS: pending-reboot); \
                 reboot it when convenient",
            );
        }
        if any {
            // RDS refuses changes while the instance is busy (backing up, applying an earlier
            // change): retried. No wait for `available` first: the change may be what gets the
            // instance out of `storage-full` or `incompatible-parameters`.
            retry_when(Self::busy_backoff(cx), Self::busy, || async {
                m.clone().send().await.step(&self.key, "ModifyDBInstance")
            })
            .await?;
        }
        if planned.touches("Tags.") {
            let arn = live.db_instance_arn().unwrap_or_default();
            cx.aws
                .rds
                .add_tags_to_resource()
                .resource_name(arn)
                .set_tags(Some(rds_tags(cx)))
                .send()
                .await
                .step(&self.key, "AddTagsToResource")?;
        }
        Ok(())
    }

    /// An instance in a state that refuses the call for now (creating, modifying, backing up).
    fn busy(e: &Error) -> bool {
        e.code() == Some("InvalidDBInstanceState")
    }

    fn busy_backoff(cx: &Context) -> Backoff {
        if cx.aws.local {
            Backoff {
                first: Duration::from_millis(200),
                max: Duration::from_secs(1),
                total: Duration::from_secs(120),
            }
        } else {
            Backoff {
                first: Duration::from_secs(5),
                max: Duration::from_secs(30),
                total: Duration::from_secs(30 * 60),
            }
        }
    }

    fn wait(cx: &Context, limit_minutes: u64) -> Wait {
        Wait::new(
            cx,
            Duration::from_secs(15),
            Duration::from_secs(limit_minutes * 60),
        )
    }

    /// Why `down` will not delete a protected instance, and how to go on.
    fn protected(&self) -> Error {
        Error::Refused {
            resource: self.key.clone(),
            message: format!(
                "deletion protection is on for database {}; nothing was deleted. Run `provision down \
                 --disable-deletion-protection` to turn it off and delete the stack (the final \
                 snapshot is still taken unless --skip-final-snapshot is given too)",
                self.identifier
            ),
        }
    }

    /// Why `up --allow-replace` will not replace a protected instance.
    fn replace_refused(&self) -> Error {
        Error::Refused {
            resource: self.key.clone(),
            message: format!(
                "deletion protection is on for database {}, which must be replaced; nothing was \
                 changed. Set stt.database.deletion_protection: false, then run `provision up \
                 --allow-replace`",
                self.identifier
            ),
        }
    }

    /// Turns deletion protection off (the operator said so) and waits until RDS says it is
    /// off, so the delete that follows is not refused.
    async fn lift_protection(&self, cx: &Context) -> Result<(), Error> {
        retry_when(Self::busy_backoff(cx), Self::busy, || async {
            cx.aws
                .rds
                .modify_db_instance()
                .db_instance_identifier(&self.identifier)
                .deletion_protection(false)
                .apply_immediately(true)
                .send()
                .await
                .step(&self.key, "ModifyDBInstance")
        })
        .await?;
        let what = format!("deletion protection of {} to be off", self.identifier);
        wait::until(cx, &self.key, &what, Self::wait(cx, 10), || async {
            Ok(match self.find(cx).await? {
                Some(db) if db.deletion_protection() == Some(true) => {
                    Poll::Pending("still on".into())
                }
                _ => Poll::Ready(()),
            })
        })
        .await?;
        cx.note(&self.key, "deletion protection turned off, as asked");
        Ok(())
    }

    /// Deletes the instance (with a final snapshot unless `snapshot` is false) and waits
    /// until it is gone; a protected instance only if `lift_protection`, else refused with
    /// `refusal`. Returns the snapshot's identifier.
    async fn delete_and_wait(
        &self,
        cx: &Context,
        db: &RdsInstance,
        snapshot: bool,
        lift_protection: bool,
        refusal: impl FnOnce() -> Error,
    ) -> Result<Option<String>, Error> {
        let mut snapshot_id = None;
        if db.db_instance_status() != Some("deleting") {
            if db.deletion_protection() == Some(true) {
                if !lift_protection {
                    return Err(refusal());
                }
                self.lift_protection(cx).await?;
            }
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let id = format!("{}-final-{seconds}", self.identifier);
            let mut request = cx
                .aws
                .rds
                .delete_db_instance()
                .db_instance_identifier(&self.identifier)
                .skip_final_snapshot(!snapshot)
                .delete_automated_backups(DELETE_AUTOMATED_BACKUPS);
            if snapshot {
                request = request.final_db_snapshot_identifier(&id);
                snapshot_id = Some(id);
            }
            // "Instance is currently creating - a final snapshot cannot be taken": wait.
            let sent = retry_when(Self::busy_backoff(cx), Self::busy, || async {
                request
                    .clone()
                    .send()
                    .await
                    .step(&self.key, "DeleteDBInstance")
            })
            .await;
            match sent {
                Ok(_) => {}
                Err(e) if e.code() == Some("DBInstanceNotFound") => return Ok(snapshot_id),
                Err(e) => return Err(e),
            }
        }
        let what = format!("database {} to be deleted", self.identifier);
        wait::until(cx, &self.key, &what, Self::wait(cx, 60), || async {
            Ok(match self.find(cx).await? {
                None => Poll::Ready(()),
                Some(db) => {
                    Poll::Pending(format!("status {}", db.db_instance_status().unwrap_or("?")))
                }
            })
        })
        .await?;
        Ok(snapshot_id)
    }
}

#[async_trait]
impl Resource for DbInstance {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    /// RDS takes about six minutes to make a MySQL instance available (and about as long to
    /// delete one); the functions and the migration wait for it.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(360)
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![
            self.subnet_group.clone(),
            self.parameter_group.clone(),
            self.security_group.clone(),
        ]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some(db) = self.find(cx).await? else {
            return Ok(Planned::create(self.key.clone(), self.identifier.clone()));
        };
        self.publish(cx, &db);
        let (replacing, mut updating) = self.wanted(cx).diff(&DbSettings::read(&db), cx.aws.local);
        let live_tags = db
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        updating.extend(tag_diff(&cx.tags(), &live_tags));
        Ok(Planned::with_replacement(
            self.key.clone(),
            self.identifier.clone(),
            replacing,
            updating,
        ))
    }

    async fn apply(&self, cx: &Context, planned: &Planned) -> Result<(), Error> {
        match planned.action {
            Action::Create => self.create(cx).await?,
            Action::Replace => {
                let db = self.find(cx).await?.ok_or_else(|| Error::Refused {
                    resource: self.key.clone(),
                    message: "database vanished".into(),
                })?;
                // A replacement always keeps a snapshot of the old database. A protected one
                // is replaced only once stack.yaml no longer wants it protected
                // (`--allow-replace` alone is no consent to lift the protection).
                let lift = !self.wanted(cx).deletion_protection;
                let refusal = || self.replace_refused();
                if let Some(snapshot) = self.delete_and_wait(cx, &db, true, lift, refusal).await? {
                    cx.note(
                        &self.key,
                        format!("the replaced database was saved as snapshot {snapshot}"),
                    );
                }
                self.create(cx).await?;
            }
            _ => {
                let db = self.find(cx).await?.ok_or_else(|| Error::Refused {
                    resource: self.key.clone(),
                    message: "database vanished".into(),
                })?;
                self.modify(cx, planned, &db).await?;
                // Applied changes put the instance into `modifying`; dependents wait.
                self.wait_ready(cx).await?;
            }
        }
        if matches!(planned.action, Action::Create | Action::Replace) {
            // The functions need the endpoint, which exists only once the instance is
            // available; what does not depend on the database goes on meanwhile.
            return self.wait_ready(cx).await;
        }
        if let Some(db) = self.find(cx).await? {
            self.publish(cx, &db);
        }
        Ok(())
    }

    async fn wait_ready(&self, cx: &Context) -> Result<(), Error> {
        let what = format!("database {} to be available", self.identifier);
        wait::until(cx, &self.key, &what, Self::wait(cx, 90), || async {
            let db = self.find(cx).await?.ok_or_else(|| Error::Refused {
                resource: self.key.clone(),
                message: "database vanished while starting".into(),
            })?;
            let status = db.db_instance_status().unwrap_or_default();
            if status == "available" {
                self.publish(cx, &db);
                return Ok(Poll::Ready(()));
            }
            if matches!(
                status,
                "failed" | "incompatible-parameters" | "incompatible-network" | "storage-full"
            ) {
                return Err(Error::Refused {
                    resource: self.key.clone(),
                    message: format!("database {} is {status}", self.identifier),
                });
            }
            Ok(Poll::Pending(format!("status {status}")))
        })
        .await
    }

    async fn before_delete(&self, cx: &Context, options: &DeleteOptions) -> Result<(), Error> {
        let protected = self.find(cx).await?.is_some_and(|db| {
            db.deletion_protection() == Some(true) && db.db_instance_status() != Some("deleting")
        });
        if protected && !options.disable_deletion_protection {
            return Err(self.protected());
        }
        Ok(())
    }

    async fn delete(&self, cx: &Context, options: &DeleteOptions) -> Result<Deleted, Error> {
        let Some(db) = self.find(cx).await? else {
            return Ok(Deleted::Absent);
        };
        let snapshot = self.final_snapshot && !options.skip_final_snapshot;
        let lift = options.disable_deletion_protection;
        match self
            .delete_and_wait(cx, &db, snapshot, lift, || self.protected())
            .await?
        {
            Some(id) => cx.note(&self.key, format!("final snapshot kept: {id}")),
            None if snapshot => cx.note(&self.key, "the database was already being deleted; its final snapshot was requested by an earlier run"),
            None => cx.note(&self.key, "deleted without a final snapshot, as asked"),
        }
        Ok(Deleted::Deleted)
    }

    /// `AWS::RDS::DBInstance` with the settings `create` sends. Deleting the stack snapshots
    /// the instance when `final_snapshot` is on, as `down` does; replacing it always does, as
    /// `up --allow-replace` does.
    fn cloudformation(&self, cx: &Context) -> Rendering {
        let w = self.wanted(cx);
        let mut db = CfnResource::new(
            &self.key,
            "AWS::RDS::DBInstance",
            json!({
                "DBInstanceIdentifier": self.identifier,
                "Engine": w.engine,
                "EngineVersion": w.engine_version,
                // `up` upgrades to whatever major version stack.yaml asks for.
                "AllowMajorVersionUpgrade": true,
                "DBInstanceClass": w.instance_class,
                "AllocatedStorage": w.allocated_storage.to_string(),
                "StorageType": w.storage_type,
                "MasterUsername": w.master_username,
                "ManageMasterUserPassword": MANAGED_PASSWORD,
                "DBName": w.db_name,
                "DBSubnetGroupName": w.subnet_group,
                "DBParameterGroupName": w.parameter_group,
                "VPCSecurityGroups": w.security_groups,
                "BackupRetentionPeriod": w.backup_retention,
                "StorageEncrypted": STORAGE_ENCRYPTED,
                "PubliclyAccessible": PUBLICLY_ACCESSIBLE,
                "DeletionProtection": w.deletion_protection,
                "CopyTagsToSnapshot": COPY_TAGS_TO_SNAPSHOT,
                "DeleteAutomatedBackups": DELETE_AUTOMATED_BACKUPS,
                "ApplyImmediately": self.apply_immediately,
                "Tags": template::tags(cx),
            }),
        )
        // The groups are named, not referred to: made first all the same.
        .after(&self.depends_on())
        .keep(if self.final_snapshot {
            "Snapshot"
        } else {
            "Delete"
        })
        .keep_on_replace("Snapshot")
        .skip_check(
            "CKV_AWS_157",
            "single-AZ, as the console build: a standby doubles the instance's cost for a \
             service whose uploads wait in S3 while the database restarts",
        )
        .skip_check(
            "CKV_AWS_118",
            "no enhanced monitoring: it needs a monitoring role and is billed per instance; \
             CloudWatch's standard RDS metrics remain",
        )
        .skip_check(
            "CKV_AWS_161",
            "the functions sign in with the application user's password from Secrets Manager; \
             IAM authentication caps new connections per second and adds a token per connection",
        );
        if w.engine_version.split('.').count() < 3 {
            db = db.ignore_lint(
                "E3691",
                "RDS takes a major version (8.0) and makes its default minor version, as `up` \
                 does; cfn-lint knows only full versions",
            );
        }
        Ok(vec![Part::Resource(db)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(final_snapshot: bool) -> CfnResource {
        let mut stack = (*crate::systems::tests::context(false).stack).clone();
        let database = stack
            .stt
            .database
            .as_mut()
            .expect("the stack has a database");
        database.final_snapshot = final_snapshot;
        let database = database.clone();
        let cx = Context::symbolic(
            std::sync::Arc::new(stack),
            vec![template::zone(0), template::zone(1)],
        );
        let db = crate::systems::stt::database(&cx, &database)
            .into_iter()
            .find(|r| r.key() == crate::systems::stt::DATABASE)
            .expect("the stack has a database");
        match db.cloudformation(&cx).unwrap().remove(0) {
            Part::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_template_makes_the_database_as_create_does() {
        let db = rendered(true);
        let p = &db.properties;
        assert_eq!(p["DBInstanceIdentifier"], "stt-demo-db");
        assert_eq!(p["ManageMasterUserPassword"], true);
        assert!(p.get("MasterUserPassword").is_none());
        assert_eq!(p["StorageEncrypted"], true);
        assert_eq!(p["PubliclyAccessible"], false);
        assert_eq!(p["DeletionProtection"], true, "on when deploying to AWS");
        assert_eq!(p["DeleteAutomatedBackups"], false);
        assert_eq!(p["AllocatedStorage"], "20", "a string in CloudFormation");
        assert_eq!(p["DBSubnetGroupName"], "stt-demo-db");
        assert_eq!(p["DBParameterGroupName"], "stt-demo-mysql8-0");
        assert_eq!(
            p["VPCSecurityGroups"],
            json!([template::reference("SecurityGroupSttDatabase.GroupId")])
        );
        // Named rather than referred to, so made first by DependsOn.
        for group in ["DbSubnetGroupStt", "DbParameterGroupStt"] {
            assert!(db.depends_on.iter().any(|d| d == group), "{group}");
        }
        assert_eq!(
            (db.keep, db.keep_on_replace),
            (Some("Snapshot"), Some("Snapshot"))
        );
    }

    #[test]
    fn without_a_final_snapshot_deleting_deletes_but_replacing_still_snapshots() {
        let db = rendered(false);
        assert_eq!(
            (db.keep, db.keep_on_replace),
            (Some("Delete"), Some("Snapshot"))
        );
    }

    fn wanted() -> DbSettings {
        DbSettings {
            engine: "mysql".into(),
            engine_version: "8.0".into(),
            instance_class: "db.t3.micro".into(),
            allocated_storage: 20,
            storage_type: "gp2".into(),
            backup_retention: 7,
            master_username: "admin".into(),
            db_name: "stt".into(),
            storage_encrypted: true,
            publicly_accessible: false,
            deletion_protection: false,
            managed_password: true,
            subnet_group: "demo-db".into(),
            security_groups: vec!["sg-1".into()],
            parameter_group: "demo-mysql8-0".into(),
        }
    }

    fn fields(diffs: &[FieldDiff]) -> Vec<&str> {
        diffs.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn in_place_changes_are_updates() {
        let mut live = wanted();
        live.engine_version = "8.0.40".into();
        live.instance_class = "db.t3.small".into();
        live.backup_retention = 1;
        let (replacing, updating) = wanted().diff(&live, false);
        assert!(replacing.is_empty());
        assert_eq!(
            fields(&updating),
            vec!["DBInstanceClass", "BackupRetentionPeriod"]
        );
    }

    #[test]
    fn engine_encryption_and_shrinking_storage_force_replacement() {
        let mut live = wanted();
        live.engine = "mariadb".into();
        live.allocated_storage = 50;
        live.storage_encrypted = false;
        let (replacing, updating) = wanted().diff(&live, false);
        assert_eq!(
            fields(&replacing),
            vec!["Engine", "StorageEncrypted", "AllocatedStorage"]
        );
        assert!(updating.is_empty());
        let mut grown = wanted();
        grown.allocated_storage = 100;
        let (replacing, updating) = grown.diff(&wanted(), false);
        assert!(replacing.is_empty());
        assert_eq!(fields(&updating), vec!["AllocatedStorage"]);
    }

    #[test]
    fn versions_match_by_prefix() {
        assert!(version_matches("8.0", "8.0.40"));
        assert!(version_matches("8.0.40", "8.0.40"));
        assert!(!version_matches("8.0", "8.4.3"));
        assert!(!version_matches("8.0.4", "8.0.40"));
        assert_eq!(major("8.0.40"), "8.0");
    }

    #[test]
    fn the_managed_password_is_not_compared_on_the_emulator() {
        let mut live = wanted();
        live.managed_password = false;
        assert_eq!(
            fields(&wanted().diff(&live, false).1),
            vec!["ManageMasterUserPassword"]
        );
        assert!(wanted().diff(&live, true).1.is_empty());
    }
}
