//! A connection's state as its shard keeps it: the socket's descriptor, what is being read
//! (a partial frame, a fragmented message), the send queue, topics, user, liveness, close
//! phase, and the features' state for it. No task and no buffer per connection: the shard's I/O loop serves every socket.
//!
//! Invariant: a connection past [`Phase::Open`] is in no topic and receives no more data
//! frames; only its close frame and control frames remain to be written.

use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use super::send_queue::SendQueue;
use crate::features::ConnState;
use crate::identity::{TokenBucket, User};
use crate::protocol::Assembler;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Open,
    /// A close frame is queued. `peer_closed`: the peer's close was seen (or its stream
    /// ended), so the connection ends once the queue is written. Forced at `deadline`.
    Closing {
        peer_closed: bool,
        deadline: Instant,
    },
    /// Finished: the shard's I/O loop forgets the connection and closes the socket.
    Done,
}

/// What is being read from a connection.
#[derive(Debug)]
pub struct Reader {
    pub assembler: Assembler,
    /// Bytes of a frame that has not fully arrived.
    pub partial: Vec<u8>,
    /// A protocol error made the byte stream meaningless: discard input until the end.
    pub broken: bool,
    /// A protocol error closed the connection but left the framing intact (a binary or
    /// oversized message, bad UTF-8): frames are still parsed, only to find the peer's close.
    pub draining: bool,
    /// Bytes of a frame being skipped while `draining` that have not arrived yet.
    pub skip: usize,
}

impl Reader {
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            assembler: Assembler::new(max_message_bytes),
            partial: Vec::new(),
            broken: false,
            draining: false,
            skip: 0,
        }
    }

    /// Bytes held for input not complete yet: a partial frame and a fragmented message.
    pub fn held_bytes(&self) -> usize {
        self.partial.capacity() + self.assembler.buffered_bytes()
    }

    /// Whether a frame or a message has started and not completed.
    pub fn incomplete(&self) -> bool {
        !self.partial.is_empty() || self.assembler.in_message()
    }
}

#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub fd: RawFd,
    pub queue: SendQueue,
    pub phase: Phase,
    /// Queued in the shard's dirty list, waiting for the flusher.
    pub in_dirty: bool,
    /// The socket was full: writability is watched and the flusher skips the connection
    /// until the socket takes more.
    pub write_blocked: bool,
    /// Writability is watched in the epoll set (while `write_blocked`).
    pub write_interest: bool,
    /// The flusher writes this connection no earlier than this (`--write-interval-ms` after
    /// its last write).
    pub write_due: Instant,
    pub reader: Reader,
    /// Joined topics: (topic key, member slot in that topic).
    pub topics: Vec<(usize, usize)>,
    /// Joins sent to a topic's owner, not answered yet.
    pub pending_joins: Vec<Arc<str>>,
    pub last_rx: Instant,
    pub ping_sent: Option<Instant>,
    /// Listed in the shard's `paused_readers`, waiting for reading to resume.
    pub read_paused: bool,
    /// Who this connection speaks for: a logged-in user, or (once it needed a name) a guest.
    pub user: Option<Arc<User>>,
    /// `user` is a real user (token or `auth:login`), not a guest.
    pub authenticated: bool,
    /// The `exp` of the token the user came with (Unix seconds): housekeeping closes the
    /// connection with 4001 once it (plus `--jwt-leeway-secs`) has passed.
    pub token_exp: Option<u64>,
    /// `--rate-limit` on messages with content (None until the first).
    pub content_bucket: Option<TokenBucket>,
    /// Last client message (not pings).
    pub last_active: Instant,
    /// Since when a frame or message has been incomplete (see `Reader::incomplete`).
    pub incomplete_since: Option<Instant>,
    /// Budget on frames received, of every kind (None until the first frame).
    pub frame_bucket: Option<TokenBucket>,
    /// Request budget (None until the first message).
    pub request_bucket: Option<TokenBucket>,
    /// The peer's address (None when the socket could not tell), for its address's budget.
    pub ip: Option<IpAddr>,
    /// What each feature keeps for this connection.
    pub features: ConnState,
    /// Taken out of its topics and its user's devices (the close event is queued).
    pub disconnected: bool,
    /// Cut off as a slow consumer (its close frame may never leave).
    pub cut: bool,
    /// The close handshake ran out of time: if the kernel still holds bytes for the peer,
    /// the socket is reset rather than left to drain in FIN-WAIT-1.
    pub reset_on_close: bool,
}

impl Conn {
    /// Lists this connection (slab key `key`) in the shard's `dirty` list for the flusher,
    /// unless it is listed already or waits for writability. Whether it was newly listed.
    pub fn list_dirty(&mut self, key: usize, dirty: &mut Vec<(usize, u64)>) -> bool {
        if self.in_dirty || self.write_blocked {
            return false;
        }
        self.in_dirty = true;
        dirty.push((key, self.id));
        true
    }

    pub fn new(
        id: u64,
        fd: RawFd,
        send_queue_bytes: usize,
        max_message_bytes: usize,
        now: Instant,
    ) -> Self {
        Self {
            id,
            fd,
            queue: SendQueue::new(send_queue_bytes),
            phase: Phase::Open,
            in_dirty: false,
            write_blocked: false,
            write_interest: false,
            reader: Reader::new(max_message_bytes),
            topics: Vec::new(),
            pending_joins: Vec::new(),
            last_rx: now,
            write_due: now,
            ping_sent: None,
            read_paused: false,
            user: None,
            authenticated: false,
            token_exp: None,
            content_bucket: None,
            last_active: now,
            incomplete_since: None,
            frame_bucket: None,
            request_bucket: None,
            ip: None,
            features: ConnState::default(),
            disconnected: false,
            cut: false,
            reset_on_close: false,
        }
    }

    /// The logged-in user, if any.
    pub fn authenticated_user(&self) -> Option<&Arc<User>> {
        self.user.as_ref().filter(|_| self.authenticated)
    }

    /// The name this connection speaks under: its user, or a guest identity made once.
    pub fn speaker(&mut self) -> Arc<User> {
        self.user
            .get_or_insert_with(|| User::guest(self.id))
            .clone()
    }

    /// Topics joined and joining.
    pub fn in_topic_count(&self) -> usize {
        self.topics.len() + self.pending_joins.len()
    }

    /// The token this connection's socket reports in the shard's epoll set.
    pub fn token(&self, key: usize) -> u64 {
        (key as u64) | (self.id << 32)
    }
}
