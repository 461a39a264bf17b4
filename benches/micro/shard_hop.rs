//! Measures the hops between handlers: the cross-shard hop (messages pushed into a shard's
//! inbox by another thread and popped by the owner, with the doorbell rung per burst of 64, as
//! the flusher does), and the local hop (messages a shard routes to itself, through its local
//! queue, drained after the handler that sent them, 64 per handler).

use corecast::runtime::Inbox;
use corecast::server::harness::Harness;
use corecast::server::{ConnRef, ShardMsg};
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
    g.bench_function("local_fifo_100k", |b| {
        // A frame for a connection that is gone: the hop and the dispatch, nothing else.
        let mut h = Harness::new(1);
        let now = h.now();
        let gone = ConnRef { key: 0, id: 0 };
        let frame = bytes::Bytes::from_static(b"x");
        b.iter(|| {
            let sh = &mut h.shards[0];
            for _ in 0..MESSAGES / 64 {
                for _ in 0..64 {
                    let frame = frame.clone();
                    sh.route(0, ShardMsg::ToConn { conn: gone, frame });
                }
                sh.settle(now);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
