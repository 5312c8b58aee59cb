//! The handler end to end with the real MediaConvert client pointed at a local recording HTTP
//! server (as `MediaConvertEndpoint` would point it): the S3 event fixtures go in, and the
//! CreateJob request the SDK puts on the wire is checked field by field. Override files come
//! from an in-memory `SettingsSource`.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_mediaconvert::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider,
};
use common::{Recorded, Reply, Server};
use serde_json::{json, Value};
use vod_convert::source::{MemorySource, SettingsSource};
use vod_convert::{handler, mediaconvert_client, Config, Deps, Error, Notification};

const SOURCE: &str = "vod-source-bucket";
const DEST: &str = "vod-output-bucket";
const ROLE: &str = "arn:aws:iam::123456789012:role/MediaConvertRole";
const JOB_ID: &str = "1716193862185-abc123";
/// The fixture's key, decoded.
const KEY: &str = "videos/2024/my first video 한글(1).mp4";
const NAME: &str = "my first video 한글(1)";

fn fixture(name: &str) -> Notification {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

async fn created_server() -> Server {
    Server::start(|_| {
        Reply::json(
            201,
            json!({ "job": { "id": JOB_ID, "status": "SUBMITTED" } }),
        )
    })
    .await
}

fn deps(server: &Server, settings: Arc<dyn SettingsSource>) -> Deps {
    let config = Config::from_lookup(|k| match k {
        "DestinationBucket" => Some(DEST.to_string()),
        "MediaConvertRole" => Some(ROLE.to_string()),
        "Application" => Some("VOD".to_string()),
        "MediaConvertEndpoint" => Some(server.url.clone()),
        _ => None,
    })
    .unwrap();
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDVODTEST",
            "vod-test-secret",
            None,
            None,
            "test",
        )))
        .build();
    Deps {
        mediaconvert: mediaconvert_client(&sdk, config.mediaconvert_endpoint.as_deref()),
        settings,
        config,
    }
}

/// The one CreateJob request the server saw, checked for method, path and signature.
fn the_create_job(server: &Server) -> Value {
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "exactly one request: {reqs:#?}");
    let r: &Recorded = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/2017-08-29/jobs");
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    let auth = r.header("authorization").expect("signed request");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDVODTEST/")
            && auth.contains("/us-east-1/mediaconvert/aws4_request"),
        "{auth}"
    );
    r.json()
}

fn group<'a>(body: &'a Value, custom_name: &str) -> &'a Value {
    body["settings"]["outputGroups"]
        .as_array()
        .expect("outputGroups")
        .iter()
        .find(|g| g["customName"] == custom_name)
        .unwrap_or_else(|| panic!("no output group {custom_name}"))
}

/// (nameModifier, width, height, bitrate) of each H.264 output of a group.
fn ladder(g: &Value) -> Vec<(String, i64, i64, i64)> {
    g["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let v = &o["videoDescription"];
            let h = &v["codecSettings"]["h264Settings"];
            assert_eq!(v["codecSettings"]["codec"], "H_264");
            assert_eq!(h["rateControlMode"], "CBR");
            assert_eq!(h["codecProfile"], "MAIN");
            (
                o["nameModifier"].as_str().unwrap_or("").to_string(),
                v["width"].as_i64().unwrap(),
                v["height"].as_i64().unwrap(),
                h["bitrate"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn aac_bitrates(g: &Value) -> Vec<i64> {
    g["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let a = &o["audioDescriptions"][0]["codecSettings"];
            assert_eq!(a["codec"], "AAC");
            assert_eq!(a["aacSettings"]["codecProfile"], "LC");
            assert_eq!(a["aacSettings"]["codingMode"], "CODING_MODE_2_0");
            assert_eq!(a["aacSettings"]["sampleRate"], 48000);
            a["aacSettings"]["bitrate"].as_i64().unwrap()
        })
        .collect()
}

fn s(v: &str) -> String {
    v.to_string()
}

#[tokio::test]
async fn records_create_job_for_an_encoded_key() {
    let server = created_server().await;
    let source = Arc::new(MemorySource::new());
    let deps = deps(&server, source.clone());

    let out = handler(&deps, fixture("s3-put-video.json")).await.unwrap();

    // The override file next to the decoded key was looked for (and is absent).
    assert_eq!(
        source.asked(),
        [format!("s3://{SOURCE}/videos/2024/job.json")]
    );

    let body = the_create_job(&server);
    let input = format!("s3://{SOURCE}/{KEY}");
    assert_eq!(body["role"], ROLE);
    let meta = &body["userMetadata"];
    assert_eq!(meta["application"], "VOD");
    assert_eq!(meta["input"], input.as_str());
    assert_eq!(meta["settings"], "default");
    let asset = meta["assetID"].as_str().unwrap();
    assert_eq!(asset.len(), 36);
    assert_eq!(
        body["clientRequestToken"], asset,
        "asset id is the idempotency token"
    );

    let inputs = body["settings"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0]["fileInput"], input.as_str());

    let names: Vec<_> = body["settings"]["outputGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["customName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["HLS", "MP4", "Thumbnails"]);

    let hls = group(&body, "HLS");
    let hs = &hls["outputGroupSettings"];
    assert_eq!(hs["type"], "HLS_GROUP_SETTINGS");
    assert_eq!(
        hs["hlsGroupSettings"]["destination"],
        format!("s3://{DEST}/{NAME}/hls/").as_str()
    );
    assert_eq!(hs["hlsGroupSettings"]["segmentLength"], 10);
    assert_eq!(
        ladder(hls),
        [
            (s("_360"), 640, 360, 1_000_000),
            (s("_540"), 960, 540, 2_000_000),
            (s("_720"), 1280, 720, 3_000_000),
        ]
    );
    for o in hls["outputs"].as_array().unwrap() {
        assert_eq!(o["containerSettings"]["container"], "M3U8");
    }
    assert_eq!(aac_bitrates(hls), [96_000; 3]);

    let mp4 = group(&body, "MP4");
    assert_eq!(mp4["outputGroupSettings"]["type"], "FILE_GROUP_SETTINGS");
    assert_eq!(
        mp4["outputGroupSettings"]["fileGroupSettings"]["destination"],
        format!("s3://{DEST}/{NAME}/mp4/").as_str()
    );
    assert_eq!(ladder(mp4), [(s(""), 1280, 720, 3_000_000)]);
    let c = &mp4["outputs"][0]["containerSettings"];
    assert_eq!(c["container"], "MP4");
    assert_eq!(c["mp4Settings"]["moovPlacement"], "PROGRESSIVE_DOWNLOAD");
    assert_eq!(aac_bitrates(mp4), [96_000]);

    let th = group(&body, "Thumbnails");
    assert_eq!(
        th["outputGroupSettings"]["fileGroupSettings"]["destination"],
        format!("s3://{DEST}/{NAME}/thumbnails/").as_str()
    );
    let o = &th["outputs"][0];
    assert_eq!(o["containerSettings"]["container"], "RAW");
    assert!(o.get("audioDescriptions").is_none(), "no audio: {o}");
    let v = &o["videoDescription"];
    assert_eq!(
        (v["width"].as_i64(), v["height"].as_i64()),
        (Some(1280), Some(720))
    );
    assert_eq!(v["codecSettings"]["codec"], "FRAME_CAPTURE");
    assert_eq!(
        v["codecSettings"]["frameCaptureSettings"],
        json!({ "framerateNumerator": 1, "framerateDenominator": 5, "maxCaptures": 500, "quality": 80 })
    );

    // No public-read ACL anywhere (the sample's PUBLIC_READ is deliberately gone).
    assert!(!body.to_string().contains("PUBLIC_READ"));

    assert_eq!(
        out,
        json!({
            "jobs": [{
                "jobId": JOB_ID,
                "assetID": asset,
                "input": input,
                "playlist": format!("s3://{DEST}/{NAME}/hls/{NAME}.m3u8"),
                "settings": "default",
            }],
            "skipped": [],
        })
    );
}

#[tokio::test]
async fn the_same_record_twice_gets_the_same_asset_id() {
    let server = created_server().await;
    let deps = deps(&server, Arc::new(MemorySource::new()));
    handler(&deps, fixture("s3-put-video.json")).await.unwrap();
    handler(&deps, fixture("s3-put-video.json")).await.unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let (a, b) = (reqs[0].json(), reqs[1].json());
    assert_eq!(a["userMetadata"]["assetID"], b["userMetadata"]["assetID"]);
    assert_eq!(a["clientRequestToken"], b["clientRequestToken"]);
}

#[tokio::test]
async fn override_file_changes_the_request() {
    let server = created_server().await;
    let source = Arc::new(MemorySource::new().with(
        SOURCE,
        "videos/2024/job.json",
        fixture_bytes("job-override.json"),
    ));
    let deps = deps(&server, source);

    let out = handler(&deps, fixture("s3-put-video.json")).await.unwrap();

    let body = the_create_job(&server);
    let location = format!("s3://{SOURCE}/videos/2024/job.json");
    assert_eq!(body["userMetadata"]["settings"], location.as_str());
    assert_eq!(out["jobs"][0]["settings"], location.as_str());

    let hls = group(&body, "HLS");
    assert_eq!(
        hls["outputGroupSettings"]["hlsGroupSettings"]["segmentLength"],
        6
    );
    assert_eq!(
        ladder(hls),
        [
            (s("_360"), 640, 360, 800_000),
            (s("_720"), 1280, 720, 2_500_000),
            (s("_1080"), 1920, 1080, 5_000_000),
        ]
    );
    assert_eq!(aac_bitrates(hls), [128_000; 3]);
    let mp4 = group(&body, "MP4");
    assert_eq!(ladder(mp4), [(s(""), 1920, 1080, 5_000_000)]);
    assert_eq!(aac_bitrates(mp4), [128_000]);
    let fc = &group(&body, "Thumbnails")["outputs"][0]["videoDescription"]["codecSettings"]
        ["frameCaptureSettings"];
    assert_eq!(fc["framerateDenominator"], 10);
    assert_eq!(fc["maxCaptures"], 100);
    assert_eq!(fc["quality"], 70);
    // Destinations do not depend on the override.
    assert_eq!(
        hls["outputGroupSettings"]["hlsGroupSettings"]["destination"],
        format!("s3://{DEST}/{NAME}/hls/").as_str()
    );
}

#[tokio::test]
async fn malformed_override_fails_before_mediaconvert() {
    let server = created_server().await;
    let source = Arc::new(MemorySource::new().with(
        SOURCE,
        "videos/2024/job.json",
        r#"{"segmentLenght": 6}"#,
    ));
    let deps = deps(&server, source);
    let err = handler(&deps, fixture("s3-put-video.json"))
        .await
        .unwrap_err();
    match &err {
        Error::Override { location, reason } => {
            assert_eq!(location, &format!("s3://{SOURCE}/videos/2024/job.json"));
            assert!(reason.contains("unknown field `segmentLenght`"), "{reason}");
        }
        other => panic!("expected an override error, got {other:?}"),
    }
    assert!(server.requests().is_empty(), "no CreateJob");
}

struct BrokenSource;

#[async_trait]
impl SettingsSource for BrokenSource {
    async fn fetch(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, Error> {
        Err(Error::Aws {
            action: "s3:GetObject",
            message: "AccessDenied".into(),
        })
    }
}

#[tokio::test]
async fn unreadable_override_fails_the_invocation() {
    let server = created_server().await;
    let deps = deps(&server, Arc::new(BrokenSource));
    let err = handler(&deps, fixture("s3-put-video.json"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Aws {
                action: "s3:GetObject",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(server.requests().is_empty(), "no CreateJob");
}

#[tokio::test]
async fn mediaconvert_error_fails_the_invocation() {
    let server = Server::start(|_| {
        let mut r = Reply::json(400, json!({ "message": "Invalid role ARN" }));
        r.headers
            .push(("x-amzn-ErrorType", "BadRequestException".into()));
        r
    })
    .await;
    let deps = deps(&server, Arc::new(MemorySource::new()));
    let err = handler(&deps, fixture("s3-put-video.json"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Aws {
                action: "mediaconvert:CreateJob",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains("BadRequestException") && msg.contains("Invalid role ARN"),
        "{msg}"
    );
    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn skips_non_videos_deletes_and_job_json() {
    let server = created_server().await;
    let source = Arc::new(MemorySource::new());
    let deps = deps(&server, source.clone());

    let out = handler(&deps, fixture("s3-put-mixed.json")).await.unwrap();

    assert_eq!(
        out["skipped"],
        json!([
            { "key": "videos/2024/job.json", "reason": "override file: never converted" },
            { "key": "videos/2024/notes (draft).txt", "reason": "suffix not in VideoSuffixes" },
            { "key": "videos/2024/old clip.mp4", "reason": "not an ObjectCreated event" },
        ])
    );
    // Only the root-level video: its override file is job.json at the bucket root.
    assert_eq!(source.asked(), [format!("s3://{SOURCE}/job.json")]);
    let body = the_create_job(&server);
    assert_eq!(
        body["settings"]["inputs"][0]["fileInput"],
        format!("s3://{SOURCE}/Clip One.MOV").as_str()
    );
    assert_eq!(
        group(&body, "HLS")["outputGroupSettings"]["hlsGroupSettings"]["destination"],
        format!("s3://{DEST}/Clip One/hls/").as_str()
    );
    assert_eq!(
        out["jobs"][0]["playlist"],
        format!("s3://{DEST}/Clip One/hls/Clip One.m3u8").as_str()
    );
}

#[tokio::test]
async fn s3_test_event_is_ignored() {
    let server = created_server().await;
    let source = Arc::new(MemorySource::new());
    let deps = deps(&server, source.clone());
    let out = handler(&deps, fixture("s3-test-event.json")).await.unwrap();
    assert_eq!(out["ignored"], "s3:TestEvent");
    assert!(server.requests().is_empty());
    assert!(source.asked().is_empty());
}

/// The stack triggers the function on every object of the source bucket (no suffix filter:
/// S3's filters are case-sensitive and would miss `IMG_0001.MOV`), so the function filters by
/// `VideoSuffixes`, case-insensitively, and skips everything else successfully.
#[tokio::test]
async fn unfiltered_trigger_converts_only_videos_whatever_their_case() {
    let server = created_server().await;
    let source = Arc::new(MemorySource::new());
    let deps = deps(&server, source.clone());

    let out = handler(&deps, fixture("s3-put-unfiltered.json"))
        .await
        .expect("non-videos are skipped, not failed");

    assert_eq!(out["jobs"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(
        out["jobs"][0]["input"],
        format!("s3://{SOURCE}/IMG_0001.MOV").as_str()
    );
    assert_eq!(
        out["jobs"][0]["playlist"],
        format!("s3://{DEST}/IMG_0001/hls/IMG_0001.m3u8").as_str()
    );
    assert_eq!(
        out["skipped"],
        json!([
            { "key": "job.json", "reason": "override file: never converted" },
            { "key": ".DS_Store", "reason": "suffix not in VideoSuffixes" },
            { "key": "uploads/", "reason": "suffix not in VideoSuffixes" },
            { "key": "uploads/poster.JPG", "reason": "suffix not in VideoSuffixes" },
            { "key": "uploads/영상 메모.txt", "reason": "suffix not in VideoSuffixes" },
            { "key": "uploads/MOV", "reason": "suffix not in VideoSuffixes" },
        ])
    );
    // One CreateJob, for the video only.
    let body = the_create_job(&server);
    assert_eq!(
        body["settings"]["inputs"][0]["fileInput"],
        format!("s3://{SOURCE}/IMG_0001.MOV").as_str()
    );
}

/// A custom `VideoSuffixes` in any case matches keys in any case.
#[tokio::test]
async fn custom_suffixes_match_case_insensitively() {
    let server = created_server().await;
    let mut deps = deps(&server, Arc::new(MemorySource::new()));
    deps.config.video_suffixes = vod_convert::keys::parse_suffixes("MOV, .Mts").unwrap();
    let out = handler(&deps, fixture("s3-put-unfiltered.json"))
        .await
        .unwrap();
    assert_eq!(out["jobs"].as_array().unwrap().len(), 1, "{out}");
    assert!(vod_convert::keys::is_video(
        "a/clip.mts",
        &deps.config.video_suffixes
    ));
    assert!(vod_convert::keys::is_video(
        "a/CLIP.MTS",
        &deps.config.video_suffixes
    ));
    assert!(!vod_convert::keys::is_video(
        "a/clip.mp4",
        &deps.config.video_suffixes
    ));
}
