//! Measures the documents' transform per op pair: a change of 256 ops (the most a change may
//! have) against the ops applied since its base, the work a far-behind change costs its
//! owner and that `TRANSFORM_PAIRS_PER_UNIT` prices.

use corecast::features::docs::operation::{transform_against, Op};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

/// `n` one-character ops spread over a long text: inserts, and every fourth a delete.
fn ops(n: usize, seed: usize) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let pos = (i * 7919 + seed * 104_729) % 50_000;
            if i % 4 == 3 {
                Op::delete(pos, 1)
            } else {
                Op::insert(pos, "x")
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("transform");
    for (change, applied) in [(1, 1_000), (256, 64), (256, 1_024)] {
        let mine = ops(change, 1);
        let theirs = ops(applied, 2);
        g.throughput(Throughput::Elements((change * applied) as u64));
        let id = BenchmarkId::new("pairs", format!("{change}x{applied}"));
        g.bench_with_input(id, &(mine, theirs), |b, (mine, theirs)| {
            b.iter(|| black_box(transform_against(mine.clone(), black_box(theirs))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
