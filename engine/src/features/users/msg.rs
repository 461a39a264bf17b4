//! The users feature's messages between shards: those for a user's owner (keyed by the user,
//! so routing cannot forget the key) and those for a given shard.

use std::sync::Arc;

use super::Status;
use crate::features::{FeatureMsg, OwnedMsg};
use crate::identity::User;
use crate::server::ConnRef;

/// A message for the owner of user `user`.
#[derive(Debug)]
pub struct ToUser {
    pub user: Arc<str>,
    pub op: UserOp,
}

#[derive(Debug)]
pub enum UserOp {
    /// A connection of the user opened on shard `conn`'s. `login`: it came with
    /// `auth:login` (carrying `ref`), answered by the owner with `auth:success` once the
    /// device is counted, so messages to the user reach it from then on.
    Attach {
        user: Arc<User>,
        conn: ConnRef,
        login: Option<Option<Box<[u8]>>>,
    },
    /// A connection of theirs on `shard` closed; it was in `rooms`.
    Detach {
        shard: usize,
        was_idle: bool,
        rooms: Box<[Arc<str>]>,
    },
    /// One of their devices went idle (or active again).
    Idle { idle: bool },
    /// `presence:update`.
    SetStatus { status: Status },
    /// From a room's owner: the user is now in (or out of) `room`.
    Room {
        user: Arc<User>,
        room: Arc<str>,
        present: bool,
    },
    /// `message:direct` to this user.
    Direct(Box<Direct>),
    /// A notification for them (kept even while they are offline).
    Notify(Box<Notify>),
    /// List or mark their notifications, answering `conn`.
    Notifications(Box<Notifications>),
}

#[derive(Debug)]
pub struct Direct {
    pub id: u64,
    pub from: Arc<User>,
    pub content: Vec<u8>,
    pub conn: ConnRef,
    pub reference: Option<Vec<u8>>,
}

/// A notification, caused by user `from` (None: the backend's).
#[derive(Debug)]
pub struct Notify {
    pub from: Option<Box<str>>,
    pub kind: &'static str,
    pub title: String,
    pub body: String,
}

#[derive(Debug)]
pub struct Notifications {
    pub conn: ConnRef,
    pub op: NotificationOp,
    pub reference: Option<Vec<u8>>,
}

/// What a user's owner does with their notifications.
#[derive(Debug)]
pub enum NotificationOp {
    List,
    Read(Vec<u64>),
}

/// A presence change, announced by the user's owner to every shard.
#[derive(Debug)]
pub struct PresenceNews {
    pub user: Arc<User>,
    pub status: Status,
    pub last_seen: u64,
    /// The rooms the user is in: their members hear of it.
    pub rooms: Arc<[Arc<str>]>,
}

/// A message for a given shard's users feature.
#[derive(Debug)]
pub enum ShardMsg {
    /// From a user's owner: the user's status now (for the shard's cache).
    Status { user_id: Arc<str>, status: Status },
    /// From a user's owner: their presence changed; tell their rooms' members here.
    Presence(Box<PresenceNews>),
}

/// The message a room's owner sends the user's owner when `user` enters or leaves `room`.
pub fn user_room(user: &Arc<User>, room: Arc<str>, present: bool) -> ToUser {
    ToUser {
        user: Arc::from(&*user.id),
        op: UserOp::Room {
            user: user.clone(),
            room,
            present,
        },
    }
}

impl From<ToUser> for OwnedMsg {
    fn from(m: ToUser) -> Self {
        OwnedMsg::User(m)
    }
}

impl From<ShardMsg> for FeatureMsg {
    fn from(m: ShardMsg) -> Self {
        FeatureMsg::Users(m)
    }
}
