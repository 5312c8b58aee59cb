//! The MySQL connection: credentials from Secrets Manager on AWS (read once per cold start),
//! from `DB_URL` on the local target.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};

use crate::config::{DbConfig, DbCredentials};
use crate::error::display_chain;
use crate::{Error, Result};

/// The fields of an RDS-managed master user secret that we use.
#[derive(Deserialize)]
struct SecretCredentials {
    username: String,
    password: String,
}

/// Reads a JSON secret from Secrets Manager.
pub async fn read_secret_json<T: serde::de::DeserializeOwned>(
    sdk: &aws_config::SdkConfig,
    arn: &str,
) -> Result<T> {
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| Error::Secret {
            arn: arn.to_string(),
            message: display_chain(&e),
        })?;
    let text = out.secret_string().ok_or_else(|| Error::Secret {
        arn: arn.to_string(),
        message: "the secret has no SecretString".into(),
    })?;
    serde_json::from_str(text).map_err(|e| Error::Secret {
        arn: arn.to_string(),
        message: format!("the secret is not the expected JSON: {e}"),
    })
}

fn parse_ssl_mode(s: &str) -> Result<MySqlSslMode> {
    MySqlSslMode::from_str(s).map_err(|_| {
        Error::Config(format!(
            "DB_SSL_MODE {s:?}: expected disabled, preferred, required, verify_ca or verify_identity"
        ))
    })
}

/// Connection options without a database selected (the migration creates the database).
pub async fn server_options(
    cfg: &DbConfig,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<MySqlConnectOptions> {
    let mut opts = match &cfg.credentials {
        DbCredentials::Url(url) => {
            let mut o = MySqlConnectOptions::from_str(url)
                .map_err(|e| Error::Config(format!("DB_URL is not a MySQL URL: {e}")))?;
            if !cfg.host.is_empty() {
                o = o.host(&cfg.host).port(cfg.port);
            }
            o
        }
        DbCredentials::Secret { arn } => {
            let sdk = sdk
                .ok_or_else(|| Error::Config("DB_SECRET_ARN needs an AWS configuration".into()))?;
            let secret: SecretCredentials = read_secret_json(sdk, arn).await?;
            MySqlConnectOptions::new()
                .host(&cfg.host)
                .port(cfg.port)
                .username(&secret.username)
                .password(&secret.password)
                // On AWS the connection is always encrypted.
                .ssl_mode(MySqlSslMode::Required)
        }
    };
    if let Some(ca) = &cfg.ssl_ca {
        opts = opts.ssl_ca(ca).ssl_mode(MySqlSslMode::VerifyIdentity);
    }
    if let Some(mode) = &cfg.ssl_mode {
        opts = opts.ssl_mode(parse_ssl_mode(mode)?);
    }
    Ok(opts.charset("utf8mb4"))
}

/// Connection options for the application database.
pub async fn database_options(
    cfg: &DbConfig,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<MySqlConnectOptions> {
    Ok(server_options(cfg, sdk).await?.database(&cfg.database))
}

/// A small pool: one Lambda instance handles one event at a time. Connections are made on
/// first use, so a cold start does not fail when the database is briefly unreachable.
pub fn pool(opts: MySqlConnectOptions) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(opts)
}

/// Reads the configuration and secret and returns the pool (cold start).
pub async fn pool_from_env(sdk: &aws_config::SdkConfig) -> Result<MySqlPool> {
    let cfg = DbConfig::from_env()?;
    Ok(pool(database_options(&cfg, Some(sdk)).await?))
}
