//! Users over real sockets on a 2-shard server: token authentication, presence across devices
//! and shards, direct messages, notifications and mentions, the backend's HTTP API, rate
//! limits and content limits.

mod common;

use std::time::Duration;

use common::{http, room_on, server, upgrade_status, user_token as token, Client, SECRET};
use serde_json::{json, Value};

const API_KEY: &str = "api-key-0123456789abcdef";

#[test]
fn tokens_authenticate_at_the_handshake() {
    let srv = server(|c| {
        c.auth_secret = Some(SECRET.into());
        c.allow_anonymous = false;
    });
    let addr = srv.local_addr();
    let room = room_on(1, 2, "t");
    let mut a = Client::connect(
        addr,
        &format!(
            "/ws?room={}&token={}",
            room_on(0, 2, "h"),
            token("u-1", "alice", 60)
        ),
    );
    a.join(&room);
    // The bearer header works too.
    let (ws, _) = tungstenite::connect(common::ws_request(
        addr,
        "Authorization",
        &format!("Bearer {}", token("u-2", "bob", 60)),
    ))
    .unwrap();
    drop(ws);
    a.send(json!({"type":"message:send","room":room,"content":"x"}));
    assert_eq!(
        a.recv_type("message:new")["from"],
        json!({"userId":"u-1","username":"alice"})
    );
    a.expect_error(json!({"type":"room:join","room":room}), "already_in_room");
    a.send(json!({"type":"auth:login","username":"mallory"}));
    assert_eq!(a.recv_type("auth:error")["code"], "login_disabled");

    assert!(
        upgrade_status(addr, &format!("/ws?token={}", token("u", "x", -3600)), "").contains("401")
    );
    assert!(upgrade_status(addr, "/ws?token=garbage", "").contains("401"));
    assert!(
        upgrade_status(addr, "/ws", "").contains("401"),
        "anonymous refused"
    );
    let forged = token("u-1", "alice", 60).replace('.', ".x");
    assert!(upgrade_status(addr, &format!("/ws?token={forged}"), "").contains("401"));
    srv.shutdown().unwrap();
}

/// The next `presence:update` about `name` (others' updates are skipped: users idle away).
fn presence_of(c: &mut Client, name: &str) -> Value {
    loop {
        let p = c.recv_type("presence:update");
        if p["username"] == name {
            return p;
        }
    }
}

#[test]
fn presence_follows_devices_across_shards_and_reaches_room_mates_once() {
    let srv = server(|c| c.away_after_ms = 600);
    let addr = srv.local_addr();
    let (r1, r2) = (room_on(0, 2, "p1"), room_on(1, 2, "p2"));
    let mut bob = Client::user(addr, &room_on(1, 2, "h"), "bob");
    bob.join(&r1);
    bob.join(&r2);
    let mut alice = Client::user(addr, &room_on(0, 2, "h"), "alice");
    let mut alice2 = Client::user(addr, &room_on(1, 2, "h2"), "alice");
    alice.join(&r1);
    alice.join(&r2);
    alice2.join(&r1);

    alice.send(json!({"type":"presence:update","status":"dnd"}));
    let p = presence_of(&mut bob, "alice");
    assert_eq!(p["status"], "dnd");
    assert!(p["lastSeen"].as_u64().unwrap() > 0);
    // Two shared rooms, one update: nothing more about alice before the list answers.
    bob.send(json!({"type":"presence:list","room":r2,"ref":"pl"}));
    let list = loop {
        let v = bob.recv();
        assert!(
            !(v["type"] == "presence:update" && v["username"] == "alice"),
            "a second update: {v}"
        );
        if v["type"] == "presence:list" {
            break v;
        }
    };
    assert_eq!(list["ref"], "pl", "{list}");
    let status_of = |list: &Value, name: &str| {
        list["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of(&list, "alice"), "dnd");
    assert!(["online", "away"].contains(&&*status_of(&list, "bob")));

    // Closing one device changes nothing; closing the last makes alice offline.
    alice2.close();
    alice.send(json!({"type":"presence:update","status":"online"}));
    assert_eq!(presence_of(&mut bob, "alice")["status"], "online");
    alice.close();
    assert_eq!(presence_of(&mut bob, "alice")["status"], "offline");

    // Idle devices go away, then come back on activity (bob idles too: skip his updates).
    let mut carol = Client::user(addr, &room_on(0, 2, "h3"), "carol");
    carol.join(&r2);
    assert_eq!(presence_of(&mut bob, "carol")["status"], "away");
    carol.send(json!({"type":"room:list"}));
    assert_eq!(presence_of(&mut bob, "carol")["status"], "online");
    srv.shutdown().unwrap();
}

#[test]
fn direct_messages_reach_every_device_and_notify() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let mut alice = Client::user(addr, &room_on(0, 2, "h"), "alice");
    let mut bob1 = Client::user(addr, &room_on(0, 2, "h2"), "bob");
    let mut bob2 = Client::user(addr, &room_on(1, 2, "h"), "bob");

    alice.send(json!({"type":"message:direct","to":"bob","content":{"text":"hello"},"ref":"d1"}));
    let ack = alice.recv_type("ack");
    assert_eq!(ack["ref"], "d1");
    let id = ack["id"].as_u64().unwrap();
    for bob in [&mut bob1, &mut bob2] {
        let d = bob.recv_type("message:direct");
        assert_eq!(d["id"].as_u64(), Some(id));
        assert_eq!(d["from"], json!({"userId":"alice","username":"alice"}));
        assert_eq!(d["content"], json!({"text":"hello"}));
        let n = bob.recv_type("notification:new");
        assert_eq!(n["kind"], "direct");
        assert_eq!(n["title"], "New message from alice");
        assert_eq!(bob.recv_type("notification:unread")["count"], 1);
    }
    alice.expect_error(
        json!({"type":"message:direct","to":"nobody","content":"?"}),
        "unknown_user",
    );

    // A mention in a room notifies the member named.
    let room = room_on(1, 2, "m");
    alice.join(&room);
    bob1.join(&room);
    alice.send(json!({"type":"message:send","room":room,"content":"ping @bob and @nobody"}));
    let n = bob2.recv_type("notification:new");
    assert_eq!(
        (n["kind"].as_str(), n["body"].as_str()),
        (Some("mention"), Some("ping @bob and @nobody"))
    );
    assert_eq!(bob2.recv_type("notification:unread")["count"], 2);

    bob2.send(json!({"type":"notification:list","ref":"nl"}));
    let list = bob2.recv_type("notification:list");
    assert_eq!(list["unread"], 2);
    let items = list["notifications"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "mention", "newest first");
    let ids: Vec<u64> = items.iter().map(|n| n["id"].as_u64().unwrap()).collect();
    bob2.send(json!({"type":"notification:read","ids":ids}));
    for bob in [&mut bob2, &mut bob1] {
        // Every device updates (after the counts it had queued before).
        while bob.recv_type("notification:unread")["count"] != 0 {}
    }

    // Notifications wait for users who are offline.
    drop(bob1);
    drop(bob2);
    std::thread::sleep(Duration::from_millis(200));
    alice.send(json!({"type":"message:direct","to":"bob","content":"later"}));
    alice.recv_type("ack");
    let mut bob3 = Client::user(addr, &room_on(1, 2, "h3"), "bob");
    assert_eq!(bob3.recv_type("notification:unread")["count"], 1);
    // Guests have no inbox.
    let mut g = Client::connect(addr, "/ws");
    g.expect_error(json!({"type":"notification:list"}), "auth_required");
    srv.shutdown().unwrap();
}

fn post(addr: std::net::SocketAddr, path: &str, key: Option<&str>, body: &Value) -> String {
    let body = body.to_string();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn the_backend_pushes_over_http_with_its_key() {
    let srv = server(|c| c.api_key = Some(API_KEY.into()));
    let addr = srv.local_addr();
    let room = room_on(1, 2, "news");
    let mut alice = Client::user(addr, &room_on(0, 2, "h"), "alice");
    alice.join(&room);

    let publish = json!({"room": room, "content": {"headline": "up"}});
    assert!(post(addr, "/api/publish", None, &publish).starts_with("HTTP/1.1 401"));
    assert!(
        post(addr, "/api/publish", Some("wrong-key-0123456789"), &publish)
            .starts_with("HTTP/1.1 401")
    );
    let ok = post(addr, "/api/publish", Some(API_KEY), &publish);
    assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
    let m = alice.recv_type("message:new");
    assert_eq!(m["from"]["userId"], "system");
    assert_eq!(m["content"], json!({"headline": "up"}));

    let notify = json!({"userId": "alice", "title": "Build", "body": "green"});
    assert!(post(addr, "/api/notify", Some(API_KEY), &notify).starts_with("HTTP/1.1 202"));
    let n = alice.recv_type("notification:new");
    assert_eq!(
        (n["title"].as_str(), n["body"].as_str()),
        (Some("Build"), Some("green"))
    );
    let bad = post(
        addr,
        "/api/notify",
        Some(API_KEY),
        &json!({"userId": "alice"}),
    );
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let bad_room = post(
        addr,
        "/api/publish",
        Some(API_KEY),
        &json!({"room": "a b", "content": 1}),
    );
    assert!(bad_room.starts_with("HTTP/1.1 400"));
    srv.shutdown().unwrap();

    let off = server(|_| {});
    assert!(
        post(off.local_addr(), "/api/notify", Some(API_KEY), &notify).starts_with("HTTP/1.1 404")
    );
    off.shutdown().unwrap();
}

#[test]
fn rate_limit_warns_then_refuses_and_never_drops_silently() {
    let srv = server(|c| {
        c.rate_limit = "10/60s".into();
        c.batch_window_ms = 0;
    });
    let addr = srv.local_addr();
    let room = room_on(1, 2, "rl");
    let mut a = Client::user(addr, &room_on(0, 2, "h"), "alice");
    let mut b = Client::user(addr, &room_on(0, 2, "h2"), "bob");
    a.join(&room);
    b.join(&room);
    let mut events = Vec::new();
    for i in 0..12 {
        a.send(json!({"type":"message:send","room":room,"content":i,"ref":i}));
    }
    let mut acks = 0;
    let mut refused = Vec::new();
    while acks + refused.len() < 12 {
        let v = a.recv();
        match v["type"].as_str().unwrap() {
            "ack" => acks += 1,
            "error" => refused.push(v),
            "rate_limit:warning" => events.push(v),
            _ => {}
        }
    }
    assert_eq!(acks, 10);
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0]["code"], "rate_limited");
    assert_eq!(refused[0]["ref"], 10);
    assert_eq!(events.len(), 1, "one warning");
    assert_eq!(events[0]["remaining"], 2);
    assert!(events[0]["resetTime"].as_u64().unwrap() > 1_000_000_000_000);
    for i in 0..10 {
        assert_eq!(b.recv_type("message:new")["content"], i);
    }
    b.expect_silence(Duration::from_millis(200));
    // Still usable for everything else.
    a.send(json!({"type":"room:list"}));
    a.recv_type("room:list");
    let stats: Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["rate_limited"], 2);
    srv.shutdown().unwrap();
}

#[test]
fn content_over_the_limit_is_refused() {
    let srv = server(|c| c.max_content_bytes = 100);
    let mut a = Client::user(srv.local_addr(), "x", "alice");
    a.join("x");
    let e = a.expect_error(
        json!({"type":"message:send","room":"x","content":"y".repeat(200)}),
        "content_too_large",
    );
    assert!(e["message"].as_str().unwrap().contains("100"));
    a.send(json!({"type":"message:send","room":"x","content":"ok"}));
    assert_eq!(a.recv_type("message:new")["content"], "ok");
    srv.shutdown().unwrap();
}
