//! One error type for all handlers; each variant names the failing step and maps to a
//! Lambda `errorType` so CloudWatch and retries can tell them apart.

use lambda_runtime::Diagnostic;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required environment variable is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading the database secret from Secrets Manager failed.
    #[error("reading secret {arn}: {message}")]
    Secret { arn: String, message: String },
    /// A database statement failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// An S3 call failed.
    #[error("s3 {op} s3://{bucket}/{key}: {message}")]
    Storage {
        op: &'static str,
        bucket: String,
        key: String,
        message: String,
    },
    /// Another AWS service (Transcribe, SES) failed.
    #[error("{service}: {message}")]
    Service {
        service: &'static str,
        message: String,
    },
    /// The event does not have the shape the function was built for.
    #[error("bad event: {0}")]
    BadEvent(String),
    /// A migration failed.
    #[error("migration {version} ({name}): {message}")]
    Migration {
        version: u32,
        name: &'static str,
        message: String,
    },
}

impl Error {
    pub fn service(service: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Service {
            service,
            message: err.to_string(),
        }
    }

    /// The `errorType` reported to Lambda.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Config(_) => "ConfigError",
            Error::Secret { .. } => "SecretError",
            Error::Db(_) => "DatabaseError",
            Error::Storage { .. } => "StorageError",
            Error::Service { .. } => "ServiceError",
            Error::BadEvent(_) => "BadEventError",
            Error::Migration { .. } => "MigrationError",
        }
    }
}

/// Formats an SDK error with its whole source chain (the `Display` of `SdkError` alone
/// says only "service error").
pub fn display_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}
