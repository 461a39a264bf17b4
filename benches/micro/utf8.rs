//! Measures UTF-8 validation of text messages: whole messages, and the incremental check the
//! assembler runs across fragments.

use corecast::protocol::frame::Header;
use corecast::protocol::Assembler;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use headers::{cont, text};
use std::hint::black_box;

mod headers {
    use corecast::protocol::frame::decode_header;
    use corecast::protocol::frame::Header;

    fn header(b0: u8, len: usize) -> Header {
        let frame = corecast_benches::masked_frame(&vec![b'a'; len]);
        let mut f = frame.clone();
        f[0] = b0;
        decode_header(&f, 1 << 20).unwrap().unwrap()
    }
    pub fn text(len: usize, fin: bool) -> Header {
        header(if fin { 0x81 } else { 0x01 }, len)
    }
    pub fn cont(len: usize, fin: bool) -> Header {
        header(if fin { 0x80 } else { 0x00 }, len)
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let ascii = "Hello everyone! How is it going? ".repeat(30);
    let mixed = "Grüße, κόσμε, こんにちは 😀 ".repeat(30);
    for (name, s) in [("ascii_1KiB", &ascii), ("mixed_1KiB", &mixed)] {
        g.throughput(Throughput::Bytes(s.len() as u64));
        g.bench_function(format!("whole_{name}"), |b| {
            b.iter(|| std::str::from_utf8(black_box(s.as_bytes())).is_ok())
        });
    }
    // Four fragments, split inside multi-byte characters.
    let bytes = mixed.as_bytes();
    let q = bytes.len() / 4;
    let parts: Vec<(Header, Vec<u8>)> = vec![
        (text(q + 1, false), bytes[..q + 1].to_vec()),
        (cont(q, false), bytes[q + 1..2 * q + 1].to_vec()),
        (cont(q, false), bytes[2 * q + 1..3 * q + 1].to_vec()),
        (
            cont(bytes.len() - 3 * q - 1, true),
            bytes[3 * q + 1..].to_vec(),
        ),
    ];
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("fragments_mixed_1KiB", |b| {
        let mut a = Assembler::new(1 << 20);
        b.iter(|| {
            for (h, p) in &parts {
                let mut p = p.clone();
                let done = a.on_frame(h, &mut p).unwrap().is_some();
                black_box(done);
            }
            a.finish_message();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
