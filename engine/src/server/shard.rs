//! One shard's state and everything that changes it: connections, rooms, client messages,
//! messages from other shards, fan-out and the flush pass that writes to sockets.
//!
//! Invariants:
//! - Only this shard's thread touches a `Shard`; no locks on the message path.
//! - A room's owner assigns message ids and encodes each message (or batch) once; every
//!   recipient on every shard gets the same `Bytes`.
//! - A join takes effect when the owner processes it, so each member sees every message the
//!   owner published after that point, exactly once, in the owner's order.
//! - Every join sent to an owner is matched by exactly one leave (explicit, or on close).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use simd_json::prelude::*;
use slab::Slab;

use super::connection::{Conn, Phase};
use super::shard_msg::{connection_id, shard_of, ConnRef, ShardMsg};
use crate::config::Config;
use crate::limits::{
    CLOSE_LINGER, OUTBOX_MESSAGES_MAX, READ_SCRATCH_BYTES, ROOMS_PER_CONNECTION_MAX,
    WRITE_BYTES_MAX,
};
use crate::protocol::close;
use crate::protocol::event;
use crate::protocol::frame::{close_frame, server_frame, OP_PING};
use crate::protocol::message::{interpret, parse_json, AppError, ClientMessage};
use crate::rooms::{Batcher, Deadline, Ownership, Room, RoomTable};
use crate::runtime::{owner_shard, send_now, Inbox};
use crate::stats::ShardStats;

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
    dirty: Vec<(usize, u64)>,
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
    /// Reused for every fan-out: a room's member keys, copied so the slow-consumer cut may
    /// change the room while frames are queued. No allocation per message.
    member_scratch: Vec<usize>,
    /// Batch windows to close, in deadline order (all windows have the same length).
    pub batch_due: VecDeque<(Instant, usize, u64)>,
    pub batch_waker: Option<Waker>,
    pub stats: Arc<ShardStats>,
    pub all_stats: Arc<Vec<Arc<ShardStats>>>,
    json_buffers: simd_json::Buffers,
    /// Every socket read of this shard lands here first.
    pub read_scratch: Vec<u8>,
    /// Frames of one connection are gathered here into one write.
    pub write_scratch: Vec<u8>,
    next_seq: u64,
    pub shutting_down: bool,
    pub shutdown_waker: Option<Waker>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<Config>,
        peers: Arc<Vec<Inbox<ShardMsg>>>,
        all_stats: Arc<Vec<Arc<ShardStats>>>,
    ) -> Self {
        let shards = peers.len();
        Self {
            id,
            shards,
            config,
            conns: Slab::new(),
            rooms: RoomTable::default(),
            dirty: Vec::new(),
            flusher: None,
            peers,
            outboxes: (0..shards).map(|_| VecDeque::new()).collect(),
            outbox_len: 0,
            ring: vec![false; shards],
            reading_paused: false,
            paused_readers: Vec::new(),
            member_scratch: Vec::new(),
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
        }
    }

    // ----- connections -------------------------------------------------------------------

    /// Registers an upgraded connection and greets it.
    pub fn add_conn(&mut self, fd: std::os::fd::RawFd) -> usize {
        let id = connection_id(self.id, self.next_seq);
        self.next_seq += 1;
        let key = self.conns.insert(Conn::new(
            id,
            fd,
            self.config.send_queue_bytes,
            Instant::now(),
        ));
        self.stats.connections.fetch_add(1, RELAXED);
        self.stats.connections_total.fetch_add(1, RELAXED);
        self.enqueue(key, event::established(id, self.id));
        key
    }

    /// Forgets a connection whose session ended; its socket is closed right after.
    pub fn remove_conn(&mut self, key: usize) {
        self.leave_all(key);
        self.conns.remove(key);
        self.stats.connections.fetch_sub(1, RELAXED);
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

    /// Queues a control frame (pong, close); it passes the queue limit.
    pub fn enqueue_control(&mut self, key: usize, frame: Bytes) {
        self.conns[key].queue.push_control(frame);
        self.mark_dirty(key);
    }

    fn mark_dirty(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.in_dirty || conn.write_blocked {
            return;
        }
        conn.in_dirty = true;
        self.dirty.push((key, conn.id));
        self.wake_flusher();
    }

    fn wake_flusher(&mut self) {
        if let Some(w) = self.flusher.take() {
            w.wake();
        }
    }

    /// Whether the flusher has work; registers its waker when not.
    pub fn flusher_idle(&mut self, waker: &Waker) -> bool {
        if !self.dirty.is_empty() || self.outbox_len > 0 || self.ring.iter().any(|&r| r) {
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
        self.leave_all(key);
        let conn = &mut self.conns[key];
        conn.phase = Phase::Closing {
            peer_closed: false,
            deadline: Instant::now() + CLOSE_LINGER,
        };
        conn.wake();
        self.enqueue_control(key, close_frame(code, reason));
    }

    /// The peer sent a close frame (`code` None: empty payload). We answer with the same code.
    pub fn on_peer_close(&mut self, key: usize, code: Option<u16>) {
        match self.conns[key].phase {
            Phase::Open => {
                self.leave_all(key);
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
            conn.wake();
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
        let interval = self.config.ping_interval();
        let mut ping = Vec::new();
        let mut dead = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            match conn.phase {
                Phase::Closing { deadline, .. } if now >= deadline => {
                    conn.phase = Phase::Done;
                    conn.wake();
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
        for key in ping {
            self.enqueue_control(key, server_frame(OP_PING, b""));
        }
        for key in dead {
            self.stats.ping_timeouts.fetch_add(1, RELAXED);
            self.close_conn(key, close::GOING_AWAY, "ping timeout");
        }
    }

    // ----- client messages ---------------------------------------------------------------

    /// A complete text message from connection `key`.
    pub fn on_text(&mut self, key: usize, text: &mut [u8]) {
        self.stats.messages_in.fetch_add(1, RELAXED);
        let value = match parse_json(text, &mut self.json_buffers) {
            Ok(v) => v,
            Err(e) => return self.app_error(key, &e, None),
        };
        let parsed = interpret(&value);
        let reference = parsed.reference;
        let result = match parsed.message {
            Ok(ClientMessage::Join { room }) => self.join(key, room, reference.as_deref()),
            Ok(ClientMessage::Leave { room }) => self.leave(key, room, reference.as_deref()),
            Ok(ClientMessage::Send { room, content }) => self.send(
                key,
                room,
                content.encode().into_bytes(),
                reference.as_deref(),
            ),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.app_error(key, &e, reference.as_deref());
        }
    }

    fn app_error(&mut self, key: usize, err: &AppError, reference: Option<&[u8]>) {
        self.stats.app_errors.fetch_add(1, RELAXED);
        self.enqueue(key, event::error(err.code(), &err.to_string(), reference));
    }

    fn ack(&mut self, key: usize, reference: Option<&[u8]>) {
        if let Some(r) = reference {
            self.enqueue(key, event::ack(r));
        }
    }

    fn is_member(&self, key: usize, room: &str) -> bool {
        let conn = &self.conns[key];
        conn.pending_joins.iter().any(|r| &**r == room)
            || self
                .rooms
                .key(room)
                .is_some_and(|rk| conn.rooms.iter().any(|&(k, _)| k == rk))
    }

    fn new_ownership(&self) -> Ownership {
        let c = &self.config;
        Ownership::new(self.shards, Batcher::new(c.batch_window(), c.batch_max))
    }

    fn owned_room(&mut self, room: &str) -> usize {
        let ownership = self.new_ownership();
        let rk = self
            .rooms
            .get_or_insert_with(room, |name| Room::new(name, Some(ownership)));
        self.stats.rooms.store(self.rooms.len() as u64, RELAXED);
        rk
    }

    fn join(&mut self, key: usize, room: &str, reference: Option<&[u8]>) -> Result<(), AppError> {
        if self.is_member(key, room) {
            return Err(AppError::AlreadyInRoom { room: room.into() });
        }
        if self.conns[key].in_room_count() >= ROOMS_PER_CONNECTION_MAX {
            return Err(AppError::TooManyRooms {
                max: ROOMS_PER_CONNECTION_MAX,
            });
        }
        let owner = owner_shard(room, self.shards);
        if owner == self.id {
            let rk = self.owned_room(room);
            self.add_member(key, rk, reference);
            return Ok(());
        }
        let name: Arc<str> = match self.rooms.key(room) {
            Some(rk) => self.rooms.get(rk).expect("indexed").name.clone(),
            None => Arc::from(room),
        };
        let conn = &mut self.conns[key];
        conn.pending_joins.push(name.clone());
        let conn_ref = ConnRef { key, id: conn.id };
        self.send_to(
            owner,
            ShardMsg::Join {
                room: name,
                conn: conn_ref,
                reference: reference.map(<[u8]>::to_vec),
            },
        );
        Ok(())
    }

    /// Adds `key` to the local members of room `rk` and tells it so.
    fn add_member(&mut self, key: usize, rk: usize, reference: Option<&[u8]>) {
        let room = self.rooms.get_mut(rk).expect("room exists");
        let slot = room.members.insert(key);
        let frame = event::joined(&room.name, room.total_members());
        self.conns[key].rooms.push((rk, slot));
        self.enqueue(key, frame);
        self.ack(key, reference);
    }

    fn leave(&mut self, key: usize, room: &str, reference: Option<&[u8]>) -> Result<(), AppError> {
        let pending = self.conns[key]
            .pending_joins
            .iter()
            .position(|r| &**r == room);
        if let Some(pos) = pending {
            let name = self.conns[key].pending_joins.swap_remove(pos);
            let owner = owner_shard(room, self.shards);
            let shard = self.id;
            self.send_to(owner, ShardMsg::Leave { room: name, shard });
        } else {
            let rk = self
                .rooms
                .key(room)
                .filter(|rk| self.conns[key].rooms.iter().any(|&(k, _)| k == *rk))
                .ok_or_else(|| AppError::NotInRoom { room: room.into() })?;
            self.remove_member(key, rk);
        }
        self.enqueue(key, event::left(room));
        self.ack(key, reference);
        Ok(())
    }

    fn remove_member(&mut self, key: usize, rk: usize) {
        let conn = &mut self.conns[key];
        let pos = conn
            .rooms
            .iter()
            .position(|&(k, _)| k == rk)
            .expect("member of the room");
        let (_, slot) = conn.rooms.swap_remove(pos);
        let room = self.rooms.get_mut(rk).expect("room exists");
        room.members.remove(slot);
        if room.owner.is_none() {
            let name = room.name.clone();
            let owner = owner_shard(&name, self.shards);
            let shard = self.id;
            self.send_to(owner, ShardMsg::Leave { room: name, shard });
        }
        self.rooms.remove_if_disposable(rk);
        self.stats.rooms.store(self.rooms.len() as u64, RELAXED);
    }

    /// Leaves every joined and pending room (close, disconnect).
    fn leave_all(&mut self, key: usize) {
        while let Some(&(rk, _)) = self.conns[key].rooms.last() {
            self.remove_member(key, rk);
        }
        let pending = std::mem::take(&mut self.conns[key].pending_joins);
        for name in pending {
            let owner = owner_shard(&name, self.shards);
            let shard = self.id;
            self.send_to(owner, ShardMsg::Leave { room: name, shard });
        }
    }

    fn send(
        &mut self,
        key: usize,
        room: &str,
        content: Vec<u8>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        if !self.is_member(key, room) {
            return Err(AppError::NotInRoom { room: room.into() });
        }
        let from = self.conns[key].id;
        let owner = owner_shard(room, self.shards);
        if owner == self.id {
            let rk = self
                .rooms
                .key(room)
                .expect("members' rooms exist on the owner");
            self.publish(rk, from, &content);
        } else {
            let name = match self.rooms.key(room) {
                Some(rk) => self.rooms.get(rk).expect("indexed").name.clone(),
                None => self.conns[key]
                    .pending_joins
                    .iter()
                    .find(|r| &***r == room)
                    .expect("pending member")
                    .clone(),
            };
            self.send_to(
                owner,
                ShardMsg::Publish {
                    room: name,
                    from,
                    content,
                },
            );
        }
        self.ack(key, reference);
        Ok(())
    }

    // ----- rooms this shard owns ---------------------------------------------------------

    /// Assigns the next id, encodes the message once, and sends it now or with its batch.
    fn publish(&mut self, rk: usize, from: u64, content: &[u8]) {
        let now = Instant::now();
        let room = self.rooms.get_mut(rk).expect("room exists");
        let owner = room.owner.as_mut().expect("publish on the owner");
        let id = owner.next_id;
        owner.next_id += 1;
        let message = event::message_new(&room.name, id, from, content, unix_ms());
        let step = owner.batcher.push(now, message);
        self.stats.published.fetch_add(1, RELAXED);
        self.apply_batch_step(rk, step);
    }

    fn apply_batch_step(&mut self, rk: usize, (out, deadline): crate::rooms::Step) {
        if let Some(Deadline { at, epoch }) = deadline {
            self.batch_due.push_back((at, rk, epoch));
            if let Some(w) = self.batch_waker.take() {
                w.wake();
            }
        }
        if let Some(messages) = out {
            self.fanout(rk, event::batch(&messages));
        }
    }

    /// A batch window of room `rk` ended.
    pub fn on_batch_deadline(&mut self, rk: usize, epoch: u64, now: Instant) {
        let Some(owner) = self.rooms.get_mut(rk).and_then(|r| r.owner.as_mut()) else {
            return;
        };
        let step = owner.batcher.on_deadline(now, epoch);
        self.apply_batch_step(rk, step);
        self.rooms.remove_if_disposable(rk);
        self.stats.rooms.store(self.rooms.len() as u64, RELAXED);
    }

    /// Queues `frame` to every member of room `rk`: local ones directly, other shards' through
    /// their inboxes (one message per shard, whatever its member count).
    fn fanout(&mut self, rk: usize, frame: Bytes) {
        let room = self.rooms.get(rk).expect("room exists");
        let name = room.name.clone();
        for shard in 0..self.shards {
            let has_members = self
                .rooms
                .get(rk)
                .and_then(|r| r.owner.as_ref())
                .is_some_and(|o| o.remote[shard] > 0);
            if has_members {
                self.send_to(
                    shard,
                    ShardMsg::Deliver {
                        room: name.clone(),
                        frame: frame.clone(),
                    },
                );
            }
        }
        self.enqueue_to_members(rk, &frame);
    }

    /// Queues `frame` to this shard's members of room `rk`.
    fn enqueue_to_members(&mut self, rk: usize, frame: &Bytes) {
        let mut members = std::mem::take(&mut self.member_scratch);
        members.clear();
        if let Some(room) = self.rooms.get(rk) {
            members.extend(room.members.iter().map(|(_, &k)| k));
        }
        for &key in &members {
            self.enqueue(key, frame.clone());
        }
        self.member_scratch = members;
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

    /// A message from another shard (adoption and shutdown are handled by the shard's loop).
    pub fn on_shard_msg(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::Join {
                room,
                conn,
                reference,
            } => {
                let rk = self.owned_room(&room);
                let from = shard_of(conn.id);
                let r = self.rooms.get_mut(rk).expect("just made");
                let owner = r.owner.as_mut().expect("owned");
                owner.remote[from] += 1;
                let members = r.total_members();
                let room = r.name.clone();
                self.send_to(
                    from,
                    ShardMsg::Joined {
                        room,
                        conn,
                        members,
                        reference,
                    },
                );
            }
            ShardMsg::Joined {
                room,
                conn,
                members,
                reference,
            } => {
                let Some(c) = self.conns.get_mut(conn.key).filter(|c| c.id == conn.id) else {
                    return; // Closed meanwhile; its leave already went to the owner.
                };
                let Some(pos) = c.pending_joins.iter().position(|r| *r == room) else {
                    return; // Left before the owner answered; the leave is on its way.
                };
                c.pending_joins.swap_remove(pos);
                let rk = self
                    .rooms
                    .get_or_insert_with(&room, |name| Room::new(name, None));
                self.stats.rooms.store(self.rooms.len() as u64, RELAXED);
                let slot = self
                    .rooms
                    .get_mut(rk)
                    .expect("just made")
                    .members
                    .insert(conn.key);
                self.conns[conn.key].rooms.push((rk, slot));
                self.enqueue(conn.key, event::joined(&room, members));
                self.ack(conn.key, reference.as_deref());
            }
            ShardMsg::Leave { room, shard } => {
                let Some(rk) = self.rooms.key(&room) else {
                    panic!("leave for unknown room {room} from shard {shard}");
                };
                let owner = self
                    .rooms
                    .get_mut(rk)
                    .and_then(|r| r.owner.as_mut())
                    .expect("leaves go to the owner");
                assert!(owner.remote[shard] > 0, "more leaves than joins");
                owner.remote[shard] -= 1;
                self.rooms.remove_if_disposable(rk);
                self.stats.rooms.store(self.rooms.len() as u64, RELAXED);
            }
            ShardMsg::Publish {
                room,
                from,
                content,
            } => {
                // The publisher's join reached us first (same inbox order), so the room exists.
                let rk = self.rooms.key(&room).expect("publisher joined first");
                self.publish(rk, from, &content);
            }
            ShardMsg::Deliver { room, frame } => {
                if let Some(rk) = self.rooms.key(&room) {
                    self.enqueue_to_members(rk, &frame);
                }
            }
            ShardMsg::Adopt { .. } | ShardMsg::Shutdown => {
                unreachable!("handled by the shard loop")
            }
        }
    }

    // ----- the flush pass ----------------------------------------------------------------

    /// Moves waiting outbox messages into peer inboxes, rings the peers, and writes each dirty
    /// connection's queue in as few `send` calls as it takes (usually one).
    pub fn flush(&mut self) {
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
        if self.reading_paused && self.outbox_len <= OUTBOX_MESSAGES_MAX / 2 {
            self.reading_paused = false;
            for key in std::mem::take(&mut self.paused_readers) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.read_paused = false;
                    conn.wake();
                }
            }
        }
        let mut i = 0;
        while i < self.dirty.len() {
            let (key, id) = self.dirty[i];
            i += 1;
            let Some(conn) = self.conns.get_mut(key).filter(|c| c.id == id) else {
                continue;
            };
            conn.in_dirty = false;
            self.write_conn(key);
        }
        self.dirty.clear();
    }

    /// The slow-consumer policy: drop what is queued, close with 1008, count it.
    fn cut_off_slow_consumer(&mut self, key: usize) {
        self.stats.slow_consumer_closes.fetch_add(1, RELAXED);
        self.conns[key].queue.clear();
        self.close_conn(key, close::POLICY, "slow consumer");
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
        if conn.write_blocked || conn.phase == Phase::Done {
            conn.wake();
        } else {
            self.finish_if_flushed(key);
        }
    }

    /// The session finished writing what the flusher could not.
    pub fn after_blocked_write(&mut self, key: usize) {
        self.finish_if_flushed(key);
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
