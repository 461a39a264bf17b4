//! Request budgets and conflation against floods of the message types that fan out: every
//! type is charged to the connection's, the user's and the address's budget, and repeats
//! that change nothing cost nothing and reach nobody.

mod common;

use std::time::{Duration, Instant};

use common::{server, stats, Client};
use serde_json::{json, Value};

/// Events `client` receives until `quiet` passes without one.
fn drain(client: &mut Client, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = client.ws.get_ref() {
        s.set_read_timeout(Some(quiet)).unwrap();
    }
    while let Ok(msg) = client.ws.read() {
        if let tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "batch" {
                got.extend(v["messages"].as_array().unwrap().iter().cloned());
            } else {
                got.push(v);
            }
        }
    }
    got
}

/// Sends `messages` as fast as the socket takes them, then a marker request; returns the
/// replies (errors and acks) up to the marker's.
fn blast(client: &mut Client, messages: impl Iterator<Item = Value>) -> Vec<Value> {
    for m in messages {
        client
            .ws
            .write(tungstenite::Message::text(m.to_string()))
            .unwrap();
    }
    client.ws.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // the budget refills for the marker
    client.send(json!({"type":"room:list","ref":"marker"}));
    let mut replies = Vec::new();
    loop {
        let v = client.recv();
        if v["ref"] == "marker" {
            return replies;
        }
        replies.push(v);
    }
}

#[test]
fn floods_of_reads_typing_and_presence_are_charged_and_conflated() {
    let srv = server(|c| {
        c.request_rate = "200/1s".into();
        c.user_request_rate = "off".into();
        c.ip_request_rate = "off".into();
    });
    let addr = srv.local_addr();
    let mut listeners: Vec<Client> = (0..10)
        .map(|i| {
            let mut c = Client::user(addr, "flood", &format!("listener{i}"));
            c.join("flood");
            c
        })
        .collect();
    let mut flooder = Client::user(addr, "flood", "flooder");
    flooder.join("flood");
    flooder.send(json!({"type":"message:send","room":"flood","content":"hi"}));
    flooder.recv_type("message:new");
    for l in &mut listeners {
        drain(l, Duration::from_millis(200));
    }
    let started = Instant::now();
    let flood = (0..30_000u64).map(|i| match i % 3 {
        0 => json!({"type":"message:read","room":"flood","upTo":1}),
        1 => json!({"type": if i % 2 == 0 {"typing:start"} else {"typing:stop"}, "room":"flood"}),
        _ => json!({"type":"presence:update","status": if i % 2 == 0 {"dnd"} else {"online"}}),
    });
    let replies = blast(&mut flooder, flood);
    let limited = replies
        .iter()
        .filter(|v| v["type"] == "error" && v["code"] == "rate_limited")
        .count();
    // Each message was refused, conflated, or paid for out of 200 units a second.
    let budgeted = 200 + (200.0 * started.elapsed().as_secs_f64()) as usize;
    let s = stats(&srv);
    let conflated = s["conflated"].as_u64().unwrap() as usize;
    assert!(conflated > 5_000, "{s}");
    assert!(
        30_000 - limited - conflated <= budgeted,
        "{limited} refused, {conflated} conflated"
    );
    // What the listeners heard is bounded by the budget too, not by the flood.
    let heard = drain(&mut listeners[0], Duration::from_millis(300)).len();
    assert!(heard <= budgeted, "a listener got {heard} events");
    assert_eq!(s["slow_consumer_closes"], 0, "{s}");
    // The listeners are served as before.
    for l in &mut listeners {
        l.send(json!({"type":"room:list","ref":"ok"}));
        l.recv_type("room:list");
    }
    srv.shutdown().unwrap();
}

#[test]
fn repeats_that_change_nothing_are_free_and_reach_nobody() {
    let srv = server(|c| c.request_rate = "20/10s".into());
    let addr = srv.local_addr();
    let mut alice = Client::user(addr, "quiet", "alice");
    alice.join("quiet");
    let mut bob = Client::user(addr, "quiet", "bob");
    bob.join("quiet");
    drain(&mut alice, Duration::from_millis(200));
    for _ in 0..500 {
        bob.send(json!({"type":"typing:start","room":"quiet"}));
        bob.send(json!({"type":"message:read","room":"quiet","upTo":0}));
        bob.send(json!({"type":"presence:update","status":"online"}));
    }
    bob.send(json!({"type":"typing:stop","room":"quiet"}));
    bob.send(json!({"type":"typing:stop","room":"quiet"}));
    // Within the 20-unit budget: only the first typing:start, the read and the stop were
    // charged, so bob can still talk.
    bob.send(json!({"type":"message:send","room":"quiet","content":"still here","ref":1}));
    assert_eq!(bob.recv_type_or_error("ack")["type"], "ack");
    let heard: Vec<String> = drain(&mut alice, Duration::from_millis(500))
        .iter()
        .map(|v| v["type"].as_str().unwrap().to_string())
        .collect();
    let typing = heard.iter().filter(|t| *t == "typing:update").count();
    assert!(typing <= 2, "typing start and stop, once each: {heard:?}");
    assert!(!heard.iter().any(|t| t == "presence:update"), "{heard:?}");
    assert!(heard.iter().filter(|t| *t == "message:read").count() <= 1);
    assert!(stats(&srv)["conflated"].as_u64().unwrap() >= 1400);
    srv.shutdown().unwrap();
}

#[test]
fn connections_from_one_address_share_its_budget() {
    let srv = server(|c| {
        c.shards = 1;
        c.request_rate = "off".into();
        c.ip_request_rate = "100/10s".into();
    });
    let addr = srv.local_addr();
    let mut guests: Vec<Client> = (0..10).map(|_| Client::connect(addr, "/ws")).collect();
    for g in &mut guests {
        g.join("crowd"); // 5 units each
    }
    for g in &mut guests {
        for _ in 0..20 {
            g.send(json!({"type":"message:send","room":"crowd","content":"x"}));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = stats(&srv);
    // 100 units, 50 spent on joins: about 50 messages of 200 (plus what 2 s refill gives).
    let published = s["published"].as_u64().unwrap();
    assert!((40..=80).contains(&published), "{published} published: {s}");
    assert!(s["rate_limited"].as_u64().unwrap() >= 120, "{s}");
    srv.shutdown().unwrap();
}

#[test]
fn a_users_devices_share_the_users_budget() {
    let srv = server(|c| {
        c.shards = 1;
        c.request_rate = "off".into();
        c.user_request_rate = "60/10s".into();
    });
    let addr = srv.local_addr();
    let mut devices: Vec<Client> = (0..3).map(|_| Client::user(addr, "dev", "carol")).collect();
    for d in &mut devices {
        d.join("dev");
    }
    for d in &mut devices {
        for _ in 0..30 {
            d.send(json!({"type":"message:send","room":"dev","content":"x"}));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = stats(&srv);
    let published = s["published"].as_u64().unwrap();
    // 60 units: 15 for logins, 15 for joins, about 30 messages of 90.
    assert!((20..=45).contains(&published), "{published} published: {s}");
    // Another user is not affected.
    let mut dave = Client::user(addr, "dev", "dave");
    dave.join("dev");
    dave.send(json!({"type":"message:send","room":"dev","content":"x","ref":2}));
    assert_eq!(dave.recv_type_or_error("ack")["type"], "ack");
    srv.shutdown().unwrap();
}
