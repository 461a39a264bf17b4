//! Test support: a real server on 127.0.0.1:0 and real WebSocket clients (tungstenite), plus a
//! raw socket client for the frames a well-behaved library refuses to send.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corecast::protocol::frame::put_client_frame;
use corecast::{Config, Server, ServerHandle};
use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long a test waits for an expected frame before failing.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A 2-shard server on a free port, unpinned so parallel test binaries share the CPUs, with
/// no rate limit (tests that measure it set one).
pub fn server(tweak: impl FnOnce(&mut Config)) -> ServerHandle {
    let mut config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        shards: 2,
        pin: false,
        rate_limit: "off".into(),
        request_rate: "off".into(),
        user_request_rate: "off".into(),
        ip_request_rate: "off".into(),
        ..Config::default()
    };
    tweak(&mut config);
    Server::start(config).expect("server starts")
}

/// A room name owned by `shard` (of `shards`), distinct per `tag`.
pub fn room_on(shard: usize, shards: usize, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|r| corecast::runtime::owner_shard(r, shards) == shard)
        .unwrap()
}

pub struct Client {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
    pub id: u64,
    pub shard: u64,
    /// Events read but not yet taken (batches are expanded into their messages).
    pending: std::collections::VecDeque<Value>,
}

impl Client {
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        let (ws, _resp) =
            tungstenite::connect(format!("ws://{addr}{path}")).expect("websocket connects");
        Client::from_ws(ws)
    }

    /// Connects from source address `from` (another loopback address, such as 127.0.0.2),
    /// so the server sees a different peer than the other clients'.
    pub fn connect_from(addr: SocketAddr, path: &str, from: std::net::IpAddr) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        socket
            .bind(&SocketAddr::new(from, 0).into())
            .expect("bind the source address");
        socket.connect(&addr.into()).expect("connects");
        let stream: TcpStream = socket.into();
        let url = format!("ws://{addr}{path}");
        let (ws, _resp) =
            tungstenite::client(url, MaybeTlsStream::Plain(stream)).expect("websocket connects");
        Client::from_ws(ws)
    }

    /// A client on a WebSocket connected by the test (with headers of its own); reads the
    /// greeting.
    pub fn from_ws(ws: WebSocket<MaybeTlsStream<TcpStream>>) -> Client {
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
        }
        let mut c = Client {
            ws,
            id: 0,
            shard: 0,
            pending: Default::default(),
        };
        let hello = c.recv();
        assert_eq!(hello["type"], "connection:established", "{hello}");
        c.id = hello["connectionId"].as_u64().unwrap();
        c.shard = hello["shard"].as_u64().unwrap();
        c
    }

    pub fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).expect("send");
    }

    pub fn send_text(&mut self, t: &str) {
        self.ws.send(Message::text(t.to_string())).expect("send");
    }

    /// The next frame as JSON, unexpanded (a batch stays a batch).
    pub fn recv_frame(&mut self) -> Value {
        loop {
            match self.ws.read().expect("read a frame") {
                Message::Text(t) => return serde_json::from_str(&t).expect("valid json"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next event; messages inside a `batch` come one by one.
    pub fn recv(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        let v = self.recv_frame();
        if v["type"] == "batch" {
            let msgs = v["messages"].as_array().unwrap().clone();
            assert!(!msgs.is_empty());
            self.pending.extend(msgs);
            return self.pending.pop_front().unwrap();
        }
        v
    }

    /// Events until one of `kind` (returned); others are dropped.
    pub fn recv_type(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no {kind} in time");
            let v = self.recv();
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// `auth:login` as `name`; returns `auth:success`.
    pub fn login(&mut self, name: &str) -> Value {
        self.send(json!({"type": "auth:login", "username": name}));
        let v = self.recv_type_or_error("auth:success");
        assert_eq!(v["type"], "auth:success", "{v}");
        v
    }

    /// Connects to `/ws/room/{home}` (so it lands on `home`'s shard) and logs in as `name`.
    pub fn user(addr: SocketAddr, home: &str, name: &str) -> Client {
        let mut c = Client::connect(addr, &format!("/ws/room/{home}"));
        c.login(name);
        c
    }

    /// Events until one of `kind` or an error (`error`, `auth:error`), returned.
    pub fn recv_type_or_error(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no {kind} in time");
            let v = self.recv();
            if v["type"] == kind || v["type"] == "error" || v["type"] == "auth:error" {
                return v;
            }
        }
    }

    /// Sends `msg` with a `ref` and returns the `error` that answers it.
    pub fn expect_error(&mut self, mut msg: Value, code: &str) -> Value {
        msg["ref"] = json!("e1");
        self.send(msg);
        let v = self.recv_type("error");
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["ref"], "e1");
        v
    }

    /// Nothing but pings arrives for `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        assert!(self.pending.is_empty(), "pending: {:?}", self.pending);
        if let MaybeTlsStream::Plain(s) = self.ws.get_ref() {
            s.set_read_timeout(Some(wait)).unwrap();
        }
        let got = self.ws.read();
        if let MaybeTlsStream::Plain(s) = self.ws.get_ref() {
            s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
        }
        match got {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => {}
            Ok(m) => panic!("expected silence, got {m:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("expected silence, got {e}"),
        }
    }

    pub fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "room:join", "room": room}));
        self.recv_type("room:joined")
    }

    /// Reads until the server's close frame; returns its code.
    pub fn expect_close(&mut self) -> u16 {
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no close in time");
            match self.ws.read() {
                Ok(Message::Close(Some(f))) => return u16::from(f.code),
                Ok(Message::Close(None)) => return 1005,
                Ok(_) => continue,
                Err(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
    }

    pub fn close(&mut self) {
        let _ = self.ws.close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }));
        let _ = self.ws.flush();
    }
}

/// A raw TCP client that completed the upgrade and writes hand-made frames.
pub struct Raw {
    pub stream: TcpStream,
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut raw = Raw { stream };
        let head = raw.read_http_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let (op, payload) = raw.read_frame().expect("greeting");
        assert_eq!(op, 1);
        assert!(String::from_utf8(payload)
            .unwrap()
            .contains("connection:established"));
        raw
    }

    pub fn read_http_head(&mut self) -> String {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if self.stream.read(&mut b).unwrap() == 0 {
                break;
            }
            head.push(b[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// Writes one masked frame with the given first byte.
    pub fn frame(&mut self, b0: u8, payload: &[u8]) {
        let mut out = Vec::new();
        put_client_frame(&mut out, b0, payload, [0x37, 0xfa, 0x21, 0x3d]);
        self.stream.write_all(&out).unwrap();
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one server frame: (opcode, payload); None at end of stream.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h).ok()?;
        assert_eq!(h[1] & 0x80, 0, "server frames are never masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).ok()?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).ok()?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.stream.read_exact(&mut p).ok()?;
        Some((h[0] & 0x0f, p))
    }

    /// Reads frames until a close; returns its code.
    pub fn expect_close(&mut self) -> u16 {
        loop {
            match self.read_frame() {
                Some((8, p)) => {
                    assert!(p.len() >= 2, "close carries a code");
                    return u16::from_be_bytes([p[0], p[1]]);
                }
                Some(_) => continue,
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    /// Joins `room` and reads its `room:joined`.
    pub fn join(&mut self, room: &str) {
        let join = json!({"type":"room:join","room":room}).to_string();
        self.frame(0x81, join.as_bytes());
        assert_eq!(self.expect_text()["type"], "room:joined");
    }

    /// Reads frames until a text frame; returns it as JSON.
    pub fn expect_text(&mut self) -> Value {
        loop {
            match self.read_frame() {
                Some((1, p)) => return serde_json::from_slice(&p).unwrap(),
                Some((8, p)) => panic!("closed: {p:?}"),
                Some(_) => continue,
                None => panic!("stream ended"),
            }
        }
    }
}

/// A client upgrade request for `ws://{addr}/ws` carrying the header `name: value` too.
pub fn ws_request(addr: SocketAddr, name: &str, value: &str) -> tungstenite::http::Request<()> {
    tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/ws"))
        .header("Host", addr.to_string())
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .header(name, value)
        .body(())
        .unwrap()
}

/// The HS256 secret the token tests give the server (`auth_secret`).
pub const SECRET: &str = "test-secret-0123456789";

/// Seconds since the Unix epoch, for token claims.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token with these claims, signed with [`SECRET`].
pub fn sign(claims: &Value) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token for user `sub` shown as `name`, expiring `exp_in_secs` from now.
pub fn user_token(sub: &str, name: &str, exp_in_secs: i64) -> String {
    sign(&json!({"sub": sub, "name": name, "exp": unix_now() + exp_in_secs}))
}

/// The server's counters (`/healthz`'s `stats`), summed over shards.
pub fn stats(srv: &ServerHandle) -> Value {
    serde_json::from_str(&srv.stats_json()).unwrap()
}

/// Resident memory of this process (a server started by `server` runs inside it), in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Kernel memory held by TCP sockets on this host, in bytes (`/proc/net/sockstat`).
pub fn kernel_tcp_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap();
    let line = text.lines().find(|l| l.starts_with("TCP:")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "mem").unwrap();
    words[at + 1].parse::<u64>().unwrap() * 4096
}

/// The status line answering an upgrade request for `target` with `extra` headers (each
/// ending in CRLF).
pub fn upgrade_status(addr: SocketAddr, target: &str, extra: &str) -> String {
    let resp = http(
        addr,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ),
    );
    resp.lines().next().unwrap_or("").to_string()
}

/// One plain HTTP request; returns the whole response.
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(RECV_TIMEOUT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
