//! Event shapes shared by the S3-triggered functions.

use aws_lambda_events::s3::S3Event;
use serde::Deserialize;

use crate::keys::decode_s3_key;
use crate::{Error, Result};

/// What S3 sends to a function: either notification records, or the one-off
/// `s3:TestEvent` it sends when a notification configuration is saved (no `Records`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum S3Notification {
    Test(S3TestEvent),
    Records(S3Event),
}

#[derive(Debug, Deserialize)]
pub struct S3TestEvent {
    #[serde(rename = "Event")]
    pub event: String,
    #[serde(rename = "Bucket", default)]
    pub bucket: Option<String>,
}

/// One created object, with its key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    pub key: String,
    pub event_name: String,
}

impl S3Notification {
    /// The created objects of the notification (none for a test event). Records other than
    /// `ObjectCreated:*` are skipped.
    pub fn created_objects(&self) -> Result<Vec<CreatedObject>> {
        let S3Notification::Records(ev) = self else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for rec in &ev.records {
            let event_name = rec.event_name.clone().unwrap_or_default();
            if !event_name.starts_with("ObjectCreated") {
                tracing::info!(event_name, "skipping a record that is not ObjectCreated");
                continue;
            }
            let bucket = rec
                .s3
                .bucket
                .name
                .clone()
                .ok_or_else(|| Error::BadEvent("record without bucket name".into()))?;
            let raw = rec
                .s3
                .object
                .key
                .as_deref()
                .ok_or_else(|| Error::BadEvent("record without object key".into()))?;
            out.push(CreatedObject {
                bucket,
                key: decode_s3_key(raw)?,
                event_name,
            });
        }
        Ok(out)
    }

    pub fn is_test_event(&self) -> bool {
        matches!(self, S3Notification::Test(t) if t.event == "s3:TestEvent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_event() {
        let n: S3Notification =
            serde_json::from_slice(include_bytes!("../fixtures/s3-test-event.json")).unwrap();
        assert!(n.is_test_event());
        assert!(n.created_objects().unwrap().is_empty());
    }

    #[test]
    fn parses_korean_put() {
        let n: S3Notification =
            serde_json::from_slice(include_bytes!("../fixtures/s3-put-korean.json")).unwrap();
        let objs = n.created_objects().unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(
            objs[0].key,
            "input_audio/0123456789abcdef0123456789abcdef/한글 녹음.mp3"
        );
        assert_eq!(objs[0].bucket, "stt-audio-bucket");
    }
}
