//! `db_migrate`: creates the database and applies the versioned migrations of
//! `stt_common::migrate`. The provisioner invokes it once the database exists; the answer
//! lists the applied versions.
//!
//! After the migrations it makes the service's own MySQL user (`DB_APP_USER`, its password in
//! the secret `DB_APP_SECRET_ARN`; see `stt_common::app_user`): the other functions connect
//! as that user, and only this one reads the master secret.
//!
//! With the RDS-managed secret, a connection refused with MySQL's "Access denied" (1045: RDS
//! rotated the password since this instance read it) makes the function read the secret
//! again and run once more with the new credentials, which it keeps for later invocations.

use std::sync::RwLock;

use serde_json::Value;
use sqlx::mysql::MySqlConnectOptions;
use stt_common::app_user::{self, CredentialStore, SecretsManagerStore};
use stt_common::config::{opt_env, DbConfig};
use stt_common::db::{is_access_denied, SecretRotation};
use stt_common::migrate::{self, MigrationReport};
use stt_common::{Error, Result};

pub struct Deps {
    server: RwLock<MySqlConnectOptions>,
    pub database: String,
    /// Where new credentials come from after a rotation (`None` on the local target).
    pub rotation: Option<SecretRotation>,
    /// The application user to make after the migrations, and where its password is kept.
    pub app_user: Option<AppUser>,
}

pub struct AppUser {
    pub user: String,
    pub store: Box<dyn CredentialStore>,
}

impl AppUser {
    /// `DB_APP_USER` and `DB_APP_SECRET_ARN`, both or neither.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Option<AppUser>> {
        match (opt_env("DB_APP_USER"), opt_env("DB_APP_SECRET_ARN")) {
            (Some(user), Some(arn)) => {
                app_user::validate_user(&user)?;
                Ok(Some(AppUser {
                    user,
                    store: Box::new(SecretsManagerStore::new(sdk, arn)),
                }))
            }
            (None, None) => Ok(None),
            _ => Err(Error::Config(
                "DB_APP_USER and DB_APP_SECRET_ARN go together: set both or neither".into(),
            )),
        }
    }
}

impl Deps {
    /// Fixed credentials (local target, tests).
    pub fn new(server: MySqlConnectOptions, database: impl Into<String>) -> Self {
        Deps {
            server: RwLock::new(server),
            database: database.into(),
            rotation: None,
            app_user: None,
        }
    }

    /// Also makes the application user (tests; `from_env` reads it from the environment).
    pub fn with_app_user(mut self, app_user: AppUser) -> Self {
        self.app_user = Some(app_user);
        self
    }

    /// Credentials from the configuration; with a secret, read now and again after a
    /// rotation.
    pub async fn connect(cfg: &DbConfig, sdk: &aws_config::SdkConfig) -> Result<Self> {
        Ok(Deps {
            server: RwLock::new(stt_common::db::server_options(cfg, Some(sdk)).await?),
            database: cfg.database.clone(),
            rotation: SecretRotation::new(cfg, sdk),
            app_user: None,
        })
    }

    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        let mut deps = Self::connect(&DbConfig::from_env()?, &sdk).await?;
        deps.app_user = AppUser::from_env(&sdk)?;
        Ok(deps)
    }

    /// The server options in use.
    pub fn server(&self) -> MySqlConnectOptions {
        self.server.read().unwrap().clone()
    }
}

/// The event is ignored (the provisioner sends `{}`); the answer is the report.
pub async fn handler(deps: &Deps, _event: Value) -> Result<MigrationReport> {
    match run(deps, &deps.server()).await {
        Err(Error::Db(e)) if is_access_denied(&e) => {
            let Some(rotation) = &deps.rotation else {
                return Err(Error::Db(e));
            };
            let fresh = rotation.server_options().await?;
            *deps.server.write().unwrap() = fresh.clone();
            run(deps, &fresh).await
        }
        other => other,
    }
}

/// The migrations, then the application user.
async fn run(deps: &Deps, server: &MySqlConnectOptions) -> Result<MigrationReport> {
    let mut report = migrate::run(server, &deps.database).await?;
    if let Some(app) = &deps.app_user {
        report.app_user =
            Some(app_user::ensure(server, &deps.database, &app.user, app.store.as_ref()).await?);
    }
    Ok(report)
}
