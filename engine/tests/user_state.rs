//! What a shard keeps for users stays bounded whatever clients do: offline users are
//! forgotten after `--user-ttl-secs`, and one sender cannot fill a user's notifications.

mod common;

use std::time::{Duration, Instant};

use common::{server, Client, RECV_TIMEOUT};
use serde_json::{json, Value};

/// `message:direct` from `from` to `to`; the `ack` or `error` that answers it.
fn direct(from: &mut Client, to: &str, content: &str) -> Value {
    from.send(json!({"type": "message:direct", "to": to, "content": content, "ref": "d"}));
    loop {
        let v = from.recv();
        if (v["type"] == "ack" || v["type"] == "error") && v["ref"] == "d" {
            return v;
        }
    }
}

#[test]
fn offline_users_are_forgotten_after_the_ttl_and_online_ones_kept() {
    let srv = server(|c| c.user_ttl_secs = 1);
    let addr = srv.local_addr();
    let mut alice = Client::connect(addr, "/ws");
    alice.login("alice");
    let mut bob = Client::connect(addr, "/ws");
    bob.login("bob");
    let mut carol = Client::connect(addr, "/ws");
    carol.login("carol");
    alice.close();
    drop(alice);
    // Offline, alice is still known (her notifications wait for her) ...
    assert_eq!(direct(&mut bob, "alice", "are you there?")["type"], "ack");
    // ... until a second after she was last used.
    let deadline = Instant::now() + RECV_TIMEOUT;
    loop {
        let v = direct(&mut bob, "alice", "hello?");
        if v["type"] == "error" {
            assert_eq!(v["code"], "unknown_user", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "alice was never forgotten");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Bob has been online longer than the TTL: he is kept.
    assert_eq!(direct(&mut carol, "bob", "hi bob")["type"], "ack");
    let stats: Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["users_expired"], 1, "{stats}");
    assert_eq!(stats["users"], 2, "{stats}");
    srv.shutdown().unwrap();
}

#[test]
fn one_senders_flood_cannot_evict_others_notifications() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let mut bob = Client::connect(addr, "/ws");
    bob.login("bob");
    let mut carol = Client::connect(addr, "/ws");
    carol.login("carol");
    let mut mallory = Client::connect(addr, "/ws");
    mallory.login("mallory");
    bob.close();
    drop(bob);
    assert_eq!(direct(&mut carol, "bob", "lunch at noon?")["type"], "ack");
    // 250 direct messages: more than the 200 a user keeps in all.
    for i in 0..250 {
        assert_eq!(
            direct(&mut mallory, "bob", &format!("spam {i}"))["type"],
            "ack"
        );
    }
    let mut bob = Client::connect(addr, "/ws");
    bob.login("bob");
    bob.send(json!({"type": "notification:list"}));
    let list = bob.recv_type("notification:list");
    let items = list["notifications"].as_array().unwrap();
    let from_mallory: Vec<&str> = items
        .iter()
        .filter(|n| n["title"] == "New message from mallory")
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    // Mallory's newest 20 replaced her older ones; carol's is still there.
    let newest: Vec<String> = (230..250).rev().map(|i| format!("spam {i}")).collect();
    assert_eq!(from_mallory, newest, "{list}");
    assert!(
        items.iter().any(|n| n["body"] == "lunch at noon?"),
        "{list}"
    );
    assert_eq!(items.len(), 21, "{list}");
    assert_eq!(list["unread"], 21, "{list}");
    let stats: Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["notifications_replaced"], 230, "{stats}");
    assert_eq!(stats["notifications_dropped"], 0, "{stats}");
    srv.shutdown().unwrap();
}
