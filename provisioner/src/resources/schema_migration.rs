//! The database schema (console step S19): after the database and the `db_migrate` function
//! exist, `up` invokes the function, which applies the versioned migrations from inside the
//! VPC (the database is not reachable from outside), and reports what it applied.
//!
//! The function also makes the service's MySQL user, its password in the application secret
//! (`handlers/common/src/app_user.rs`).
//!
//! Whether the schema is current is read from a tag on the function: the digest of the
//! function's code, the database it migrated and the secret it stored the user's password in
//! (a secret made anew, empty, needs the user's password made again). A run interrupted
//! between the invocation and the tag invokes again, which is safe: the migrations are
//! idempotent.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use sha2::{Digest, Sha256};

use crate::engine::{
    AwsResultExt, Context, DeleteOptions, Deleted, Error, FieldDiff, Planned, Resource, ResourceKey,
};

/// The tag on the migration function that records which code migrated which database.
pub const SCHEMA_TAG: &str = "provision:schema";

pub struct SchemaMigration {
    pub key: ResourceKey,
    pub function: ResourceKey,
    pub database: ResourceKey,
    pub app_secret: ResourceKey,
}

/// What the tag should say: the function's code, the database's and the secret's identity.
pub fn marker(code_sha256: &str, database_arn: &str, app_secret_arn: &str) -> String {
    let digest = Sha256::digest(format!("{code_sha256}\n{database_arn}\n{app_secret_arn}"));
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl SchemaMigration {
    async fn wanted_and_live(
        &self,
        cx: &Context,
    ) -> Result<Option<(String, Option<String>, String)>, Error> {
        let (Some(name), Some(database), Some(secret)) = (
            cx.output(&self.function, "name"),
            cx.output(&self.database, "arn")
                .or_else(|| cx.output(&self.database, "identifier")),
            cx.output(&self.app_secret, "arn"),
        ) else {
            return Ok(None);
        };
        let out = cx
            .aws
            .lambda
            .get_function()
            .function_name(&name)
            .send()
            .await
            .step(&self.key, "GetFunction")?;
        let code = out
            .configuration()
            .and_then(|c| c.code_sha256())
            .unwrap_or_default();
        let live = out.tags().and_then(|t| t.get(SCHEMA_TAG)).cloned();
        let arn = out
            .configuration()
            .and_then(|c| c.function_arn())
            .unwrap_or_default()
            .to_owned();
        Ok(Some((marker(code, &database, &secret), live, arn)))
    }
}

#[async_trait]
impl Resource for SchemaMigration {
    fn key(&self) -> ResourceKey {
        self.key.clone()
    }

    /// One synchronous invocation of db_migrate, a cold start inside the VPC included.
    fn typical_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(10)
    }

    fn depends_on(&self) -> Vec<ResourceKey> {
        vec![
            self.function.clone(),
            self.database.clone(),
            self.app_secret.clone(),
        ]
    }

    async fn plan(&self, cx: &Context) -> Result<Planned, Error> {
        let Some((wanted, live, _)) = self.wanted_and_live(cx).await? else {
            return Ok(Planned::create(self.key.clone(), None));
        };
        let changes = if live.as_deref() == Some(wanted.as_str()) {
            vec![]
        } else {
            vec![FieldDiff::new(
                "MigratedBy",
                &wanted,
                live.as_deref().unwrap_or("(never migrated)"),
            )]
        };
        Ok(Planned::from_diff(
            self.key.clone(),
            "db_migrate".into(),
            changes,
        ))
    }

    async fn apply(&self, cx: &Context, _: &Planned) -> Result<(), Error> {
        let (wanted, _, arn) =
            self.wanted_and_live(cx)
                .await?
                .ok_or_else(|| Error::MissingDependency {
                    resource: self.key.clone(),
                    dependency: "the db_migrate function, the database and the app secret".into(),
                })?;
        let name = cx.require(&self.key, &self.function, "name")?;
        // A run interrupted before the function settled leaves it Pending or updating: the
        // invocation would be refused, or run the code before the one recorded as migrated.
        super::function::wait_settled(cx, &self.key, &name).await?;
        let out = cx
            .aws
            .lambda
            .invoke()
            .function_name(&name)
            .payload(Blob::new("{}"))
            .send()
            .await
            .step(&self.key, "Invoke")?;
        let payload = out
            .payload()
            .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
            .unwrap_or_default();
        if let Some(error) = out.function_error() {
            return Err(Error::Refused {
                resource: self.key.clone(),
                message: format!("the migration failed ({error}): {payload}"),
            });
        }
        cx.note(&self.key, format!("migrations: {payload}"));
        cx.aws
            .lambda
            .tag_resource()
            .resource(arn)
            .tags(SCHEMA_TAG, wanted)
            .send()
            .await
            .step(&self.key, "TagResource")?;
        Ok(())
    }

    /// The schema lives in the database, which keeps it (and its final snapshot).
    async fn delete(&self, _: &Context, _: &DeleteOptions) -> Result<Deleted, Error> {
        Ok(Deleted::Absent)
    }

    fn cloudformation(&self, _: &Context) -> crate::template::Rendering {
        Ok(vec![crate::template::Part::AfterDeploy(
            "provision invokes db_migrate after the deploy: a schema migration is not a \
             resource",
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_changes_with_the_code_or_the_database() {
        let a = marker("sha-1", "arn:db:1", "arn:secret:1");
        assert_eq!(a, marker("sha-1", "arn:db:1", "arn:secret:1"));
        assert_ne!(a, marker("sha-2", "arn:db:1", "arn:secret:1"));
        assert_ne!(a, marker("sha-1", "arn:db:2", "arn:secret:1"));
        assert_ne!(a, marker("sha-1", "arn:db:1", "arn:secret:2"));
        assert_eq!(a.len(), 32);
    }
}
