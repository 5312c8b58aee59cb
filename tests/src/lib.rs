//! Harness for the system tests: the local emulator, a throw-away stack per test, the
//! `provision` binary, and SDK clients to look at what it built.
//!
//! Needs: ministack installed in `.venv` (`make deps`); it is started here if it is not
//! running. The `provision` binary must be built (`make build`, or `cargo build --workspace`).

pub mod least_privilege;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// A local AWS emulator the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    /// The local target: runs Lambda zips, serves CloudFront, fires notifications.
    Ministack,
    /// A second, independent control-plane emulator.
    Moto,
}

impl Emulator {
    /// Ministack's proxy on 4566, or `STT_MINISTACK_ENDPOINT`: a test binary that changes the
    /// realism layer's settings for every caller gets an instance of its own
    /// (`scripts/run-tests.py --own-ministack`), so that it runs beside the others.
    pub fn endpoint(self) -> &'static str {
        static MINISTACK: OnceLock<String> = OnceLock::new();
        match self {
            Emulator::Ministack => MINISTACK.get_or_init(|| {
                std::env::var("STT_MINISTACK_ENDPOINT")
                    .unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned())
            }),
            Emulator::Moto => "http://127.0.0.1:5000",
        }
    }

    /// The account id the emulator answers with.
    pub fn account(self) -> &'static str {
        match self {
            Emulator::Ministack => "000000000000",
            Emulator::Moto => "123456789012",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Emulator::Ministack => "ministack",
            Emulator::Moto => "moto",
        }
    }

    /// Starts the emulator (once per test binary) if nothing answers on its port.
    pub fn ensure(self) {
        static MINISTACK: Once = Once::new();
        static MOTO: Once = Once::new();
        let once = if self == Emulator::Ministack {
            &MINISTACK
        } else {
            &MOTO
        };
        once.call_once(|| {
            let address = self.endpoint().trim_start_matches("http://");
            if TcpStream::connect(address).is_ok() {
                return;
            }
            assert!(
                self != Emulator::Ministack || std::env::var_os("STT_MINISTACK_ENDPOINT").is_none(),
                "nothing answers on STT_MINISTACK_ENDPOINT ({address}): start that instance first \
                 (see `make test`)"
            );
            let status = Command::new(root().join("scripts/local-aws.sh"))
                .args(["start", self.name()])
                .status()
                .expect("run scripts/local-aws.sh");
            assert!(
                status.success(),
                "could not start {}: run `make deps` first (installs it into a project virtualenv)",
                self.name()
            );
        });
    }
}

impl Emulator {
    /// moto, started if needed, with its Lambda in the "simple" mode: without Docker it runs
    /// no function code, and an invocation answers with its payload (docs/realism.md).
    pub fn ensure_without_lambda_code(self) {
        self.ensure();
        let (status, _, body) = http_request(
            "POST",
            &format!("{}/moto-api/config", self.endpoint()),
            &[("Content-Type", "application/json")],
            br#"{"lambda": {"use_docker": false}}"#,
        );
        assert!(
            (200..300).contains(&status),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repo")
        .to_path_buf()
}

/// The `provision` binary of the same build as this test.
pub fn provision_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PROVISION_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/provision
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("provision");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p provisioner`",
        bin.display()
    );
    bin
}

/// A stack of its own for one test, so tests run side by side on one emulator.
pub struct TestStack {
    pub name: String,
    pub dir: PathBuf,
    pub file: PathBuf,
    pub emulator: Emulator,
}

impl TestStack {
    /// `name` must be unique among the tests (3 to 24 lowercase letters, digits, hyphens).
    pub fn new(name: &str) -> TestStack {
        Self::with_yaml(name, "")
    }

    /// With extra YAML put under `stt.website`.
    pub fn with_yaml(name: &str, website_extra: &str) -> TestStack {
        Self::build(
            name,
            Emulator::Ministack,
            &format!("  website:\n    source_dir: site\n{website_extra}"),
        )
    }

    /// On `emulator`, with `stt_yaml` as the `stt:` section (each line indented by two
    /// spaces). The repository's site pages are copied next to the stack file, in `site/`.
    pub fn build(name: &str, emulator: Emulator, stt_yaml: &str) -> TestStack {
        Self::with_sections(name, emulator, &format!("stt:\n{stt_yaml}"))
    }

    /// With `sections` (top-level YAML: `stt:`, `vod:`) after the `stack:` section.
    pub fn with_sections(name: &str, emulator: Emulator, sections: &str) -> TestStack {
        emulator.ensure();
        let dir =
            std::env::temp_dir().join(format!("provision-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let site = dir.join("site");
        std::fs::create_dir_all(&site).unwrap();
        for entry in std::fs::read_dir(root().join("site/stt")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, site.join(path.file_name().unwrap())).unwrap();
            }
        }
        let file = dir.join("stack.yaml");
        let yaml = format!(
            "stack:\n  name: {name}\n  region: us-east-1\n  tags:\n    test: \"yes\"\n{sections}"
        );
        std::fs::write(&file, yaml).unwrap();
        let stack = TestStack {
            name: name.to_owned(),
            dir,
            file,
            emulator,
        };
        // A clean start even if an earlier run of this test died half-way (its database
        // protected from deletion, as on AWS by default, included).
        let cleanup = stack.run(&[
            "down",
            "--delete-data",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ]);
        assert_eq!(
            cleanup.code(),
            0,
            "cleaning up after an earlier run failed:\n{}",
            cleanup.stdout()
        );
        stack
    }

    /// Runs `provision --local --stack <file> <args>` against the stack's emulator.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// On ministack with `--local`; on moto as against AWS (`AWS_ENDPOINT_URL` and
    /// credentials from the environment), so the code paths for real AWS run too.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut env = env.to_vec();
        env.push(("AWS_ENDPOINT_URL", self.emulator.endpoint()));
        let output = command(&self.file, args, &env, self.emulator == Emulator::Ministack)
            .output()
            .expect("run provision");
        Run(output)
    }

    /// Rewrites part of the stack file.
    pub fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.file).unwrap();
        assert!(text.contains(from), "{from:?} not in {text}");
        std::fs::write(&self.file, text.replace(from, to)).unwrap();
    }

    /// Starts `provision up` without waiting for it.
    pub fn spawn_up(&self, env: &[(&str, &str)]) -> std::process::Child {
        let mut env = env.to_vec();
        env.push(("AWS_ENDPOINT_URL", self.emulator.endpoint()));
        command(
            &self.file,
            &["up"],
            &env,
            self.emulator == Emulator::Ministack,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn provision")
    }

    pub fn bucket(&self) -> String {
        format!("{}-site-{}", self.name, self.emulator.account())
    }

    pub fn oac_name(&self) -> String {
        format!("{}-stt-site", self.name)
    }

    /// The name of the site's response headers policy.
    pub fn headers_policy_name(&self) -> String {
        format!("{}-stt-site-headers", self.name)
    }
}

impl Drop for TestStack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn command(file: &Path, args: &[&str], env: &[(&str, &str)], local: bool) -> Command {
    let mut cmd = Command::new(provision_bin());
    if local {
        cmd.arg("--local");
    }
    cmd.arg("--stack").arg(file).args(args);
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_SESSION_TOKEN");
    cmd.env("AWS_ENDPOINT_URL", Emulator::Ministack.endpoint())
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn");
    // Keep the machine's AWS settings out of the tests.
    cmd.env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Fails the test, saying what to run, unless these handlers' zips are built.
pub fn require_zips(handlers: &[&str]) {
    for handler in handlers {
        assert!(
            root()
                .join(format!("target/lambda/{handler}/bootstrap.zip"))
                .exists(),
            "build the zips first: make zips"
        );
    }
}

/// The repository's `stack.yaml` from `stt:` on, with absolute paths, and a database, a VPC
/// range and a sender of the test's own (a stack deletes the SES identity it made, and the
/// other system tests run beside it).
pub fn repository_sections(database: &str, cidr: &str, sender: &str) -> String {
    let yaml = std::fs::read_to_string(root().join("stack.yaml")).unwrap();
    let start = yaml.find("\nstt:").expect("stack.yaml has an stt: section");
    let root = root();
    yaml[start + 1..]
        .replace(
            "source_dir: site/",
            &format!("source_dir: {}/site/", root.display()),
        )
        .replace(
            "zips_dir: target/lambda",
            &format!("zips_dir: {}/target/lambda", root.display()),
        )
        .replace("cidr: 10.20.0.0/16", &format!("cidr: {cidr}"))
        .replace("database_name: stt", &format!("database_name: {database}"))
        .replace("transcripts@example.com", sender)
}

pub fn run_provision(file: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = command(file, args, env, true)
        .output()
        .expect("run provision");
    Run(output)
}

/// A resource's line in a JSON report.
pub fn line<'a>(report: &'a serde_json::Value, resource: &str) -> &'a serde_json::Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == resource)
        .unwrap_or_else(|| panic!("{resource} not in {report:#}"))
}

/// What one run of `provision` did.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// The JSON report (the command must have been run with `--output json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout(), self.stderr()))
    }
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// SDK clients pointed at an emulator, to look at and tamper with what `provision` built.
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub rds: aws_sdk_rds::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Aws {
    pub async fn new() -> Aws {
        Self::on(Emulator::Ministack).await
    }

    pub async fn on(emulator: Emulator) -> Aws {
        // The realism layer throttles and drops calls in test mode: retry as `provision` does.
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
            .endpoint_url(emulator.endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        Aws {
            s3,
            cloudformation: aws_sdk_cloudformation::Client::new(&config),
            cloudfront: aws_sdk_cloudfront::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            apigateway: aws_sdk_apigateway::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
        }
    }

    /// Deletes every snapshot of a database, so that a test starts from nothing (moto names
    /// automated snapshots by the minute, and a rebuilt instance would collide with them).
    pub async fn purge_snapshots(&self, db_identifier: &str) {
        let out = self
            .rds
            .describe_db_snapshots()
            .db_instance_identifier(db_identifier)
            .send()
            .await
            .unwrap();
        for snapshot in out.db_snapshots() {
            if let Some(id) = snapshot.db_snapshot_identifier() {
                let _ = self
                    .rds
                    .delete_db_snapshot()
                    .db_snapshot_identifier(id)
                    .send()
                    .await;
            }
        }
    }

    pub async fn bucket_exists(&self, name: &str) -> bool {
        let out = self.s3.list_buckets().send().await.unwrap();
        out.buckets().iter().any(|b| b.name() == Some(name))
    }

    /// Distributions tagged as the stack's.
    pub async fn distributions_of(&self, stack: &str) -> Vec<String> {
        let list = self.cloudfront.list_distributions().send().await.unwrap();
        let mut ids = Vec::new();
        for d in list
            .distribution_list()
            .map(|l| l.items())
            .unwrap_or_default()
        {
            // Tests run side by side: another test may delete its distribution meanwhile.
            let Ok(tags) = self
                .cloudfront
                .list_tags_for_resource()
                .resource(d.arn())
                .send()
                .await
            else {
                continue;
            };
            let owned = tags
                .tags()
                .map(|t| t.items())
                .unwrap_or_default()
                .iter()
                .any(|t| t.key() == "provision:stack" && t.value() == Some(stack));
            if owned {
                ids.push(d.id().to_owned());
            }
        }
        ids
    }

    pub async fn oacs_named(&self, name: &str) -> usize {
        let list = self
            .cloudfront
            .list_origin_access_controls()
            .send()
            .await
            .unwrap();
        list.origin_access_control_list()
            .map(|l| l.items())
            .unwrap_or_default()
            .iter()
            .filter(|o| o.name() == name)
            .count()
    }

    /// The account's custom response headers policies: (id, name, config).
    pub async fn headers_policies(
        &self,
    ) -> Vec<(
        String,
        String,
        aws_sdk_cloudfront::types::ResponseHeadersPolicyConfig,
    )> {
        let list = match self
            .cloudfront
            .list_response_headers_policies()
            .r#type(aws_sdk_cloudfront::types::ResponseHeadersPolicyType::Custom)
            .send()
            .await
        {
            Ok(list) => list,
            // moto has no response headers policies at all (its answer: 404, an HTML page).
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => return vec![],
            Err(e) => panic!("ListResponseHeadersPolicies: {e:?}"),
        };
        list.response_headers_policy_list()
            .map(|l| l.items())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.response_headers_policy())
            .filter_map(|p| {
                let cfg = p.response_headers_policy_config()?;
                Some((p.id().to_owned(), cfg.name().to_owned(), cfg.clone()))
            })
            .collect()
    }

    pub async fn headers_policies_named(&self, name: &str) -> usize {
        self.headers_policies()
            .await
            .iter()
            .filter(|(_, n, _)| n == name)
            .count()
    }
}

impl Aws {
    /// The names of the log groups that start with `prefix`, every page.
    pub async fn log_groups(&self, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .logs
                .describe_log_groups()
                .log_group_name_prefix(prefix)
                .set_next_token(token.take())
                .send()
                .await
                .unwrap();
            names.extend(
                out.log_groups()
                    .iter()
                    .filter_map(|g| g.log_group_name().map(str::to_owned)),
            );
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return names,
            }
        }
    }
}

/// GET through the emulator's CloudFront data plane: (status, body).
pub fn http_get(url: &str) -> (u16, String) {
    let (status, _, body) = http_request("GET", url, &[], &[]);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One HTTP/1.0 request to a URL on this machine: (status, headers lower-cased, body).
/// `*.localhost` host names (the emulator's CloudFront and API hosts) are sent to loopback,
/// as browsers do.
pub fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let port = host.rsplit_once(':').map(|(_, p)| p).unwrap_or("80");
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

/// A `multipart/form-data` body of text fields and one file; returns (content type, body).
pub fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "----provision-test-boundary-7d1c";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    let (name, filename, bytes) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// An upload as the page makes it: the create request to the upload API (`api_url`), then the
/// file sent straight to S3 as the answer says (the presigned form with the file last, or each
/// part to its presigned URL and `complete`). Returns the API's answer to the create request;
/// panics when any step is refused.
pub fn direct_upload(
    api_url: &str,
    origin: &str,
    request: serde_json::Value,
    audio: &[u8],
) -> serde_json::Value {
    let (status, answer) = create_upload(api_url, origin, &request);
    assert_eq!(status, 201, "{request}: {answer}");
    let upload = &answer["upload"];
    match upload["method"].as_str() {
        Some("POST") => {
            let fields: Vec<(&str, &str)> = upload["fields"]
                .as_object()
                .expect("fields")
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect();
            let name = request["filename"].as_str().unwrap_or("audio");
            let (content_type, body) = multipart(&fields, ("file", name, audio));
            let (status, _, reply) = http_request(
                "POST",
                upload["url"].as_str().unwrap(),
                &[("Content-Type", &content_type), ("Origin", origin)],
                &body,
            );
            assert_eq!(
                status,
                204,
                "S3 refused the form: {}",
                String::from_utf8_lossy(&reply)
            );
        }
        Some("MULTIPART") => {
            let mut start = 0usize;
            for part in upload["parts"].as_array().unwrap() {
                let len = part["size"].as_u64().unwrap() as usize;
                let (status, _, reply) = http_request(
                    "PUT",
                    part["url"].as_str().unwrap(),
                    &[("Origin", origin)],
                    &audio[start..start + len],
                );
                assert_eq!(
                    status,
                    200,
                    "S3 refused a part: {}",
                    String::from_utf8_lossy(&reply)
                );
                start += len;
            }
            let (status, state) = upload_status(api_url, origin, &answer, Some("complete"));
            assert_eq!(
                (status, state["state"].as_str()),
                (200, Some("uploaded")),
                "{state}"
            );
        }
        other => panic!("no upload method in {answer}: {other:?}"),
    }
    answer
}

/// The upload API's answer to a create request (the JSON the page posts).
pub fn create_upload(
    api_url: &str,
    origin: &str,
    request: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let (status, _, answer) = http_request(
        "POST",
        api_url,
        &[("Content-Type", "application/json"), ("Origin", origin)],
        request.to_string().as_bytes(),
    );
    (status, serde_json::from_slice(&answer).unwrap_or_default())
}

/// The upload API's answer about an upload (`action`: `complete`, `abort` or none to read).
pub fn upload_status(
    api_url: &str,
    origin: &str,
    created: &serde_json::Value,
    action: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut body = serde_json::json!({"uploadId": created["uploadId"], "token": created["token"]});
    if let Some(action) = action {
        body["action"] = action.into();
    }
    let (status, _, answer) = http_request(
        "POST",
        &api_url.replace("/file-upload", "/upload-status"),
        &[("Content-Type", "application/json"), ("Origin", origin)],
        body.to_string().as_bytes(),
    );
    (status, serde_json::from_slice(&answer).unwrap_or_default())
}

/// Drops a database of the machine's MariaDB: the local target's RDS instance is that server,
/// and deleting the instance leaves its databases, so a test starts from none.
pub fn mysql_drop_database(database: &str) {
    let status = Command::new("mysql")
        .args(["--host=127.0.0.1", "--user=root"])
        .arg(format!("--execute=DROP DATABASE IF EXISTS `{database}`"))
        .status()
        .expect("run the mysql client");
    assert!(status.success(), "could not drop {database}");
}

/// Rows of a query against the machine's MariaDB (the local target's database), by the
/// `mariadb` client: one `Vec` of tab-separated columns per row.
pub fn mysql_rows(database: &str, sql: &str) -> Vec<Vec<String>> {
    let out = Command::new("mysql")
        .args([
            "--host=127.0.0.1",
            "--user=root",
            "--batch",
            "--skip-column-names",
        ])
        .arg(format!("--database={database}"))
        .arg(format!("--execute={sql}"))
        .output()
        .expect("run the mysql client");
    assert!(
        out.status.success(),
        "mysql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Runs a Node script of `tests/browser/` (Playwright driving Debian's Chromium); screenshots
/// go to `tests/artifacts/`.
pub fn browser_script(script: &str, args: &[&str]) -> Run {
    let dir = root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "install the browser test driver first: make browser-deps (npm ci in tests/browser)"
    );
    let output = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .env("ARTIFACTS_DIR", root().join("tests/artifacts"))
        .output()
        .expect("run node");
    Run(output)
}

/// Waits until `check` holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// Resources of every kind `provision` makes that carry the stack's name or ownership tag, as
/// `kind name` lines: what `down` must leave empty.
impl Aws {
    pub async fn owned_by(&self, stack: &str) -> Vec<String> {
        let mut found = Vec::new();
        let prefix = format!("{stack}-");
        let owner = || {
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:provision:stack")
                .values(stack)
                .build()
        };
        // Checked on the answer too: an emulator may ignore a filter.
        let ours = |tags: &[aws_sdk_ec2::types::Tag]| {
            tags.iter()
                .any(|t| t.key() == Some("provision:stack") && t.value() == Some(stack))
        };
        for b in self.s3.list_buckets().send().await.unwrap().buckets() {
            if b.name().is_some_and(|n| n.starts_with(&prefix)) {
                found.push(format!("bucket {}", b.name().unwrap()));
            }
        }
        for id in self.distributions_of(stack).await {
            found.push(format!("distribution {id}"));
        }
        let oacs = self
            .cloudfront
            .list_origin_access_controls()
            .send()
            .await
            .unwrap();
        for o in oacs
            .origin_access_control_list()
            .map(|l| l.items())
            .unwrap_or_default()
        {
            if o.name().starts_with(&prefix) {
                found.push(format!("origin_access_control {}", o.name()));
            }
        }
        let secrets = self
            .secrets
            .list_secrets()
            .include_planned_deletion(true)
            .send()
            .await
            .unwrap();
        for secret in secrets.secret_list() {
            let name = secret.name().unwrap_or_default();
            if name.starts_with(&format!("{stack}/")) {
                found.push(format!("secret {name}"));
            }
        }
        for (_, name, _) in self.headers_policies().await {
            if name.starts_with(&prefix) {
                found.push(format!("response_headers_policy {name}"));
            }
        }
        for r in self.iam.list_roles().send().await.unwrap().roles() {
            if r.role_name().starts_with(&prefix) {
                found.push(format!("role {}", r.role_name()));
            }
        }
        for f in self
            .lambda
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
        {
            if f.function_name().is_some_and(|n| n.starts_with(&prefix)) {
                found.push(format!("function {}", f.function_name().unwrap()));
            }
        }
        for v in self
            .ec2
            .describe_vpcs()
            .filters(owner())
            .send()
            .await
            .unwrap()
            .vpcs()
        {
            if !ours(v.tags()) {
                continue;
            }
            found.push(format!("vpc {}", v.vpc_id().unwrap_or_default()));
        }
        for s in self
            .ec2
            .describe_subnets()
            .filters(owner())
            .send()
            .await
            .unwrap()
            .subnets()
        {
            if !ours(s.tags()) {
                continue;
            }
            found.push(format!("subnet {}", s.subnet_id().unwrap_or_default()));
        }
        let groups = self
            .ec2
            .describe_security_groups()
            .filters(owner())
            .send()
            .await
            .unwrap();
        for g in groups.security_groups().iter().filter(|g| ours(g.tags())) {
            found.push(format!(
                "security_group {}",
                g.group_id().unwrap_or_default()
            ));
        }
        let endpoints = self
            .ec2
            .describe_vpc_endpoints()
            .filters(owner())
            .send()
            .await
            .unwrap();
        for e in endpoints.vpc_endpoints().iter().filter(|e| ours(e.tags())) {
            let state = e
                .state()
                .map(|s| s.as_str().to_ascii_lowercase())
                .unwrap_or_default();
            if state != "deleted" {
                found.push(format!(
                    "vpc_endpoint {}",
                    e.vpc_endpoint_id().unwrap_or_default()
                ));
            }
        }
        let tables = self
            .ec2
            .describe_route_tables()
            .filters(owner())
            .send()
            .await
            .unwrap();
        for t in tables.route_tables().iter().filter(|t| ours(t.tags())) {
            found.push(format!(
                "route_table {}",
                t.route_table_id().unwrap_or_default()
            ));
        }
        let dbs = self.rds.describe_db_instances().send().await.unwrap();
        for d in dbs.db_instances() {
            if d.db_instance_identifier()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                found.push(format!(
                    "db_instance {}",
                    d.db_instance_identifier().unwrap()
                ));
            }
        }
        let groups = self.rds.describe_db_subnet_groups().send().await.unwrap();
        for g in groups.db_subnet_groups() {
            if g.db_subnet_group_name()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                found.push(format!(
                    "db_subnet_group {}",
                    g.db_subnet_group_name().unwrap()
                ));
            }
        }
        for api in self
            .apigateway
            .get_rest_apis()
            .send()
            .await
            .unwrap()
            .items()
        {
            if api.name().is_some_and(|n| n.starts_with(&prefix)) {
                found.push(format!("rest_api {}", api.name().unwrap()));
            }
        }
        let rules = self
            .events
            .list_rules()
            .name_prefix(&prefix)
            .send()
            .await
            .unwrap();
        for r in rules.rules() {
            found.push(format!("event_rule {}", r.name().unwrap_or_default()));
        }
        for g in self.log_groups(&format!("/aws/lambda/{prefix}")).await {
            found.push(format!("log_group {g}"));
        }
        found
    }
}

/// The realism proxy in front of an emulator (tests/realism, docs/realism.md): its settings,
/// its log of the calls it saw, and errors it is asked to answer with.
pub struct Realism {
    base: String,
}

impl Realism {
    pub fn on(emulator: Emulator) -> Realism {
        emulator.ensure();
        Realism {
            base: format!("{}/_realism", emulator.endpoint()),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> serde_json::Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, _, answer) = http_request(
            method,
            &format!("{}/{path}", self.base),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "realism {method} {path}: {}",
            String::from_utf8_lossy(&answer)
        );
        serde_json::from_slice(&answer).expect("the realism proxy answers JSON")
    }

    pub fn config(&self) -> serde_json::Value {
        self.call("GET", "config", None)
    }

    /// Changes settings (a partial update) until the guard is dropped, then puts back what was.
    pub fn set(&self, changes: serde_json::Value) -> RealismSettings<'_> {
        let before = self.config();
        let keep = [
            "mode",
            "fault_rate",
            "time_scale",
            "behaviours",
            "durations",
            "scales",
        ];
        let restore = serde_json::Value::Object(
            keep.iter()
                .map(|k| {
                    let value = match *k {
                        // The effective values: put back what was chosen, not the defaults.
                        "fault_rate" => before["fault_rate_set"].clone(),
                        "time_scale" => before["time_scale_set"].clone(),
                        _ => before[*k].clone(),
                    };
                    (k.to_string(), value)
                })
                .collect(),
        );
        self.call("PUT", "config", Some(&changes));
        RealismSettings {
            realism: self,
            restore,
        }
    }

    /// The sequence number of the last call the proxy logged.
    pub fn last_seq(&self) -> u64 {
        self.call("GET", "health", None)["seq"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The calls logged after `since`, filtered by `query` (`operation=Invoke&verdict=...`).
    pub fn calls(&self, since: u64, query: &str) -> Vec<serde_json::Value> {
        let path = format!("calls?since={since}&{query}");
        self.call("GET", &path, None)["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The next calls matching `spec` (service, operation, match, ...) are answered with its error.
    pub fn inject(&self, spec: serde_json::Value) {
        self.call("POST", "inject", Some(&spec));
    }
}

/// Settings of the realism proxy in force until dropped.
pub struct RealismSettings<'a> {
    realism: &'a Realism,
    restore: serde_json::Value,
}

impl Drop for RealismSettings<'_> {
    fn drop(&mut self) {
        let restore = self.restore.clone();
        self.realism.call("PUT", "config", Some(&restore));
    }
}
