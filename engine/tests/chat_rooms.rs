//! Chat rooms over real sockets on a 2-shard server: identity, room creation, listing,
//! passwords and capacity, who is present, history, read receipts and typing. Every test puts
//! its users on both shards and its rooms on the shard they do not share.

mod common;

use std::time::Duration;

use common::{room_on, server, Client};
use serde_json::{json, Value};

fn names(users: &Value) -> Vec<String> {
    let mut v: Vec<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn login_makes_one_user_of_every_device() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let mut a = Client::connect(addr, &format!("/ws/room/{}", room_on(0, 2, "h")));
    let mut b = Client::connect(addr, &format!("/ws/room/{}", room_on(1, 2, "h")));
    let sa = a.login("alice");
    let sb = b.login("alice");
    assert_eq!(sa["username"], "alice");
    assert_eq!(sa["userId"], sb["userId"]);
    // Refusals are auth:error and the connection stays usable.
    a.send(json!({"type":"auth:login","username":"bob","ref":1}));
    let e = a.recv_type("auth:error");
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_u64()),
        (Some("already_authenticated"), Some(1))
    );
    let mut c = Client::connect(addr, "/ws");
    c.send(json!({"type":"auth:login","username":"no spaces"}));
    assert_eq!(c.recv_type("auth:error")["code"], "invalid_username");
    c.login("carol");
    // Messages carry the user.
    let room = room_on(1, 2, "who");
    a.join(&room);
    c.join(&room);
    a.send(json!({"type":"message:send","room":room,"content":"hi"}));
    let m = c.recv_type("message:new");
    assert_eq!(
        m["from"],
        json!({"userId": sa["userId"], "username": "alice"})
    );
    srv.shutdown().unwrap();
}

#[test]
fn anonymous_connections_can_be_refused_in_development_mode() {
    let srv = server(|c| c.allow_anonymous = false);
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.expect_error(json!({"type":"room:join","room":"a"}), "auth_required");
    c.login("dave");
    c.join("a");
    srv.shutdown().unwrap();
}

#[test]
fn create_list_password_and_capacity() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let mut alice = Client::user(addr, &room_on(0, 2, "h"), "alice");
    let mut bob = Client::user(addr, &room_on(1, 2, "h"), "bob");
    let secret = room_on(1, 2, "secret");
    let small = room_on(0, 2, "small");

    alice.send(
        json!({"type":"room:create","room":secret,"description":"dev talk",
                      "password":"pw","ref":"c1"}),
    );
    let created = alice.recv_type("room:created");
    assert_eq!(created["room"], secret.as_str());
    assert_eq!(created["description"], "dev talk");
    assert_eq!(created["createdBy"]["username"], "alice");
    assert_eq!(created["hasPassword"], true);
    assert_eq!(created["ref"], "c1");
    bob.expect_error(json!({"type":"room:create","room":secret}), "room_exists");
    alice.send(json!({"type":"room:create","room":small,"maxUsers":1}));
    alice.recv_type("room:created");

    bob.expect_error(json!({"type":"room:join","room":secret}), "wrong_password");
    bob.expect_error(
        json!({"type":"room:join","room":secret,"password":"nope"}),
        "wrong_password",
    );
    bob.send(json!({"type":"room:join","room":secret,"password":"pw"}));
    assert_eq!(bob.recv_type("room:joined")["room"], secret.as_str());

    alice.join(&small);
    bob.expect_error(json!({"type":"room:join","room":small}), "room_full");
    // A second device of a user present does not count again.
    let mut alice2 = Client::user(addr, &room_on(1, 2, "h"), "alice");
    assert_eq!(alice2.join(&small)["members"], 2);

    // The list gathers rooms from both shards.
    bob.send(json!({"type":"room:list","ref":7}));
    let list = bob.recv_type("room:list");
    assert_eq!(list["ref"], 7);
    let rooms = list["rooms"].as_array().unwrap();
    let find = |name: &str| rooms.iter().find(|r| r["room"] == name).cloned().unwrap();
    let s = find(&secret);
    assert_eq!(
        (
            s["hasPassword"].as_bool(),
            s["members"].as_u64(),
            s["description"].as_str()
        ),
        (Some(true), Some(1), Some("dev talk"))
    );
    let m = find(&small);
    assert_eq!(
        (m["maxUsers"].as_u64(), m["members"].as_u64()),
        (Some(1), Some(2))
    );
    srv.shutdown().unwrap();
}

#[test]
fn presence_in_the_room_recent_messages_and_arrivals_across_shards() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(1, 2, "lobby");
    let mut alice = Client::user(addr, &room_on(0, 2, "h"), "alice");
    alice.join(&room);
    for i in 0..60 {
        alice.send(json!({"type":"message:send","room":room,"content":format!("m{i}")}));
    }
    for _ in 0..60 {
        alice.recv_type("message:new");
    }
    let mut bob = Client::user(addr, &room_on(0, 2, "h2"), "bob");
    let joined = bob.join(&room);
    assert_eq!(names(&joined["users"]), ["alice", "bob"]);
    let recent = joined["messages"].as_array().unwrap();
    assert_eq!(recent.len(), 50, "the last 50");
    assert_eq!(recent[0]["content"], "m10");
    assert_eq!(recent[49]["content"], "m59");
    let arrived = alice.recv_type("room:user_joined");
    assert_eq!(
        (arrived["room"].as_str(), arrived["username"].as_str()),
        (Some(&*room), Some("bob"))
    );

    // A second device of bob's joining is not a new arrival; bob leaves when both are gone.
    let mut bob2 = Client::user(addr, &room_on(1, 2, "h3"), "bob");
    bob2.join(&room);
    bob2.close();
    bob.send(json!({"type":"room:leave","room":room}));
    bob.recv_type("room:left");
    let left = alice.recv_type("room:user_left");
    assert_eq!(left["username"], "bob");
    // Disconnecting leaves too.
    let mut carol = Client::user(addr, &room_on(1, 2, "h4"), "carol");
    carol.join(&room);
    assert_eq!(alice.recv_type("room:user_joined")["username"], "carol");
    drop(carol);
    assert_eq!(alice.recv_type("room:user_left")["username"], "carol");
    srv.shutdown().unwrap();
}

#[test]
fn a_member_joining_during_a_batch_gets_each_message_once() {
    let srv = server(|c| c.batch_window_ms = 200);
    let addr = srv.local_addr();
    let room = room_on(1, 2, "batchy");
    let mut a = Client::user(addr, &room_on(0, 2, "h"), "a");
    a.join(&room);
    for i in 0..5 {
        a.send(json!({"type":"message:send","room":room,"content":i}));
    }
    // m0 left at once; m1..m4 wait for the window. A joiner now sees m0 as recent and the
    // rest live.
    let mut b = Client::user(addr, &room_on(0, 2, "h2"), "b");
    let joined = b.join(&room);
    let recent: Vec<i64> = joined["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_i64().unwrap())
        .collect();
    let mut seen = recent.clone();
    while seen.len() < 5 {
        seen.push(b.recv_type("message:new")["content"].as_i64().unwrap());
    }
    assert_eq!(seen, [0, 1, 2, 3, 4], "recent {recent:?}");
    b.expect_silence(Duration::from_millis(400));
    srv.shutdown().unwrap();
}

#[test]
fn history_pages_back_by_id() {
    let srv = server(|c| {
        c.batch_window_ms = 0;
        c.history_messages = 100;
    });
    let addr = srv.local_addr();
    let room = room_on(1, 2, "log");
    let mut a = Client::user(addr, &room_on(0, 2, "h"), "a");
    a.join(&room);
    for i in 1..=130 {
        a.send(json!({"type":"message:send","room":room,"content":i}));
    }
    for _ in 0..130 {
        a.recv_type("message:new");
    }
    a.send(json!({"type":"message:history","room":room,"limit":40,"ref":"h"}));
    let page = a.recv_type("message:history");
    assert_eq!(page["ref"], "h");
    let ids = |p: &Value| -> Vec<u64> {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&page), (91..=130).collect::<Vec<_>>());
    assert_eq!(page["hasMore"], true);
    a.send(json!({"type":"message:history","room":room,"limit":100,"before":91}));
    let older = a.recv_type("message:history");
    // 100 kept: ids 31..=130.
    assert_eq!(ids(&older), (31..=90).collect::<Vec<_>>());
    assert_eq!(older["hasMore"], false);
    a.expect_error(
        json!({"type":"message:history","room":room,"limit":500}),
        "invalid_field",
    );
    let mut outsider = Client::user(addr, &room_on(1, 2, "h"), "o");
    outsider.expect_error(json!({"type":"message:history","room":room}), "not_in_room");
    srv.shutdown().unwrap();
}

#[test]
fn read_receipts_set_unread_counts() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(0, 2, "rr");
    let mut a = Client::user(addr, &room_on(1, 2, "h"), "alice");
    let mut b = Client::user(addr, &room_on(0, 2, "h"), "bob");
    a.join(&room);
    b.join(&room);
    for i in 0..5 {
        a.send(json!({"type":"message:send","room":room,"content":i}));
    }
    let mut last = 0;
    for _ in 0..5 {
        last = b.recv_type("message:new")["id"].as_u64().unwrap();
    }
    let unread = |c: &mut Client| {
        c.send(json!({"type":"room:list"}));
        let list = c.recv_type("room:list");
        list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["room"] == room.as_str())
            .unwrap()["unread"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(unread(&mut b), 5);
    b.send(json!({"type":"message:read","room":room,"upTo":last - 2}));
    let r = a.recv_type("message:read");
    assert_eq!(
        (r["userId"].as_str(), r["upTo"].as_u64()),
        (Some("bob"), Some(last - 2))
    );
    assert_eq!(unread(&mut b), 2);
    srv.shutdown().unwrap();
}

#[test]
fn typing_is_shown_and_expires() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let room = room_on(1, 2, "typing");
    let mut a = Client::user(addr, &room_on(0, 2, "h"), "alice");
    let mut b = Client::user(addr, &room_on(1, 2, "h"), "bob");
    a.join(&room);
    b.join(&room);
    a.send(json!({"type":"typing:start","room":room}));
    let t = b.recv_type("typing:update");
    assert_eq!(names(&t["users"]), ["alice"]);
    // Stop, then start again and let it expire (3 s).
    a.send(json!({"type":"typing:stop","room":room}));
    assert_eq!(
        names(&b.recv_type("typing:update")["users"]),
        Vec::<String>::new()
    );
    a.send(json!({"type":"typing:start","room":room}));
    assert_eq!(names(&b.recv_type("typing:update")["users"]), ["alice"]);
    let started = std::time::Instant::now();
    let expired = b.recv_type("typing:update");
    assert_eq!(names(&expired["users"]), Vec::<String>::new());
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    // Sending a message also ends typing.
    a.send(json!({"type":"typing:start","room":room}));
    b.recv_type("typing:update");
    a.send(json!({"type":"message:send","room":room,"content":"done"}));
    assert_eq!(
        names(&b.recv_type("typing:update")["users"]),
        Vec::<String>::new()
    );
    // Guests cannot type.
    let mut g = Client::connect(addr, "/ws");
    g.join(&room);
    g.expect_error(json!({"type":"typing:start","room":room}), "auth_required");
    srv.shutdown().unwrap();
}

#[test]
fn leaving_and_rejoining_before_the_owner_answers_keeps_counts_exact() {
    let srv = server(|c| c.batch_window_ms = 0);
    let addr = srv.local_addr();
    let room = room_on(1, 2, "flip");
    let mut a = Client::user(addr, &room_on(0, 2, "h"), "alice");
    for _ in 0..20 {
        a.send(json!({"type":"room:join","room":room}));
        a.send(json!({"type":"room:leave","room":room}));
    }
    a.send(json!({"type":"room:join","room":room}));
    a.send(json!({"type":"message:send","room":room,"content":"once","ref":"s"}));
    let ack = a.recv_type("ack");
    assert_eq!(ack["ref"], "s");
    let mut probe = Client::user(addr, &room_on(1, 2, "h"), "probe");
    // Every stale answer's leave has reached the owner before the probe's join (same
    // shard-to-shard order), so the probe sees alice once.
    std::thread::sleep(Duration::from_millis(100));
    let joined = probe.join(&room);
    assert_eq!(joined["members"], 2, "{joined}");
    assert_eq!(names(&joined["users"]), ["alice", "probe"]);
    a.close();
    assert_eq!(probe.recv_type("room:user_left")["username"], "alice");
    srv.shutdown().unwrap();
}
