//! `db_migrate`: creates the database and applies the versioned migrations of
//! `stt_common::migrate`. The provisioner invokes it once the database exists; the answer
//! lists the applied versions.
//!
//! With the RDS-managed secret, a connection refused with MySQL's "Access denied" (1045: RDS
//! rotated the password since this instance read it) makes the function read the secret
//! again and run once more with the new credentials, which it keeps for later invocations.

use std::sync::RwLock;

use serde_json::Value;
use sqlx::mysql::MySqlConnectOptions;
use stt_common::config::DbConfig;
use stt_common::db::{is_access_denied, SecretRotation};
use stt_common::migrate::{self, MigrationReport};
use stt_common::{Error, Result};

pub struct Deps {
    server: RwLock<MySqlConnectOptions>,
    pub database: String,
    /// Where new credentials come from after a rotation (`None` on the local target).
    pub rotation: Option<SecretRotation>,
}

impl Deps {
    /// Fixed credentials (local target, tests).
    pub fn new(server: MySqlConnectOptions, database: impl Into<String>) -> Self {
        Deps {
            server: RwLock::new(server),
            database: database.into(),
            rotation: None,
        }
    }

    /// Credentials from the configuration; with a secret, read now and again after a
    /// rotation.
    pub async fn connect(cfg: &DbConfig, sdk: &aws_config::SdkConfig) -> Result<Self> {
        Ok(Deps {
            server: RwLock::new(stt_common::db::server_options(cfg, Some(sdk)).await?),
            database: cfg.database.clone(),
            rotation: SecretRotation::new(cfg, sdk),
        })
    }

    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        Self::connect(&DbConfig::from_env()?, &sdk).await
    }

    /// The server options in use.
    pub fn server(&self) -> MySqlConnectOptions {
        self.server.read().unwrap().clone()
    }
}

/// The event is ignored (the provisioner sends `{}`); the answer is the report.
pub async fn handler(deps: &Deps, _event: Value) -> Result<MigrationReport> {
    match migrate::run(&deps.server(), &deps.database).await {
        Err(Error::Db(e)) if is_access_denied(&e) => {
            let Some(rotation) = &deps.rotation else {
                return Err(Error::Db(e));
            };
            let fresh = rotation.server_options().await?;
            *deps.server.write().unwrap() = fresh.clone();
            migrate::run(&fresh, &deps.database).await
        }
        other => other,
    }
}
