//! corecast: a sharded, thread-per-core WebSocket engine for rooms, chat, collaboration and games.
//!
//! Layers, from the bottom up (each only uses the ones below it):
//! - [`protocol`]: RFC 6455 frames, the HTTP upgrade, JSON messages. Pure functions, no I/O.
//! - [`runtime`]: executors pinned per core, sockets, timers, cross-shard inboxes, placement.
//!   The only module that touches glommio.
//! - [`rooms`]: rooms, their members, history, typing and batching; state owned by one shard.
//! - [`users`]: identities, presence, notifications and rate limits; state owned by one shard.
//! - [`server`]: the shard's event handling, connections and their send queues, startup and
//!   shutdown; ties the layers together.
//!
//! The binary (`main.rs`) adds configuration files, the CLI and signals.

pub mod config;
pub mod error;
pub mod limits;
pub mod protocol;
pub mod rooms;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod users;

pub use config::Config;
pub use error::Error;
pub use server::{Server, ServerHandle};
