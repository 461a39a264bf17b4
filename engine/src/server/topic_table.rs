//! The topics a shard knows: owned ones and those of other shards with local members, and the
//! shard's budget for the history its owned topics keep.
//!
//! Invariants: `index` and `rooms` always agree: each topic is reachable by name and by key.
//! `history_bytes` is the sum of the owned topics' `History::bytes` and stays within
//! `history_bytes_max` after every push: the quietest topics (`quiet`, by the stamp of their
//! last kept message) lose their oldest messages first.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use slab::Slab;

use super::topic::Topic;
use crate::features::FeatureId;

#[derive(Debug)]
pub struct TopicTable {
    topics: Slab<Topic>,
    index: HashMap<Arc<str>, usize>,
    history_bytes: usize,
    history_bytes_max: usize,
    /// Owned rooms holding history, as (stamp of their last kept message, key).
    quiet: BTreeSet<(u64, usize)>,
    next_stamp: u64,
    /// Serial of the next topic made (see `Topic::serial`).
    next_serial: u64,
}

impl Default for TopicTable {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl TopicTable {
    /// A table whose owned topics keep at most `history_bytes_max` of history together.
    pub fn new(history_bytes_max: usize) -> Self {
        Self {
            topics: Slab::new(),
            index: HashMap::new(),
            history_bytes: 0,
            history_bytes_max,
            quiet: BTreeSet::new(),
            next_stamp: 1,
            next_serial: 1,
        }
    }

    /// Keeps message `id` in owned room `key`'s history, then trims the quietest rooms'
    /// history until the shard's budget holds. Returns the messages
    /// the budget dropped (the room's own count and byte limits apply inside its history).
    pub fn keep_history(&mut self, key: usize, id: u64, message: Bytes) -> u64 {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let o = self.topics[key]
            .owner
            .as_mut()
            .expect("history on the owner");
        let before = o.history.bytes();
        o.history.push(id, message);
        let after = o.history.bytes();
        self.quiet.remove(&(o.history_stamp, key));
        o.history_stamp = stamp;
        if !o.history.is_empty() {
            self.quiet.insert((stamp, key));
        }
        self.history_bytes = self.history_bytes + after - before;
        self.trim_history(key)
    }

    /// Drops the oldest messages of the quietest rooms while over the budget; room `keep`
    /// (just written) goes last, and keeps its newest message. Returns the messages dropped.
    fn trim_history(&mut self, keep: usize) -> u64 {
        let mut dropped = 0;
        while self.history_bytes > self.history_bytes_max {
            let quietest = self.quiet.iter().find(|(_, k)| *k != keep).copied();
            let (stamp, key) = match quietest {
                Some(entry) => entry,
                None => {
                    let o = self.topics[keep].owner.as_ref().expect("owned");
                    if o.history.len() <= 1 {
                        break;
                    }
                    (o.history_stamp, keep)
                }
            };
            let o = self.topics[key]
                .owner
                .as_mut()
                .expect("owned rooms hold history");
            self.history_bytes -= o.history.pop_oldest();
            dropped += 1;
            if o.history.is_empty() {
                self.quiet.remove(&(stamp, key));
                o.history_stamp = 0;
            }
        }
        dropped
    }

    /// Bytes of history the owned rooms keep together.
    pub fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    pub fn key(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn get(&self, key: usize) -> Option<&Topic> {
        self.topics.get(key)
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Topic> {
        self.topics.get_mut(key)
    }

    /// The key of `name`, making the topic of `feature` (owned: with `make`'s owner state)
    /// when it is not there.
    pub fn get_or_insert_with(
        &mut self,
        name: &str,
        feature: FeatureId,
        make: impl FnOnce() -> Option<super::topic::TopicOwner>,
    ) -> usize {
        if let Some(&k) = self.index.get(name) {
            return k;
        }
        let name: Arc<str> = Arc::from(name);
        let serial = self.next_serial;
        self.next_serial += 1;
        let key = self.topics.insert(Topic {
            name: name.clone(),
            feature,
            serial,
            members: Slab::new(),
            owner: make(),
        });
        self.index.insert(name, key);
        key
    }

    /// Drops the topic at `key` if nothing refers to it any more; returns it when it did.
    pub fn remove_if_disposable(&mut self, key: usize) -> Option<Topic> {
        if self.topics.get(key).is_some_and(Topic::is_disposable) {
            return Some(self.remove(key));
        }
        None
    }

    /// Drops the topic at `key` with its history.
    pub fn remove(&mut self, key: usize) -> Topic {
        let room = self.topics.remove(key);
        self.index.remove(&room.name);
        if let Some(o) = &room.owner {
            self.history_bytes -= o.history.bytes();
            self.quiet.remove(&(o.history_stamp, key));
        }
        room
    }

    pub fn iter(&self) -> impl Iterator<Item = &Topic> {
        self.topics.iter().map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove() {
        let mut t = TopicTable::default();
        let k = t.get_or_insert_with("a", FeatureId::Chat, || None);
        assert_eq!(
            t.get_or_insert_with("a", FeatureId::Chat, || unreachable!()),
            k
        );
        assert_eq!(t.key("a"), Some(k));
        let slot = t.get_mut(k).unwrap().members.insert(7);
        assert!(t.remove_if_disposable(k).is_none());
        assert_eq!(t.len(), 1);
        t.get_mut(k).unwrap().members.remove(slot);
        assert!(t.remove_if_disposable(k).is_some());
        assert!(t.is_empty());
        assert_eq!(t.key("a"), None);
    }

    fn owned(t: &mut TopicTable, name: &str) -> usize {
        use crate::server::topic::TopicOwner;
        use crate::stream::{Batcher, History};
        let o = TopicOwner::new(
            1,
            Batcher::new(std::time::Duration::ZERO, 0),
            History::new(1, 1000, usize::MAX),
        );
        t.get_or_insert_with(name, FeatureId::Chat, || Some(o))
    }

    #[test]
    fn the_shard_history_budget_trims_the_quietest_rooms_first() {
        use crate::stream::history::cost;
        let msg = Bytes::from(vec![b'x'; 100]);
        let one = cost(&msg);
        let mut t = TopicTable::new(5 * one);
        let (a, b, c) = (owned(&mut t, "a"), owned(&mut t, "b"), owned(&mut t, "c"));
        t.keep_history(a, 1, msg.clone());
        t.keep_history(a, 2, msg.clone());
        t.keep_history(b, 1, msg.clone());
        t.keep_history(c, 1, msg.clone());
        t.keep_history(c, 2, msg.clone());
        assert_eq!(t.history_bytes(), 5 * one);
        // Over budget: `a` (quietest) loses its oldest, until empty; then `b`.
        assert_eq!(t.keep_history(c, 3, msg.clone()), 1);
        assert_eq!(t.keep_history(c, 4, msg.clone()), 1);
        let len = |t: &TopicTable, k| t.get(k).unwrap().owner.as_ref().unwrap().history.len();
        assert_eq!((len(&t, a), len(&t, b), len(&t, c)), (0, 1, 4));
        assert_eq!(t.keep_history(c, 5, msg.clone()), 1);
        assert_eq!((len(&t, a), len(&t, b), len(&t, c)), (0, 0, 5));
        // Alone, the room being written loses its own oldest.
        assert_eq!(t.keep_history(c, 6, msg.clone()), 1);
        assert_eq!(t.history_bytes(), 5 * one);
        assert_eq!(len(&t, c), 5);
        t.remove(c);
        assert_eq!(t.history_bytes(), 0);
    }
}
