#![no_main]
//! `cargo fuzz run multipart` (from handlers/file-upload): the parser and the audio detector
//! on arbitrary input must never panic; the first byte picks the boundary length.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let n = (data[0] as usize % 16) + 1;
    let rest = &data[1..];
    let boundary: String = rest
        .iter()
        .take(n)
        .map(|&b| (b % 94 + 33) as char)
        .collect();
    let body = &rest[rest.len().min(n)..];
    let _ = file_upload::multipart::parse(body, &boundary);
    if let Ok(ct) = std::str::from_utf8(body) {
        let _ = file_upload::multipart::boundary_from_content_type(ct);
    }
    let _ = file_upload::audio::detect(body);
});
