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
    http_body(method, url, "")
}

/// Arms a fault of the realism proxy (`POST /_realism/inject`), e.g.
/// `{"service": "transcribe", "operation": "StartTranscriptionJob", "code":
/// "BadRequestException", "message": "...", "match": "<something only this test sends>",
/// "count": 1}`. Use `match` so that no other test's call meets it.
pub fn realism_inject(injection: &serde_json::Value) {
    let url = format!("{}/_realism/inject", ministack_url());
    match http_body("POST", &url, &injection.to_string()) {
        Ok((200, _)) => {}
        other => panic!(
            "the realism proxy did not take the injection at {url} ({other:?}); the \
             integration tests need ministack behind it (scripts/local-aws.sh start ministack)"
        ),
    }
}

/// [`http`] with a (JSON) body.
pub fn http_body(method: &str, url: &str, body: &str) -> std::io::Result<(u16, String)> {
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
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
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

/// Creates a `provided.al2023` function from a built zip in ministack, with a role of its own
/// allowed `statements` (the realism proxy in front of ministack evaluates every call the
/// function makes against that role), and waits until it has left `Pending`, as the zip
/// tests of the handlers need.
#[allow(clippy::too_many_arguments)]
pub async fn deploy_zip(
    cfg: &aws_config::SdkConfig,
    name: &str,
    zip: &std::path::Path,
    environment: aws_sdk_lambda::types::Environment,
    memory_mb: i32,
    timeout_s: i32,
    statements: serde_json::Value,
) {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime, State};
    let iam = aws_sdk_iam::Client::new(cfg);
    let lambda = aws_sdk_lambda::Client::new(cfg);
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("CreateRole")
        .role
        .expect("a role")
        .arn;
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
    iam.put_role_policy()
        .role_name(name)
        .policy_name("test")
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("PutRolePolicy");
    let code = Blob::new(std::fs::read(zip).unwrap());
    // A role made moments ago is refused until IAM has propagated it ("The role defined for
    // the function cannot be assumed by Lambda"), on AWS and through the realism proxy.
    let mut attempts = 0;
    loop {
        let created = lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(&role)
            .timeout(timeout_s)
            .memory_size(memory_mb)
            .environment(environment.clone())
            .code(FunctionCode::builder().zip_file(code.clone()).build())
            .send()
            .await;
        match created {
            Ok(_) => break,
            Err(e)
                if attempts < 60
                    && e.as_service_error().is_some_and(|s| {
                        s.is_invalid_parameter_value_exception()
                            && s.meta()
                                .message()
                                .is_some_and(|m| m.contains("cannot be assumed"))
                    }) =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("CreateFunction: {e:?}"),
        }
    }
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
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One request a [`StubServer`] received.
#[derive(Debug, Clone)]
pub struct StubRequest {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StubRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`StubServer`] answers.
#[derive(Debug, Clone)]
pub struct StubReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StubReply {
    /// An AWS JSON-protocol error (`awsJson1_1`, e.g. Transcribe): `__type` in the body and
    /// `x-amzn-ErrorType` as AWS sends them.
    pub fn aws_json_error(status: u16, code: &str, message: &str) -> Self {
        StubReply {
            status,
            headers: vec![
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                (
                    "x-amzn-ErrorType".into(),
                    format!("{code}:http://internal.amazon.com/coral/com.amazonaws.transcribe/"),
                ),
                (
                    "x-amzn-RequestId".into(),
                    "7d2a5c1e-1111-2222-3333-444455556666".into(),
                ),
            ],
            body: serde_json::json!({ "__type": code, "Message": message })
                .to_string()
                .into_bytes(),
        }
    }

    /// An AWS REST-JSON error (e.g. SES v2): the code in `x-amzn-ErrorType`, the message in
    /// the body.
    pub fn rest_json_error(status: u16, code: &str, message: &str) -> Self {
        StubReply {
            status,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("x-amzn-ErrorType".into(), code.into()),
                (
                    "x-amzn-RequestId".into(),
                    "7d2a5c1e-1111-2222-3333-444455556666".into(),
                ),
            ],
            body: serde_json::json!({ "message": message })
                .to_string()
                .into_bytes(),
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Self {
        StubReply {
            status,
            headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
            body: body.to_string().into_bytes(),
        }
    }
}

/// A tiny HTTP/1.1 server on `127.0.0.1:0` that stands in for an AWS endpoint in unit tests
/// (point the SDK client's `endpoint_url` at [`StubServer::url`]): it records each request
/// and answers with what `respond(n, request)` returns (`n` counts from 0), one request per
/// connection. No network beyond loopback, no emulator.
pub struct StubServer {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<StubRequest>>>,
}

impl StubServer {
    pub fn start(respond: impl Fn(usize, &StubRequest) -> StubReply + Send + 'static) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                let Some(req) = read_stub_request(&mut sock) else {
                    continue;
                };
                let n = {
                    let mut r = recorded.lock().unwrap();
                    r.push(req.clone());
                    r.len() - 1
                };
                let reply = respond(n, &req);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status,
                    reply.body.len()
                );
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = sock.write_all(head.as_bytes());
                let _ = sock.write_all(&reply.body);
                let _ = sock.flush();
            }
        });
        StubServer { url, requests }
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_stub_request(sock: &mut TcpStream) -> Option<StubRequest> {
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(StubRequest {
        method,
        target,
        headers,
        body,
    })
}

/// AWS configuration for a [`StubServer`]: static credentials, us-east-1, its URL as the
/// endpoint, and the SDK's standard retries with millisecond backoff (so that a test of the
/// retry behaviour does not sleep).
pub fn stub_config(url: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("AKIDSTUB", "stub-secret", None, None, "stub"),
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        )
        .build()
}

/// A MariaDB user whose password lives in a Secrets Manager secret on ministack, in the shape
/// of an RDS-managed master user secret; [`SecretUser::rotate`] changes it as RDS rotation does.
pub struct SecretUser {
    pub user: String,
    pub arn: String,
    secrets: aws_sdk_secretsmanager::Client,
}

/// Runs one statement as the local MariaDB's root.
pub async fn as_root(sql: &str) {
    let mut c = sqlx::mysql::MySqlConnection::connect_with(&server_options())
        .await
        .expect("root connection");
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn secret_json(user: &str, password: &str) -> String {
    serde_json::json!({ "username": user, "password": password, "engine": "mysql" }).to_string()
}

impl SecretUser {
    /// A user `{prefix}{n}` with `password`, allowed everything on `database`, and its secret.
    pub async fn create(
        sdk: &aws_config::SdkConfig,
        prefix: &str,
        database: &str,
        password: &str,
    ) -> SecretUser {
        let user = format!("{prefix}{}", std::process::id() % 100_000);
        as_root(&format!("DROP USER IF EXISTS '{user}'@'%'")).await;
        as_root(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ))
        .await;
        as_root(&format!(
            "GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'"
        ))
        .await;
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let arn = secrets
            .create_secret()
            .name(unique(prefix))
            .secret_string(secret_json(&user, password))
            .send()
            .await
            .expect("CreateSecret")
            .arn()
            .expect("the secret's ARN")
            .to_string();
        SecretUser { user, arn, secrets }
    }

    /// The functions' configuration for `database` through this secret. The local MariaDB has
    /// no TLS; on AWS the secret means VerifyIdentity against the RDS CAs.
    pub fn db_config(&self, database: &str) -> crate::config::DbConfig {
        let server = server_options();
        crate::config::DbConfig {
            host: server.get_host().to_string(),
            port: server.get_port(),
            database: database.to_owned(),
            credentials: crate::config::DbCredentials::Secret {
                arn: self.arn.clone(),
            },
            ssl_mode: Some("disabled".into()),
            ssl_ca: None,
        }
    }

    /// Changes the password as RDS rotation does: in the database, then in the secret; then
    /// closes the user's sessions (an idle timeout, a new Lambda environment), so that the next
    /// operation has to log in again.
    pub async fn rotate(&self, password: &str) {
        let user = &self.user;
        as_root(&format!(
            "ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ))
        .await;
        self.secrets
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(secret_json(user, password))
            .send()
            .await
            .expect("PutSecretValue");
        self.kill_sessions().await;
    }

    /// Closes every session of the user.
    pub async fn kill_sessions(&self) {
        let mut c = sqlx::mysql::MySqlConnection::connect_with(&server_options())
            .await
            .expect("root connection");
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?")
                .bind(&self.user)
                .fetch_all(&mut c)
                .await
                .expect("the user's sessions");
        for id in ids {
            let _ = sqlx::query(AssertSqlSafe(format!("KILL CONNECTION {id}")))
                .execute(&mut c)
                .await;
        }
    }

    /// Drops the user and deletes the secret.
    pub async fn remove(self) {
        as_root(&format!("DROP USER IF EXISTS '{}'@'%'", self.user)).await;
        let _ = self
            .secrets
            .delete_secret()
            .secret_id(&self.arn)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
}
