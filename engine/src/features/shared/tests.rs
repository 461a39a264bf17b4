//! Shared state, channels and presence data on the harness, on a room across two shards and
//! on a document: every member sees one order of writes, compare-and-set refuses a stale
//! write, joiners get the state, and presence data goes with its connection.

use serde_json::{json, Value};

use crate::features::chat::tests::room_owned_by;
use crate::server::harness::Harness;

fn of_type(got: &[Value], kind: &str) -> Vec<Value> {
    got.iter().filter(|v| v["type"] == kind).cloned().collect()
}

#[test]
fn state_writes_reach_every_member_in_one_order_and_joiners_get_it() {
    let mut h = Harness::new(2);
    let room = room_owned_by(0, 2, "st");
    let a = h.connect_user(1, "alice");
    let b = h.connect_user(0, "bob");
    for c in [a, b] {
        h.send(c, &json!({"type": "room:join", "room": room}).to_string());
    }
    h.deliver_all();
    h.received(a);
    h.received(b);
    let set = json!({"type": "state:set", "room": room, "key": "title", "value": "Plan", "ref": 1});
    h.send(a, &set.to_string());
    h.deliver_all();
    let stale = json!({"type": "state:set", "room": room, "key": "title", "value": "Old",
        "ifVersion": 0, "ref": 2});
    h.send(b, &stale.to_string());
    let merge = json!({"type": "state:merge", "room": room, "ifVersion": 1,
        "patch": {"title": null, "shapes": [1, 2]}});
    h.send(b, &merge.to_string());
    h.deliver_all();
    let got_a = h.received(a);
    let updates = of_type(&got_a, "state:update");
    assert_eq!(updates.len(), 2, "{got_a:?}");
    assert_eq!(updates[0]["changes"], json!({"title": "Plan"}));
    assert_eq!(updates[0]["by"]["userId"], "alice");
    assert_eq!(
        updates[1]["changes"],
        json!({"title": null, "shapes": [1, 2]})
    );
    assert_eq!(updates[1]["version"], 2);
    assert_eq!(
        of_type(&got_a, "ack")[0],
        json!({"type": "ack", "ref": 1, "version": 1})
    );
    let got_b = h.received(b);
    let error = &of_type(&got_b, "error")[0];
    assert_eq!(
        (error["code"].clone(), error["ref"].clone()),
        (json!("version_conflict"), json!(2))
    );
    assert_eq!(of_type(&got_b, "state:update").len(), 2);
    let c = h.connect_user(1, "carol");
    h.send(c, &json!({"type": "room:join", "room": room}).to_string());
    h.deliver_all();
    let got = h.received(c);
    let at = |t: &str| got.iter().position(|v| v["type"] == t).unwrap();
    assert!(at("room:joined") < at("state:sync"), "{got:?}");
    assert_eq!(got[at("state:sync")]["state"], json!({"shapes": [1, 2]}));
    h.send(
        c,
        &json!({"type": "state:get", "room": room, "ref": "g"}).to_string(),
    );
    h.deliver_all();
    assert_eq!(of_type(&h.received(c), "state:sync")[0]["version"], 2);
}

#[test]
fn broadcasts_go_to_the_others_with_ids_and_a_bounded_history() {
    let mut h = Harness::new(2);
    let a = h.connect_user(0, "alice");
    let b = h.connect_user(1, "bob");
    let doc = "board";
    for c in [a, b] {
        h.send(c, &json!({"type": "doc:join", "doc": doc}).to_string());
    }
    h.deliver_all();
    h.received(a);
    h.received(b);
    for i in 0..3 {
        let stroke = json!({"type": "broadcast:send", "doc": doc, "channel": "strokes",
            "payload": {"points": [i, i]}, "ref": i});
        h.send(a, &stroke.to_string());
    }
    h.deliver_all();
    let to_b = of_type(&h.received(b), "broadcast:message");
    assert_eq!(to_b.len(), 3);
    assert_eq!(to_b[2]["id"], 3);
    assert_eq!(to_b[2]["doc"], doc);
    assert_eq!(to_b[2]["from"]["userId"], "alice");
    let got_a = h.received(a);
    assert!(
        of_type(&got_a, "broadcast:message").is_empty(),
        "not echoed to the sender"
    );
    assert_eq!(of_type(&got_a, "ack")[2]["id"], 3);
    let ask = json!({"type": "broadcast:history", "doc": doc, "channel": "strokes", "limit": 2});
    h.send(b, &ask.to_string());
    h.deliver_all();
    let page = &of_type(&h.received(b), "broadcast:history")[0];
    let ids: Vec<_> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(2), json!(3)]);
    let outsider = h.connect_user(0, "olga");
    h.send(
        outsider,
        &json!({"type": "broadcast:send", "doc": doc, "channel": "strokes",
        "payload": 1})
        .to_string(),
    );
    h.deliver_all();
    assert_eq!(
        of_type(&h.received(outsider), "error")[0]["code"],
        "not_in_room"
    );
}

#[test]
fn presence_data_reaches_members_and_joiners_and_goes_with_its_connection() {
    let mut h = Harness::new(2);
    let room = room_owned_by(1, 2, "pd");
    let a = h.connect_user(0, "alice");
    let b = h.connect_user(1, "bob");
    for c in [a, b] {
        h.send(c, &json!({"type": "room:join", "room": room}).to_string());
    }
    h.deliver_all();
    h.received(b);
    let set =
        json!({"type": "presence:set", "room": room, "data": {"tool": "pen", "colour": "#f00"}});
    h.send(a, &set.to_string());
    h.deliver_all();
    let data = &of_type(&h.received(b), "presence:data")[0];
    assert_eq!(data["data"], json!({"tool": "pen", "colour": "#f00"}));
    assert_eq!(data["connectionId"], a.id);
    let big = json!({"type": "presence:set", "room": room, "data": "x".repeat(5000)});
    h.send(a, &big.to_string());
    assert_eq!(
        of_type(&h.received(a), "error")[0]["code"],
        "content_too_large"
    );
    let c = h.connect_user(0, "carol");
    h.send(c, &json!({"type": "room:join", "room": room}).to_string());
    h.deliver_all();
    assert_eq!(
        of_type(&h.received(c), "presence:data")[0]["data"]["tool"],
        "pen"
    );
    h.send(
        b,
        &json!({"type": "presence:list", "room": room}).to_string(),
    );
    h.deliver_all();
    let list = &of_type(&h.received(b), "presence:list")[0];
    let alice = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userId"] == "alice")
        .unwrap();
    assert_eq!(alice["data"]["tool"], "pen", "{list}");
    h.close(a);
    h.deliver_all();
    let gone = &of_type(&h.received(b), "presence:data")[0];
    assert_eq!(gone["data"], Value::Null);
}

#[test]
fn a_key_given_twice_in_a_patch_counts_once_with_its_last_value() {
    let mut h = Harness::new(1);
    let a = h.connect_user(0, "alice");
    h.send(a, &json!({"type": "room:join", "room": "dup"}).to_string());
    h.deliver_all();
    h.received(a);
    h.send(
        a,
        r#"{"type":"state:merge","room":"dup","patch":{"b":null,"b":"kept","c":1}}"#,
    );
    h.deliver_all();
    let update = &of_type(&h.received(a), "state:update")[0];
    assert_eq!(update["changes"], json!({"b": "kept", "c": 1}), "{update}");
}
