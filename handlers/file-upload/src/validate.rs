//! Validation of the form fields. Every function returns the clean value or the refusal's
//! code (which the page translates) and a message that is safe to show to the user.

use crate::audio::AudioFormat;

/// A refusal: its code and its English message.
pub type Refusal = (&'static str, String);

/// `fileTable.email` is VARCHAR(32).
pub const MAX_EMAIL_CHARS: usize = 32;
/// `fileTable.filename` is VARCHAR(600).
pub const MAX_FILENAME_CHARS: usize = 600;

/// Checks the syntax of an address (the common subset of RFC 5322 that mail services
/// accept: dot-atom local part, DNS host name with an alphabetic TLD) and the column limit.
pub fn email(raw: &str) -> Result<String, Refusal> {
    let e = raw.trim();
    if e.is_empty() {
        return Err(("email_missing", "email is empty".into()));
    }
    if e.chars().count() > MAX_EMAIL_CHARS {
        return Err((
            "email_too_long",
            format!("email is longer than {MAX_EMAIL_CHARS} characters"),
        ));
    }
    // The answer (and any log of it) shows the address masked: `t***@example.com`.
    let bad = || {
        Err((
            "email_invalid",
            format!(
                "email {:?} is not a valid address",
                stt_common::privacy::mask_email(e)
            ),
        ))
    };
    let Some((local, domain)) = e.split_once('@') else {
        return bad();
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()));
    if local_ok && domain_ok {
        Ok(e.to_string())
    } else {
        bad()
    }
}

/// Characters AWS advises to avoid in object keys; they are replaced by `_`.
const AVOID: &[char] = &[
    '\\', '{', '}', '^', '%', '`', '[', ']', '"', '<', '>', '~', '#', '|',
];

fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Makes the uploaded file name safe for an S3 key and the database; this is the name the
/// uploader sees again (database row, mail). A path is cut to its last component, but any
/// `..` component (path traversal), control or bidi-override characters are refused;
/// characters S3 keys should avoid become `_`; leading dots are dropped; at most 600
/// characters. The extension stays as the uploader spelt it (`녹음.MP3`); the key gets its
/// own from [`storage_name`].
pub fn filename(raw: &str) -> Result<String, Refusal> {
    let invalid = |m: &str| Err(("filename_invalid", m.to_owned()));
    if raw.chars().any(is_forbidden_char) {
        return invalid("file name contains control characters");
    }
    let components: Vec<&str> = raw.split(['/', '\\']).collect();
    if components.iter().any(|c| c.trim() == "..") {
        return invalid("file name must not contain a path (\"..\")");
    }
    // No leading dots or spaces, however mixed (`. .mp3`): a stem never starts with a dot,
    // which keeps every text key apart from the failure notice `.failure-notice.txt`.
    let base = components
        .last()
        .copied()
        .unwrap_or("")
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    if base.is_empty() {
        return invalid("file name is empty");
    }
    let name: String = base
        .chars()
        .map(|c| if AVOID.contains(&c) { '_' } else { c })
        .collect();
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err((
            "filename_too_long",
            format!("file name is longer than {MAX_FILENAME_CHARS} characters"),
        ));
    }
    Ok(name)
}

/// The name of the audio object: the clean name's stem and the canonical lowercase extension
/// of the detected format (`녹음.MP3` → `녹음.mp3`, `talk.wave` → `talk.wav`, `memo.opus` →
/// `memo.ogg`, `talk` → `talk.mp3`). An extension that does not name the detected format
/// stays part of the stem (`talk.wav` holding MP3 → `talk.wav.mp3`).
///
/// S3 matches notification suffixes literally and case-sensitively, and the stack has one
/// rule per lowercase suffix (`.mp3 .wav .flac .ogg .m4a .mp4 .webm .amr`): a key with any
/// other ending would be stored and never transcribed. Transcribe's `MediaFormat` comes from
/// the same extension.
pub fn storage_name(clean_name: &str, format: AudioFormat) -> String {
    let stem = match stt_common::keys::extension(clean_name) {
        Some(ext) if format.accepts_extension(&ext) => stt_common::keys::stem(clean_name),
        _ => clean_name,
    };
    format!("{stem}.{}", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email(" user.name+tag@example.co.kr ").unwrap(),
            "user.name+tag@example.co.kr"
        );
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@@b.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b.c0m",
            "a b@c.com",
            "a@b..com",
            "한글@example.com",
            "averyveryverylongname@example.com", // 33 characters
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(
            email("averyveryverylongnam@example.com").is_ok(),
            "32 characters"
        );
    }

    #[test]
    fn filenames() {
        let f = filename;
        assert_eq!(f("song.mp3").unwrap(), "song.mp3");
        assert_eq!(
            f("한글 녹음.MP3").unwrap(),
            "한글 녹음.MP3",
            "the uploader's spelling"
        );
        assert_eq!(f("C:\\Users\\me\\talk.mp3").unwrap(), "talk.mp3");
        assert_eq!(f("dir/talk").unwrap(), "talk");
        assert_eq!(f("a#b%c{d}.mp3").unwrap(), "a_b_c_d_.mp3");
        assert_eq!(f(".hidden.mp3").unwrap(), "hidden.mp3");
        assert_eq!(f(". .mp3").unwrap(), "mp3", "found by the property below");
        assert_eq!(f(" . . failure-notice.txt").unwrap(), "failure-notice.txt");
        for bad in [
            "../../etc/passwd",
            "..\\x.mp3",
            "a/../b.mp3",
            "a\u{0}.mp3",
            "a\nb.mp3",
            "",
            "/",
            "..",
            "x\u{202E}3pm.exe",
        ] {
            assert!(f(bad).is_err(), "{bad:?}");
        }
        assert!(f(&"a".repeat(601)).is_err());
        assert!(
            f(&format!("{}.mp3", "가".repeat(596))).is_ok(),
            "600 characters"
        );
    }

    #[test]
    fn storage_names_end_in_a_canonical_suffix() {
        use AudioFormat::*;
        for (name, format, want) in [
            ("녹음.MP3", Mp3, "녹음.mp3"),
            ("회의 녹음 1.mp3", Mp3, "회의 녹음 1.mp3"),
            ("talk", Mp3, "talk.mp3"),
            ("talk.wav", Mp3, "talk.wav.mp3"),
            ("Talk.WAVE", Wav, "Talk.wav"),
            ("memo.opus", Ogg, "memo.ogg"),
            ("memo.OGA", Ogg, "memo.ogg"),
            ("book.m4b", M4a, "book.m4a"),
            ("clip.M4V", Mp4, "clip.mp4"),
            ("clip.mp4", M4a, "clip.m4a"),
            ("voice.AMR", Amr, "voice.amr"),
            ("a.b.FLAC", Flac, "a.b.flac"),
            ("rec.WebM", Webm, "rec.webm"),
            ("song.", Mp3, "song..mp3"),
        ] {
            assert_eq!(storage_name(name, format), want, "{name}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Every name file_upload accepts ends up under one of the 8 lowercase suffixes the
        /// S3 rules match, in a key the other functions can split.
        #[test]
        fn every_accepted_name_gets_a_triggering_key(
            raw in "[a-zA-Z0-9가-힣 ._()#%{}\\-/\\\\]{0,40}(\\.(mp3|MP3|Mp3|wav|WAV|wave|WAVE|flac|FLAC|ogg|OGG|oga|opus|OPUS|m4a|M4A|m4b|mp4|MP4|m4v|webm|WEBM|amr|AMR|txt|json|)){0,2}",
            idx in 0usize..8,
        ) {
            let format = [
                AudioFormat::Mp3, AudioFormat::Wav, AudioFormat::Flac, AudioFormat::Ogg,
                AudioFormat::M4a, AudioFormat::Mp4, AudioFormat::Webm, AudioFormat::Amr,
            ][idx];
            if let Ok(name) = filename(&raw) {
                let id = "0123456789abcdef0123456789abcdef";
                let key = stt_common::keys::audio_key(id, &storage_name(&name, format));
                proptest::prop_assert!(stt_common::keys::has_audio_suffix(&key), "{key}");
                proptest::prop_assert!(
                    key.ends_with(&format!(".{}", format.extension())),
                    "{key}"
                );
                let (got_id, file) = stt_common::keys::split_key(&key, stt_common::keys::INPUT_PREFIX)
                    .expect("a key the other functions can split");
                proptest::prop_assert_eq!(got_id, id);
                proptest::prop_assert!(!file.starts_with('.'), "{file}");
            }
        }
    }
}
