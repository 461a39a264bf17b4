//! Messages between shards, carried by the inboxes.
//!
//! Invariant: between any two shards messages arrive in the order they were sent, so a room
//! owner's order of joins, leaves and publishes is the order every shard sees.

use std::os::fd::RawFd;
use std::sync::Arc;

use bytes::Bytes;

/// A connection on some shard: its slab key there and its global id (which names the shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    pub key: usize,
    pub id: u64,
}

/// Bits of a connection id that hold its shard (see [`connection_id`]).
pub const SHARD_BITS: u32 = 8;

/// A globally unique connection id: a per-shard sequence with the shard in the low bits.
pub fn connection_id(shard: usize, seq: u64) -> u64 {
    (seq << SHARD_BITS) | shard as u64
}

/// The shard a connection id belongs to.
pub fn shard_of(id: u64) -> usize {
    (id & ((1 << SHARD_BITS) - 1)) as usize
}

#[derive(Debug)]
pub enum ShardMsg {
    /// A new connection whose home room lives here; its upgrade request was already read.
    Adopt {
        fd: RawFd,
        key: String,
        leftover: Vec<u8>,
    },
    /// To a room's owner: a member on the sender's shard joins.
    Join {
        room: Arc<str>,
        conn: ConnRef,
        reference: Option<Vec<u8>>,
    },
    /// From a room's owner: the join took effect with `members` in the room.
    Joined {
        room: Arc<str>,
        conn: ConnRef,
        members: u64,
        reference: Option<Vec<u8>>,
    },
    /// To a room's owner: one member on `shard` left (or its join was cancelled).
    Leave { room: Arc<str>, shard: usize },
    /// To a room's owner: publish `content` (raw JSON) from connection `from`.
    Publish {
        room: Arc<str>,
        from: u64,
        content: Vec<u8>,
    },
    /// From a room's owner: an encoded frame for this shard's members of `room`.
    Deliver { room: Arc<str>, frame: Bytes },
    /// Stop: close every connection with 1001 and end the shard.
    Shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_shard() {
        for shard in [0, 1, 7, 255] {
            for seq in [0, 1, 1 << 40] {
                assert_eq!(shard_of(connection_id(shard, seq)), shard);
            }
        }
        assert_ne!(connection_id(1, 2), connection_id(2, 1));
    }
}
