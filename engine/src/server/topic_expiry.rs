//! Empty topics on their owner: each is forgotten (with its history) `--room-ttl-secs` after
//! its last member left, and on a full topic table the longest-empty topic makes way for a new
//! one, so no one can lock names out of a shard by filling it.
//!
//! Invariant: `empty_topics` lists owned topics in the order they became empty (all TTLs have
//! one length, so also in expiry order); an entry is acted on only if its topic still has the
//! same name and key and has stayed empty since the entry's time. Stale entries are skipped,
//! and every topic has at most one live entry, so the list is bounded by the topics a shard
//! keeps plus the emptyings since the last expiry pass.

use std::sync::Arc;
use std::time::Instant;

use super::shard::Shard;
use crate::limits::ROOMS_EXPIRED_PER_TICK_MAX;

/// One topic that became empty: when, its key and its name.
pub type EmptyTopic = (Instant, usize, Arc<str>);

impl Shard {
    /// Owned topic `rk` may have just become empty: if it has no member anywhere, it starts its
    /// TTL now.
    pub fn note_if_empty(&mut self, rk: usize, now: Instant) {
        let Some(room) = self.topics.get_mut(rk) else {
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
        self.empty_topics.push_back((now, rk, name));
    }

    /// Whether the entry still describes its topic: same key and name, empty since then.
    fn still_empty(&self, (at, rk, name): &EmptyTopic) -> bool {
        self.topics.key(name) == Some(*rk)
            && self
                .topics
                .get(*rk)
                .and_then(|r| r.owner.as_ref())
                .is_some_and(|o| o.members.is_empty() && o.empty_since == Some(*at))
    }

    /// Forgets topics empty for `--room-ttl-secs` (at most [`ROOMS_EXPIRED_PER_TICK_MAX`] per
    /// call, so one tick stays short).
    pub(super) fn expire_topics(&mut self, now: Instant) {
        let ttl = self.config.room_ttl();
        for _ in 0..ROOMS_EXPIRED_PER_TICK_MAX {
            let Some(entry) = self.empty_topics.front() else {
                return;
            };
            if now.saturating_duration_since(entry.0) < ttl {
                return;
            }
            let entry = self.empty_topics.pop_front().expect("peeked");
            if self.still_empty(&entry) && self.forget_topic(entry.1, now) {
                self.stats.rooms_expired.fetch_add(1, RELAXED);
            }
        }
    }

    /// Makes way in a full topic table: forgets the topic empty the longest. False when every
    /// topic has members (then the table is truly full).
    pub(super) fn evict_empty_topic(&mut self, now: Instant) -> bool {
        while let Some(entry) = self.empty_topics.pop_front() {
            if self.still_empty(&entry) && self.forget_topic(entry.1, now) {
                self.stats.rooms_evicted.fetch_add(1, RELAXED);
                return true;
            }
        }
        false
    }

    /// Drops owned topic `rk`, with its history, and tells its feature; true when it did.
    /// A batch still in flight keeps the topic for another TTL.
    fn forget_topic(&mut self, rk: usize, now: Instant) -> bool {
        let room = self.topics.get_mut(rk).expect("a live entry");
        let o = room.owner.as_mut().expect("owned");
        if !room.members.is_empty() || !o.batcher.is_idle() {
            o.empty_since = None;
            self.note_if_empty(rk, now);
            return false;
        }
        let topic = self.topics.remove(rk);
        self.topic_dropped(topic);
        self.stats
            .history_bytes
            .store(self.topics.history_bytes() as u64, RELAXED);
        self.count_topics();
        true
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
