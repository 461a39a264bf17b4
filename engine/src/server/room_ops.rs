//! Room features on a shard: joining, leaving, sending, history, read marks, typing, room
//! creation and listing; the connection's side and the owner's side of each.
//!
//! Invariants:
//! - The owner decides every join (password, `maxUsers`, limits) and answers it once; a
//!   leave reaches the owner only for a join it accepted, so member counts never drift.
//! - The owner publishes a message only from a connection it counts as a member.
//! - A member sees every message published after its join was accepted, exactly once, in
//!   the owner's order: either in `room:joined`'s recent messages or live, never both.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::connection::Phase;
use super::shard::{unix_ms, Shard};
use super::shard_msg::{shard_of, ConnRef, CreateRoom, RoomQuery, ShardMsg};
use crate::limits::{
    HISTORY_REPLY_BYTES_MAX, JOIN_RECENT_MESSAGES, MENTIONS_PER_MESSAGE_MAX,
    ROOMS_CREATED_PER_CONNECTION_MAX, ROOMS_CREATED_PER_USER_MAX, ROOMS_PER_CONNECTION_MAX,
    ROOMS_PER_SHARD_MAX, ROOM_LIST_GATHERS_MAX, ROOM_LIST_MAX, ROOM_MEMBERS_MAX,
    ROOM_USERS_LISTED_MAX, TYPING_TTL, TYPING_USERS_SHOWN_MAX,
};
use crate::protocol::event;
use crate::protocol::message::AppError;
use crate::rooms::{Batcher, Deadline, History, Ownership, Room, RoomInfo};
use crate::users::{preview, secrets_equal, Status, User};

/// The users present in a room with their status, as JSON objects (at most
/// [`ROOM_USERS_LISTED_MAX`]), and how many were left out.
fn presence_entries(o: &Ownership) -> (Vec<Vec<u8>>, usize) {
    let users: Vec<Vec<u8>> = o
        .users
        .values()
        .take(ROOM_USERS_LISTED_MAX)
        .map(|u| {
            let mut entry = Vec::new();
            event::presence_entry(&mut entry, u.user.json(), u.status.as_str(), u.last_seen);
            entry
        })
        .collect();
    let more = o.users.len() - users.len();
    (users, more)
}

/// A `room:list` waiting for every shard's part.
#[derive(Debug)]
pub struct Gather {
    conn: ConnRef,
    reference: Option<Vec<u8>>,
    waiting: usize,
    entries: Vec<Vec<u8>>,
    truncated: bool,
}

impl Shard {
    // ----- the connection's side ----------------------------------------------------------

    /// Joined, or joining (the owner has not answered yet).
    pub(super) fn is_member(&self, key: usize, room: &str) -> bool {
        let conn = &self.conns[key];
        conn.pending_joins.iter().any(|r| &**r == room)
            || self
                .rooms
                .key(room)
                .is_some_and(|rk| conn.rooms.iter().any(|&(k, _)| k == rk))
    }

    /// The shared name of `room` when this shard knows it, else a new one.
    fn room_name(&self, key: usize, room: &str) -> Arc<str> {
        if let Some(rk) = self.rooms.key(room) {
            return self.rooms.get(rk).expect("indexed").name.clone();
        }
        self.conns[key]
            .pending_joins
            .iter()
            .find(|r| &***r == room)
            .cloned()
            .unwrap_or_else(|| Arc::from(room))
    }

    fn member_room(&self, key: usize, room: &str) -> Result<Arc<str>, AppError> {
        if !self.is_member(key, room) {
            return Err(AppError::NotInRoom { room: room.into() });
        }
        Ok(self.room_name(key, room))
    }

    pub(super) fn create(
        &mut self,
        key: usize,
        room: &str,
        description: Option<&str>,
        password: Option<&str>,
        max_users: Option<u32>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let c = &mut self.conns[key];
        if !c.authenticated && !self.config.guests_create_rooms {
            return Err(AppError::GuestsCannotCreate);
        }
        if c.rooms_created >= ROOMS_CREATED_PER_CONNECTION_MAX {
            return Err(AppError::RoomQuota {
                by: "connection",
                max: ROOMS_CREATED_PER_CONNECTION_MAX,
            });
        }
        c.rooms_created += 1;
        let by = c.speaker();
        let conn = self.conn_ref(key);
        let room: Arc<str> = Arc::from(room);
        let settings = CreateRoom {
            description: description.unwrap_or("").into(),
            password: password.map(Into::into),
            max_users,
        };
        self.route_room(ShardMsg::Create {
            room,
            settings,
            by,
            conn,
            reference: reference.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    pub(super) fn list(&mut self, key: usize, reference: Option<&[u8]>) -> Result<(), AppError> {
        if self.gathers.len() >= ROOM_LIST_GATHERS_MAX {
            return Err(AppError::Busy {
                what: "room:list",
                max: ROOM_LIST_GATHERS_MAX,
            });
        }
        let user_id = self.conns[key]
            .authenticated_user()
            .map(|u| Arc::from(&*u.id));
        let gather = self.gathers.insert(Gather {
            conn: self.conn_ref(key),
            reference: reference.map(<[u8]>::to_vec),
            waiting: self.shards,
            entries: Vec::new(),
            truncated: false,
        });
        let from = self.id;
        for to in 0..self.shards {
            let user_id = user_id.clone();
            self.route(
                to,
                ShardMsg::ListRooms {
                    from,
                    gather,
                    user_id,
                },
            );
        }
        Ok(())
    }

    pub(super) fn join(
        &mut self,
        key: usize,
        room: &str,
        password: Option<&str>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        if self.is_member(key, room) {
            return Err(AppError::AlreadyInRoom { room: room.into() });
        }
        if self.conns[key].in_room_count() >= ROOMS_PER_CONNECTION_MAX {
            return Err(AppError::TooManyRooms {
                max: ROOMS_PER_CONNECTION_MAX,
            });
        }
        let name = self.room_name(key, room);
        let user = self.conns[key].authenticated_user().cloned();
        let status = user
            .as_ref()
            .and_then(|u| self.local_users.get(&*u.id))
            .map_or(Status::Online, |l| l.status);
        let conn = self.conn_ref(key);
        self.conns[key].pending_joins.push(name.clone());
        self.route_room(ShardMsg::Join {
            room: name,
            conn,
            user,
            status,
            password: password.map(Into::into),
            reference: reference.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    /// The owner's answer to a join of connection `conn` on this shard.
    pub(super) fn on_joined(
        &mut self,
        room: Arc<str>,
        conn: ConnRef,
        result: Result<Bytes, Bytes>,
        reference: Option<Vec<u8>>,
    ) {
        let waiting = self
            .conns
            .get_mut(conn.key)
            .filter(|c| c.id == conn.id)
            .and_then(|c| {
                let pos = c.pending_joins.iter().position(|r| *r == room)?;
                c.pending_joins.swap_remove(pos);
                Some(())
            });
        if waiting.is_none() {
            // Closed or left before the answer: undo an accepted join.
            if result.is_ok() {
                self.route_room(ShardMsg::Leave {
                    room,
                    conn_id: conn.id,
                });
            }
            return;
        }
        match result {
            Ok(frame) => {
                let rk = self
                    .rooms
                    .get_or_insert_with(&room, |name| Room::new(name, None));
                self.count_rooms();
                let slot = self
                    .rooms
                    .get_mut(rk)
                    .expect("just made")
                    .members
                    .insert(conn.key);
                self.conns[conn.key].rooms.push((rk, slot));
                self.enqueue(conn.key, frame);
                self.ack(conn.key, reference.as_deref());
            }
            Err(frame) => self.enqueue(conn.key, frame),
        }
    }

    pub(super) fn leave(
        &mut self,
        key: usize,
        room: &str,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let pending = self.conns[key]
            .pending_joins
            .iter()
            .position(|r| &**r == room);
        if let Some(pos) = pending {
            // The owner's answer finds no pending join and undoes it if it was accepted.
            self.conns[key].pending_joins.swap_remove(pos);
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
        let conn_id = conn.id;
        let pos = conn
            .rooms
            .iter()
            .position(|&(k, _)| k == rk)
            .expect("member of the room");
        let (_, slot) = conn.rooms.swap_remove(pos);
        let room = self.rooms.get_mut(rk).expect("room exists");
        room.members.remove(slot);
        let name = room.name.clone();
        self.rooms.remove_if_disposable(rk);
        self.count_rooms();
        self.route_room(ShardMsg::Leave {
            room: name,
            conn_id,
        });
    }

    /// Leaves every joined and pending room (close, disconnect).
    pub(super) fn leave_all(&mut self, key: usize) {
        while let Some(&(rk, _)) = self.conns[key].rooms.last() {
            self.remove_member(key, rk);
        }
        // Pending joins: their answers find nothing waiting and undo accepted joins.
        self.conns[key].pending_joins.clear();
    }

    pub(super) fn send(
        &mut self,
        key: usize,
        room: &str,
        content: Vec<u8>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let name = self.member_room(key, room)?;
        let from = self.conns[key].speaker();
        let conn = self.conn_ref(key);
        self.route_room(ShardMsg::Publish {
            room: name,
            conn,
            from,
            content,
            reference: reference.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    pub(super) fn query(
        &mut self,
        key: usize,
        room: &str,
        query: RoomQuery,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let name = self.member_room(key, room)?;
        let conn = self.conn_ref(key);
        self.route_room(ShardMsg::Query {
            room: name,
            conn,
            query,
            reference: reference.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    /// A logged-in member's request about `room`, routed to the room's owner and acked.
    fn user_room_request(
        &mut self,
        key: usize,
        room: &str,
        reference: Option<&[u8]>,
        make: impl FnOnce(Arc<str>, ConnRef, Arc<User>) -> ShardMsg,
    ) -> Result<(), AppError> {
        let user = self.user_of(key)?;
        let name = self.member_room(key, room)?;
        let conn = self.conn_ref(key);
        self.route_room(make(name, conn, user));
        self.ack(key, reference);
        Ok(())
    }

    pub(super) fn read(
        &mut self,
        key: usize,
        room: &str,
        up_to: u64,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        self.user_room_request(key, room, reference, |room, conn, user| ShardMsg::Read {
            room,
            conn,
            user,
            up_to,
        })
    }

    pub(super) fn typing(
        &mut self,
        key: usize,
        room: &str,
        on: bool,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        self.user_room_request(key, room, reference, |room, conn, user| ShardMsg::Typing {
            room,
            conn,
            user,
            on,
        })
    }

    // ----- the owner's side ---------------------------------------------------------------

    pub(super) fn count_rooms(&self) {
        self.stats.rooms.store(self.rooms.len() as u64, RELAXED);
    }

    /// Bytes of history one reply (`room:joined`, a `message:history` page) may carry, so it
    /// fits the asker's send queue with room to spare for what else it receives.
    fn reply_bytes_max(&self) -> usize {
        HISTORY_REPLY_BYTES_MAX.min(self.config.send_queue_bytes / 4)
    }

    /// The owned room `room`, made with default settings when it does not exist.
    fn owned_room(&mut self, room: &str) -> Result<usize, AppError> {
        if let Some(rk) = self.rooms.key(room) {
            return Ok(rk);
        }
        let now = Instant::now();
        if self.rooms.len() >= ROOMS_PER_SHARD_MAX && !self.evict_empty_room(now) {
            return Err(AppError::RoomLimit {
                max: ROOMS_PER_SHARD_MAX,
            });
        }
        let c = &self.config;
        let ownership = Ownership::new(
            self.shards,
            Batcher::new(c.batch_window(), c.batch_max),
            History::new(1, c.history_messages, c.history_bytes_per_room),
        );
        let rk = self
            .rooms
            .get_or_insert_with(room, |name| Room::new(name, Some(ownership)));
        self.note_if_empty(rk, now);
        self.count_rooms();
        Ok(rk)
    }

    /// The owned room `room` if connection `conn_id` is a member.
    fn member_of_owned(&self, room: &str, conn_id: u64) -> Option<usize> {
        let rk = self.rooms.key(room)?;
        let o = self.rooms.get(rk)?.owner.as_ref()?;
        o.members.contains_key(&conn_id).then_some(rk)
    }

    fn ownership(&mut self, rk: usize) -> &mut Ownership {
        self.rooms
            .get_mut(rk)
            .and_then(|r| r.owner.as_mut())
            .expect("an owned room")
    }

    fn refuse(&mut self, conn: ConnRef, err: AppError, reference: Option<&[u8]>) {
        let frame = self.error_frame(&err, reference);
        self.deliver_to_conn(conn, frame);
    }

    pub(super) fn owner_join(
        &mut self,
        room: Arc<str>,
        conn: ConnRef,
        user: Option<Arc<User>>,
        status: Status,
        password: Option<Box<str>>,
        reference: Option<Vec<u8>>,
    ) {
        let result = self.admit(&room, conn, user.as_ref(), status, password.as_deref());
        let result = result.map_err(|e| self.error_frame(&e, reference.as_deref()));
        self.route(
            shard_of(conn.id),
            ShardMsg::Joined {
                room,
                conn,
                result,
                reference,
            },
        );
    }

    /// Decides a join; on success the member is counted and the room told.
    fn admit(
        &mut self,
        room: &str,
        conn: ConnRef,
        user: Option<&Arc<User>>,
        status: Status,
        password: Option<&str>,
    ) -> Result<Bytes, AppError> {
        let rk = self.owned_room(room)?;
        let me = self.id;
        let o = self.ownership(rk);
        if let Some(expected) = &o.info.password {
            if !password.is_some_and(|p| secrets_equal(p.as_bytes(), expected.as_bytes())) {
                return Err(AppError::WrongPassword { room: room.into() });
            }
        }
        let present = user.is_some_and(|u| o.users.contains_key(&*u.id));
        let full = o
            .info
            .max_users
            .map(|m| (m as usize, !present && o.head_count() >= m as usize))
            .unwrap_or((ROOM_MEMBERS_MAX, false));
        if full.1 || o.members.len() >= ROOM_MEMBERS_MAX {
            return Err(AppError::RoomFull {
                room: room.into(),
                max: full.0,
            });
        }
        let arrived = o.add_member(conn.id, me, user, status, unix_ms());
        if arrived {
            let user = user.expect("only users arrive");
            let name = self.rooms.get(rk).expect("owned").name.clone();
            self.fanout(rk, event::user_moved(true, &name, user.json()));
            self.route_user(ShardMsg::UserRoom {
                user: user.clone(),
                room: name,
                present: true,
            });
        }
        let room = self.rooms.get(rk).expect("a member keeps it");
        let o = room.owner.as_ref().expect("owned");
        let (users, more) = presence_entries(o);
        let budget = self.reply_bytes_max();
        let recent = o
            .history
            .recent(JOIN_RECENT_MESSAGES, o.batcher.held_len(), budget);
        Ok(event::joined(
            &room.name,
            o.members.len() as u64,
            users.iter().map(Vec::as_slice),
            more,
            recent.map(|b| &b[..]),
        ))
    }

    pub(super) fn owner_leave(&mut self, room: &str, conn_id: u64) {
        let rk = self
            .rooms
            .key(room)
            .unwrap_or_else(|| panic!("leave for unknown room {room}"));
        let me = self.id;
        let o = self.ownership(rk);
        let typing_before = o.typing.len();
        let gone = o.remove_member(conn_id, me);
        let typing_changed = o.typing.len() != typing_before;
        if let Some(user) = gone {
            let name = self.rooms.get(rk).expect("owned").name.clone();
            self.fanout(rk, event::user_moved(false, &name, user.json()));
            if typing_changed {
                self.typing_changed(rk);
            }
            self.route_user(ShardMsg::UserRoom {
                user: user.clone(),
                room: name,
                present: false,
            });
        }
        if self.rooms.get(rk).is_some() {
            self.rooms.remove_if_disposable(rk);
            self.count_rooms();
        }
        self.note_if_empty(rk, Instant::now());
    }

    pub(super) fn owner_publish(
        &mut self,
        room: &str,
        conn: ConnRef,
        from: &Arc<User>,
        content: &[u8],
        reference: Option<Vec<u8>>,
    ) {
        let Some(rk) = self.member_of_owned(room, conn.id) else {
            let err = AppError::NotInRoom { room: room.into() };
            return self.refuse(conn, err, reference.as_deref());
        };
        let id = self.publish(rk, from, content);
        if reference.is_some() {
            self.deliver_to_conn(conn, event::ack_id(reference.as_deref(), id));
        }
        if self.rooms.get(rk).is_none() {
            return; // The fan-out's slow-consumer cuts emptied and dropped the room.
        }
        if self.ownership(rk).typing.stop(&from.id) {
            self.typing_changed(rk);
        }
        // Only users' mentions notify: a guest could otherwise notify anyone for free.
        if !from.is_guest() && memchr::memchr(b'@', content).is_some() {
            self.mentions(rk, from, content);
        }
    }

    /// Assigns the next id, keeps the message in the history, and sends it now or with its
    /// batch. Returns the id.
    fn publish(&mut self, rk: usize, from: &User, content: &[u8]) -> u64 {
        let now = Instant::now();
        let room = self.rooms.get_mut(rk).expect("room exists");
        let owner = room.owner.as_mut().expect("publish on the owner");
        let id = owner.next_id;
        owner.next_id += 1;
        let message = Bytes::from(event::message_new(
            &room.name,
            id,
            from.json(),
            content,
            unix_ms(),
        ));
        // A user has read what they wrote.
        if let Some(mark) = owner.read_marks.get_mut(&*from.id) {
            *mark = id;
        }
        let step = owner.batcher.push(now, message.clone());
        let trimmed = self.rooms.keep_history(rk, id, message);
        self.stats.history_trimmed.fetch_add(trimmed, RELAXED);
        self.stats
            .history_bytes
            .store(self.rooms.history_bytes() as u64, RELAXED);
        self.stats.published.fetch_add(1, RELAXED);
        self.apply_batch_step(rk, step);
        id
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
        self.count_rooms();
    }

    /// Queues `frame` to every member of room `rk`: local ones directly, other shards' through
    /// their inboxes (one message per shard, whatever its member count).
    pub(super) fn fanout(&mut self, rk: usize, frame: Bytes) {
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

    /// Queues `frame` to this shard's members of room `rk`. The frame is copied once into the
    /// room's chunk, and each member's queue takes (or extends) a range of it: no reference
    /// count and no entry per member per message. Members whose queue is full are cut off
    /// after the loop, since the cut changes the room.
    pub(super) fn enqueue_to_members(&mut self, rk: usize, frame: &Bytes) {
        let Some(room) = self.rooms.get(rk) else {
            return;
        };
        if room.members.is_empty() {
            return;
        }
        let placed = self.fanout_chunks.place(rk, frame);
        let mut slow = std::mem::take(&mut self.member_scratch);
        slow.clear();
        let mut queued = 0;
        for (_, &key) in room.members.iter() {
            let conn = &mut self.conns[key];
            if conn.phase != Phase::Open {
                continue;
            }
            let pushed = match &placed {
                Some((chunk, start, end)) => conn.queue.push_chunk(chunk, *start, *end),
                None => conn.queue.push(frame.clone()),
            };
            if pushed.is_err() {
                slow.push(key);
                continue;
            }
            queued += 1;
            conn.list_dirty(key, &mut self.dirty);
        }
        self.stats.frames_out.fetch_add(queued, RELAXED);
        if queued > 0 {
            self.wake_flusher();
        }
        for &key in &slow {
            if self.conns.get(key).is_some_and(|c| c.phase == Phase::Open) {
                tracing::debug!(conn = self.conns[key].id, "slow consumer cut off");
                self.cut_off_slow_consumer(key);
            }
        }
        self.member_scratch = slow;
    }

    /// `@name` in a message notifies the room's user of that name (not the sender).
    fn mentions(&mut self, rk: usize, from: &User, content: &[u8]) {
        let room = self.rooms.get(rk).expect("owned");
        let o = room.owner.as_ref().expect("owned");
        let mut targets: Vec<Box<str>> = Vec::new();
        let mut i = 0;
        while let Some(at) = memchr::memchr(b'@', &content[i..]) {
            let start = i + at + 1;
            let len = content[start..]
                .iter()
                .take_while(|&&b| crate::users::is_username_byte(b))
                .count();
            i = start + len;
            let Ok(name) = std::str::from_utf8(&content[start..start + len]) else {
                continue;
            };
            if len == 0 || targets.len() >= MENTIONS_PER_MESSAGE_MAX {
                continue;
            }
            let target = o
                .users
                .values()
                .find(|u| &*u.user.name == name && u.user.id != from.id);
            if let Some(t) = target {
                if !targets.contains(&t.user.id) {
                    targets.push(t.user.id.clone());
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        let title = format!("{} mentioned you in {}", from.name, room.name);
        let body = preview(content);
        for user_id in targets {
            self.route_user(ShardMsg::Notify {
                user_id,
                from: Some(from.id.clone()),
                kind: "mention",
                title: title.clone(),
                body: body.clone(),
            });
        }
    }

    pub(super) fn owner_create(
        &mut self,
        room: Arc<str>,
        settings: CreateRoom,
        by: Arc<User>,
        conn: ConnRef,
        reference: Option<Vec<u8>>,
    ) {
        if self.rooms.key(&room).is_some() {
            let err = AppError::RoomExists {
                room: room.to_string(),
            };
            return self.refuse(conn, err, reference.as_deref());
        }
        let made = self.rooms_created.get(&*by.id).copied().unwrap_or(0);
        if made >= ROOMS_CREATED_PER_USER_MAX {
            let err = AppError::RoomQuota {
                by: "user",
                max: ROOMS_CREATED_PER_USER_MAX,
            };
            return self.refuse(conn, err, reference.as_deref());
        }
        let rk = match self.owned_room(&room) {
            Ok(rk) => rk,
            Err(e) => return self.refuse(conn, e, reference.as_deref()),
        };
        let frame = event::room_created(
            &room,
            &settings.description,
            by.json(),
            settings.password.is_some(),
            settings.max_users,
            reference.as_deref(),
        );
        let creator: Arc<str> = Arc::from(&*by.id);
        *self.rooms_created.entry(creator.clone()).or_insert(0) += 1;
        let o = self.ownership(rk);
        o.created = true;
        o.created_by = Some(creator);
        o.info = RoomInfo {
            description: settings.description,
            password: settings.password,
            max_users: settings.max_users,
        };
        self.deliver_to_conn(conn, frame);
    }

    pub(super) fn owner_query(
        &mut self,
        room: &str,
        conn: ConnRef,
        query: RoomQuery,
        reference: Option<Vec<u8>>,
    ) {
        let Some(rk) = self.member_of_owned(room, conn.id) else {
            let err = AppError::NotInRoom { room: room.into() };
            return self.refuse(conn, err, reference.as_deref());
        };
        let budget = self.reply_bytes_max();
        let o = self
            .rooms
            .get(rk)
            .and_then(|r| r.owner.as_ref())
            .expect("owned");
        let frame = match query {
            RoomQuery::History { limit, before } => {
                let (page, has_more) = o.history.page(limit, before, budget);
                event::history(room, page.map(|b| &b[..]), has_more, reference.as_deref())
            }
            RoomQuery::Presence => {
                let (users, more) = presence_entries(o);
                event::presence_list(
                    room,
                    users.iter().map(Vec::as_slice),
                    more,
                    reference.as_deref(),
                )
            }
        };
        self.deliver_to_conn(conn, frame);
    }

    /// The user's room entry, if they are present.
    fn present_user(&self, room: &str, user: &User) -> Option<usize> {
        let rk = self.rooms.key(room)?;
        let o = self.rooms.get(rk)?.owner.as_ref()?;
        o.users.contains_key(&*user.id).then_some(rk)
    }

    pub(super) fn owner_read(&mut self, room: &str, conn: ConnRef, user: &User, up_to: u64) {
        let Some(rk) = self.present_user(room, user) else {
            return self.refuse(conn, AppError::NotInRoom { room: room.into() }, None);
        };
        let o = self.ownership(rk);
        let up_to = up_to.min(o.next_id - 1);
        if let Some(mark) = o.read_marks.get_mut(&*user.id) {
            if *mark >= up_to {
                return; // Nothing new read: the room hears nothing.
            }
            *mark = up_to;
        }
        self.fanout(rk, event::read(room, &user.id, up_to));
    }

    pub(super) fn owner_typing(&mut self, room: &str, conn: ConnRef, user: &Arc<User>, on: bool) {
        let Some(rk) = self.present_user(room, user) else {
            return self.refuse(conn, AppError::NotInRoom { room: room.into() }, None);
        };
        let o = self.ownership(rk);
        let changed = if on {
            o.typing.start(user, Instant::now(), TYPING_TTL)
        } else {
            o.typing.stop(&user.id)
        };
        if on {
            let name = self.rooms.get(rk).expect("owned").name.clone();
            self.typing_rooms.insert(name);
        }
        if changed {
            self.typing_changed(rk);
        }
    }

    /// Tells room `rk` who is typing now.
    fn typing_changed(&mut self, rk: usize) {
        let room = self.rooms.get(rk).expect("owned");
        let typing = &room.owner.as_ref().expect("owned").typing;
        let shown = typing.users().take(TYPING_USERS_SHOWN_MAX);
        let more = typing.len().saturating_sub(TYPING_USERS_SHOWN_MAX);
        let frame = event::typing_update(&room.name, shown.map(|u| u.json()), more);
        self.fanout(rk, frame);
    }

    /// Drops typing users whose 3 s ran out and tells their rooms.
    pub(super) fn expire_typing(&mut self, now: Instant) {
        if self.typing_rooms.is_empty() {
            return;
        }
        let names: Vec<Arc<str>> = self.typing_rooms.iter().cloned().collect();
        for name in names {
            let Some(rk) = self.rooms.key(&name) else {
                self.typing_rooms.remove(&name);
                continue;
            };
            let o = self.ownership(rk);
            let expired = o.typing.expire(now);
            let empty = o.typing.is_empty();
            if expired {
                self.typing_changed(rk);
            }
            if empty {
                self.typing_rooms.remove(&name);
            }
        }
    }

    /// This shard's part of a `room:list`: the rooms it owns.
    pub(super) fn list_owned_rooms(
        &mut self,
        from: usize,
        gather: usize,
        user_id: Option<Arc<str>>,
    ) {
        let mut entries = Vec::new();
        let mut truncated = false;
        for room in self.rooms.iter() {
            let Some(o) = &room.owner else { continue };
            if entries.len() == ROOM_LIST_MAX {
                truncated = true;
                break;
            }
            let mut entry = Vec::new();
            event::room_entry(
                &mut entry,
                &room.name,
                &o.info.description,
                o.members.len() as u64,
                o.info.password.is_some(),
                o.info.max_users,
                user_id.as_deref().map_or(0, |u| o.unread(u)),
            );
            entries.push(entry);
        }
        self.route(
            from,
            ShardMsg::RoomsPart {
                gather,
                entries,
                truncated,
            },
        );
    }

    pub(super) fn on_rooms_part(&mut self, gather: usize, entries: Vec<Vec<u8>>, truncated: bool) {
        let g = self.gathers.get_mut(gather).expect("a gather waits");
        g.entries.extend(entries);
        g.truncated |= truncated;
        g.waiting -= 1;
        if g.waiting > 0 {
            return;
        }
        let mut g = self.gathers.remove(gather);
        g.entries.sort_unstable();
        if g.entries.len() > ROOM_LIST_MAX {
            g.entries.truncate(ROOM_LIST_MAX);
            g.truncated = true;
        }
        let frame = event::room_list(
            g.entries.iter().map(Vec::as_slice),
            g.truncated,
            g.reference.as_deref(),
        );
        self.deliver_to_conn(g.conn, frame);
    }

    /// `POST /api/publish`: a message from the `system` user.
    pub(super) fn api_publish(&mut self, room: Arc<str>, content: &[u8]) {
        match self.owned_room(&room) {
            Ok(rk) => {
                let system = self.system_user.clone();
                self.publish(rk, &system, content);
            }
            Err(e) => {
                self.stats.app_errors.fetch_add(1, RELAXED);
                tracing::warn!(%room, %e, "api publish refused");
            }
        }
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
