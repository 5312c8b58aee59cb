//! The service's own MySQL user. The functions that serve uploads connect as this user, which
//! may only read and write the rows of the service's tables; the master user (its secret
//! managed by RDS) is used by `db_migrate` alone.
//!
//! `db_migrate` makes the user after the migrations, with the master credentials:
//! 1. read the application secret; when it has no value yet (the stack made it empty), make a
//!    password and store it there first, so a run interrupted after this step finds it again;
//! 2. `CREATE USER IF NOT EXISTS`, then `ALTER USER` to the secret's password (a user left by
//!    an interrupted run, or restored from a snapshot, gets the secret's password again);
//! 3. grant DML on each service table, and nothing else.
//!
//! The password never leaves the secret and the database session: it is not logged (statement
//! logging is off on that connection) and not returned.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::db::SecretCredentials;
use crate::error::display_chain;
use crate::{Error, Result};

/// What the service's functions do with rows: insert an upload, read and update its status,
/// delete a row whose object could not be stored (see `repo`).
pub const PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE";

/// The tables the functions use. `schema_migrations` is left to `db_migrate`.
pub const SERVICE_TABLES: &[&str] = &["fileTable", "recipients"];

/// Where the application user's credentials are kept.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// The credentials, or `None` while the secret has no value.
    async fn read(&self) -> Result<Option<SecretCredentials>>;
    async fn write(&self, credentials: &SecretCredentials) -> Result<()>;
}

/// A Secrets Manager secret the stack made empty.
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    arn: String,
}

impl SecretsManagerStore {
    pub fn new(sdk: &aws_config::SdkConfig, arn: impl Into<String>) -> Self {
        SecretsManagerStore {
            client: aws_sdk_secretsmanager::Client::new(sdk),
            arn: arn.into(),
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Secret {
            arn: self.arn.clone(),
            message,
        }
    }
}

#[async_trait]
impl CredentialStore for SecretsManagerStore {
    async fn read(&self) -> Result<Option<SecretCredentials>> {
        match self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
        {
            Ok(out) => match (out.secret_string(), out.secret_binary()) {
                (Some(text), _) => serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| self.error(format!("the secret is not the expected JSON: {e}"))),
                (None, Some(_)) => {
                    Err(self.error("the secret holds binary data, not the expected JSON".into()))
                }
                // Emulators answer a secret without a version with an empty value.
                (None, None) => Ok(None),
            },
            // AWS: a secret made without a value has no AWSCURRENT version yet.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error(display_chain(&e))),
        }
    }

    async fn write(&self, credentials: &SecretCredentials) -> Result<()> {
        let text = serde_json::to_string(credentials).expect("two strings serialize");
        self.client
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| self.error(display_chain(&e)))?;
        Ok(())
    }
}

/// What [`ensure`] did; part of `db_migrate`'s answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AppUserReport {
    pub user: String,
    /// Whether this run made the password (the secret had no value).
    pub new_password: bool,
    pub tables: Vec<String>,
}

/// A MySQL user name the statements can hold without quoting: letters, digits, `_`, at most
/// 32 characters (MySQL's limit).
pub fn validate_user(user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "DB_APP_USER must be 1 to 32 letters, digits or underscores: {user:?}"
        )))
    }
}

/// 64 hexadecimal digits from the operating system's random source (two v4 UUIDs, 244 random
/// bits): nothing in it needs quoting in SQL or JSON.
pub fn new_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Makes `user` exist with the secret's password and DML on the service's tables of
/// `database`; `server` holds the master credentials.
pub async fn ensure(
    server: &MySqlConnectOptions,
    database: &str,
    user: &str,
    store: &dyn CredentialStore,
) -> Result<AppUserReport> {
    validate_user(user)?;
    crate::config::validate_identifier(database)?;
    let (credentials, new_password) = match store.read().await? {
        Some(c) if c.username == user => (c, false),
        // Empty, or written for another user name: the secret is the stack's, rewrite it.
        _ => {
            let c = SecretCredentials {
                username: user.to_owned(),
                password: new_password(),
            };
            store.write(&c).await?;
            (c, true)
        }
    };
    if credentials.password.is_empty()
        || !credentials
            .password
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    {
        return Err(Error::Config(
            "the application secret's password is not the alphanumeric one db_migrate makes; \
             delete its value and run `provision up` again"
                .into(),
        ));
    }
    let password = &credentials.password;
    // The statements carry the password: never logged.
    let mut conn =
        MySqlConnection::connect_with(&server.clone().disable_statement_logging()).await?;
    let mut statements = vec![
        format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'"),
        format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"),
    ];
    for table in SERVICE_TABLES {
        statements.push(format!(
            "GRANT {PRIVILEGES} ON `{database}`.`{table}` TO '{user}'@'%'"
        ));
    }
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    Ok(AppUserReport {
        user: user.to_owned(),
        new_password,
        tables: SERVICE_TABLES.iter().map(|t| t.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain_identifiers() {
        assert!(validate_user("stt_app").is_ok());
        assert!(validate_user(&"a".repeat(32)).is_ok());
        assert!(validate_user(&"a".repeat(33)).is_err());
        assert!(validate_user("app'@'%").is_err());
        assert!(validate_user("").is_err());
    }

    #[test]
    fn passwords_are_long_fresh_and_need_no_quoting() {
        let a = new_password();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_password());
    }
}
