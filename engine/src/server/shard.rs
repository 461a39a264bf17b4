//! One shard's state and its core: connections, client messages in, messages to and from
//! other shards, and the flush pass that writes to sockets. Room features live in
//! `room_ops.rs`, user features in `user_ops.rs`; both are more `impl Shard`.
//!
//! Invariants:
//! - Only this shard's thread touches a `Shard`; no locks on the message path.
//! - Work for a room or a user is done by its owner shard; a shard reaches the owner with
//!   [`Shard::route`], which is a plain call when the owner is itself. So every owner sees one
//!   order of events, whatever shard they came from.
//! - A room's owner assigns message ids and encodes each message (or batch) once; every
//!   recipient on every shard gets the same `Bytes`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use simd_json::prelude::*;
use slab::Slab;

use super::admission::Admission;
use super::budget::{self, Addresses, Budgets};
use super::connection::{Conn, Phase};
use super::fanout_chunks::FanoutChunks;
use super::room_ops::Gather;
use super::shard_msg::{connection_id, shard_of, ConnRef, NotificationOp, RoomQuery, ShardMsg};
use crate::config::Config;
use crate::limits::{
    CLOSE_LINGER, FLUSH_SLICE_CONNS, FLUSH_TURN_CONNS_MAX, OUTBOX_MESSAGES_MAX, READ_SCRATCH_BYTES,
    SLOW_CONSUMER_LINGER, USERS_PER_SHARD_MAX, WRITE_BYTES_MAX, WRITE_DUE_SLACK,
};
use crate::protocol::close;
use crate::protocol::event;
use crate::protocol::frame::{close_frame, server_frame, OP_PING};
use crate::protocol::message::{interpret, parse_json, AppError, ClientMessage};
use crate::rooms::RoomTable;
use crate::runtime::{owner_shard, send_now, Inbox, Poller, Ready, EVENTS_PER_WAIT_MAX};
use crate::stats::ShardStats;
use crate::users::{Directory, RateLimit, Status, TokenBucket, User, Verdict, SYSTEM_USER_ID};

/// A user with connections on this shard.
#[derive(Debug)]
pub struct LocalUser {
    pub conns: Vec<usize>,
    /// Their status as the user's owner last said.
    pub status: Status,
    /// The user's request budget on this shard (None until their first message).
    pub bucket: Option<TokenBucket>,
}

/// Milliseconds since the Unix epoch, for message timestamps.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub config: Arc<Config>,
    pub conns: Slab<Conn>,
    pub rooms: RoomTable,
    /// Connections with frames queued since the last flush pass.
    pub(super) dirty: Vec<(usize, u64)>,
    /// Least time between two writes to one connection (`--write-interval-ms`).
    write_interval: Duration,
    /// Dirty connections written too recently, by when they are due (`--write-interval-ms`).
    /// Each connection is here at most once (it stays `in_dirty`), so this is bounded by the
    /// shard's connections.
    deferred: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    flusher: Option<Waker>,
    pub peers: Arc<Vec<Inbox<ShardMsg>>>,
    /// Messages for peers whose inbox was full, in order, per peer.
    outboxes: Vec<VecDeque<ShardMsg>>,
    outbox_len: usize,
    ring: Vec<bool>,
    /// Reading from clients stops while the outboxes are at their limit.
    pub reading_paused: bool,
    /// Connections whose session stopped reading while paused; each appears once (see
    /// `Conn::read_paused`), so this never holds more than the shard's connections.
    pub paused_readers: Vec<usize>,
    /// Reused for lists of connection keys: members a fan-out found with full queues (cut
    /// off after it, since the cut changes the room), or a room's members copied before a
    /// loop that may change the room. No allocation per message.
    pub member_scratch: Vec<usize>,
    /// Each room's chunk, where its fan-outs copy their frames for the members' queues.
    pub fanout_chunks: FanoutChunks,
    /// Users this shard owns (see `users::Directory`).
    pub directory: Directory,
    /// Users with connections on this shard, by user id.
    pub local_users: HashMap<Arc<str>, LocalUser>,
    /// `room:list` requests of this shard's connections waiting for every shard's part.
    pub gathers: Slab<Gather>,
    /// Owned rooms with someone typing (checked for expiry by housekeeping).
    pub typing_rooms: HashSet<Arc<str>>,
    pub rate_limit: Option<RateLimit>,
    /// Request budgets per connection, user and address (`--request-rate` and the others).
    pub budgets: Budgets,
    /// Addresses with connections here, with their request budgets.
    pub addresses: Addresses,
    /// Owned rooms in the order they became empty, for their TTL (see `room_expiry`).
    pub empty_rooms: VecDeque<super::room_expiry::EmptyRoom>,
    /// Rooms each creator has made here and not yet expired (their `room:create` quota).
    pub rooms_created: HashMap<Arc<str>, u32>,
    /// Frames per second a connection may send (`--max-frames-per-sec`).
    pub frame_limit: RateLimit,
    /// Bytes held for incomplete frames and messages over all connections (bounded by
    /// `--incomplete-bytes-per-shard`).
    pub incomplete_bytes: usize,
    /// Sequence of direct message ids made here (ids carry the shard like connection ids).
    pub next_direct_seq: u64,
    /// The sender of messages posted with `POST /api/publish`.
    pub system_user: Arc<User>,
    /// Batch windows to close, in deadline order (all windows have the same length).
    pub batch_due: VecDeque<(Instant, usize, u64)>,
    pub batch_waker: Option<Waker>,
    pub stats: Arc<ShardStats>,
    pub all_stats: Arc<Vec<Arc<ShardStats>>>,
    pub json_buffers: simd_json::Buffers,
    /// Every socket read of this shard lands here first.
    pub read_scratch: Vec<u8>,
    /// Frames of one connection are gathered here into one write.
    pub write_scratch: Vec<u8>,
    next_seq: u64,
    pub shutting_down: bool,
    pub shutdown_waker: Option<Waker>,
    /// The epoll set of this shard's upgraded connections.
    pub poller: Poller,
    /// Reused for every harvest of the epoll set.
    pub ready_scratch: Vec<Ready>,
    /// Connections that stopped reading before `EAGAIN` (fairness, or reads resumed).
    pub read_again: Vec<(usize, u64)>,
    /// Connections to forget and close (see [`Shard::reap_later`]).
    pub done: Vec<(usize, u64)>,
    /// Wakes the I/O loop when `done` or `read_again` gets work.
    pub io_waker: Option<Waker>,
    /// The server-wide count of connections (`--max-connections`); each connection here
    /// holds one slot until it is forgotten.
    pub admission: Arc<Admission>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<Config>,
        peers: Arc<Vec<Inbox<ShardMsg>>>,
        all_stats: Arc<Vec<Arc<ShardStats>>>,
        admission: Arc<Admission>,
    ) -> Self {
        let shards = peers.len();
        Self {
            id,
            shards,
            rate_limit: config.rate_limit(),
            budgets: config.budgets(),
            addresses: Addresses::default(),
            empty_rooms: VecDeque::new(),
            rooms_created: HashMap::new(),
            frame_limit: RateLimit {
                messages: config.max_frames_per_sec,
                window: Duration::from_secs(1),
            },
            incomplete_bytes: 0,
            write_interval: Duration::from_millis(config.write_interval_ms),
            rooms: RoomTable::new(config.history_bytes_per_shard),
            config,
            conns: Slab::new(),
            dirty: Vec::new(),
            deferred: BinaryHeap::new(),
            flusher: None,
            peers,
            outboxes: (0..shards).map(|_| VecDeque::new()).collect(),
            outbox_len: 0,
            ring: vec![false; shards],
            reading_paused: false,
            paused_readers: Vec::new(),
            member_scratch: Vec::new(),
            fanout_chunks: FanoutChunks::default(),
            directory: Directory::new(USERS_PER_SHARD_MAX),
            local_users: HashMap::new(),
            gathers: Slab::new(),
            typing_rooms: HashSet::new(),
            next_direct_seq: 1,
            system_user: User::new(SYSTEM_USER_ID, SYSTEM_USER_ID),
            batch_due: VecDeque::new(),
            batch_waker: None,
            stats: all_stats[id].clone(),
            all_stats,
            json_buffers: simd_json::Buffers::default(),
            read_scratch: vec![0; READ_SCRATCH_BYTES],
            write_scratch: Vec::with_capacity(WRITE_BYTES_MAX),
            next_seq: 1,
            shutting_down: false,
            shutdown_waker: None,
            poller: Poller::new().expect("an epoll set for the shard"),
            ready_scratch: Vec::with_capacity(EVENTS_PER_WAIT_MAX),
            read_again: Vec::new(),
            done: Vec::new(),
            io_waker: None,
            admission,
        }
    }

    // ----- connections -------------------------------------------------------------------

    /// Registers an upgraded connection (of `user` when it came with a token) and greets it.
    pub fn add_conn(&mut self, fd: std::os::fd::RawFd, user: Option<Arc<User>>) -> usize {
        let id = connection_id(self.id, self.next_seq);
        self.next_seq += 1;
        let key = self.conns.insert(Conn::new(
            id,
            fd,
            self.config.send_queue_bytes,
            self.config.max_message_bytes,
            Instant::now(),
        ));
        self.stats.connections.fetch_add(1, RELAXED);
        self.stats.connections_total.fetch_add(1, RELAXED);
        let named = user.as_deref().map(User::json);
        self.enqueue(key, event::established(id, self.id, named));
        if let Some(user) = user {
            self.attach_user(key, user, None);
        }
        key
    }

    /// Forgets a connection whose session ended; its socket is closed right after.
    pub fn remove_conn(&mut self, key: usize) {
        self.disconnect(key);
        let conn = self.conns.remove(key);
        self.incomplete_bytes -= conn.reader.held_bytes();
        if let Some(ip) = conn.ip {
            self.address_left(ip);
        }
        self.stats.connections.fetch_sub(1, RELAXED);
        self.admission.release();
    }

    /// Queues a data frame. A full queue applies the slow-consumer policy on the spot.
    /// Callers iterate over copies of member lists, so the cut may change rooms safely.
    pub fn enqueue(&mut self, key: usize, frame: Bytes) {
        let conn = &mut self.conns[key];
        if conn.phase != Phase::Open {
            return;
        }
        match conn.queue.push(frame) {
            Ok(()) => {
                self.stats.frames_out.fetch_add(1, RELAXED);
                self.mark_dirty(key);
            }
            Err(full) => {
                tracing::debug!(
                    conn = conn.id,
                    queued = full.queued,
                    max = full.max,
                    "slow consumer cut off"
                );
                self.cut_off_slow_consumer(key);
            }
        }
    }

    /// Queues the pong for a ping. A pong still waiting replaces it (counted in
    /// `pongs_conflated`); a queue too full for it is a slow consumer.
    pub fn enqueue_pong(&mut self, key: usize, frame: Bytes) {
        match self.conns[key].queue.push_pong(frame) {
            Ok(true) => {
                self.stats.pongs_conflated.fetch_add(1, RELAXED);
            }
            Ok(false) => self.mark_dirty(key),
            Err(_) => self.cut_off_slow_consumer(key),
        }
    }

    /// Queues a frame of the server's own (its ping, its close); it passes the queue limit.
    pub fn enqueue_control(&mut self, key: usize, frame: Bytes) {
        self.conns[key].queue.push_control(frame);
        self.mark_dirty(key);
    }

    fn mark_dirty(&mut self, key: usize) {
        if self.conns[key].list_dirty(key, &mut self.dirty) {
            self.wake_flusher();
        }
    }

    pub(super) fn wake_flusher(&mut self) {
        if let Some(w) = self.flusher.take() {
            w.wake();
        }
    }

    /// Whether the flusher has work; registers its waker when not. Connections deferred by
    /// the write interval are work only once the earliest of them is due.
    pub fn flusher_idle(&mut self, waker: &Waker) -> bool {
        let dirty_work =
            !self.dirty.is_empty() || self.flush_due().is_some_and(|due| due <= Instant::now());
        if dirty_work || self.outbox_len > 0 || self.ring.iter().any(|&r| r) {
            return false;
        }
        self.flusher = Some(waker.clone());
        true
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox_len
    }

    /// Starts the server-side close: leaves every room, queues the close frame, and gives the
    /// peer [`CLOSE_LINGER`] to answer.
    pub fn close_conn(&mut self, key: usize, code: u16, reason: &str) {
        if self.conns[key].phase != Phase::Open {
            return;
        }
        self.disconnect(key);
        let conn = &mut self.conns[key];
        conn.phase = Phase::Closing {
            peer_closed: false,
            deadline: Instant::now() + CLOSE_LINGER,
        };
        self.enqueue_control(key, close_frame(code, reason));
    }

    /// The peer sent a close frame (`code` None: empty payload). We answer with the same code.
    pub fn on_peer_close(&mut self, key: usize, code: Option<u16>) {
        match self.conns[key].phase {
            Phase::Open => {
                self.disconnect(key);
                self.conns[key].phase = Phase::Closing {
                    peer_closed: true,
                    deadline: Instant::now() + CLOSE_LINGER,
                };
                let code = code.unwrap_or(close::NORMAL);
                self.enqueue_control(key, close_frame(code, ""));
            }
            Phase::Closing { deadline, .. } => {
                self.conns[key].phase = Phase::Closing {
                    peer_closed: true,
                    deadline,
                };
                self.finish_if_flushed(key);
            }
            Phase::Done => {}
        }
    }

    /// A protocol violation: close with its code.
    pub fn protocol_error(&mut self, key: usize, err: &crate::protocol::ProtocolError) {
        self.stats.protocol_closes.fetch_add(1, RELAXED);
        tracing::debug!(conn = self.conns[key].id, %err, "protocol error");
        self.close_conn(key, err.close_code(), &err.to_string());
    }

    /// Closing and everything written: the connection is done.
    fn finish_if_flushed(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if matches!(
            conn.phase,
            Phase::Closing {
                peer_closed: true,
                ..
            }
        ) && conn.queue.is_empty()
        {
            conn.phase = Phase::Done;
            self.reap_later(key);
        }
    }

    /// Connection `key` is done: the I/O loop forgets it and closes its socket, outside of
    /// whatever handler is running now (member lists may be being walked).
    pub fn reap_later(&mut self, key: usize) {
        let id = self.conns[key].id;
        self.done.push((key, id));
        self.wake_io();
    }

    pub fn wake_io(&mut self) {
        if let Some(w) = self.io_waker.take() {
            w.wake();
        }
    }

    /// Closes every connection with `code` (shutdown).
    pub fn close_all(&mut self, code: u16, reason: &str) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close_conn(key, code, reason);
        }
    }

    /// Pings connections silent for an interval and closes those silent for two; ends
    /// closes whose linger ran out. Called by the shard's housekeeping tick.
    pub fn housekeeping(&mut self, now: Instant) {
        self.fanout_chunks.release_unused();
        let interval = self.config.ping_interval();
        let mut ping = Vec::new();
        let mut dead = Vec::new();
        let mut lingered = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            match conn.phase {
                Phase::Closing { deadline, .. } if now >= deadline => {
                    conn.phase = Phase::Done;
                    conn.reset_on_close = true;
                    lingered.push(key);
                }
                Phase::Open => {
                    let Some(interval) = interval else { continue };
                    match conn.ping_sent {
                        Some(at) if now.duration_since(at) >= interval => dead.push(key),
                        None if now.duration_since(conn.last_rx) >= interval => {
                            conn.ping_sent = Some(now);
                            ping.push(key);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        for key in lingered {
            self.reap_later(key);
        }
        self.expire_incomplete(now);
        self.expire_rooms(now);
        for key in ping {
            self.enqueue_control(key, server_frame(OP_PING, b""));
        }
        for key in dead {
            self.stats.ping_timeouts.fetch_add(1, RELAXED);
            self.close_conn(key, close::GOING_AWAY, "ping timeout");
        }
        self.report_idle_devices(now);
        self.expire_typing(now);
    }

    /// Closes connections that started a frame or message and did not complete it within
    /// `--message-timeout-ms`.
    fn expire_incomplete(&mut self, now: Instant) {
        let timeout = self.config.message_timeout();
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.phase == Phase::Open
                    && c.incomplete_since
                        .is_some_and(|t| now.duration_since(t) >= timeout)
            })
            .map(|(k, _)| k)
            .collect();
        for key in late {
            self.stats.incomplete_timeouts.fetch_add(1, RELAXED);
            self.drop_input(key);
            self.close_conn(key, close::POLICY, "message not completed in time");
        }
    }

    // ----- client messages ---------------------------------------------------------------

    /// A complete text message from connection `key`.
    pub fn on_text(&mut self, key: usize, text: &mut [u8]) {
        self.stats.messages_in.fetch_add(1, RELAXED);
        let text_len = text.len();
        let now = Instant::now();
        self.note_activity(key, now);
        let value = match parse_json(text, &mut self.json_buffers) {
            Ok(v) => v,
            Err(e) => {
                let result = self.charge(key, budget::cost(None, text_len), now);
                return self.app_error(key, &result.err().unwrap_or(e), None);
            }
        };
        let parsed = interpret(&value);
        let reference = parsed.reference.as_deref();
        if let Ok(message) = &parsed.message {
            if self.conflated(key, message, now) {
                return self.ack(key, reference);
            }
        }
        let cost = budget::cost(parsed.message.as_ref().ok(), text_len);
        let result = match (self.charge(key, cost, now), parsed.message) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(message)) => {
                self.remember(key, &message, now);
                self.dispatch(key, message, reference, now)
            }
        };
        if let Err(e) = result {
            self.app_error(key, &e, reference);
        }
    }

    fn dispatch(
        &mut self,
        key: usize,
        message: ClientMessage<'_>,
        reference: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), AppError> {
        if let ClientMessage::Login { username } = message {
            self.login(key, username, reference);
            return Ok(());
        }
        if !self.conns[key].authenticated && !self.config.allow_anonymous {
            return Err(AppError::AuthRequired);
        }
        match message {
            ClientMessage::Login { .. } => unreachable!("handled above"),
            ClientMessage::Create {
                room,
                description,
                password,
                max_users,
            } => self.create(key, room, description, password, max_users, reference),
            ClientMessage::List => self.list(key, reference),
            ClientMessage::Join { room, password } => self.join(key, room, password, reference),
            ClientMessage::Leave { room } => self.leave(key, room, reference),
            ClientMessage::Send { room, content } => {
                let content = self.checked_content(key, content, now)?;
                self.send(key, room, content, reference)
            }
            ClientMessage::History {
                room,
                limit,
                before,
            } => self.query(key, room, RoomQuery::History { limit, before }, reference),
            ClientMessage::PresenceList { room } => {
                self.query(key, room, RoomQuery::Presence, reference)
            }
            ClientMessage::Read { room, up_to } => self.read(key, room, up_to, reference),
            ClientMessage::Typing { room, on } => self.typing(key, room, on, reference),
            ClientMessage::Presence { status } => self.set_status(key, status, reference),
            ClientMessage::Direct { to, content } => {
                let content = self.checked_content(key, content, now)?;
                self.direct(key, to, content, reference)
            }
            ClientMessage::NotificationList => {
                self.notifications(key, NotificationOp::List, reference)
            }
            ClientMessage::NotificationRead { ids } => {
                self.notifications(key, NotificationOp::Read(ids), reference)
            }
        }
    }

    /// The content of a message a client sends, encoded, within the size limit and the
    /// connection's rate limit (a warning is queued when 80% of the bucket is used).
    fn checked_content(
        &mut self,
        key: usize,
        content: &simd_json::BorrowedValue<'_>,
        now: Instant,
    ) -> Result<Vec<u8>, AppError> {
        let content = content.encode().into_bytes();
        let max = self.config.max_content_bytes;
        if content.len() > max {
            return Err(AppError::ContentTooLarge {
                size: content.len(),
                max,
            });
        }
        let Some(limit) = self.rate_limit else {
            return Ok(content);
        };
        let bucket = self.conns[key]
            .bucket
            .get_or_insert_with(|| TokenBucket::new(&limit, now));
        match bucket.take(&limit, now) {
            Verdict::Allowed => {}
            Verdict::Warn { remaining, full_in } => {
                let reset = unix_ms() + full_in.as_millis() as u64;
                self.enqueue(key, event::rate_limit_warning(remaining, reset));
            }
            Verdict::Limited { retry_in } => {
                self.stats.rate_limited.fetch_add(1, RELAXED);
                return Err(AppError::RateLimited {
                    limit: limit.messages,
                    window_ms: limit.window.as_millis() as u64,
                    retry_ms: retry_in.as_millis() as u64 + 1,
                });
            }
        }
        Ok(content)
    }

    pub fn app_error(&mut self, key: usize, err: &AppError, reference: Option<&[u8]>) {
        self.stats.app_errors.fetch_add(1, RELAXED);
        self.enqueue(key, event::error(err.code(), &err.to_string(), reference));
    }

    /// An `error` frame for a connection elsewhere (answered through [`Shard::to_conn`]).
    pub fn error_frame(&self, err: &AppError, reference: Option<&[u8]>) -> Bytes {
        self.stats.app_errors.fetch_add(1, RELAXED);
        event::error(err.code(), &err.to_string(), reference)
    }

    pub fn ack(&mut self, key: usize, reference: Option<&[u8]>) {
        if let Some(r) = reference {
            self.enqueue(key, event::ack(r));
        }
    }

    pub fn conn_ref(&self, key: usize) -> ConnRef {
        ConnRef {
            key,
            id: self.conns[key].id,
        }
    }

    /// Queues `frame` to connection `conn` (here or on its shard) if it is still open.
    pub fn deliver_to_conn(&mut self, conn: ConnRef, frame: Bytes) {
        let shard = shard_of(conn.id);
        if shard != self.id {
            return self.send_to(shard, ShardMsg::ToConn { conn, frame });
        }
        if self.conns.get(conn.key).is_some_and(|c| c.id == conn.id) {
            self.enqueue(conn.key, frame);
        }
    }

    // ----- other shards ------------------------------------------------------------------

    /// Sends to shard `to`: straight into its inbox, or into our outbox (in order) when the
    /// inbox is full or earlier messages still wait there.
    pub fn send_to(&mut self, to: usize, msg: ShardMsg) {
        assert_ne!(to, self.id, "a shard never messages itself");
        self.stats.cross_shard_sent.fetch_add(1, RELAXED);
        let msg = if self.outboxes[to].is_empty() {
            match self.peers[to].push(msg) {
                Ok(()) => {
                    self.ring[to] = true;
                    self.wake_flusher();
                    return;
                }
                Err(msg) => msg,
            }
        } else {
            msg
        };
        self.stats.inbox_full.fetch_add(1, RELAXED);
        self.outboxes[to].push_back(msg);
        self.outbox_len += 1;
        if self.outbox_len >= OUTBOX_MESSAGES_MAX && !self.reading_paused {
            self.reading_paused = true;
            self.stats.reads_paused.fetch_add(1, RELAXED);
        }
        self.wake_flusher();
    }

    /// Delivers `msg` to shard `to`'s handler: a plain call when `to` is this shard.
    pub fn route(&mut self, to: usize, msg: ShardMsg) {
        if to == self.id {
            self.on_shard_msg(msg);
        } else {
            self.send_to(to, msg);
        }
    }

    /// Routes `msg` to the owner of the room it names.
    pub fn route_room(&mut self, msg: ShardMsg) {
        let room = msg.room().expect("a message for a room's owner");
        let to = owner_shard(room, self.shards);
        self.route(to, msg);
    }

    /// Routes `msg` to the owner of the user it names.
    pub fn route_user(&mut self, msg: ShardMsg) {
        let user = msg.user().expect("a message for a user's owner");
        let to = owner_shard(user, self.shards);
        self.route(to, msg);
    }

    /// A message for this shard's handlers, from another shard or routed here (adoption and
    /// shutdown are handled by the shard's loop).
    pub fn on_shard_msg(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::Join {
                room,
                conn,
                user,
                status,
                password,
                reference,
            } => self.owner_join(room, conn, user, status, password, reference),
            ShardMsg::Joined {
                room,
                conn,
                result,
                reference,
            } => self.on_joined(room, conn, result, reference),
            ShardMsg::Leave { room, conn_id } => self.owner_leave(&room, conn_id),
            ShardMsg::Publish {
                room,
                conn,
                from,
                content,
                reference,
            } => self.owner_publish(&room, conn, &from, &content, reference),
            ShardMsg::Deliver { room, frame } => {
                if let Some(rk) = self.rooms.key(&room) {
                    self.enqueue_to_members(rk, &frame);
                }
            }
            ShardMsg::ToConn { conn, frame } => self.deliver_to_conn(conn, frame),
            ShardMsg::Create {
                room,
                settings,
                by,
                conn,
                reference,
            } => self.owner_create(room, settings, by, conn, reference),
            ShardMsg::Query {
                room,
                conn,
                query,
                reference,
            } => self.owner_query(&room, conn, query, reference),
            ShardMsg::Read {
                room,
                conn,
                user,
                up_to,
            } => self.owner_read(&room, conn, &user, up_to),
            ShardMsg::Typing {
                room,
                conn,
                user,
                on,
            } => self.owner_typing(&room, conn, &user, on),
            ShardMsg::ListRooms {
                from,
                gather,
                user_id,
            } => self.list_owned_rooms(from, gather, user_id),
            ShardMsg::RoomsPart {
                gather,
                entries,
                truncated,
            } => self.on_rooms_part(gather, entries, truncated),
            ShardMsg::Attach { user, conn, login } => self.owner_attach(user, conn, login),
            ShardMsg::UserStatus { user_id, status } => self.on_user_status(&user_id, status),
            ShardMsg::Detach {
                user_id,
                shard,
                was_idle,
                rooms,
            } => self.owner_detach(&user_id, shard, was_idle, rooms),
            ShardMsg::Idle { user_id, idle } => self.owner_idle(&user_id, idle),
            ShardMsg::SetStatus { user_id, status } => self.owner_set_status(&user_id, status),
            ShardMsg::UserRoom {
                user,
                room,
                present,
            } => self.owner_user_room(&user, room, present),
            ShardMsg::Presence {
                user,
                status,
                last_seen,
                rooms,
            } => self.on_presence(&user, status, last_seen, &rooms),
            ShardMsg::Direct {
                id,
                from,
                to,
                content,
                conn,
                reference,
            } => self.owner_direct(id, &from, &to, &content, conn, reference),
            ShardMsg::ToUser { user_id, frame } => self.deliver_to_local_user(&user_id, &frame),
            ShardMsg::Notify {
                user_id,
                from,
                kind,
                title,
                body,
            } => self.owner_notify(&user_id, from.as_deref(), kind, &title, &body),
            ShardMsg::Notifications {
                user_id,
                conn,
                op,
                reference,
            } => self.owner_notifications(&user_id, conn, op, reference),
            ShardMsg::ApiPublish { room, content } => self.api_publish(room, &content),
            ShardMsg::Adopt { .. } | ShardMsg::Shutdown => {
                unreachable!("handled by the shard loop")
            }
        }
    }

    // ----- the flush pass ----------------------------------------------------------------

    /// Moves waiting outbox messages into peer inboxes, rings the peers, and writes each dirty
    /// connection's queue in as few `send` calls as it takes (usually one), in the order they
    /// became dirty. Every [`FLUSH_SLICE_CONNS`] writes it serves the epoll set, so messages
    /// that arrive during a long pass still reach the connections it has not written yet.
    pub fn flush(&mut self) {
        self.push_outboxes();
        if self.reading_paused && self.outbox_len <= OUTBOX_MESSAGES_MAX / 2 {
            self.reading_paused = false;
            for key in std::mem::take(&mut self.paused_readers) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.read_paused = false;
                    // Edge-triggered: what arrived meanwhile is only read if we go look.
                    self.read_again.push((key, conn.id));
                }
            }
            self.wake_io();
        }
        let pacing = !self.write_interval.is_zero();
        let mut now = Instant::now();
        self.take_due(now);
        let (mut i, mut written) = (0, 0);
        while i < self.dirty.len() && written < FLUSH_TURN_CONNS_MAX {
            let (key, id) = self.dirty[i];
            i += 1;
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.id == id) else {
                continue;
            };
            if pacing && conn.write_due > now {
                // Written too recently: it stays dirty and waits for its turn.
                self.deferred.push(Reverse((conn.write_due, key, id)));
                continue;
            }
            conn.in_dirty = false;
            if pacing {
                conn.write_due = now + self.write_interval;
            }
            self.write_conn(key);
            written += 1;
            if written % FLUSH_SLICE_CONNS == 0 {
                // Pick up what arrived meanwhile: it joins the queues of the connections
                // not written yet in this pass; those written already come after them.
                self.service_io();
                if pacing {
                    // Those that came due meanwhile join this pass, as in one long sweep.
                    now = Instant::now();
                    self.take_due(now);
                }
            }
        }
        self.dirty.drain(..i);
        // What the reads during the pass produced for other shards.
        self.push_outboxes();
    }

    /// Moves the deferred connections due by `now` to the end of the dirty list.
    fn take_due(&mut self, now: Instant) {
        while let Some(&Reverse((due, key, id))) = self.deferred.peek() {
            if due > now {
                break;
            }
            self.deferred.pop();
            self.dirty.push((key, id));
        }
    }

    /// Moves waiting outbox messages into peer inboxes while they have room, and rings the
    /// peers that got any.
    fn push_outboxes(&mut self) {
        for to in 0..self.shards {
            while let Some(msg) = self.outboxes[to].pop_front() {
                match self.peers[to].push(msg) {
                    Ok(()) => {
                        self.outbox_len -= 1;
                        self.ring[to] = true;
                    }
                    Err(msg) => {
                        self.outboxes[to].push_front(msg);
                        break;
                    }
                }
            }
            if std::mem::take(&mut self.ring[to]) {
                self.peers[to].ring();
            }
        }
    }

    /// Whether the last flush stopped at [`FLUSH_TURN_CONNS_MAX`] writes with connections
    /// still to write.
    pub fn flush_unfinished(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// When the flusher should come back for the connections deferred by the write interval,
    /// if any: [`WRITE_DUE_SLACK`] after the earliest is due, so that one wake-up serves all
    /// that came due in between. A connection is never written before it is due.
    pub fn flush_due(&self) -> Option<Instant> {
        self.deferred
            .peek()
            .map(|&Reverse((due, _, _))| due + WRITE_DUE_SLACK)
    }

    /// The slow-consumer policy: drop what is queued, close with 1008, count it.
    /// The close frame goes out if the socket takes it; the peer then has
    /// [`SLOW_CONSUMER_LINGER`] (not the full close linger) before the socket is reset.
    pub(super) fn cut_off_slow_consumer(&mut self, key: usize) {
        self.stats.slow_consumer_closes.fetch_add(1, RELAXED);
        let conn = &mut self.conns[key];
        conn.queue.clear();
        conn.cut = true;
        self.close_conn(key, close::POLICY, "slow consumer");
        if let Phase::Closing { peer_closed, .. } = self.conns[key].phase {
            self.conns[key].phase = Phase::Closing {
                peer_closed,
                deadline: Instant::now() + SLOW_CONSUMER_LINGER,
            };
        }
    }

    fn write_conn(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.write_blocked || conn.phase == Phase::Done {
            return;
        }
        loop {
            let chunk = conn.queue.gather(&mut self.write_scratch, WRITE_BYTES_MAX);
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            match send_now(conn.fd, chunk) {
                Ok(n) => {
                    self.stats.send_calls.fetch_add(1, RELAXED);
                    self.stats.bytes_out.fetch_add(n as u64, RELAXED);
                    conn.queue.consume(n);
                    if n < len {
                        conn.write_blocked = true;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.write_blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Reset or broken pipe: the peer is gone.
                    conn.queue.clear();
                    conn.phase = Phase::Done;
                    break;
                }
            }
        }
        if conn.phase == Phase::Done {
            self.reap_later(key);
        } else if conn.write_blocked {
            if !conn.write_interest {
                conn.write_interest = true;
                let (fd, token) = (conn.fd, conn.token(key));
                if let Err(e) = self.poller.set_write_interest(fd, token, true) {
                    tracing::warn!(%e, "cannot watch a socket for writability");
                    self.conns[key].phase = Phase::Done;
                    self.reap_later(key);
                }
            }
        } else {
            self.finish_if_flushed(key);
        }
    }

    /// The socket of connection `key` takes more: write what waited.
    pub fn on_writable(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if !conn.write_blocked {
            return;
        }
        conn.write_blocked = false;
        self.write_conn(key);
        let conn = &mut self.conns[key];
        if !conn.write_blocked && conn.write_interest && conn.phase != Phase::Done {
            conn.write_interest = false;
            let (fd, token) = (conn.fd, conn.token(key));
            // Failing leaves writability watched: a spurious event later, nothing worse.
            let _ = self.poller.set_write_interest(fd, token, false);
        }
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
