//! Value types of `stack.yaml` that check themselves while being deserialized, so that a bad
//! value is reported at its own line and column.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Regions where the project can run (commercial, GovCloud and China partitions).
const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

/// Regions that offer CloudFront Origin Shield (CloudFront Developer Guide, "Origin Shield").
const ORIGIN_SHIELD_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "eu-central-1",
    "eu-west-1",
    "eu-west-2",
    "sa-east-1",
];

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(crate) String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Checked;
                impl<'de> Visitor<'de> for Checked {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a string")
                    }
                    // Failing inside the visitor lets serde_yaml point at the value itself.
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        let check: fn(&str) -> Result<(), String> = $check;
                        check(s).map_err(E::custom)?;
                        Ok($name(s.to_owned()))
                    }
                }
                d.deserialize_str(Checked)
            }
        }
    };
}

string_newtype!(
    /// Lowercase letters, digits and hyphens, 3 to 24 characters: it prefixes bucket names,
    /// which must stay within 63 characters with the account id appended, and RDS identifiers.
    StackName,
    |s| {
        // The strictest of the names it becomes part of: S3 buckets (lowercase) and RDS
        // identifiers (a letter first, no two hyphens in a row, no hyphen at the end).
        let ok = (3..=24).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && !s.contains("--");
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid stack name {s:?}: use 3 to 24 lowercase letters, digits or single \
                 hyphens, starting with a letter and not ending with a hyphen"
            ))
        }
    }
);

string_newtype!(
    /// An AWS region code such as `us-east-1`.
    Region,
    |s| {
        if REGIONS.contains(&s) {
            Ok(())
        } else {
            Err(format!("unknown AWS region {s:?}; expected one of: {}", REGIONS.join(", ")))
        }
    }
);

string_newtype!(
    /// A region where CloudFront offers Origin Shield.
    OriginShieldRegion,
    |s| {
        if ORIGIN_SHIELD_REGIONS.contains(&s) {
            Ok(())
        } else {
            Err(format!(
                "Origin Shield is not offered in {s:?}; choose one of: {}",
                ORIGIN_SHIELD_REGIONS.join(", ")
            ))
        }
    }
);

impl OriginShieldRegion {
    /// The Origin Shield region for an origin in `region`, when Origin Shield is offered there.
    pub fn for_region(region: &str) -> Result<OriginShieldRegion, String> {
        if ORIGIN_SHIELD_REGIONS.contains(&region) {
            Ok(OriginShieldRegion(region.to_owned()))
        } else {
            Err(format!(
                "stt.website.distribution.origin_shield.region must be set: Origin Shield is not \
                 offered in the stack's region {region}; choose one of: {}",
                ORIGIN_SHIELD_REGIONS.join(", ")
            ))
        }
    }
}

string_newtype!(
    /// A tag key the user may set: `provision:` is reserved for the ownership tag.
    TagKey,
    |s| {
        if s.is_empty() || s.len() > 128 {
            Err(format!("tag key {s:?} must have 1 to 128 characters"))
        } else if s.starts_with("aws:") || s.starts_with("provision:") {
            Err(format!("tag key {s:?} uses a reserved prefix (aws: or provision:)"))
        } else {
            Ok(())
        }
    }
);

string_newtype!(
    /// A CloudFront error-page path: starts with `/`.
    PagePath,
    |s| {
        if s.starts_with('/') && s.len() <= 4096 {
            Ok(())
        } else {
            Err(format!("response page path {s:?} must start with '/'"))
        }
    }
);

/// An HTTP status code CloudFront accepts in a custom error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u16);

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = u16::deserialize(d)?;
        if (200..=599).contains(&code) {
            Ok(ErrorCode(code))
        } else {
            Err(serde::de::Error::custom(format!(
                "HTTP status {code} is not between 200 and 599"
            )))
        }
    }
}

/// CloudFront price class; the console's "use all edge locations" is `PriceClass_All`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum PriceClass {
    #[default]
    #[serde(rename = "PriceClass_All")]
    All,
    #[serde(rename = "PriceClass_200")]
    Class200,
    #[serde(rename = "PriceClass_100")]
    Class100,
}

impl PriceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceClass::All => "PriceClass_All",
            PriceClass::Class200 => "PriceClass_200",
            PriceClass::Class100 => "PriceClass_100",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum HttpVersion {
    #[serde(rename = "http1.1")]
    Http11,
    #[default]
    #[serde(rename = "http2")]
    Http2,
    #[serde(rename = "http2and3")]
    Http2And3,
    #[serde(rename = "http3")]
    Http3,
}

impl HttpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http11 => "http1.1",
            HttpVersion::Http2 => "http2",
            HttpVersion::Http2And3 => "http2and3",
            HttpVersion::Http3 => "http3",
        }
    }
}

/// AWS managed cache policies, by the name the console shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum CachePolicy {
    #[default]
    CachingOptimized,
    CachingOptimizedForUncompressedObjects,
    CachingDisabled,
}

impl CachePolicy {
    /// The fixed ids AWS gives its managed cache policies.
    pub fn id(self) -> &'static str {
        match self {
            CachePolicy::CachingOptimized => "658327ea-f89d-4fab-a63d-7e88639e58f6",
            CachePolicy::CachingOptimizedForUncompressedObjects => {
                "b2884449-e4de-46a7-ac36-70bc7f1ddd6d"
            }
            CachePolicy::CachingDisabled => "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
        }
    }
}

/// The three method sets CloudFront allows for a cache behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllowedMethods {
    #[default]
    GetHead,
    GetHeadOptions,
    All,
}

impl AllowedMethods {
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            AllowedMethods::GetHead => &["GET", "HEAD"],
            AllowedMethods::GetHeadOptions => &["GET", "HEAD", "OPTIONS"],
            AllowedMethods::All => &["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"],
        }
    }
}

impl<'de> Deserialize<'de> for AllowedMethods {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Methods;
        impl<'de> Visitor<'de> for Methods {
            type Value = AllowedMethods;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of HTTP methods")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AllowedMethods, A::Error> {
                let mut given = Vec::new();
                while let Some(m) = seq.next_element::<String>()? {
                    given.push(m);
                }
                AllowedMethods::from_list(given).map_err(de::Error::custom)
            }
        }
        d.deserialize_seq(Methods)
    }
}

impl AllowedMethods {
    fn from_list(mut given: Vec<String>) -> Result<AllowedMethods, &'static str> {
        given.iter_mut().for_each(|m| m.make_ascii_uppercase());
        given.sort();
        for set in [
            AllowedMethods::GetHead,
            AllowedMethods::GetHeadOptions,
            AllowedMethods::All,
        ] {
            let mut wanted: Vec<&str> = set.methods().to_vec();
            wanted.sort();
            if given == wanted {
                return Ok(set);
            }
        }
        Err(
            "allowed_methods must be one of CloudFront's sets: [GET, HEAD], [GET, HEAD, OPTIONS] \
             or [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]",
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViewerProtocolPolicy {
    AllowAll,
    #[default]
    RedirectToHttps,
    HttpsOnly,
}

impl ViewerProtocolPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewerProtocolPolicy::AllowAll => "allow-all",
            ViewerProtocolPolicy::RedirectToHttps => "redirect-to-https",
            ViewerProtocolPolicy::HttpsOnly => "https-only",
        }
    }
}

string_newtype!(
    /// An RDS instance class such as `db.t3.micro`.
    InstanceClass,
    |s| {
        if s.starts_with("db.") && s.split('.').count() == 3 {
            Ok(())
        } else {
            Err(format!("instance class {s:?} is not of the form db.<family>.<size>, e.g. db.t3.micro"))
        }
    }
);

string_newtype!(
    /// A MySQL user or database name: a letter, then letters, digits or underscores, at most 16.
    DbIdentifier,
    |s| {
        let ok = (1..=16).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(())
        } else {
            Err(format!("{s:?}: use a letter, then letters, digits or underscores, at most 16 characters"))
        }
    }
);

/// An IPv4 network in CIDR notation, aligned to its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: std::net::Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR notation (a.b.c.d/n)"))?;
        let addr: std::net::Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length 0 to 32"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(addr) & !mask != 0 {
            return Err(format!(
                "{s} has host bits set; the network is {}/{prefix}",
                std::net::Ipv4Addr::from(u32::from(addr) & mask)
            ));
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Ipv4Cidr {
    /// The `index`-th block `extra_bits` longer than this one.
    pub fn subnet(&self, extra_bits: u8, index: u32) -> Option<Ipv4Cidr> {
        let prefix = self.prefix + extra_bits;
        if prefix > 28 || index >= (1u32 << extra_bits) {
            return None;
        }
        let addr = u32::from(self.addr) + (index << (32 - prefix));
        Some(Ipv4Cidr {
            addr: addr.into(),
            prefix,
        })
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Cidr;
        impl<'de> Visitor<'de> for Cidr {
            type Value = Ipv4Cidr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an IPv4 CIDR block such as 10.20.0.0/16")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Ipv4Cidr, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Cidr)
    }
}

macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $min:expr, $max:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub $ty);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Bounded;
                impl<'de> Visitor<'de> for Bounded {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "a whole number from {} to {}", $min, $max)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        if ($min..=$max).contains(&v) {
                            Ok($name(v as $ty))
                        } else {
                            Err(E::custom(format!("{} must be from {} to {}, not {v}", $what, $min, $max)))
                        }
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        Err(E::custom(format!("{} must be from {} to {}, not {v}", $what, $min, $max)))
                    }
                }
                d.deserialize_u64(Bounded)
            }
        }
    };
}

bounded_number!(
    /// Allocated storage in GiB (RDS MySQL: 20 to 65536).
    StorageSize, i32, 20u64, 65536u64, "allocated storage (GiB)"
);
bounded_number!(
    /// Uploads an hour the upload API takes from one address or one network.
    HourlyUploads, u32, 1u64, 100000u64, "uploads per hour"
);
bounded_number!(
    /// The largest audio file the page may send straight to S3, in bytes: at most Transcribe's
    /// 2 GB; at least 1 MB.
    UploadBytes, u64, 1_000_000u64, 2_000_000_000u64, "largest upload (bytes)"
);
bounded_number!(
    /// Seconds a presigned upload lasts (longer for a large file, at most an hour): from one
    /// minute to an hour.
    UploadExpirySeconds, u32, 60u64, 3600u64, "upload expiry (seconds)"
);
bounded_number!(
    /// Days a data bucket keeps an object before its lifecycle rule deletes it (S3 takes any
    /// positive number; a century is the sanity bound).
    ExpiryDays, u32, 1u64, 36500u64, "data retention (days)"
);
bounded_number!(
    /// Days automated backups are kept; 0 (off) is not offered: the console build has them on.
    RetentionDays, i32, 1u64, 35u64, "backup retention (days)"
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Mysql,
    Mariadb,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Mysql => "mysql",
            Engine::Mariadb => "mariadb",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    #[default]
    Gp2,
    Gp3,
}

impl StorageType {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Gp2 => "gp2",
            StorageType::Gp3 => "gp3",
        }
    }
}

/// AWS services a function in the VPC reaches through an interface endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointService {
    Transcribe,
    SecretsManager,
    /// SES's SMTP interface (`email-smtp`), for the SMTP mail mode.
    #[serde(rename = "email-smtp")]
    EmailSmtp,
    Lambda,
    Logs,
}

impl EndpointService {
    /// The last part of the service name `com.amazonaws.{region}.{name}`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointService::Transcribe => "transcribe",
            EndpointService::SecretsManager => "secretsmanager",
            EndpointService::EmailSmtp => "email-smtp",
            EndpointService::Lambda => "lambda",
            EndpointService::Logs => "logs",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayService {
    S3,
    Dynamodb,
}

impl GatewayService {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayService::S3 => "s3",
            GatewayService::Dynamodb => "dynamodb",
        }
    }
}

bounded_number!(
    /// Lambda memory in MB (128 to 10240).
    MemorySize, i32, 128u64, 10240u64, "memory (MB)"
);
bounded_number!(
    /// Lambda timeout in seconds (1 to 900).
    TimeoutSeconds, i32, 1u64, 900u64, "timeout (s)"
);
bounded_number!(
    /// Lambda ephemeral storage in MB (512 to 10240).
    EphemeralStorageSize, i32, 512u64, 10240u64, "ephemeral storage (MB)"
);
bounded_number!(
    /// How often Lambda tries an asynchronous invocation again after it failed (0 to 2).
    RetryAttempts, i32, 0u64, 2u64, "retry attempts (0 to 2)"
);
bounded_number!(
    /// How long Lambda keeps an asynchronous event it could not process (60 s to 6 h).
    EventAgeSeconds, i32, 60u64, 21600u64, "event age (s)"
);

string_newtype!(
    /// An e-mail address: something@domain, the domain with a dot.
    MailAddress,
    |s| {
        let valid = s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !s.contains(char::is_whitespace)
        });
        if valid {
            Ok(())
        } else {
            Err(format!("{s:?} is not an e-mail address"))
        }
    }
);

impl MailAddress {
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

string_newtype!(
    /// A host name CloudFront can serve as an alternate domain (CNAME): dot-separated labels of
    /// letters, digits and hyphens, at most 253 characters, optionally `*.` first.
    DomainName,
    |s| {
        let name = s.strip_prefix("*.").unwrap_or(s);
        let labels: Vec<&str> = name.split('.').collect();
        let valid = s.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if valid {
            Ok(())
        } else {
            Err(format!(
                "{s:?} is not a domain name CloudFront can serve, e.g. stt.example.com"
            ))
        }
    }
);

string_newtype!(
    /// The ARN of an ACM certificate CloudFront can use: CloudFront takes certificates from
    /// ACM in us-east-1 only, whatever the stack's region.
    CloudFrontCertificateArn,
    |s| {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let shaped = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "acm"
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && parts[5].strip_prefix("certificate/").is_some_and(|id| !id.is_empty());
        if !shaped {
            return Err(format!(
                "{s:?} is not an ACM certificate ARN (arn:aws:acm:us-east-1:123456789012:certificate/…)"
            ));
        }
        if parts[3] != "us-east-1" {
            return Err(format!(
                "the certificate is in {}, but CloudFront uses ACM certificates from us-east-1 only: request or import it there",
                parts[3]
            ));
        }
        Ok(())
    }
);

string_newtype!(
    /// A CORS origin: `*` or `scheme://host[:port]`, without a path.
    CorsOrigin,
    |s| {
        let valid = s == "*"
            || ["http://", "https://"].iter().any(|scheme| {
                s.strip_prefix(scheme).is_some_and(|host| {
                    !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace)
                })
            });
        if valid {
            Ok(())
        } else {
            Err(format!(
                "{s:?} is not a CORS origin: use * or scheme://host[:port], e.g. https://example.com"
            ))
        }
    }
);

string_newtype!(
    /// A method S3 CORS rules accept.
    CorsMethod,
    |s| {
        if ["GET", "PUT", "POST", "DELETE", "HEAD"].contains(&s) {
            Ok(())
        } else {
            Err(format!("{s:?} is not a CORS method S3 accepts: GET, PUT, POST, DELETE or HEAD"))
        }
    }
);

string_newtype!(
    /// A file name suffix that triggers the converter, e.g. `.mp4`: lower case, as S3
    /// suffix filters are case-sensitive.
    VideoSuffix,
    |s| {
        let valid = s.len() >= 2
            && s.len() <= 16
            && s.starts_with('.')
            && s[1..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(())
        } else {
            Err(format!("{s:?} is not a file suffix: use a dot and lowercase letters or digits, e.g. .mp4"))
        }
    }
);

bounded_number!(
    /// Seconds browsers may cache a CORS preflight answer.
    CorsMaxAge, i32, 0u64, 86400u64, "a CORS max age in seconds"
);

bounded_number!(
    /// Concurrent executions reserved for a Lambda function (0 stops it). The real ceiling is
    /// the account's concurrency quota less the 100 AWS keeps unreserved, which only AWS knows:
    /// `plan` reads it.
    ReservedConcurrency, i32, 0u64, 100_000u64, "reserved concurrency"
);
bounded_number!(
    /// API Gateway's burst limit: requests taken at once above the steady rate (at least 1).
    ThrottleBurst, i32, 1u64, 1_000_000u64, "API burst (requests)"
);

/// API Gateway's steady-state rate limit, requests per second: above 0 (a fraction is fine:
/// 0.5 is one request every two seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleRate(pub f64);

impl<'de> Deserialize<'de> for ThrottleRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rate;
        impl<'de> Visitor<'de> for Rate {
            type Value = ThrottleRate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("requests per second, above 0")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ThrottleRate, E> {
                if v.is_finite() && v > 0.0 && v <= 1_000_000.0 {
                    Ok(ThrottleRate(v))
                } else {
                    Err(E::custom(format!(
                        "API rate (requests per second) must be above 0 and at most 1000000, not {v}"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ThrottleRate, E> {
                self.visit_f64(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ThrottleRate, E> {
                self.visit_f64(v as f64)
            }
        }
        d.deserialize_f64(Rate)
    }
}

/// The retention periods CloudWatch Logs accepts (`PutRetentionPolicy`'s `retentionInDays`).
pub const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Days CloudWatch Logs keeps a function's log events: one of [`LOG_RETENTION_DAYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRetentionDays(pub i32);

impl<'de> Deserialize<'de> for LogRetentionDays {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Days;
        fn refused<E: de::Error>(v: impl fmt::Display) -> E {
            let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(u32::to_string).collect();
            E::custom(format!(
                "log retention (days) must be one of CloudWatch Logs' periods: {}; not {v}",
                allowed.join(", ")
            ))
        }
        impl<'de> Visitor<'de> for Days {
            type Value = LogRetentionDays;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of days CloudWatch Logs accepts as retention, e.g. 30")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LogRetentionDays, E> {
                match LOG_RETENTION_DAYS.iter().find(|d| u64::from(**d) == v) {
                    Some(d) => Ok(LogRetentionDays(*d as i32)),
                    None => Err(refused(v)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LogRetentionDays, E> {
                Err(refused(v))
            }
        }
        // `any`: serde_yaml hands a negative number to `visit_i64` only this way.
        d.deserialize_any(Days)
    }
}
