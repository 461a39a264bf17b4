//! The users feature on a user's owner: devices attaching and detaching, idleness, chosen
//! status, rooms, direct messages and notifications.

use std::sync::Arc;

use bytes::Bytes;

use super::events;
use super::msg::{Direct, NotificationOp, Notify, PresenceNews, ShardMsg, ToUser, UserOp};
use super::{Dropped, NewNotification, NotificationLimits, PresenceChange, Status, Users};
use crate::features::users::limits::{
    NOTIFICATIONS_PER_SENDER_MAX, NOTIFICATIONS_PER_USER_MAX, USERS_EXPIRED_PER_TICK_MAX,
};
use crate::identity::User;
use crate::limits::USERS_PER_SHARD_MAX;
use crate::protocol::event;
use crate::protocol::message::AppError;
use crate::runtime::shard_of;
use crate::server::{ConnRef, Ctx};

impl Users {
    pub fn on_owned(&mut self, ctx: &mut Ctx<'_>, msg: ToUser) {
        let ToUser { user, op } = msg;
        let now_ms = ctx.now().unix_ms;
        match op {
            UserOp::Attach { user, conn, login } => self.owner_attach(ctx, user, conn, login),
            UserOp::Detach {
                shard,
                was_idle,
                rooms,
            } => self.owner_detach(ctx, &user, shard, was_idle, rooms),
            UserOp::Idle { idle } => {
                let change = self.directory.set_idle(&user, idle, now_ms);
                self.announce(ctx, &user, change, &[]);
            }
            UserOp::SetStatus { status } => {
                let change = self.directory.set_status(&user, status, now_ms);
                self.announce(ctx, &user, change, &[]);
            }
            UserOp::Room {
                user,
                room,
                present,
            } => self.owner_user_room(ctx, &user, room, present),
            UserOp::Direct(d) => self.owner_direct(ctx, &user, *d),
            UserOp::Notify(n) => self.owner_notify(ctx, &user, &n),
            UserOp::Notifications(n) => {
                self.owner_notifications(ctx, &user, n.conn, n.op, n.reference.as_deref())
            }
        }
    }

    /// Tells every shard of a presence change of `user_id` (and the rooms it concerns).
    fn announce(
        &mut self,
        ctx: &mut Ctx<'_>,
        user_id: &str,
        change: Option<PresenceChange>,
        extra_rooms: &[Arc<str>],
    ) {
        let (Some(change), Some(record)) = (change, self.directory.get(user_id)) else {
            return;
        };
        let mut rooms: Vec<Arc<str>> = record.rooms.iter().cloned().collect();
        for r in extra_rooms {
            if !rooms.contains(r) {
                rooms.push(r.clone());
            }
        }
        let news = PresenceNews {
            user: record.user.clone(),
            status: change.status,
            last_seen: change.last_seen,
            rooms: rooms.into(),
        };
        for to in 0..ctx.shards() {
            let news = PresenceNews {
                user: news.user.clone(),
                rooms: news.rooms.clone(),
                ..news
            };
            ctx.to_shard(to, ShardMsg::Presence(Box::new(news)));
        }
    }

    fn owner_attach(
        &mut self,
        ctx: &mut Ctx<'_>,
        user: Arc<User>,
        conn: ConnRef,
        login: Option<Option<Box<[u8]>>>,
    ) {
        let change = self
            .directory
            .attach(&user, shard_of(conn.id), ctx.now().unix_ms);
        if let Some(reference) = login {
            ctx.to_conn(
                conn,
                events::auth_success(user.json(), reference.as_deref()),
            );
        }
        let record = self.directory.get(&user.id).expect("attached");
        let status = record.status();
        let unread = record.notifications.unread();
        self.count_users(ctx);
        if status != Status::Online {
            let user_id = Arc::from(&*user.id);
            ctx.to_shard(shard_of(conn.id), ShardMsg::Status { user_id, status });
        }
        if unread > 0 {
            ctx.to_conn(conn, events::notification_unread(unread));
        }
        self.announce(ctx, &user.id, change, &[]);
    }

    fn owner_detach(
        &mut self,
        ctx: &mut Ctx<'_>,
        user_id: &str,
        shard: usize,
        was_idle: bool,
        rooms: Box<[Arc<str>]>,
    ) {
        let change = self
            .directory
            .detach(user_id, shard, was_idle, ctx.now().unix_ms);
        self.announce(ctx, user_id, change, &rooms);
        // Offline users' records (notifications) are kept up to the directory's bound.
        if self.directory.len() > USERS_PER_SHARD_MAX
            && self
                .directory
                .get(user_id)
                .is_some_and(|r| r.connections() == 0)
        {
            self.directory.remove(user_id);
            ctx.stats().users_evicted.fetch_add(1, RELAXED);
        }
        self.count_users(ctx);
    }

    fn owner_user_room(
        &mut self,
        ctx: &mut Ctx<'_>,
        user: &Arc<User>,
        room: Arc<str>,
        present: bool,
    ) {
        if !present {
            if let Some(record) = self.directory.get_mut(&user.id) {
                record.rooms.remove(&room);
            }
            return;
        }
        // The room's owner may answer before the user's attach arrives: make the record.
        match self.directory.get_or_create(user, ctx.now().unix_ms) {
            Ok(record) => {
                record.rooms.insert(room);
            }
            Err(full) => {
                ctx.stats().users_evicted.fetch_add(1, RELAXED);
                tracing::warn!(max = full.max, "user directory full");
            }
        }
        self.count_users(ctx);
    }

    fn owner_direct(&mut self, ctx: &mut Ctx<'_>, to: &str, d: Direct) {
        if self.directory.get(to).is_none() {
            let err = AppError::UnknownUser { user: to.into() };
            return ctx.refuse_conn(d.conn, &err, d.reference.as_deref());
        }
        let frame = events::direct(d.id, d.from.json(), &d.content, ctx.now().unix_ms);
        self.send_to_devices(ctx, to, &[frame]);
        let notify = Notify {
            from: Some(d.from.id.clone()),
            kind: "direct",
            title: format!("New message from {}", d.from.name),
            body: super::preview(&d.content),
        };
        self.owner_notify(ctx, to, &notify);
        ctx.to_conn(d.conn, event::ack_id(d.reference.as_deref(), d.id));
    }

    /// Keeps a notification for `user_id` and shows it on every device of theirs.
    fn owner_notify(&mut self, ctx: &mut Ctx<'_>, user_id: &str, n: &Notify) {
        let now = ctx.now().unix_ms;
        let user = match self.directory.get(user_id) {
            Some(r) => r.user.clone(),
            None => User::new(user_id, user_id),
        };
        let record = match self.directory.get_or_create(&user, now) {
            Ok(r) => r,
            Err(full) => {
                ctx.stats().users_evicted.fetch_add(1, RELAXED);
                tracing::warn!(
                    max = full.max,
                    user_id,
                    "user directory full; notification dropped"
                );
                return;
            }
        };
        let new = NewNotification {
            from: n.from.as_deref(),
            kind: n.kind,
            title: &n.title,
            body: &n.body,
            ts: now,
        };
        let limits = NotificationLimits {
            kept: NOTIFICATIONS_PER_USER_MAX,
            per_sender: NOTIFICATIONS_PER_SENDER_MAX,
        };
        let (notification, dropped) = record.notifications.push(new, limits);
        let mut json = Vec::new();
        notification.write_json(&mut json, false);
        let unread = record.notifications.unread();
        match dropped {
            Dropped::Nothing => {}
            Dropped::Oldest => {
                ctx.stats().notifications_dropped.fetch_add(1, RELAXED);
            }
            Dropped::SendersOldest => {
                ctx.stats().notifications_replaced.fetch_add(1, RELAXED);
            }
        }
        self.count_users(ctx);
        let frames = [
            events::notification_new(&json),
            events::notification_unread(unread),
        ];
        self.send_to_devices(ctx, user_id, &frames);
    }

    /// Sends `frames` to every connection of user `user_id` (owned here), on every shard.
    fn send_to_devices(&self, ctx: &mut Ctx<'_>, user_id: &str, frames: &[Bytes]) {
        let Some(record) = self.directory.get(user_id) else {
            return;
        };
        let user_id: Arc<str> = Arc::from(user_id);
        for shard in record.shards() {
            for frame in frames {
                ctx.to_devices_on(shard, user_id.clone(), frame.clone());
            }
        }
    }

    fn owner_notifications(
        &mut self,
        ctx: &mut Ctx<'_>,
        user_id: &str,
        conn: ConnRef,
        op: NotificationOp,
        reference: Option<&[u8]>,
    ) {
        let Some(record) = self.directory.get_mut(user_id) else {
            return; // Its connection closed and the user's record went with it.
        };
        match op {
            NotificationOp::List => {
                let items: Vec<Vec<u8>> = record
                    .notifications
                    .newest_first()
                    .map(|n| {
                        let mut json = Vec::new();
                        n.write_json(&mut json, true);
                        json
                    })
                    .collect();
                let frame = events::notification_list(
                    items.iter().map(Vec::as_slice),
                    record.notifications.unread(),
                    reference,
                );
                ctx.to_conn(conn, frame);
            }
            NotificationOp::Read(ids) => {
                record.notifications.mark_read(&ids);
                let frame = events::notification_unread(record.notifications.unread());
                self.send_to_devices(ctx, user_id, &[frame]);
                if let Some(r) = reference {
                    ctx.to_conn(conn, event::ack(r));
                }
            }
        }
    }

    /// Forgets users offline for `--user-ttl-secs`, at most [`USERS_EXPIRED_PER_TICK_MAX`]
    /// per tick, so the directory does not keep every user that ever connected.
    pub(super) fn expire_users(&mut self, ctx: &mut Ctx<'_>) {
        let ttl_ms = ctx.config().user_ttl_secs.saturating_mul(1000);
        let gone =
            self.directory
                .expire_offline(ctx.now().unix_ms, ttl_ms, USERS_EXPIRED_PER_TICK_MAX);
        if gone > 0 {
            ctx.stats().users_expired.fetch_add(gone as u64, RELAXED);
            self.count_users(ctx);
        }
    }

    fn count_users(&self, ctx: &Ctx<'_>) {
        ctx.stats()
            .users
            .store(self.directory.len() as u64, RELAXED);
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
