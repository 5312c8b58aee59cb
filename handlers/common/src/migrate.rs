//! Versioned, repeatable migrations of the speech-to-text database.
//!
//! `schema_migrations` records each applied version. MySQL commits DDL implicitly, so a
//! migration that changes an existing table also carries a probe that recognises its own
//! effect: when a previous run died between the DDL and the version row, the next run
//! records the version instead of failing on "duplicate column". A named lock
//! (`GET_LOCK`) keeps two concurrent runs from interleaving.

use serde::Serialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::config::validate_identifier;
use crate::{Error, Result};

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: &'static [&'static str],
    /// A `SELECT COUNT(*)` that is non-zero when the migration's effect is already there.
    pub applied_probe: Option<&'static str>,
}

/// All migrations, in order. Never edit an applied one: add a new version.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "fileTable as built in the console (S19)",
        statements: &["CREATE TABLE IF NOT EXISTS fileTable (\
               email VARCHAR(32) NOT NULL, \
               filename VARCHAR(600) NOT NULL, \
               language VARCHAR(10) NOT NULL, \
               time TIMESTAMP NOT NULL\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"],
        applied_probe: None,
    },
    Migration {
        version: 2,
        name: "utf8mb4 for non-ASCII (e.g. Korean) file names",
        statements: &[
            "ALTER TABLE fileTable CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        ],
        applied_probe: None,
    },
    Migration {
        version: 3,
        name: "pipeline columns: id, upload_id, keys, job, status, failure, emailed_at",
        statements: &["ALTER TABLE fileTable \
               ADD COLUMN id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY FIRST, \
               ADD COLUMN upload_id CHAR(32) NULL, \
               ADD COLUMN audio_key VARCHAR(1024) NULL, \
               ADD COLUMN job_name VARCHAR(200) NULL, \
               ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT 'UPLOADED', \
               ADD COLUMN failure_reason VARCHAR(1024) NULL, \
               ADD COLUMN text_key VARCHAR(1024) NULL, \
               ADD COLUMN emailed_at TIMESTAMP NULL DEFAULT NULL, \
               ADD UNIQUE KEY uq_upload_id (upload_id), \
               ADD UNIQUE KEY uq_job_name (job_name)"],
        applied_probe: Some(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = 'fileTable' \
             AND column_name = 'upload_id'",
        ),
    },
    Migration {
        version: 4,
        name: "source_ip and the indexes the hourly upload quotas count with",
        statements: &["ALTER TABLE fileTable \
               ADD COLUMN source_ip VARCHAR(45) NULL, \
               ADD KEY ix_email_time (email, time), \
               ADD KEY ix_source_ip_time (source_ip, time)"],
        applied_probe: Some(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = 'fileTable' \
             AND column_name = 'source_ip'",
        ),
    },
    Migration {
        version: 5,
        name: "recipients: the addresses that confirmed they want transcripts (double opt-in)",
        statements: &["CREATE TABLE IF NOT EXISTS recipients (\
               email VARCHAR(254) NOT NULL PRIMARY KEY, \
               token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL, \
               token_expires_at TIMESTAMP NULL DEFAULT NULL, \
               confirmed_at TIMESTAMP NULL DEFAULT NULL, \
               created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
               UNIQUE KEY uq_token_hash (token_hash)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"],
        applied_probe: None,
    },
    Migration {
        version: 6,
        name: "direct-to-S3 uploads: declared size and type, status token, presign expiry, multipart id",
        statements: &["ALTER TABLE fileTable \
               ADD COLUMN declared_bytes BIGINT UNSIGNED NULL, \
               ADD COLUMN content_type VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL, \
               ADD COLUMN token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL, \
               ADD COLUMN expires_at TIMESTAMP NULL DEFAULT NULL, \
               ADD COLUMN multipart_id VARCHAR(1024) CHARACTER SET ascii COLLATE ascii_bin NULL, \
               ADD KEY ix_status_expires (status, expires_at)"],
        applied_probe: Some(
            "SELECT COUNT(*) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = 'fileTable' \
             AND column_name = 'token_hash'",
        ),
    },
];

/// What a run did; serialised as the Lambda's answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MigrationReport {
    pub database: String,
    /// Versions applied by this run.
    pub applied: Vec<u32>,
    /// Versions that were already there.
    pub already_applied: Vec<u32>,
    pub current_version: u32,
    /// The application user `db_migrate` made or checked after the migrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_user: Option<crate::app_user::AppUserReport>,
}

const LOCK_NAME: &str = "stt_schema_migrations";

/// Creates the database if needed and applies the missing migrations.
pub async fn run(server: &MySqlConnectOptions, database: &str) -> Result<MigrationReport> {
    validate_identifier(database)?;
    {
        let mut conn = MySqlConnection::connect_with(server).await?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` \
             CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
    }
    let mut conn = MySqlConnection::connect_with(&server.clone().database(database)).await?;
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
        .bind(LOCK_NAME)
        .fetch_one(&mut conn)
        .await?;
    if got != Some(1) {
        return Err(Error::Config(format!(
            "another migration holds the lock {LOCK_NAME} for more than 60 s"
        )));
    }
    let result = apply(&mut conn, database).await;
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(LOCK_NAME)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    result
}

async fn apply(conn: &mut MySqlConnection, database: &str) -> Result<MigrationReport> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (\
           version INT UNSIGNED NOT NULL PRIMARY KEY, \
           name VARCHAR(200) NOT NULL, \
           applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    )
    .execute(&mut *conn)
    .await?;
    let done: Vec<u32> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<u32, _>(0))
        .collect::<std::result::Result<_, _>>()?;
    let mut report = MigrationReport {
        database: database.to_string(),
        applied: Vec::new(),
        already_applied: Vec::new(),
        current_version: done.iter().copied().max().unwrap_or(0),
        app_user: None,
    };
    for m in MIGRATIONS {
        if done.contains(&m.version) {
            report.already_applied.push(m.version);
            continue;
        }
        let err = |e: sqlx::Error| Error::Migration {
            version: m.version,
            name: m.name,
            message: e.to_string(),
        };
        let present = match m.applied_probe {
            Some(probe) => {
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(probe))
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(err)?;
                n > 0
            }
            None => false,
        };
        if present {
            tracing::info!(
                version = m.version,
                "migration effect already present, recording it"
            );
        } else {
            for stmt in m.statements {
                sqlx::query(AssertSqlSafe(*stmt))
                    .execute(&mut *conn)
                    .await
                    .map_err(err)?;
            }
        }
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES (?, ?)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        report.applied.push(m.version);
        report.current_version = report.current_version.max(m.version);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        let v: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert_eq!(v[0], 1);
    }

    #[test]
    fn console_columns_kept() {
        let first = MIGRATIONS[0].statements[0];
        for col in [
            "email VARCHAR(32) NOT NULL",
            "filename VARCHAR(600) NOT NULL",
            "language VARCHAR(10) NOT NULL",
            "time TIMESTAMP NOT NULL",
        ] {
            assert!(first.contains(col), "{col}");
        }
    }
}
