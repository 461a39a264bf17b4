//! Who a connection speaks for cannot be stretched or borrowed: tokens are checked for
//! `exp`, `nbf` and `iat` with a short leeway and a connection closes (4001) when its token
//! expires; `bearer` works in any case; reserved names (`system`) cannot be taken.

mod common;

use common::{server, sign, unix_now as now, upgrade_status, Client, SECRET};
use serde_json::{json, Value};

fn token(claims: Value) -> String {
    sign(&claims)
}

#[test]
fn a_connection_closes_with_4001_when_its_token_expires() {
    let srv = server(|c| {
        c.auth_secret = Some(SECRET.into());
        c.jwt_leeway_secs = 0;
    });
    let addr = srv.local_addr();
    let short = token(json!({"sub": "u-1", "name": "alice", "exp": now() + 2}));
    let long = token(json!({"sub": "u-2", "name": "bob", "exp": now() + 3600}));
    let mut a = Client::connect(addr, &format!("/ws?token={short}"));
    let mut b = Client::connect(addr, &format!("/ws?token={long}"));
    a.join("lobby");
    b.join("lobby");
    // Within 2 s (plus a housekeeping tick) the short token's connection is closed.
    assert_eq!(a.expect_close(), 4001);
    let left = b.recv_type("room:user_left");
    assert_eq!(left["userId"], "u-1", "{left}");
    b.send(json!({"type": "message:send", "room": "lobby", "content": "still here"}));
    assert_eq!(b.recv_type("message:new")["content"], "still here");
    let stats: Value = serde_json::from_str(&srv.stats_json()).unwrap();
    assert_eq!(stats["tokens_expired"], 1, "{stats}");
    srv.shutdown().unwrap();
}

#[test]
fn token_times_and_reserved_names_are_checked_at_the_handshake() {
    let srv = server(|c| c.auth_secret = Some(SECRET.into()));
    let addr = srv.local_addr();
    let t = now();
    let refused = [
        // Expired 30 s ago: accepted with the old 60 s leeway, not with 5 s.
        json!({"sub": "u", "exp": t - 30}),
        json!({"sub": "u", "exp": t + 600, "nbf": t + 60}),
        json!({"sub": "u", "exp": t + 600, "iat": t + 60}),
        json!({"sub": "system", "exp": t + 600}),
        json!({"sub": "u", "name": "System", "exp": t + 600}),
        json!({"sub": "guest:1", "name": "g", "exp": t + 600}),
    ];
    for claims in refused {
        let status = upgrade_status(addr, &format!("/ws?token={}", token(claims.clone())), "");
        assert!(status.contains("401"), "{claims}: {status}");
    }
    let fine = token(json!({"sub": "u-3", "exp": t + 600, "nbf": t - 1, "iat": t - 1}));
    let status = upgrade_status(addr, &format!("/ws?token={fine}"), "");
    assert!(status.contains("101"), "{status}");
    srv.shutdown().unwrap();
}

#[test]
fn a_lowercase_bearer_authenticates_instead_of_making_a_guest() {
    let srv = server(|c| c.auth_secret = Some(SECRET.into()));
    let addr = srv.local_addr();
    let t = token(json!({"sub": "u-9", "name": "carol", "exp": now() + 600}));
    let request = common::ws_request(addr, "Authorization", &format!("bearer {t}"));
    let (ws, _) = tungstenite::connect(request).unwrap();
    let mut c = Client::from_ws(ws);
    c.join("r");
    c.send(json!({"type": "message:send", "room": "r", "content": "hi"}));
    let m = c.recv_type("message:new");
    assert_eq!(
        m["from"],
        json!({"userId": "u-9", "username": "carol"}),
        "{m}"
    );
    srv.shutdown().unwrap();
}

#[test]
fn nobody_logs_in_as_system() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let mut c = Client::connect(addr, "/ws");
    for name in ["system", "System", "SYSTEM"] {
        c.send(json!({"type": "auth:login", "username": name}));
        let e = c.recv_type("auth:error");
        assert_eq!(e["code"], "reserved_username", "{e}");
    }
    c.login("systems");
    srv.shutdown().unwrap();
}

#[test]
fn the_jwt_leeway_is_a_setting() {
    let srv = server(|c| {
        c.auth_secret = Some(SECRET.into());
        c.jwt_leeway_secs = 120;
    });
    let addr = srv.local_addr();
    let late = token(json!({"sub": "u", "exp": now() - 30}));
    let status = upgrade_status(addr, &format!("/ws?token={late}"), "");
    assert!(status.contains("101"), "{status}");
    srv.shutdown().unwrap();
}

#[test]
fn a_guests_mentions_notify_nobody() {
    let srv = server(|_| {});
    let addr = srv.local_addr();
    let mut bob = Client::connect(addr, "/ws");
    bob.login("bob");
    bob.join("hall");
    let mut guest = Client::connect(addr, "/ws");
    guest.join("hall");
    let mut alice = Client::connect(addr, "/ws");
    alice.login("alice");
    alice.join("hall");
    guest.send(json!({"type": "message:send", "room": "hall", "content": "@bob from a guest"}));
    assert_eq!(bob.recv_type("message:new")["content"], "@bob from a guest");
    alice.send(json!({"type": "message:send", "room": "hall", "content": "@bob from alice"}));
    // The first notification bob gets is alice's: the guest's mention made none.
    let n = bob.recv_type("notification:new");
    assert_eq!(n["title"], "alice mentioned you in hall", "{n}");
    bob.send(json!({"type": "notification:list"}));
    let list = bob.recv_type("notification:list");
    assert_eq!(list["notifications"].as_array().unwrap().len(), 1, "{list}");
    srv.shutdown().unwrap();
}
