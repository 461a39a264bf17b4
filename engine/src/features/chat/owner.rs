//! The chat feature on a room's owner: admitting joins, members leaving, publishing,
//! `room:create`, history and presence queries, read marks, typing and mentions.

use std::sync::Arc;

use bytes::Bytes;

use super::events;
use super::msg::{Create, Join, Publish, RoomOp, RoomQuery, ShardMsg, ToRoom};
use super::room::{ChatRoom, RoomInfo};
use super::Chat;
use crate::features::chat::limits::{
    HISTORY_REPLY_BYTES_MAX, JOIN_RECENT_MESSAGES, MENTIONS_PER_MESSAGE_MAX,
    ROOMS_CREATED_PER_USER_MAX, ROOM_USERS_LISTED_MAX, TYPING_TTL, TYPING_USERS_SHOWN_MAX,
};
use crate::features::shared::Shared;
use crate::features::users::{self, ToUser, UserOp};
use crate::features::FeatureId;
use crate::identity::{secrets_equal, User};
use crate::limits::ROOM_MEMBERS_MAX;
use crate::protocol::event;
use crate::protocol::message::AppError;
use crate::server::{ConnRef, Ctx};

/// The users present in a room with their status (and `data`, the presence data `data`
/// gives for a user id), as JSON objects (at most [`ROOM_USERS_LISTED_MAX`]), and how many
/// were left out.
fn presence_entries<'d>(
    room: &ChatRoom,
    data: impl Fn(&str) -> Option<&'d [u8]>,
) -> (Vec<Vec<u8>>, usize) {
    let users: Vec<Vec<u8>> = room
        .users
        .values()
        .take(ROOM_USERS_LISTED_MAX)
        .map(|u| {
            let mut entry = Vec::new();
            events::presence_entry(&mut entry, u.user.json(), u.status.as_str(), u.last_seen);
            if let Some(d) = data(&u.user.id) {
                entry.pop();
                entry.extend_from_slice(b",\"data\":");
                entry.extend_from_slice(d);
                entry.push(b'}');
            }
            entry
        })
        .collect();
    let more = room.users.len() - users.len();
    (users, more)
}

/// Bytes of history one reply (`room:joined`, a `message:history` page) may carry, so it
/// fits the asker's send queue with room to spare for what else it receives.
fn reply_bytes_max(ctx: &Ctx<'_>) -> usize {
    HISTORY_REPLY_BYTES_MAX.min(ctx.config().send_queue_bytes / 4)
}

impl Chat {
    /// A message for owned room `msg.room`; `shared` answers for presence data.
    pub fn on_owned(&mut self, ctx: &mut Ctx<'_>, shared: &Shared, msg: ToRoom) {
        let ToRoom { room, op } = msg;
        match op {
            RoomOp::Join(join) => self.owner_join(ctx, room, *join),
            RoomOp::Publish(p) => self.owner_publish(ctx, &room, *p),
            RoomOp::Create(c) => self.owner_create(ctx, room, *c),
            RoomOp::Query(q) => {
                let data = |user: &str| shared.user_data(&room, user);
                self.owner_query(ctx, &room, (q.conn, q.query), q.reference.as_deref(), data)
            }
            RoomOp::Read { conn, user, up_to } => self.owner_read(ctx, &room, conn, &user, up_to),
            RoomOp::Typing { conn, user, on } => self.owner_typing(ctx, &room, conn, &user, on),
            RoomOp::ApiPublish { content } => self.api_publish(ctx, &room, &content),
        }
    }

    /// The owned room `name`: its topic key, with its chat state made (or remade, for a new
    /// topic of the same name) as needed.
    fn owned(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Result<usize, AppError> {
        let (tk, serial) = ctx.own_topic(name, FeatureId::Chat)?;
        let fresh = self.rooms.get(name).is_none_or(|r| r.serial != serial);
        if fresh {
            // State of a dropped topic of this name whose drop event is still queued.
            self.forget_room(name);
            let shared = ctx.topic(tk).name.clone();
            self.rooms.insert(shared, ChatRoom::new(serial));
        }
        Ok(tk)
    }

    fn room(&self, name: &str) -> &ChatRoom {
        self.rooms.get(name).expect("an owned room has chat state")
    }

    fn room_mut(&mut self, name: &str) -> &mut ChatRoom {
        self.rooms
            .get_mut(name)
            .expect("an owned room has chat state")
    }

    fn owner_join(&mut self, ctx: &mut Ctx<'_>, room: Arc<str>, join: Join) {
        let result = self.admit(ctx, &room, &join);
        let result = result.map_err(|e| {
            ctx.stats().app_errors.fetch_add(1, RELAXED);
            event::error(e.code(), &e.to_string(), join.reference.as_deref())
        });
        ctx.answer_join(room, FeatureId::Chat, join.conn, result, join.reference);
    }

    /// Decides a join; on success the member is counted and the room told.
    fn admit(&mut self, ctx: &mut Ctx<'_>, name: &str, join: &Join) -> Result<Bytes, AppError> {
        let tk = self.owned(ctx, name)?;
        let r = self.room(name);
        if let Some(expected) = &r.info.password {
            let given = join.password.as_deref();
            if !given.is_some_and(|p| secrets_equal(p.as_bytes(), expected.as_bytes())) {
                return Err(AppError::WrongPassword { room: name.into() });
            }
        }
        let present = join
            .user
            .as_ref()
            .is_some_and(|u| r.users.contains_key(&*u.id));
        let (max, full) = r
            .info
            .max_users
            .map(|m| (m as usize, !present && r.head_count() >= m as usize))
            .unwrap_or((ROOM_MEMBERS_MAX, false));
        if full || ctx.topic_owner(tk).members.len() >= ROOM_MEMBERS_MAX {
            return Err(AppError::RoomFull {
                room: name.into(),
                max,
            });
        }
        if ctx.add_member(tk, join.conn) {
            let last_id = ctx.topic_owner(tk).last_id();
            let now_ms = ctx.now().unix_ms;
            let user = join.user.as_ref();
            let arrived =
                self.room_mut(name)
                    .add_member(join.conn.id, user, join.status, last_id, now_ms);
            if arrived {
                let user = user.expect("only users arrive");
                let shared = ctx.topic(tk).name.clone();
                ctx.fanout(tk, events::user_moved(true, &shared, user.json()));
                ctx.to_owner(users::user_room(user, shared, true));
            }
        }
        Ok(self.joined_frame(ctx, tk, name))
    }

    fn joined_frame(&self, ctx: &Ctx<'_>, tk: usize, name: &str) -> Bytes {
        let o = ctx.topic_owner(tk);
        let (users, more) = presence_entries(self.room(name), |_| None);
        let recent = o.history.recent(
            JOIN_RECENT_MESSAGES,
            o.batcher.held_len(),
            reply_bytes_max(ctx),
        );
        events::joined(
            name,
            o.members.len() as u64,
            users.iter().map(Vec::as_slice),
            more,
            recent.map(|b| &b[..]),
        )
    }

    /// A member left owned room `tk` (`gone`: its last accepted join of the room).
    pub fn on_member_left(&mut self, ctx: &mut Ctx<'_>, tk: usize, conn_id: u64, gone: bool) {
        if !gone {
            return;
        }
        let name = ctx.topic(tk).name.clone();
        let r = self.room_mut(&name);
        let typing_before = r.typing.len();
        let Some(user) = r.remove_member(conn_id) else {
            return;
        };
        let typing_changed = r.typing.len() != typing_before;
        ctx.fanout(tk, events::user_moved(false, &name, user.json()));
        if typing_changed {
            self.typing_changed(ctx, tk, &name);
        }
        ctx.to_owner(users::user_room(&user, name, false));
    }

    fn owner_publish(&mut self, ctx: &mut Ctx<'_>, room: &str, p: Publish) {
        let Some(tk) = ctx.member_of_owned(room, p.conn.id) else {
            let err = AppError::NotInRoom { room: room.into() };
            return ctx.refuse_conn(p.conn, &err, p.reference.as_deref());
        };
        let id = publish(ctx, tk, &p.from, &p.content);
        if p.reference.is_some() {
            ctx.to_conn(p.conn, event::ack_id(p.reference.as_deref(), id));
        }
        let r = self.room_mut(room);
        // A user has read what they wrote.
        if let Some(mark) = r.read_marks.get_mut(&*p.from.id) {
            *mark = id;
        }
        if r.typing.stop(&p.from.id) {
            self.typing_changed(ctx, tk, room);
        }
        // Only users' mentions notify: a guest could otherwise notify anyone for free.
        if !p.from.is_guest() && memchr::memchr(b'@', &p.content).is_some() {
            self.mentions(ctx, room, &p.from, &p.content);
        }
    }

    /// `@name` in a message notifies the room's user of that name (not the sender).
    fn mentions(&mut self, ctx: &mut Ctx<'_>, room: &str, from: &User, content: &[u8]) {
        let r = self.room(room);
        let mut targets: Vec<Arc<str>> = Vec::new();
        let mut i = 0;
        while let Some(at) = memchr::memchr(b'@', &content[i..]) {
            let start = i + at + 1;
            let len = content[start..]
                .iter()
                .take_while(|&&b| crate::identity::is_username_byte(b))
                .count();
            i = start + len;
            let Ok(name) = std::str::from_utf8(&content[start..start + len]) else {
                continue;
            };
            if len == 0 || targets.len() >= MENTIONS_PER_MESSAGE_MAX {
                continue;
            }
            let target = r
                .users
                .values()
                .find(|u| &*u.user.name == name && u.user.id != from.id);
            if let Some(t) = target {
                if !targets.iter().any(|id| **id == *t.user.id) {
                    targets.push(Arc::from(&*t.user.id));
                }
            }
        }
        let title = format!("{} mentioned you in {}", from.name, room);
        let body = crate::features::users::preview(content);
        for user in targets {
            let op = UserOp::Notify(Box::new(users::Notify {
                from: Some(from.id.clone()),
                kind: "mention",
                title: title.clone(),
                body: body.clone(),
            }));
            ctx.to_owner(ToUser { user, op });
        }
    }

    fn owner_create(&mut self, ctx: &mut Ctx<'_>, room: Arc<str>, c: Create) {
        let reference = c.reference.as_deref();
        if ctx.topic_key(&room).is_some() {
            let err = AppError::RoomExists {
                room: room.to_string(),
            };
            return ctx.refuse_conn(c.conn, &err, reference);
        }
        let made = self.rooms_created.get(&*c.by.id).copied().unwrap_or(0);
        if made >= ROOMS_CREATED_PER_USER_MAX {
            let err = AppError::RoomQuota {
                by: "user",
                max: ROOMS_CREATED_PER_USER_MAX,
            };
            return ctx.refuse_conn(c.conn, &err, reference);
        }
        let tk = match self.owned(ctx, &room) {
            Ok(tk) => tk,
            Err(e) => return ctx.refuse_conn(c.conn, &e, reference),
        };
        let frame = events::room_created(
            &room,
            &c.description,
            c.by.json(),
            c.password.is_some(),
            c.max_users,
            reference,
        );
        let creator: Arc<str> = Arc::from(&*c.by.id);
        *self.rooms_created.entry(creator.clone()).or_insert(0) += 1;
        ctx.keep_topic(tk, true);
        let r = self.room_mut(&room);
        r.created_by = Some(creator);
        r.info = RoomInfo {
            description: c.description,
            password: c.password,
            max_users: c.max_users,
        };
        ctx.to_conn(c.conn, frame);
    }

    fn owner_query<'d>(
        &mut self,
        ctx: &mut Ctx<'_>,
        room: &str,
        (conn, query): (ConnRef, RoomQuery),
        reference: Option<&[u8]>,
        data: impl Fn(&str) -> Option<&'d [u8]>,
    ) {
        let Some(tk) = ctx.member_of_owned(room, conn.id) else {
            let err = AppError::NotInRoom { room: room.into() };
            return ctx.refuse_conn(conn, &err, reference);
        };
        let frame = match query {
            RoomQuery::History { limit, before } => {
                let (page, has_more) =
                    ctx.topic_owner(tk)
                        .history
                        .page(limit, before, reply_bytes_max(ctx));
                events::history(room, page.map(|b| &b[..]), has_more, reference)
            }
            RoomQuery::Presence => {
                let (users, more) = presence_entries(self.room(room), data);
                events::presence_list(room, users.iter().map(Vec::as_slice), more, reference)
            }
        };
        ctx.to_conn(conn, frame);
    }

    /// The owned room `room` if `user` is present in it.
    fn present_user(&self, ctx: &Ctx<'_>, room: &str, user: &User) -> Option<usize> {
        let tk = ctx.topic_key(room)?;
        ctx.topic(tk).owner.as_ref()?;
        let r = self.rooms.get(room)?;
        r.users.contains_key(&*user.id).then_some(tk)
    }

    fn owner_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        room: &str,
        conn: ConnRef,
        user: &User,
        up_to: u64,
    ) {
        let Some(tk) = self.present_user(ctx, room, user) else {
            return ctx.refuse_conn(conn, &AppError::NotInRoom { room: room.into() }, None);
        };
        let up_to = up_to.min(ctx.topic_owner(tk).last_id());
        if let Some(mark) = self.room_mut(room).read_marks.get_mut(&*user.id) {
            if *mark >= up_to {
                return; // Nothing new read: the room hears nothing.
            }
            *mark = up_to;
        }
        ctx.fanout(tk, events::read(room, &user.id, up_to));
    }

    fn owner_typing(
        &mut self,
        ctx: &mut Ctx<'_>,
        room: &str,
        conn: ConnRef,
        user: &Arc<User>,
        on: bool,
    ) {
        let Some(tk) = self.present_user(ctx, room, user) else {
            return ctx.refuse_conn(conn, &AppError::NotInRoom { room: room.into() }, None);
        };
        let now = ctx.now().mono;
        let r = self.room_mut(room);
        let changed = if on {
            r.typing.start(user, now, TYPING_TTL)
        } else {
            r.typing.stop(&user.id)
        };
        if on && !r.typing_armed {
            self.arm_typing(ctx, tk, room);
        }
        if changed {
            self.typing_changed(ctx, tk, room);
        }
    }

    /// Sets room `room`'s typing timer for its earliest expiry (or leaves it to the tick).
    fn arm_typing(&mut self, ctx: &mut Ctx<'_>, tk: usize, room: &str) {
        let r = self.rooms.get_mut(room).expect("owned");
        let Some(at) = r.typing.next_expiry() else {
            return;
        };
        let name = ctx.topic(tk).name.clone();
        match ctx.set_timer(at, ShardMsg::TypingDue { room: name.clone() }) {
            Ok(()) => r.typing_armed = true,
            Err(_) => {
                self.typing_unarmed.insert(name);
            }
        }
    }

    /// Room `room`'s typing timer came due: drop who stopped, tell the room, re-arm.
    pub(super) fn typing_due(&mut self, ctx: &mut Ctx<'_>, room: &str) {
        let (Some(tk), Some(r)) = (ctx.topic_key(room), self.rooms.get_mut(room)) else {
            return;
        };
        r.typing_armed = false;
        if r.typing.expire(ctx.now().mono) {
            self.typing_changed(ctx, tk, room);
        }
        self.arm_typing(ctx, tk, room);
    }

    /// The tick: rooms whose typing timer could not be set are checked here.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let rooms: Vec<Arc<str>> = self.typing_unarmed.drain().collect();
        for room in rooms {
            self.typing_due(ctx, &room);
        }
    }

    /// Tells room `tk` who is typing now.
    fn typing_changed(&self, ctx: &mut Ctx<'_>, tk: usize, room: &str) {
        let typing = &self.room(room).typing;
        let shown = typing.users().take(TYPING_USERS_SHOWN_MAX);
        let more = typing.len().saturating_sub(TYPING_USERS_SHOWN_MAX);
        let frame = events::typing_update(room, shown.map(|u| u.json()), more);
        ctx.fanout(tk, frame);
    }

    /// `POST /api/publish`: a message from the `system` user.
    fn api_publish(&mut self, ctx: &mut Ctx<'_>, room: &str, content: &[u8]) {
        match self.owned(ctx, room) {
            Ok(tk) => {
                publish(ctx, tk, &self.system_user, content);
            }
            Err(e) => {
                ctx.stats().app_errors.fetch_add(1, RELAXED);
                tracing::warn!(%room, %e, "api publish refused");
            }
        }
    }
}

/// Publishes `content` from `from` into owned room `tk`; returns its id.
fn publish(ctx: &mut Ctx<'_>, tk: usize, from: &User, content: &[u8]) -> u64 {
    let ts = ctx.now().unix_ms;
    ctx.publish(tk, |name, id| {
        Bytes::from(events::message_new(name, id, from.json(), content, ts))
    })
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
