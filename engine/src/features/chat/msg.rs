//! The chat feature's messages between shards: those for a room's owner (keyed by the room,
//! so routing cannot forget the key) and those for a given shard.

use std::sync::Arc;

use crate::features::users::Status;
use crate::features::{FeatureMsg, OwnedMsg};
use crate::identity::User;
use crate::server::{ConnRef, GatherRef};

/// A message for the owner of room `room`.
#[derive(Debug)]
pub struct ToRoom {
    pub room: Arc<str>,
    pub op: RoomOp,
}

#[derive(Debug)]
pub enum RoomOp {
    /// A member on the sender's shard joins (the owner answers through the core).
    Join(Box<Join>),
    /// Publish `content` (raw JSON) from member `conn` as `from`.
    Publish(Box<Publish>),
    /// `room:create`.
    Create(Box<Create>),
    /// Answer `query` to member connection `conn`.
    Query(Box<Query>),
    /// `user` read up to message `up_to`.
    Read {
        conn: ConnRef,
        user: Arc<User>,
        up_to: u64,
    },
    /// `user` started (`on`) or stopped typing.
    Typing {
        conn: ConnRef,
        user: Arc<User>,
        on: bool,
    },
    /// `POST /api/publish`.
    ApiPublish { content: Vec<u8> },
}

#[derive(Debug)]
pub struct Join {
    pub conn: ConnRef,
    pub user: Option<Arc<User>>,
    pub status: Status,
    pub password: Option<Box<str>>,
    pub reference: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Publish {
    pub conn: ConnRef,
    pub from: Arc<User>,
    pub content: Vec<u8>,
    pub reference: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Create {
    pub description: Box<str>,
    pub password: Option<Box<str>>,
    pub max_users: Option<u32>,
    pub by: Arc<User>,
    pub conn: ConnRef,
    pub reference: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Query {
    pub conn: ConnRef,
    pub query: RoomQuery,
    pub reference: Option<Vec<u8>>,
}

/// What a room owner answers to a query about the room.
#[derive(Debug)]
pub enum RoomQuery {
    /// `message:history`
    History { limit: usize, before: Option<u64> },
    /// `presence:list`
    Presence,
}

/// A message for a given shard's chat feature.
#[derive(Debug)]
pub enum ShardMsg {
    /// List the rooms you own for `room:list` gather `gather` (`user_id`: for unread counts).
    ListRooms {
        gather: GatherRef,
        user_id: Option<Arc<str>>,
    },
    /// The typing timer of owned room `room` came due.
    TypingDue { room: Arc<str> },
}

impl From<ToRoom> for OwnedMsg {
    fn from(m: ToRoom) -> Self {
        OwnedMsg::Room(m)
    }
}

impl From<ShardMsg> for FeatureMsg {
    fn from(m: ShardMsg) -> Self {
        FeatureMsg::Chat(m)
    }
}
