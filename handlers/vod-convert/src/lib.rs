//! `vod_convert`: S3 `ObjectCreated` on the source bucket → one AWS Elemental MediaConvert job
//! per video. The Rust successor of `convert.py` from aws-samples
//! `aws-media-services-vod-automation` (`MediaConvert-WorkflowWatchFolderAndNotification`)
//! that the VOD tutorial deploys (console steps V5, V6).
//!
//! # Trigger
//!
//! The stack notifies the function of every `ObjectCreated` in the source bucket, without a
//! suffix filter: S3 matches filter suffixes literally and case-sensitively, so a rule for
//! `.mov` would never fire for a phone's `IMG_0001.MOV`. The function filters itself
//! ([`decide`]): keys whose file name ends with one of `VideoSuffixes`, compared
//! case-insensitively, are converted; `job.json` and everything else (images, notes, folder
//! markers such as `uploads/`, `.DS_Store`) are skipped with a log line, and the invocation
//! succeeds.
//!
//! # Output layout (the player page relies on it)
//!
//! For a source object `{any/prefix/}{name}.{ext}` the job writes, in `DestinationBucket`:
//!
//! ```text
//! {name}/hls/{name}.m3u8                 HLS master playlist  ← the player loads this
//! {name}/hls/{name}_360.m3u8 ... _720    one playlist per rendition, with their .ts segments
//! {name}/mp4/{name}.mp4                  720p progressive-download MP4
//! {name}/thumbnails/{name}.0000000.jpg   one JPEG every 5 s (at most 500)
//! ```
//!
//! `{name}` is the file stem of the key's last segment after URL-decoding (see
//! [`keys::video_name`]); MediaConvert names every output after the input's file stem, and the
//! destinations are the folders `s3://{DestinationBucket}/{name}/hls/`, `.../mp4/`,
//! `.../thumbnails/`. The prefix of the source key is not part of the output path, so two
//! sources with the same file name in different folders share (and overwrite) one output
//! folder. The sample wrote to `{name}/Default/HLS/`; this layout drops the settings-file level.
//!
//! # The job
//!
//! [`job::Profile::default`] is the sample `job.json`: HLS 640x360 1 Mbit/s, 960x540 2 Mbit/s,
//! 1280x720 3 Mbit/s (H.264 Main, CBR, GOP 90 frames, 2 B-frames), 10 s segments; MP4 1280x720
//! 3 Mbit/s; frame-capture thumbnails 1280x720, one every 5 s, at most 500, quality 80; AAC-LC
//! 96 kbit/s stereo 48 kHz on every output except the thumbnails. The settings are typed
//! `aws_sdk_mediaconvert::types` values ([`job::job_settings`]). Unlike the sample, outputs get
//! no `PUBLIC_READ` ACL: the output bucket is private and read through CloudFront.
//!
//! A `job.json` next to the video overrides parts of the profile; see [`overrides`] for the
//! schema. A missing override file means defaults; an unreadable or invalid one fails the
//! invocation. `job.json` itself never starts a job.
//!
//! # Environment
//!
//! | variable | |
//! |---|---|
//! | `DestinationBucket` | required: output bucket name |
//! | `MediaConvertRole` | required: ARN of the role MediaConvert assumes (`iam:PassRole`) |
//! | `Application` | `UserMetadata.application`, default `VOD` (the tutorial's value) |
//! | `VideoSuffixes` | comma-separated, case-insensitive; default [`keys::DEFAULT_VIDEO_SUFFIXES`] |
//! | `MediaConvertEndpoint` | optional endpoint URL for MediaConvert |
//! | `RUST_LOG` | log filter, default `info` |
//!
//! Without `MediaConvertEndpoint` the SDK's regional endpoint
//! (`https://mediaconvert.{region}.amazonaws.com`) is used. The sample called
//! `DescribeEndpoints` first to find an account-specific endpoint; AWS has deprecated that
//! ("no longer required ... send your requests directly to the regional endpoint"), so this
//! function never calls it and its role does not need `mediaconvert:DescribeEndpoints`.
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_MEDIACONVERT` are honoured too, as everywhere in the
//! SDK; `MediaConvertEndpoint` wins over them.
//!
//! # Asset id
//!
//! `UserMetadata.assetID` is deterministic, not a random UUID v4 as in the sample: a UUID
//! (version 8, RFC 9562) made of SHA-256 over bucket, key, version id, sequencer and ETag of the
//! S3 record ([`asset_id`]). S3 delivers events at least once, and a duplicate delivery of the
//! same upload gets the same id, which is also sent as CreateJob's `ClientRequestToken`:
//! MediaConvert returns the existing job for a repeated token within one minute instead of
//! starting a second transcode, and later duplicates are at least recognisable by their
//! `assetID` in the job events. A new upload of the same key has a new sequencer and so a new id.
//!
//! # IAM (the function's role)
//!
//! * `mediaconvert:CreateJob` (resource `*` or the queue ARN
//!   `arn:aws:mediaconvert:{region}:{account}:queues/Default`)
//! * `iam:PassRole` on the `MediaConvertRole` ARN, condition
//!   `iam:PassedToService = mediaconvert.amazonaws.com`
//! * `s3:GetObject` on `arn:aws:s3:::{source}/*` and `s3:ListBucket` on `arn:aws:s3:::{source}`
//!   (for the override file: without `ListBucket` a missing `job.json` answers 403, not 404)
//! * `logs:CreateLogStream`, `logs:PutLogEvents` on the function's log group, which `provision`
//!   makes beforehand with its retention (so no `logs:CreateLogGroup`)
//!
//! The MediaConvert role itself (not this function's) needs `s3:GetObject` on the source bucket
//! and `s3:PutObject` on the destination bucket.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_sdk_mediaconvert::error::DisplayErrorContext;
use lambda_runtime::Diagnostic;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub mod job;
pub mod keys;
pub mod overrides;
pub mod source;

use job::{Destinations, Profile};
use source::SettingsSource;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("bad event: {0}")]
    BadEvent(String),
    #[error("override file {location}: {reason}")]
    Override { location: String, reason: String },
    #[error("{action} failed: {message}")]
    Aws {
        action: &'static str,
        message: String,
    },
}

impl Error {
    fn error_type(&self) -> &'static str {
        match self {
            Error::Config(_) => "Config",
            Error::BadEvent(_) => "BadEvent",
            Error::Override { .. } => "Override",
            Error::Aws { .. } => "Aws",
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}

/// The function's settings, from the environment variables of the tutorial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub destination_bucket: String,
    pub mediaconvert_role: String,
    pub application: String,
    pub video_suffixes: Vec<String>,
    pub mediaconvert_endpoint: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (empty values count as unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |k: &str| get(k).ok_or_else(|| Error::Config(format!("{k} is not set")));

        let destination_bucket = required("DestinationBucket")?;
        if destination_bucket.contains('/') || destination_bucket.contains(':') {
            return Err(Error::Config(format!(
                "DestinationBucket {destination_bucket:?} must be a bucket name, not a URL or path"
            )));
        }
        let mediaconvert_role = required("MediaConvertRole")?;
        if !mediaconvert_role.starts_with("arn:") || !mediaconvert_role.contains(":role/") {
            return Err(Error::Config(format!(
                "MediaConvertRole {mediaconvert_role:?} must be an IAM role ARN \
                 (arn:aws:iam::ACCOUNT:role/NAME)"
            )));
        }
        let mediaconvert_endpoint = get("MediaConvertEndpoint");
        if let Some(ep) = &mediaconvert_endpoint {
            if !(ep.starts_with("https://") || ep.starts_with("http://")) {
                return Err(Error::Config(format!(
                    "MediaConvertEndpoint {ep:?} must be an http(s):// URL"
                )));
            }
        }
        Ok(Config {
            destination_bucket,
            mediaconvert_role,
            application: get("Application").unwrap_or_else(|| "VOD".to_string()),
            video_suffixes: keys::parse_suffixes(
                get("VideoSuffixes")
                    .as_deref()
                    .unwrap_or(keys::DEFAULT_VIDEO_SUFFIXES),
            )?,
            mediaconvert_endpoint,
        })
    }
}

/// A MediaConvert client from the shared configuration; `endpoint` (`MediaConvertEndpoint`)
/// replaces the regional endpoint when given.
pub fn mediaconvert_client(
    sdk: &aws_config::SdkConfig,
    endpoint: Option<&str>,
) -> aws_sdk_mediaconvert::Client {
    let mut conf = aws_sdk_mediaconvert::config::Builder::from(sdk);
    if let Some(ep) = endpoint {
        conf = conf.endpoint_url(ep);
    }
    aws_sdk_mediaconvert::Client::from_conf(conf.build())
}

/// An S3 client from the shared configuration (path-style when an endpoint override points
/// the SDK at an emulator).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let emulator = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()));
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(emulator)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Logs to stdout (CloudWatch) with the `RUST_LOG` filter, default `info`.
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

pub struct Deps {
    pub config: Config,
    pub mediaconvert: aws_sdk_mediaconvert::Client,
    pub settings: Arc<dyn SettingsSource>,
}

impl Deps {
    /// Once per cold start: configuration and clients.
    pub async fn from_env() -> Result<Self, Error> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(Deps {
            mediaconvert: mediaconvert_client(&sdk, config.mediaconvert_endpoint.as_deref()),
            settings: Arc::new(source::S3Settings(s3_client(&sdk))),
            config,
        })
    }
}

/// What S3 sends: notification records, or the one-off `s3:TestEvent` sent when a
/// notification configuration is saved (it has no `Records`).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Value")]
pub enum Notification {
    Records(S3Event),
    Test { event: String },
}

impl TryFrom<Value> for Notification {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        if v.get("Records").is_some() {
            return serde_json::from_value(v)
                .map(Notification::Records)
                .map_err(|e| format!("not an S3 event notification: {e}"));
        }
        match v.get("Event").and_then(Value::as_str) {
            Some(event) => Ok(Notification::Test {
                event: event.to_string(),
            }),
            None => Err("neither S3 event records nor an s3:TestEvent".into()),
        }
    }
}

/// The asset id of an S3 record: SHA-256 over bucket, decoded key, version id, sequencer and
/// ETag, shaped as a version-8 UUID (`xxxxxxxx-xxxx-8xxx-[89ab]xxx-xxxxxxxxxxxx`).
pub fn asset_id(
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    sequencer: Option<&str>,
    etag: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        Some(bucket),
        Some(key),
        version_id,
        sequencer,
        etag.map(|e| e.trim_matches('"')),
    ] {
        h.update(part.unwrap_or("").as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The job's `UserMetadata`, as in the sample: `assetID`, `application`, `input`, and
/// `settings` (`default`, or the location of the override file used).
pub fn user_metadata(
    asset_id: &str,
    application: &str,
    input: &str,
    settings: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("assetID".to_string(), asset_id.to_string()),
        ("application".to_string(), application.to_string()),
        ("input".to_string(), input.to_string()),
        ("settings".to_string(), settings.to_string()),
    ])
}

/// One video to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    pub asset_id: String,
}

impl Video {
    pub fn input_url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    pub fn name(&self) -> &str {
        keys::video_name(&self.key)
    }
}

/// What one record comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Convert(Video),
    Skip { key: String, reason: &'static str },
}

/// Decides what to do with one record: decode the key, filter by event name and suffix.
pub fn decide(config: &Config, rec: &S3EventRecord) -> Result<Decision, Error> {
    let raw = rec
        .s3
        .object
        .key
        .as_deref()
        .ok_or_else(|| Error::BadEvent("record without object key".into()))?;
    let key = keys::decode_s3_key(raw)?;
    let event_name = rec.event_name.as_deref().unwrap_or("");
    if !event_name.starts_with("ObjectCreated") {
        return Ok(Decision::Skip {
            key,
            reason: "not an ObjectCreated event",
        });
    }
    if keys::is_override_file(&key) {
        return Ok(Decision::Skip {
            key,
            reason: "override file: never converted",
        });
    }
    if !keys::is_video(&key, &config.video_suffixes) {
        return Ok(Decision::Skip {
            key,
            reason: "suffix not in VideoSuffixes",
        });
    }
    let bucket = rec
        .s3
        .bucket
        .name
        .clone()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::BadEvent(format!("record for {key:?} without bucket name")))?;
    let obj = &rec.s3.object;
    let asset_id = asset_id(
        &bucket,
        &key,
        obj.version_id.as_deref(),
        obj.sequencer.as_deref(),
        obj.e_tag.as_deref(),
    );
    Ok(Decision::Convert(Video {
        bucket,
        key,
        asset_id,
    }))
}

/// The profile for a video: the default, or the default with `{prefix}/job.json` applied.
/// Returns the profile and what `UserMetadata.settings` records.
pub async fn load_profile(
    source: &dyn SettingsSource,
    video: &Video,
) -> Result<(Profile, String), Error> {
    let key = keys::override_key(&video.key);
    let location = format!("s3://{}/{key}", video.bucket);
    let Some(bytes) = source.fetch(&video.bucket, &key).await? else {
        tracing::debug!(location, "no override file; default settings");
        return Ok((Profile::default(), "default".to_string()));
    };
    let profile = overrides::parse(&bytes)
        .and_then(|o| o.apply(Profile::default()))
        .map_err(|reason| Error::Override {
            location: location.clone(),
            reason,
        })?;
    tracing::info!(location, "override file applied");
    Ok((profile, location))
}

/// The result of one CreateJob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub job_id: String,
    pub asset_id: String,
    pub input: String,
    pub playlist: String,
    pub settings: String,
}

/// Builds and sends the CreateJob request for one video.
pub async fn submit(deps: &Deps, video: &Video) -> Result<Submitted, Error> {
    let (profile, settings_used) = load_profile(deps.settings.as_ref(), video).await?;
    let input = video.input_url();
    let name = video.name();
    let dest = Destinations::new(&deps.config.destination_bucket, name);
    let settings = job::job_settings(&input, &dest, &profile);
    let out = deps
        .mediaconvert
        .create_job()
        .role(&deps.config.mediaconvert_role)
        .settings(settings)
        .set_user_metadata(Some(user_metadata(
            &video.asset_id,
            &deps.config.application,
            &input,
            &settings_used,
        )))
        .client_request_token(&video.asset_id)
        .send()
        .await
        .map_err(|e| Error::Aws {
            action: "mediaconvert:CreateJob",
            message: format!("{input}: {}", DisplayErrorContext(&e)),
        })?;
    let job_id = out
        .job()
        .and_then(|j| j.id())
        .unwrap_or_default()
        .to_string();
    Ok(Submitted {
        job_id,
        asset_id: video.asset_id.clone(),
        input,
        playlist: format!(
            "s3://{}/{}",
            deps.config.destination_bucket,
            job::master_playlist_key(name)
        ),
        settings: settings_used,
    })
}

/// The Lambda handler. Any failure fails the invocation (S3's asynchronous invocation then
/// retries it); records that are not videos are skipped with a log line.
pub async fn handler(deps: &Deps, event: Notification) -> Result<Value, Error> {
    let records = match event {
        Notification::Test { event } => {
            tracing::info!(event, "S3 test event ignored");
            return Ok(json!({ "jobs": [], "skipped": [], "ignored": event }));
        }
        Notification::Records(ev) => ev.records,
    };
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for rec in &records {
        match decide(&deps.config, rec)? {
            Decision::Skip { key, reason } => {
                tracing::info!(key, reason, "skipped");
                skipped.push(json!({ "key": key, "reason": reason }));
            }
            Decision::Convert(video) => {
                let s = submit(deps, &video).await?;
                tracing::info!(
                    job_id = s.job_id,
                    asset_id = s.asset_id,
                    input = s.input,
                    playlist = s.playlist,
                    settings = s.settings,
                    "MediaConvert job created"
                );
                jobs.push(json!({
                    "jobId": s.job_id,
                    "assetID": s.asset_id,
                    "input": s.input,
                    "playlist": s.playlist,
                    "settings": s.settings,
                }));
            }
        }
    }
    Ok(json!({ "jobs": jobs, "skipped": skipped }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/MediaConvertRole";

    #[test]
    fn config_defaults_and_required() {
        let c = Config::from_lookup(env(&[
            ("DestinationBucket", "vod-out"),
            ("MediaConvertRole", ROLE),
        ]))
        .unwrap();
        assert_eq!(c.destination_bucket, "vod-out");
        assert_eq!(c.mediaconvert_role, ROLE);
        assert_eq!(c.application, "VOD");
        assert_eq!(c.mediaconvert_endpoint, None);
        assert!(c.video_suffixes.contains(&".mp4".to_string()));

        let c = Config::from_lookup(env(&[
            ("DestinationBucket", "vod-out"),
            ("MediaConvertRole", ROLE),
            ("Application", "MyVOD"),
            ("VideoSuffixes", "mp4"),
            (
                "MediaConvertEndpoint",
                "https://abcd.mediaconvert.us-east-1.amazonaws.com",
            ),
        ]))
        .unwrap();
        assert_eq!(c.application, "MyVOD");
        assert_eq!(c.video_suffixes, [".mp4"]);
        assert_eq!(
            c.mediaconvert_endpoint.as_deref(),
            Some("https://abcd.mediaconvert.us-east-1.amazonaws.com")
        );

        for (pairs, want) in [
            (
                vec![("MediaConvertRole", ROLE)],
                "DestinationBucket is not set",
            ),
            (
                vec![("DestinationBucket", " "), ("MediaConvertRole", ROLE)],
                "DestinationBucket is not set",
            ),
            (
                vec![("DestinationBucket", "b")],
                "MediaConvertRole is not set",
            ),
            (
                vec![("DestinationBucket", "s3://b"), ("MediaConvertRole", ROLE)],
                "bucket name",
            ),
            (
                vec![
                    ("DestinationBucket", "b"),
                    ("MediaConvertRole", "MediaConvertRole"),
                ],
                "role ARN",
            ),
            (
                vec![
                    ("DestinationBucket", "b"),
                    ("MediaConvertRole", ROLE),
                    (
                        "MediaConvertEndpoint",
                        "mediaconvert.us-east-1.amazonaws.com",
                    ),
                ],
                "http(s)://",
            ),
        ] {
            let err = Config::from_lookup(env(&pairs)).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn asset_id_is_a_deterministic_uuid() {
        let a = asset_id("src", "v/clip.mp4", None, Some("0A1B"), Some("\"abc\""));
        assert_eq!(
            a,
            asset_id("src", "v/clip.mp4", None, Some("0A1B"), Some("abc"))
        );
        assert_eq!(a.len(), 36);
        let parts: Vec<_> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "8", "version 8");
        assert!("89ab".contains(&a[19..20]), "RFC 9562 variant");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        // A new upload of the same key (new sequencer) or another key: another id.
        assert_ne!(
            a,
            asset_id("src", "v/clip.mp4", None, Some("0A1C"), Some("abc"))
        );
        assert_ne!(
            a,
            asset_id("src", "v/clip2.mp4", None, Some("0A1B"), Some("abc"))
        );
        assert_ne!(
            a,
            asset_id("src2", "v/clip.mp4", None, Some("0A1B"), Some("abc"))
        );
        // Parts cannot run into each other.
        assert_ne!(
            asset_id("ab", "c", None, None, None),
            asset_id("a", "bc", None, None, None)
        );
    }

    #[test]
    fn metadata_of_the_sample() {
        let m = user_metadata("id-1", "VOD", "s3://src/a b.mp4", "default");
        assert_eq!(m.len(), 4);
        assert_eq!(m["assetID"], "id-1");
        assert_eq!(m["application"], "VOD");
        assert_eq!(m["input"], "s3://src/a b.mp4");
        assert_eq!(m["settings"], "default");
    }

    #[test]
    fn notifications() {
        let t: Notification =
            serde_json::from_str(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#)
                .unwrap();
        assert!(matches!(t, Notification::Test { event } if event == "s3:TestEvent"));
        let err = serde_json::from_str::<Notification>(r#"{"foo": 1}"#).unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
        let err =
            serde_json::from_str::<Notification>(r#"{"Records": [{"eventName": 1}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("not an S3 event notification"),
            "{err}"
        );
    }
}
