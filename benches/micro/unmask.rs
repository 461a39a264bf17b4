//! Measures unmasking client payloads in place (word at a time) against the byte-by-byte loop.

use corecast::protocol::frame::apply_mask;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn bytewise(buf: &mut [u8], mask: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    for size in [100usize, 1024, 64 * 1024] {
        let mut buf = vec![0x5au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("word", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), mask))
        });
        g.bench_with_input(BenchmarkId::new("bytewise", size), &size, |b, _| {
            b.iter(|| bytewise(black_box(&mut buf), mask))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
