//! Named limits: every queue, buffer and size in the engine is bounded by one of these.
//!
//! Defaults that a user may change live in [`crate::config::Config`]; these are the values
//! behind them and the hard bounds that are not settings.

use std::time::Duration;

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

/// Size of the per-shard scratch buffer every socket read lands in. Only bytes of a frame
/// that is not complete yet are copied to the connection, so idle connections hold none.
pub const READ_SCRATCH_BYTES: usize = 64 * 1024;

/// RFC 6455 5.5: control frame payloads are at most 125 bytes.
pub const CONTROL_PAYLOAD_BYTES_MAX: usize = 125;

/// Longest room name, in bytes. Names travel in every message, so keep them short.
pub const ROOM_NAME_BYTES_MAX: usize = 64;

/// Rooms one connection may be in at once; joining more is the `too_many_rooms` error.
pub const ROOMS_PER_CONNECTION_MAX: usize = 64;

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
