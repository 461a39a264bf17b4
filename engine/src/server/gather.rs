//! Scatter-gather: a request a feature sends to every shard for one connection, whose parts
//! come back to the asking shard and are handed to the feature once all have arrived.
//!
//! Invariant: a gather waits for exactly one part per shard and is answered once; at most
//! [`GATHERS_PER_SHARD_MAX`] wait at a time.

use super::shard_msg::ConnRef;
use crate::features::FeatureId;

/// Gathers in flight on one shard; another is refused with `busy`. Each is answered within
/// a round trip to every shard, so only a flood of requests reaches this.
pub const GATHERS_PER_SHARD_MAX: usize = crate::limits::ROOM_LIST_GATHERS_MAX;

/// Where a shard's part goes: the asking shard and its gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatherRef {
    pub shard: usize,
    pub id: usize,
}

/// A gather waiting for parts.
#[derive(Debug)]
pub struct Gather {
    pub feature: FeatureId,
    pub conn: ConnRef,
    pub reference: Option<Vec<u8>>,
    pub waiting: usize,
    pub entries: Vec<Vec<u8>>,
    pub truncated: bool,
}

/// A complete gather, handed to its feature.
#[derive(Debug)]
pub struct Gathered {
    pub conn: ConnRef,
    pub reference: Option<Vec<u8>>,
    /// Every shard's entries, in the order the parts arrived.
    pub entries: Vec<Vec<u8>>,
    /// Some shard left entries out.
    pub truncated: bool,
}
