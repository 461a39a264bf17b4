//! The shard core and the server around it: one shard per core on a shared port, each with
//! its connections, topics, routing and local queue (`shard`, `topic_ops`, `context`), its
//! I/O loop and tasks (`session`, `shard_loop`), started and stopped here. It knows no
//! feature: `crate::features` handles every client and feature message through a [`Ctx`].
//!
//! Invariant: `Server::start` returns only when every shard listens, and
//! `ServerHandle::shutdown` returns only when every shard has ended (or reports which did not).

mod admission;
mod api;
mod assets;
mod budget;
mod connection;
mod context;
mod fanout_chunks;
mod frame_chunk;
mod gather;
#[cfg(any(test, feature = "harness"))]
pub mod harness;
mod http;
mod local;
mod send_queue;
mod session;
mod shard;
mod shard_loop;
mod shard_msg;
mod timer;
mod topic;
mod topic_expiry;
mod topic_ops;
mod topic_table;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::limits::{INBOX_MESSAGES_MAX, SHUTDOWN_GRACE};
use crate::runtime::{bind_listeners, spawn_shard, Inbox, ShardThread};
use crate::stats::ShardStats;

pub use budget::Budgets;
pub use connection::Conn;
pub use context::{Ctx, Now};
pub use fanout_chunks::FanoutChunks;
pub use frame_chunk::FrameChunk;
pub use gather::{GatherRef, Gathered, GATHERS_PER_SHARD_MAX};
pub use local::{Closed, Dropped};
pub use send_queue::SendQueue;
pub use shard::Shard;
pub use shard_msg::{ConnRef, ShardMsg, SHARD_MSG_BYTES_MAX};
pub use timer::{TimersFull, TIMERS_PER_SHARD_MAX};
pub use topic::{Topic, TopicOwner};

/// Entry point for embedding the engine.
pub struct Server;

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    peers: Arc<Vec<Inbox<ShardMsg>>>,
    stats: Arc<Vec<Arc<ShardStats>>>,
    threads: Vec<ShardThread>,
    stopped: mpsc::Receiver<usize>,
}

impl Server {
    /// Binds the address and starts the shards.
    pub fn start(config: Config) -> Result<ServerHandle, Error> {
        config.validate()?;
        let shards = config.shard_count();
        let (addr, fds) = bind_listeners(config.addr, shards)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let peers: Arc<Vec<Inbox<ShardMsg>>> = Arc::new(
            (0..shards)
                .map(|_| Inbox::new(INBOX_MESSAGES_MAX))
                .collect(),
        );
        let stats: Arc<Vec<Arc<ShardStats>>> =
            Arc::new((0..shards).map(|_| Arc::default()).collect());
        let max_connections = config.connection_limit();
        if let Some(fds) = crate::runtime::descriptor_limit() {
            if max_connections as u64 >= fds {
                tracing::warn!(
                    max_connections,
                    fds,
                    "max-connections is not below the descriptor limit (RLIMIT_NOFILE): \
                     connections past it are refused with the spare descriptor"
                );
            }
        }
        let admission = Arc::new(admission::Admission::new(max_connections));
        let config = Arc::new(config);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stopped_tx, stopped) = mpsc::channel();
        let mut threads = Vec::with_capacity(shards);
        for (id, fd) in fds.into_iter().enumerate() {
            let cpu = config.pin.then_some(id % cpus);
            let ctx = shard_loop::ShardContext {
                id,
                config: config.clone(),
                listener_fd: fd,
                peers: peers.clone(),
                stats: stats.clone(),
                admission: admission.clone(),
                ready: ready_tx.clone(),
                stopped: stopped_tx.clone(),
            };
            let thread = spawn_shard(id, cpu, move || shard_loop::run(ctx))
                .map_err(|source| Error::ShardStart { shard: id, source })?;
            threads.push(thread);
        }
        for _ in 0..shards {
            ready_rx.recv().map_err(|_| Error::ShardStart {
                shard: usize::MAX,
                source: std::io::Error::other("a shard ended during startup"),
            })?;
        }
        let cores = if config.pin {
            format!("{:?}", (0..shards).map(|i| i % cpus).collect::<Vec<_>>())
        } else {
            "unpinned".to_string()
        };
        tracing::info!(%addr, shards, %cores, max_connections, "corecast listening");
        Ok(ServerHandle {
            addr,
            peers,
            stats,
            threads,
            stopped,
        })
    }
}

impl ServerHandle {
    /// The bound address (with the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shards(&self) -> usize {
        self.peers.len()
    }

    /// Counters summed over all shards, as JSON (the same object `/healthz` shows).
    pub fn stats_json(&self) -> String {
        ShardStats::sum_json(&self.stats)
    }

    /// Per-shard counters.
    pub fn shard_stats(&self) -> &[Arc<ShardStats>] {
        &self.stats
    }

    /// Stops accepting, closes every connection with 1001 and waits for the shards to end.
    pub fn shutdown(self) -> Result<(), Error> {
        for inbox in self.peers.iter() {
            let mut msg = ShardMsg::Shutdown;
            while let Err(back) = inbox.push(msg) {
                msg = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            inbox.ring();
        }
        let waited = SHUTDOWN_GRACE + Duration::from_secs(2);
        let deadline = Instant::now() + waited;
        let mut remaining = self.threads.len();
        while remaining > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stopped.recv_timeout(left) {
                Ok(_) => remaining -= 1,
                Err(_) => {
                    return Err(Error::ShutdownTimeout {
                        shard: self.threads.len() - remaining,
                        waited_ms: waited.as_millis() as u64,
                    })
                }
            }
        }
        for t in self.threads {
            if let Err(e) = t.join() {
                tracing::warn!(%e, "shard ended with an error");
            }
        }
        Ok(())
    }
}
