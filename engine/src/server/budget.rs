//! Request budgets: every client message is charged a cost (by type and size) to three token
//! buckets, the connection's, its user's (all their devices on this shard) and its source
//! address's (all its connections on this shard), and refused with `rate_limited` when any is
//! spent. Repeats that change nothing (typing again, the same status, a read mark that does
//! not advance) are conflated: free, acknowledged, and sent nowhere.
//!
//! Invariants: a message is charged to all three budgets or to none; `addresses` holds an
//! entry exactly for the addresses with connections on this shard, so it is bounded by them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use super::shard::Shard;
use crate::limits::{CONVERSATION_TRACKED_ROOMS_MAX, REQUEST_COST_BYTES, TYPING_REFRESH_MIN};
use crate::protocol::message::{AppError, ClientMessage};
use crate::users::{RateLimit, Status, TokenBucket};

/// The cost of a client message in budget units: its type's base cost, plus one unit per
/// [`REQUEST_COST_BYTES`] of its text. Queries that make large answers cost more.
pub fn cost(message: Option<&ClientMessage<'_>>, text_bytes: usize) -> u32 {
    let base = match message {
        None => 1, // Malformed: it still took parsing.
        Some(m) => match m {
            ClientMessage::Login { .. } => 5,
            ClientMessage::Create { .. } => 10,
            ClientMessage::List => 10,
            ClientMessage::Join { .. } => 5,
            ClientMessage::Leave { .. } => 1,
            ClientMessage::Send { .. } | ClientMessage::Direct { .. } => 1,
            ClientMessage::History { limit, .. } => 5 + (*limit as u32) / 4,
            ClientMessage::PresenceList { .. } => 5,
            ClientMessage::Read { .. } | ClientMessage::Typing { .. } => 1,
            ClientMessage::Presence { .. } => 2,
            ClientMessage::NotificationList => 5,
            ClientMessage::NotificationRead { ids } => 1 + ids.len() as u32 / 100,
        },
    };
    base + (text_bytes / REQUEST_COST_BYTES) as u32
}

/// The budget of one source address on a shard.
#[derive(Debug)]
pub struct AddressBudget {
    pub bucket: TokenBucket,
    /// This shard's connections from the address.
    pub conns: u32,
}

/// What one connection last sent of the conflatable messages, per room it talks in.
#[derive(Debug, Default)]
pub struct Conversation {
    /// (room, typing, when a `typing:start` was last forwarded).
    typing: Vec<(Box<str>, bool, Instant)>,
    /// (room, newest id marked read).
    read: Vec<(Box<str>, u64)>,
}

impl Conversation {
    /// Whether `typing:{start|stop}` in `room` changes nothing the room does not know: a stop
    /// when not typing, or a start refreshed less than [`TYPING_REFRESH_MIN`] ago.
    fn typing_redundant(&self, room: &str, on: bool, now: Instant) -> bool {
        match self.typing.iter().find(|(r, ..)| &**r == room) {
            Some(&(_, was_on, at)) if on => was_on && now.duration_since(at) < TYPING_REFRESH_MIN,
            Some(&(_, was_on, _)) => !was_on,
            None => !on,
        }
    }

    fn note_typing(&mut self, room: &str, on: bool, now: Instant) {
        match self.typing.iter_mut().find(|(r, ..)| &**r == room) {
            Some(entry) => *entry = (entry.0.clone(), on, now),
            None => push_bounded(&mut self.typing, (room.into(), on, now)),
        }
    }

    /// Sending a message ends typing in its room (the owner does the same).
    pub fn sent_message(&mut self, room: &str) {
        if let Some(entry) = self.typing.iter_mut().find(|(r, ..)| &**r == room) {
            entry.1 = false;
        }
    }

    fn read_redundant(&self, room: &str, up_to: u64) -> bool {
        self.read
            .iter()
            .any(|(r, mark)| &**r == room && *mark >= up_to)
    }

    fn note_read(&mut self, room: &str, up_to: u64) {
        match self.read.iter_mut().find(|(r, _)| &**r == room) {
            Some(entry) => entry.1 = up_to,
            None => push_bounded(&mut self.read, (room.into(), up_to)),
        }
    }
}

/// Appends to a list of at most [`CONVERSATION_TRACKED_ROOMS_MAX`], forgetting the oldest.
fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= CONVERSATION_TRACKED_ROOMS_MAX {
        list.remove(0);
    }
    list.push(item);
}

/// Takes `cost` from the bucket in `slot`, made full on first use. Err: time to wait.
fn take(
    slot: &mut Option<TokenBucket>,
    limit: &RateLimit,
    cost: u32,
    now: Instant,
) -> Result<(), u64> {
    slot.get_or_insert_with(|| TokenBucket::new(limit, now))
        .take_n(limit, now, cost)
        .map_err(|wait| wait.as_millis() as u64 + 1)
}

impl Shard {
    /// Whether `message` from connection `key` changes nothing: then it is acknowledged and
    /// dropped, free (counted in `conflated`).
    pub(super) fn conflated(&self, key: usize, message: &ClientMessage<'_>, now: Instant) -> bool {
        let conn = &self.conns[key];
        let redundant = match *message {
            ClientMessage::Typing { room, on } => conn.conversation.typing_redundant(room, on, now),
            ClientMessage::Read { room, up_to } => conn.conversation.read_redundant(room, up_to),
            ClientMessage::Presence { status } => conn
                .authenticated_user()
                .and_then(|u| self.local_users.get(&*u.id))
                .is_some_and(|local| Status::parse_settable(status) == Some(local.status)),
            _ => false,
        };
        if redundant {
            self.stats.conflated.fetch_add(1, RELAXED);
        }
        redundant
    }

    /// Remembers what connection `key` told its rooms, once `message` was accepted.
    pub(super) fn remember(&mut self, key: usize, message: &ClientMessage<'_>, now: Instant) {
        let conv = &mut self.conns[key].conversation;
        match *message {
            ClientMessage::Typing { room, on } => conv.note_typing(room, on, now),
            ClientMessage::Read { room, up_to } => conv.note_read(room, up_to),
            ClientMessage::Send { room, .. } => conv.sent_message(room),
            _ => {}
        }
    }

    /// Charges `cost` to connection `key`'s budgets: its own, its user's, its address's.
    pub(super) fn charge(&mut self, key: usize, cost: u32, now: Instant) -> Result<(), AppError> {
        let limits = self.budgets;
        let refused =
            |budget: &'static str, retry_ms: u64| Err(AppError::Throttled { budget, retry_ms });
        let conn = &mut self.conns[key];
        if let Some(limit) = &limits.connection {
            if let Err(retry) = take(&mut conn.request_bucket, limit, cost, now) {
                self.stats.rate_limited.fetch_add(1, RELAXED);
                return refused("connection", retry);
            }
        }
        if let (Some(limit), Some(user)) = (&limits.user, conn.authenticated_user()) {
            let local = self
                .local_users
                .get_mut(&*user.id)
                .expect("a user's connection");
            if let Err(retry) = take(&mut local.bucket, limit, cost, now) {
                self.stats.rate_limited.fetch_add(1, RELAXED);
                return refused("user", retry);
            }
        }
        if let (Some(limit), Some(ip)) = (&limits.address, conn.ip) {
            let budget = self.addresses.get_mut(&ip).expect("a connection's address");
            if let Err(wait) = budget.bucket.take_n(limit, now, cost) {
                self.stats.rate_limited.fetch_add(1, RELAXED);
                return refused("address", wait.as_millis() as u64 + 1);
            }
        }
        Ok(())
    }

    /// Counts a new connection from `ip` in its address's budget.
    pub(super) fn address_joined(&mut self, ip: IpAddr, now: Instant) {
        let limit = self.budgets.address.unwrap_or(RateLimit::GAME);
        self.addresses
            .entry(ip)
            .or_insert_with(|| AddressBudget {
                bucket: TokenBucket::new(&limit, now),
                conns: 0,
            })
            .conns += 1;
    }

    /// Forgets a connection from `ip`; the address's entry goes with its last connection.
    pub(super) fn address_left(&mut self, ip: IpAddr) {
        if let Some(budget) = self.addresses.get_mut(&ip) {
            budget.conns -= 1;
            if budget.conns == 0 {
                self.addresses.remove(&ip);
            }
        }
    }
}

/// The three request budgets of a shard (None: that one is off).
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub connection: Option<RateLimit>,
    pub user: Option<RateLimit>,
    pub address: Option<RateLimit>,
}

/// The addresses with connections on a shard, and their budgets.
pub type Addresses = HashMap<IpAddr, AddressBudget>;

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn costs_grow_with_the_answer_and_the_size() {
        assert_eq!(cost(Some(&ClientMessage::List), 10), 10);
        let history = ClientMessage::History {
            room: "a",
            limit: 100,
            before: None,
        };
        assert_eq!(cost(Some(&history), 10), 30);
        assert_eq!(cost(None, 3 * REQUEST_COST_BYTES), 4);
    }

    #[test]
    fn typing_and_read_repeats_are_redundant() {
        let t0 = Instant::now();
        let mut c = Conversation::default();
        assert!(c.typing_redundant("r", false, t0), "stop without start");
        assert!(!c.typing_redundant("r", true, t0));
        c.note_typing("r", true, t0);
        assert!(c.typing_redundant("r", true, t0 + Duration::from_millis(100)));
        assert!(!c.typing_redundant("r", true, t0 + TYPING_REFRESH_MIN));
        assert!(!c.typing_redundant("r", false, t0));
        c.sent_message("r");
        assert!(!c.typing_redundant("r", true, t0), "a message ended typing");
        assert!(!c.read_redundant("r", 5));
        c.note_read("r", 5);
        assert!(c.read_redundant("r", 5));
        assert!(c.read_redundant("r", 3));
        assert!(!c.read_redundant("r", 6));
        for i in 0..CONVERSATION_TRACKED_ROOMS_MAX + 5 {
            c.note_read(&format!("room-{i}"), 1);
        }
        assert_eq!(c.read.len(), CONVERSATION_TRACKED_ROOMS_MAX);
    }
}
