//! S3 keys: decoding the URL-encoded keys of S3 event notifications, and the key layout of
//! the audio bucket.
//!
//! ```text
//! input_audio/{upload_id}/{stem}.{ext}         audio, written by file_upload; {ext} is one
//!                                              of AUDIO_EXTENSIONS, lowercase
//! output_text/{upload_id}/transcript.json      Transcribe's transcript (OutputKey)
//! output_text/{upload_id}/{stem}.txt           plain text, written by save_text
//! output_text/{upload_id}/.failure-notice.txt  failure notice, written by audio_transcribe
//!                                              or save_text when the upload FAILED
//! ```
//! `upload_id` is 32 lowercase hex characters (a UUID without dashes) and is the unique key
//! of the row in `fileTable`, so every handler finds the row from the object key alone.
//!
//! Both `.txt` objects trigger send_email (S3 rule: prefix `output_text/`, suffix `.txt`),
//! which mails the transcript, or, when the row is `FAILED`, the failure message. The notice's
//! name starts with a dot, which no `{stem}` does (file_upload strips leading dots), so it
//! never collides with a text.

use crate::{Error, Result};

pub const INPUT_PREFIX: &str = "input_audio/";
pub const OUTPUT_PREFIX: &str = "output_text/";
/// S3 keys are at most 1024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// The extensions of audio keys, lowercase: the suffixes of the stack's S3 notification rules
/// (one rule per suffix; S3 matches suffixes literally and case-sensitively) and Amazon
/// Transcribe's `MediaFormat` values.
pub const AUDIO_EXTENSIONS: [&str; 8] = ["mp3", "wav", "flac", "ogg", "m4a", "mp4", "webm", "amr"];
/// The file name of the failure notice under `output_text/{upload_id}/`.
pub const FAILURE_NOTICE_NAME: &str = ".failure-notice.txt";

/// Decodes a key from an S3 event notification: `+` is a space and `%XX` a byte; the bytes
/// must form UTF-8 (Korean names arrive as `%ED%95%9C...`).
pub fn decode_s3_key(raw: &str) -> Result<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::BadEvent(format!("bad percent-escape at byte {i} of key {raw:?}"))
                    })?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::BadEvent(format!("key {raw:?} does not decode to UTF-8")))
}

/// Decodes `%XX` escapes only (a URL path, where `+` is a literal plus).
pub fn percent_decode(raw: &str) -> Result<String> {
    let mut tmp = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c == '+' {
            tmp.push_str("%2B");
        } else {
            tmp.push(c);
        }
    }
    decode_s3_key(&tmp)
}

/// Splits an S3 object location as Transcribe reports it (`TranscriptFileUri`) into bucket
/// and decoded key. Understands `s3://bucket/key`, path-style
/// `https://s3.region.amazonaws.com/bucket/key`, virtual-hosted
/// `https://bucket.s3.region.amazonaws.com/key` and emulator URLs
/// `http://127.0.0.1:4566/bucket/key`.
pub fn parse_s3_uri(uri: &str) -> Result<(String, String)> {
    let bad = || Error::BadEvent(format!("not an S3 object location: {uri}"));
    let (scheme, rest) = uri.split_once("://").ok_or_else(bad)?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (host, path) = rest.split_once('/').ok_or_else(bad)?;
    let (bucket, key) = if scheme.eq_ignore_ascii_case("s3") {
        (host.to_string(), path)
    } else if let Some(i) = host.find(".s3.").or_else(|| host.find(".s3-")) {
        (host[..i].to_string(), path)
    } else {
        let (b, k) = path.split_once('/').ok_or_else(bad)?;
        (percent_decode(b)?, k)
    };
    if bucket.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok((bucket, percent_decode(key)?))
}

/// True for a 32-character lowercase hex upload id.
pub fn is_upload_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits `{prefix}{upload_id}/{name}` into `(upload_id, name)`.
pub fn split_key<'a>(key: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = key.strip_prefix(prefix)?;
    let (id, name) = rest.split_once('/')?;
    (is_upload_id(id) && !name.is_empty() && !name.contains('/')).then_some((id, name))
}

/// The key of an uploaded audio file.
pub fn audio_key(upload_id: &str, filename: &str) -> String {
    format!("{INPUT_PREFIX}{upload_id}/{filename}")
}

/// The file name without its last extension.
pub fn stem(name: &str) -> &str {
    match name.rfind('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

/// The extension (lowercase, without dot), if any.
pub fn extension(name: &str) -> Option<String> {
    match name.rfind('.') {
        Some(0) | None => None,
        Some(i) => Some(name[i + 1..].to_ascii_lowercase()),
    }
}

/// Where Transcribe writes its JSON transcript. Transcribe takes an `OutputKey` of
/// `[a-zA-Z0-9-_.!*'()/]{1,1024}` only, so the uploader's file name (Korean, spaces) cannot be
/// part of it; the readable name stays on the audio and the `.txt` people see.
pub fn transcript_key(upload_id: &str) -> String {
    format!("{OUTPUT_PREFIX}{upload_id}/transcript.json")
}

/// Whether Transcribe accepts a key as its `OutputKey` (the pattern of its API model).
pub fn is_transcribe_output_key(key: &str) -> bool {
    (1..=1024).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!*'()/".contains(&b))
}

/// Where audio_transcribe or save_text writes the notice that an upload FAILED; its creation
/// makes send_email mail the failure message.
pub fn failure_notice_key(upload_id: &str) -> String {
    format!("{OUTPUT_PREFIX}{upload_id}/{FAILURE_NOTICE_NAME}")
}

/// True for a failure notice key.
pub fn is_failure_notice(key: &str) -> bool {
    split_key(key, OUTPUT_PREFIX).is_some_and(|(_, name)| name == FAILURE_NOTICE_NAME)
}

/// True when an audio key ends with one of [`AUDIO_EXTENSIONS`] exactly as the S3 rules
/// spell them (lowercase), after a non-empty stem.
pub fn has_audio_suffix(key: &str) -> bool {
    AUDIO_EXTENSIONS.iter().any(|ext| {
        key.strip_suffix(ext)
            .and_then(|k| k.strip_suffix('.'))
            .is_some_and(|stem| !stem.is_empty() && !stem.ends_with('/'))
    })
}

/// Where save_text writes the plain text for an audio key.
pub fn text_key(upload_id: &str, audio_name: &str) -> String {
    format!("{OUTPUT_PREFIX}{upload_id}/{}.txt", stem(audio_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(
            decode_s3_key("input_audio/my+file%281%29.mp3").unwrap(),
            "input_audio/my file(1).mp3"
        );
        assert_eq!(decode_s3_key("a%2Bb").unwrap(), "a+b");
    }

    #[test]
    fn decodes_korean() {
        assert_eq!(
            decode_s3_key("input_audio/%ED%95%9C%EA%B8%80+%EB%85%B9%EC%9D%8C.mp3").unwrap(),
            "input_audio/한글 녹음.mp3"
        );
    }

    #[test]
    fn rejects_bad_escapes() {
        assert!(decode_s3_key("a%2").is_err());
        assert!(decode_s3_key("a%zz").is_err());
        assert!(decode_s3_key("a%FF").is_err(), "not UTF-8");
    }

    #[test]
    fn s3_uris() {
        let want = ("bkt".to_string(), "output_text/id/한 글+1.json".to_string());
        for uri in [
            "https://s3.us-east-1.amazonaws.com/bkt/output_text/id/%ED%95%9C%20%EA%B8%80+1.json",
            "https://s3.amazonaws.com/bkt/output_text/id/%ED%95%9C%20%EA%B8%80+1.json",
            "https://bkt.s3.us-east-1.amazonaws.com/output_text/id/%ED%95%9C%20%EA%B8%80+1.json",
            "http://127.0.0.1:4566/bkt/output_text/id/%ED%95%9C%20%EA%B8%80+1.json",
            "s3://bkt/output_text/id/%ED%95%9C%20%EA%B8%80+1.json",
        ] {
            assert_eq!(parse_s3_uri(uri).unwrap(), want, "{uri}");
        }
        assert!(parse_s3_uri("https://s3.amazonaws.com/bkt").is_err());
        assert!(parse_s3_uri("nonsense").is_err());
    }

    #[test]
    fn key_layout() {
        let id = "0123456789abcdef0123456789abcdef";
        let k = audio_key(id, "한글 녹음.mp3");
        assert_eq!(split_key(&k, INPUT_PREFIX), Some((id, "한글 녹음.mp3")));
        assert_eq!(
            text_key(id, "한글 녹음.mp3"),
            format!("output_text/{id}/한글 녹음.txt")
        );
        assert_eq!(
            transcript_key(id),
            format!("output_text/{id}/transcript.json")
        );
        assert!(is_transcribe_output_key(&transcript_key(id)));
        assert!(!is_transcribe_output_key(&format!(
            "output_text/{id}/한글 녹음.json"
        )));
        assert!(!is_transcribe_output_key(&format!(
            "output_text/{id}/hello world.json"
        )));
        assert_eq!(split_key("input_audio/x/a.mp3", INPUT_PREFIX), None);
        assert_eq!(
            split_key(&format!("input_audio/{id}/a/b.mp3"), INPUT_PREFIX),
            None
        );
        assert_eq!(stem(".hidden"), ".hidden");
        let notice = failure_notice_key(id);
        assert_eq!(notice, format!("output_text/{id}/.failure-notice.txt"));
        assert!(notice.ends_with(".txt"), "the send_email rule's suffix");
        assert!(is_failure_notice(&notice));
        assert!(!is_failure_notice(&text_key(id, "failure-notice.mp3")));
        assert!(!is_failure_notice(&text_key(id, "x.mp3")));
        assert!(has_audio_suffix(&audio_key(id, "녹음.mp3")));
        assert!(
            !has_audio_suffix(&audio_key(id, "녹음.MP3")),
            "S3 suffixes are case-sensitive"
        );
        assert!(!has_audio_suffix(&audio_key(id, "a.wave")));
        assert!(!has_audio_suffix(&format!("input_audio/{id}/.mp3")));
        assert_eq!(extension("A.MP3").as_deref(), Some("mp3"));
    }
}
