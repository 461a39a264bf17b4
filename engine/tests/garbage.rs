//! Bad input from many clients at once: random frames and random bytes never take the server
//! down or disturb a well-behaved client; every garbage connection ends with a close frame or
//! is still usable. Random client messages, right and wrong, get answers or `error` events with a
//! stable code and never close a connection or stop a shard.

mod common;

use std::time::Duration;

use common::{server, Client, Raw};
use serde_json::json;

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn random_frames_and_bytes_never_hurt_the_server() {
    let srv = server(|c| c.max_message_bytes = 4096);
    let addr = srv.local_addr();
    let mut good = Client::connect(addr, "/ws");
    good.join("calm");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..60 {
        let mut raw = Raw::connect(addr);
        raw.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        for _ in 0..(1 + rng.next() % 4) {
            match rng.next() % 5 {
                // A frame with a random first byte (opcode, RSV, FIN) and random payload.
                0 | 1 => {
                    let b0 = rng.next() as u8;
                    let len = (rng.next() % 300) as usize;
                    let payload = rng.bytes(len);
                    raw.frame(b0, &payload);
                }
                // A text frame with random JSON-ish content.
                2 => {
                    let junk = [
                        "{",
                        "}",
                        "\"type\"",
                        ":",
                        "\"room:join\"",
                        "\"room\"",
                        "[",
                        "]",
                        "1",
                        ",",
                        "\"message:send\"",
                        "\"content\"",
                        "null",
                    ];
                    let text: String = (0..(rng.next() % 20))
                        .map(|_| junk[(rng.next() % junk.len() as u64) as usize])
                        .collect();
                    raw.frame(0x81, text.as_bytes());
                }
                // Raw bytes, no framing at all.
                3 => {
                    let len = (rng.next() % 64) as usize;
                    let bytes = rng.bytes(len);
                    raw.write(&bytes);
                }
                // A header that promises far more than it sends.
                _ => raw.write(&[0x81, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]),
            }
        }
        // Whatever happened, the connection either answers or was closed with a valid code.
        loop {
            match raw.read_frame() {
                Some((8, p)) => {
                    let code = u16::from_be_bytes([p[0], p[1]]);
                    // Ours for a violation, or the client's own valid code echoed back.
                    assert!(
                        [1002, 1003, 1007, 1009].contains(&code)
                            || corecast::protocol::close::is_valid_peer_code(code),
                        "round {round}: close code {code}"
                    );
                    break;
                }
                Some(_) => continue,
                None => break, // Timeout (still open) or closed after the close frame.
            }
        }
        // The well-behaved client is untouched.
        good.send(json!({"type":"message:send","room":"calm","content":round}));
        assert_eq!(good.recv_type("message:new")["content"], round);
    }
    let stats: serde_json::Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert!(stats["protocol_closes"].as_u64().unwrap() > 0, "{stats}");
    srv.shutdown().unwrap();
}

/// A value for `field` that is sometimes right and often wrong: wrong types, empty and
/// oversized strings, negative, fractional and huge numbers, ids of real and unknown users.
fn field_value(rng: &mut Rng, field: &str, user_ids: &[String]) -> serde_json::Value {
    let long = "x".repeat(3000);
    let pick =
        |rng: &mut Rng, vs: Vec<serde_json::Value>| vs[rng.below(vs.len() as u64) as usize].clone();
    let odd = vec![
        json!(null),
        json!(-1),
        json!(1.5),
        json!([1]),
        json!({"a": 1}),
        json!(true),
    ];
    let good = match field {
        "room" => vec![
            json!("r0"),
            json!("r1"),
            json!("r2"),
            json!("r0"),
            json!("r1"),
            json!("r2"),
            json!(""),
            json!("bad name!"),
            json!(long.clone()),
            json!("über"),
        ],
        "content" => vec![
            json!("hi"),
            json!("@ann @bob hello"),
            json!(12),
            json!({"k": [1, 2]}),
            json!(long),
        ],
        "password" => vec![json!("pw"), json!(""), json!("x".repeat(200))],
        "description" => vec![json!("d"), json!("x".repeat(5000))],
        "maxUsers" => vec![json!(0), json!(1), json!(2), json!(u64::MAX)],
        "limit" => vec![json!(0), json!(1), json!(50), json!(1_000_000)],
        "before" | "upTo" => vec![json!(0), json!(1), json!(3), json!(u64::MAX)],
        "status" => vec![json!("online"), json!("away"), json!("dnd"), json!("bogus")],
        "username" => vec![
            json!("ann"),
            json!("bob"),
            json!(""),
            json!("x".repeat(100)),
            json!("a b"),
        ],
        "to" => {
            let mut v: Vec<_> = user_ids.iter().map(|u| json!(u)).collect();
            v.push(json!("nobody"));
            v
        }
        "ids" => vec![json!([1, 2, 3]), json!([]), json!([u64::MAX]), json!([-1])],
        "ref" => vec![json!("r"), json!(7), json!("x".repeat(200))],
        _ => unreachable!("{field}"),
    };
    if rng.below(8) == 0 {
        pick(rng, odd)
    } else {
        pick(rng, good)
    }
}

/// A random client message: a known type (now and then an unknown one) with a random subset
/// of the fields it takes, each from [`field_value`].
fn random_message(rng: &mut Rng, user_ids: &[String]) -> serde_json::Value {
    const TYPES: [(&str, &[&str]); 17] = [
        ("auth:login", &["username"]),
        (
            "room:create",
            &["room", "description", "password", "maxUsers"],
        ),
        ("room:list", &[]),
        ("room:join", &["room", "password"]),
        ("room:join", &["room"]),
        ("room:leave", &["room"]),
        ("message:send", &["room", "content"]),
        ("message:send", &["room", "content"]),
        ("message:history", &["room", "limit", "before"]),
        ("message:read", &["room", "upTo"]),
        ("typing:start", &["room"]),
        ("typing:stop", &["room"]),
        ("presence:update", &["status"]),
        ("presence:list", &["room"]),
        ("message:direct", &["to", "content"]),
        ("notification:list", &[]),
        ("notification:read", &["ids"]),
    ];
    let (kind, fields) = TYPES[rng.below(TYPES.len() as u64) as usize];
    let mut m = serde_json::Map::new();
    m.insert(
        "type".into(),
        if rng.below(20) == 0 {
            json!("room:explode")
        } else {
            json!(kind)
        },
    );
    for f in fields {
        // Each field is left out now and then.
        if rng.below(6) != 0 {
            m.insert((*f).into(), field_value(rng, f, user_ids));
        }
    }
    if rng.below(3) == 0 {
        m.insert("ref".into(), field_value(rng, "ref", user_ids));
    }
    serde_json::Value::Object(m)
}

/// Reads what has arrived for `c` within a few milliseconds; every `error` event must carry a
/// stable code and a message. Counts events by type (and error code) in `seen`. Returns false
/// once the connection is closed.
fn drain_checking_errors(
    c: &mut Client,
    seen: &mut std::collections::BTreeMap<String, u32>,
) -> bool {
    use tungstenite::Message;
    loop {
        match c.ws.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).expect("valid json");
                let kind = match v["code"].as_str() {
                    Some(code) => format!("{}:{code}", v["type"].as_str().unwrap_or_default()),
                    None => v["type"].as_str().unwrap_or_default().to_string(),
                };
                *seen.entry(kind).or_default() += 1;
                // A batch's messages count as what they are.
                for m in v["messages"].as_array().into_iter().flatten() {
                    let kind = m["type"].as_str().unwrap_or_default().to_string();
                    *seen.entry(kind).or_default() += 1;
                }
                if v["type"] == "error" || v["type"] == "auth:error" {
                    let code = v["code"].as_str().unwrap_or_default();
                    assert!(
                        !code.is_empty()
                            && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                        "error without a stable code: {v}"
                    );
                    assert!(v["message"].is_string(), "error without a message: {v}");
                }
            }
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                // Only a slow reader may be cut (1008); a valid message never closes.
                assert_eq!(code, 1008, "closed with {code}");
                return false;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return true;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn random_valid_and_invalid_messages_never_hurt_the_server() {
    let srv = server(|c| c.max_message_bytes = 16 * 1024);
    let addr = srv.local_addr();
    let mut good = Client::connect(addr, "/ws");
    good.join("calm");
    let mut clients: Vec<Client> = Vec::new();
    let mut user_ids = Vec::new();
    for (i, name) in ["ann", "bob", "cat", "dan", "", ""].iter().enumerate() {
        let home = if i % 2 == 0 {
            "/ws?room=r0"
        } else {
            "/ws?room=r1"
        };
        let mut c = Client::connect(addr, home);
        if !name.is_empty() {
            let ok = c.login(name);
            user_ids.push(ok["userId"].as_str().unwrap().to_string());
        }
        clients.push(c);
    }
    for c in &clients {
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = c.ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(3))).unwrap();
        }
    }
    let mut open = vec![true; clients.len()];
    let mut seen = std::collections::BTreeMap::new();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for step in 0..1500 {
        let i = rng.below(clients.len() as u64) as usize;
        if open[i] {
            let m = random_message(&mut rng, &user_ids);
            clients[i].send(m);
        }
        if step % 10 == 9 {
            for (c, o) in clients.iter_mut().zip(open.iter_mut()) {
                if *o {
                    *o = drain_checking_errors(c, &mut seen);
                }
            }
            good.send(json!({"type":"message:send","room":"calm","content":step}));
            assert_eq!(good.recv_type("message:new")["content"], step);
        }
    }
    assert!(open.iter().filter(|o| **o).count() >= 4, "{open:?}");
    // The mix reached the features, not only the parser's refusals.
    for kind in [
        "room:joined",
        "message:new",
        "message:history",
        "message:direct",
        "ack",
    ] {
        assert!(seen.contains_key(kind), "no {kind} in {seen:?}");
    }
    let refusals = seen.keys().filter(|k| k.starts_with("error:")).count();
    assert!(refusals >= 6, "{seen:?}");
    // A newcomer gets the whole service.
    let mut late = Client::connect(addr, "/ws?room=r2");
    late.join("r2");
    late.send(json!({"type":"message:send","room":"r2","content":"still here"}));
    assert_eq!(late.recv_type("message:new")["content"], "still here");
    srv.shutdown().expect("every shard still running");
}
