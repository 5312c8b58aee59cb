//! Recognises the audio formats Amazon Transcribe accepts by their content (magic bytes),
//! not by the file name.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Mp3,
    Wav,
    Flac,
    Ogg,
    M4a,
    Mp4,
    Webm,
    Amr,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 8] = [
        AudioFormat::Mp3,
        AudioFormat::Wav,
        AudioFormat::Flac,
        AudioFormat::Ogg,
        AudioFormat::M4a,
        AudioFormat::Mp4,
        AudioFormat::Webm,
        AudioFormat::Amr,
    ];

    /// The extension used in the S3 key, which is also Transcribe's `MediaFormat`.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Wav => "wav",
            AudioFormat::Flac => "flac",
            AudioFormat::Ogg => "ogg",
            AudioFormat::M4a => "m4a",
            AudioFormat::Mp4 => "mp4",
            AudioFormat::Webm => "webm",
            AudioFormat::Amr => "amr",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Ogg => "audio/ogg",
            AudioFormat::M4a => "audio/mp4",
            AudioFormat::Mp4 => "video/mp4",
            AudioFormat::Webm => "audio/webm",
            AudioFormat::Amr => "audio/amr",
        }
    }

    /// File name extensions that name this format correctly.
    pub fn accepts_extension(self, ext: &str) -> bool {
        let ext = ext.to_ascii_lowercase();
        match self {
            AudioFormat::Mp3 => ext == "mp3",
            AudioFormat::Wav => ext == "wav" || ext == "wave",
            AudioFormat::Flac => ext == "flac",
            AudioFormat::Ogg => ext == "ogg" || ext == "oga" || ext == "opus",
            AudioFormat::M4a | AudioFormat::Mp4 => {
                matches!(ext.as_str(), "m4a" | "mp4" | "m4b" | "m4v")
            }
            AudioFormat::Webm => ext == "webm",
            AudioFormat::Amr => ext == "amr",
        }
    }
}

impl AudioFormat {
    /// The format a browser's (or a script's) declared content type names: the canonical
    /// types of [`AudioFormat::content_type`] and the aliases browsers send (`audio/x-wav`,
    /// `audio/x-m4a`, Chromium's `audio/mp3`, …). Parameters (`; codecs=opus`) are ignored.
    pub fn from_content_type(declared: &str) -> Option<AudioFormat> {
        let essence = declared.split(';').next()?.trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" => AudioFormat::Mp3,
            "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => AudioFormat::Wav,
            "audio/flac" | "audio/x-flac" => AudioFormat::Flac,
            "audio/ogg" | "audio/opus" | "application/ogg" => AudioFormat::Ogg,
            // Not `audio/aac`: browsers give it to raw ADTS files, which are no MP4.
            "audio/mp4" | "audio/x-m4a" | "audio/m4a" => AudioFormat::M4a,
            "video/mp4" => AudioFormat::Mp4,
            "audio/webm" | "video/webm" => AudioFormat::Webm,
            "audio/amr" => AudioFormat::Amr,
            _ => return None,
        })
    }

    /// The format a file name's extension names, if any.
    pub fn from_extension(ext: &str) -> Option<AudioFormat> {
        AudioFormat::ALL
            .into_iter()
            .find(|f| f.accepts_extension(ext))
    }

    /// Whether content detected as `self` is what was declared as `declared`: the same
    /// format, or MPEG-4 audio and video (one container; the brand alone tells them apart,
    /// and Transcribe reads both).
    pub fn matches_declared(self, declared: AudioFormat) -> bool {
        use AudioFormat::{M4a, Mp4};
        self == declared || matches!((self, declared), (M4a, Mp4) | (Mp4, M4a))
    }
}

/// Detects the format from the first bytes of the file.
pub fn detect(data: &[u8]) -> Option<AudioFormat> {
    if data.len() >= 12
        && (&data[0..4] == b"RIFF" || &data[0..4] == b"RF64")
        && &data[8..12] == b"WAVE"
    {
        return Some(AudioFormat::Wav);
    }
    if data.starts_with(b"fLaC") {
        return Some(AudioFormat::Flac);
    }
    if data.len() >= 5 && data.starts_with(b"OggS") && data[4] == 0 {
        return Some(AudioFormat::Ogg);
    }
    if data.len() >= 12 && &data[4..8] == b"ftyp" {
        return Some(match &data[8..12] {
            b"M4A " | b"M4B " => AudioFormat::M4a,
            _ => AudioFormat::Mp4,
        });
    }
    if data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        let head = &data[..data.len().min(64)];
        return head
            .windows(4)
            .any(|w| w == b"webm")
            .then_some(AudioFormat::Webm);
    }
    if data.starts_with(b"#!AMR\n") || data.starts_with(b"#!AMR-WB\n") {
        return Some(AudioFormat::Amr);
    }
    if is_mp3(data) {
        return Some(AudioFormat::Mp3);
    }
    None
}

/// The length of the ID3v2 tag `data` starts with (header and footer included), if it starts
/// with one: the MPEG frames come after it, which may be far into a file with cover art.
pub fn id3_tag_len(data: &[u8]) -> Option<usize> {
    if data.len() < 10 || !data.starts_with(b"ID3") {
        return None;
    }
    let (major, flags) = (data[3], data[5]);
    if major == 0xFF || data[4] == 0xFF || data[6..10].iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    let size = data[6..10]
        .iter()
        .fold(0usize, |acc, &b| (acc << 7) | b as usize);
    Some(10 + size + if flags & 0x10 != 0 { 10 } else { 0 })
}

/// MP3: an ID3v2 tag followed by an MPEG audio layer III frame, or such a frame at once;
/// when the data holds a second frame, its header must be valid too.
fn is_mp3(data: &[u8]) -> bool {
    let mut start = 0;
    if data.len() >= 10 && data.starts_with(b"ID3") {
        let Some(tag) = id3_tag_len(data) else {
            return false;
        };
        start = tag;
        if start >= data.len() {
            return false;
        }
        // Some encoders pad after the tag: look for the first frame a little further.
        let window = &data[start..data.len().min(start + 4096)];
        match window.windows(4).position(|w| frame_len(w).is_some()) {
            Some(i) => start += i,
            None => return false,
        }
    }
    let Some(len) = frame_len(&data[start..]) else {
        return false;
    };
    match data.get(start + len..start + len + 4) {
        Some(next) => frame_len(next).is_some() && (next[1] & 0xFE) == (data[start + 1] & 0xFE),
        None => true,
    }
}

/// The length of an MPEG layer III frame whose header starts `h`, if it is one.
fn frame_len(h: &[u8]) -> Option<usize> {
    if h.len() < 4 || h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: MPEG 2.5, 1: reserved, 2: MPEG 2, 3: MPEG 1
    let layer = (h[1] >> 1) & 3; // 1: layer III
    let bitrate_idx = (h[2] >> 4) as usize;
    let rate_idx = ((h[2] >> 2) & 3) as usize;
    if version == 1 || layer != 1 || bitrate_idx == 0 || bitrate_idx == 15 || rate_idx == 3 {
        return None;
    }
    const V1: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let (kbps, rate, factor) = match version {
        3 => (V1[bitrate_idx], [44100, 48000, 32000][rate_idx], 144),
        2 => (V2[bitrate_idx], [22050, 24000, 16000][rate_idx], 72),
        _ => (V2[bitrate_idx], [11025, 12000, 8000][rate_idx], 72),
    };
    let padding = ((h[2] >> 1) & 1) as usize;
    Some(factor * kbps * 1000 / rate + padding)
}

/// A few frames of silent-looking MPEG-1 layer III (128 kbit/s, 44.1 kHz), optionally
/// behind an ID3v2 tag: enough for [`detect`]; used by tests and benchmarks.
pub fn sample_mp3(frames: usize, id3: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if id3 {
        out.extend_from_slice(b"ID3\x04\x00\x00\x00\x00\x00\x0a");
        out.extend_from_slice(&[0u8; 10]);
    }
    for _ in 0..frames {
        let start = out.len();
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        out.resize(start + 417, 0x55);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_extension_is_one_the_s3_rules_trigger_on() {
        let stored: Vec<&str> = AudioFormat::ALL.iter().map(|f| f.extension()).collect();
        assert_eq!(stored, crate::keys::AUDIO_EXTENSIONS);
    }

    #[test]
    fn mp3_with_and_without_id3() {
        assert_eq!(detect(&sample_mp3(3, false)), Some(AudioFormat::Mp3));
        assert_eq!(detect(&sample_mp3(3, true)), Some(AudioFormat::Mp3));
        assert_eq!(detect(&sample_mp3(1, true)), Some(AudioFormat::Mp3));
        // A broken second frame header.
        let mut bad = sample_mp3(2, false);
        bad[417] = 0x00;
        assert_eq!(detect(&bad), None);
        // An ID3 tag with nothing after it.
        assert_eq!(detect(b"ID3\x04\x00\x00\x00\x00\x00\x0a"), None);
        // AAC ADTS (layer 0) is not MP3.
        assert_eq!(detect(&[0xFF, 0xF1, 0x50, 0x80, 0, 0]), None);
    }

    #[test]
    fn containers() {
        assert_eq!(
            detect(b"RIFF\x24\x00\x00\x00WAVEfmt "),
            Some(AudioFormat::Wav)
        );
        assert_eq!(detect(b"fLaC\x00\x00\x00\x22"), Some(AudioFormat::Flac));
        assert_eq!(detect(b"OggS\x00\x02\x00\x00"), Some(AudioFormat::Ogg));
        assert_eq!(
            detect(b"\x00\x00\x00\x20ftypM4A \x00\x00"),
            Some(AudioFormat::M4a)
        );
        assert_eq!(
            detect(b"\x00\x00\x00\x20ftypisom\x00\x00"),
            Some(AudioFormat::Mp4)
        );
        assert_eq!(
            detect(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm"),
            Some(AudioFormat::Webm)
        );
        assert_eq!(detect(b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska"), None);
        assert_eq!(detect(b"#!AMR\n\x3c"), Some(AudioFormat::Amr));
        assert_eq!(detect(b"#!AMR-WB\n\x3c"), Some(AudioFormat::Amr));
    }

    #[test]
    fn not_audio() {
        assert_eq!(detect(b"%PDF-1.7"), None);
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(detect(b"<html>"), None);
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"RIFF\x24\x00\x00\x00AVI LIST"), None);
    }

    #[test]
    fn declared_types() {
        use AudioFormat::*;
        for (declared, want) in [
            ("audio/mpeg", Some(Mp3)),
            ("audio/mp3", Some(Mp3)),
            ("Audio/X-WAV", Some(Wav)),
            ("audio/webm;codecs=opus", Some(Webm)),
            ("audio/x-m4a", Some(M4a)),
            ("video/mp4", Some(Mp4)),
            ("audio/ogg; codecs=opus", Some(Ogg)),
            ("", None),
            ("application/octet-stream", None),
            ("text/html", None),
            ("audio/aac", None),
        ] {
            assert_eq!(AudioFormat::from_content_type(declared), want, "{declared}");
        }
        for f in AudioFormat::ALL {
            assert_eq!(
                AudioFormat::from_content_type(f.content_type()).map(|g| g.matches_declared(f)),
                Some(true),
                "{f:?}"
            );
        }
        assert!(M4a.matches_declared(Mp4) && Mp4.matches_declared(M4a));
        assert!(!Mp3.matches_declared(Wav));
        assert_eq!(AudioFormat::from_extension("WAVE"), Some(Wav));
        assert_eq!(AudioFormat::from_extension("txt"), None);
    }

    #[test]
    fn id3_tags() {
        let mp3 = sample_mp3(2, true);
        assert_eq!(id3_tag_len(&mp3), Some(20));
        assert_eq!(id3_tag_len(&sample_mp3(2, false)), None);
        // A 300 KB tag (cover art): its length is known from the first ten bytes.
        assert_eq!(
            id3_tag_len(b"ID3\x04\x00\x00\x00\x12\x27\x60"),
            Some(10 + 300_000)
        );
    }

    #[test]
    fn extensions() {
        assert!(AudioFormat::Mp3.accepts_extension("MP3"));
        assert!(!AudioFormat::Mp3.accepts_extension("wav"));
        assert!(AudioFormat::M4a.accepts_extension("mp4"));
    }
}
