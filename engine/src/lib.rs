//! corecast: a sharded, thread-per-core WebSocket engine for rooms, chat, collaboration and games.
//!
//! Layers, from the bottom up (each uses only the ones below it, with one seam: the core in
//! [`server`] names the feature registry's types, `features::{Features, FeatureMsg, OwnedMsg,
//! ConnState, FeatureId}`, and nothing inside a feature):
//! - [`protocol`]: RFC 6455 frames, the HTTP upgrade, JSON messages. Pure functions, no I/O.
//! - [`runtime`]: executors pinned per core, sockets, timers, cross-shard inboxes, placement.
//!   The only module that touches glommio.
//! - [`identity`]: users, guests, tokens and token buckets. State only.
//! - [`stream`]: message ids, history and batching of one topic. State only.
//! - [`server`]: the shard core, which knows no feature: connections and their send queues,
//!   the I/O loop, topics (membership, fan-out, streams), routing to owners, the shard-local
//!   queue, scatter-gather and timers; startup and shutdown.
//! - [`features`]: one folder per feature (chat, users), each reaching the core only through
//!   a context; registered in `features/mod.rs`.
//!
//! The binary (`main.rs`) adds configuration files, the CLI and signals.

pub mod config;
pub mod error;
pub mod features;
pub mod identity;
pub mod limits;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod stream;

pub use config::Config;
pub use error::Error;
pub use server::{Server, ServerHandle};
