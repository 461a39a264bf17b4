//! A user's notifications, kept by the user's owner shard: newest last, bounded, each with a
//! read flag.
//!
//! Invariants: ids increase per user; at most `max` are kept (the oldest go first);
//! `unread` always equals the number of kept notifications not marked read.

use std::collections::VecDeque;

use crate::limits::NOTIFICATION_BODY_CHARS_MAX;
use crate::protocol::json::{push_str, push_u64};

/// A notification's text for a message's `content` (raw JSON): a string's text, anything
/// else as JSON, cut to [`NOTIFICATION_BODY_CHARS_MAX`] characters.
pub fn preview(content: &[u8]) -> String {
    let text = serde_json::from_slice::<String>(content)
        .unwrap_or_else(|_| String::from_utf8_lossy(content).into_owned());
    if text.chars().count() <= NOTIFICATION_BODY_CHARS_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(NOTIFICATION_BODY_CHARS_MAX - 1).collect();
    cut.push('…');
    cut
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub id: u64,
    pub kind: Box<str>,
    pub title: Box<str>,
    pub body: Box<str>,
    pub ts: u64,
    pub read: bool,
}

impl Notification {
    /// `{"id":..,"kind":..,"title":..,"body":..,"ts":..[,"read":..]}`.
    pub fn write_json(&self, out: &mut Vec<u8>, with_read: bool) {
        out.extend_from_slice(b"{\"id\":");
        push_u64(out, self.id);
        out.extend_from_slice(b",\"kind\":");
        push_str(out, &self.kind);
        out.extend_from_slice(b",\"title\":");
        push_str(out, &self.title);
        out.extend_from_slice(b",\"body\":");
        push_str(out, &self.body);
        out.extend_from_slice(b",\"ts\":");
        push_u64(out, self.ts);
        if with_read {
            out.extend_from_slice(if self.read {
                b",\"read\":true"
            } else {
                b",\"read\":false"
            });
        }
        out.push(b'}');
    }
}

#[derive(Debug, Default)]
pub struct Notifications {
    list: VecDeque<Notification>,
    next_id: u64,
    unread: usize,
}

impl Notifications {
    /// Adds a notification; returns it and whether an old one was dropped to make room.
    pub fn push(
        &mut self,
        kind: &str,
        title: &str,
        body: &str,
        ts: u64,
        max: usize,
    ) -> (&Notification, bool) {
        assert!(max > 0, "a user keeps at least one notification");
        let mut dropped = false;
        if self.list.len() == max {
            let old = self.list.pop_front().expect("full");
            if !old.read {
                self.unread -= 1;
            }
            dropped = true;
        }
        self.next_id += 1;
        self.list.push_back(Notification {
            id: self.next_id,
            kind: kind.into(),
            title: title.into(),
            body: body.into(),
            ts,
            read: false,
        });
        self.unread += 1;
        (self.list.back().expect("just pushed"), dropped)
    }

    /// Marks the notifications with these ids read; unknown ids are ignored.
    pub fn mark_read(&mut self, ids: &[u64]) {
        for n in self.list.iter_mut() {
            if !n.read && ids.contains(&n.id) {
                n.read = true;
                self.unread -= 1;
            }
        }
    }

    pub fn unread(&self) -> usize {
        self.unread
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Notification> {
        self.list.iter().rev()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews() {
        assert_eq!(preview(br#""hi @bob""#), "hi @bob");
        assert_eq!(preview(br#"{"x":1}"#), r#"{"x":1}"#);
        let long = format!("\"{}\"", "a".repeat(500));
        assert_eq!(
            preview(long.as_bytes()).chars().count(),
            NOTIFICATION_BODY_CHARS_MAX
        );
    }

    #[test]
    fn bounded_with_unread_count() {
        let mut n = Notifications::default();
        for i in 0..5 {
            let (_, dropped) = n.push("mention", "t", "b", i, 3);
            assert_eq!(dropped, i >= 3);
        }
        assert_eq!(n.unread(), 3);
        let ids: Vec<u64> = n.newest_first().map(|x| x.id).collect();
        assert_eq!(ids, [5, 4, 3]);
        n.mark_read(&[4, 99]);
        assert_eq!(n.unread(), 2);
        n.mark_read(&[4]);
        assert_eq!(n.unread(), 2);
        let mut out = Vec::new();
        n.newest_first().nth(1).unwrap().write_json(&mut out, true);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["read"], true);
        assert_eq!(v["kind"], "mention");
    }
}
