//! What a newcomer's client hears first: who it is (`user` in `connection:established` in
//! token mode) and mistakes worded in the sender's terms, the same for the same mistake.

mod common;

use common::{server, user_token, Client, SECRET};
use serde_json::{json, Value};
use tungstenite::Message;

fn token(sub: &str, name: &str) -> String {
    user_token(sub, name, 60)
}

/// The first frame of a connection to `path`.
fn hello(addr: std::net::SocketAddr, path: &str) -> Value {
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}{path}")).unwrap();
    match ws.read().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_token_connection_is_told_its_user() {
    let srv = server(|c| c.auth_secret = Some(SECRET.into()));
    let addr = srv.local_addr();
    let v = hello(addr, &format!("/ws?token={}", token("u-7", "alice")));
    assert_eq!(v["type"], "connection:established");
    assert_eq!(
        v["user"],
        json!({"userId": "u-7", "username": "alice"}),
        "{v}"
    );
    // A guest has no user to be told of.
    let v = hello(addr, "/ws");
    assert!(v.get("user").is_none(), "{v}");
    srv.shutdown().unwrap();

    let dev = server(|_| {});
    let v = hello(dev.local_addr(), "/ws");
    assert!(v.get("user").is_none(), "{v}");
    dev.shutdown().unwrap();
}

#[test]
fn mistakes_are_worded_for_the_sender() {
    let srv = server(|_| {});
    let mut c = Client::connect(srv.local_addr(), "/ws");
    c.send_text("not json");
    let v = c.recv_type("error");
    assert_eq!(v["code"], "bad_json");
    assert_eq!(
        v["message"],
        r#"message must be a JSON object, e.g. {"type":"room:list"}"#
    );
    c.send_text(r#"{"type":"room:list""#);
    let v = c.recv_type("error");
    assert_eq!(v["code"], "bad_json");
    assert!(
        v["message"].as_str().unwrap().contains("closing `}`"),
        "{v}"
    );

    c.join("words");
    let mut worded = Vec::new();
    for limit in [json!(0), json!(-1), json!(101), json!("5")] {
        let v = c.expect_error(
            json!({"type": "message:history", "room": "words", "limit": limit}),
            "invalid_field",
        );
        worded.push(v["message"].clone());
    }
    assert!(worded.iter().all(|w| w == &worded[0]), "{worded:?}");
    assert_eq!(worded[0], "field `limit` must be an integer from 1 to 100");
    srv.shutdown().unwrap();
}
