//! `db_migrate`: creates the database and applies the versioned migrations of
//! `stt_common::migrate`. The provisioner invokes it once the database exists; the answer
//! lists the applied versions.

use serde_json::Value;
use sqlx::mysql::MySqlConnectOptions;
use stt_common::config::DbConfig;
use stt_common::migrate::{self, MigrationReport};
use stt_common::Result;

pub struct Deps {
    pub server: MySqlConnectOptions,
    pub database: String,
}

impl Deps {
    pub async fn from_env() -> Result<Self> {
        let sdk = stt_common::aws_config().await;
        let cfg = DbConfig::from_env()?;
        Ok(Deps {
            server: stt_common::db::server_options(&cfg, Some(&sdk)).await?,
            database: cfg.database,
        })
    }
}

/// The event is ignored (the provisioner sends `{}`); the answer is the report.
pub async fn handler(deps: &Deps, _event: Value) -> Result<MigrationReport> {
    migrate::run(&deps.server, &deps.database).await
}
