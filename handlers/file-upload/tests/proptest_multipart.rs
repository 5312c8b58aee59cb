//! Property tests of the multipart parser: arbitrary input never panics, and generated
//! forms round-trip.

use file_upload::multipart::{boundary_from_content_type, build_body, parse, Multipart, PartSpec};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048), boundary in "[ -~]{1,20}") {
        let _ = parse(&body, &boundary);
        let _ = Multipart::new(&body, &boundary).count();
    }

    #[test]
    fn arbitrary_content_type_never_panics(ct in "\\PC{0,120}") {
        let _ = boundary_from_content_type(&ct);
    }

    #[test]
    fn mutated_valid_bodies_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..256),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut body = build_body("bnd", &[("email", None, None, b"a@b.co"), ("file", Some("x.mp3"), Some("audio/mpeg"), &data)]);
        let i = flip.index(body.len());
        body[i] = byte;
        let c = cut.index(body.len() + 1);
        let _ = parse(&body[..c], "bnd");
    }

    #[test]
    fn generated_forms_round_trip(
        boundary in "[0-9A-Za-z'()+_,./:=?-]{1,69}[0-9A-Za-z]",
        parts in proptest::collection::vec(
            ("[a-z][a-z0-9_]{0,15}", proptest::option::of("[^\"\\\\\r\n\u{0}-\u{1f}]{1,40}"), proptest::option::of("[a-z]+/[a-z0-9.+-]+"), proptest::collection::vec(any::<u8>(), 0..512)),
            1..6),
    ) {
        let needle = format!("\r\n--{boundary}");
        for p in &parts {
            prop_assume!(!p.3.windows(needle.len()).any(|w| w == needle.as_bytes()));
        }
        let spec: Vec<PartSpec> = parts
            .iter()
            .map(|(n, f, c, d)| (n.as_str(), f.as_deref(), c.as_deref(), d.as_slice()))
            .collect();
        let body = build_body(&boundary, &spec);
        let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
        let b = boundary_from_content_type(&ct).unwrap();
        let got = parse(&body, &b).unwrap();
        prop_assert_eq!(got.len(), parts.len());
        for (g, (n, f, c, d)) in got.iter().zip(&parts) {
            prop_assert_eq!(g.name.as_ref(), n.as_str());
            prop_assert_eq!(g.filename.as_deref(), f.as_deref());
            prop_assert_eq!(g.content_type, c.as_deref());
            prop_assert_eq!(g.data, d.as_slice());
        }
    }
}
