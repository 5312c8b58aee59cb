//! Shared code of the speech-to-text Lambda handlers.
//!
//! Every handler crate (`file-upload`, `audio-transcribe`, `save-text`, `send-email`,
//! `db-migrate`) builds its `Deps` from the pieces here: configuration read from the
//! environment, the MySQL pool (credentials from Secrets Manager on AWS, TLS verified against
//! the bundled RDS CAs, re-read when RDS rotates them), the upload repository, the object
//! store, S3 key decoding, address masking for logs and errors, and one error type that maps
//! onto the Lambda `Diagnostic`.

pub mod app_user;
pub mod audio;
pub mod config;
pub mod cors;
pub mod db;
pub mod error;
pub mod events;
pub mod keys;
pub mod languages;
pub mod migrate;
pub mod privacy;
pub mod recipients;
pub mod repo;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result};

/// Installs the plain-text tracing subscriber used by every function (`RUST_LOG`, default
/// `info`). CloudWatch adds timestamps itself, and shows no colours, so neither is printed.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// Loads the shared AWS configuration once per cold start. It honours `AWS_ENDPOINT_URL`
/// (and the per-service variants), which is how the functions reach ministack locally.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// True when an endpoint override points the SDK at an emulator. S3 then needs path-style
/// addressing (`http://127.0.0.1:4566/bucket/key`), which AWS itself does not.
pub fn endpoint_overridden() -> bool {
    ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|v| std::env::var(v).map(|s| !s.is_empty()).unwrap_or(false))
}

/// Builds an S3 client from the shared configuration (path-style against emulators).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(endpoint_overridden())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
