//! Messages between shards, carried by the inboxes (and by the shard-local queue when the
//! destination is the shard itself).
//!
//! Invariant: between any two shards (and from a shard to itself) messages arrive in the order
//! they were sent, so a topic owner's order of joins, leaves and publishes is the order every
//! shard sees.

use std::os::fd::RawFd;
use std::sync::Arc;

use bytes::Bytes;

use crate::features::{FeatureId, FeatureMsg, OwnedMsg};
use crate::identity::User;

/// A connection on some shard: its slab key there and its global id (which names the shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    pub key: usize,
    pub id: u64,
}

pub use crate::runtime::{connection_id, shard_of};

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
    /// The home topic the URL named (the features decide what it means).
    pub home: Option<String>,
}

/// Who of a topic's members gets a fan-out frame, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every member.
    All,
    /// Every member but this connection (the author of what the frame tells).
    Except(u64),
    /// Every member, latest-wins in slot `slot` of its queue: the frame replaces an unsent
    /// one of the same slot (cursors).
    Latest(u64),
}

/// A message between shards (or to this shard, through its local queue). Core messages carry
/// topics' membership and frames; features' messages ride in `Owned` (to the owner of the key
/// they name, known from their type) and `Feature` (to a given shard).
#[derive(Debug)]
pub enum ShardMsg {
    /// A new connection whose home topic lives here; its upgrade request was already read.
    Adopt { fd: RawFd, upgrade: Box<Upgrade> },
    /// To the owner of the key the message names (a room, a user).
    Owned(OwnedMsg),
    /// To the shard it was sent to.
    Feature(FeatureMsg),
    /// From a topic's owner: the join of `conn` took effect (with the feature's frame, e.g.
    /// `room:joined`) or was refused (the `error` frame).
    Joined(Box<Joined>),
    /// To a topic's owner: member connection `conn_id` left (or closed). Sent only for joins
    /// the owner accepted.
    Leave { topic: Arc<str>, conn_id: u64 },
    /// From a topic's owner: an encoded frame for this shard's members of `topic`.
    Deliver { topic: Arc<str>, frame: Bytes },
    /// `Deliver` some other way ([`Delivery`]); boxed, so the common message stays small.
    DeliverSome(Box<(Arc<str>, Bytes, Delivery)>),
    /// A frame for one connection (an answer from an owner); dropped if it closed.
    ToConn { conn: ConnRef, frame: Bytes },
    /// Charge connection `conn`'s request budgets `units` for work an owner did for it
    /// (`Shard::debit`); nothing if it closed.
    Debit { conn: ConnRef, units: u32 },
    /// A frame for every connection of `user_id` on this shard.
    ToUser { user_id: Arc<str>, frame: Bytes },
    /// One shard's part of gather `gather` (see `server::gather`).
    GatherPart {
        gather: usize,
        entries: Vec<Vec<u8>>,
        truncated: bool,
    },
    /// Stop: close every connection with 1001 and end the shard.
    Shutdown,
}

/// A topic owner's answer to a join.
#[derive(Debug)]
pub struct Joined {
    pub topic: Arc<str>,
    pub feature: FeatureId,
    pub conn: ConnRef,
    pub result: Result<Bytes, Bytes>,
    pub reference: Option<Vec<u8>>,
}

/// The inbox preallocates `INBOX_MESSAGES_MAX` (65,536) slots of this per shard: a variant
/// that grows it costs every shard that much memory. Box big payloads instead.
pub const SHARD_MSG_BYTES_MAX: usize = 64;
const _: () = assert!(std::mem::size_of::<ShardMsg>() <= SHARD_MSG_BYTES_MAX);
