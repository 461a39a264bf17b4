//! The runtime layer: executors pinned per core, sockets, timers and cross-shard inboxes.
//! It is the only module that touches glommio, so the rest of the engine does not depend on
//! glommio's API.

mod executor;
mod inbox;
mod net;
mod placement;
mod poller;

pub use executor::{spawn_shard, ShardThread};
pub use inbox::Inbox;
pub use net::{
    bind_listeners, descriptor_limit, is_out_of_descriptors, peer_ip, send_now, Listener, SpareFd,
    Stream,
};
pub use placement::{connection_id, owner_shard, shard_of};
pub use poller::{
    close_fd, recv_now, reset_fd, unsent_bytes, Poller, Readiness, Ready, EVENTS_PER_WAIT_MAX,
};

use std::future::Future;
use std::time::Duration;

/// A task on the current shard; dropping the handle cancels it.
pub struct Task<T>(glommio::Task<T>);

/// Runs `fut` on the current shard; dropping the returned [`Task`] cancels it.
pub fn spawn<T: 'static>(fut: impl Future<Output = T> + 'static) -> Task<T> {
    Task(glommio::spawn_local(fut))
}

/// Runs `fut` on the current shard until it finishes on its own.
pub fn spawn_detached<T: 'static>(fut: impl Future<Output = T> + 'static) {
    glommio::spawn_local(fut).detach();
}

impl<T> Task<T> {
    /// Waits for the task's result.
    pub async fn join(self) -> T {
        self.0.await
    }
}

/// Sleeps on the current shard's timer.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await
}

/// Lets the other tasks of this shard run before continuing.
pub async fn yield_now() {
    futures_lite::future::yield_now().await
}
