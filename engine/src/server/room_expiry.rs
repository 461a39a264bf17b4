//! Empty rooms on their owner: each is forgotten (with its history) `--room-ttl-secs` after
//! its last member left, and on a full room table the longest-empty room makes way for a new
//! one, so no one can lock names out of a shard by filling it.
//!
//! Invariant: `empty_rooms` lists owned rooms in the order they became empty (all TTLs have
//! one length, so also in expiry order); an entry is acted on only if its room still has the
//! same name and key and has stayed empty since the entry's time. Stale entries are skipped,
//! and every room has at most one live entry, so the list is bounded by the rooms a shard
//! keeps plus the emptyings since the last expiry pass.

use std::sync::Arc;
use std::time::Instant;

use super::shard::Shard;
use crate::limits::ROOMS_EXPIRED_PER_TICK_MAX;

/// One room that became empty: when, its key and its name.
pub type EmptyRoom = (Instant, usize, Arc<str>);

impl Shard {
    /// Owned room `rk` may have just become empty: if it has no member anywhere, it starts its
    /// TTL now.
    pub(super) fn note_if_empty(&mut self, rk: usize, now: Instant) {
        let Some(room) = self.rooms.get_mut(rk) else {
            return;
        };
        let Some(o) = room.owner.as_mut() else {
            return;
        };
        if !o.members.is_empty() || o.empty_since.is_some() {
            return;
        }
        o.empty_since = Some(now);
        let name = room.name.clone();
        self.empty_rooms.push_back((now, rk, name));
    }

    /// Whether the entry still describes its room: same key and name, empty since then.
    fn still_empty(&self, (at, rk, name): &EmptyRoom) -> bool {
        self.rooms.key(name) == Some(*rk)
            && self
                .rooms
                .get(*rk)
                .and_then(|r| r.owner.as_ref())
                .is_some_and(|o| o.members.is_empty() && o.empty_since == Some(*at))
    }

    /// Forgets rooms empty for `--room-ttl-secs` (at most [`ROOMS_EXPIRED_PER_TICK_MAX`] per
    /// call, so one tick stays short).
    pub(super) fn expire_rooms(&mut self, now: Instant) {
        let ttl = self.config.room_ttl();
        for _ in 0..ROOMS_EXPIRED_PER_TICK_MAX {
            let Some(entry) = self.empty_rooms.front() else {
                return;
            };
            if now.saturating_duration_since(entry.0) < ttl {
                return;
            }
            let entry = self.empty_rooms.pop_front().expect("peeked");
            if self.still_empty(&entry) && self.forget_room(entry.1, now) {
                self.stats.rooms_expired.fetch_add(1, RELAXED);
            }
        }
    }

    /// Makes way in a full room table: forgets the room empty the longest. False when every
    /// room has members (then the table is truly full).
    pub(super) fn evict_empty_room(&mut self, now: Instant) -> bool {
        while let Some(entry) = self.empty_rooms.pop_front() {
            if self.still_empty(&entry) && self.forget_room(entry.1, now) {
                self.stats.rooms_evicted.fetch_add(1, RELAXED);
                return true;
            }
        }
        false
    }

    /// Drops owned room `rk`, with its history, and gives its creator's quota back; true
    /// when it did. A batch still in flight keeps the room for another TTL.
    fn forget_room(&mut self, rk: usize, now: Instant) -> bool {
        let room = self.rooms.get_mut(rk).expect("a live entry");
        let o = room.owner.as_mut().expect("owned");
        if !room.members.is_empty() || !o.batcher.is_idle() {
            o.empty_since = None;
            self.note_if_empty(rk, now);
            return false;
        }
        let room = self.rooms.remove(rk);
        let o = room.owner.expect("owned");
        self.typing_rooms.remove(&room.name);
        if let Some(by) = o.created_by {
            self.creator_left(&by);
        }
        self.stats
            .history_bytes
            .store(self.rooms.history_bytes() as u64, RELAXED);
        self.count_rooms();
        true
    }

    /// Room creator `by` has one room fewer on this shard.
    pub(super) fn creator_left(&mut self, by: &str) {
        if let Some(n) = self.rooms_created.get_mut(by) {
            *n -= 1;
            if *n == 0 {
                self.rooms_created.remove(by);
            }
        }
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
