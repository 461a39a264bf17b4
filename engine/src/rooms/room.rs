//! One room as one shard sees it: its local members, and ownership state if this shard owns it
//! (ids, members everywhere, the users present, history, typing, read marks, settings).
//!
//! Invariants:
//! - `members` holds exactly the connections of this shard that joined and did not leave.
//! - On the owner, `Ownership::members` holds every member connection on every shard;
//!   `remote[s]` counts those on shard `s`; `users` holds each user with at least one of
//!   them, with the number of their connections; `guests` counts the rest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use super::{Batcher, History, Typing};
use crate::limits::ROOM_READ_MARKS_MAX;
use crate::runtime::shard_of;
use crate::users::{Status, User};

/// Settings given at `room:create` (a room made by a join has the defaults).
#[derive(Debug, Default)]
pub struct RoomInfo {
    pub description: Box<str>,
    pub password: Option<Box<str>>,
    pub max_users: Option<u32>,
}

/// A user present in a room, as the owner knows them.
#[derive(Debug)]
pub struct RoomUser {
    pub user: Arc<User>,
    /// The user's connections in the room (devices).
    pub conns: u32,
    pub status: Status,
    pub last_seen: u64,
}

/// A member connection as the owner counts it.
#[derive(Debug)]
pub struct Member {
    /// Its user (None: a guest).
    pub user: Option<Arc<str>>,
    /// Accepted joins not yet matched by a leave. Normally 1; 2 for a moment when a
    /// connection left a join still in flight and joined again (the stale answer's leave
    /// follows).
    pub joins: u32,
}

/// State only the owner shard keeps.
#[derive(Debug)]
pub struct Ownership {
    /// Id of the next message; ids increase within the room.
    pub next_id: u64,
    /// Members on each shard (this shard's entry stays 0: local members are in `members`).
    pub remote: Vec<u32>,
    pub batcher: Batcher,
    pub info: RoomInfo,
    /// Made by `room:create` (kept when empty).
    pub created: bool,
    /// Every member connection, by connection id.
    pub members: HashMap<u64, Member>,
    pub users: HashMap<Arc<str>, RoomUser>,
    pub guests: u32,
    pub history: History,
    /// When the room last kept a message, in the table's order of pushes (0: holds none in
    /// the shard's history budget). The quietest rooms lose their history first.
    pub history_stamp: u64,
    /// Since when the room has had no member anywhere (None: it has members). Empty rooms
    /// are forgotten after `--room-ttl-secs`.
    pub empty_since: Option<Instant>,
    /// The user (or guest) who made it with `room:create`; None for a room made by a join.
    pub created_by: Option<Arc<str>>,
    /// Newest message id each user marked read.
    pub read_marks: HashMap<Arc<str>, u64>,
    pub typing: Typing,
}

impl Ownership {
    pub fn new(shards: usize, batcher: Batcher, history: History) -> Self {
        Self {
            next_id: 1,
            remote: vec![0; shards],
            batcher,
            info: RoomInfo::default(),
            created: false,
            members: HashMap::new(),
            users: HashMap::new(),
            guests: 0,
            history,
            history_stamp: 0,
            empty_since: None,
            created_by: None,
            read_marks: HashMap::new(),
            typing: Typing::default(),
        }
    }

    pub fn remote_members(&self) -> u64 {
        self.remote.iter().map(|&n| n as u64).sum()
    }

    /// Users and guests present: what `maxUsers` bounds.
    pub fn head_count(&self) -> usize {
        self.users.len() + self.guests as usize
    }

    /// Adds member connection `conn_id` (on shard `owner` or another). True when its user
    /// was not present before (the room hears `room:user_joined`).
    pub fn add_member(
        &mut self,
        conn_id: u64,
        owner: usize,
        user: Option<&Arc<User>>,
        status: Status,
        now_ms: u64,
    ) -> bool {
        self.empty_since = None;
        if let Some(m) = self.members.get_mut(&conn_id) {
            m.joins += 1;
            return false;
        }
        let member = Member {
            user: user.map(|u| Arc::from(&*u.id)),
            joins: 1,
        };
        self.members.insert(conn_id, member);
        let shard = shard_of(conn_id);
        if shard != owner {
            self.remote[shard] += 1;
        }
        let Some(user) = user else {
            self.guests += 1;
            return false;
        };
        if self.read_marks.len() < ROOM_READ_MARKS_MAX || self.read_marks.contains_key(&*user.id) {
            let last = self.next_id - 1;
            self.read_marks.entry(Arc::from(&*user.id)).or_insert(last);
        }
        match self.users.get_mut(&*user.id) {
            Some(present) => {
                present.conns += 1;
                false
            }
            None => {
                self.users.insert(
                    Arc::from(&*user.id),
                    RoomUser {
                        user: user.clone(),
                        conns: 1,
                        status,
                        last_seen: now_ms,
                    },
                );
                true
            }
        }
    }

    /// Removes member connection `conn_id` (one accepted join of it); returns its user when
    /// that was their last connection in the room.
    pub fn remove_member(&mut self, conn_id: u64, owner: usize) -> Option<Arc<User>> {
        let member = self
            .members
            .get_mut(&conn_id)
            .unwrap_or_else(|| panic!("leave of connection {conn_id} that is not a member"));
        member.joins -= 1;
        if member.joins > 0 {
            return None;
        }
        let user = self.members.remove(&conn_id).expect("present").user;
        let shard = shard_of(conn_id);
        if shard != owner {
            assert!(self.remote[shard] > 0, "more leaves than joins");
            self.remote[shard] -= 1;
        }
        let Some(id) = user else {
            self.guests -= 1;
            return None;
        };
        let present = self.users.get_mut(&id).expect("members' users are present");
        present.conns -= 1;
        if present.conns > 0 {
            return None;
        }
        let gone = self.users.remove(&id).expect("present");
        self.typing.stop(&id);
        Some(gone.user)
    }

    /// Unread messages for `user_id`: those after their read mark (0 without one).
    pub fn unread(&self, user_id: &str) -> u64 {
        self.read_marks
            .get(user_id)
            .map_or(0, |&mark| (self.next_id - 1).saturating_sub(mark))
    }
}

#[derive(Debug)]
pub struct Room {
    pub name: Arc<str>,
    /// Connection keys of this shard's members.
    pub members: Slab<usize>,
    pub owner: Option<Ownership>,
}

impl Room {
    pub fn new(name: Arc<str>, owner: Option<Ownership>) -> Self {
        Self {
            name,
            members: Slab::new(),
            owner,
        }
    }

    /// Members on every shard; only the owner knows it.
    pub fn total_members(&self) -> u64 {
        match &self.owner {
            Some(o) => o.members.len() as u64,
            None => self.members.len() as u64,
        }
    }

    /// Nothing left to remember: no members anywhere, no batch in flight, and (for the
    /// owner) a room nobody created explicitly and nobody wrote in.
    pub fn is_disposable(&self) -> bool {
        self.members.is_empty()
            && self.owner.as_ref().is_none_or(|o| {
                o.members.is_empty() && o.batcher.is_idle() && !o.created && o.history.is_empty()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::connection_id;
    use std::time::Duration;

    fn ownership() -> Ownership {
        Ownership::new(
            2,
            Batcher::new(Duration::ZERO, 0),
            History::new(1, 10, usize::MAX),
        )
    }

    #[test]
    fn users_count_devices_and_guests() {
        let mut o = ownership();
        let alice = User::new("a", "alice");
        let (c1, c2, g) = (
            connection_id(0, 1),
            connection_id(1, 1),
            connection_id(1, 2),
        );
        assert!(o.add_member(c1, 0, Some(&alice), Status::Online, 0));
        assert!(!o.add_member(c2, 0, Some(&alice), Status::Online, 0));
        assert!(!o.add_member(g, 0, None, Status::Online, 0));
        assert_eq!((o.head_count(), o.remote_members()), (2, 2));
        assert_eq!(o.remove_member(c1, 0), None);
        assert_eq!(o.remove_member(g, 0), None);
        assert_eq!(o.remove_member(c2, 0).unwrap().id, alice.id);
        assert_eq!((o.head_count(), o.remote_members()), (0, 0));
    }

    #[test]
    fn a_join_answered_after_a_rejoin_is_counted_until_its_leave() {
        let mut o = ownership();
        let a = User::new("a", "a");
        let c = connection_id(1, 1);
        assert!(o.add_member(c, 0, Some(&a), Status::Online, 0));
        assert!(!o.add_member(c, 0, Some(&a), Status::Online, 0));
        assert_eq!((o.head_count(), o.remote_members()), (1, 1));
        assert_eq!(o.remove_member(c, 0), None);
        assert_eq!(o.head_count(), 1);
        assert!(o.remove_member(c, 0).is_some());
        assert!(o.members.is_empty());
    }

    #[test]
    fn unread_counts_after_the_mark() {
        let mut o = ownership();
        o.next_id = 5; // 4 messages before the join
        let a = User::new("a", "a");
        o.add_member(connection_id(0, 1), 0, Some(&a), Status::Online, 0);
        assert_eq!(o.unread("a"), 0);
        o.next_id = 8;
        assert_eq!(o.unread("a"), 3);
        assert_eq!(o.unread("nobody"), 0);
    }
}
