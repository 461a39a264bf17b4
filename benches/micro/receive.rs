//! Measures loadgen's work per delivery on its receive path: finding and parsing the marker in
//! each message of a received `batch` and recording its latency, for a 1000-member broadcast
//! read in slices of 64 sockets stamped with one clock reading, as the measured loop reads them.

use corecast::features::chat::events::message_new;
use corecast::protocol::event::batch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use loadgen::marker::{self, Mark, Scanner};
use loadgen::recorder::Recorder;
use std::hint::black_box;

const MEMBERS: u64 = 1000;
const SLICE_SOCKETS: u64 = 64;
const FRAMES: u64 = 10;
const MESSAGES_PER_FRAME: u64 = 10;
/// Gap between intended send times at 10,000 messages/s (10M deliveries/s to 1000 members).
const INTENDED_GAP_NS: u64 = 100_000;

/// The payloads of ten `batch` frames of ten messages, each carrying its own marker in a
/// 32-byte content, as corecast sends them to every member.
fn payloads(t0: u64) -> Vec<Vec<u8>> {
    (0..FRAMES)
        .map(|f| {
            let messages: Vec<Vec<u8>> = (0..MESSAGES_PER_FRAME)
                .map(|i| {
                    let seq = f * MESSAGES_PER_FRAME + i;
                    let mut content = b"\"".to_vec();
                    let mark = Mark {
                        room_pub: 0,
                        publisher: 0,
                        seq,
                        intended_ns: t0 + seq * INTENDED_GAP_NS,
                    };
                    marker::write(&mut content, &mark, 32);
                    content.push(b'"');
                    message_new(
                        "bench",
                        seq,
                        br#"{"userId":"u0","username":"u0"}"#,
                        &content,
                        1_795_000_000_000,
                    )
                })
                .collect();
            let frame = batch(&messages);
            assert_eq!(frame[1], 126, "a 16-bit length header");
            frame[4..].to_vec()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let t0 = 1_000_000_000_000;
    let payloads = payloads(t0);
    let mut g = c.benchmark_group("receive");
    g.throughput(Throughput::Elements(MEMBERS * FRAMES * MESSAGES_PER_FRAME));
    g.bench_function("broadcast_1000_members", |b| {
        let mut scanner = Scanner::new();
        let mut recorder = Recorder::new(0, 0, u64::MAX);
        let mut now = t0 + 20_000_000;
        b.iter(|| {
            for member in 0..MEMBERS {
                if member % SLICE_SOCKETS == 0 {
                    now += 100_000;
                }
                for p in &payloads {
                    scanner.scan(black_box(p), |m| recorder.on_received(m.intended_ns, now));
                }
            }
            recorder.settle();
        });
        black_box(recorder.received_total);
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
