//! The two mails, in the uploader's language: Korean for uploads in `ko-KR`, English for every
//! other language.
//!
//! | mail | subject (ko-KR) | subject (other) |
//! |---|---|---|
//! | transcript | `음성 인식 결과: {name}` | `Transcript of {name} ({language})` |
//! | failure | `음성 인식 실패: {name}` | `Transcription failed: {name}` |
//!
//! The subject is one clean line: control characters (CR, LF, TAB, DEL, C1), Unicode line and
//! paragraph separators and invisible formatting characters (bidi overrides, zero-width
//! characters) become spaces, runs of spaces become one, so nothing in a file name can add or
//! split a header. `{name}` is cut to [`MAX_SUBJECT_NAME_COLUMNS`] display columns with `…`,
//! and the whole subject to [`MAX_SUBJECT_COLUMNS`] columns (RFC 5322's recommended 78
//! characters per line, counted in display width: Hangul and other East Asian wide characters
//! count two columns, as a mail client shows them). The body carries the whole name (cleaned
//! the same way); the HTML part escapes everything it shows.

use stt_common::repo::Upload;
use unicode_width::UnicodeWidthChar;

use crate::mail::Mail;

/// The longest subject, in display columns.
pub const MAX_SUBJECT_COLUMNS: usize = 78;
/// The longest file name in a subject, in display columns (20 Hangul syllables, 40 Latin
/// letters), `…` included.
pub const MAX_SUBJECT_NAME_COLUMNS: usize = 40;
/// The longest failure reason shown in a failure mail, in characters.
pub const MAX_REASON_CHARS_IN_MAIL: usize = 500;

/// The language of a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Korean,
    English,
}

impl Lang {
    /// Korean for `ko-KR` (any case), English otherwise.
    pub fn of(language: &str) -> Lang {
        if language.trim().eq_ignore_ascii_case("ko-KR") {
            Lang::Korean
        } else {
            Lang::English
        }
    }
}

/// Characters that must not reach a header or a one-line rendering: controls (C0 with CR, LF
/// and TAB, DEL, C1 with NEL), line/paragraph separators and invisible formatting characters
/// (zero-width, bidi embeddings/overrides/isolates, word joiners, BOM).
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// One clean line: unsafe characters become spaces, whitespace runs one space, trimmed.
pub fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = if is_unsafe(c) { ' ' } else { c };
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// Display columns of a (clean) text: East Asian wide and fullwidth characters count two.
pub fn display_width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// Cuts a text to at most `max` display columns, ending with `…` when it was cut.
pub fn shorten(s: &str, max: usize) -> String {
    if display_width(s) <= max {
        return s.to_string();
    }
    let room = max.saturating_sub(1); // `…` is one column
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    let mut out = out.trim_end().to_string();
    out.push('…');
    out
}

/// The file name as a subject shows it.
pub fn subject_name(filename: &str) -> String {
    shorten(&clean_line(filename), MAX_SUBJECT_NAME_COLUMNS)
}

fn subject(text: String) -> String {
    shorten(&clean_line(&text), MAX_SUBJECT_COLUMNS)
}

pub fn transcript_subject(upload: &Upload) -> String {
    let name = subject_name(&upload.filename);
    subject(match Lang::of(&upload.language) {
        Lang::Korean => format!("음성 인식 결과: {name}"),
        Lang::English => format!(
            "Transcript of {name} ({})",
            shorten(&clean_line(&upload.language), 10)
        ),
    })
}

pub fn failure_subject(upload: &Upload) -> String {
    let name = subject_name(&upload.filename);
    subject(match Lang::of(&upload.language) {
        Lang::Korean => format!("음성 인식 실패: {name}"),
        Lang::English => format!("Transcription failed: {name}"),
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html_page(paragraphs: &[String], pre: Option<&str>, footer: &str) -> String {
    let mut out = String::from("<!DOCTYPE html><html><body>");
    for (i, p) in paragraphs.iter().enumerate() {
        out.push_str("<p>");
        out.push_str(p);
        out.push_str("</p>");
        if i == 1 {
            if let Some(pre) = pre {
                out.push_str("<pre style=\"white-space:pre-wrap;font-family:inherit\">");
                out.push_str(&html_escape(pre));
                out.push_str("</pre>");
            }
        }
    }
    out.push_str("<p style=\"color:#666\">");
    out.push_str(&html_escape(footer));
    out.push_str("</p></body></html>");
    out
}

/// The transcript mail.
pub fn transcript_mail(from: &str, upload: &Upload, text: &str) -> Mail {
    let lang = Lang::of(&upload.language);
    let name = clean_line(&upload.filename);
    let language = clean_line(&upload.language);
    let empty = text.trim().is_empty();
    let (hello, intro, intro_html, nothing, footer) = match lang {
        Lang::Korean => (
            "안녕하세요.",
            format!("업로드하신 파일 \"{name}\"의 음성 인식 결과입니다 (언어: {language})."),
            format!(
                "업로드하신 파일 <b>{}</b>의 음성 인식 결과입니다 (언어: {}).",
                html_escape(&name),
                html_escape(&language)
            ),
            "(인식된 음성이 없습니다)",
            "음성 인식 서비스",
        ),
        Lang::English => (
            "Hello,",
            format!("here is the transcript of your file \"{name}\" (language {language}):"),
            format!(
                "here is the transcript of your file <b>{}</b> (language {}):",
                html_escape(&name),
                html_escape(&language)
            ),
            "(no speech was recognised)",
            "speech-to-text service",
        ),
    };
    let shown = if empty { nothing } else { text };
    Mail {
        from: from.to_string(),
        to: upload.email.clone(),
        subject: transcript_subject(upload),
        text: format!("{hello}\n\n{intro}\n\n{shown}\n\n-- \n{footer}\n"),
        html: html_page(&[html_escape(hello), intro_html], Some(shown), footer),
    }
}

/// The failure mail: the file could not be transcribed, why, and what to try.
pub fn failure_mail(from: &str, upload: &Upload) -> Mail {
    let lang = Lang::of(&upload.language);
    let name = clean_line(&upload.filename);
    let reason = upload
        .failure_reason
        .as_deref()
        .map(|r| stt_common::repo::truncate_chars(r.trim(), MAX_REASON_CHARS_IN_MAIL))
        .filter(|r| !r.is_empty());
    let (hello, intro, intro_html, reason_label, unknown, advice, footer) = match lang {
        Lang::Korean => (
            "안녕하세요.",
            format!("업로드하신 파일 \"{name}\"을(를) 텍스트로 변환하지 못했습니다."),
            format!(
                "업로드하신 파일 <b>{}</b>을(를) 텍스트로 변환하지 못했습니다.",
                html_escape(&name)
            ),
            "사유",
            "알 수 없음",
            "파일이 재생되는지, 선택한 언어가 맞는지 확인한 뒤 다시 업로드해 주세요.",
            "음성 인식 서비스",
        ),
        Lang::English => (
            "Hello,",
            format!("your file \"{name}\" could not be transcribed."),
            format!(
                "your file <b>{}</b> could not be transcribed.",
                html_escape(&name)
            ),
            "Reason",
            "unknown",
            "Please check that the file plays and that the language you chose is right, then \
             upload it again.",
            "speech-to-text service",
        ),
    };
    let reason = reason.unwrap_or(unknown);
    let text =
        format!("{hello}\n\n{intro}\n\n{reason_label}: {reason}\n\n{advice}\n\n-- \n{footer}\n");
    let html = html_page(
        &[
            html_escape(hello),
            intro_html,
            format!("{}: {}", html_escape(reason_label), html_escape(reason)),
            html_escape(advice),
        ],
        None,
        footer,
    );
    Mail {
        from: from.to_string(),
        to: upload.email.clone(),
        subject: failure_subject(upload),
        text,
        html,
    }
}

/// Confirmation subjects: fixed text only.
pub const CONFIRMATION_SUBJECT_KO: &str = "음성 인식 결과를 받을 주소 확인";
pub const CONFIRMATION_SUBJECT_EN: &str = "Confirm your address for transcripts";

/// The confirmation mail (double opt-in): fixed text and the link, nothing the uploader
/// chose (no file name, no transcript), so an address typed by someone else receives nothing
/// of theirs. `language` only picks Korean or English.
pub fn confirmation_mail(from: &str, to: &str, language: &str, link: &str, hours: u64) -> Mail {
    let (subject, hello, ask, button, expiry, ignore, footer) = match Lang::of(language) {
        Lang::Korean => (
            CONFIRMATION_SUBJECT_KO,
            "안녕하세요.",
            "이 주소로 음성 인식 결과를 받으시려면 아래 링크를 열고 \"확인\" 버튼을 눌러 주세요. \
             확인하기 전에는 결과를 보내지 않습니다."
                .to_owned(),
            "주소 확인하기",
            format!("링크는 {hours}시간 동안 한 번만 쓸 수 있습니다."),
            "요청하신 적이 없다면 이 메일을 무시하세요. 다시 연락드리지 않습니다.",
            "음성 인식 서비스",
        ),
        Lang::English => (
            CONFIRMATION_SUBJECT_EN,
            "Hello,",
            "a file was uploaded for transcription with this address. To receive transcripts \
             here, open the link below and press \"Confirm\". Nothing is sent to this address \
             before that."
                .to_owned(),
            "Confirm this address",
            format!("The link works once, for {hours} hours."),
            "If this was not you, ignore this mail: you will not hear from us again.",
            "speech-to-text service",
        ),
    };
    let text = format!("{hello}\n\n{ask}\n\n{link}\n\n{expiry}\n{ignore}\n\n-- \n{footer}\n");
    let html = html_page(
        &[
            html_escape(hello),
            html_escape(&ask),
            format!(
                "<a href=\"{}\">{}</a>",
                html_escape(link),
                html_escape(button)
            ),
            format!("{} {}", html_escape(&expiry), html_escape(ignore)),
        ],
        None,
        footer,
    );
    Mail {
        from: from.to_string(),
        to: to.to_string(),
        subject: subject.to_string(),
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stt_common::repo::status;

    #[test]
    fn the_confirmation_mail_holds_the_link_and_nothing_of_the_uploader() {
        let link = "https://d1.cloudfront.net/confirm.html#token=abc";
        for (language, subject) in [
            ("ko-KR", CONFIRMATION_SUBJECT_KO),
            ("en-US", CONFIRMATION_SUBJECT_EN),
        ] {
            let m = confirmation_mail("stt@example.com", "u@example.com", language, link, 24);
            assert_eq!(m.subject, subject);
            assert_eq!(m.to, "u@example.com");
            assert!(m.text.contains(link), "{}", m.text);
            assert!(m.html.contains(&html_escape(link)), "{}", m.html);
            assert!(m.text.contains("24"), "{}", m.text);
        }
    }

    fn upload(filename: &str, language: &str) -> Upload {
        Upload {
            upload_id: "0123456789abcdef0123456789abcdef".into(),
            email: "user@example.com".into(),
            filename: filename.into(),
            language: language.into(),
            audio_key: "input_audio/0123456789abcdef0123456789abcdef/x.mp3".into(),
            job_name: Some("job".into()),
            status: status::TRANSCRIBED.into(),
            failure_reason: None,
            text_key: None,
            emailed: false,
        }
    }

    fn assert_clean_subject(s: &str) {
        assert!(!s.chars().any(is_unsafe), "{s:?}");
        assert!(!s.contains("  "), "{s:?}");
        assert!(display_width(s) <= MAX_SUBJECT_COLUMNS, "{s:?}");
    }

    #[test]
    fn korean_upload_gets_korean_mails() {
        let u = upload("회의 녹음 1.mp3", "ko-KR");
        let m = transcript_mail("stt@example.com", &u, "안녕하세요 <b>굵게</b> & 끝");
        assert_eq!(m.subject, "음성 인식 결과: 회의 녹음 1.mp3");
        assert!(m.text.starts_with("안녕하세요.\n\n업로드하신 파일 \"회의 녹음 1.mp3\"의 음성 인식 결과입니다 (언어: ko-KR)."));
        assert!(m.text.contains("안녕하세요 <b>굵게</b> & 끝"));
        assert!(m
            .html
            .contains("<b>회의 녹음 1.mp3</b>의 음성 인식 결과입니다"));
        assert!(m
            .html
            .contains("안녕하세요 &lt;b&gt;굵게&lt;/b&gt; &amp; 끝"));
        assert!(m.text.ends_with("-- \n음성 인식 서비스\n"));
        assert_clean_subject(&m.subject);

        let mut f = u.clone();
        f.status = status::FAILED.into();
        f.failure_reason =
            Some("The media format provided does not match the detected media format.".into());
        let m = failure_mail("stt@example.com", &f);
        assert_eq!(m.subject, "음성 인식 실패: 회의 녹음 1.mp3");
        assert!(m
            .text
            .contains("\"회의 녹음 1.mp3\"을(를) 텍스트로 변환하지 못했습니다."));
        assert!(m.text.contains("사유: The media format provided"));
        assert!(m.text.contains("다시 업로드해 주세요"));
        assert!(m.html.contains("<b>회의 녹음 1.mp3</b>을(를)"));
        assert_eq!(m.to, "user@example.com");
        // Case does not matter; other Korean-ish codes are not ko-KR.
        assert_eq!(Lang::of("ko-kr"), Lang::Korean);
        assert_eq!(Lang::of("en-US"), Lang::English);
        assert_eq!(Lang::of("ja-JP"), Lang::English);
    }

    #[test]
    fn other_languages_get_english_mails() {
        let u = upload("meeting.mp3", "en-US");
        let m = transcript_mail("stt@example.com", &u, "");
        assert_eq!(m.subject, "Transcript of meeting.mp3 (en-US)");
        assert!(m
            .text
            .contains("here is the transcript of your file \"meeting.mp3\""));
        assert!(m.text.contains("(no speech was recognised)"));
        let mut f = upload("meeting.mp3", "ja-JP");
        f.failure_reason = None;
        let m = failure_mail("stt@example.com", &f);
        assert_eq!(m.subject, "Transcription failed: meeting.mp3");
        assert!(m.text.contains("Reason: unknown"));
        assert!(m.text.contains("upload it again"));
    }

    #[test]
    fn line_breaks_in_a_name_cannot_inject_headers() {
        let evil = "a\r\nBcc: victim@example.com\r\nSubject: hi\n\u{0085}x\u{2028}y\u{202E}z\t.mp3";
        for lang in ["ko-KR", "en-US"] {
            let u = upload(evil, lang);
            for m in [
                transcript_mail("s@example.com", &u, "t"),
                failure_mail("s@example.com", &u),
            ] {
                assert_clean_subject(&m.subject);
                assert!(!m.subject.contains('\r') && !m.subject.contains('\n'));
                // One line; the 48-column name is cut to 40 columns.
                assert!(
                    m.subject
                        .contains(" a Bcc: victim@example.com Subject: hi x…"),
                    "{}",
                    m.subject
                );
                // The body shows the name on one line too.
                assert!(m
                    .text
                    .contains("a Bcc: victim@example.com Subject: hi x y z .mp3"));
                assert!(!m.html.contains('\r'));
            }
        }
    }

    #[test]
    fn long_names_are_cut_with_an_ellipsis() {
        let long = format!("{}.mp3", "아주 긴 회의 녹음 파일 이름".repeat(10));
        let u = upload(&long, "ko-KR");
        let s = transcript_subject(&u);
        assert_clean_subject(&s);
        assert!(s.starts_with("음성 인식 결과: 아주 긴 회의"), "{s}");
        assert!(s.ends_with('…'), "{s}");
        let name = s.trim_start_matches("음성 인식 결과: ");
        assert!(display_width(name) <= MAX_SUBJECT_NAME_COLUMNS, "{name}");
        // The body keeps the whole name.
        assert!(transcript_mail("s@example.com", &u, "x")
            .text
            .contains(&long));

        let u = upload(&format!("{}.wav", "x".repeat(300)), "en-US");
        let s = failure_subject(&u);
        assert_clean_subject(&s);
        assert_eq!(s, format!("Transcription failed: {}…", "x".repeat(39)));
        // A name that fits is left alone.
        assert_eq!(subject_name("회의 녹음 1.mp3"), "회의 녹음 1.mp3");
        assert_eq!(display_width("회의 녹음 1.mp3"), 15);
    }

    #[test]
    fn cleaning_and_width() {
        assert_eq!(clean_line("  a \r\n\t b  "), "a b");
        assert_eq!(clean_line("\u{FEFF}x\u{200B}y"), "x y");
        assert_eq!(display_width("한글ab"), 6);
        assert_eq!(shorten("한글한글", 5), "한글…");
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("ab cdef", 4), "ab…");
    }
}
