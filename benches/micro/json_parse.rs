//! Measures parsing a typical client message: simd-json in place, then the envelope and the
//! feature's parser (what the engine does), against serde_json as a baseline.

use corecast::features::parse;
use corecast::protocol::message::{envelope, parse_json};
use corecast_benches::CLIENT_MESSAGE;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_parse");
    g.throughput(Throughput::Elements(1));
    let mut buffers = simd_json::Buffers::default();
    let mut scratch = CLIENT_MESSAGE.as_bytes().to_vec();
    g.bench_function("simd_json_in_place", |b| {
        b.iter(|| {
            scratch.copy_from_slice(CLIENT_MESSAGE.as_bytes());
            let v = parse_json(black_box(&mut scratch), &mut buffers).unwrap();
            let (kind, fields) = envelope(&v).message.unwrap();
            black_box(parse(kind, &fields).is_ok())
        })
    });
    g.bench_function("serde_json_value", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(CLIENT_MESSAGE)).unwrap();
            black_box(v["type"] == "message:send")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
