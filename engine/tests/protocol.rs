//! RFC 6455 over a real socket: handshake statuses, close codes for every violation, pings,
//! the close handshake, and the HTTP endpoint.

mod common;

use common::{http, server, Client, Raw, KEY};

fn upgrade_request(extra: &str, path: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n"
    )
}

#[test]
fn handshake_refusals_have_the_right_status() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let r = http(addr, &upgrade_request("", "/ws", "8"));
    assert!(r.starts_with("HTTP/1.1 426"), "{r}");
    assert!(r.contains("Sec-WebSocket-Version: 13"), "{r}");
    let r = http(addr, &upgrade_request("", "/ws", "13").replace(KEY, "bad"));
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = http(
        addr,
        &upgrade_request("", "/ws", "13").replacen("GET", "POST", 1),
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = http(addr, &upgrade_request("", "/elsewhere", "13"));
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let big = format!("X-Fill: {}\r\n", "a".repeat(10_000));
    let r = http(addr, &upgrade_request(&big, "/ws", "13"));
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let r = http(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let body: serde_json::Value =
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["shards"], 2);
    assert!(body["stats"]["handshake_failures"].as_u64().unwrap() >= 5);
    srv.shutdown().unwrap();
}

#[test]
fn slow_handshakes_time_out() {
    let srv = server(|c| c.handshake_timeout_ms = 200);
    let mut s = std::net::TcpStream::connect(srv.local_addr()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /ws HTTP/1.1\r\n").unwrap();
    let mut buf = [0u8; 16];
    let started = std::time::Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "connection closed without a response");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    srv.shutdown().unwrap();
}

/// Each violation and the close code it must earn.
#[test]
fn violations_close_with_their_codes() {
    let srv = server(|c| c.max_message_bytes = 1024);
    let addr = srv.local_addr();
    type Case = (&'static str, Box<dyn Fn(&mut Raw)>, u16);
    let cases: Vec<Case> = vec![
        (
            "unmasked",
            Box::new(|r| r.write(&[0x81, 0x02, b'h', b'i'])),
            1002,
        ),
        ("rsv bits", Box::new(|r| r.frame(0xC1, b"{}")), 1002),
        (
            "unknown data opcode",
            Box::new(|r| r.frame(0x83, b"")),
            1002,
        ),
        (
            "unknown control opcode",
            Box::new(|r| r.frame(0x8B, b"")),
            1002,
        ),
        ("long ping", Box::new(|r| r.frame(0x89, &[0; 126])), 1002),
        ("fragmented ping", Box::new(|r| r.frame(0x09, b"")), 1002),
        (
            "continuation first",
            Box::new(|r| r.frame(0x80, b"x")),
            1002,
        ),
        (
            "new message inside fragments",
            Box::new(|r| {
                r.frame(0x01, b"{");
                r.frame(0x81, b"{}");
            }),
            1002,
        ),
        (
            "bad utf-8",
            Box::new(|r| r.frame(0x81, &[0xff, 0xfe])),
            1007,
        ),
        (
            "utf-8 broken across fragments",
            Box::new(|r| {
                r.frame(0x01, &[0xce]);
                r.frame(0x80, &[0x28]);
            }),
            1007,
        ),
        ("too big", Box::new(|r| r.frame(0x81, &[b' '; 2000])), 1009),
        (
            "too big in fragments",
            Box::new(|r| {
                r.frame(0x01, &[b' '; 600]);
                r.frame(0x80, &[b' '; 600]);
            }),
            1009,
        ),
        ("binary", Box::new(|r| r.frame(0x82, &[1, 2, 3])), 1003),
        ("close with 1 byte", Box::new(|r| r.frame(0x88, &[3])), 1002),
        (
            "close with reserved code",
            Box::new(|r| r.frame(0x88, &1005u16.to_be_bytes())),
            1002,
        ),
        (
            "close with code 999",
            Box::new(|r| r.frame(0x88, &999u16.to_be_bytes())),
            1002,
        ),
        (
            "close reason not utf-8",
            Box::new(|r| r.frame(0x88, &[0x03, 0xe8, 0xff])),
            1007,
        ),
    ];
    for (name, send, code) in cases {
        let mut raw = Raw::connect(addr);
        send(&mut raw);
        assert_eq!(raw.expect_close(), code, "{name}");
    }
    let stats: serde_json::Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert!(stats["protocol_closes"].as_u64().unwrap() >= 16);
    srv.shutdown().unwrap();
}

#[test]
fn fragmented_text_with_a_ping_between_is_one_message() {
    let srv = server(|_| {});
    let mut raw = Raw::connect(srv.local_addr());
    raw.frame(0x01, br#"{"type":"room:"#);
    raw.frame(0x89, b"hello");
    raw.frame(0x00, br#"join","room":"#);
    raw.frame(0x80, br#""frag"}"#);
    let (op, payload) = raw.read_frame().unwrap();
    assert_eq!(
        (op, payload.as_slice()),
        (0xA, &b"hello"[..]),
        "pong echoes the ping"
    );
    let v = raw.expect_text();
    assert_eq!(v["type"], "room:joined");
    assert_eq!(v["room"], "frag");
    srv.shutdown().unwrap();
}

#[test]
fn close_handshake_echoes_the_code() {
    let srv = server(|_| {});
    let mut raw = Raw::connect(srv.local_addr());
    raw.frame(0x88, &[0x0f, 0xa0, b'b', b'y', b'e']); // 4000 "bye"
    assert_eq!(raw.expect_close(), 4000);
    assert!(
        raw.read_frame().is_none(),
        "server closes the TCP connection after"
    );
    let mut raw = Raw::connect(srv.local_addr());
    raw.frame(0x88, &[]);
    assert_eq!(raw.expect_close(), 1000);
    srv.shutdown().unwrap();
}

#[test]
fn idle_connections_are_pinged_then_closed() {
    let srv = server(|c| c.ping_interval_ms = 300);
    let mut raw = Raw::connect(srv.local_addr());
    // A silent peer: first a ping, then (no pong) a close with 1001.
    let (op, _) = raw.read_frame().unwrap();
    assert_eq!(op, 0x9, "ping");
    assert_eq!(raw.expect_close(), 1001);
    // A peer that answers (tungstenite replies to pings when it reads) stays.
    let mut c = Client::connect(srv.local_addr(), "/ws");
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    c.ws.get_mut();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = c.ws.get_ref() {
        s.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
    }
    while std::time::Instant::now() < until {
        match c.ws.read() {
            Ok(tungstenite::Message::Close(f)) => panic!("closed: {f:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    let stats: serde_json::Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["ping_timeouts"], 1);
    srv.shutdown().unwrap();
}

#[test]
fn graceful_shutdown_sends_1001() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let clients: Vec<Client> = (0..6).map(|_| Client::connect(addr, "/ws")).collect();
    let waiter = std::thread::spawn(move || {
        clients
            .into_iter()
            .map(|mut c| c.expect_close())
            .collect::<Vec<u16>>()
    });
    srv.shutdown().unwrap();
    assert_eq!(waiter.join().unwrap(), vec![1001; 6]);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer accepting"
    );
}

#[test]
fn second_server_on_a_taken_port_is_refused() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let err = corecast::Server::start(corecast::Config {
        addr,
        shards: 1,
        pin: false,
        ..Default::default()
    })
    .err()
    .expect("port is taken");
    assert!(matches!(err, corecast::Error::AddrInUse { .. }), "{err}");
    srv.shutdown().unwrap();
}
