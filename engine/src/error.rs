//! The engine's error type: what can go wrong starting or running a server.
//!
//! Mistakes of a peer on a connection are not here: they are [`crate::protocol::ProtocolError`]
//! (closes the connection) or [`crate::protocol::AppError`] (an `error` event).

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("address {addr} is already in use")]
    AddrInUse { addr: SocketAddr },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("shard {shard} failed to start: {source}")]
    ShardStart {
        shard: usize,
        source: std::io::Error,
    },
    #[error("shards must be between 1 and {max}, got {shards}")]
    Shards { shards: usize, max: usize },
    #[error("invalid setting {name}: {reason}")]
    Setting { name: &'static str, reason: String },
    #[error("shard {shard} did not stop within {waited_ms} ms")]
    ShutdownTimeout { shard: usize, waited_ms: u64 },
}
