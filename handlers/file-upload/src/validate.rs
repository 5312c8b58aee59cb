//! Validation of the form fields. Every function returns the clean value or a message that
//! is safe to show to the user.

use crate::audio::AudioFormat;

/// `fileTable.email` is VARCHAR(32).
pub const MAX_EMAIL_CHARS: usize = 32;
/// `fileTable.filename` is VARCHAR(600).
pub const MAX_FILENAME_CHARS: usize = 600;

/// Checks the syntax of an address (the common subset of RFC 5322 that mail services
/// accept: dot-atom local part, DNS host name with an alphabetic TLD) and the column limit.
pub fn email(raw: &str) -> Result<String, String> {
    let e = raw.trim();
    if e.is_empty() {
        return Err("email is empty".into());
    }
    if e.chars().count() > MAX_EMAIL_CHARS {
        return Err(format!("email is longer than {MAX_EMAIL_CHARS} characters"));
    }
    let bad = || Err(format!("email {e:?} is not a valid address"));
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

/// Makes the uploaded file name safe for an S3 key and the database:
/// a path is cut to its last component, but any `..` component (path traversal), control or
/// bidi-override characters are refused; characters S3 keys should avoid become `_`;
/// the extension is made to match the detected format; at most 600 characters.
pub fn filename(raw: &str, format: AudioFormat) -> Result<String, String> {
    if raw.chars().any(is_forbidden_char) {
        return Err("file name contains control characters".into());
    }
    let components: Vec<&str> = raw.split(['/', '\\']).collect();
    if components.iter().any(|c| c.trim() == "..") {
        return Err("file name must not contain a path (\"..\")".into());
    }
    let base = components.last().copied().unwrap_or("").trim();
    let base = base.trim_start_matches('.').trim();
    if base.is_empty() {
        return Err("file name is empty".into());
    }
    let mut name: String = base
        .chars()
        .map(|c| if AVOID.contains(&c) { '_' } else { c })
        .collect();
    let ext_ok = stt_common::keys::extension(&name).is_some_and(|e| format.accepts_extension(&e));
    if !ext_ok {
        name.push('.');
        name.push_str(format.extension());
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(format!(
            "file name is longer than {MAX_FILENAME_CHARS} characters"
        ));
    }
    Ok(name)
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
        let f = |s: &str| filename(s, AudioFormat::Mp3);
        assert_eq!(f("song.mp3").unwrap(), "song.mp3");
        assert_eq!(f("한글 녹음.MP3").unwrap(), "한글 녹음.MP3");
        assert_eq!(f("C:\\Users\\me\\talk.mp3").unwrap(), "talk.mp3");
        assert_eq!(f("dir/talk").unwrap(), "talk.mp3");
        assert_eq!(f("talk.wav").unwrap(), "talk.wav.mp3");
        assert_eq!(f("a#b%c{d}.mp3").unwrap(), "a_b_c_d_.mp3");
        assert_eq!(f(".hidden.mp3").unwrap(), "hidden.mp3");
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
        assert!(f(&"a".repeat(597)).is_err(), "601 with the extension");
        assert!(f(&format!("{}.mp3", "가".repeat(596))).is_ok());
    }
}
