//! Rooms across shards: exactly-once, per-publisher order, placement, acks and errors.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{room_on, server, Client};
use serde_json::json;

#[test]
fn home_room_lands_on_its_owner_shard() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    for shard in 0..2 {
        let room = room_on(shard, 2, "home");
        for path in [format!("/ws/room/{room}"), format!("/ws/chat?room={room}")] {
            for _ in 0..4 {
                let c = Client::connect(addr, &path);
                assert_eq!(c.shard, shard as u64, "{path}");
            }
        }
    }
    srv.shutdown().unwrap();
}

#[test]
fn members_on_both_shards_get_every_message_once_in_order() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    // The room lives on shard 1; members sit on both shards.
    let room = room_on(1, 2, "spread");
    let home0 = room_on(0, 2, "anchor");
    let mut members = Vec::new();
    for i in 0..6 {
        let home = if i % 2 == 0 { &home0 } else { &room };
        let mut c = Client::connect(addr, &format!("/ws/room/{home}"));
        assert_eq!(c.shard, (i % 2) as u64);
        c.join(&room);
        members.push(c);
    }
    // Publishers on both shards, interleaved.
    const PER_PUBLISHER: usize = 200;
    for n in 0..PER_PUBLISHER {
        for (p, publisher) in members.iter_mut().take(2).enumerate() {
            publisher.send(json!({"type":"message:send","room":room,"content":format!("{p}:{n}")}));
        }
    }
    for (i, m) in members.iter_mut().enumerate() {
        let mut next: HashMap<String, usize> = HashMap::new();
        let mut last_id = 0;
        for _ in 0..2 * PER_PUBLISHER {
            let v = m.recv_type("message:new");
            assert_eq!(v["room"], room.as_str());
            let id = v["id"].as_u64().unwrap();
            assert!(id > last_id, "ids increase within a room");
            last_id = id;
            let content = v["content"].as_str().unwrap();
            let (p, n) = content.split_once(':').unwrap();
            let from = v["from"]["userId"].as_str().unwrap().to_string();
            let expected = next.entry(from).or_default();
            assert_eq!(
                n.parse::<usize>().unwrap(),
                *expected,
                "member {i}: order from {p}"
            );
            *expected += 1;
        }
        assert_eq!(
            next.values().copied().collect::<Vec<_>>(),
            vec![PER_PUBLISHER; 2]
        );
    }
    let stats: serde_json::Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["published"], 2 * PER_PUBLISHER as u64);
    srv.shutdown().unwrap();
}

#[test]
fn a_room_larger_than_one_flush_turn_gets_every_message_once_in_order() {
    // More members on one shard than one flush call writes (1024), and many slices of a pass:
    // messages read in the middle of a pass join it, and must still arrive once, in order.
    const MEMBERS: usize = 1100;
    const PER_PUBLISHER: usize = 100;
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(0, 2, "crowd");
    let mut members: Vec<Client> = (0..MEMBERS)
        .map(|_| {
            let mut c = Client::connect(addr, &format!("/ws/room/{room}"));
            c.join(&room);
            c
        })
        .collect();
    for n in 0..PER_PUBLISHER {
        for (p, publisher) in members.iter_mut().take(2).enumerate() {
            publisher.send(json!({"type":"message:send","room":room,"content":format!("{p}:{n}")}));
        }
    }
    for (i, m) in members.iter_mut().enumerate() {
        let mut next = [0usize; 2];
        for _ in 0..2 * PER_PUBLISHER {
            let v = m.recv_type("message:new");
            let content = v["content"].as_str().unwrap();
            let (p, n) = content.split_once(':').unwrap();
            let p: usize = p.parse().unwrap();
            assert_eq!(
                n.parse::<usize>().unwrap(),
                next[p],
                "member {i}: order from {p}"
            );
            next[p] += 1;
        }
        m.expect_silence(Duration::from_millis(if i == 0 { 200 } else { 1 }));
    }
    let stats: serde_json::Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["published"], 2 * PER_PUBLISHER as u64);
    srv.shutdown().unwrap();
}

#[test]
fn join_then_send_without_waiting_works_across_shards() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(1, 2, "eager");
    let home0 = room_on(0, 2, "eager-home");
    let mut c = Client::connect(addr, &format!("/ws/room/{home0}"));
    c.send(json!({"type":"room:join","room":room,"ref":1}));
    c.send(json!({"type":"message:send","room":room,"content":"first","ref":2}));
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let v = c.recv();
        seen.push(v["type"].as_str().unwrap().to_string());
    }
    assert!(seen.contains(&"room:joined".to_string()), "{seen:?}");
    assert!(seen.contains(&"message:new".to_string()), "{seen:?}");
    assert_eq!(seen.iter().filter(|t| *t == "ack").count(), 2, "{seen:?}");
    srv.shutdown().unwrap();
}

#[test]
fn joined_counts_members_everywhere_and_leave_stops_delivery() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(0, 2, "count");
    let home1 = room_on(1, 2, "count-home");
    let mut a = Client::connect(addr, &format!("/ws/room/{room}"));
    let mut b = Client::connect(addr, &format!("/ws/room/{home1}"));
    assert_eq!(a.join(&room)["members"], 1);
    assert_eq!(b.join(&room)["members"], 2);
    b.send(json!({"type":"room:leave","room":room,"ref":"l"}));
    assert_eq!(b.recv_type("room:left")["room"], room.as_str());
    assert_eq!(b.recv_type("ack")["ref"], "l");
    a.send(json!({"type":"message:send","room":room,"content":"after"}));
    assert_eq!(a.recv_type("message:new")["content"], "after");
    // b left: it gets an error for sending, not the message.
    b.send(json!({"type":"message:send","room":room,"content":"x","ref":9}));
    let e = b.recv();
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "not_in_room");
    assert_eq!(e["ref"], 9);
    // A newcomer sees the count after b left.
    let mut c = Client::connect(addr, &format!("/ws/room/{home1}"));
    assert_eq!(c.join(&room)["members"], 2);
    srv.shutdown().unwrap();
}

#[test]
fn application_errors_keep_the_connection_usable() {
    let srv = server(|_| {});
    let mut c = Client::connect(srv.local_addr(), "/ws");
    let cases = [
        ("{not json", "bad_json"),
        ("[1]", "bad_json"),
        (r#"{"type":"nope","ref":"r"}"#, "unknown_type"),
        (r#"{"type":"room:join"}"#, "missing_field"),
        (r#"{"type":"room:join","room":5}"#, "invalid_field"),
        (
            r#"{"type":"room:join","room":"no spaces"}"#,
            "invalid_room_name",
        ),
        (r#"{"type":"room:leave","room":"never"}"#, "not_in_room"),
        (
            r#"{"type":"message:send","room":"never","content":1}"#,
            "not_in_room",
        ),
    ];
    for (text, code) in cases {
        c.send_text(text);
        let e = c.recv();
        assert_eq!(e["type"], "error", "{text}");
        assert_eq!(e["code"], code, "{text}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.send_text(r#"{"type":"nope","ref":"r"}"#);
    assert_eq!(c.recv()["ref"], "r");
    // Still usable.
    c.join("ok-room");
    c.send(json!({"type":"room:join","room":"ok-room"}));
    assert_eq!(c.recv()["code"], "already_in_room");
    srv.shutdown().unwrap();
}

#[test]
fn too_many_rooms_is_an_error() {
    let srv = server(|_| {});
    let mut c = Client::connect(srv.local_addr(), "/ws");
    for i in 0..corecast::limits::TOPICS_PER_CONNECTION_MAX {
        c.send(json!({"type":"room:join","room":format!("r{i}")}));
    }
    c.send(json!({"type":"room:join","room":"one-too-many","ref":"x"}));
    let e = c.recv_type("error");
    assert_eq!(e["code"], "too_many_rooms");
    assert_eq!(e["ref"], "x");
    srv.shutdown().unwrap();
}

#[test]
fn content_is_relayed_as_sent() {
    let srv = server(|c| c.batch_window_ms = 0);
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.join("relay");
    for content in [
        json!("plain"),
        json!("quotes \" and \\ and \n and ☃"),
        json!({"nested": [1, 2.5, null, true], "s": "x"}),
        json!(12345),
    ] {
        c.send(json!({"type":"message:send","room":"relay","content":content}));
        assert_eq!(c.recv_type("message:new")["content"], content);
    }
    srv.shutdown().unwrap();
}

#[test]
fn disconnect_leaves_rooms_on_every_shard() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(1, 2, "gone");
    let home0 = room_on(0, 2, "gone-home");
    let mut stay = Client::connect(addr, &format!("/ws/room/{room}"));
    stay.join(&room);
    for _ in 0..5 {
        let mut c = Client::connect(addr, &format!("/ws/room/{home0}"));
        c.join(&room);
        drop(c); // Abrupt: no close frame.
    }
    // Once every leave reached the owner, a new member counts two.
    let deadline = std::time::Instant::now() + common::RECV_TIMEOUT;
    loop {
        let mut probe = Client::connect(addr, &format!("/ws/room/{home0}"));
        let members = probe.join(&room)["members"].as_u64().unwrap();
        probe.close();
        if members == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members stuck at {members}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    srv.shutdown().unwrap();
}
