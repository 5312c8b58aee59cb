//! What the page needs to send a file straight to S3, computed without a network call: the
//! signed POST policy of a single upload, and the parts of a multipart upload.
//!
//! The POST policy follows "Authenticating Requests in Browser-Based Uploads Using POST
//! (AWS Signature Version 4)": a JSON policy (expiration and conditions), base64-encoded, is
//! the string to sign; the signing key is SigV4's (`AWS4` + secret, date, region, `s3`,
//! `aws4_request`). Every condition is exact: the bucket, the one key, the declared content
//! type, a content-length range of exactly the declared size, and the signing fields.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use base64::Engine;
use serde_json::{json, Value};

/// Files above this size go in parts: a part that fails is sent again, not the whole file.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The smallest part (S3 refuses a part under 5 MiB other than the last).
pub const MIN_PART_BYTES: u64 = 8 * 1024 * 1024;
/// At most this many parts, so that the answer (one presigned URL per part) stays small; S3
/// itself allows 10,000.
pub const MAX_PARTS: u64 = 100;
/// A presigned upload never lasts longer than this: it is signed with the function's
/// temporary credentials, which end within hours.
pub const MAX_EXPIRY: Duration = Duration::from_secs(3600);
/// The slowest connection a large file's expiry allows for, in bytes per second (4 Mbit/s).
const SLOWEST_BYTES_PER_S: u64 = 500_000;

/// The credentials a policy is signed with (the function's role).
#[derive(Clone)]
pub struct SigningCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// One upload as the page sends it: a form posted to `url` with `fields` (in this order)
/// and the file last.
#[derive(Debug, Clone, PartialEq)]
pub struct PostForm {
    pub url: String,
    pub fields: Vec<(String, String)>,
}

/// What the policy allows.
pub struct PostTarget<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    pub size: u64,
    pub region: &'a str,
    /// Where the form goes: the bucket's virtual-hosted address on AWS, or the emulator's.
    pub url: String,
}

/// How long a presigned upload of `size` bytes stays valid: the stack's expiry, longer for a
/// large file on a slow connection, never over [`MAX_EXPIRY`].
pub fn expiry_for(size: u64, configured: Duration) -> Duration {
    let transfer = Duration::from_secs(size / SLOWEST_BYTES_PER_S);
    (configured + transfer).min(MAX_EXPIRY.max(configured))
}

/// The address a browser posts a form to: virtual-hosted style on AWS, path style on an
/// emulator's endpoint.
pub fn post_url(bucket: &str, region: &str, endpoint: Option<&str>) -> String {
    match endpoint {
        Some(e) => format!("{}/{bucket}/", e.trim_end_matches('/')),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
    }
}

/// The signed form of a single upload, valid from `now` for `expires_in`.
pub fn post_form(
    target: &PostTarget<'_>,
    creds: &SigningCredentials,
    now: SystemTime,
    expires_in: Duration,
) -> PostForm {
    let stamp = DateTime::from(now);
    let iso = stamp
        .fmt(DateTimeFormat::DateTime)
        .expect("a time after 1970 formats");
    // 2026-12-05T21:30:00Z -> 20261205T213000Z
    let amz_date: String = iso[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect::<String>()
        + "Z";
    let day = &amz_date[..8];
    let credential = format!(
        "{}/{day}/{}/s3/aws4_request",
        creds.access_key_id, target.region
    );
    // Whole seconds, as AWS's examples and botocore write it (a fraction is not documented).
    let expiration = DateTime::from_secs(DateTime::from(now + expires_in).secs())
        .fmt(DateTimeFormat::DateTime)
        .expect("a time after 1970 formats");
    let mut fields = vec![
        ("key".to_owned(), target.key.to_owned()),
        ("Content-Type".to_owned(), target.content_type.to_owned()),
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date.clone()),
    ];
    if let Some(token) = &creds.session_token {
        fields.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    let mut conditions: Vec<Value> = vec![json!({ "bucket": target.bucket })];
    conditions.extend(fields.iter().map(|(k, v)| json!({ k: v })));
    conditions.push(json!(["content-length-range", target.size, target.size]));
    let policy = json!({ "expiration": expiration, "conditions": conditions });
    let encoded = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(
        &creds.secret_access_key,
        now,
        target.region,
        "s3",
    );
    let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, encoded.as_bytes());
    fields.push(("policy".to_owned(), encoded));
    fields.push(("x-amz-signature".to_owned(), signature));
    PostForm {
        url: target.url.clone(),
        fields,
    }
}

/// The parts of a multipart upload of `size` bytes: (part number, size), numbered from 1,
/// every part [`part_size`] long but the last.
pub fn parts(size: u64) -> Vec<(i32, u64)> {
    let part = part_size(size);
    let count = size.div_ceil(part);
    (0..count)
        .map(|i| (i as i32 + 1, part.min(size - i * part)))
        .collect()
}

/// The size of every part but the last: [`MIN_PART_BYTES`], or more (in whole MiB) so that
/// the file fits in [`MAX_PARTS`].
pub fn part_size(size: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    MIN_PART_BYTES.max(size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> SigningCredentials {
        SigningCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// AWS's own worked example (Amazon S3 API reference, "Example: Browser-Based Upload
    /// using HTTP POST (Using AWS Signature Version 4)"): its policy, base64-encoded, signed
    /// with its key on 2015-12-29 in us-east-1, gives its signature.
    #[test]
    fn the_signature_is_aws_worked_example() {
        let policy = "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAgICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAidXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25fcmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxfdXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQogICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRlLWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAiIl0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMtZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEyNTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9";
        let day = SystemTime::UNIX_EPOCH + Duration::from_secs(1_451_347_200); // 2015-12-29
        let key = aws_sigv4::sign::v4::generate_signing_key(
            &creds().secret_access_key,
            day,
            "us-east-1",
            "s3",
        );
        assert_eq!(
            aws_sigv4::sign::v4::calculate_signature(key, policy.as_bytes()),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    #[test]
    fn the_policy_allows_one_key_one_type_one_size_until_it_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_506_200); // 2026-12-05T21:30:00Z
        let target = PostTarget {
            bucket: "stack-audio-123456789012",
            key: "input_audio/0123456789abcdef0123456789abcdef/회의 녹음.mp3",
            content_type: "audio/mpeg",
            size: 31_457_280,
            region: "ap-northeast-2",
            url: post_url("stack-audio-123456789012", "ap-northeast-2", None),
        };
        let mut c = creds();
        c.session_token = Some("IQoJb3JpZ2luX2VjE...".into());
        // A time with a fraction, as `SystemTime::now()` gives it.
        let form = post_form(
            &target,
            &c,
            now + Duration::from_micros(123_456),
            Duration::from_secs(900),
        );
        assert_eq!(
            form.url,
            "https://stack-audio-123456789012.s3.ap-northeast-2.amazonaws.com/"
        );
        let field = |name: &str| {
            form.fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no field {name}"))
        };
        assert_eq!(field("x-amz-date"), "20261205T213000Z");
        assert_eq!(
            field("x-amz-credential"),
            "AKIAIOSFODNN7EXAMPLE/20261205/ap-northeast-2/s3/aws4_request"
        );
        let policy: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(field("policy"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(policy["expiration"], "2026-12-05T21:45:00Z");
        let conditions = policy["conditions"].as_array().unwrap();
        for want in [
            json!({"bucket": "stack-audio-123456789012"}),
            json!({"key": target.key}),
            json!({"Content-Type": "audio/mpeg"}),
            json!({"x-amz-security-token": "IQoJb3JpZ2luX2VjE..."}),
            json!(["content-length-range", 31_457_280, 31_457_280]),
        ] {
            assert!(conditions.contains(&want), "{want} not in {policy}");
        }
        // Every field the form carries (but the policy and signature) is a condition: S3
        // refuses a form with a field the policy does not name.
        for (name, value) in &form.fields {
            if name != "policy" && name != "x-amz-signature" {
                assert!(conditions.contains(&json!({ name: value })), "{name}");
            }
        }
        // The signature is of the policy as sent, with the day's key.
        let key = aws_sigv4::sign::v4::generate_signing_key(
            &c.secret_access_key,
            now,
            "ap-northeast-2",
            "s3",
        );
        assert_eq!(
            field("x-amz-signature"),
            aws_sigv4::sign::v4::calculate_signature(key, field("policy").as_bytes())
        );
        assert_eq!(form.fields.last().unwrap().0, "x-amz-signature");
    }

    #[test]
    fn emulator_urls_are_path_style() {
        assert_eq!(
            post_url("b", "us-east-1", Some("http://127.0.0.1:4566/")),
            "http://127.0.0.1:4566/b/"
        );
    }

    #[test]
    fn parts_cover_the_file_within_s3_limits() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(
            parts(30 * 1000 * 1000),
            vec![
                (1, 8 * MIB),
                (2, 8 * MIB),
                (3, 8 * MIB),
                (4, 30_000_000 - 24 * MIB)
            ]
        );
        for size in [
            MULTIPART_THRESHOLD + 1,
            500_000_000,
            2_000_000_000,
            5 * 1024 * MIB,
        ] {
            let p = parts(size);
            assert!(p.len() as u64 <= MAX_PARTS, "{size}");
            assert_eq!(p.iter().map(|(_, s)| s).sum::<u64>(), size);
            assert!(p[..p.len() - 1].iter().all(|(_, s)| *s >= 5 * MIB));
            assert!(p.iter().enumerate().all(|(i, (n, _))| *n == i as i32 + 1));
        }
    }

    #[test]
    fn expiry_grows_with_size_up_to_an_hour() {
        let base = Duration::from_secs(900);
        assert_eq!(expiry_for(1_000_000, base), Duration::from_secs(902));
        assert_eq!(expiry_for(30_000_000, base), Duration::from_secs(960));
        assert_eq!(expiry_for(2_000_000_000, base), MAX_EXPIRY);
    }
}
