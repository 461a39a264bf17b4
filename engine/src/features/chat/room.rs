//! A chat room's state on its owner, beside its topic: settings, the users present (with
//! their devices and status), guests, read marks and who is typing.
//!
//! Invariant: `members` holds exactly the topic's member connections (every shard), each with
//! its user; `users` holds each user with at least one of them, with the number of their
//! connections; `guests` counts the rest.

use std::collections::HashMap;
use std::sync::Arc;

use super::typing::Typing;
use crate::features::chat::limits::ROOM_READ_MARKS_MAX;
use crate::features::users::Status;
use crate::identity::User;

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

#[derive(Debug)]
pub struct ChatRoom {
    /// The serial of the topic this state belongs to (see `server::Topic::serial`).
    pub serial: u64,
    pub info: RoomInfo,
    /// The user (or guest) who made it with `room:create`; None for a room made by a join.
    pub created_by: Option<Arc<str>>,
    /// Every member connection, by id, with its user (None: a guest).
    pub members: HashMap<u64, Option<Arc<str>>>,
    pub users: HashMap<Arc<str>, RoomUser>,
    pub guests: u32,
    /// Newest message id each user marked read.
    pub read_marks: HashMap<Arc<str>, u64>,
    pub typing: Typing,
    /// A timer for typing expiry is set.
    pub typing_armed: bool,
}

impl ChatRoom {
    pub fn new(serial: u64) -> Self {
        Self {
            serial,
            info: RoomInfo::default(),
            created_by: None,
            members: HashMap::new(),
            users: HashMap::new(),
            guests: 0,
            read_marks: HashMap::new(),
            typing: Typing::default(),
            typing_armed: false,
        }
    }

    /// Users and guests present: what `maxUsers` bounds.
    pub fn head_count(&self) -> usize {
        self.users.len() + self.guests as usize
    }

    /// Adds member connection `conn_id` (new to the topic); `last_id` is the room's newest
    /// message. True when its user was not present before (the room hears
    /// `room:user_joined`).
    pub fn add_member(
        &mut self,
        conn_id: u64,
        user: Option<&Arc<User>>,
        status: Status,
        last_id: u64,
        now_ms: u64,
    ) -> bool {
        self.members
            .insert(conn_id, user.map(|u| Arc::from(&*u.id)));
        let Some(user) = user else {
            self.guests += 1;
            return false;
        };
        if self.read_marks.len() < ROOM_READ_MARKS_MAX || self.read_marks.contains_key(&*user.id) {
            self.read_marks
                .entry(Arc::from(&*user.id))
                .or_insert(last_id);
        }
        if let Some(present) = self.users.get_mut(&*user.id) {
            present.conns += 1;
            return false;
        }
        let entry = RoomUser {
            user: user.clone(),
            conns: 1,
            status,
            last_seen: now_ms,
        };
        self.users.insert(Arc::from(&*user.id), entry);
        true
    }

    /// Removes member connection `conn_id`; returns its user when that was their last
    /// connection in the room.
    pub fn remove_member(&mut self, conn_id: u64) -> Option<Arc<User>> {
        let user = self
            .members
            .remove(&conn_id)
            .unwrap_or_else(|| panic!("leave of connection {conn_id} that is not a member"));
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

    /// Unread messages for `user_id` when the newest is `last_id`: those after their read
    /// mark (0 without one).
    pub fn unread(&self, user_id: &str, last_id: u64) -> u64 {
        self.read_marks
            .get(user_id)
            .map_or(0, |&mark| last_id.saturating_sub(mark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::connection_id;

    #[test]
    fn users_count_devices_and_guests() {
        let mut r = ChatRoom::new(1);
        let alice = User::new("a", "alice");
        let (c1, c2, g) = (
            connection_id(0, 1),
            connection_id(1, 1),
            connection_id(1, 2),
        );
        assert!(r.add_member(c1, Some(&alice), Status::Online, 0, 0));
        assert!(!r.add_member(c2, Some(&alice), Status::Online, 0, 0));
        assert!(!r.add_member(g, None, Status::Online, 0, 0));
        assert_eq!(r.head_count(), 2);
        assert_eq!(r.remove_member(c1), None);
        assert_eq!(r.remove_member(g), None);
        assert_eq!(r.remove_member(c2).unwrap().id, alice.id);
        assert_eq!(r.head_count(), 0);
    }

    #[test]
    fn unread_counts_after_the_mark() {
        let mut r = ChatRoom::new(1);
        let a = User::new("a", "a");
        r.add_member(connection_id(0, 1), Some(&a), Status::Online, 4, 0);
        assert_eq!(r.unread("a", 4), 0);
        assert_eq!(r.unread("a", 7), 3);
        assert_eq!(r.unread("nobody", 7), 0);
    }
}
