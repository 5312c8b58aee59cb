//! A zero-copy `multipart/form-data` parser over a complete body (`&[u8]`).
//!
//! API Gateway hands the Lambda the whole body at once, so there is nothing to stream from;
//! the parser still works like a streaming one: an iterator that walks the body once,
//! finding each delimiter with a SIMD substring search (`memchr::memmem`) and returning parts
//! whose names, file names and data borrow from the body. Nothing is copied except a
//! header parameter that needs unescaping (`\"` in a quoted string, `filename*=UTF-8''%..`).
//!
//! Follows RFC 7578 / RFC 2046: boundary from the `Content-Type` (quoted or not), optional
//! preamble, transport padding after a delimiter, case-insensitive header names, `CRLF`
//! line ends (a bare `LF` after the delimiter is tolerated), close delimiter `--boundary--`,
//! and `Content-Disposition` parameters `name`, `filename` and `filename*` (RFC 5987; it
//! wins over `filename`).

use std::borrow::Cow;

use memchr::memmem;

/// Most parts a form may have (the upload form has three).
pub const MAX_PARTS: usize = 32;
/// Largest header block of one part.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("Content-Type is not multipart/form-data")]
    NotMultipart,
    #[error("Content-Type has no boundary parameter")]
    NoBoundary,
    #[error(
        "the multipart boundary is empty, longer than 70 characters or has invalid characters"
    )]
    BadBoundary,
    #[error("the body does not contain the multipart boundary")]
    NoFirstBoundary,
    #[error("a multipart delimiter is not followed by a line break")]
    BadDelimiter,
    #[error("a part's headers are not terminated by an empty line or are too large")]
    BadHeaders,
    #[error("a part header is not valid: {0}")]
    BadHeader(&'static str),
    #[error("a part has no Content-Disposition: form-data header with a name")]
    NoDisposition,
    #[error("the body ends before the closing multipart boundary")]
    Unterminated,
    #[error("the form has more than {MAX_PARTS} parts")]
    TooManyParts,
}

/// One part of the form; everything borrows from the body where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub name: Cow<'a, str>,
    pub filename: Option<Cow<'a, str>>,
    pub content_type: Option<&'a str>,
    pub data: &'a [u8],
}

/// Extracts the boundary from a `Content-Type: multipart/form-data; boundary=...` value.
pub fn boundary_from_content_type(content_type: &str) -> Result<Cow<'_, str>, MultipartError> {
    let (media, params) = match content_type.find(';') {
        Some(i) => (&content_type[..i], &content_type[i + 1..]),
        None => (content_type, ""),
    };
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    let boundary = Params::new(params)
        .filter_map(Result::ok)
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)
        .ok_or(MultipartError::NoBoundary)?;
    let b = boundary.as_bytes();
    let valid = !b.is_empty()
        && b.len() <= 70
        && b.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'"')
        && b[b.len() - 1] != b' ';
    if valid {
        Ok(boundary)
    } else {
        Err(MultipartError::BadBoundary)
    }
}

/// Iterator over the parts of a body. Yields at most one error, then stops.
pub struct Multipart<'a> {
    body: &'a [u8],
    pos: usize,
    /// `\r\n--boundary`
    delimiter: memmem::Finder<'static>,
    header_end: memmem::Finder<'static>,
    parts: usize,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Parts,
    Done,
}

impl<'a> Multipart<'a> {
    pub fn new(body: &'a [u8], boundary: &str) -> Self {
        let mut needle = Vec::with_capacity(boundary.len() + 4);
        needle.extend_from_slice(b"\r\n--");
        needle.extend_from_slice(boundary.as_bytes());
        Multipart {
            body,
            pos: 0,
            delimiter: memmem::Finder::new(&needle).into_owned(),
            header_end: memmem::Finder::new(b"\r\n\r\n").into_owned(),
            parts: 0,
            state: State::Start,
        }
    }

    fn fail(&mut self, e: MultipartError) -> Option<Result<Part<'a>, MultipartError>> {
        self.state = State::Done;
        Some(Err(e))
    }

    /// Positions `pos` right after the first `--boundary`.
    fn find_first(&mut self) -> Result<(), MultipartError> {
        let dash_boundary = &self.delimiter.needle()[2..];
        if self.body.starts_with(dash_boundary) {
            self.pos = dash_boundary.len();
            return Ok(());
        }
        match self.delimiter.find(self.body) {
            Some(i) => {
                self.pos = i + self.delimiter.needle().len();
                Ok(())
            }
            None => Err(MultipartError::NoFirstBoundary),
        }
    }
}

impl<'a> Iterator for Multipart<'a> {
    type Item = Result<Part<'a>, MultipartError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            State::Done => return None,
            State::Start => {
                if let Err(e) = self.find_first() {
                    return self.fail(e);
                }
                self.state = State::Parts;
            }
            State::Parts => {}
        }
        let body = self.body;
        let mut p = self.pos;
        // Right after a delimiter: `--` closes, else padding and a line break.
        if body[p..].starts_with(b"--") {
            self.state = State::Done;
            return None;
        }
        while p < body.len() && (body[p] == b' ' || body[p] == b'\t') {
            p += 1;
        }
        if body[p..].starts_with(b"\r\n") {
            p += 2;
        } else if body[p..].starts_with(b"\n") {
            p += 1;
        } else if p >= body.len() {
            return self.fail(MultipartError::Unterminated);
        } else {
            return self.fail(MultipartError::BadDelimiter);
        }
        if self.parts == MAX_PARTS {
            return self.fail(MultipartError::TooManyParts);
        }
        // Header block: up to the empty line (which may come at once: no headers).
        let (headers, data_start) = if body[p..].starts_with(b"\r\n") {
            (&body[p..p], p + 2)
        } else {
            let window = &body[p..body.len().min(p + MAX_HEADER_BYTES + 4)];
            match self.header_end.find(window) {
                Some(i) => (&body[p..p + i], p + i + 4),
                None => return self.fail(MultipartError::BadHeaders),
            }
        };
        let Some(len) = self.delimiter.find(&body[data_start..]) else {
            return self.fail(MultipartError::Unterminated);
        };
        let data = &body[data_start..data_start + len];
        self.pos = data_start + len + self.delimiter.needle().len();
        self.parts += 1;
        match parse_headers(headers) {
            Ok((name, filename, content_type)) => Some(Ok(Part {
                name,
                filename,
                content_type,
                data,
            })),
            Err(e) => self.fail(e),
        }
    }
}

/// Parses the whole body into parts.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    Multipart::new(body, boundary).collect()
}

type Headers<'a> = (Cow<'a, str>, Option<Cow<'a, str>>, Option<&'a str>);

fn parse_headers(block: &[u8]) -> Result<Headers<'_>, MultipartError> {
    let block = std::str::from_utf8(block).map_err(|_| MultipartError::BadHeader("not UTF-8"))?;
    let mut name = None;
    let mut filename = None;
    let mut filename_ext = None;
    let mut content_type = None;
    for line in block.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Obsolete header folding: browsers never send it; the continuation is ignored.
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or(MultipartError::BadHeader("a line without a colon"))?;
        let key = key.trim();
        let value = value.trim();
        if key.eq_ignore_ascii_case("content-disposition") {
            let (kind, params) = match value.find(';') {
                Some(i) => (&value[..i], &value[i + 1..]),
                None => (value, ""),
            };
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(MultipartError::NoDisposition);
            }
            for param in Params::new(params) {
                let (k, v) = param?;
                if k.eq_ignore_ascii_case("name") {
                    name = Some(v);
                } else if k.eq_ignore_ascii_case("filename") {
                    filename = Some(v);
                } else if k.eq_ignore_ascii_case("filename*") {
                    filename_ext = decode_ext_value(&v);
                }
            }
        } else if key.eq_ignore_ascii_case("content-type") {
            content_type = Some(value);
        }
    }
    let name = name.ok_or(MultipartError::NoDisposition)?;
    Ok((
        name,
        filename_ext.map(Cow::Owned).or(filename),
        content_type,
    ))
}

/// Decodes an RFC 5987 `ext-value` (`UTF-8'lang'%E2%82%AC`); other charsets than UTF-8 and
/// ISO-8859-1 are ignored (the plain `filename` is used then).
fn decode_ext_value(v: &str) -> Option<String> {
    let mut it = v.splitn(3, '\'');
    let charset = it.next()?;
    let _lang = it.next()?;
    let encoded = it.next()?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let e = encoded.as_bytes();
    let mut i = 0;
    while i < e.len() {
        if e[i] == b'%' {
            let h = std::str::from_utf8(e.get(i + 1..i + 3)?).ok()?;
            bytes.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            bytes.push(e[i]);
            i += 1;
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| b as char).collect())
    } else {
        None
    }
}

/// Iterator over `; key=value` parameters (values quoted or tokens).
struct Params<'a> {
    s: &'a str,
}

impl<'a> Params<'a> {
    fn new(s: &'a str) -> Self {
        Params { s }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a str, Cow<'a, str>), MultipartError>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s.trim_start_matches([' ', '\t', ';']);
        if s.is_empty() {
            self.s = s;
            return None;
        }
        let Some(eq) = s.find('=') else {
            self.s = "";
            return Some(Err(MultipartError::BadHeader("a parameter without '='")));
        };
        let key = s[..eq].trim();
        let rest = s[eq + 1..].trim_start_matches([' ', '\t']);
        if let Some(quoted) = rest.strip_prefix('"') {
            // Quoted string: up to the first unescaped quote.
            let bytes = quoted.as_bytes();
            let mut i = 0;
            let mut escaped = false;
            while i < bytes.len() {
                match bytes[i] {
                    // Browsers (WHATWG) do not escape backslashes, they percent-encode
                    // quotes; other clients send `\"` and `\\`. Only those two pairs are
                    // escapes, so a Windows path keeps its backslashes.
                    b'\\' if matches!(bytes.get(i + 1), Some(b'"' | b'\\')) => {
                        escaped = true;
                        i += 2;
                        continue;
                    }
                    b'"' => break,
                    _ => i += 1,
                }
            }
            if i >= bytes.len() {
                self.s = "";
                return Some(Err(MultipartError::BadHeader(
                    "an unterminated quoted string",
                )));
            }
            let raw = &quoted[..i];
            self.s = &quoted[i + 1..];
            let value = if escaped {
                let mut out = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' && matches!(chars.clone().next(), Some('"' | '\\')) {
                        out.push(chars.next().unwrap_or('\\'));
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            } else {
                Cow::Borrowed(raw)
            };
            Some(Ok((key, value)))
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            self.s = &rest[end..];
            Some(Ok((key, Cow::Borrowed(rest[..end].trim_end()))))
        }
    }
}

/// One part for [`build_body`]: `(name, filename, content type, data)`.
pub type PartSpec<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// Builds a body (for tests, benchmarks and examples).
pub fn build_body(boundary: &str, parts: &[PartSpec<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, ct, data) in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
        if let Some(f) = filename {
            out.extend_from_slice(b"; filename=\"");
            out.extend_from_slice(f.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = ct {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(ct.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_variants() {
        let b = |s| boundary_from_content_type(s).map(|c| c.into_owned());
        assert_eq!(b("multipart/form-data; boundary=abc").unwrap(), "abc");
        assert_eq!(
            b("Multipart/Form-Data;BOUNDARY=\"a b:c\"").unwrap(),
            "a b:c"
        );
        assert_eq!(
            b("multipart/form-data; charset=utf-8; boundary=----WebKitFormBoundary7MA4YWxk")
                .unwrap(),
            "----WebKitFormBoundary7MA4YWxk"
        );
        assert_eq!(b("application/json"), Err(MultipartError::NotMultipart));
        assert_eq!(b("multipart/form-data"), Err(MultipartError::NoBoundary));
        assert_eq!(
            b("multipart/form-data; boundary=\"\""),
            Err(MultipartError::BadBoundary)
        );
        assert_eq!(
            b(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            Err(MultipartError::BadBoundary)
        );
    }

    #[test]
    fn parses_browser_body() {
        let body = b"preamble\r\n--XyZ\r\n\
content-disposition: form-data; name=\"email\"\r\n\r\n\
a@b.co\r\n--XyZ  \r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"x\\\"y.mp3\"\r\n\
CONTENT-TYPE: audio/mpeg\r\n\r\n\
\x00\xff\r\n--Xy\r\n--XyZ--\r\nepilogue";
        let parts = parse(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "email");
        assert_eq!(parts[0].data, b"a@b.co");
        assert!(matches!(parts[0].name, Cow::Borrowed(_)), "zero-copy name");
        assert_eq!(parts[1].filename.as_deref(), Some("x\"y.mp3"));
        assert_eq!(parts[1].content_type, Some("audio/mpeg"));
        assert_eq!(parts[1].data, b"\x00\xff\r\n--Xy");
    }

    #[test]
    fn backslashes_stay_unless_escaping() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\dir\\a\\\\b\\\"c.mp3\"\r\n\r\nX\r\n--b--";
        let parts = parse(body, "b").unwrap();
        assert_eq!(parts[0].filename.as_deref(), Some("C:\\dir\\a\\b\"c.mp3"));
    }

    #[test]
    fn filename_star_wins() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fallback.mp3\"; filename*=UTF-8''%ED%95%9C%EA%B8%80.mp3\r\n\r\nX\r\n--b--";
        let parts = parse(body, "b").unwrap();
        assert_eq!(parts[0].filename.as_deref(), Some("한글.mp3"));
    }

    #[test]
    fn empty_part_and_no_headers() {
        let body = b"--b\r\n\r\nraw\r\n--b--";
        assert_eq!(parse(body, "b"), Err(MultipartError::NoDisposition));
        let body = b"--b\r\nContent-Disposition: form-data; name=e\r\n\r\n\r\n--b--";
        let parts = parse(body, "b").unwrap();
        assert_eq!(parts[0].name, "e");
        assert_eq!(parts[0].data, b"");
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"nothing", "b"), Err(MultipartError::NoFirstBoundary));
        assert_eq!(
            parse(
                b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\ndata",
                "b"
            ),
            Err(MultipartError::Unterminated)
        );
        assert_eq!(parse(b"--bX", "b"), Err(MultipartError::BadDelimiter));
        assert_eq!(
            parse(
                b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--",
                "b"
            ),
            Err(MultipartError::NoDisposition)
        );
        assert_eq!(
            parse(b"--b\r\nno colon\r\n\r\nx\r\n--b--", "b"),
            Err(MultipartError::BadHeader("a line without a colon"))
        );
        let many: Vec<PartSpec> = (0..=MAX_PARTS)
            .map(|_| ("a", None, None, &b"1"[..]))
            .collect();
        assert_eq!(
            parse(&build_body("b", &many), "b"),
            Err(MultipartError::TooManyParts)
        );
    }

    #[test]
    fn build_round_trip() {
        let body = build_body(
            "bnd",
            &[
                ("email", None, None, b"x@y.z"),
                ("file", Some("a.mp3"), Some("audio/mpeg"), b"\r\n"),
            ],
        );
        let parts = parse(&body, "bnd").unwrap();
        assert_eq!(parts[1].data, b"\r\n");
        assert_eq!(parts[1].filename.as_deref(), Some("a.mp3"));
    }
}
