//! The shared feature's limits: what one topic's shared state, channels and presence data
//! may hold.
//!
//! Invariant: each is enforced where the write arrives and answered with its own code.

/// Bytes of one topic's shared state, keys and JSON values together (`state_too_large`):
/// every joiner gets all of it in `state:sync`.
pub const STATE_BYTES_MAX: usize = 64 << 10;

/// Keys in one topic's shared state (`state_too_large`).
pub const STATE_KEYS_MAX: usize = 256;

/// Bytes of a state key (`invalid_field`).
pub const STATE_KEY_BYTES_MAX: usize = 128;

/// Channels with history per topic (`too_many_channels`): a channel is made by its first
/// message and kept with the topic.
pub const CHANNELS_PER_TOPIC_MAX: usize = 16;

/// Bytes of a channel name (channel names follow room-name rules).
pub const CHANNEL_NAME_BYTES_MAX: usize = 64;

/// Messages kept per channel for `broadcast:history` (the oldest go first), and the default
/// page.
pub const CHANNEL_HISTORY_MAX: usize = 100;

/// Bytes of kept messages per channel: a whiteboard's strokes are small, a flood of large
/// payloads pushes out the oldest instead of growing.
pub const CHANNEL_HISTORY_BYTES_MAX: usize = 64 << 10;

/// Bytes of shared state, kept channel messages and presence data of all a shard's topics
/// together: past it a state write is refused (`shard_full`) and a broadcast is still sent but
/// not kept (counted in `shared_unkept`).
pub const SHARED_BYTES_PER_SHARD_MAX: usize = 256 << 20;

/// Presence data replayed to a member that joins (one `presence:data` each): the rest
/// arrive as they change.
pub const PRESENCE_REPLAYED_MAX: usize = 100;

/// Bytes of one connection's presence data in a topic (`content_too_large`): seed 002's
/// cursor, tool and colour.
pub const PRESENCE_DATA_BYTES_MAX: usize = 4 << 10;
