//! Our zero-copy parser against `multer` (the multipart parser of axum/warp) on the same
//! 4.5 MB upload body, in one run.
//!
//! Run: `cargo bench -p file-upload --bench multipart`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use file_upload::multipart::{build_body, Multipart};

const BOUNDARY: &str = "----WebKitFormBoundaryq7MA4YWxkTrZu0gW";

/// The upload form with a 4.5 MB pseudo-random file (an LCG, so no accidental boundary).
fn body() -> Vec<u8> {
    let mut file = file_upload::audio::sample_mp3(1, true);
    let mut x: u32 = 0x1234_5678;
    while file.len() < file_upload::MAX_FILE_BYTES {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        file.push((x >> 24) as u8);
    }
    build_body(
        BOUNDARY,
        &[
            ("email", None, None, b"user@example.com"),
            ("language", None, None, b"ko-KR"),
            ("file", Some("한글 녹음.mp3"), Some("audio/mpeg"), &file),
        ],
    )
}

fn ours(body: &[u8]) -> usize {
    let mut total = 0;
    for part in Multipart::new(body, BOUNDARY) {
        let part = part.unwrap();
        total += part.data.len() + part.name.len();
    }
    total
}

fn multer_parse(body: Bytes) -> usize {
    futures::executor::block_on(async move {
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut mp = multer::Multipart::new(stream, BOUNDARY);
        let mut total = 0;
        while let Some(field) = mp.next_field().await.unwrap() {
            let name_len = field.name().map(str::len).unwrap_or(0);
            total += field.bytes().await.unwrap().len() + name_len;
        }
        total
    })
}

fn bench(c: &mut Criterion) {
    let body = body();
    let shared = Bytes::from(body.clone());
    assert_eq!(ours(&body), multer_parse(shared.clone()), "same result");
    let mut g = c.benchmark_group("multipart_4_5MB");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.sample_size(30);
    g.bench_function("stt_zero_copy", |b| b.iter(|| ours(black_box(&body))));
    g.bench_function("multer_3", |b| {
        b.iter(|| multer_parse(black_box(shared.clone())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
