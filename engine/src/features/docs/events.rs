//! The documents feature's events, each encoded straight into a complete WebSocket text
//! frame: `doc:state`, `doc:ack`, `doc:operation`, `doc:operations`, `doc:user_joined`,
//! `doc:user_left`, `doc:left`, `cursor:update`, `cursor:remove`.
//!
//! Invariant: a frame names the document by its public name (the topic's without
//! `doc/`), and positions count code points, as clients sent them.

use bytes::Bytes;
use ropey::Rope;

use super::cursor::Cursor;
use super::document::Change;
use super::operation::Op;
use crate::identity::User;
use crate::protocol::event::{frame, open, push_num, push_ref};
use crate::protocol::json::{push_str, push_str_body};

fn push_doc(o: &mut Vec<u8>, doc: &str) {
    o.extend_from_slice(b",\"doc\":");
    push_str(o, doc);
}

/// `[{"operation":..},..]`
pub fn push_ops(o: &mut Vec<u8>, ops: &[Op]) {
    o.push(b'[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            o.push(b',');
        }
        match op {
            Op::Insert { pos, text, .. } => {
                o.extend_from_slice(b"{\"operation\":\"insert\"");
                push_num(o, b"position", *pos as u64);
                o.extend_from_slice(b",\"content\":");
                push_str(o, text);
            }
            Op::Delete { pos, len } => {
                o.extend_from_slice(b"{\"operation\":\"delete\"");
                push_num(o, b"position", *pos as u64);
                push_num(o, b"length", *len as u64);
            }
        }
        o.push(b'}');
    }
    o.push(b']');
}

/// `{"connectionId":..,"userId":..,"username":..}`
fn push_editor(o: &mut Vec<u8>, conn_id: u64, user: &User) {
    o.extend_from_slice(b"{\"connectionId\":");
    crate::protocol::json::push_u64(o, conn_id);
    o.push(b',');
    let json = user.json();
    o.extend_from_slice(&json[1..]);
}

/// `doc:state {doc, content, version, users, more}`: the whole document.
pub fn state<'a>(
    doc: &str,
    text: &Rope,
    version: u64,
    editors: impl Iterator<Item = (u64, &'a User)>,
    more: usize,
    reference: Option<&[u8]>,
) -> Bytes {
    frame(|o| {
        open(o, "doc:state");
        push_doc(o, doc);
        o.extend_from_slice(b",\"content\":\"");
        for chunk in text.chunks() {
            push_str_body(o, chunk);
        }
        o.push(b'"');
        push_num(o, b"version", version);
        o.extend_from_slice(b",\"users\":[");
        for (i, (id, user)) in editors.enumerate() {
            if i > 0 {
                o.push(b',');
            }
            push_editor(o, id, user);
        }
        o.push(b']');
        push_num(o, b"more", more as u64);
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `doc:ack {doc, version, seq?, ref?}`: the author's change (its `seq`, when it came with
/// one) is `version`.
pub fn ack(doc: &str, version: u64, seq: Option<u64>, reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, "doc:ack");
        push_doc(o, doc);
        push_num(o, b"version", version);
        if let Some(seq) = seq {
            push_num(o, b"seq", seq);
        }
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `doc:operation {doc, version, ops, author}`: another editor's change, as applied.
pub fn operation(doc: &str, version: u64, ops: &[Op], author: &User) -> Bytes {
    frame(|o| {
        open(o, "doc:operation");
        push_doc(o, doc);
        push_num(o, b"version", version);
        o.extend_from_slice(b",\"ops\":");
        push_ops(o, ops);
        o.extend_from_slice(b",\"author\":");
        o.extend_from_slice(author.json());
        o.push(b'}');
    })
}

/// One kept change: `{"version":..,"ops":[..],"author":{..},"client"?:..,"seq"?:..}`.
pub fn push_change(o: &mut Vec<u8>, c: &Change) {
    o.extend_from_slice(b"{\"version\":");
    crate::protocol::json::push_u64(o, c.version);
    o.extend_from_slice(b",\"ops\":");
    push_ops(o, &c.ops);
    o.extend_from_slice(b",\"author\":");
    o.extend_from_slice(c.author.json());
    if let Some((client, seq)) = &c.origin {
        o.extend_from_slice(b",\"client\":");
        push_str(o, client);
        push_num(o, b"seq", *seq);
    }
    o.push(b'}');
}

/// `doc:operations {doc, from, changes}`: the changes after version `from`, oldest first
/// (pre-encoded by [`push_change`]).
pub fn operations(doc: &str, from: u64, changes: &[u8], reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, "doc:operations");
        push_doc(o, doc);
        push_num(o, b"from", from);
        o.extend_from_slice(b",\"changes\":[");
        o.extend_from_slice(changes);
        o.push(b']');
        push_ref(o, reference);
        o.push(b'}');
    })
}

/// `doc:user_joined` or `doc:user_left {doc, connectionId, userId, username}`.
pub fn user_moved(joined: bool, doc: &str, conn_id: u64, user: &User) -> Bytes {
    frame(|o| {
        open(
            o,
            if joined {
                "doc:user_joined"
            } else {
                "doc:user_left"
            },
        );
        push_doc(o, doc);
        push_num(o, b"connectionId", conn_id);
        o.push(b',');
        let json = user.json();
        o.extend_from_slice(&json[1..]);
    })
}

/// `doc:left {doc}`.
pub fn left(doc: &str, reference: Option<&[u8]>) -> Bytes {
    frame(|o| {
        open(o, "doc:left");
        push_doc(o, doc);
        push_ref(o, reference);
        o.push(b'}');
    })
}

fn push_f64(o: &mut Vec<u8>, key: &[u8], v: f64) {
    use std::io::Write;
    o.extend_from_slice(b",\"");
    o.extend_from_slice(key);
    o.extend_from_slice(b"\":");
    write!(o, "{v}").expect("writing to a Vec cannot fail");
}

/// `cursor:update {doc, version, cursors: [{connectionId, userId, username, x, y | position,
/// anchor}]}`: carets' positions are in document version `version`.
pub fn cursor_update<'a>(
    doc: &str,
    version: u64,
    cursors: impl Iterator<Item = (u64, &'a User, &'a Cursor)>,
) -> Bytes {
    frame(|o| {
        open(o, "cursor:update");
        push_doc(o, doc);
        push_num(o, b"version", version);
        o.extend_from_slice(b",\"cursors\":[");
        for (i, (id, user, cursor)) in cursors.enumerate() {
            if i > 0 {
                o.push(b',');
            }
            push_editor(o, id, user);
            o.pop(); // the editor's closing brace: the cursor's fields follow
            match cursor {
                Cursor::Point { x, y } => {
                    push_f64(o, b"x", *x);
                    push_f64(o, b"y", *y);
                }
                Cursor::Text { position, anchor } => {
                    push_num(o, b"position", *position as u64);
                    push_num(o, b"anchor", anchor.unwrap_or(*position) as u64);
                }
            }
            o.push(b'}');
        }
        o.extend_from_slice(b"]}");
    })
}

/// `cursor:remove {doc, connectionId}`: a member with a cursor left.
pub fn cursor_remove(doc: &str, conn_id: u64) -> Bytes {
    frame(|o| {
        open(o, "cursor:remove");
        push_doc(o, doc);
        push_num(o, b"connectionId", conn_id);
        o.push(b'}');
    })
}
