//! The backend's HTTP API as real HTTP clients send it: a body in any number of TCP segments,
//! late behind its head, or larger than one read; the 413s it documents; a body that never
//! comes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{room_on, server, Client, RECV_TIMEOUT};
use serde_json::{json, Value};

const API_KEY: &str = "api-key-0123456789abcdef";

/// A complete API request for `body`.
fn request(path: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends `parts` as separate TCP segments, `pause` apart; returns the whole response.
fn send_in_parts(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        s.write_all(part).unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[test]
fn a_request_split_at_any_byte_is_served() {
    let srv = server(|c| c.api_key = Some(API_KEY.into()));
    let addr = srv.local_addr();
    let notify = json!({"userId": "bob", "title": "Build", "body": "green"});
    let req = request("/api/notify", &notify);
    for cut in 1..req.len() {
        let (head, tail) = req.split_at(cut);
        let resp = send_in_parts(addr, &[head, tail], Duration::from_millis(3));
        assert_eq!(
            status(&resp),
            "HTTP/1.1 202 Accepted",
            "cut at {cut}: {resp}"
        );
    }
    // Every one of them was acted on, with its body intact.
    let mut bob = Client::user(addr, "h", "bob");
    bob.send(json!({"type": "notification:list"}));
    let list = bob.recv_type("notification:list");
    assert_eq!(list["unread"], req.len() - 1, "{list}");
    let first = &list["notifications"][0];
    assert_eq!(first["title"], "Build");
    assert_eq!(first["body"], "green");
    srv.shutdown().unwrap();
}

#[test]
fn a_body_sent_long_after_its_head_is_served() {
    let srv = server(|c| c.api_key = Some(API_KEY.into()));
    let addr = srv.local_addr();
    let room = room_on(1, 2, "late");
    let mut alice = Client::user(addr, &room_on(0, 2, "h"), "alice");
    alice.join(&room);
    let req = request("/api/publish", &json!({"room": room, "content": "late"}));
    let head_len = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, body) = req.split_at(head_len);
    // The body in one byte at a time too, each 50 ms after the last.
    let (b1, b2) = body.split_at(1);
    let resp = send_in_parts(addr, &[head, b1, b2], Duration::from_millis(50));
    assert_eq!(status(&resp), "HTTP/1.1 202 Accepted", "{resp}");
    assert_eq!(alice.recv_type("message:new")["content"], "late");
    srv.shutdown().unwrap();
}

#[test]
fn large_bodies_are_read_whole_and_over_the_limits_get_413() {
    let srv = server(|c| c.api_key = Some(API_KEY.into()));
    let addr = srv.local_addr();
    let room = room_on(0, 2, "big");
    let mut alice = Client::user(addr, &room, "alice");
    alice.join(&room);

    // 12 KB of content: over one read's worth, under --max-content-bytes (16 KiB).
    let text: String = (0..12_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let req = request("/api/publish", &json!({"room": room, "content": text}));
    let resp = send_in_parts(addr, &[&req], Duration::ZERO);
    assert_eq!(status(&resp), "HTTP/1.1 202 Accepted", "{resp}");
    assert_eq!(alice.recv_type("message:new")["content"], text.as_str());

    // Content over --max-content-bytes in a body the API takes (under 64 KiB).
    let big = "x".repeat(20_000);
    let req = request("/api/publish", &json!({"room": room, "content": big}));
    let resp = send_in_parts(
        addr,
        &[&req[..9000], &req[9000..]],
        Duration::from_millis(5),
    );
    assert_eq!(status(&resp), "HTTP/1.1 413 Content Too Large", "{resp}");
    assert!(resp.contains("content_too_large"), "{resp}");

    // A body over 64 KiB is refused from its head.
    let huge = "x".repeat(70_000);
    let req = request("/api/publish", &json!({"room": room, "content": huge}));
    let resp = send_in_parts(addr, &[&req], Duration::ZERO);
    assert_eq!(status(&resp), "HTTP/1.1 413 Content Too Large", "{resp}");
    srv.shutdown().unwrap();
}

#[test]
fn a_body_that_never_comes_ends_at_the_handshake_timeout() {
    let srv = server(|c| {
        c.api_key = Some(API_KEY.into());
        c.handshake_timeout_ms = 300;
    });
    let req = request(
        "/api/notify",
        &json!({"userId": "bob", "title": "t", "body": "b"}),
    );
    let started = Instant::now();
    let mut s = TcpStream::connect(srv.local_addr()).unwrap();
    s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    s.write_all(&req[..req.len() - 5]).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let waited = started.elapsed();
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    srv.shutdown().unwrap();
}
