#![no_main]
//! `cargo fuzz run untrusted_input` (from handlers/file-upload): what strangers control must
//! never panic: the first bytes of an uploaded object (audio_transcribe's check), a file name
//! and a declared content type (file_upload's validation).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = file_upload::audio::detect(data);
    let _ = file_upload::audio::id3_tag_len(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = file_upload::validate::filename(text) {
            if let Some(format) = file_upload::audio::AudioFormat::from_content_type(text) {
                let _ = file_upload::validate::storage_name(&name, format);
            }
        }
        let _ = file_upload::validate::email(text);
    }
});
