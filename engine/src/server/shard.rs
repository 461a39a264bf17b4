//! One shard's core: connections and their send queues, the flush pass that writes to
//! sockets, identities, request budgets, topics (see `topic_ops`), routing to owners and the
//! shard-local queue. It knows no feature: client messages, feature messages and core events
//! go to `crate::features`, through a [`Ctx`](super::context::Ctx).
//!
//! Invariants:
//! - Only this shard's thread touches a `Shard`; no locks on the message path.
//! - Work for a key (a room, a user) is done by its owner shard. A message for this shard
//!   itself goes through the local queue, drained after the current handler returns, so no
//!   handler ever runs inside another, and every owner sees one order of events whatever
//!   shard they came from.
//! - A topic's owner assigns message ids and encodes each message (or batch) once; every
//!   recipient on every shard gets the same `Bytes`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use slab::Slab;

use super::admission::Admission;
use super::budget::{Addresses, Budgets};
use super::connection::{Conn, Phase};
use super::context::{Ctx, Now};
use super::fanout_chunks::FanoutChunks;
use super::gather::Gather;
use super::local::{Closed, Local};
use super::shard_msg::Delivery;
use super::shard_msg::{connection_id, shard_of, ConnRef, ShardMsg};
use super::timer::Timers;
use super::topic_table::TopicTable;
use crate::config::Config;
use crate::features::{self, Features};
use crate::identity::{RateLimit, TokenBucket, User};
use crate::limits::{
    CLOSE_LINGER, FLUSH_SLICE_CONNS, FLUSH_TURN_CONNS_MAX, OUTBOX_MESSAGES_MAX, READ_SCRATCH_BYTES,
    SLOW_CONSUMER_LINGER, WRITE_BYTES_MAX, WRITE_DUE_SLACK,
};
use crate::protocol::close;
use crate::protocol::event;
use crate::protocol::frame::{close_frame, server_frame, OP_PING};
use crate::protocol::message::{envelope, parse_json, AppError};
use crate::runtime::{owner_shard, send_now, Inbox, Poller, Ready, EVENTS_PER_WAIT_MAX};
use crate::stats::ShardStats;

/// A user with connections on this shard.
#[derive(Debug)]
pub struct LocalUser {
    pub conns: Vec<usize>,
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
    pub topics: TopicTable,
    /// The features, out of here while one of them runs (see [`Shard::settle`]).
    features: Option<Box<Features>>,
    /// Messages and events for this shard's own handlers, in order (see `local`).
    pub(super) local: VecDeque<Local>,
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
    /// off after it, since the cut changes the topic). No allocation per message.
    pub member_scratch: Vec<usize>,
    /// Each topic's chunk, where its fan-outs copy their frames for the members' queues.
    pub fanout_chunks: FanoutChunks,
    /// Users with connections on this shard, by user id.
    pub local_users: HashMap<Arc<str>, LocalUser>,
    /// Scatter-gathers of this shard's connections waiting for every shard's part.
    pub gathers: Slab<Gather>,
    /// `--rate-limit` on messages that carry content (None: no limit).
    pub rate_limit: Option<RateLimit>,
    /// Request budgets per connection, user and address (`--request-rate` and the others).
    pub budgets: Budgets,
    /// Addresses with connections here, with their request budgets.
    pub addresses: Addresses,
    /// Owned topics in the order they became empty, for their TTL (see `topic_expiry`).
    pub empty_topics: VecDeque<super::topic_expiry::EmptyTopic>,
    /// Frames per second a connection may send (`--max-frames-per-sec`).
    pub frame_limit: RateLimit,
    /// Bytes held for incomplete frames and messages over all connections (bounded by
    /// `--incomplete-bytes-per-shard`).
    pub incomplete_bytes: usize,
    /// Batch windows to close, in deadline order (all windows have the same length).
    pub batch_due: VecDeque<(Instant, usize, u64)>,
    /// Features' timers (see `timer`).
    pub timers: Timers,
    /// Wakes the timer task while it waits with nothing due (a batch window opened, or a
    /// timer was set).
    pub timer_waker: Option<Waker>,
    /// Wakes the timer task while it sleeps until `timer_sleep_until`, when something due
    /// earlier is set: a feature timer, or a batch window while it sleeps toward a feature
    /// timer (batch windows all have one length, so one is never earlier than another).
    pub timer_earlier_waker: Option<Waker>,
    /// Where the timer task sleeps to (None: it is not sleeping toward a time).
    pub timer_sleep_until: Option<Instant>,
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
            empty_topics: VecDeque::new(),
            frame_limit: RateLimit {
                messages: config.max_frames_per_sec,
                window: Duration::from_secs(1),
            },
            incomplete_bytes: 0,
            write_interval: Duration::from_millis(config.write_interval_ms),
            topics: TopicTable::new(config.history_bytes_per_shard),
            features: Some(Box::new(Features::new())),
            local: VecDeque::new(),
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
            local_users: HashMap::new(),
            gathers: Slab::new(),
            batch_due: VecDeque::new(),
            timers: Timers::default(),
            timer_waker: None,
            timer_earlier_waker: None,
            timer_sleep_until: None,
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

    // ----- features and the local queue ---------------------------------------------------

    /// Runs `f` with the features taken out of the shard, so that a feature can use the core
    /// through a [`Ctx`] while no other feature code runs.
    pub(super) fn with_features<R>(
        &mut self,
        now: Now,
        f: impl FnOnce(&mut Features, &mut Ctx<'_>) -> R,
    ) -> R {
        let mut features = self
            .features
            .take()
            .expect("no feature handler runs inside another");
        let result = f(&mut features, &mut Ctx::new(self, now));
        self.features = Some(features);
        result
    }

    /// Handles everything in the local queue, in order, including what handling it adds.
    /// Called by every entry point (a client message, an inbox message, a timer, a close)
    /// after its own handler returned.
    pub fn settle(&mut self, now: Now) {
        if self.local.is_empty() {
            return;
        }
        debug_assert!(
            self.features.is_some(),
            "settle runs at an entry point, never inside a feature's handler"
        );
        if self.features.is_none() {
            return; // The entry point running now settles when its handler returns.
        }
        self.with_features(now, |features, ctx| {
            while let Some(item) = ctx.core().local.pop_front() {
                ctx.core().handle_local(features, item, now);
            }
        });
    }

    fn handle_local(&mut self, features: &mut Features, item: Local, now: Now) {
        let mut ctx = Ctx::new(self, now);
        match item {
            Local::Msg(msg) => self.handle_msg(features, msg, now),
            Local::Opened(conn, home) => features.on_open(&mut ctx, conn, home.as_deref()),
            Local::Closed(closed) => features.on_close(&mut ctx, &closed),
            Local::TopicDropped(dropped) => features.on_topic_dropped(&mut ctx, &dropped),
            Local::Timer(msg) => features.on_shard(&mut ctx, msg),
            Local::MemberJoined(topic, conn) => features.on_member_joined(&mut ctx, &topic, conn),
        }
    }

    fn handle_msg(&mut self, features: &mut Features, msg: ShardMsg, now: Now) {
        match msg {
            ShardMsg::Owned(m) => features.on_owned(&mut Ctx::new(self, now), m),
            ShardMsg::Feature(m) => features.on_shard(&mut Ctx::new(self, now), m),
            ShardMsg::Joined(j) => self.on_joined(*j),
            ShardMsg::Leave { topic, conn_id } => self.owner_leave(features, &topic, conn_id, now),
            ShardMsg::Deliver { topic, frame } => {
                if let Some(tk) = self.topics.key(&topic) {
                    self.enqueue_to_members(tk, &frame, Delivery::All);
                }
            }
            ShardMsg::DeliverSome(d) => {
                let (topic, frame, how) = *d;
                if let Some(tk) = self.topics.key(&topic) {
                    self.enqueue_to_members(tk, &frame, how);
                }
            }
            ShardMsg::ToConn { conn, frame } => self.deliver_to_conn(conn, frame),
            ShardMsg::Debit { conn, units } => self.debit_conn(conn, units, now.mono),
            ShardMsg::ToUser { user_id, frame } => self.deliver_to_local_user(&user_id, &frame),
            ShardMsg::GatherPart {
                gather,
                entries,
                truncated,
            } => self.on_gather_part(features, gather, entries, truncated, now),
            ShardMsg::Adopt { .. } | ShardMsg::Shutdown => {
                unreachable!("handled by the shard loop")
            }
        }
    }

    /// A message from another shard (adoption and shutdown are handled by the shard's loop).
    pub fn on_shard_msg(&mut self, msg: ShardMsg, now: Now) {
        self.local.push_back(Local::Msg(msg));
        self.settle(now);
    }

    // ----- connections -------------------------------------------------------------------

    /// Registers an upgraded connection (of `user` when it came with a token; `home`: the
    /// topic its URL named) and greets it.
    pub fn add_conn(
        &mut self,
        fd: std::os::fd::RawFd,
        user: Option<Arc<User>>,
        home: Option<Box<str>>,
        now: Now,
    ) -> usize {
        let id = connection_id(self.id, self.next_seq);
        self.next_seq += 1;
        let key = self.conns.insert(Conn::new(
            id,
            fd,
            self.config.send_queue_bytes,
            self.config.max_message_bytes,
            now.mono,
        ));
        self.stats.connections.fetch_add(1, RELAXED);
        self.stats.connections_total.fetch_add(1, RELAXED);
        let named = user.as_deref().map(User::json);
        self.enqueue(key, event::established(id, self.id, named));
        if let Some(user) = user {
            self.identify(key, user);
        }
        // The features see it open before anything it sends.
        self.local
            .push_back(Local::Opened(ConnRef { key, id }, home));
        self.settle(now);
        key
    }

    /// Makes connection `key` speak for `user` (a token's, or an `auth:login`'s).
    pub fn identify(&mut self, key: usize, user: Arc<User>) {
        let conn = &mut self.conns[key];
        assert!(!conn.authenticated, "a connection logs in once");
        conn.user = Some(user.clone());
        conn.authenticated = true;
        self.local_users
            .entry(Arc::from(&*user.id))
            .or_insert_with(|| LocalUser {
                conns: Vec::new(),
                bucket: None,
            })
            .conns
            .push(key);
    }

    /// Forgets a connection whose session ended; its socket is closed right after.
    pub fn remove_conn(&mut self, key: usize, now: Now) {
        self.disconnect(key);
        let conn = self.conns.remove(key);
        self.incomplete_bytes -= conn.reader.held_bytes();
        if let Some(ip) = conn.ip {
            self.address_left(ip);
        }
        self.stats.connections.fetch_sub(1, RELAXED);
        self.admission.release();
        self.settle(now);
    }

    /// Takes connection `key` out of its topics and its user's devices here, and queues the
    /// one close event every feature sees. Idempotent: closing and removing both call it.
    pub(super) fn disconnect(&mut self, key: usize) {
        if self.conns[key].disconnected {
            return;
        }
        let topics = self.leave_all(key);
        let conn = &mut self.conns[key];
        conn.disconnected = true;
        let user = conn.authenticated_user().cloned();
        conn.authenticated = false;
        let closed = Closed {
            conn: ConnRef { key, id: conn.id },
            user: user.clone(),
            topics,
            state: std::mem::take(&mut conn.features),
        };
        if let Some(user) = user {
            if let Some(local) = self.local_users.get_mut(&*user.id) {
                local.conns.retain(|&k| k != key);
                if local.conns.is_empty() {
                    self.local_users.remove(&*user.id);
                }
            }
        }
        self.local.push_back(Local::Closed(Box::new(closed)));
    }

    /// Queues a data frame. A full queue applies the slow-consumer policy on the spot.
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

    /// Starts the server-side close: leaves every topic, queues the close frame, and gives
    /// the peer [`CLOSE_LINGER`] to answer.
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
    pub fn close_all(&mut self, code: u16, reason: &str, now: Now) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close_conn(key, code, reason);
        }
        self.settle(now);
    }

    /// The housekeeping tick: pings, closes and expiries of the core, then the features'
    /// periodic work.
    pub fn housekeeping(&mut self, now: Now) {
        self.fanout_chunks.release_unused();
        self.check_liveness(now.mono);
        self.expire_incomplete(now.mono);
        self.expire_topics(now.mono);
        self.expire_tokens(now.unix_ms / 1000);
        self.with_features(now, |features, ctx| features.tick(ctx));
        self.settle(now);
    }

    /// Pings connections silent for an interval and closes those silent for two; ends
    /// closes whose linger ran out.
    fn check_liveness(&mut self, now: Instant) {
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
        for key in ping {
            self.enqueue_control(key, server_frame(OP_PING, b""));
        }
        for key in dead {
            self.stats.ping_timeouts.fetch_add(1, RELAXED);
            self.close_conn(key, close::GOING_AWAY, "ping timeout");
        }
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

    /// Closes (4001) every open connection whose token expired by `now` (Unix seconds), so a
    /// connection never acts for its user past the token's `exp` (and the leeway).
    fn expire_tokens(&mut self, now: u64) {
        let leeway = self.config.jwt_leeway_secs;
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
            .filter(|(_, c)| {
                c.token_exp
                    .is_some_and(|exp| crate::identity::token_expired(exp, leeway, now))
            })
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            self.stats.tokens_expired.fetch_add(1, RELAXED);
            self.close_conn(key, close::TOKEN_EXPIRED, "token expired");
        }
    }

    // ----- client messages ---------------------------------------------------------------

    /// A complete text message from connection `key`: parsed by the feature of its type,
    /// charged to the budgets (unless it changes nothing), then handled by that feature.
    pub fn on_text(&mut self, key: usize, text: &mut [u8], now: Now) {
        self.stats.messages_in.fetch_add(1, RELAXED);
        let text_len = text.len();
        self.conns[key].last_active = now.mono;
        let value = parse_json(text, &mut self.json_buffers);
        self.with_features(now, |features, ctx| {
            features.on_activity(ctx, key);
            let (reference, message) = match &value {
                Ok(v) => {
                    let env = envelope(v);
                    (env.reference, env.message)
                }
                Err(e) => (None, Err(e.clone())),
            };
            if let Err(e) = features.on_message(ctx, key, message, text_len, reference.as_deref()) {
                ctx.refuse(key, &e, reference.as_deref());
            }
        });
        self.settle(now);
    }

    /// Queues an `error` frame to connection `key` (here).
    pub fn app_error(&mut self, key: usize, err: &AppError, reference: Option<&[u8]>) {
        self.stats.app_errors.fetch_add(1, RELAXED);
        self.enqueue(key, event::error(err.code(), &err.to_string(), reference));
    }

    /// An `error` frame for a connection elsewhere (answered through `deliver_to_conn`).
    pub fn error_frame(&self, err: &AppError, reference: Option<&[u8]>) -> Bytes {
        self.stats.app_errors.fetch_add(1, RELAXED);
        event::error(err.code(), &err.to_string(), reference)
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

    /// Charges connection `conn` (anywhere) `units` of its request budgets for work done
    /// (`budget::debit`); nothing if it closed.
    pub fn debit_conn(&mut self, conn: ConnRef, units: u32, now: Instant) {
        let shard = shard_of(conn.id);
        if shard != self.id {
            return self.send_to(shard, ShardMsg::Debit { conn, units });
        }
        let open = self
            .conns
            .get(conn.key)
            .is_some_and(|c| c.id == conn.id && c.phase == Phase::Open);
        if open {
            self.debit(conn.key, units, now);
        }
    }

    /// A frame for every connection of `user_id` on this shard.
    pub fn deliver_to_local_user(&mut self, user_id: &str, frame: &Bytes) {
        let Some(local) = self.local_users.get(user_id) else {
            return;
        };
        let mut keys = std::mem::take(&mut self.member_scratch);
        keys.clear();
        keys.extend_from_slice(&local.conns);
        for &key in &keys {
            self.enqueue(key, frame.clone());
        }
        self.member_scratch = keys;
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

    /// Delivers `msg` to shard `to`'s handlers: through the local queue when `to` is this
    /// shard, so it runs after the current handler, never inside it.
    pub fn route(&mut self, to: usize, msg: ShardMsg) {
        if to == self.id {
            self.local.push_back(Local::Msg(msg));
        } else {
            self.send_to(to, msg);
        }
    }

    /// Routes `msg` to the owner of the key it names; its type says which key that is.
    pub fn route_owned(&mut self, msg: features::OwnedMsg) {
        let to = owner_shard(msg.owner_key(), self.shards);
        self.route(to, ShardMsg::Owned(msg));
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
