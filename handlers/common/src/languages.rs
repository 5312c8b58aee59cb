//! Language codes that Amazon Transcribe accepts for batch jobs.
//!
//! The list is the SDK's own `LanguageCode` enum, so it follows the SDK version instead of
//! being copied by hand.

use aws_sdk_transcribe::types::LanguageCode;

/// Returns the canonical spelling (`ko-KR`) of a supported code, matched case-insensitively,
/// or `None` when Transcribe does not support it.
pub fn canonical_language(code: &str) -> Option<&'static str> {
    let code = code.trim();
    if code.is_empty() || code.len() > 10 {
        return None;
    }
    LanguageCode::values()
        .iter()
        .copied()
        .find(|v| v.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(canonical_language("ko-KR"), Some("ko-KR"));
        assert_eq!(canonical_language("en-us"), Some("en-US"));
        assert_eq!(canonical_language(" ja-JP "), Some("ja-JP"));
    }

    #[test]
    fn unknown_codes() {
        assert_eq!(canonical_language("xx-XX"), None);
        assert_eq!(canonical_language(""), None);
        assert_eq!(canonical_language("ko"), None);
        assert_eq!(canonical_language("ko-KR; DROP TABLE"), None);
    }
}
