//! Object keys: decoding the URL-encoded keys of S3 event notifications, the video name, the
//! override file next to a video, and the suffix filter.
//!
//! The decoder is a few lines on purpose: `stt-common` has one too, but depending on that
//! crate would pull the speech-to-text system's MySQL, Secrets Manager and Transcribe clients
//! into this function.

use crate::Error;

/// The name of the override file (see [`crate::overrides`]).
pub const OVERRIDE_FILE: &str = "job.json";

/// The default of `VideoSuffixes`: containers MediaConvert reads. `.ts`/`.m2ts`/`.mts` are
/// MPEG transport streams (the sample's own test input is an `.m2ts`), `.mxf` broadcast files.
pub const DEFAULT_VIDEO_SUFFIXES: &str =
    ".mp4,.m4v,.mov,.mkv,.webm,.avi,.wmv,.flv,.mpg,.mpeg,.ts,.m2ts,.mts,.mxf,.3gp";

/// Decodes a key from an S3 event notification: `+` is a space, `%XX` a byte, and the bytes
/// must form UTF-8 (`my+video%20%ED%95%9C.mp4` is `my video 한.mp4`).
pub fn decode_s3_key(raw: &str) -> Result<String, Error> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::BadEvent(format!("bad percent-escape at byte {i} of key {raw:?}"))
                    })?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Error::BadEvent(format!("key {raw:?} does not decode to UTF-8")))
}

/// The last segment of a key (`videos/2024/clip.mp4` → `clip.mp4`).
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The video name: the file stem of the key's last segment, i.e. without its last extension
/// (`videos/my clip.v2.mp4` → `my clip.v2`). MediaConvert names its outputs after the same
/// stem, which makes the master playlist `{name}/hls/{name}.m3u8`.
pub fn video_name(key: &str) -> &str {
    let name = file_name(key);
    match name.rfind('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

/// Where the override file for a video lives: `job.json` in the same "folder"
/// (`videos/2024/clip.mp4` → `videos/2024/job.json`; `clip.mp4` → `job.json`).
pub fn override_key(key: &str) -> String {
    match key.rfind('/') {
        Some(i) => format!("{}{OVERRIDE_FILE}", &key[..=i]),
        None => OVERRIDE_FILE.to_string(),
    }
}

/// True for the override file itself, which never triggers a job.
pub fn is_override_file(key: &str) -> bool {
    file_name(key) == OVERRIDE_FILE
}

/// Parses `VideoSuffixes`: comma-separated, case-insensitive, the leading dot optional
/// (`mp4, .MOV` → `[".mp4", ".mov"]`).
pub fn parse_suffixes(list: &str) -> Result<Vec<String>, Error> {
    let suffixes: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != ".")
        .map(|s| {
            let s = s.to_lowercase();
            if s.starts_with('.') {
                s
            } else {
                format!(".{s}")
            }
        })
        .collect();
    if suffixes.is_empty() {
        return Err(Error::Config(format!(
            "VideoSuffixes {list:?} names no suffix"
        )));
    }
    Ok(suffixes)
}

/// True when the key's file name ends with one of the (lowercase) suffixes and has a stem.
pub fn is_video(key: &str, suffixes: &[String]) -> bool {
    let name = file_name(key).to_lowercase();
    suffixes
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_korean() {
        assert_eq!(
            decode_s3_key("my+video%20%ED%95%9C.mp4").unwrap(),
            "my video 한.mp4"
        );
        assert_eq!(
            decode_s3_key("in/%ED%95%9C%EA%B8%80+%EC%98%81%EC%83%81.mov").unwrap(),
            "in/한글 영상.mov"
        );
        assert_eq!(decode_s3_key("a%2Bb%2fc").unwrap(), "a+b/c");
        assert_eq!(decode_s3_key("plain.mp4").unwrap(), "plain.mp4");
    }

    #[test]
    fn rejects_bad_escapes() {
        for bad in ["a%2", "a%zz", "a%+1", "a%-1"] {
            assert!(
                matches!(decode_s3_key(bad), Err(Error::BadEvent(_))),
                "{bad}"
            );
        }
        assert!(decode_s3_key("a%FF").is_err(), "not UTF-8");
    }

    #[test]
    fn video_names() {
        assert_eq!(video_name("my video 한.mp4"), "my video 한");
        assert_eq!(video_name("videos/2024/clip.v2.mov"), "clip.v2");
        assert_eq!(video_name("noext"), "noext");
        assert_eq!(video_name("dir/.hidden"), ".hidden");
        assert_eq!(file_name("a/b/c.mp4"), "c.mp4");
    }

    #[test]
    fn override_keys() {
        assert_eq!(override_key("videos/2024/clip.mp4"), "videos/2024/job.json");
        assert_eq!(override_key("clip.mp4"), "job.json");
        assert_eq!(override_key("a/clip.mp4"), "a/job.json");
        assert!(is_override_file("job.json"));
        assert!(is_override_file("videos/job.json"));
        assert!(!is_override_file("videos/job.json.mp4"));
        assert!(!is_override_file("videos/myjob.json"));
    }

    #[test]
    fn suffix_filter() {
        let s = parse_suffixes(DEFAULT_VIDEO_SUFFIXES).unwrap();
        assert!(is_video("a/b.mp4", &s));
        assert!(is_video("a/B.MOV", &s));
        assert!(is_video("VANLIFE.m2ts", &s));
        assert!(!is_video("a/job.json", &s));
        assert!(!is_video("a/notes.txt", &s));
        assert!(!is_video("a/.mp4", &s), "no stem");
        assert!(!is_video("a/mp4", &s));
        assert!(!is_video("folder/", &s));

        let s = parse_suffixes(" MP4 , .Mkv,, ").unwrap();
        assert_eq!(s, vec![".mp4".to_string(), ".mkv".to_string()]);
        assert!(is_video("x.mkv", &s));
        assert!(!is_video("x.mov", &s));
        assert!(parse_suffixes(" , ").is_err());
    }
}
