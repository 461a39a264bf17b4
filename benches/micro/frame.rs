//! Measures RFC 6455 frame work per message: decoding a client frame header and encoding a
//! server text frame (small chat message and a 4 KiB one).

use corecast::protocol::frame::{decode_header, text_frame};
use corecast_benches::{masked_frame, CLIENT_MESSAGE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let small = masked_frame(CLIENT_MESSAGE.as_bytes());
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_header", |b| {
        b.iter(|| {
            decode_header(black_box(&small), 64 * 1024)
                .unwrap()
                .unwrap()
        })
    });
    let payload = vec![b'x'; 110];
    g.bench_function("encode_text_110B", |b| {
        b.iter(|| text_frame(black_box(&payload)))
    });
    let big = vec![b'x'; 4096];
    g.bench_function("encode_text_4KiB", |b| {
        b.iter(|| text_frame(black_box(&big)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
