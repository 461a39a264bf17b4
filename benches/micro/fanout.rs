//! Measures the per-member work of a room fan-out on 1, 100 and 10,000 members: the engine's
//! way (the frame copied once into the room's chunk, each member's queue extending a range of
//! it) against queueing a clone of the shared `Bytes` on every member.

use bytes::Bytes;
use corecast::features::chat::events::message_new;
use corecast::protocol::frame::text_frame;
use corecast::server::{FanoutChunks, SendQueue};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

/// Messages queued on every member before the queues are emptied, as in one write interval.
const MESSAGES_PER_ROUND: usize = 16;

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
        g.throughput(Throughput::Elements((members * MESSAGES_PER_ROUND) as u64));
        g.bench_with_input(BenchmarkId::new("chunk", members), &members, |b, _| {
            let mut chunks = FanoutChunks::default();
            b.iter(|| {
                for _ in 0..MESSAGES_PER_ROUND {
                    let (chunk, start, end) = chunks.place(0, black_box(&frame)).unwrap();
                    for q in queues.iter_mut() {
                        q.push_chunk(&chunk, start, end).unwrap();
                    }
                }
                for q in queues.iter_mut() {
                    q.clear();
                }
            })
        });
        g.bench_with_input(
            BenchmarkId::new("bytes_clone", members),
            &members,
            |b, _| {
                b.iter(|| {
                    for _ in 0..MESSAGES_PER_ROUND {
                        for q in queues.iter_mut() {
                            q.push(black_box(frame.clone())).unwrap();
                        }
                    }
                    for q in queues.iter_mut() {
                        q.clear();
                    }
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
