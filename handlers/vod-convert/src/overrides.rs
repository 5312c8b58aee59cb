//! The override file: `job.json` next to a video (`{prefix}/job.json`, or `job.json` at the
//! bucket root) changes a few values of the default [`Profile`].
//!
//! The sample `convert.py` accepted whole MediaConvert job settings as untyped JSON. This
//! function accepts a small, typed and validated schema instead; every field is optional and
//! unknown fields are an error, so a typo fails the invocation instead of being ignored:
//!
//! ```json
//! {
//!   "segmentLength": 6,
//!   "hls": [
//!     { "width": 640,  "height": 360, "bitrate": 800000 },
//!     { "width": 1280, "height": 720, "bitrate": 2500000 },
//!     { "width": 1920, "height": 1080, "bitrate": 5000000 }
//!   ],
//!   "mp4": { "width": 1920, "height": 1080, "bitrate": 5000000 },
//!   "thumbnails": { "intervalSeconds": 10, "maxCaptures": 100, "quality": 70 },
//!   "audioBitrate": 128000
//! }
//! ```
//!
//! * `segmentLength`: HLS segment seconds, 1 to 60 (default 10).
//! * `hls`: replaces the whole ladder (1 to 10 renditions, distinct heights; each rendition is
//!   named `_{height}`). Each entry needs `width`, `height` and `bitrate`.
//! * `mp4`: any of `width`, `height`, `bitrate` of the MP4 output.
//! * `thumbnails`: any of `width`, `height`, `intervalSeconds` (1 to 3600), `maxCaptures`
//!   (1 to 10,000,000), `quality` (1 to 100).
//! * `audioBitrate`: AAC bitrate, one of MediaConvert's values from 16000 to 320000.
//!
//! Width and height: even, 32 to 4096. Video bitrates: 1,000 to 1,152,000,000 bit/s.

use serde::Deserialize;

use crate::job::{Profile, Rendition};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobOverride {
    pub segment_length: Option<i32>,
    pub hls: Option<Vec<RenditionSpec>>,
    pub mp4: Option<PartialRendition>,
    pub thumbnails: Option<PartialThumbnails>,
    pub audio_bitrate: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenditionSpec {
    pub width: i32,
    pub height: i32,
    pub bitrate: i32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartialRendition {
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub bitrate: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartialThumbnails {
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub interval_seconds: Option<i32>,
    pub max_captures: Option<i32>,
    pub quality: Option<i32>,
}

/// The largest override file read (a valid one is well under 2 KB).
pub const MAX_OVERRIDE_BYTES: usize = 64 * 1024;

/// AAC-LC stereo bitrates MediaConvert accepts, restricted to a sensible range.
const AAC_BITRATES: [i32; 15] = [
    16_000, 20_000, 24_000, 28_000, 32_000, 40_000, 48_000, 56_000, 64_000, 80_000, 96_000,
    112_000, 128_000, 160_000, 192_000,
];
const AAC_BITRATES_HIGH: [i32; 4] = [224_000, 256_000, 288_000, 320_000];

/// Parses an override file. The error explains what is wrong in words meant for the operator.
pub fn parse(bytes: &[u8]) -> Result<JobOverride, String> {
    if bytes.len() > MAX_OVERRIDE_BYTES {
        return Err(format!(
            "{} bytes; an override file is at most {MAX_OVERRIDE_BYTES}",
            bytes.len()
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(obj) = value.as_object() else {
        return Err("must be a JSON object".into());
    };
    if ["OutputGroups", "Inputs", "Settings"]
        .iter()
        .any(|k| obj.contains_key(*k))
    {
        return Err(
            "this looks like complete MediaConvert job settings (the sample's \
                    job.json); this function reads only the override schema \
                    (segmentLength, hls, mp4, thumbnails, audioBitrate)"
                .into(),
        );
    }
    serde_json::from_value(value).map_err(|e| format!("does not match the override schema: {e}"))
}

impl JobOverride {
    /// The profile with this override applied, validated.
    pub fn apply(&self, mut profile: Profile) -> Result<Profile, String> {
        if let Some(s) = self.segment_length {
            profile.segment_length = s;
        }
        if let Some(hls) = &self.hls {
            profile.hls = hls
                .iter()
                .map(|r| Rendition {
                    width: r.width,
                    height: r.height,
                    bitrate: r.bitrate,
                })
                .collect();
        }
        if let Some(m) = self.mp4 {
            let p = &mut profile.mp4;
            p.width = m.width.unwrap_or(p.width);
            p.height = m.height.unwrap_or(p.height);
            p.bitrate = m.bitrate.unwrap_or(p.bitrate);
        }
        if let Some(t) = self.thumbnails {
            let p = &mut profile.thumbnails;
            p.width = t.width.unwrap_or(p.width);
            p.height = t.height.unwrap_or(p.height);
            p.interval_seconds = t.interval_seconds.unwrap_or(p.interval_seconds);
            p.max_captures = t.max_captures.unwrap_or(p.max_captures);
            p.quality = t.quality.unwrap_or(p.quality);
        }
        if let Some(a) = self.audio_bitrate {
            profile.audio_bitrate = a;
        }
        validate(&profile)?;
        Ok(profile)
    }
}

/// Checks a profile against the limits documented in the module docs.
pub fn validate(p: &Profile) -> Result<(), String> {
    in_range("segmentLength", p.segment_length, 1, 60)?;
    if p.hls.is_empty() || p.hls.len() > 10 {
        return Err(format!(
            "hls has {} renditions; 1 to 10 are allowed",
            p.hls.len()
        ));
    }
    for (i, r) in p.hls.iter().enumerate() {
        rendition(&format!("hls[{i}]"), r)?;
        if p.hls[..i].iter().any(|o| o.height == r.height) {
            return Err(format!(
                "hls[{i}]: height {} appears twice (renditions are named after their height)",
                r.height
            ));
        }
    }
    rendition("mp4", &p.mp4)?;
    let t = &p.thumbnails;
    dimension("thumbnails.width", t.width)?;
    dimension("thumbnails.height", t.height)?;
    in_range("thumbnails.intervalSeconds", t.interval_seconds, 1, 3600)?;
    in_range("thumbnails.maxCaptures", t.max_captures, 1, 10_000_000)?;
    in_range("thumbnails.quality", t.quality, 1, 100)?;
    if !AAC_BITRATES.contains(&p.audio_bitrate) && !AAC_BITRATES_HIGH.contains(&p.audio_bitrate) {
        return Err(format!(
            "audioBitrate {} is not an AAC bitrate MediaConvert accepts for stereo \
             (e.g. 64000, 96000, 128000, 192000, 256000, 320000)",
            p.audio_bitrate
        ));
    }
    Ok(())
}

fn rendition(what: &str, r: &Rendition) -> Result<(), String> {
    dimension(&format!("{what}.width"), r.width)?;
    dimension(&format!("{what}.height"), r.height)?;
    in_range(&format!("{what}.bitrate"), r.bitrate, 1_000, 1_152_000_000)
}

fn dimension(what: &str, v: i32) -> Result<(), String> {
    in_range(what, v, 32, 4096)?;
    if v % 2 != 0 {
        return Err(format!("{what} {v} must be even"));
    }
    Ok(())
}

fn in_range(what: &str, v: i32, lo: i32, hi: i32) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{what} {v} is outside {lo}..={hi}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_is_valid() {
        validate(&Profile::default()).unwrap();
        assert_eq!(
            JobOverride::default().apply(Profile::default()).unwrap(),
            Profile::default()
        );
    }

    #[test]
    fn parses_and_applies_a_full_override() {
        let o = parse(include_bytes!("../fixtures/job-override.json")).unwrap();
        let p = o.apply(Profile::default()).unwrap();
        assert_eq!(p.segment_length, 6);
        let ladder: Vec<_> = p
            .hls
            .iter()
            .map(|r| (r.width, r.height, r.bitrate))
            .collect();
        assert_eq!(
            ladder,
            [
                (640, 360, 800_000),
                (1280, 720, 2_500_000),
                (1920, 1080, 5_000_000)
            ]
        );
        assert_eq!(
            (p.mp4.width, p.mp4.height, p.mp4.bitrate),
            (1920, 1080, 5_000_000)
        );
        assert_eq!(p.thumbnails.interval_seconds, 10);
        assert_eq!(p.thumbnails.max_captures, 100);
        assert_eq!(p.thumbnails.quality, 70);
        assert_eq!(p.thumbnails.width, 1280, "not overridden: default kept");
        assert_eq!(p.audio_bitrate, 128_000);
    }

    #[test]
    fn partial_override_keeps_the_rest() {
        let o = parse(br#"{"mp4": {"bitrate": 4000000}}"#).unwrap();
        let p = o.apply(Profile::default()).unwrap();
        let d = Profile::default();
        assert_eq!(p.mp4.bitrate, 4_000_000);
        assert_eq!((p.mp4.width, p.mp4.height), (1280, 720));
        assert_eq!(p.hls, d.hls);
        assert_eq!(p.segment_length, 10);
        assert_eq!(parse(b"{}").unwrap(), JobOverride::default());
    }

    #[test]
    fn malformed_files_are_errors() {
        let cases: [(&[u8], &str); 7] = [
            (b"{not json", "not valid JSON"),
            (b"[6]", "must be a JSON object"),
            (br#"{"segmentLenght": 6}"#, "unknown field `segmentLenght`"),
            (br#"{"segmentLength": "6"}"#, "override schema"),
            (
                br#"{"hls": [{"width": 640, "height": 360}]}"#,
                "missing field `bitrate`",
            ),
            (
                br#"{"OutputGroups": [], "Inputs": []}"#,
                "complete MediaConvert job settings",
            ),
            (&[b' '; MAX_OVERRIDE_BYTES + 1], "at most"),
        ];
        for (bytes, want) in cases {
            let err = parse(bytes).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn invalid_values_are_errors() {
        let cases = [
            (r#"{"segmentLength": 0}"#, "segmentLength 0"),
            (r#"{"hls": []}"#, "0 renditions"),
            (
                r#"{"hls": [{"width": 641, "height": 360, "bitrate": 1000000}]}"#,
                "must be even",
            ),
            (
                r#"{"hls": [{"width": 640, "height": 360, "bitrate": 10},
                           {"width": 640, "height": 360, "bitrate": 1000000}]}"#,
                "hls[0].bitrate 10",
            ),
            (
                r#"{"hls": [{"width": 640, "height": 360, "bitrate": 1000000},
                           {"width": 640, "height": 360, "bitrate": 2000000}]}"#,
                "appears twice",
            ),
            (r#"{"mp4": {"width": 8192}}"#, "mp4.width 8192"),
            (
                r#"{"thumbnails": {"quality": 101}}"#,
                "thumbnails.quality 101",
            ),
            (r#"{"audioBitrate": 100000}"#, "audioBitrate 100000"),
        ];
        for (json, want) in cases {
            let err = parse(json.as_bytes())
                .unwrap()
                .apply(Profile::default())
                .unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
