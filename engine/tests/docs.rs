//! Shared documents over real sockets on a 2-shard server: `/ws/collab/{doc}` and
//! `doc:join`, concurrent changes from both shards transformed and converging, idempotent
//! resubmits, catch-up with `doc:sync`, code-point positions, and every error.

mod common;

use common::{server, Client};
use serde_json::{json, Value};

/// A document name whose owner is `shard` of `shards` (its topic is `doc/{name}`).
fn doc_on(shard: usize, shards: usize, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|d| corecast::runtime::owner_shard(&format!("doc/{d}"), shards) == shard)
        .unwrap()
}

fn insert(pos: usize, text: &str) -> Value {
    json!({"operation": "insert", "position": pos, "content": text})
}

fn delete(pos: usize, len: usize) -> Value {
    json!({"operation": "delete", "position": pos, "length": len})
}

/// Applies a `doc:operation`'s ops to `text` (positions in code points).
fn apply(text: &mut Vec<char>, ops: &Value) {
    for op in ops.as_array().unwrap() {
        let pos = op["position"].as_u64().unwrap() as usize;
        if op["operation"] == "insert" {
            let content: Vec<char> = op["content"].as_str().unwrap().chars().collect();
            text.splice(pos..pos, content);
        } else {
            let len = op["length"].as_u64().unwrap() as usize;
            text.drain(pos..pos + len);
        }
    }
}

#[test]
fn collab_url_places_joins_and_greets_with_the_state() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    for shard in 0..2 {
        let doc = doc_on(shard, 2, "home");
        let mut c = Client::connect(addr, &format!("/ws/collab/{doc}"));
        assert_eq!(c.shard, shard as u64, "placed on the document's owner");
        let state = c.recv();
        assert_eq!(
            state["type"], "doc:state",
            "the first frame after established"
        );
        assert_eq!(state["doc"], doc.as_str());
        assert_eq!(state["content"], "");
        assert_eq!(state["version"], 0);
        assert_eq!(state["users"][0]["connectionId"], c.id);
        // Without `doc`: the home document.
        c.send(
            json!({"type": "doc:change", "operation": "insert", "position": 0,
            "content": "héllo 😀", "version": 0, "ref": "r1"}),
        );
        let ack = c.recv_type("doc:ack");
        assert_eq!(
            ack,
            json!({"type": "doc:ack", "doc": doc, "version": 1, "ref": "r1"})
        );
    }
    srv.shutdown().unwrap();
}

#[test]
fn a_concurrent_change_from_the_other_shard_is_transformed() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let doc = doc_on(0, 2, "race");
    let mut a = Client::user(addr, &common::room_on(0, 2, "a"), "alice");
    let mut b = Client::user(addr, &common::room_on(1, 2, "b"), "bob");
    for c in [&mut a, &mut b] {
        c.send(json!({"type": "doc:join", "doc": doc}));
        c.recv_type("doc:state");
    }
    a.recv_type("doc:user_joined");
    a.send(json!({"type": "doc:change", "doc": doc, "version": 0, "ops": [insert(0, "abc")]}));
    assert_eq!(a.recv_type("doc:ack")["version"], 1);
    // Bob had not seen alice's change: his, based on version 0, is moved behind hers.
    b.send(json!({"type": "doc:change", "doc": doc, "version": 0,
        "ops": [insert(0, "XY"), delete(1, 1)]}));
    let seen = b.recv_type("doc:operation");
    assert_eq!(seen["version"], 1);
    assert_eq!(seen["author"]["userId"], "alice");
    assert_eq!(b.recv_type("doc:ack")["version"], 2);
    let op = a.recv_type("doc:operation");
    // Both inserted at 0: alice's, applied first, stays left.
    assert_eq!(op["ops"], json!([insert(3, "XY"), delete(4, 1)]));
    let mut text: Vec<char> = "abc".chars().collect();
    apply(&mut text, &op["ops"]);
    let mut c = Client::user(addr, &common::room_on(1, 2, "c"), "carol");
    c.send(json!({"type": "doc:join", "doc": doc}));
    let state = c.recv_type("doc:state");
    assert_eq!(state["version"], 2);
    assert_eq!(state["content"], text.iter().collect::<String>());
    assert_eq!(state["content"], "abcX");
    // A tie: both insert at 0 based on version 2; the one the owner applies first stays left.
    a.send(json!({"type": "doc:change", "doc": doc, "version": 2, "ops": [insert(0, "1")]}));
    a.recv_type("doc:ack");
    b.send(json!({"type": "doc:change", "doc": doc, "version": 2, "ops": [insert(0, "2")]}));
    b.recv_type("doc:ack");
    c.send(json!({"type": "doc:sync", "doc": doc, "version": 2}));
    let ops = c.recv_type("doc:operations");
    assert_eq!(ops["changes"][1]["ops"], json!([insert(1, "2")]), "{ops}");
    srv.shutdown().unwrap();
}

#[test]
fn a_resubmit_is_acked_again_and_not_applied_twice() {
    let srv = server(|_| {});
    let doc = doc_on(1, 2, "idem");
    let mut c = Client::connect(srv.local_addr(), &format!("/ws/collab/{doc}"));
    c.recv_type("doc:state");
    let change = json!({"type": "doc:change", "version": 0, "ops": [insert(0, "once")],
        "client": "tab-1", "seq": 1});
    c.send(change.clone());
    let first = c.recv_type("doc:ack");
    c.send(change);
    let again = c.recv_type("doc:ack");
    assert_eq!(first, again);
    assert_eq!(again["seq"], 1);
    // A second connection (a reconnect) resubmitting the same change.
    let mut d = Client::connect(srv.local_addr(), &format!("/ws/collab/{doc}"));
    let state = d.recv_type("doc:state");
    assert_eq!(state["content"], "once");
    d.send(
        json!({"type": "doc:change", "version": 0, "ops": [insert(0, "once")],
        "client": "tab-1", "seq": 1}),
    );
    assert_eq!(d.recv_type("doc:ack")["version"], 1);
    d.send(json!({"type": "doc:sync", "version": 0}));
    let ops = d.recv_type("doc:operations");
    assert_eq!(ops["from"], 0);
    assert_eq!(ops["changes"][0]["client"], "tab-1");
    assert_eq!(ops["changes"][0]["seq"], 1);
    assert_eq!(ops["changes"].as_array().unwrap().len(), 1);
    srv.shutdown().unwrap();
}

#[test]
fn positions_count_code_points_and_deletes_follow_inserts() {
    let srv = server(|_| {});
    let doc = doc_on(0, 2, "cp");
    let mut a = Client::connect(srv.local_addr(), &format!("/ws/collab/{doc}"));
    a.recv_type("doc:state");
    let mut b = Client::connect(srv.local_addr(), &format!("/ws/collab/{doc}"));
    b.recv_type("doc:state");
    a.send(json!({"type": "doc:change", "version": 0, "ops": [insert(0, "a😀b中c")]}));
    a.recv_type("doc:ack");
    // Delete "😀" (one code point, two UTF-16 units, four bytes), based on version 1, while
    // b inserts at 0 based on version 1 too: the delete moves right.
    b.send(json!({"type": "doc:change", "version": 1, "ops": [insert(0, "__")]}));
    b.recv_type("doc:ack");
    a.send(json!({"type": "doc:change", "version": 1, "ops": [delete(1, 1)]}));
    let ack = a.recv_type("doc:ack");
    assert_eq!(ack["version"], 3);
    let op = b.recv_type("doc:operation");
    assert_eq!(op["ops"], json!([delete(3, 1)]));
    let mut c = Client::connect(srv.local_addr(), &format!("/ws/collab/{doc}"));
    let state = c.recv_type("doc:state");
    assert_eq!(state["content"], "__ab中c");
    srv.shutdown().unwrap();
}

#[test]
fn every_error_keeps_the_connection() {
    let srv = server(|c| c.send_queue_bytes = 64 << 10);
    let doc = doc_on(1, 2, "err");
    let mut c = Client::user(srv.local_addr(), &common::room_on(0, 2, "e"), "erin");
    c.expect_error(
        json!({"type": "doc:change", "ops": [insert(0, "x")]}),
        "missing_field",
    );
    c.expect_error(
        json!({"type": "doc:change", "doc": doc, "ops": [insert(0, "x")]}),
        "not_in_doc",
    );
    c.expect_error(
        json!({"type": "doc:sync", "doc": doc, "version": 0}),
        "not_in_doc",
    );
    c.expect_error(json!({"type": "doc:leave", "doc": doc}), "not_in_doc");
    c.expect_error(
        json!({"type": "doc:join", "doc": "bad name"}),
        "invalid_field",
    );
    c.send(json!({"type": "doc:join", "doc": doc}));
    c.recv_type("doc:state");
    c.expect_error(json!({"type": "doc:join", "doc": doc}), "already_in_doc");
    let change = |ops: Value, version: Value| json!({"type": "doc:change", "doc": doc, "ops": ops, "version": version});
    c.expect_error(change(json!([insert(1, "x")]), json!(0)), "invalid_op");
    c.expect_error(
        change(json!([{"operation": "paint"}]), json!(0)),
        "invalid_op",
    );
    c.expect_error(change(json!([insert(0, "")]), json!(0)), "invalid_op");
    c.expect_error(change(json!([insert(0, "x")]), json!(5)), "invalid_version");
    let many: Vec<Value> = (0..257).map(|_| insert(0, "x")).collect();
    c.expect_error(change(json!(many), json!(0)), "too_many_ops");
    let big = "x".repeat(40_000);
    c.expect_error(change(json!([insert(0, &big)]), json!(0)), "doc_too_large");
    // Atomic: the first op of a refused change is not applied either.
    c.expect_error(
        change(json!([insert(0, "ok"), delete(5, 1)]), json!(0)),
        "invalid_op",
    );
    c.send(json!({"type": "doc:sync", "doc": doc, "version": 0}));
    let ops = c.recv_type("doc:operations");
    assert_eq!(ops["changes"], json!([]));
    c.send(json!({"type": "doc:leave", "doc": doc, "ref": 9}));
    assert_eq!(
        c.recv_type("doc:left"),
        json!({"type": "doc:left", "doc": doc, "ref": 9})
    );
    srv.shutdown().unwrap();
}

#[test]
fn without_guests_a_collab_connection_logs_in_before_it_edits() {
    let srv = server(|c| c.allow_anonymous = false);
    let doc = doc_on(0, 2, "closed");
    let mut c = Client::connect(srv.local_addr(), &format!("/ws/collab/{doc}"));
    let refused = c.recv();
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "auth_required");
    c.login("dana");
    c.send(json!({"type": "doc:join", "ref": 1}));
    let state = c.recv_type("doc:state");
    assert_eq!(state["users"][0]["userId"], "dana");
    assert_eq!(state["ref"], 1);
    srv.shutdown().unwrap();
}

#[test]
fn cursors_across_shards_update_follow_and_go() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let doc = doc_on(1, 2, "cur");
    let mut a = Client::user(addr, &common::room_on(0, 2, "a"), "alice");
    let mut b = Client::user(addr, &common::room_on(1, 2, "b"), "bob");
    for c in [&mut a, &mut b] {
        c.send(json!({"type": "doc:join", "doc": doc}));
        c.recv_type("doc:state");
    }
    a.send(json!({"type": "doc:change", "doc": doc, "version": 0, "ops": [insert(0, "hello")]}));
    a.recv_type("doc:ack");
    b.send(json!({"type": "cursor:move", "doc": doc, "position": 5, "anchor": 1, "version": 1}));
    let update = a.recv_type("cursor:update");
    assert_eq!(update["version"], 1);
    let bob = &update["cursors"][0];
    assert_eq!(
        (
            bob["userId"].clone(),
            bob["position"].clone(),
            bob["anchor"].clone()
        ),
        (json!("bob"), json!(5), json!(1))
    );
    // A caret placed in version 0 at 0 moves through alice's insert to 5.
    b.send(json!({"type": "cursor:move", "doc": doc, "position": 0, "version": 0}));
    assert_eq!(a.recv_type("cursor:update")["cursors"][0]["position"], 5);
    b.send(json!({"type": "cursor:move", "doc": doc, "x": 12.34567, "y": -1}));
    assert_eq!(
        a.recv_type("cursor:update")["cursors"][0]["x"],
        12.346,
        "rounded to thousandths"
    );
    b.expect_error(
        json!({"type": "cursor:move", "doc": doc, "x": "left", "y": 0}),
        "invalid_field",
    );
    b.expect_error(
        json!({"type": "cursor:move", "doc": "elsewhere", "x": 1, "y": 0}),
        "not_in_doc",
    );
    b.send(json!({"type": "doc:leave", "doc": doc}));
    assert_eq!(a.recv_type("cursor:remove")["connectionId"], b.id);
    srv.shutdown().unwrap();
}

#[test]
fn a_change_far_behind_is_charged_its_transform_and_the_author_waits() {
    // A bucket of 300 units, 30 a second; the owner is on the other shard, so the charge
    // travels back to the author's.
    let srv = server(|c| c.request_rate = "300/10s".into());
    let addr = srv.local_addr();
    let doc = doc_on(0, 2, "debt");
    let mut b = Client::user(addr, &common::room_on(1, 2, "b"), "bob");
    b.send(json!({"type": "doc:join", "doc": doc}));
    b.recv_type("doc:state");
    let ops = |n: usize| Value::Array((0..n).map(|_| insert(0, "x")).collect());
    for v in 0..2 {
        b.send(json!({"type": "doc:change", "doc": doc, "version": v, "ops": ops(200)}));
        assert_eq!(b.recv_type("doc:ack")["version"], v + 1);
    }
    let before = common::stats(&srv)["budget_debited"].as_u64().unwrap();
    // 256 ops against the 400 applied since version 0: 102,400 pairs, 100 units.
    b.send(json!({"type": "doc:change", "doc": doc, "version": 0, "ops": ops(256)}));
    assert_eq!(b.recv_type("doc:ack")["version"], 3);
    let mut refused = None;
    for _ in 0..4 {
        // With what the light changes took, the next heavy change or the one after finds
        // bob in debt.
        b.send(json!({"type": "doc:change", "doc": doc, "version": 0, "ops": ops(256)}));
        let v = b.recv_type_or_error("doc:ack");
        if v["type"] == "error" {
            refused = Some(v);
            break;
        }
    }
    let refused = refused.expect("the debt refuses bob's requests");
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    let debited = common::stats(&srv)["budget_debited"].as_u64().unwrap() - before;
    assert!(debited >= 100, "{debited}");
    // Still connected, and served again once the debt is paid back.
    let t0 = std::time::Instant::now();
    loop {
        b.send(json!({"type": "doc:sync", "doc": doc, "version": 3}));
        let v = b.recv_type_or_error("doc:operations");
        if v["type"] == "doc:operations" {
            assert_eq!(v["from"], 3);
            break;
        }
        assert_eq!(v["code"], "rate_limited", "{v}");
        assert!(t0.elapsed().as_secs() < 15, "still refused: {v}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    srv.shutdown().unwrap();
}
