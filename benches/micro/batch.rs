//! Measures batch assembly: encoding 10 `message:new` objects and joining them into one
//! `batch` frame, as a room's owner does once per flush.

use corecast::features::chat::events::message_new;
use corecast::protocol::event::batch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// Ten typical chat messages, encoded as the owner encodes them.
fn ten_messages() -> Vec<Vec<u8>> {
    (0..10)
        .map(|i| {
            message_new(
                "general",
                i,
                br#"{"userId":"u7","username":"alice"}"#,
                br#""Hello everyone!""#,
                1_795_000_000_000,
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(10));
    g.bench_function("encode_10_and_frame", |b| {
        b.iter(|| black_box(batch(&ten_messages())))
    });
    let msgs = ten_messages();
    g.bench_function("frame_10_encoded", |b| {
        b.iter(|| black_box(batch(black_box(&msgs))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
