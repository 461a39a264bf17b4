//! Admission of connections: the server-wide `--max-connections` count, the refusal of
//! connections over it or past the descriptor limit (HTTP 503 with `Retry-After`), and the
//! rate-limited "accept failed" warning.
//!
//! Invariants:
//! - The count of open connections never exceeds the limit: a WebSocket takes a slot before its 101
//!   and gives it back exactly once (when its connection is forgotten, or its upgrade fails).
//! - Out of descriptors, a shard still accepts pending connections (with its spare
//!   descriptor) and answers each at once: `/healthz` with its body, anything else with 503.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::http;
use super::shard::Shard;
use crate::limits::{
    ACCEPT_WARNING_INTERVAL, HANDSHAKE_REQUEST_BYTES_MAX, SPARE_REFUSALS_MAX, SPARE_REQUEST_WAIT,
};
use crate::protocol::handshake::{parse_request, HandshakeError, Route};
use crate::runtime::{self, close_fd, recv_now, send_now, Listener};

/// WebSocket connections open (or being upgraded) on all shards, shared by the shards.
#[derive(Debug)]
pub struct Admission {
    open: AtomicUsize,
    max: usize,
}

/// The server holds `max` connections already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtCapacity {
    pub max: usize,
}

impl Admission {
    pub fn new(max: usize) -> Self {
        assert!(max > 0, "a server admits at least one connection");
        Self {
            open: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes a slot for one more connection, unless all `max` are taken.
    pub fn try_admit(&self) -> Result<(), AtCapacity> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| AtCapacity { max: self.max })
    }

    /// Gives back a slot taken by [`Admission::try_admit`].
    pub fn release(&self) {
        let before = self.open.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "more releases than admissions");
    }
}

/// At most one warning per [`ACCEPT_WARNING_INTERVAL`]; the ones in between are counted.
#[derive(Debug, Default)]
pub struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// A warning happened at `now`: Some(warnings suppressed since the last one logged) when
    /// this one should be logged, None when it is suppressed.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.note_every(now, ACCEPT_WARNING_INTERVAL)
    }

    fn note_every(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

type ShardRef = Rc<RefCell<Shard>>;

/// The shard is out of descriptors and its spare is released: accepts the pending
/// connections (at most [`SPARE_REFUSALS_MAX`]) one at a time and answers each at once.
/// Returns how many it answered (0: none was pending; `accept` fails with EMFILE even then).
pub async fn refuse_pending(shard: &ShardRef, listener: &Listener) -> usize {
    let mut answered = 0;
    while answered < SPARE_REFUSALS_MAX {
        let Ok(fd) = listener.accept_now() else {
            break; // None pending, or another shard took the freed descriptor.
        };
        answer_with_spare(shard, fd).await;
        close_fd(fd);
        answered += 1;
    }
    answered
}

/// Reads the request head for at most [`SPARE_REQUEST_WAIT`]: `/healthz` is answered, the
/// rest gets 503.
async fn answer_with_spare(shard: &ShardRef, fd: std::os::fd::RawFd) {
    let mut buf = vec![0u8; HANDSHAKE_REQUEST_BYTES_MAX];
    let mut len = 0;
    let mut waits = SPARE_REQUEST_WAIT.as_millis() / SPARE_POLL.as_millis();
    let mut health = false;
    while len < buf.len() {
        match recv_now(fd, &mut buf[len..]) {
            Ok(0) => return,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && waits > 0 => {
                waits -= 1;
                runtime::sleep(SPARE_POLL).await;
                continue;
            }
            Err(_) => break,
        }
        match parse_request(&buf[..len]) {
            Ok(None) => continue,
            Ok(Some(req)) => health = req.route == Route::Health,
            Err(_) => {}
        }
        break;
    }
    let sh = shard.borrow();
    let response = if health {
        sh.stats.http_requests.fetch_add(1, RELAXED);
        http::json_response(&http::health_body(&sh.config, sh.shards, &sh.all_stats))
    } else {
        sh.stats.connections_refused.fetch_add(1, RELAXED);
        HandshakeError::NoDescriptors.response()
    };
    // A fresh socket's send buffer takes a response this small whole; if not, the peer
    // gets a cut response and the close, which is all it could get now.
    let _ = send_now(fd, &response);
}

/// Pause between two looks for the request head of a connection accepted with the spare.
const SPARE_POLL: Duration = Duration::from_millis(2);

const RELAXED: Ordering = Ordering::Relaxed;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::REFUSED_RETRY_AFTER_SECS;

    #[test]
    fn admits_up_to_the_limit_and_again_after_a_release() {
        let a = Admission::new(2);
        assert_eq!(a.try_admit(), Ok(()));
        assert_eq!(a.try_admit(), Ok(()));
        assert_eq!(a.try_admit(), Err(AtCapacity { max: 2 }));
        a.release();
        assert_eq!(a.try_admit(), Ok(()));
        assert_eq!(a.try_admit(), Err(AtCapacity { max: 2 }));
    }

    #[test]
    fn warnings_are_limited_and_the_rest_counted() {
        let mut w = WarnLimiter::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(w.note_every(t0, s), Some(0));
        for i in 1..=5 {
            assert_eq!(w.note_every(t0 + Duration::from_millis(i * 100), s), None);
        }
        assert_eq!(w.note_every(t0 + s, s), Some(5));
        assert_eq!(w.note_every(t0 + s + Duration::from_millis(1), s), None);
        assert_eq!(w.note_every(t0 + 3 * s, s), Some(1));
    }

    #[test]
    fn refusals_are_503_with_retry_after() {
        let full = HandshakeError::TooManyConnections { max: 5 }.response();
        let r = String::from_utf8(full).unwrap();
        let retry = format!("Retry-After: {REFUSED_RETRY_AFTER_SECS}\r\n");
        assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
        assert!(r.contains(&retry), "{r}");
        let r = String::from_utf8(HandshakeError::NoDescriptors.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 ") && r.contains(&retry), "{r}");
    }
}
