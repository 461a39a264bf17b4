//! Server-to-client events of the core (`connection:established`, `ack`, `error`, `batch`, the
//! rate-limit warning), each encoded straight into a complete WebSocket text frame, and the
//! builders the features encode their own events with (`features::*::events`).
//!
//! Invariant: every function returns a whole frame (header and JSON payload) that can be queued
//! to any number of connections as is; nothing downstream re-encodes it.

use bytes::Bytes;

use super::frame::text_frame;
use super::json::{push_str, push_u64};

pub fn frame(build: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut out = Vec::with_capacity(96);
    build(&mut out);
    text_frame(&out)
}

pub fn push_ref(out: &mut Vec<u8>, reference: Option<&[u8]>) {
    if let Some(r) = reference {
        out.extend_from_slice(b",\"ref\":");
        out.extend_from_slice(r);
    }
}

/// `connection:established {connectionId, shard, user?}`: the first frame on every
/// connection; `user` (`{userId, username}`) when the handshake's token named one.
pub fn established(connection_id: u64, shard: usize, user: Option<&[u8]>) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"connection:established\",\"connectionId\":");
        push_u64(o, connection_id);
        o.extend_from_slice(b",\"shard\":");
        push_u64(o, shard as u64);
        if let Some(user) = user {
            o.extend_from_slice(b",\"user\":");
            o.extend_from_slice(user);
        }
        o.push(b'}');
    })
}

/// Appends `,"key":[a,b,...]` from pre-encoded JSON values.
pub fn push_array<'a>(o: &mut Vec<u8>, key: &[u8], items: impl Iterator<Item = &'a [u8]>) {
    o.extend_from_slice(b",\"");
    o.extend_from_slice(key);
    o.extend_from_slice(b"\":[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            o.push(b',');
        }
        o.extend_from_slice(item);
    }
    o.push(b']');
}

pub fn push_bool(o: &mut Vec<u8>, key: &[u8], v: bool) {
    o.extend_from_slice(b",\"");
    o.extend_from_slice(key);
    o.extend_from_slice(if v { b"\":true" } else { b"\":false" });
}

/// Appends `,"key":n`.
pub fn push_num(o: &mut Vec<u8>, key: &[u8], n: u64) {
    o.extend_from_slice(b",\"");
    o.extend_from_slice(key);
    o.extend_from_slice(b"\":");
    push_u64(o, n);
}

/// Starts `{"type":"<kind>"`.
pub fn open(o: &mut Vec<u8>, kind: &str) {
    o.extend_from_slice(b"{\"type\":\"");
    o.extend_from_slice(kind.as_bytes());
    o.push(b'"');
}

/// Appends `,"room":"<room>"`.
pub fn push_room(o: &mut Vec<u8>, room: &str) {
    o.extend_from_slice(b",\"room\":");
    push_str(o, room);
}

/// `{"userId":..,"username":..}` (user JSON) merged into an event: `,"userId":..,"username":..`.
pub fn push_user_fields(o: &mut Vec<u8>, user_json: &[u8]) {
    o.push(b',');
    o.extend_from_slice(&user_json[1..user_json.len() - 1]);
}

/// `ack {ref, id}`: the request carrying `ref` succeeded and made the thing with `id`.
pub fn ack_id(reference: Option<&[u8]>, id: u64) -> Bytes {
    frame(|o| {
        open(o, "ack");
        push_ref(o, reference);
        push_num(o, b"id", id);
        o.push(b'}');
    })
}

/// `rate_limit:warning {remaining, resetTime}`: `resetTime` is when the bucket is full again
/// (Unix ms).
pub fn rate_limit_warning(remaining: u32, reset_time_ms: u64) -> Bytes {
    frame(|o| {
        open(o, "rate_limit:warning");
        push_num(o, b"remaining", remaining as u64);
        push_num(o, b"resetTime", reset_time_ms);
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
    refusal("error", code, message, reference)
}

/// `<kind> {code, message, ref?}`: a refusal with a stable code (`error`, `auth:error`).
pub fn refusal(kind: &str, code: &str, message: &str, reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, kind);
        o.extend_from_slice(b",\"code\":");
        push_str(o, code);
        o.extend_from_slice(b",\"message\":");
        push_str(o, message);
        push_ref(o, reference);
        o.push(b'}');
    })
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

/// The JSON payload of a server text frame of less than 64 KiB, for tests.
#[cfg(test)]
pub fn payload(frame: &Bytes) -> serde_json::Value {
    let start = if frame[1] & 0x7f == 126 { 4 } else { 2 };
    serde_json::from_slice(&frame[start..]).expect("a JSON frame")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn core_events_are_valid_json() {
        assert_eq!(
            payload(&established(7, 1, None)),
            json!({"type":"connection:established","connectionId":7,"shard":1})
        );
        let alice = br#"{"userId":"u1","username":"alice"}"#;
        assert_eq!(
            payload(&established(7, 1, Some(alice))),
            json!({"type":"connection:established","connectionId":7,"shard":1,
                   "user":{"userId":"u1","username":"alice"}})
        );
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
    fn batches_hold_messages() {
        let m1 = br#"{"type":"message:new","id":1}"#;
        let m2 = br#"{"type":"message:new","id":2,"content":"two"}"#;
        let v: Value = serde_json::from_slice(m1).unwrap();
        assert_eq!(payload(&batch(&[&m1[..]])), v);
        let b = payload(&batch(&[&m1[..], &m2[..]]));
        assert_eq!(b["type"], "batch");
        assert_eq!(b["messages"][1]["content"], "two");
    }
}
