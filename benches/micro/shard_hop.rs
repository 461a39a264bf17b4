//! Measures the cross-shard queue hop: messages pushed into a shard's inbox by another thread
//! and popped by the owner, with the doorbell rung per burst of 64 (as the flusher does).

use corecast::runtime::Inbox;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

const MESSAGES: u64 = 100_000;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("shard_hop");
    g.throughput(Throughput::Elements(MESSAGES));
    g.sample_size(20);
    g.bench_function("inbox_100k", |b| {
        b.iter(|| {
            let inbox = Arc::new(Inbox::new(64 * 1024));
            let producer = {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for i in 0..MESSAGES {
                        let mut m = i;
                        while let Err(back) = inbox.push(m) {
                            m = back;
                            std::hint::spin_loop();
                        }
                        if i % 64 == 63 {
                            inbox.ring();
                        }
                    }
                    inbox.ring();
                })
            };
            let mut cx = Context::from_waker(Waker::noop());
            let mut got = 0;
            while got < MESSAGES {
                match inbox.poll_pop(&mut cx) {
                    Poll::Ready(_) => got += 1,
                    Poll::Pending => std::hint::spin_loop(),
                }
            }
            producer.join().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
