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
fn push_array<'a>(o: &mut Vec<u8>, key: &[u8], items: impl Iterator<Item = &'a [u8]>) {
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

fn push_bool(o: &mut Vec<u8>, key: &[u8], v: bool) {
    o.extend_from_slice(b",\"");
    o.extend_from_slice(key);
    o.extend_from_slice(if v { b"\":true" } else { b"\":false" });
}

/// Appends `,"key":n`.
fn push_num(o: &mut Vec<u8>, key: &[u8], n: u64) {
    o.extend_from_slice(b",\"");
    o.extend_from_slice(key);
    o.extend_from_slice(b"\":");
    push_u64(o, n);
}

/// Starts `{"type":"<kind>"`.
fn open(o: &mut Vec<u8>, kind: &str) {
    o.extend_from_slice(b"{\"type\":\"");
    o.extend_from_slice(kind.as_bytes());
    o.push(b'"');
}

/// Appends `,"room":"<room>"`.
fn push_room(o: &mut Vec<u8>, room: &str) {
    o.extend_from_slice(b",\"room\":");
    push_str(o, room);
}

/// `{"userId":..,"username":..}` (user JSON) merged into an event: `,"userId":..,"username":..`.
fn push_user_fields(o: &mut Vec<u8>, user_json: &[u8]) {
    o.push(b',');
    o.extend_from_slice(&user_json[1..user_json.len() - 1]);
}

/// `room:joined {room, members, users, more, messages}`: `members` counts every connection on
/// every shard; `users` lists those present (pre-encoded JSON), `more` those left out;
/// `messages` are the recent ones, oldest first.
pub fn joined<'a>(
    room: &str,
    members: u64,
    users: impl Iterator<Item = &'a [u8]>,
    more: usize,
    messages: impl Iterator<Item = &'a [u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "room:joined");
        push_room(o, room);
        push_num(o, b"members", members);
        push_array(o, b"users", users);
        push_num(o, b"more", more as u64);
        push_array(o, b"messages", messages);
        o.push(b'}');
    })
}

/// `room:user_joined {room, userId, username}` or `room:user_left {...}`.
pub fn user_moved(joined: bool, room: &str, user_json: &[u8]) -> Bytes {
    frame(|o| {
        open(
            o,
            if joined {
                "room:user_joined"
            } else {
                "room:user_left"
            },
        );
        push_room(o, room);
        push_user_fields(o, user_json);
        o.push(b'}');
    })
}

/// `auth:success {userId, username}`.
pub fn auth_success(user_json: &[u8], reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, "auth:success");
        push_user_fields(o, user_json);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `auth:error {code, message}`.
pub fn auth_error(code: &str, message: &str, reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, "auth:error");
        o.extend_from_slice(b",\"code\":");
        push_str(o, code);
        o.extend_from_slice(b",\"message\":");
        push_str(o, message);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `room:created {room, description, createdBy, hasPassword, maxUsers}`.
pub fn room_created(
    room: &str,
    description: &str,
    created_by: &[u8],
    has_password: bool,
    max_users: Option<u32>,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "room:created");
        push_room(o, room);
        o.extend_from_slice(b",\"description\":");
        push_str(o, description);
        o.extend_from_slice(b",\"createdBy\":");
        o.extend_from_slice(created_by);
        push_bool(o, b"hasPassword", has_password);
        match max_users {
            Some(n) => push_num(o, b"maxUsers", n as u64),
            None => o.extend_from_slice(b",\"maxUsers\":null"),
        }
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// One entry of `room:list`: `{room, description, members, hasPassword, maxUsers, unread}`.
pub fn room_entry(
    o: &mut Vec<u8>,
    room: &str,
    description: &str,
    members: u64,
    has_password: bool,
    max_users: Option<u32>,
    unread: u64,
) {
    o.extend_from_slice(b"{\"room\":");
    push_str(o, room);
    o.extend_from_slice(b",\"description\":");
    push_str(o, description);
    push_num(o, b"members", members);
    push_bool(o, b"hasPassword", has_password);
    match max_users {
        Some(n) => push_num(o, b"maxUsers", n as u64),
        None => o.extend_from_slice(b",\"maxUsers\":null"),
    }
    push_num(o, b"unread", unread);
    o.push(b'}');
}

/// `room:list {rooms, truncated}` from entries written by [`room_entry`].
pub fn room_list<'a>(
    entries: impl Iterator<Item = &'a [u8]>,
    truncated: bool,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "room:list");
        push_array(o, b"rooms", entries);
        push_bool(o, b"truncated", truncated);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `message:history {room, messages, hasMore}`, messages oldest first.
pub fn history<'a>(
    room: &str,
    messages: impl Iterator<Item = &'a [u8]>,
    has_more: bool,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "message:history");
        push_room(o, room);
        push_array(o, b"messages", messages);
        push_bool(o, b"hasMore", has_more);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `message:read {room, userId, upTo}`.
pub fn read(room: &str, user_id: &str, up_to: u64) -> Bytes {
    frame(|o| {
        open(o, "message:read");
        push_room(o, room);
        o.extend_from_slice(b",\"userId\":");
        push_str(o, user_id);
        push_num(o, b"upTo", up_to);
        o.push(b'}');
    })
}

/// `typing:update {room, users, more}`.
pub fn typing_update<'a>(room: &str, users: impl Iterator<Item = &'a [u8]>, more: usize) -> Bytes {
    frame(|o| {
        open(o, "typing:update");
        push_room(o, room);
        push_array(o, b"users", users);
        push_num(o, b"more", more as u64);
        o.push(b'}');
    })
}

/// One user's presence: `{"userId":..,"username":..,"status":..,"lastSeen":..}`.
pub fn presence_entry(o: &mut Vec<u8>, user_json: &[u8], status: &str, last_seen: u64) {
    o.extend_from_slice(&user_json[..user_json.len() - 1]);
    o.extend_from_slice(b",\"status\":");
    push_str(o, status);
    push_num(o, b"lastSeen", last_seen);
    o.push(b'}');
}

/// `presence:update {userId, username, status, lastSeen}`.
pub fn presence_update(user_json: &[u8], status: &str, last_seen: u64) -> Bytes {
    frame(|o| {
        open(o, "presence:update");
        o.push(b',');
        let mut entry = Vec::new();
        presence_entry(&mut entry, user_json, status, last_seen);
        o.extend_from_slice(&entry[1..]);
    })
}

/// `presence:list {room, users, more}` from entries written by [`presence_entry`].
pub fn presence_list<'a>(
    room: &str,
    users: impl Iterator<Item = &'a [u8]>,
    more: usize,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "presence:list");
        push_room(o, room);
        push_array(o, b"users", users);
        push_num(o, b"more", more as u64);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `message:direct {id, from, content, ts}`.
pub fn direct(id: u64, from: &[u8], content: &[u8], ts_ms: u64) -> Bytes {
    frame(|o| {
        open(o, "message:direct");
        push_num(o, b"id", id);
        o.extend_from_slice(b",\"from\":");
        o.extend_from_slice(from);
        o.extend_from_slice(b",\"content\":");
        o.extend_from_slice(content);
        push_num(o, b"ts", ts_ms);
        o.push(b'}');
    })
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

/// `notification:new {id, kind, title, body, ts}` from the notification's JSON object.
pub fn notification_new(notification: &[u8]) -> Bytes {
    frame(|o| {
        open(o, "notification:new");
        o.push(b',');
        o.extend_from_slice(&notification[1..]);
    })
}

/// `notification:list {notifications, unread}`, newest first.
pub fn notification_list<'a>(
    notifications: impl Iterator<Item = &'a [u8]>,
    unread: usize,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "notification:list");
        push_array(o, b"notifications", notifications);
        push_num(o, b"unread", unread as u64);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `notification:unread {count}`.
pub fn notification_unread(count: usize) -> Bytes {
    frame(|o| {
        open(o, "notification:unread");
        push_num(o, b"count", count as u64);
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
pub fn message_new(room: &str, id: u64, from: &[u8], content: &[u8], ts_ms: u64) -> Vec<u8> {
    // The fixed text is 63 bytes, the numbers at most 20 each; a room name escapes to at
    // most 6 bytes a byte. Kept messages keep their buffer, so it must not be oversized.
    let mut o = Vec::with_capacity(103 + room.len() * 6 + from.len() + content.len());
    o.extend_from_slice(b"{\"type\":\"message:new\",\"room\":");
    push_str(&mut o, room);
    o.extend_from_slice(b",\"id\":");
    push_u64(&mut o, id);
    o.extend_from_slice(b",\"from\":");
    o.extend_from_slice(from);
    o.extend_from_slice(b",\"content\":");
    o.extend_from_slice(content);
    o.extend_from_slice(b",\"ts\":");
    push_u64(&mut o, ts_ms);
    o.push(b'}');
    o.shrink_to_fit();
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
            payload(&established(7, 1, None)),
            json!({"type":"connection:established","connectionId":7,"shard":1})
        );
        let alice = br#"{"userId":"u1","username":"alice"}"#;
        assert_eq!(
            payload(&established(7, 1, Some(alice))),
            json!({"type":"connection:established","connectionId":7,"shard":1,
                   "user":{"userId":"u1","username":"alice"}})
        );
        let m = message_new("a", 1, alice, b"\"hi\"", 5);
        assert_eq!(
            payload(&joined(
                "a",
                3,
                [&alice[..]].into_iter(),
                2,
                [&m[..]].into_iter()
            )),
            json!({"type":"room:joined","room":"a","members":3,
                   "users":[{"userId":"u1","username":"alice"}],"more":2,
                   "messages":[{"type":"message:new","room":"a","id":1,
                                "from":{"userId":"u1","username":"alice"},"content":"hi","ts":5}]})
        );
        assert_eq!(
            payload(&user_moved(false, "a", alice)),
            json!({"type":"room:user_left","room":"a","userId":"u1","username":"alice"})
        );
        assert_eq!(
            payload(&presence_update(alice, "away", 9)),
            json!({"type":"presence:update","userId":"u1","username":"alice","status":"away","lastSeen":9})
        );
        assert_eq!(
            payload(&auth_success(alice, Some(b"1"))),
            json!({"type":"auth:success","userId":"u1","username":"alice","ref":1})
        );
        let mut e = Vec::new();
        room_entry(&mut e, "a", "d", 2, true, None, 4);
        assert_eq!(
            payload(&room_list([&e[..]].into_iter(), false, None)),
            json!({"type":"room:list","truncated":false,"rooms":[
                {"room":"a","description":"d","members":2,"hasPassword":true,"maxUsers":null,"unread":4}]})
        );
        assert_eq!(
            payload(&notification_new(
                br#"{"id":1,"kind":"direct","title":"t","body":"b","ts":3}"#
            )),
            json!({"type":"notification:new","id":1,"kind":"direct","title":"t","body":"b","ts":3})
        );
        assert_eq!(
            payload(&typing_update("a", [&alice[..]].into_iter(), 0)),
            json!({"type":"typing:update","room":"a","users":[{"userId":"u1","username":"alice"}],"more":0})
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
        let from = br#"{"userId":"guest:9","username":"guest-9"}"#;
        let m1 = message_new("r", 1, from, br#"{"a":[1]}"#, 100);
        let m2 = message_new("r", 2, from, br#""two""#, 101);
        let v: Value = serde_json::from_slice(&m1).unwrap();
        assert_eq!(
            v,
            json!({"type":"message:new","room":"r","id":1,
                   "from":{"userId":"guest:9","username":"guest-9"},"content":{"a":[1]},"ts":100})
        );
        assert_eq!(payload(&batch(&[&m1])), v);
        let b = payload(&batch(&[&m1, &m2]));
        assert_eq!(b["type"], "batch");
        assert_eq!(b["messages"][1]["content"], "two");
    }
}
