//! The slow-consumer policy: a member that stops reading is cut off with 1008 once its send
//! queue is full, and the publisher and the other members never stall because of it.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{server, Client, Raw, KEY};
use serde_json::json;
use socket2::{Domain, Socket, Type};

/// A raw client with a tiny receive buffer, so the server's queue fills fast once it stops
/// reading.
fn stalled_member(addr: std::net::SocketAddr, room: &str) -> Raw {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(common::RECV_TIMEOUT)).unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Raw { stream };
    assert!(raw.read_http_head().starts_with("HTTP/1.1 101"));
    raw.expect_text(); // connection:established
    raw.join(room);
    raw
}

#[test]
fn stalled_reader_is_cut_off_and_the_others_keep_receiving() {
    let srv = server(|c| {
        c.batch_window_ms = 0;
        c.max_message_bytes = 4096;
        c.send_queue_bytes = 16 * 1024;
    });
    let addr = srv.local_addr();
    let mut stalled = stalled_member(addr, "bp");
    let mut active = Client::connect(addr, "/ws");
    active.join("bp");

    // Publish in rounds until the stalled member is cut off (the kernel's buffers absorb a
    // varying amount first); the active member reads along and must get every message.
    const ROUND: usize = 500;
    const ROUNDS_MAX: usize = 40;
    let content = "x".repeat(900);
    let stats = || -> serde_json::Value { serde_json::from_str(&srv.stats_json()).unwrap() };
    let started = Instant::now();
    let mut sent = 0;
    let mut received = 0;
    for _ in 0..ROUNDS_MAX {
        for _ in 0..ROUND {
            active.send(json!({"type":"message:send","room":"bp","content":content}));
            sent += 1;
            // Read as we go, like a live client.
            while received + 4 < sent {
                if active.recv()["type"] == "message:new" {
                    received += 1;
                }
            }
        }
        if stats()["slow_consumer_closes"] == 1 {
            break;
        }
    }
    while received < sent {
        if active.recv()["type"] == "message:new" {
            received += 1;
        }
    }
    assert_eq!(stats()["slow_consumer_closes"], 1, "after {sent} messages");
    assert!(started.elapsed() < Duration::from_secs(60));
    // Reading again, it finds what the kernel held, then the 1008 close, unless it came back
    // after the cut's linger: then its socket was reset to free the kernel's buffer.
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stalled.expect_close()));
    let s = stats();
    match closed {
        Ok(code) => assert_eq!(code, 1008),
        Err(_) => assert_eq!(s["slow_consumer_resets"], 1, "{s}"),
    }
    srv.shutdown().unwrap();
}
