//! Configuration read from the environment, once per cold start.
//!
//! | variable | used by | meaning |
//! |---|---|---|
//! | `DB_HOST` | all | MySQL host (RDS endpoint) |
//! | `DB_PORT` | all | default 3306 |
//! | `DB_NAME` | all | database name, default `stt` |
//! | `DB_SECRET_ARN` | all | a secret `{"username", "password"}`: the application user's (see `app_user`); for `db_migrate` on AWS, the RDS-managed master secret |
//! | `DB_URL` | `db_migrate`, local only | `mysql://user:pass@host:port/db`; refused when `DB_SECRET_ARN` is set |
//! | `DB_APP_USER`, `DB_APP_SECRET_ARN` | `db_migrate` | the application user it makes, and the secret holding its password |
//! | `DB_SSL_MODE` | all | override: `disabled`, `preferred`, `required`, `verify_ca`, `verify_identity`; with a secret the default is `verify_identity` against the bundled RDS CAs; not set on AWS (`disabled` for the local MariaDB) |
//! | `DB_SSL_CA` | all | override: a PEM file instead of the bundled RDS CAs (implies `verify_identity`); not set on AWS |

use crate::{Error, Result};

/// Where the database credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbCredentials {
    /// AWS: the RDS-managed secret, read from Secrets Manager at cold start.
    Secret { arn: String },
    /// Local target only: a full connection URL (the password may be in it; that is
    /// acceptable for a MariaDB on the developer's machine, never on AWS).
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub credentials: DbCredentials,
    pub ssl_mode: Option<String>,
    pub ssl_ca: Option<String>,
}

/// Reads an optional variable; empty counts as unset.
pub fn opt_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads a required variable.
pub fn req_env(name: &str) -> Result<String> {
    opt_env(name).ok_or_else(|| Error::Config(format!("environment variable {name} is not set")))
}

impl DbConfig {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(opt_env)
    }

    /// Same as [`DbConfig::from_env`] with an injectable lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let credentials = match (get("DB_SECRET_ARN"), get("DB_URL")) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "DB_URL is only for the local target and must not be set together with \
                     DB_SECRET_ARN (no password in the environment on AWS)"
                        .into(),
                ))
            }
            (Some(arn), None) => DbCredentials::Secret { arn },
            (None, Some(url)) => DbCredentials::Url(url),
            (None, None) => {
                return Err(Error::Config(
                    "set DB_SECRET_ARN (AWS) or DB_URL (local target) for the database".into(),
                ))
            }
        };
        let port = match get("DB_PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| Error::Config(format!("DB_PORT is not a port number: {p}")))?,
            None => 3306,
        };
        let host = match (&credentials, get("DB_HOST")) {
            (_, Some(h)) => h,
            (DbCredentials::Url(_), None) => String::new(),
            (DbCredentials::Secret { .. }, None) => {
                return Err(Error::Config(
                    "environment variable DB_HOST is not set".into(),
                ))
            }
        };
        let database = get("DB_NAME").unwrap_or_else(|| "stt".to_string());
        validate_identifier(&database)?;
        Ok(DbConfig {
            host,
            port,
            database,
            credentials,
            ssl_mode: get("DB_SSL_MODE"),
            ssl_ca: get("DB_SSL_CA"),
        })
    }
}

/// A database name goes into `CREATE DATABASE`, where it cannot be a bound parameter, so it
/// is restricted to a safe alphabet.
pub fn validate_identifier(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "database name {name:?} must be 1-64 characters of [A-Za-z0-9_$]"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<DbConfig> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DbConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn secret_on_aws() {
        let c = cfg(&[
            (
                "DB_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:rds!db-1",
            ),
            ("DB_HOST", "db.example"),
            ("DB_NAME", "stt"),
        ])
        .unwrap();
        assert_eq!(c.port, 3306);
        assert!(matches!(c.credentials, DbCredentials::Secret { .. }));
    }

    #[test]
    fn url_refused_with_secret() {
        let e = cfg(&[
            ("DB_SECRET_ARN", "arn"),
            ("DB_HOST", "h"),
            ("DB_URL", "mysql://root:pw@h/stt"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("only for the local target"), "{e}");
    }

    #[test]
    fn nothing_configured() {
        assert!(cfg(&[]).is_err());
        assert!(cfg(&[("DB_SECRET_ARN", "arn")]).is_err(), "host required");
    }

    #[test]
    fn bad_db_name() {
        assert!(cfg(&[("DB_URL", "mysql://root@h"), ("DB_NAME", "x`; DROP")]).is_err());
    }
}
