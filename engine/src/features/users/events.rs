//! The users feature's events: logging in, presence, direct messages and notifications,
//! each encoded straight into a complete WebSocket text frame.
//!
//! Invariant: every frame can be queued to any number of connections as is.

use bytes::Bytes;

use crate::protocol::event::{
    frame, open, push_array, push_num, push_ref, push_user_fields, refusal,
};
use crate::protocol::json::push_str;

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
    refusal("auth:error", code, message, reference)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::payload;
    use serde_json::json;

    #[test]
    fn users_events_are_valid_json() {
        let alice = br#"{"userId":"u1","username":"alice"}"#;
        assert_eq!(
            payload(&presence_update(alice, "away", 9)),
            json!({"type":"presence:update","userId":"u1","username":"alice","status":"away","lastSeen":9})
        );
        assert_eq!(
            payload(&auth_success(alice, Some(b"1"))),
            json!({"type":"auth:success","userId":"u1","username":"alice","ref":1})
        );
        assert_eq!(
            payload(&notification_new(
                br#"{"id":1,"kind":"direct","title":"t","body":"b","ts":3}"#
            )),
            json!({"type":"notification:new","id":1,"kind":"direct","title":"t","body":"b","ts":3})
        );
    }
}
