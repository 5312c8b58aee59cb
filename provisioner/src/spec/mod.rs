//! The `stack.yaml` model: what the user declares, with the console build's choices as defaults.
//!
//! Every type rejects unknown keys, and every value that can be wrong is checked while it is
//! deserialized, so serde_yaml reports the exact line and column of the mistake before any AWS
//! call is made.

mod locate;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

pub use values::{
    AllowedMethods, CachePolicy, CloudFrontCertificateArn, CorsMaxAge, CorsMethod, CorsOrigin,
    DbIdentifier, DomainName, EndpointService, Engine, EphemeralStorageSize, EventAgeSeconds,
    ExpiryDays, GatewayService, HourlyUploads, HttpVersion, InstanceClass, Ipv4Cidr,
    LogRetentionDays, MailAddress, MemorySize, OriginShieldRegion, PriceClass, Region,
    ReservedConcurrency, RetentionDays, RetryAttempts, StackName, StorageSize, StorageType, TagKey,
    ThrottleBurst, ThrottleRate, TimeoutSeconds, UploadBytes, UploadExpirySeconds, VideoSuffix,
    ViewerProtocolPolicy,
};

/// The user's tags at most: with the ownership tag and an EC2 `Name`, AWS's limit of 50 tags a
/// resource.
const MAX_USER_TAGS: usize = 48;

/// The whole `stack.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    pub stack: StackSettings,
    /// The speech-to-text system; absent means none of it.
    #[serde(default)]
    pub stt: Stt,
    /// The video-on-demand system (V1 to V8); absent means none of it.
    #[serde(default)]
    pub vod: Option<Vod>,
    /// Where the file was read from; relative paths inside it are resolved against its folder.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSettings {
    /// Prefix of every resource name; also the value of the ownership tag.
    pub name: StackName,
    pub region: Region,
    /// Extra tags put on every taggable resource, next to the ownership tag.
    #[serde(default)]
    pub tags: BTreeMap<TagKey, String>,
}

/// The speech-to-text system.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stt {
    /// The static site (S1 to S7).
    #[serde(default)]
    pub website: Option<Website>,
    /// The private network of the functions and the database (S16 to S18, S20, S21).
    #[serde(default)]
    pub network: Option<Network>,
    /// RDS MySQL (S15, S16); needs `network`.
    #[serde(default)]
    pub database: Option<Database>,
    /// The Lambda functions, their roles and the audio bucket (S8 to S10, S17, S22, S23,
    /// S25, S27, S29); needs `network` and `database`.
    #[serde(default)]
    pub functions: Option<Functions>,
}

/// The video-on-demand system: a source bucket whose new videos `vod_convert` hands to
/// MediaConvert, and an output bucket served by CloudFront with the player page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vod {
    /// V2, V8: the player page, uploaded to the output bucket, and the distribution serving
    /// both (no error page rewrite by default: a missing playlist must stay a 403/404).
    #[serde(default)]
    pub player: Player,
    /// V7: CORS on the output bucket, as in the tutorial.
    #[serde(default)]
    pub cors: Cors,
    /// V5: the converter function.
    #[serde(default)]
    pub function: VodFunction,
    /// Days the source bucket keeps an uploaded video (once converted it is not read again);
    /// `null` keeps them. Default 30.
    #[serde(default = "defaults::data_retention")]
    pub source_retention_days: Option<ExpiryDays>,
    /// Days the output bucket keeps a converted video; `null` (the default) keeps them: they
    /// are what the player serves.
    #[serde(default)]
    pub output_retention_days: Option<ExpiryDays>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Player {
    #[serde(default = "defaults::player_dir")]
    pub source_dir: PathBuf,
    #[serde(default = "defaults::player_distribution")]
    pub distribution: Distribution,
}

impl Default for Player {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

/// One CORS rule of the output bucket. The default: GET and HEAD from the player's own
/// origin (its distribution's address), the only page the stack serves the videos to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Empty (the default): the player's own origin only.
    #[serde(default)]
    pub allowed_origins: Vec<CorsOrigin>,
    #[serde(default = "defaults::cors_methods")]
    pub allowed_methods: Vec<CorsMethod>,
    #[serde(default = "defaults::cors_headers")]
    pub allowed_headers: Vec<String>,
    #[serde(default = "defaults::cors_max_age")]
    pub max_age_s: CorsMaxAge,
}

impl Default for Cors {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VodFunction {
    #[serde(default = "defaults::zips_dir")]
    pub zips_dir: PathBuf,
    #[serde(default = "defaults::vod_function")]
    pub settings: FunctionSettings,
    /// The tutorial's `Application` environment variable, put into each job's metadata.
    #[serde(default = "defaults::application")]
    pub application: String,
    /// New objects with these suffixes in the source bucket are converted.
    #[serde(default = "defaults::video_suffixes")]
    pub video_suffixes: Vec<VideoSuffix>,
    /// What happens to an upload whose conversion keeps failing.
    #[serde(default)]
    pub async_invocation: AsyncInvocation,
    /// Days CloudWatch Logs keeps the function's logs (its group `/aws/lambda/{function}`).
    #[serde(default = "defaults::log_retention")]
    pub log_retention_days: LogRetentionDays,
}

/// Lambda's handling of asynchronous invocations (S3 notifications, EventBridge rules) that
/// fail: retries, how long an event is kept, and then the stack's failed-events queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncInvocation {
    /// Lambda's default: 2.
    #[serde(default = "defaults::retry_attempts")]
    pub maximum_retry_attempts: RetryAttempts,
    /// One hour (Lambda's default is six): an upload not transcribed by then is reported failed.
    #[serde(default = "defaults::event_age")]
    pub maximum_event_age_s: EventAgeSeconds,
}

impl Default for AsyncInvocation {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

impl Default for VodFunction {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

/// The speech-to-text functions. Each is built by `make zips` into
/// `{zips_dir}/{function}/bootstrap.zip`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Functions {
    #[serde(default = "defaults::zips_dir")]
    pub zips_dir: PathBuf,
    /// The sender of the transcript mails (an SES identity of the account), e.g.
    /// `transcripts@example.com`.
    pub mail_from: MailAddress,
    /// Origin allowed to call the upload API (CORS). Default: the site's CloudFront address.
    #[serde(default)]
    pub allowed_origin: Option<String>,
    /// The console build: 512 MB and 90 s; Rust needs far less.
    #[serde(default = "defaults::file_upload")]
    pub file_upload: FunctionSettings,
    #[serde(default = "defaults::small_function")]
    pub audio_transcribe: FunctionSettings,
    #[serde(default = "defaults::small_function")]
    pub save_text: FunctionSettings,
    #[serde(default = "defaults::small_function")]
    pub send_email: FunctionSettings,
    #[serde(default = "defaults::small_function")]
    pub db_migrate: FunctionSettings,
    /// What happens to an event whose function keeps failing (S3 uploads, Transcribe results).
    #[serde(default)]
    pub async_invocation: AsyncInvocation,
    /// Days the audio bucket keeps a recording and its transcript (personal data) before its
    /// lifecycle rule deletes them; `null` keeps them. Default 30.
    #[serde(default = "defaults::data_retention")]
    pub data_retention_days: Option<ExpiryDays>,
    /// Uploads an hour `file_upload` takes from one e-mail address and from one source IP;
    /// more are answered 429 and write nothing.
    #[serde(default)]
    pub upload_quota: UploadQuota,
    /// The files the page sends straight to the audio bucket.
    #[serde(default)]
    pub uploads: Uploads,
    /// How many requests the public upload API takes, whoever sends them.
    #[serde(default)]
    pub api_throttling: ApiThrottling,
    /// Days CloudWatch Logs keeps each function's logs (its group `/aws/lambda/{function}`);
    /// the console build let Lambda make the groups, which keep everything forever.
    #[serde(default = "defaults::log_retention")]
    pub log_retention_days: LogRetentionDays,
}

/// Each upload starts a paid Transcribe job and mails its address: the public API takes a few
/// an hour from one address (a person re-trying) and more from one network (an office).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuota {
    #[serde(default = "defaults::uploads_per_address")]
    pub per_address_per_hour: HourlyUploads,
    #[serde(default = "defaults::uploads_per_ip")]
    pub per_ip_per_hour: HourlyUploads,
}

/// The direct-to-S3 uploads: the largest file, and how long a presigned upload lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Uploads {
    #[serde(default = "defaults::upload_max_bytes")]
    pub max_bytes: UploadBytes,
    #[serde(default = "defaults::upload_expiry")]
    pub expiry_s: UploadExpirySeconds,
}

impl Default for Uploads {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

impl Default for UploadQuota {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

impl Functions {
    /// The concurrency reserved for one of the functions: as set in `stack.yaml`, else the
    /// function's default (see [`defaults::reserved_concurrency`]).
    pub fn reserved_concurrency(&self, function: &str, settings: &FunctionSettings) -> Option<i32> {
        match settings.reserved_concurrency {
            Some(set) => set.map(|c| c.0),
            None => defaults::reserved_concurrency(function),
        }
    }
}

/// API Gateway's throttling of every method of the upload API's stage (`*/*`). Requests over
/// it are answered 429 by API Gateway itself, before any function runs.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiThrottling {
    /// Steady requests per second (API Gateway's `rateLimit`), above 0.
    #[serde(default = "defaults::api_rate")]
    pub rate_per_s: ThrottleRate,
    /// Requests taken at once above the steady rate (the token bucket's size, `burstLimit`).
    #[serde(default = "defaults::api_burst")]
    pub burst: ThrottleBurst,
}

impl Default for ApiThrottling {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSettings {
    pub memory_mb: MemorySize,
    pub timeout_s: TimeoutSeconds,
    #[serde(default = "defaults::ephemeral_storage")]
    pub ephemeral_storage_mb: EphemeralStorageSize,
    /// Concurrent executions reserved for the function, which are also the most it may run
    /// at once (0 stops it). Left out: the function's default; `null`: no reservation, the
    /// function shares the account's unreserved pool.
    #[serde(default, deserialize_with = "present")]
    pub reserved_concurrency: Option<Option<ReservedConcurrency>>,
}

/// A key that is present, even with `null`, is `Some`: tells "left out" from "set to nothing".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Console steps S16 to S18, S20, S21: VPC, subnets, routes, security groups, endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The VPC's IPv4 range; each subnet gets the next block four bits longer.
    #[serde(default = "defaults::vpc_cidr")]
    pub cidr: Ipv4Cidr,
    /// At least two (RDS requires it). Default: chosen by `provision` (see `systems::zones`):
    /// the zones of the stack's subnets, else the first that offer every endpoint service and
    /// the database's instance class.
    #[serde(default)]
    pub availability_zones: Option<Vec<String>>,
    /// An Amazon-provided IPv6 block, a /64 per subnet, and `::/0` through an egress-only
    /// internet gateway (outbound only), so functions reach dual-stack AWS endpoints.
    #[serde(default = "defaults::yes")]
    pub ipv6: bool,
    /// Services reached through interface endpoints with private DNS.
    #[serde(default = "defaults::interface_endpoints")]
    pub interface_endpoints: Vec<EndpointService>,
    /// Services reached through gateway endpoints on the subnets' route table.
    #[serde(default = "defaults::gateway_endpoints")]
    pub gateway_endpoints: Vec<GatewayService>,
    /// An operator's address allowed to reach MySQL (the console build allowed "my IP").
    /// Off unless set.
    #[serde(default)]
    pub operator_cidr: Option<Ipv4Cidr>,
}

/// Console step S15: the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    #[serde(default)]
    pub engine: Engine,
    /// A major version ("8.0") or an exact one ("8.0.40").
    #[serde(default = "defaults::engine_version")]
    pub engine_version: String,
    #[serde(default = "defaults::instance_class")]
    pub instance_class: InstanceClass,
    #[serde(default = "defaults::allocated_storage")]
    pub allocated_storage_gb: StorageSize,
    #[serde(default)]
    pub storage_type: StorageType,
    /// Automated backups (on in the console build): days kept, 1 to 35.
    #[serde(default = "defaults::backup_retention")]
    pub backup_retention_days: RetentionDays,
    #[serde(default = "defaults::master_username")]
    pub master_username: DbIdentifier,
    /// The database created with the instance.
    #[serde(default = "defaults::database_name")]
    pub database_name: DbIdentifier,
    /// RDS refuses to delete the instance while this is on. Default: on when deploying to
    /// AWS, off on the local target; see [`Database::deletion_protection_on`].
    #[serde(default)]
    pub deletion_protection: Option<bool>,
    /// Take a final snapshot when `down` deletes the database.
    #[serde(default = "defaults::yes")]
    pub final_snapshot: bool,
    /// Apply changes now rather than in the next maintenance window.
    #[serde(default = "defaults::yes")]
    pub apply_immediately: bool,
}

impl Database {
    /// Whether the instance is protected from deletion: as `stack.yaml` says, else on for AWS
    /// (a mistaken `down` or a deletion by hand cannot lose the data) and off on the local
    /// target, whose database is a throw-away.
    pub fn deletion_protection_on(&self, local: bool) -> bool {
        self.deletion_protection.unwrap_or(!local)
    }
}

/// Console steps S1 to S7: the site bucket and the CloudFront distribution in front of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Website {
    /// Folder whose files are uploaded to the site bucket (relative to stack.yaml).
    #[serde(default = "defaults::site_dir")]
    pub source_dir: PathBuf,
    /// S3 static website hosting (S3): index document.
    #[serde(default = "defaults::index_document")]
    pub index_document: String,
    /// S3 static website hosting (S3): error document.
    #[serde(default = "defaults::error_document")]
    pub error_document: String,
    #[serde(default)]
    pub distribution: Distribution,
}

/// Console steps S4 to S6.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    #[serde(default = "defaults::index_document")]
    pub default_root_object: String,
    #[serde(default)]
    pub price_class: PriceClass,
    #[serde(default)]
    pub http_version: HttpVersion,
    #[serde(default = "defaults::yes")]
    pub ipv6: bool,
    #[serde(default)]
    pub origin_shield: OriginShield,
    #[serde(default)]
    pub cache_policy: CachePolicy,
    #[serde(default)]
    pub allowed_methods: AllowedMethods,
    #[serde(default)]
    pub viewer_protocol_policy: ViewerProtocolPolicy,
    #[serde(default = "defaults::yes")]
    pub compress: bool,
    #[serde(default = "defaults::error_responses")]
    pub error_responses: Vec<ErrorResponse>,
    /// The site on a domain of its own, with its ACM certificate (us-east-1), served with TLS
    /// 1.2 at least (`TLSv1.2_2021`). Without it CloudFront serves `*.cloudfront.net` with its
    /// own certificate, whose TLS versions it chooses.
    #[serde(default)]
    pub custom_domain: Option<CustomDomain>,
}

/// An alternate domain of a distribution.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDomain {
    /// The names the site answers on; the first is the address the stack gives out (CORS
    /// origin, confirmation links). Each must point (CNAME or alias) at the distribution.
    pub names: Vec<DomainName>,
    /// An ACM certificate in us-east-1 covering every name.
    pub certificate_arn: CloudFrontCertificateArn,
}

impl Default for Distribution {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("every field has a default")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginShield {
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Defaults to the stack's region (the bucket's), as the console proposes.
    #[serde(default)]
    pub region: Option<OriginShieldRegion>,
}

impl Default for OriginShield {
    fn default() -> Self {
        OriginShield {
            enabled: true,
            region: None,
        }
    }
}

/// A custom error response (S6): S3's 403 for an unknown path becomes `/index.html` with 200.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorResponse {
    pub error_code: values::ErrorCode,
    pub response_page_path: values::PagePath,
    pub response_code: values::ErrorCode,
    /// Seconds CloudFront caches the error answer.
    #[serde(default = "defaults::error_caching_min_ttl")]
    pub caching_min_ttl: u32,
}

mod defaults {
    use super::*;

    pub fn yes() -> bool {
        true
    }
    pub fn retry_attempts() -> RetryAttempts {
        RetryAttempts(2)
    }
    pub fn event_age() -> EventAgeSeconds {
        EventAgeSeconds(3600)
    }
    pub fn log_retention() -> LogRetentionDays {
        LogRetentionDays(30)
    }
    pub fn site_dir() -> PathBuf {
        PathBuf::from("site/stt")
    }
    pub fn index_document() -> String {
        "index.html".into()
    }
    pub fn error_document() -> String {
        "error.html".into()
    }
    pub fn error_caching_min_ttl() -> u32 {
        10
    }
    pub fn vpc_cidr() -> Ipv4Cidr {
        "10.20.0.0/16".parse().expect("valid")
    }
    pub fn interface_endpoints() -> Vec<EndpointService> {
        vec![EndpointService::Transcribe, EndpointService::SecretsManager]
    }
    pub fn gateway_endpoints() -> Vec<GatewayService> {
        vec![GatewayService::S3]
    }
    pub fn engine_version() -> String {
        "8.0".into()
    }
    pub fn instance_class() -> InstanceClass {
        InstanceClass("db.t3.micro".into())
    }
    pub fn allocated_storage() -> StorageSize {
        StorageSize(20)
    }
    pub fn backup_retention() -> RetentionDays {
        RetentionDays(7)
    }
    pub fn master_username() -> DbIdentifier {
        DbIdentifier("admin".into())
    }
    pub fn database_name() -> DbIdentifier {
        DbIdentifier("stt".into())
    }
    pub fn zips_dir() -> PathBuf {
        PathBuf::from("target/lambda")
    }
    pub fn ephemeral_storage() -> EphemeralStorageSize {
        EphemeralStorageSize(512)
    }
    /// Ten uploads a second with twenty at once: far above what people sending recordings
    /// do (an upload is one preflight and one POST, a few a minute), far below API Gateway's
    /// account-wide 10,000 a second and 5,000 at once, which one anonymous caller could
    /// otherwise use up for every API of the account in the region.
    pub fn api_rate() -> ThrottleRate {
        ThrottleRate(10.0)
    }
    pub fn api_burst() -> ThrottleBurst {
        ThrottleBurst(20)
    }
    /// The functions an anonymous caller sets off get a ceiling: `file_upload` (called by
    /// the public API) 10 at once, matching the API's steady rate for uploads that take about
    /// a second; `audio_transcribe` (one per upload, from S3) 5, which bounds the Transcribe
    /// jobs started at once; S3 invokes it asynchronously, so an event over the ceiling
    /// waits and is retried (up to `maximum_event_age_s`) instead of being lost. The others
    /// run only after those, so they are bounded by them, and keep the account's shared pool.
    /// Every reservation is taken from the account's concurrency quota, of which AWS keeps
    /// 100 unreserved (see docs/security.md, "Limits on what an anonymous caller can spend").
    pub fn reserved_concurrency(function: &str) -> Option<i32> {
        match function {
            "file_upload" => Some(10),
            "audio_transcribe" => Some(5),
            _ => None,
        }
    }
    pub fn file_upload() -> FunctionSettings {
        FunctionSettings {
            memory_mb: MemorySize(256),
            timeout_s: TimeoutSeconds(30),
            ephemeral_storage_mb: ephemeral_storage(),
            reserved_concurrency: None,
        }
    }
    pub fn small_function() -> FunctionSettings {
        FunctionSettings {
            memory_mb: MemorySize(128),
            timeout_s: TimeoutSeconds(60),
            ephemeral_storage_mb: ephemeral_storage(),
            reserved_concurrency: None,
        }
    }
    pub fn player_dir() -> PathBuf {
        PathBuf::from("site/vod")
    }
    pub fn player_distribution() -> Distribution {
        serde_yaml::from_str("error_responses: []").expect("valid defaults")
    }
    pub fn uploads_per_address() -> HourlyUploads {
        HourlyUploads(5)
    }
    pub fn uploads_per_ip() -> HourlyUploads {
        HourlyUploads(20)
    }
    /// Transcribe's limit.
    pub fn upload_max_bytes() -> UploadBytes {
        UploadBytes(2_000_000_000)
    }
    pub fn upload_expiry() -> UploadExpirySeconds {
        UploadExpirySeconds(900)
    }
    pub fn data_retention() -> Option<ExpiryDays> {
        Some(ExpiryDays(30))
    }
    pub fn cors_methods() -> Vec<CorsMethod> {
        ["GET", "HEAD"]
            .iter()
            .map(|m| CorsMethod((*m).into()))
            .collect()
    }
    pub fn cors_headers() -> Vec<String> {
        vec!["*".into()]
    }
    pub fn cors_max_age() -> CorsMaxAge {
        CorsMaxAge(3000)
    }
    pub fn vod_function() -> FunctionSettings {
        FunctionSettings {
            memory_mb: MemorySize(128),
            timeout_s: TimeoutSeconds(60),
            ephemeral_storage_mb: ephemeral_storage(),
            reserved_concurrency: None,
        }
    }
    pub fn application() -> String {
        "VOD".into()
    }
    pub fn video_suffixes() -> Vec<VideoSuffix> {
        [
            ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".mpg", ".mpeg", ".avi", ".wmv",
        ]
        .iter()
        .map(|s| VideoSuffix((*s).into()))
        .collect()
    }
    pub fn error_responses() -> Vec<ErrorResponse> {
        vec![ErrorResponse {
            error_code: values::ErrorCode(403),
            response_page_path: values::PagePath("/index.html".into()),
            response_code: values::ErrorCode(200),
            caching_min_ttl: error_caching_min_ttl(),
        }]
    }
}

/// A `stack.yaml` that cannot be used, with the place of the problem.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{}: {message}", location.map(|(l, c)| format!("{l}:{c}")).unwrap_or_else(|| "?".into()))]
    Invalid {
        path: PathBuf,
        /// 1-based line and column.
        location: Option<(usize, usize)>,
        message: String,
    },
}

impl Stack {
    pub fn load(path: &Path) -> Result<Stack, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        Stack::parse(&text, path)
    }

    /// Parses and validates; `path` is used for messages and to resolve relative folders.
    pub fn parse(text: &str, path: &Path) -> Result<Stack, SpecError> {
        let mut stack: Stack = serde_yaml::from_str(text).map_err(|e| SpecError::Invalid {
            path: path.to_owned(),
            location: e.location().map(|l| (l.line(), l.column())),
            // serde_yaml appends " at line L column C"; the location is already in front.
            message: strip_location(&e.to_string()),
        })?;
        stack.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        // Errors found from here on are located at the key they are about.
        let at = |keys: &[&str]| locate::locate(text, keys);
        if stack.stack.tags.len() > MAX_USER_TAGS {
            return Err(SpecError::Invalid {
                path: path.to_owned(),
                location: at(&["stack", "tags"]),
                message: format!(
                    "stack.tags has {} tags; at most {MAX_USER_TAGS}: AWS takes 50 tags on a \
                     resource (and on a CloudFormation stack), and provision adds its ownership \
                     tag and, on network resources, a Name",
                    stack.stack.tags.len()
                ),
            });
        }
        if stack.stt.database.is_some() && stack.stt.network.is_none() {
            return Err(SpecError::Invalid {
                path: path.to_owned(),
                location: at(&["stt", "database"]),
                message: "stt.database needs stt.network: the database lives in the stack's VPC"
                    .into(),
            });
        }
        if stack.stt.functions.is_some()
            && (stack.stt.network.is_none() || stack.stt.database.is_none())
        {
            return Err(SpecError::Invalid {
                path: path.to_owned(),
                location: at(&["stt", "functions"]),
                message: "stt.functions needs stt.network and stt.database: the functions \
                          reach the database inside the stack's VPC"
                    .into(),
            });
        }
        let distributions = [
            (
                "stt",
                "website",
                stack.stt.website.as_ref().map(|w| &w.distribution),
            ),
            (
                "vod",
                "player",
                stack.vod.as_ref().map(|v| &v.player.distribution),
            ),
        ];
        for (system, part, distribution) in distributions {
            let Some(domain) = distribution.and_then(|d| d.custom_domain.as_ref()) else {
                continue;
            };
            if domain.names.is_empty() || domain.names.len() > 100 {
                return Err(SpecError::Invalid {
                    path: path.to_owned(),
                    location: at(&[system, part, "distribution", "custom_domain", "names"]),
                    message: format!(
                        "{system}.{part}.distribution.custom_domain.names needs from 1 to 100 \
                         names (CloudFront's limit of alternate domains), not {}",
                        domain.names.len()
                    ),
                });
            }
        }
        if let Some(functions) = &stack.stt.functions {
            // The confirmation mail links to the upload site's confirm.html.
            let page = functions
                .allowed_origin
                .as_deref()
                .is_some_and(|o| o.starts_with("https://") || o.starts_with("http://"));
            if stack.stt.website.is_none() && !page {
                return Err(SpecError::Invalid {
                    path: path.to_owned(),
                    location: at(&["stt", "functions"]),
                    message: "stt.functions needs stt.website or an http(s) \
                              stt.functions.allowed_origin: the mail that asks an address to \
                              confirm links to the site's confirm.html"
                        .into(),
                });
            }
        }
        if let Some(zones) = stack
            .stt
            .network
            .as_ref()
            .and_then(|n| n.availability_zones.as_ref())
        {
            let region = stack.stack.region.as_str();
            let mut unique = zones.clone();
            unique.sort();
            unique.dedup();
            if unique.len() < 2
                || unique.len() != zones.len()
                || zones.iter().any(|z| !z.starts_with(region))
            {
                return Err(SpecError::Invalid {
                    path: path.to_owned(),
                    location: at(&["stt", "network", "availability_zones"]),
                    message: format!(
                        "stt.network.availability_zones: name at least two different zones of {region} (RDS needs two)"
                    ),
                });
            }
        }
        // Named origins: S3 answers CORS per `Origin`, but CloudFront's cached copy is keyed by
        // the cache policy, and the managed ones offered here key on the path only: the first
        // origin's answer would be served to every other. Only an uncached distribution is right.
        if let Some(vod) = &stack.vod {
            // The player's own origin (the default, an empty list) is safe behind a cache: its
            // page asks the same origin, so browsers send no `Origin` and need no CORS answer.
            let origins = &vod.cors.allowed_origins;
            let named = !origins.is_empty() && !origins.iter().any(|o| o.as_str() == "*");
            if named && vod.player.distribution.cache_policy != values::CachePolicy::CachingDisabled
            {
                return Err(SpecError::Invalid {
                    path: path.to_owned(),
                    location: at(&["vod", "cors", "allowed_origins"]),
                    message: "vod.cors.allowed_origins names origins, but CloudFront would cache \
                              the first origin's CORS answer for all of them: use [\"*\"] (the \
                              videos are public through CloudFront anyway), or \
                              vod.player.distribution.cache_policy: CachingDisabled"
                        .into(),
                });
            }
        }
        // The database port open to the whole internet: the console build's "my IP" is one
        // operator's address, not every address.
        if let Some(cidr) = stack
            .stt
            .network
            .as_ref()
            .and_then(|n| n.operator_cidr.as_ref())
            .filter(|c| c.prefix == 0)
        {
            return Err(SpecError::Invalid {
                path: path.to_owned(),
                location: at(&["stt", "network", "operator_cidr"]),
                message: format!(
                    "stt.network.operator_cidr: {cidr} would open MySQL to every address on the \
                     internet; give the operator's own address or network (a.b.c.d/32)"
                ),
            });
        }
        // Origin Shield needs a region that offers it.
        let distributions = stack
            .stt
            .website
            .iter()
            .map(|w| (&w.distribution, ["stt", "website"]))
            .chain(
                stack
                    .vod
                    .iter()
                    .map(|v| (&v.player.distribution, ["vod", "player"])),
            );
        for (distribution, [system, part]) in distributions.filter(|(d, _)| d.origin_shield.enabled)
        {
            stack
                .origin_shield_region(distribution)
                .map_err(|message| SpecError::Invalid {
                    path: path.to_owned(),
                    location: at(&[system, part, "distribution", "origin_shield", "region"]),
                    message,
                })?;
        }
        Ok(stack)
    }

    pub fn name(&self) -> &str {
        self.stack.name.as_str()
    }

    /// A site's source folder resolved against the stack file.
    pub fn site_dir(&self, website: &Website) -> PathBuf {
        self.base_dir.join(&website.source_dir)
    }

    /// The availability zones of the subnets.
    /// Origin Shield region of a distribution: the configured one, else the stack's region.
    pub fn origin_shield_region(&self, distribution: &Distribution) -> Result<String, String> {
        match &distribution.origin_shield.region {
            Some(r) => Ok(r.as_str().to_owned()),
            None => OriginShieldRegion::for_region(self.stack.region.as_str())
                .map(|r| r.as_str().to_owned()),
        }
    }
}

fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
