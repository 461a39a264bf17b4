//! The users a shard owns: each user's connections per shard, idle devices, chosen and
//! effective status, the rooms they are in, and their notifications.
//!
//! Invariants: a record's `total` is the sum of `per_shard`; `idle <= total`; the effective
//! status is `Offline` exactly when `total == 0`, and `Away` when every device is idle and
//! the user chose `Online`. A change of effective status is reported exactly once. A record
//! is in the `offline` index exactly when `total == 0`, at the time it went offline (or was
//! made offline, for a notification), so expiring the oldest is cheap.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::{Notifications, Status};
use crate::identity::User;

#[derive(Debug)]
pub struct UserRecord {
    pub user: Arc<User>,
    per_shard: HashMap<usize, u32>,
    total: u32,
    idle: u32,
    chosen: Status,
    /// Rooms the user is in, as their owners report them.
    pub rooms: HashSet<Arc<str>>,
    pub notifications: Notifications,
    /// Unix ms it went offline (its key in the `offline` index); None while online.
    offline_since: Option<u64>,
}

impl UserRecord {
    fn new(user: Arc<User>) -> Self {
        Self {
            offline_since: None,
            user,
            per_shard: HashMap::new(),
            total: 0,
            idle: 0,
            chosen: Status::Online,
            rooms: HashSet::new(),
            notifications: Notifications::default(),
        }
    }

    pub fn status(&self) -> Status {
        if self.total == 0 {
            Status::Offline
        } else if self.chosen == Status::Online && self.idle == self.total {
            Status::Away
        } else {
            self.chosen
        }
    }

    /// Shards holding at least one of the user's connections.
    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        self.per_shard
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(&s, _)| s)
    }

    pub fn connections(&self) -> u32 {
        self.total
    }
}

/// The user's effective status changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub status: Status,
    pub last_seen: u64,
}

/// The directory is full: no record for a new user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryFull {
    pub max: usize,
}

#[derive(Debug)]
pub struct Directory {
    records: HashMap<Arc<str>, UserRecord>,
    /// Offline records by when they were last used, oldest first.
    offline: BTreeSet<(u64, Arc<str>)>,
    max: usize,
}

impl Directory {
    pub fn new(max: usize) -> Self {
        Self {
            records: HashMap::new(),
            offline: BTreeSet::new(),
            max,
        }
    }

    /// Marks record `id` offline since `now_ms`: its time to live starts.
    fn mark_offline(&mut self, id: &str, now_ms: u64) {
        let Some(key) = self.records.get_key_value(id).map(|(k, _)| k.clone()) else {
            return;
        };
        let r = self.records.get_mut(id).expect("present");
        debug_assert_eq!(r.total, 0, "only offline records are in the index");
        if let Some(since) = r.offline_since.replace(now_ms) {
            self.offline.remove(&(since, key.clone()));
        }
        self.offline.insert((now_ms, key));
    }

    fn mark_online(&mut self, id: &str) {
        let Some(key) = self.records.get_key_value(id).map(|(k, _)| k.clone()) else {
            return;
        };
        let r = self.records.get_mut(id).expect("present");
        if let Some(since) = r.offline_since.take() {
            self.offline.remove(&(since, key));
        }
    }

    /// Forgets up to `max` users offline for `ttl_ms` by `now_ms`, oldest first; returns how
    /// many went. Notifications do not extend a record's time (a sender could keep it alive).
    pub fn expire_offline(&mut self, now_ms: u64, ttl_ms: u64, max: usize) -> usize {
        let mut gone = 0;
        while gone < max {
            let Some((since, id)) = self.offline.first().cloned() else {
                break;
            };
            if since.saturating_add(ttl_ms) > now_ms {
                break;
            }
            self.offline.pop_first();
            let record = self.records.remove(&id).expect("indexed records exist");
            assert_eq!(record.total, 0, "an expired user has no connection");
            gone += 1;
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Forgets user `id` (an offline record evicted to keep the bound).
    pub fn remove(&mut self, id: &str) {
        self.mark_online(id);
        self.records.remove(id);
    }

    pub fn get(&self, id: &str) -> Option<&UserRecord> {
        self.records.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut UserRecord> {
        self.records.get_mut(id)
    }

    /// The record of `user`, made (offline, its time to live starting at `now_ms`) if there
    /// is none.
    pub fn get_or_create(
        &mut self,
        user: &Arc<User>,
        now_ms: u64,
    ) -> Result<&mut UserRecord, DirectoryFull> {
        if !self.records.contains_key(&*user.id) {
            if self.records.len() >= self.max {
                return Err(DirectoryFull { max: self.max });
            }
            let key: Arc<str> = Arc::from(&*user.id);
            self.records
                .insert(key.clone(), UserRecord::new(user.clone()));
            self.mark_offline(&key, now_ms);
        }
        Ok(self.records.get_mut(&*user.id).expect("present"))
    }

    fn change(
        &mut self,
        id: &str,
        now_ms: u64,
        f: impl FnOnce(&mut UserRecord),
    ) -> Option<PresenceChange> {
        let r = self.records.get_mut(id)?;
        let before = r.status();
        f(r);
        let after = r.status();
        if before == after {
            return None;
        }
        Some(PresenceChange {
            status: after,
            last_seen: now_ms,
        })
    }

    /// A connection of `user` opened on `shard` (its name replaces the one on record).
    pub fn attach(
        &mut self,
        user: &Arc<User>,
        shard: usize,
        now_ms: u64,
    ) -> Option<PresenceChange> {
        // Records of connected users are bounded by the connections; no limit applies here.
        self.records
            .entry(Arc::from(&*user.id))
            .or_insert_with(|| UserRecord::new(user.clone()))
            .user = user.clone();
        self.mark_online(&user.id);
        self.change(&user.id, now_ms, |r| {
            if r.total == 0 {
                r.chosen = Status::Online;
            }
            *r.per_shard.entry(shard).or_insert(0) += 1;
            r.total += 1;
        })
    }

    /// A connection of user `id` on `shard` closed (`was_idle`: it had been reported idle).
    pub fn detach(
        &mut self,
        id: &str,
        shard: usize,
        was_idle: bool,
        now_ms: u64,
    ) -> Option<PresenceChange> {
        let change = self.change(id, now_ms, |r| {
            let n = r.per_shard.get_mut(&shard).expect("attached on that shard");
            assert!(*n > 0, "more detaches than attaches");
            *n -= 1;
            if *n == 0 {
                r.per_shard.remove(&shard);
            }
            r.total -= 1;
            if was_idle {
                r.idle -= 1;
            }
        });
        if self.records.get(id).is_some_and(|r| r.total == 0) {
            self.mark_offline(id, now_ms);
        }
        change
    }

    /// One of the user's devices became idle (or active again).
    pub fn set_idle(&mut self, id: &str, idle: bool, now_ms: u64) -> Option<PresenceChange> {
        self.change(id, now_ms, |r| {
            if idle {
                r.idle += 1;
                assert!(r.idle <= r.total, "more idle devices than devices");
            } else {
                r.idle -= 1;
            }
        })
    }

    /// The user chose a status (online, away, dnd).
    pub fn set_status(&mut self, id: &str, status: Status, now_ms: u64) -> Option<PresenceChange> {
        assert_ne!(status, Status::Offline, "offline is not chosen");
        self.change(id, now_ms, |r| r.chosen = status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_devices_idleness_and_choice() {
        let mut d = Directory::new(10);
        let alice = User::new("a", "alice");
        let ch = d.attach(&alice, 0, 1).unwrap();
        assert_eq!(ch.status, Status::Online);
        assert_eq!(d.attach(&alice, 1, 2), None);
        assert_eq!(d.set_idle("a", true, 3), None);
        assert_eq!(d.set_idle("a", true, 4).unwrap().status, Status::Away);
        assert_eq!(d.set_idle("a", false, 5).unwrap().status, Status::Online);
        assert_eq!(
            d.set_status("a", Status::Dnd, 6).unwrap().status,
            Status::Dnd
        );
        assert_eq!(d.detach("a", 0, true, 7), None);
        let off = d.detach("a", 1, false, 8).unwrap();
        assert_eq!(
            off,
            PresenceChange {
                status: Status::Offline,
                last_seen: 8
            }
        );
        // Back again: online, whatever was chosen before.
        assert_eq!(d.attach(&alice, 1, 9).unwrap().status, Status::Online);
        assert_eq!(d.get("a").unwrap().shards().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn records_beyond_the_bound_are_refused_but_connected_users_attach() {
        let mut d = Directory::new(1);
        d.attach(&User::new("a", "a"), 0, 0);
        assert_eq!(
            d.get_or_create(&User::new("b", "b"), 0).unwrap_err(),
            DirectoryFull { max: 1 }
        );
        assert!(d.get_or_create(&User::new("a", "a"), 0).is_ok());
        d.attach(&User::new("c", "c"), 0, 0);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn offline_users_expire_after_the_ttl_and_online_ones_never() {
        let mut d = Directory::new(100);
        let (a, b, c) = (
            User::new("a", "a"),
            User::new("b", "b"),
            User::new("c", "c"),
        );
        d.attach(&a, 0, 0);
        d.attach(&b, 0, 0);
        d.detach("b", 0, false, 1_000);
        d.get_or_create(&c, 2_000).unwrap(); // Notified, never connected.
        assert_eq!(d.expire_offline(1_999, 1_000, 10), 0);
        assert_eq!(d.expire_offline(2_000, 1_000, 10), 1);
        assert!(d.get("b").is_none());
        // Notified again while offline: its time does not start over.
        d.get_or_create(&c, 2_500).unwrap();
        assert_eq!(d.expire_offline(2_999, 1_000, 10), 0);
        // Back online before it expired: kept however long it stays.
        d.attach(&c, 1, 2_999);
        assert_eq!(d.expire_offline(1_000_000, 1_000, 10), 0);
        assert_eq!(d.len(), 2);
        d.detach("c", 1, false, 1_000_000);
        d.detach("a", 0, false, 1_000_000);
        assert_eq!(
            d.expire_offline(1_001_000, 1_000, 1),
            1,
            "at most `max` per call"
        );
        assert_eq!(d.expire_offline(1_001_000, 1_000, 1), 1);
        assert!(d.is_empty());
        assert!(d.offline.is_empty());
        // An evicted record leaves the index too.
        d.get_or_create(&a, 0).unwrap();
        d.remove("a");
        assert!(d.offline.is_empty());
    }
}
