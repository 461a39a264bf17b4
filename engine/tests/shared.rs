//! Shared state, broadcast channels and presence data over real sockets on two shards, on a
//! room and on a `/ws/collab/{doc}` document.

mod common;

use common::{room_on, server, Client};
use serde_json::json;

#[test]
fn a_room_s_state_channels_and_presence_data_across_shards() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let room = room_on(1, 2, "shared");
    let mut a = Client::user(addr, &room_on(0, 2, "x"), "alice");
    let mut b = Client::user(addr, &room_on(1, 2, "y"), "bob");
    a.join(&room);
    b.join(&room);
    a.send(json!({"type": "state:set", "room": room, "key": "title", "value": "Plan", "ref": 1}));
    assert_eq!(
        a.recv_type("ack"),
        json!({"type": "ack", "ref": 1, "version": 1})
    );
    let update = b.recv_type("state:update");
    assert_eq!(update["changes"], json!({"title": "Plan"}));
    b.expect_error(
        json!({"type": "state:set", "room": room, "key": "title", "value": "x", "ifVersion": 0}),
        "version_conflict",
    );
    b.send(
        json!({"type": "broadcast:send", "room": room, "channel": "strokes",
        "payload": [1, 2], "ref": "s"}),
    );
    assert_eq!(b.recv_type("ack")["id"], 1);
    let m = a.recv_type("broadcast:message");
    assert_eq!(
        (m["payload"].clone(), m["from"]["userId"].clone()),
        (json!([1, 2]), json!("bob"))
    );
    a.send(json!({"type": "presence:set", "room": room, "data": {"tool": "pen"}}));
    assert_eq!(b.recv_type("presence:data")["data"], json!({"tool": "pen"}));
    let mut c = Client::user(addr, &room_on(0, 2, "z"), "carol");
    c.join(&room);
    assert_eq!(c.recv_type("state:sync")["state"], json!({"title": "Plan"}));
    assert_eq!(c.recv_type("presence:data")["user"]["userId"], "alice");
    c.send(json!({"type": "broadcast:history", "room": room, "channel": "strokes"}));
    assert_eq!(c.recv_type("broadcast:history")["messages"][0]["id"], 1);
    let mut outsider = Client::user(addr, &room_on(0, 2, "o"), "olga");
    outsider.expect_error(json!({"type": "state:get", "room": room}), "not_in_room");
    outsider.expect_error(json!({"type": "state:get"}), "missing_field");
    srv.shutdown().unwrap();
}

#[test]
fn a_collab_connection_s_home_document_carries_state_too() {
    let srv = server(|_| {});
    let mut a = Client::connect(srv.local_addr(), "/ws/collab/board");
    a.recv_type("doc:state");
    a.send(json!({"type": "state:merge", "patch": {"bg": "#fff", "gone": null}, "ref": 1}));
    assert_eq!(a.recv_type("state:update")["doc"], "board");
    let mut b = Client::connect(srv.local_addr(), "/ws/collab/board");
    b.recv_type("doc:state");
    assert_eq!(b.recv_type("state:sync")["state"], json!({"bg": "#fff"}));
    srv.shutdown().unwrap();
}

#[test]
fn the_shared_limits_answer_with_their_codes() {
    let srv = server(|c| c.max_content_bytes = 60_000);
    let addr = srv.local_addr();
    let room = room_on(0, 2, "lim");
    let mut a = Client::user(addr, &room, "alice");
    a.join(&room);
    let big = "x".repeat(40_000);
    a.send(json!({"type": "state:set", "room": room, "key": "a", "value": big, "ref": 1}));
    assert_eq!(a.recv_type("ack")["version"], 1);
    a.expect_error(
        json!({"type": "state:set", "room": room, "key": "b", "value": big}),
        "state_too_large",
    );
    for i in 0..16 {
        a.send(
            json!({"type": "broadcast:send", "room": room, "channel": format!("c{i}"),
            "payload": i, "ref": i}),
        );
        a.recv_type("ack");
    }
    a.expect_error(
        json!({"type": "broadcast:send", "room": room, "channel": "c16", "payload": 0}),
        "too_many_channels",
    );
    a.expect_error(
        json!({"type": "state:merge", "room": room, "patch": [1]}),
        "invalid_field",
    );
    a.expect_error(
        json!({"type": "presence:set", "room": room, "data": "y".repeat(5000)}),
        "content_too_large",
    );
    srv.shutdown().unwrap();
}
