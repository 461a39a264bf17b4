//! `Sec-WebSocket-Protocol`: a client offering subprotocols gets the first of its list that
//! the server speaks (`--subprotocols`), so browsers that ask for one complete the handshake;
//! one offering only unknown ones gets a 101 without the header.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use common::{room_on, server, Client, Raw, KEY, RECV_TIMEOUT};

/// A raw upgrade to `path` offering `offer` (no header when None): the 101's head, and the
/// client, greeted.
fn raw_upgrade(addr: SocketAddr, path: &str, offer: Option<&str>) -> (String, Raw) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    let header = offer.map_or(String::new(), |o| {
        format!("Sec-WebSocket-Protocol: {o}\r\n")
    });
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{header}\r\n"
    );
    let mut raw = Raw { stream };
    raw.stream.write_all(req.as_bytes()).unwrap();
    let head = raw.read_http_head();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let hello = raw.expect_text();
    assert_eq!(hello["type"], "connection:established", "{hello}");
    (head, raw)
}

fn answered_protocol(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Protocol: "))
        .map(str::to_string)
}

#[test]
fn the_first_offered_subprotocol_the_server_speaks_is_answered() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    // Seed 002's browser client.
    let (head, _c) = raw_upgrade(addr, "/ws", Some("v1, v2"));
    assert_eq!(answered_protocol(&head).as_deref(), Some("v1"), "{head}");
    let (head, _c) = raw_upgrade(addr, "/ws", Some("v2, json, corecast.v1"));
    assert_eq!(answered_protocol(&head).as_deref(), Some("json"), "{head}");
    // Only unknown ones: a 101 without the header (the client decides).
    let (head, _c) = raw_upgrade(addr, "/ws", Some("mqtt, wamp"));
    assert_eq!(answered_protocol(&head), None, "{head}");
    let (head, _c) = raw_upgrade(addr, "/ws", None);
    assert_eq!(answered_protocol(&head), None, "{head}");
    // Handed to the home room's shard before the 101: the choice travels with it.
    for shard in 0..2 {
        let path = format!("/ws/room/{}", room_on(shard, 2, "sp"));
        let (head, _c) = raw_upgrade(addr, &path, Some("v2, corecast.v1"));
        assert_eq!(
            answered_protocol(&head).as_deref(),
            Some("corecast.v1"),
            "{head}"
        );
    }
    srv.shutdown().unwrap();
}

#[test]
fn a_client_library_that_asks_for_a_subprotocol_connects() {
    let srv = server(|c| c.subprotocols = "chat.v3".into());
    let addr = srv.local_addr();
    let request = |offer: &str| common::ws_request(addr, "Sec-WebSocket-Protocol", offer);
    let (ws, resp) = tungstenite::connect(request("chat.v2, chat.v3")).expect("connects");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat.v3");
    let mut c = Client::from_ws(ws);
    c.join("room");
    // Asking only for what the server does not speak: the client library refuses the 101.
    assert!(tungstenite::connect(request("v1")).is_err());
    srv.shutdown().unwrap();
}
