//! What a hostile client can make the server hold: each test reproduces an attack from a
//! connection that never logs in, bounded in time, and asserts the bound (memory, kernel
//! socket memory, counts, close codes, the other clients' service).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{kernel_tcp_bytes, rss_bytes, server, stats, Client, Raw};
use corecast::protocol::frame::put_client_frame;
use serde_json::{json, Value};

/// Waits until `counter` reaches `want` (or fails after `within`).
fn wait_for(srv: &corecast::ServerHandle, counter: &str, want: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while stats(srv)[counter].as_u64().unwrap() < want {
        assert!(
            Instant::now() < deadline,
            "{counter} stayed below {want}: {}",
            stats(srv)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` masked frames with first byte `b0` and `payload`, back to back.
fn frames(b0: u8, payload: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        put_client_frame(&mut out, b0, payload, [1, 2, 3, 4]);
    }
    out
}

/// Writes `bytes` until done or the server stops taking them (it closed or reset us).
fn write_until_refused(stream: &mut TcpStream, bytes: &[u8]) -> bool {
    stream.write_all(bytes).is_ok()
}

/// Round-trip time of a `room:list` request on `client`.
fn round_trip(client: &mut Client) -> Duration {
    let t = Instant::now();
    client.send(json!({"type":"room:list","ref":"rt"}));
    client.recv_type("room:list");
    t.elapsed()
}

#[test]
fn a_ping_flood_from_a_reader_that_never_reads_costs_no_memory() {
    // The frame budget is raised out of the way: this is about what pongs cost.
    let srv = server(|c| c.max_frames_per_sec = 100_000_000);
    let addr = srv.local_addr();
    let mut raw = Raw::connect(addr);
    raw.stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let burst = frames(0x89, &[b'p'; 125], 1 << 13); // ~1 MiB of pings
    let before = rss_bytes();
    let started = Instant::now();
    let mut sent = 0usize;
    while started.elapsed() < Duration::from_secs(3) && write_until_refused(&mut raw.stream, &burst)
    {
        sent += burst.len();
    }
    let grown = rss_bytes().saturating_sub(before);
    let s = stats(&srv);
    assert!(sent > 8 << 20, "the flood got through: {sent} bytes");
    assert!(
        s["pongs_conflated"].as_u64().unwrap() > 10_000,
        "pongs replace each other: {s}"
    );
    // Unbounded pongs grew RSS by ~650 MB/s; a bounded queue holds one.
    assert!(
        grown < 64 << 20,
        "RSS grew {grown} bytes over {sent} bytes of pings"
    );
    // Service goes on for others.
    let mut other = Client::connect(addr, "/ws");
    assert!(round_trip(&mut other) < Duration::from_secs(2));
    srv.shutdown().unwrap();
}

#[test]
fn a_frame_flood_is_cut_with_1008_and_others_keep_their_latency() {
    let srv = server(|c| c.max_frames_per_sec = 10_000);
    let addr = srv.local_addr();
    let mut other = Client::connect(addr, "/ws");
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let raw = Raw::connect(addr);
        raw.stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        flooders.push(raw);
    }
    // Empty continuation frames after an unfinished text frame: the cheapest frames there are.
    let mut flood = Vec::new();
    put_client_frame(&mut flood, 0x01, b"{", [1, 2, 3, 4]);
    flood.extend(frames(0x00, b"", 200_000));
    for raw in &mut flooders {
        let _ = write_until_refused(&mut raw.stream, &flood);
    }
    wait_for(&srv, "frame_flood_closes", 4, Duration::from_secs(5));
    for raw in &mut flooders {
        assert_eq!(raw.expect_close(), 1008);
    }
    let rtt = round_trip(&mut other);
    assert!(rtt < Duration::from_millis(500), "round trip {rtt:?}");
    // A client within the budget is untouched.
    for i in 0..200 {
        other.send(json!({"type":"room:list","ref":i}));
        other.recv_type("room:list");
    }
    assert_eq!(stats(&srv)["frame_flood_closes"], 4);
    srv.shutdown().unwrap();
}

/// A raw member of `room` with default socket buffers, which never reads after joining.
fn stalled_member(addr: SocketAddr, room: &str) -> TcpStream {
    let mut raw = Raw::connect(addr);
    raw.join(room);
    raw.stream
}

#[test]
fn cut_slow_consumers_are_reset_and_free_their_kernel_buffers() {
    const STALLED: usize = 40;
    let srv = server(|c| {
        c.batch_window_ms = 0;
        c.history_messages = 0;
    });
    let addr = srv.local_addr();
    let mut stalled: Vec<TcpStream> = (0..STALLED).map(|_| stalled_member(addr, "sc")).collect();
    let mut publisher = Client::connect(addr, "/ws");
    publisher.join("sc");
    let baseline = kernel_tcp_bytes();
    let content = "x".repeat(16_000);
    let started = Instant::now();
    while stats(&srv)["slow_consumer_closes"].as_u64().unwrap() < STALLED as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            stats(&srv)
        );
        for _ in 0..20 {
            publisher.send(json!({"type":"message:send","room":"sc","content":content}));
            publisher.recv_type("message:new");
        }
    }
    // Each cut reader's kernel buffer held megabytes; the resets free them within about a
    // second (the cut's linger plus a housekeeping tick).
    wait_for(
        &srv,
        "slow_consumer_resets",
        STALLED as u64,
        Duration::from_secs(3),
    );
    std::thread::sleep(Duration::from_millis(300));
    let held = kernel_tcp_bytes().saturating_sub(baseline);
    assert!(
        held < 32 << 20,
        "{held} bytes of kernel TCP memory still held after {STALLED} resets"
    );
    // The reader sees the end of its stream (a reset), not a hang.
    let mut buf = vec![0u8; 1 << 20];
    let ended = loop {
        match stalled[0].read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(_) => continue,
        }
    };
    assert!(ended);
    assert_eq!(stats(&srv)["closes_reset"], STALLED as u64);
    drop(stalled);
    srv.shutdown().unwrap();
}

#[test]
fn a_message_left_incomplete_is_closed_when_its_time_runs_out() {
    let srv = server(|c| c.message_timeout_ms = 600);
    let addr = srv.local_addr();
    // A frame header for 60,000 bytes, and only part of them.
    let mut partial_frame = Raw::connect(addr);
    let mut frame = Vec::new();
    put_client_frame(&mut frame, 0x81, &vec![b' '; 60_000], [1, 2, 3, 4]);
    partial_frame.write(&frame[..30_000]);
    // A fragmented message whose last fragment never comes.
    let mut fragmented = Raw::connect(addr);
    fragmented.frame(0x01, b"{\"type\":");
    // A client that completes its message in time is served.
    let mut patient = Raw::connect(addr);
    let text = json!({"type":"room:list"}).to_string();
    patient.frame(0x01, &text.as_bytes()[..5]);
    std::thread::sleep(Duration::from_millis(200));
    patient.frame(0x80, &text.as_bytes()[5..]);
    assert_eq!(patient.expect_text()["type"], "room:list");
    let t = Instant::now();
    assert_eq!(partial_frame.expect_close(), 1008);
    assert_eq!(fragmented.expect_close(), 1008);
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(stats(&srv)["incomplete_timeouts"], 2);
    srv.shutdown().unwrap();
}

#[test]
fn the_shard_budget_for_incomplete_messages_closes_the_excess_with_1013() {
    let srv = server(|c| {
        c.shards = 1;
        c.max_message_bytes = 64 * 1024;
        c.incomplete_bytes_per_shard = 1 << 20;
    });
    let addr = srv.local_addr();
    let mut frame = Vec::new();
    put_client_frame(&mut frame, 0x81, &vec![b' '; 64 * 1024 - 16], [1, 2, 3, 4]);
    let mut parked = Vec::new();
    let mut refused = 0;
    for _ in 0..24 {
        let mut raw = Raw::connect(addr);
        raw.write(&frame[..frame.len() - 1]);
        raw.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut b = [0u8; 2];
        match raw.stream.read_exact(&mut b) {
            Ok(()) => {
                assert_eq!(b[0] & 0x0f, 8, "a close frame");
                let mut rest = [0u8; 2];
                raw.stream.read_exact(&mut rest).unwrap();
                assert_eq!(u16::from_be_bytes(rest), 1013);
                refused += 1;
            }
            Err(_) => parked.push(raw),
        }
    }
    let s = stats(&srv);
    assert!(refused > 0, "{s}");
    assert_eq!(s["incomplete_budget_closes"], refused);
    // What stays parked fits the budget.
    assert!(
        parked.len() * (frame.len() - 1) <= 1 << 20,
        "{}",
        parked.len()
    );
    // Finishing a parked frame still works: the budget refuses growth, not service.
    let last = frame.len() - 1;
    parked[0].write(&frame[last..]);
    parked[0]
        .stream
        .set_read_timeout(Some(common::RECV_TIMEOUT))
        .unwrap();
    assert_eq!(parked[0].expect_text()["type"], "error");
    srv.shutdown().unwrap();
}

/// Publishes `n` messages of `content` to `room` from `client` (a member), waiting for each.
fn publish(client: &mut Client, room: &str, content: &str, n: usize) {
    for _ in 0..n {
        client.send(json!({"type":"message:send","room":room,"content":content}));
        client.recv_type("message:new");
    }
}

/// The release-style binary (with its allocator) on a free port: the child and its address.
fn spawn_binary(args: &[&str]) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["--addr", "127.0.0.1:0", "--pin", "false", "--log", "info"])
        .args(args)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        if let Some(at) = line.find("addr=") {
            let rest = &line[at + 5..];
            let end = rest.find(' ').unwrap_or(rest.len());
            break rest[..end].parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn stored_history_costs_its_encoded_bytes() {
    const MESSAGES: usize = 1000;
    let (mut child, addr) = spawn_binary(&[
        "--shards",
        "1",
        "--rate-limit",
        "off",
        "--request-rate",
        "off",
        "--ip-request-rate",
        "off",
        "--batch-window-ms",
        "0",
        "--history-bytes-per-room",
        "67108864",
    ]);
    let mut client = Client::connect(addr, "/ws");
    client.join("store");
    let content = "y".repeat(16_000);
    publish(&mut client, "store", &content, 20); // warm up the allocator
    let before = rss_of(child.id());
    publish(&mut client, "store", &content, MESSAGES);
    let grown = rss_of(child.id()).saturating_sub(before) as f64;
    let stored = (MESSAGES * 16_100) as f64;
    let _ = child.kill();
    let _ = child.wait();
    // The encoded message with its envelope is ~16.1 KB; it cost 43 KB when its buffer had
    // doubled.
    assert!(
        grown / stored < 1.3,
        "{grown} bytes of RSS for {stored} bytes stored ({:.2}x)",
        grown / stored
    );
}

#[test]
fn the_shard_history_budget_holds_and_trims_the_quietest_rooms() {
    const BUDGET: usize = 2 << 20;
    let srv = server(|c| {
        c.shards = 1;
        c.batch_window_ms = 0;
        c.history_bytes_per_shard = BUDGET;
    });
    let addr = srv.local_addr();
    let content = "z".repeat(16_000);
    // Twelve guests fill twelve rooms with ~8 MB of messages, and leave.
    let before = rss_bytes();
    for g in 0..12 {
        let mut guest = Client::connect(addr, "/ws");
        let room = format!("spam-{g}");
        guest.join(&room);
        publish(&mut guest, &room, &content, 40);
        guest.close();
    }
    let s = stats(&srv);
    assert!(s["history_bytes"].as_u64().unwrap() <= BUDGET as u64, "{s}");
    assert!(s["history_trimmed"].as_u64().unwrap() > 0, "{s}");
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "RSS grew {grown} bytes with a 2 MiB history budget"
    );
    // The busiest, latest room kept its newest messages; the quietest lost theirs first.
    let mut reader = Client::connect(addr, "/ws");
    let joined = reader.join("spam-11");
    assert!(!joined["messages"].as_array().unwrap().is_empty());
    let first = reader.join("spam-0");
    assert!(first["messages"].as_array().unwrap().is_empty(), "{first}");
    srv.shutdown().unwrap();
}

#[test]
fn a_history_page_fits_the_askers_queue_and_pages_on() {
    let srv = server(|c| {
        c.batch_window_ms = 0;
        c.max_content_bytes = 16_384;
        c.history_bytes_per_room = 4 << 20;
    });
    let mut client = Client::connect(srv.local_addr(), "/ws");
    let joined = client.join("big");
    assert!(joined["messages"].as_array().unwrap().is_empty());
    let content = "h".repeat(16_000);
    publish(&mut client, "big", &content, 100);
    let mut seen = 0;
    let mut before: Option<u64> = None;
    let mut pages = 0;
    loop {
        let mut ask = json!({"type":"message:history","room":"big","limit":100,"ref":"h"});
        if let Some(b) = before {
            ask["before"] = json!(b);
        }
        client.send(ask);
        let page = client.recv_type("message:history");
        let messages = page["messages"].as_array().unwrap();
        let bytes: usize = messages.iter().map(|m| m.to_string().len()).sum();
        assert!(bytes <= 256 * 1024 + 16_384, "a page of {bytes} bytes");
        seen += messages.len();
        pages += 1;
        before = messages.first().map(|m| m["id"].as_u64().unwrap());
        if page["hasMore"] != true {
            break;
        }
    }
    assert_eq!(seen, 100, "every message, over {pages} pages");
    assert!(pages > 1);
    // The asker was never cut: it still talks.
    assert!(round_trip(&mut client) < Duration::from_secs(2));
    assert_eq!(stats(&srv)["slow_consumer_closes"], 0);
    srv.shutdown().unwrap();
}

#[test]
fn guests_cannot_fill_the_room_table_or_squat_names() {
    let srv = server(|c| c.room_ttl_secs = 1);
    let addr = srv.local_addr();
    let mut guest = Client::connect(addr, "/ws");
    guest.expect_error(
        json!({"type":"room:create","room":"support"}),
        "auth_required",
    );
    // A logged-in user makes rooms up to the connection's quota.
    let mut alice = Client::user(addr, "x", "alice");
    for i in 0..10 {
        alice.send(json!({"type":"room:create","room":format!("made-{i}")}));
        assert_eq!(
            alice.recv_type_or_error("room:created")["type"],
            "room:created"
        );
    }
    alice.expect_error(json!({"type":"room:create","room":"made-10"}), "room_quota");
    // A room its users left is forgotten after the TTL, history and all.
    guest.join("support");
    guest.send(json!({"type":"message:send","room":"support","content":"hello"}));
    guest.recv_type("message:new");
    guest.send(json!({"type":"room:leave","room":"support"}));
    guest.recv_type("room:left");
    let started = Instant::now();
    while stats(&srv)["rooms_expired"].as_u64().unwrap() < 11 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            stats(&srv)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rejoined = guest.join("support");
    assert!(
        rejoined["messages"].as_array().unwrap().is_empty(),
        "{rejoined}"
    );
    // The creator's quota per shard came back with the expiry; the connection's did not.
    let mut alice2 = Client::user(addr, "x", "alice");
    alice2.send(json!({"type":"room:create","room":"made-0"}));
    assert_eq!(
        alice2.recv_type_or_error("room:created")["type"],
        "room:created"
    );
    srv.shutdown().unwrap();
}

#[test]
fn healthz_shows_the_memory_bounds_the_server_runs_with() {
    let srv = server(|c| {
        c.history_bytes_per_shard = 8 << 20;
        c.max_connections = 77;
    });
    let resp = common::http(srv.local_addr(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    let health: Value = serde_json::from_str(body).unwrap();
    let limits = &health["limits"];
    assert_eq!(limits["history_bytes_per_shard"], 8 << 20, "{health}");
    assert_eq!(limits["max_connections"], 77);
    assert_eq!(limits["send_queue_bytes"], 1 << 20);
    assert_eq!(limits["request_rate"], "off");
    assert!(health["stats"]["history_bytes"].is_u64());
    assert_eq!(health["auth"]["mode"], "login", "{health}");
    assert_eq!(health["auth"]["guests"], true);
    srv.shutdown().unwrap();
}

#[test]
fn healthz_says_a_token_server_wants_tokens() {
    let srv = server(|c| {
        c.auth_secret = Some("0123456789abcdef-secret".into());
        c.allow_anonymous = false;
    });
    let resp = common::http(srv.local_addr(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    let health: Value = serde_json::from_str(body).unwrap();
    assert_eq!(health["auth"]["mode"], "token", "{health}");
    assert_eq!(health["auth"]["guests"], false);
    srv.shutdown().unwrap();
}
