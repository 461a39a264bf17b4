//! The close handshake after a server-initiated close: once the client's close reply is in,
//! the server closes TCP at once; the linger is only for peers that never answer.

mod common;

use std::io::Read;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{server, Raw};

/// Longest wait from the client's close reply to the server's FIN that counts as "at once"
/// (the linger it replaces is 2 s).
const CLOSE_AFTER_REPLY_MAX: Duration = Duration::from_millis(500);

/// Reads until end of stream; returns how long after `since` it came.
fn time_to_eof(raw: &mut Raw, since: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    loop {
        match raw.stream.read(&mut buf) {
            Ok(0) => return since.elapsed(),
            Ok(_) => continue,
            Err(e) => panic!("no end of stream: {e}"),
        }
    }
}

/// Sends what makes the server close with `code`, answers its close, and returns the time
/// from that answer to the TCP close.
fn reply_then_wait(raw: &mut Raw, code: u16) -> Duration {
    assert_eq!(raw.expect_close(), code);
    let sent = Instant::now();
    raw.frame(0x88, &code.to_be_bytes());
    time_to_eof(raw, sent)
}

type Trigger = Box<dyn Fn(&mut Raw)>;

#[test]
fn the_close_reply_ends_the_connection_at_once() {
    let srv = server(|c| c.max_message_bytes = 1024);
    let addr = srv.local_addr();
    let cases: Vec<(&str, Trigger, u16)> = vec![
        ("binary", Box::new(|r| r.frame(0x82, &[1, 2, 3])), 1003),
        (
            "binary, then more frames before the reply",
            Box::new(|r| {
                r.frame(0x82, &[1, 2, 3]);
                r.frame(0x81, br#"{"type":"room:list"}"#);
                r.frame(0x89, b"ping");
                r.frame(0x02, &[0; 300]);
                r.frame(0x80, &[0; 5000]);
            }),
            1003,
        ),
        // The whole oversized frame follows its header; the server skips it unbuffered.
        (
            "one frame over the limit",
            Box::new(|r| r.frame(0x81, &[b' '; 100_000])),
            1009,
        ),
        (
            "over the limit in fragments",
            Box::new(|r| {
                r.frame(0x01, &[b' '; 800]);
                r.frame(0x80, &[b' '; 800]);
            }),
            1009,
        ),
        (
            "bad utf-8",
            Box::new(|r| r.frame(0x81, &[0xff, 0xfe])),
            1007,
        ),
    ];
    for (name, trigger, code) in cases {
        let mut raw = Raw::connect(addr);
        trigger(&mut raw);
        let waited = reply_then_wait(&mut raw, code);
        assert!(waited < CLOSE_AFTER_REPLY_MAX, "{name}: {waited:?}");
    }
    srv.shutdown().unwrap();
}

#[test]
fn a_reply_split_over_segments_still_ends_it() {
    let srv = server(|_| {});
    let mut raw = Raw::connect(srv.local_addr());
    raw.frame(0x82, &[1, 2, 3]);
    assert_eq!(raw.expect_close(), 1003);
    let mut reply = Vec::new();
    corecast::protocol::frame::put_client_frame(&mut reply, 0x88, &1003u16.to_be_bytes(), [7; 4]);
    raw.stream.set_nodelay(true).unwrap();
    for b in &reply {
        raw.write(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Instant::now();
    let waited = time_to_eof(&mut raw, sent);
    assert!(waited < CLOSE_AFTER_REPLY_MAX, "{waited:?}");
    srv.shutdown().unwrap();
}

#[test]
fn broken_framing_ends_at_the_peers_end_of_stream() {
    let srv = server(|_| {});
    let mut raw = Raw::connect(srv.local_addr());
    // Unmasked: the byte stream has no frames to look for a close in.
    raw.write(&[0x81, 0x02, b'h', b'i']);
    assert_eq!(raw.expect_close(), 1002);
    raw.frame(0x88, &1002u16.to_be_bytes());
    raw.stream.shutdown(Shutdown::Write).unwrap();
    let sent = Instant::now();
    let waited = time_to_eof(&mut raw, sent);
    assert!(waited < CLOSE_AFTER_REPLY_MAX, "{waited:?}");
    srv.shutdown().unwrap();
}
