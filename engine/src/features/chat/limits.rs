//! The chat feature's limits: what one connection, user or room may make the owner hold or
//! send, each with its reason.

use std::time::Duration;

/// Rooms per connection whose last typing state and read mark are remembered for conflation
/// (repeats are free); as many as a connection may join.
pub const CONVERSATION_TRACKED_ROOMS_MAX: usize = crate::limits::TOPICS_PER_CONNECTION_MAX;

/// A `typing:start` repeated sooner than this after the last one forwarded is conflated: the
/// room already shows the user typing for `TYPING_TTL` (3 s).
pub const TYPING_REFRESH_MIN: Duration = Duration::from_secs(1);

/// Longest room description, in bytes (`room:create`).
pub const ROOM_DESCRIPTION_BYTES_MAX: usize = 256;

/// Longest room password, in bytes (`room:create`, `room:join`).
pub const ROOM_PASSWORD_BYTES_MAX: usize = 128;

/// Rooms one connection may make with `room:create` (`room_quota`).
pub const ROOMS_CREATED_PER_CONNECTION_MAX: u32 = 10;

/// Rooms one user (or guest) may have made on each shard and not yet expired (`room_quota`):
/// 199,625 `room:create` from one guest once filled a shard's table.
pub const ROOMS_CREATED_PER_USER_MAX: u32 = 50;

/// Messages `room:joined` carries from the history (seed 001's recent count).
pub const JOIN_RECENT_MESSAGES: usize = 50;

/// Users listed in `room:joined` and `presence:list`; the rest are counted in `more`.
pub const ROOM_USERS_LISTED_MAX: usize = 1000;

/// Most bytes of messages one reply carries (`room:joined`'s recent messages, a
/// `message:history` page; a quarter of `--send-queue-bytes` when that is less), so a reply
/// fits the asker's send queue: a page of 100 messages of 16 KiB once cut the asker with 1008.
/// A page cut short by bytes says `hasMore`, and the client pages on with `before`.
pub const HISTORY_REPLY_BYTES_MAX: usize = 256 * 1024;

/// Default page of `message:history`.
pub const HISTORY_PAGE_DEFAULT: usize = 50;

/// Largest page of `message:history`; a bigger `limit` is `invalid_field`.
pub const HISTORY_PAGE_MAX: usize = 100;

/// Read marks (per-user unread counters) one room keeps; users past it count no unread.
pub const ROOM_READ_MARKS_MAX: usize = 10_000;

/// Rooms one `room:list` answer carries; `truncated` says when there were more.
pub const ROOM_LIST_MAX: usize = 1000;

/// `@mentions` one message may notify; more are ignored (a message is not a mass mailing).
pub const MENTIONS_PER_MESSAGE_MAX: usize = 20;

/// Typing users shown in `typing:update`; the rest are counted in `more`.
pub const TYPING_USERS_SHOWN_MAX: usize = 10;

/// A typing user expires after this long without a refresh (seed 001).
pub const TYPING_TTL: Duration = Duration::from_secs(3);
