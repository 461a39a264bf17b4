//! Measures the per-member work of a room fan-out: queueing one shared encoded frame on 1, 100
//! and 10,000 members' send queues (a reference count bump and a push, no copy).

use bytes::Bytes;
use corecast::protocol::event::message_new;
use corecast::protocol::frame::text_frame;
use corecast::server::SendQueue;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_enqueue");
    let frame: Bytes = text_frame(&message_new(
        "general",
        42,
        br#"{"userId":"u7","username":"alice"}"#,
        br#""Hello everyone!""#,
        1,
    ));
    for members in [1usize, 100, 10_000] {
        let mut queues: Vec<SendQueue> = (0..members).map(|_| SendQueue::new(1 << 30)).collect();
        g.throughput(Throughput::Elements(members as u64));
        g.bench_with_input(BenchmarkId::from_parameter(members), &members, |b, _| {
            b.iter(|| {
                for q in queues.iter_mut() {
                    q.push(black_box(frame.clone())).unwrap();
                }
                for q in queues.iter_mut() {
                    q.clear();
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
