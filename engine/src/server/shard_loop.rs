//! A shard's tasks: accept, I/O (every upgraded socket, through one epoll set), inbox,
//! flusher, batch timer and housekeeping, and its shutdown.
//!
//! Invariant: the flusher runs after the tasks woken in the same executor turn (it is woken by
//! the first frame queued and queued behind them), so frames of one turn leave in one write.

use std::cell::RefCell;
use std::future::poll_fn;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::admission::{self, Admission, WarnLimiter};
use super::context::Now;
use super::session;
use super::shard::Shard;
use super::shard_msg::ShardMsg;
use crate::config::Config;
use crate::limits::{HOUSEKEEPING_INTERVAL, OUTBOX_RETRY_INTERVAL, SHUTDOWN_GRACE};
use crate::protocol::close;
use crate::runtime::{self, is_out_of_descriptors, Inbox, Listener, SpareFd, Stream};
use crate::stats::ShardStats;

/// Inbox messages handled before the inbox task lets other tasks run.
const INBOX_BATCH_MAX: usize = 1024;

/// Pause after an accept error other than running out of descriptors.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Out of descriptors with nobody waiting, the next look at the backlog comes this much later:
/// a connection arriving meanwhile waits at most this long for its 503.
const OUT_OF_FDS_RETRY: Duration = Duration::from_millis(5);

pub struct ShardContext {
    pub id: usize,
    pub config: Arc<Config>,
    pub listener_fd: RawFd,
    pub peers: Arc<Vec<Inbox<ShardMsg>>>,
    pub stats: Arc<Vec<Arc<ShardStats>>>,
    pub admission: Arc<Admission>,
    pub ready: mpsc::Sender<usize>,
    pub stopped: mpsc::Sender<usize>,
}

type ShardRef = Rc<RefCell<Shard>>;

/// The shard's main future: runs until shutdown has closed every connection (or the grace
/// period ran out).
pub async fn run(ctx: ShardContext) {
    let id = ctx.id;
    let shard: ShardRef = Rc::new(RefCell::new(Shard::new(
        id,
        ctx.config.clone(),
        ctx.peers.clone(),
        ctx.stats.clone(),
        ctx.admission.clone(),
    )));
    let listener = Listener::from_fd(ctx.listener_fd);
    let accept = runtime::spawn(accept_loop(shard.clone(), listener));
    runtime::spawn_detached(io_loop(shard.clone()));
    runtime::spawn_detached(inbox_loop(shard.clone()));
    runtime::spawn_detached(flusher_loop(shard.clone()));
    runtime::spawn_detached(timer_loop(shard.clone()));
    runtime::spawn_detached(housekeeping_loop(shard.clone()));
    let _ = ctx.ready.send(id);

    poll_fn(|cx| {
        let mut sh = shard.borrow_mut();
        if sh.shutting_down {
            Poll::Ready(())
        } else {
            sh.shutdown_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
    drop(accept); // Cancels the accept loop and closes this shard's listening socket.
    shard
        .borrow_mut()
        .close_all(close::GOING_AWAY, "server shutting down", Now::read());
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !shard.borrow().conns.is_empty() && Instant::now() < deadline {
        runtime::sleep(Duration::from_millis(10)).await;
    }
    tracing::debug!(
        shard = id,
        left = shard.borrow().conns.len(),
        "shard stopped"
    );
    shard.borrow_mut().close_remaining();
    let _ = ctx.stopped.send(id);
}

/// Accepts connections for the shard's sessions. Out of descriptors, it refuses the pending
/// connections with the spare descriptor instead of leaving them to hang in the backlog.
async fn accept_loop(shard: ShardRef, listener: Listener) {
    let mut spare = SpareFd::open();
    let mut warnings = WarnLimiter::default();
    loop {
        let e = match listener.accept().await {
            Ok(stream) => {
                runtime::spawn_detached(session::serve_accepted(shard.clone(), stream));
                continue;
            }
            Err(e) => e,
        };
        let mut refused = 0;
        let out_of_fds = is_out_of_descriptors(&e);
        if out_of_fds && spare.release() {
            refused = admission::refuse_pending(&shard, &listener).await;
            spare.restore();
        }
        if out_of_fds && refused == 0 {
            // Out of descriptors, `accept` fails at once even with nobody waiting: look
            // again shortly (the spare may be back by then, if another shard took it).
            runtime::sleep(OUT_OF_FDS_RETRY).await;
            spare.restore();
            continue;
        }
        shard.borrow().stats.accept_failures.fetch_add(1, RELAXED);
        if let Some(suppressed) = warnings.note(Instant::now()) {
            tracing::warn!(%e, refused, suppressed, "accept failed");
        }
        if !out_of_fds {
            runtime::sleep(ACCEPT_ERROR_BACKOFF).await;
        }
    }
}

/// Serves every upgraded socket of the shard: waits for the epoll set (or for connections to
/// reap or read again), then serves what is ready.
async fn io_loop(shard: ShardRef) {
    loop {
        if shard.borrow_mut().service_io() {
            runtime::yield_now().await;
            continue;
        }
        let made = shard.borrow().poller.readiness();
        let mut readiness = match made {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%e, "cannot wait on the epoll set");
                runtime::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        poll_fn(|cx| {
            let mut sh = shard.borrow_mut();
            if sh.io_pending() {
                return Poll::Ready(());
            }
            sh.io_waker = Some(cx.waker().clone());
            drop(sh);
            readiness.poll_ready(cx)
        })
        .await;
    }
}

async fn inbox_loop(shard: ShardRef) {
    let peers = shard.borrow().peers.clone();
    let id = shard.borrow().id;
    let inbox = &peers[id];
    loop {
        let first = poll_fn(|cx| inbox.poll_pop(cx)).await;
        let mut next = Some(first);
        let mut handled = 0;
        while let Some(msg) = next.take() {
            match msg {
                ShardMsg::Adopt { fd, upgrade } => {
                    let stream = Stream::from_fd(fd);
                    let shard = shard.clone();
                    runtime::spawn_detached(session::upgrade(shard, stream, *upgrade));
                }
                ShardMsg::Shutdown => {
                    let mut sh = shard.borrow_mut();
                    sh.shutting_down = true;
                    if let Some(w) = sh.shutdown_waker.take() {
                        w.wake();
                    }
                }
                other => shard.borrow_mut().on_shard_msg(other, Now::read()),
            }
            handled += 1;
            if handled < INBOX_BATCH_MAX {
                next = inbox.try_pop();
            }
        }
        if handled >= INBOX_BATCH_MAX {
            runtime::yield_now().await;
        }
    }
}

async fn flusher_loop(shard: ShardRef) {
    loop {
        // Wait for work: fresh dirty connections, outbox messages, or the earliest
        // connection the write interval deferred coming due.
        let due = shard.borrow().flush_due();
        let work = poll_fn(|cx| {
            if shard.borrow_mut().flusher_idle(cx.waker()) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        match due {
            Some(due) => {
                let wait = due.saturating_duration_since(Instant::now());
                futures_lite::future::or(work, runtime::sleep(wait)).await;
            }
            None => work.await,
        }
        let (backlog, unfinished) = {
            let mut sh = shard.borrow_mut();
            sh.flush();
            (sh.outbox_len(), sh.flush_unfinished())
        };
        if backlog > 0 {
            runtime::sleep(OUTBOX_RETRY_INTERVAL).await;
        } else if unfinished {
            runtime::yield_now().await;
        }
    }
}

/// Closes batch windows and fires features' timers when they come due.
async fn timer_loop(shard: ShardRef) {
    loop {
        let next = poll_fn(|cx| {
            let mut sh = shard.borrow_mut();
            match sh.next_due() {
                Some(at) => Poll::Ready(at),
                None => {
                    sh.timer_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        let wait = next.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            shard.borrow_mut().timer_sleep_until = Some(next);
            // Something set meanwhile for earlier wakes this task (see `timer_sleep_until`).
            futures_lite::future::or(runtime::sleep(wait), earlier_timer(&shard)).await;
            shard.borrow_mut().timer_sleep_until = None;
        }
        shard.borrow_mut().fire_due(Now::read());
    }
}

/// Resolves when a feature timer due earlier than the current sleep is set.
async fn earlier_timer(shard: &ShardRef) {
    let mut registered = false;
    poll_fn(|cx| {
        let mut sh = shard.borrow_mut();
        if registered && sh.timer_earlier_waker.is_none() {
            return Poll::Ready(());
        }
        registered = true;
        sh.timer_earlier_waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

async fn housekeeping_loop(shard: ShardRef) {
    loop {
        runtime::sleep(HOUSEKEEPING_INTERVAL).await;
        shard.borrow_mut().housekeeping(Now::read());
    }
}
