//! Named limits: every queue, buffer and size in the engine is bounded by one of these.
//!
//! Defaults that a user may change live in [`crate::config::Config`]; these are the values
//! behind them and the hard bounds that are not settings.

use std::time::Duration;

// Each feature's limits live in its folder; they are re-exported here so that every limit
// of the engine can be read (and referred to) in one place.
pub use crate::features::chat::limits::*;
pub use crate::features::docs::limits::*;
pub use crate::features::users::limits::*;
// Bounds of the core's structures, kept beside them.
pub use crate::server::{GATHERS_PER_SHARD_MAX, SHARD_MSG_BYTES_MAX, TIMERS_PER_SHARD_MAX};

/// Largest WebSocket message accepted from a client, after reassembly (`--max-message-bytes`).
/// Bigger messages close the connection with 1009. 64 KiB fits any chat or game message.
pub const MESSAGE_BYTES_DEFAULT: usize = 64 * 1024;

/// Bytes of HTTP request head accepted before the upgrade; more is answered with 431.
/// Browsers send well under 2 KiB; 8 KiB leaves room for cookies and long tokens.
pub const HANDSHAKE_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Time a client has to send its whole upgrade request; slow clients are dropped.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Bytes a connection may have queued for sending before it is closed as a slow consumer
/// (1008). Bounds the memory one stalled reader can pin; ~10k chat messages.
pub const SEND_QUEUE_BYTES_DEFAULT: usize = 1024 * 1024;

/// Bytes handed to one `send()` call. The kernel's cost is per call, not per byte, but a
/// larger buffer only faults in fresh pages without saving calls on loopback.
pub const WRITE_BYTES_MAX: usize = 64 * 1024;

/// A room's first fan-out chunk on a shard (see `server::FrameChunk`): fan-outs copy their
/// frame into it once and members queue ranges of it. Small, so a quiet room holds little.
pub const FANOUT_CHUNK_BYTES_MIN: usize = 4 * 1024;

/// Largest fan-out chunk. A room's chunks double up to this while members still hold the
/// last one; a 1000-member room at 4000 messages/s fills one about every 100 ms.
pub const FANOUT_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// Fan-out frames larger than this (history pages, big documents) are queued by themselves,
/// as shared `Bytes`, so one of them does not force a fresh chunk.
pub const FANOUT_FRAME_BYTES_MAX: usize = 16 * 1024;

/// Connections a flush pass writes between looks at the epoll set. A message read mid-pass
/// joins the queues of the members the pass has not reached yet, so it waits for at most one
/// pass instead of the rest of this one and the whole next (~4 µs per loopback send: 64
/// sends are ~0.3 ms between looks).
pub const FLUSH_SLICE_CONNS: usize = 64;

/// Connections one flush call writes before the flusher yields to the shard's other tasks
/// (timers, inbox, accepts), so a pass that keeps finding new work cannot starve them.
pub const FLUSH_TURN_CONNS_MAX: usize = 1024;

/// With `--write-interval-ms`, how long after the earliest deferred connection is due the
/// flusher comes back for it: one wake-up then serves every connection that came due in
/// between, instead of one wake-up per connection. A write leaves at most this late, never
/// early.
pub const WRITE_DUE_SLACK: Duration = Duration::from_millis(1);

/// Size of the per-shard scratch buffer every socket read lands in. Only bytes of a frame
/// that is not complete yet are copied to the connection, so idle connections hold none.
pub const READ_SCRATCH_BYTES: usize = 64 * 1024;

/// RFC 6455 5.5: control frame payloads are at most 125 bytes.
pub const CONTROL_PAYLOAD_BYTES_MAX: usize = 125;

/// Longest room name, in bytes. Names travel in every message, so keep them short.
pub const ROOM_NAME_BYTES_MAX: usize = 64;

/// Longest `ref` a client may attach to a message, in bytes of JSON.
pub const REF_BYTES_MAX: usize = 128;

/// Messages one cross-shard inbox holds. A full inbox makes the sender keep messages in its
/// outbox (below) and retry; it never blocks an executor.
pub const INBOX_MESSAGES_MAX: usize = 64 * 1024;

/// Messages a shard may hold in its outboxes for full peer inboxes before it stops reading
/// from its clients (back-pressure to the publishers over TCP). Reading resumes at half.
pub const OUTBOX_MESSAGES_MAX: usize = 64 * 1024;

/// How long a retry waits when a peer shard's inbox was full.
pub const OUTBOX_RETRY_INTERVAL: Duration = Duration::from_millis(1);

/// Time the server waits for the client's close frame after sending its own.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Time a connection cut off as a slow consumer has to take its 1008 close frame before its
/// socket is reset. Its reader is stalled, so its kernel send buffer (up to ~4 MB on loopback)
/// would otherwise stay pinned in FIN-WAIT-1 long after the descriptor is closed.
pub const SLOW_CONSUMER_LINGER: Duration = Duration::from_millis(500);

/// Budget units one client message costs per this many bytes of its text, on top of its
/// type's base cost (see `server::budget::cost`): big messages cost more to parse and relay.
pub const REQUEST_COST_BYTES: usize = 1024;

/// Default request budget of one connection, in cost units (`--request-rate`): 300 a second
/// sustained, twice that as a burst; a game client at 60 Hz uses a fifth.
pub const REQUEST_RATE_DEFAULT: &str = "600/2s";

/// Default request budget of one user over all their devices on a shard
/// (`--user-request-rate`), so several devices are not several budgets.
pub const USER_REQUEST_RATE_DEFAULT: &str = "1200/2s";

/// Default request budget of one source address over all its connections on a shard
/// (`--ip-request-rate`), so a script opening 40 connections is not 40 budgets. Load tests
/// and servers behind a proxy (every connection from one address) set it `off`.
pub const IP_REQUEST_RATE_DEFAULT: &str = "2000/2s";

/// Default frames a connection may send per second, of every kind (data, continuation, ping);
/// a connection holds a second's worth as a burst. More closes it with 1008 (counted in
/// `frame_flood_closes`): 161M empty continuation frames in 3 s once starved a shard. Far
/// above any real client (a game at 60 Hz, a loadgen publisher at 16k messages/s).
pub const FRAMES_PER_SEC_DEFAULT: u32 = 50_000;

/// Default time a client has to complete a frame or a fragmented message it started
/// (`--message-timeout-ms`); past it the connection is closed with 1008
/// (`incomplete_timeouts`). A 64 KiB message takes under 10 s even at 56 kbit/s; without it
/// 4,000 connections parked 64 KiB each for a minute.
pub const INCOMPLETE_MESSAGE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Default bytes a shard holds for incomplete frames and fragmented messages over all its
/// connections (`--incomplete-bytes-per-shard`). A connection whose input would grow it past
/// this is closed with 1013 (try again later, `incomplete_budget_closes`), so parked partial
/// messages cannot exhaust memory: 20,000 such connections once held 2.6 GB.
pub const INCOMPLETE_BYTES_PER_SHARD_DEFAULT: usize = 64 * 1024 * 1024;

/// Time a shard waits on shutdown for its clients to answer the 1001 close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Default interval of idle pings; a connection silent for two intervals is closed.
pub const PING_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);

/// How often each shard checks connection deadlines (handshake, ping, close linger).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);

/// The seed's batching window: messages within 50 ms of a room's last flush travel together.
pub const BATCH_WINDOW_DEFAULT: Duration = Duration::from_millis(50);

/// The seed's batch size: at most 10 messages in one `batch` frame.
pub const BATCH_MESSAGES_DEFAULT: usize = 10;

/// Upper bound on `--batch-max`, so one batch frame stays far below any client's limit.
pub const BATCH_MESSAGES_MAX: usize = 1000;

/// io_uring registered buffer memory per executor. glommio's default (10 MiB, registered
/// several times) exceeds the 8 MiB memlock limit of many hosts; we do not use its buffers.
pub const IO_MEMORY_BYTES: usize = 1024 * 1024;

/// Shards a server may run; the room hash spreads rooms over at most this many.
pub const SHARDS_MAX: usize = 256;

/// Longest username, in bytes. Names travel in every message a user sends.
pub const USERNAME_BYTES_MAX: usize = 32;

/// Longest user id (a token's `sub`), in bytes.
pub const USER_ID_BYTES_MAX: usize = 128;

/// Connections one room may hold across all shards; joining more is `room_full`. Also the
/// largest `maxUsers`. Bounds the work one message can cause: a frame reference queued per
/// member.
pub const ROOM_MEMBERS_MAX: usize = 100_000;

/// Topics one shard owns: rooms (including empty ones kept for their history) and documents;
/// making more is `room_limit`, after the topic empty the longest has made way. Together with
/// `--history-messages` it bounds history memory: at the extreme, 100,000 rooms x 1000
/// messages x ~200 bytes is ~20 GB per shard, so hosts with many busy rooms should keep fewer
/// messages per room.
pub const TOPICS_PER_SHARD_MAX: usize = 100_000;

/// Topics one connection may be in at once, rooms and documents together; joining more is
/// `too_many_rooms`. Each costs the connection a membership entry and its shard a member slot
/// that every message to the topic walks.
pub const TOPICS_PER_CONNECTION_MAX: usize = 64;

/// Default time an owned room with no members is kept, with its history and settings, before
/// it is forgotten (`--room-ttl-secs`): rooms were kept forever, so guests could fill a
/// shard's table with rooms they left.
pub const ROOM_TTL_DEFAULT: Duration = Duration::from_secs(3600);

/// Empty rooms one housekeeping tick forgets at most, so a tick stays short; the rest wait
/// for the next tick (four a second).
pub const ROOMS_EXPIRED_PER_TICK_MAX: usize = 1000;

/// Default number of messages kept per room (`--history-messages`), as seed 001 keeps.
pub const HISTORY_MESSAGES_DEFAULT: usize = 1000;

/// Upper bound on `--history-messages`.
pub const HISTORY_MESSAGES_MAX: usize = 100_000;

/// Default bytes of history one room keeps (`--history-bytes-per-room`), counting each
/// message's overhead (`stream::history::ENTRY_OVERHEAD_BYTES`): a thousand 1 KB messages.
/// With the count it bounds a room; the shard's budget below bounds them all.
pub const HISTORY_BYTES_PER_ROOM_DEFAULT: usize = 1024 * 1024;

/// Default bytes of history all of a shard's rooms keep together
/// (`--history-bytes-per-shard`); past it the quietest rooms lose their oldest messages first
/// (`history_trimmed`). Without it 12 guests took RSS from 38 to 494 MB in 9 s.
pub const HISTORY_BYTES_PER_SHARD_DEFAULT: usize = 256 * 1024 * 1024;

/// Default idle time after which a user whose every device is idle goes away (seed 001).
pub const AWAY_AFTER_DEFAULT: Duration = Duration::from_secs(300);

/// Default largest `content` of a chat or direct message, in bytes of JSON; more is
/// `content_too_large` (`--max-content-bytes`).
pub const CONTENT_BYTES_DEFAULT: usize = 16 * 1024;

/// Users (with their notifications) one shard's directory keeps. Connected users always have
/// a record (they are bounded by the connections); beyond this, a user going offline is
/// forgotten, and a notification for an unknown user is dropped; both count in
/// `users_evicted`.
pub const USERS_PER_SHARD_MAX: usize = 1_000_000;

/// Largest HTTP request body accepted by `/api/*`; more is 413.
pub const API_BODY_BYTES_MAX: usize = 64 * 1024;

/// `room:list` requests in flight per shard, each waiting for every shard's part; a request
/// beyond it is answered with the `busy` error.
pub const ROOM_LIST_GATHERS_MAX: usize = 10_000;

/// Descriptors kept out of `--max-connections`' default for the process as a whole: stdio,
/// the log, the config file, and sockets still in their handshake or answering `/healthz`
/// and the API (those are not counted as connections).
pub const FDS_RESERVED: usize = 64;

/// Descriptors kept out of `--max-connections`' default per shard: its listening socket,
/// epoll set, io_uring rings and their eventfds, the spare descriptor, and the duplicate
/// each upgrade holds for a moment.
pub const FDS_RESERVED_PER_SHARD: usize = 16;

/// `--max-connections` when the descriptor limit cannot be read (unlimited).
pub const CONNECTIONS_DEFAULT_MAX: usize = 1_000_000;

/// `Retry-After` of a 503 for a connection refused at the connection or descriptor limit:
/// long enough that a reconnecting fleet does not hammer a full server, short enough that a
/// client gets in soon after others leave.
pub const REFUSED_RETRY_AFTER_SECS: u64 = 2;

/// How long a connection accepted with the spare descriptor may take to send its request
/// head (to tell `/healthz` from the rest, which get 503). The shard accepts nothing else
/// meanwhile, so this is short; a browser's request follows the connect within a round trip.
pub const SPARE_REQUEST_WAIT: Duration = Duration::from_millis(100);

/// Pending connections refused in one go while the spare descriptor is released; then the
/// spare is taken back before the next accept.
pub const SPARE_REFUSALS_MAX: usize = 64;

/// Least time between two "accept failed" warnings of a shard; the ones in between are
/// counted and the count is logged with the next warning.
pub const ACCEPT_WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// Default clock skew allowed for a token's `exp`, `nbf` and `iat` (`--jwt-leeway-secs`):
/// enough for hosts kept in sync by NTP, short enough that an expired token dies quickly.
pub const JWT_LEEWAY_DEFAULT: Duration = Duration::from_secs(5);

/// Upper bound on `--jwt-leeway-secs`: a larger skew is a broken clock, not a leeway.
pub const JWT_LEEWAY_MAX: Duration = Duration::from_secs(300);

/// Default time an offline user's record (with their notifications) is kept after their last
/// connection closed (`--user-ttl-secs`): a day, so notifications wait overnight.
pub const USER_TTL_DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);

/// Default `--subprotocols`: corecast's own name, and the names seed clients offer (seed
/// 002's browser client asks for `v1`, `v2`); all speak the same JSON protocol.
pub const SUBPROTOCOLS_DEFAULT: &str = "corecast.v1,json,v1";
