//! Rooms: who is in them on this shard, and for the rooms this shard owns, message ids,
//! members everywhere, the users present, history, typing and batching. State only; no I/O,
//! no glommio.

mod batcher;
pub mod history;
mod room;
mod table;
mod typing;

pub use batcher::{Batcher, Deadline, Step};
pub use history::History;
pub use room::{Member, Ownership, Room, RoomInfo, RoomUser};
pub use table::RoomTable;
pub use typing::Typing;
