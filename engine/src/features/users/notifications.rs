//! A user's notifications, kept by the user's owner shard: newest last, bounded, each with a
//! read flag and the user who caused it.
//!
//! Invariants: ids increase per user; at most `limits.kept` are kept (the oldest go first),
//! and at most `limits.per_sender` from any one sender (their oldest goes first), so one
//! sender cannot push out everyone else's; `unread` always equals the number of kept
//! notifications not marked read.

use std::collections::VecDeque;

use crate::features::users::limits::NOTIFICATION_BODY_CHARS_MAX;
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
    /// The user id whose message caused it; None for the backend's (`POST /api/notify`),
    /// which no quota limits.
    pub from: Option<Box<str>>,
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

/// How many notifications a user keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationLimits {
    /// In all.
    pub kept: usize,
    /// From one sender.
    pub per_sender: usize,
}

/// What made room for a new notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Nothing,
    /// The user's oldest notification: they had `kept`.
    Oldest,
    /// The sender's oldest notification to the user: the sender had `per_sender` kept.
    SendersOldest,
}

/// A notification to keep.
#[derive(Debug, Clone, Copy)]
pub struct NewNotification<'a> {
    pub from: Option<&'a str>,
    pub kind: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub ts: u64,
}

impl Notifications {
    /// Adds a notification; returns it and what was dropped to make room.
    pub fn push(
        &mut self,
        new: NewNotification<'_>,
        limits: NotificationLimits,
    ) -> (&Notification, Dropped) {
        assert!(
            limits.kept > 0 && limits.per_sender > 0,
            "a user keeps at least one notification"
        );
        let mut dropped = Dropped::Nothing;
        if let Some(from) = new.from {
            let of_sender = |n: &Notification| n.from.as_deref() == Some(from);
            if self.list.iter().filter(|n| of_sender(n)).count() >= limits.per_sender {
                let oldest = self.list.iter().position(of_sender).expect("counted");
                self.drop_at(oldest);
                dropped = Dropped::SendersOldest;
            }
        }
        if dropped == Dropped::Nothing && self.list.len() >= limits.kept {
            self.drop_at(0);
            dropped = Dropped::Oldest;
        }
        self.next_id += 1;
        self.list.push_back(Notification {
            id: self.next_id,
            from: new.from.map(Into::into),
            kind: new.kind.into(),
            title: new.title.into(),
            body: new.body.into(),
            ts: new.ts,
            read: false,
        });
        self.unread += 1;
        (self.list.back().expect("just pushed"), dropped)
    }

    fn drop_at(&mut self, i: usize) {
        let old = self.list.remove(i).expect("in the list");
        if !old.read {
            self.unread -= 1;
        }
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

    fn new<'a>(from: Option<&'a str>, ts: u64) -> NewNotification<'a> {
        NewNotification {
            from,
            kind: "mention",
            title: "t",
            body: "b",
            ts,
        }
    }

    #[test]
    fn bounded_with_unread_count() {
        let mut n = Notifications::default();
        let limits = NotificationLimits {
            kept: 3,
            per_sender: 3,
        };
        for i in 0..5 {
            let (_, dropped) = n.push(new(None, i), limits);
            let expected = if i >= 3 {
                Dropped::Oldest
            } else {
                Dropped::Nothing
            };
            assert_eq!(dropped, expected);
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

    #[test]
    fn one_sender_replaces_their_own_oldest_instead_of_others() {
        let mut n = Notifications::default();
        let limits = NotificationLimits {
            kept: 10,
            per_sender: 3,
        };
        n.push(new(Some("carol"), 0), limits);
        n.push(new(None, 1), limits);
        for i in 0..200 {
            let (_, dropped) = n.push(new(Some("mallory"), 2 + i), limits);
            let expected = if i >= 3 {
                Dropped::SendersOldest
            } else {
                Dropped::Nothing
            };
            assert_eq!(dropped, expected, "{i}");
        }
        let kept: Vec<(Option<&str>, u64)> = n
            .newest_first()
            .map(|x| (x.from.as_deref(), x.ts))
            .collect();
        assert_eq!(
            kept,
            [
                (Some("mallory"), 201),
                (Some("mallory"), 200),
                (Some("mallory"), 199),
                (None, 1),
                (Some("carol"), 0)
            ]
        );
        assert_eq!(n.unread(), 5);
        // A replaced notification that was read leaves `unread` as it was; the new one adds.
        let oldest_mallory = n.newest_first().nth(2).unwrap().id;
        n.mark_read(&[oldest_mallory]);
        assert_eq!(n.unread(), 4);
        n.push(new(Some("mallory"), 300), limits);
        assert_eq!(n.unread(), 5);
        assert!(n.newest_first().all(|x| x.id != oldest_mallory));
        // Many senders still share the overall bound.
        for (i, who) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            n.push(new(Some(who), 400 + i as u64), limits);
        }
        assert_eq!(n.newest_first().count(), 10);
        assert_eq!(
            n.newest_first().last().unwrap().from.as_deref(),
            Some("mallory")
        );
    }
}
