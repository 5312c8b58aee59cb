//! `S3Settings` (the override-file reader of the function) with the real S3 client pointed at
//! the local recording server: NoSuchKey means "no override", a body is returned, and a 403
//! fails with a hint about `s3:ListBucket`.

mod common;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use common::{Reply, Server};
use vod_convert::source::{S3Settings, SettingsSource};
use vod_convert::Error;

fn s3(server: &Server) -> S3Settings {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDVODTEST",
            "secret",
            None,
            None,
            "test",
        ))
        .endpoint_url(&server.url)
        .force_path_style(true)
        .build();
    S3Settings(aws_sdk_s3::Client::from_conf(conf))
}

fn xml_error(status: u16, code: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type", "application/xml".into())],
        body: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <Error><Code>{code}</Code><Message>{code}</Message><RequestId>R1</RequestId></Error>"
        )
        .into_bytes(),
    }
}

#[tokio::test]
async fn no_such_key_is_no_override() {
    let server = Server::start(|_| xml_error(404, "NoSuchKey")).await;
    let got = s3(&server)
        .fetch("vod-source-bucket", "videos/2024/job.json")
        .await
        .unwrap();
    assert_eq!(got, None);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(
        reqs[0].target.split('?').next().unwrap(),
        "/vod-source-bucket/videos/2024/job.json"
    );
}

#[tokio::test]
async fn existing_override_is_returned() {
    let server = Server::start(|_| Reply {
        status: 200,
        headers: vec![("Content-Type", "application/json".into())],
        body: br#"{"segmentLength": 6}"#.to_vec(),
    })
    .await;
    let got = s3(&server)
        .fetch("vod-source-bucket", "job.json")
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&br#"{"segmentLength": 6}"#[..]));
    assert_eq!(
        server.requests()[0].target.split('?').next().unwrap(),
        "/vod-source-bucket/job.json"
    );
}

#[tokio::test]
async fn access_denied_is_an_error_with_a_hint() {
    let server = Server::start(|_| xml_error(403, "AccessDenied")).await;
    let err = s3(&server)
        .fetch("vod-source-bucket", "videos/job.json")
        .await
        .unwrap_err();
    let msg = err.to_string();
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
    assert!(
        msg.contains("AccessDenied") && msg.contains("s3:ListBucket"),
        "{msg}"
    );
}

#[tokio::test]
async fn no_such_bucket_is_an_error() {
    let server = Server::start(|_| xml_error(404, "NoSuchBucket")).await;
    let err = s3(&server)
        .fetch("vod-source-bucket", "job.json")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}
