//! Server-to-client events, each encoded straight into a complete WebSocket text frame.
//!
//! Invariant: every function returns a whole frame (header and JSON payload) that can be queued
//! to any number of connections as is; nothing downstream re-encodes it.

use bytes::Bytes;

use super::frame::text_frame;
use super::json::{push_str, push_u64};

fn frame(build: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut out = Vec::with_capacity(96);
    build(&mut out);
    text_frame(&out)
}

fn push_ref(out: &mut Vec<u8>, reference: Option<&[u8]>) {
    if let Some(r) = reference {
        out.extend_from_slice(b",\"ref\":");
        out.extend_from_slice(r);
    }
}

/// `connection:established {connectionId, shard}`: the first frame on every connection.
pub fn established(connection_id: u64, shard: usize) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"connection:established\",\"connectionId\":");
        push_u64(o, connection_id);
        o.extend_from_slice(b",\"shard\":");
        push_u64(o, shard as u64);
        o.push(b'}');
    })
}

/// `room:joined {room, members}`: `members` counts every member on every shard.
pub fn joined(room: &str, members: u64) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"room:joined\",\"room\":");
        push_str(o, room);
        o.extend_from_slice(b",\"members\":");
        push_u64(o, members);
        o.push(b'}');
    })
}

/// `room:left {room}`.
pub fn left(room: &str) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"room:left\",\"room\":");
        push_str(o, room);
        o.push(b'}');
    })
}

/// `ack {ref}`: the request carrying `ref` succeeded.
pub fn ack(reference: &[u8]) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"ack\"");
        push_ref(o, Some(reference));
        o.push(b'}');
    })
}

/// `error {code, message, ref?}`.
pub fn error(code: &str, message: &str, reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"error\",\"code\":");
        push_str(o, code);
        o.extend_from_slice(b",\"message\":");
        push_str(o, message);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// The JSON object of `message:new {room, id, from, content, ts}` (not yet a frame: it may
/// travel alone or inside a batch). `content` is raw JSON.
pub fn message_new(room: &str, id: u64, from: u64, content: &[u8], ts_ms: u64) -> Vec<u8> {
    let mut o = Vec::with_capacity(64 + room.len() + content.len());
    o.extend_from_slice(b"{\"type\":\"message:new\",\"room\":");
    push_str(&mut o, room);
    o.extend_from_slice(b",\"id\":");
    push_u64(&mut o, id);
    o.extend_from_slice(b",\"from\":");
    push_u64(&mut o, from);
    o.extend_from_slice(b",\"content\":");
    o.extend_from_slice(content);
    o.extend_from_slice(b",\"ts\":");
    push_u64(&mut o, ts_ms);
    o.push(b'}');
    o
}

/// One frame for messages of one room: alone when there is one, else `batch {messages}`.
pub fn batch<T: AsRef<[u8]>>(messages: &[T]) -> Bytes {
    assert!(!messages.is_empty(), "a batch holds at least one message");
    if messages.len() == 1 {
        return text_frame(messages[0].as_ref());
    }
    let len: usize = messages.iter().map(|m| m.as_ref().len() + 1).sum();
    let mut o = Vec::with_capacity(32 + len);
    o.extend_from_slice(b"{\"type\":\"batch\",\"messages\":[");
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        o.extend_from_slice(m.as_ref());
    }
    o.extend_from_slice(b"]}");
    text_frame(&o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn payload(frame: &Bytes) -> Value {
        let start = if frame[1] & 0x7f == 126 { 4 } else { 2 };
        serde_json::from_slice(&frame[start..]).unwrap()
    }

    #[test]
    fn events_are_valid_json() {
        assert_eq!(
            payload(&established(7, 1)),
            json!({"type":"connection:established","connectionId":7,"shard":1})
        );
        assert_eq!(
            payload(&joined("a", 3)),
            json!({"type":"room:joined","room":"a","members":3})
        );
        assert_eq!(payload(&left("a")), json!({"type":"room:left","room":"a"}));
        assert_eq!(payload(&ack(b"\"r1\"")), json!({"type":"ack","ref":"r1"}));
        assert_eq!(
            payload(&error("bad_json", "no \"quote\"", Some(b"5"))),
            json!({"type":"error","code":"bad_json","message":"no \"quote\"","ref":5})
        );
        assert_eq!(
            payload(&error("x", "y", None)),
            json!({"type":"error","code":"x","message":"y"})
        );
    }

    #[test]
    fn messages_and_batches() {
        let m1 = message_new("r", 1, 9, br#"{"a":[1]}"#, 100);
        let m2 = message_new("r", 2, 9, br#""two""#, 101);
        let v: Value = serde_json::from_slice(&m1).unwrap();
        assert_eq!(
            v,
            json!({"type":"message:new","room":"r","id":1,"from":9,"content":{"a":[1]},"ts":100})
        );
        assert_eq!(payload(&batch(&[&m1])), v);
        let b = payload(&batch(&[&m1, &m2]));
        assert_eq!(b["type"], "batch");
        assert_eq!(b["messages"][1]["content"], "two");
    }
}
