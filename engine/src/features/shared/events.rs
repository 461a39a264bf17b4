//! The shared feature's events: `state:sync`, `state:update`, `broadcast:message`,
//! `broadcast:history`, `presence:data`, and the `ack {ref, version | id}` of a write.
//!
//! Invariant: a frame names its topic as the client did: `room` for a room, `doc` for a
//! document.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::protocol::event::{frame, open, push_num, push_ref};
use crate::protocol::handshake::DOC_TOPIC_PREFIX;
use crate::protocol::json::push_str;

/// `,"room":..` or `,"doc":..` for `topic`.
fn push_where(o: &mut Vec<u8>, topic: &str) {
    match topic.strip_prefix(DOC_TOPIC_PREFIX) {
        Some(doc) => {
            o.extend_from_slice(b",\"doc\":");
            push_str(o, doc);
        }
        None => {
            o.extend_from_slice(b",\"room\":");
            push_str(o, topic);
        }
    }
}

fn push_object<'a>(o: &mut Vec<u8>, entries: impl Iterator<Item = (&'a str, Option<&'a [u8]>)>) {
    o.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            o.push(b',');
        }
        push_str(o, k);
        o.push(b':');
        o.extend_from_slice(v.unwrap_or(b"null"));
    }
    o.push(b'}');
}

/// `state:sync {room|doc, state, version, ref?}`: the whole state.
pub fn sync(
    topic: &str,
    state: &BTreeMap<Box<str>, Box<[u8]>>,
    version: u64,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "state:sync");
        push_where(o, topic);
        o.extend_from_slice(b",\"state\":");
        push_object(o, state.iter().map(|(k, v)| (&**k, Some(&**v))));
        push_num(o, b"version", version);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `state:update {room|doc, version, changes, by}`: one write, null for a deleted key.
pub fn update(
    topic: &str,
    version: u64,
    changes: &[super::store::StateChange],
    by: &[u8],
) -> Bytes {
    frame(|o| {
        open(o, "state:update");
        push_where(o, topic);
        push_num(o, b"version", version);
        o.extend_from_slice(b",\"changes\":");
        push_object(o, changes.iter().map(|(k, v)| (&**k, v.as_deref())));
        o.extend_from_slice(b",\"by\":");
        o.extend_from_slice(by);
        o.push(b'}');
    })
}

/// `ack {ref, version}` (a state write) or `ack {ref, id}` (a broadcast).
pub fn ack(reference: Option<&[u8]>, key: &[u8], n: u64) -> Bytes {
    frame(|o| {
        open(o, "ack");
        push_ref(o, reference);
        push_num(o, key, n);
        o.push(b'}');
    })
}

/// The body of a `broadcast:message` after its `type`: `,"room":..,"channel":..,"id":..,
/// "payload":..,"from":..,"ts":..}` (kept for history, framed for fan-out).
pub fn message_body(
    topic: &str,
    channel: &str,
    id: u64,
    payload: &[u8],
    from: &[u8],
    ts: u64,
) -> Vec<u8> {
    let mut o = Vec::with_capacity(64 + payload.len());
    push_where(&mut o, topic);
    o.extend_from_slice(b",\"channel\":");
    push_str(&mut o, channel);
    push_num(&mut o, b"id", id);
    o.extend_from_slice(b",\"payload\":");
    o.extend_from_slice(payload);
    o.extend_from_slice(b",\"from\":");
    o.extend_from_slice(from);
    push_num(&mut o, b"ts", ts);
    o.push(b'}');
    o
}

/// `broadcast:message {room|doc, channel, id, payload, from, ts}`.
pub fn message(body: &[u8]) -> Bytes {
    frame(|o| {
        open(o, "broadcast:message");
        o.extend_from_slice(body);
    })
}

/// `broadcast:history {room|doc, channel, messages, ref?}`, oldest first.
pub fn history<'a>(
    topic: &str,
    channel: &str,
    bodies: impl Iterator<Item = &'a [u8]>,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "broadcast:history");
        push_where(o, topic);
        o.extend_from_slice(b",\"channel\":");
        push_str(o, channel);
        o.extend_from_slice(b",\"messages\":[");
        for (i, body) in bodies.enumerate() {
            if i > 0 {
                o.push(b',');
            }
            o.extend_from_slice(b"{\"type\":\"broadcast:message\"");
            o.extend_from_slice(body);
        }
        o.push(b']');
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `presence:data {room|doc, connectionId, user, data, lastSeen}`.
pub fn presence(topic: &str, conn_id: u64, user: &[u8], data: &[u8], last_seen: u64) -> Bytes {
    frame(|o| {
        open(o, "presence:data");
        push_where(o, topic);
        push_num(o, b"connectionId", conn_id);
        o.extend_from_slice(b",\"user\":");
        o.extend_from_slice(user);
        o.extend_from_slice(b",\"data\":");
        o.extend_from_slice(data);
        push_num(o, b"lastSeen", last_seen);
        o.push(b'}');
    })
}
