//! The chat feature's events: rooms, members, messages, history, read marks, typing and
//! presence lists, each encoded straight into a complete WebSocket text frame (or, for
//! `message:new`, into the JSON a stream keeps and batches).
//!
//! Invariant: every frame can be queued to any number of connections as is.

use bytes::Bytes;

pub use crate::features::users::events::presence_entry;

use crate::protocol::event::{
    frame, open, push_array, push_bool, push_num, push_ref, push_room, push_user_fields,
};
use crate::protocol::json::{push_str, push_u64};

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

/// `room:left {room}`.
pub fn left(room: &str) -> Bytes {
    frame(|o| {
        o.extend_from_slice(b"{\"type\":\"room:left\",\"room\":");
        push_str(o, room);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::payload;
    use serde_json::{json, Value};

    #[test]
    fn chat_events_are_valid_json() {
        let alice = br#"{"userId":"u1","username":"alice"}"#;
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
        let mut e = Vec::new();
        room_entry(&mut e, "a", "d", 2, true, None, 4);
        assert_eq!(
            payload(&room_list([&e[..]].into_iter(), false, None)),
            json!({"type":"room:list","truncated":false,"rooms":[
                {"room":"a","description":"d","members":2,"hasPassword":true,"maxUsers":null,"unread":4}]})
        );
        assert_eq!(
            payload(&typing_update("a", [&alice[..]].into_iter(), 0)),
            json!({"type":"typing:update","room":"a","users":[{"userId":"u1","username":"alice"}],"more":0})
        );
        assert_eq!(payload(&left("a")), json!({"type":"room:left","room":"a"}));
    }

    #[test]
    fn messages_and_batches() {
        use crate::protocol::event::batch;
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
