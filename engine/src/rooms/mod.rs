//! Rooms: who is in them on this shard, and for the rooms this shard owns, message ids,
//! members on other shards and the batching policy. State only; no I/O, no glommio.

mod batcher;
mod room;
mod table;

pub use batcher::{Batcher, Deadline, Step};
pub use room::{Ownership, Room};
pub use table::RoomTable;
