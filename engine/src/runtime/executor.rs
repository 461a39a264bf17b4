//! Shard threads: one glommio executor each, pinned to a CPU (or unbound, for tests).
//!
//! Invariant: a shard's future and everything it spawns run on that shard's thread only.

use std::future::Future;
use std::io;

use glommio::{LocalExecutorBuilder, Placement};

use crate::limits::IO_MEMORY_BYTES;

/// A running shard thread.
pub struct ShardThread {
    handle: glommio::ExecutorJoinHandle<()>,
}

impl ShardThread {
    /// Waits for the shard's thread to end.
    pub fn join(self) -> io::Result<()> {
        self.handle
            .join()
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Starts shard `id` on its own thread, pinned to `cpu` when given, running `make()`'s future
/// until it completes.
pub fn spawn_shard<G, F>(id: usize, cpu: Option<usize>, make: G) -> io::Result<ShardThread>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let handle = LocalExecutorBuilder::new(placement)
        .name(&format!("shard-{id}"))
        .io_memory(IO_MEMORY_BYTES)
        .spawn(make)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(ShardThread { handle })
}
