//! Messages between shards, carried by the inboxes.
//!
//! Invariant: between any two shards messages arrive in the order they were sent, so a room
//! owner's order of joins, leaves and publishes is the order every shard sees.

use std::os::fd::RawFd;
use std::sync::Arc;

use bytes::Bytes;

use crate::users::{Status, User};

/// A connection on some shard: its slab key there and its global id (which names the shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    pub key: usize,
    pub id: u64,
}

pub use crate::runtime::{connection_id, shard_of};

/// What a room owner answers to a query about the room.
#[derive(Debug)]
pub enum RoomQuery {
    /// `message:history`
    History { limit: usize, before: Option<u64> },
    /// `presence:list`
    Presence,
}

/// Settings of `room:create`.
#[derive(Debug)]
pub struct CreateRoom {
    pub description: Box<str>,
    pub password: Option<Box<str>>,
    pub max_users: Option<u32>,
}

/// What a user's owner does with their notifications.
#[derive(Debug)]
pub enum NotificationOp {
    List,
    Read(Vec<u64>),
}

/// What the handshake decided for a connection, carried to the shard that sends its 101.
#[derive(Debug)]
pub struct Upgrade {
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// The subprotocol the 101 names (`Sec-WebSocket-Protocol`), if any.
    pub protocol: Option<String>,
    /// Bytes the client sent right behind its request (frames already).
    pub leftover: Vec<u8>,
    /// The user of its token, if it came with one.
    pub user: Option<Arc<User>>,
    /// The token's `exp` (Unix seconds): the connection is closed (4001) once it passes.
    pub token_exp: Option<u64>,
}

#[derive(Debug)]
pub enum ShardMsg {
    /// A new connection whose home room lives here; its upgrade request was already read.
    Adopt { fd: RawFd, upgrade: Upgrade },
    /// To a room's owner: a member on the sender's shard joins.
    Join {
        room: Arc<str>,
        conn: ConnRef,
        user: Option<Arc<User>>,
        status: Status,
        password: Option<Box<str>>,
        reference: Option<Vec<u8>>,
    },
    /// From a room's owner: the join took effect (`room:joined` frame) or was refused (the
    /// `error` frame).
    Joined {
        room: Arc<str>,
        conn: ConnRef,
        result: Result<Bytes, Bytes>,
        reference: Option<Vec<u8>>,
    },
    /// To a room's owner: member connection `conn_id` left (or closed). Sent only for joins
    /// the owner accepted.
    Leave { room: Arc<str>, conn_id: u64 },
    /// To a room's owner: publish `content` (raw JSON) from connection `conn` as `from`.
    Publish {
        room: Arc<str>,
        conn: ConnRef,
        from: Arc<User>,
        content: Vec<u8>,
        reference: Option<Vec<u8>>,
    },
    /// From a room's owner: an encoded frame for this shard's members of `room`.
    Deliver { room: Arc<str>, frame: Bytes },
    /// A frame for one connection (an answer from an owner); dropped if it closed.
    ToConn { conn: ConnRef, frame: Bytes },
    /// To a room's owner: `room:create`.
    Create {
        room: Arc<str>,
        settings: CreateRoom,
        by: Arc<User>,
        conn: ConnRef,
        reference: Option<Vec<u8>>,
    },
    /// To a room's owner: answer `query` to member connection `conn`.
    Query {
        room: Arc<str>,
        conn: ConnRef,
        query: RoomQuery,
        reference: Option<Vec<u8>>,
    },
    /// To a room's owner: `user` read up to message `up_to`.
    Read {
        room: Arc<str>,
        conn: ConnRef,
        user: Arc<User>,
        up_to: u64,
    },
    /// To a room's owner: `user` started (`on`) or stopped typing.
    Typing {
        room: Arc<str>,
        conn: ConnRef,
        user: Arc<User>,
        on: bool,
    },
    /// To every shard: list your rooms for `room:list` gather `gather` of shard `from`.
    ListRooms {
        from: usize,
        gather: usize,
        user_id: Option<Arc<str>>,
    },
    /// A shard's part of a `room:list`: room entries (JSON objects).
    RoomsPart {
        gather: usize,
        entries: Vec<Vec<u8>>,
        truncated: bool,
    },
    /// To a user's owner: a connection of `user` opened on shard `conn`'s. `login`: it came
    /// with `auth:login` (carrying `ref`), answered by the owner with `auth:success` once the
    /// device is counted, so messages to the user reach it from then on.
    Attach {
        user: Arc<User>,
        conn: ConnRef,
        login: Option<Option<Vec<u8>>>,
    },
    /// From a user's owner: the user's status now (for the shard's cache).
    UserStatus { user_id: Arc<str>, status: Status },
    /// To a user's owner: a connection of theirs on `shard` closed; it was in `rooms`.
    Detach {
        user_id: Arc<str>,
        shard: usize,
        was_idle: bool,
        rooms: Vec<Arc<str>>,
    },
    /// To a user's owner: one of their devices went idle (or active again).
    Idle { user_id: Arc<str>, idle: bool },
    /// To a user's owner: `presence:update`.
    SetStatus { user_id: Arc<str>, status: Status },
    /// From a room's owner to a user's owner: the user is now in (or out of) `room`.
    UserRoom {
        user: Arc<User>,
        room: Arc<str>,
        present: bool,
    },
    /// To every shard: `user`'s presence changed; tell their rooms' members on this shard.
    Presence {
        user: Arc<User>,
        status: Status,
        last_seen: u64,
        rooms: Arc<[Arc<str>]>,
    },
    /// To the recipient's owner: `message:direct`.
    Direct {
        id: u64,
        from: Arc<User>,
        to: Box<str>,
        content: Vec<u8>,
        conn: ConnRef,
        reference: Option<Vec<u8>>,
    },
    /// A frame for every connection of `user_id` on this shard.
    ToUser { user_id: Arc<str>, frame: Bytes },
    /// To a user's owner: a notification for them (kept even while they are offline),
    /// caused by user `from` (None: the backend's).
    Notify {
        user_id: Box<str>,
        from: Option<Box<str>>,
        kind: &'static str,
        title: String,
        body: String,
    },
    /// To a user's owner: list or mark their notifications, answering `conn`.
    Notifications {
        user_id: Arc<str>,
        conn: ConnRef,
        op: NotificationOp,
        reference: Option<Vec<u8>>,
    },
    /// To a room's owner: `POST /api/publish`.
    ApiPublish { room: Arc<str>, content: Vec<u8> },
    /// Stop: close every connection with 1001 and end the shard.
    Shutdown,
}

impl ShardMsg {
    /// The room whose owner handles this message (messages to a room's owner).
    pub fn room(&self) -> Option<&str> {
        match self {
            ShardMsg::Join { room, .. }
            | ShardMsg::Leave { room, .. }
            | ShardMsg::Publish { room, .. }
            | ShardMsg::Create { room, .. }
            | ShardMsg::Query { room, .. }
            | ShardMsg::Read { room, .. }
            | ShardMsg::Typing { room, .. }
            | ShardMsg::ApiPublish { room, .. } => Some(room),
            _ => None,
        }
    }

    /// The user whose owner handles this message (messages to a user's owner).
    pub fn user(&self) -> Option<&str> {
        match self {
            ShardMsg::Attach { user, .. } | ShardMsg::UserRoom { user, .. } => Some(&user.id),
            ShardMsg::Detach { user_id, .. }
            | ShardMsg::Idle { user_id, .. }
            | ShardMsg::SetStatus { user_id, .. }
            | ShardMsg::Notifications { user_id, .. } => Some(user_id),
            ShardMsg::Notify { user_id, .. } => Some(user_id),
            ShardMsg::Direct { to, .. } => Some(to),
            _ => None,
        }
    }
}
