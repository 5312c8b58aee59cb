//! Helpers for the integration tests of the handler crates (feature `testing`).
//!
//! Integration tests run when `STT_INTEGRATION=1` (set by `make test`). They then need
//! ministack on `STT_MINISTACK_URL` (default `http://127.0.0.1:4566`) and MariaDB/MySQL on
//! `STT_TEST_DB_URL` (default `mysql://root@127.0.0.1:3306`), and fail with a message that
//! says what to start when either is missing. Without the variable they print why they
//! skipped and pass.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::{AssertSqlSafe, Connection};

pub fn ministack_url() -> String {
    std::env::var("STT_MINISTACK_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

pub fn db_url() -> String {
    std::env::var("STT_TEST_DB_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// True when integration tests should run; prints why not otherwise.
pub fn integration_enabled(test: &str) -> bool {
    let on = std::env::var("STT_INTEGRATION")
        .map(|v| v == "1")
        .unwrap_or(false);
    if !on {
        eprintln!(
            "{test}: integration test not run: set STT_INTEGRATION=1 (make test does) with \
             ministack behind the realism proxy on {} (scripts/local-aws.sh start ministack) and \
             MariaDB on {}",
            ministack_url(),
            db_url()
        );
    }
    on
}

/// A unique lowercase name for buckets, databases and functions of one test.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A minimal HTTP/1.1 request to the emulator (no client library needed).
pub fn http(method: &str, url: &str) -> std::io::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// URLs"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Panics with what to start when ministack or the database is not reachable.
pub async fn require_services() {
    let health = format!("{}/_ministack/health", ministack_url());
    match http("GET", &health) {
        Ok((200, _)) => {}
        other => panic!(
            "ministack is not answering at {health} ({other:?}). Start it with: \
             BIND_HOST=127.0.0.1 GATEWAY_PORT=4566 .venv/bin/ministack \
             (or `make local`), or unset STT_INTEGRATION"
        ),
    }
    let opts = server_options();
    if let Err(e) = sqlx::mysql::MySqlConnection::connect_with(&opts).await {
        panic!(
            "MariaDB/MySQL is not reachable at {} ({e}). Start it with: \
             start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd, \
             or unset STT_INTEGRATION",
            db_url()
        );
    }
}

pub fn server_options() -> MySqlConnectOptions {
    MySqlConnectOptions::from_str(&db_url()).expect("STT_TEST_DB_URL is a MySQL URL")
}

/// A test database of its own, migrated; returns its name and a pool.
pub async fn fresh_database(prefix: &str) -> (String, MySqlPool) {
    let name = unique(prefix).replace('-', "_");
    crate::migrate::run(&server_options(), &name)
        .await
        .unwrap_or_else(|e| panic!("migrating test database {name}: {e}"));
    let pool = crate::db::pool(server_options().database(&name).charset("utf8mb4"));
    (name, pool)
}

pub async fn drop_database(name: &str) {
    if let Ok(mut c) = sqlx::mysql::MySqlConnection::connect_with(&server_options()).await {
        let _ = sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")))
            .execute(&mut c)
            .await;
    }
}

/// AWS configuration for ministack with the test credentials. The realism proxy in front of
/// it throttles and drops calls in test mode: retried as `provision` retries them.
pub async fn ministack_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
        .endpoint_url(ministack_url())
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

pub fn s3_client(cfg: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(cfg)
            .force_path_style(true)
            .build(),
    )
}

/// Creates a uniquely named bucket.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    let name = unique(prefix);
    s3.create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating bucket {name}: {e:?}"));
    name
}

/// Lists the keys of a bucket.
pub async fn list_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Creates a `provided.al2023` function from a built zip in ministack and waits until it
/// has left `Pending`, as the zip tests of the handlers need.
pub async fn deploy_zip(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    zip: &std::path::Path,
    environment: aws_sdk_lambda::types::Environment,
    memory_mb: i32,
    timeout_s: i32,
) {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime, State};
    lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::000000000000:role/x")
        .timeout(timeout_s)
        .memory_size(memory_mb)
        .environment(environment)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(std::fs::read(zip).unwrap()))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction");
    for _ in 0..60 {
        let f = lambda
            .get_function()
            .function_name(name)
            .send()
            .await
            .unwrap();
        if f.configuration().and_then(|c| c.state()) != Some(&State::Pending) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
