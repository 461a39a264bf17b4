//! User features on a shard: logging in, presence across devices and shards, direct
//! messages and notifications; the connection's side and the user owner's side of each.
//!
//! Invariants:
//! - Every connection of a logged-in user is attached to the user's owner exactly once and
//!   detached exactly once (on close), so the owner's device counts are exact.
//! - A presence change is announced once, by the owner, to every shard; each shard tells each
//!   of its connections sharing a room with the user once, however many rooms they share.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::connection::Phase;
use super::shard::{unix_ms, LocalUser, Shard};
use super::shard_msg::{connection_id, shard_of, ConnRef, NotificationOp, ShardMsg};
use crate::limits::{
    NOTIFICATIONS_PER_SENDER_MAX, NOTIFICATIONS_PER_USER_MAX, USERNAME_BYTES_MAX,
    USERS_EXPIRED_PER_TICK_MAX, USERS_PER_SHARD_MAX,
};
use crate::protocol::message::AppError;
use crate::protocol::{close, event};
use crate::users::{
    is_reserved_name, preview, token_expired, valid_username, Dropped, NewNotification,
    NotificationLimits, PresenceChange, Status, User,
};

impl Shard {
    // ----- the connection's side ----------------------------------------------------------

    /// `auth:login {username}`: answered with `auth:success` or `auth:error`.
    pub(super) fn login(&mut self, key: usize, username: &str, reference: Option<&[u8]>) {
        let refused = if self.config.auth_secret.is_some() {
            Some(AppError::LoginDisabled)
        } else if self.conns[key].authenticated {
            Some(AppError::AlreadyAuthenticated)
        } else if !valid_username(username) {
            Some(AppError::InvalidUsername {
                max: USERNAME_BYTES_MAX,
            })
        } else if is_reserved_name(username) {
            Some(AppError::ReservedUsername {
                name: username.into(),
            })
        } else {
            None
        };
        if let Some(e) = refused {
            self.stats.app_errors.fetch_add(1, RELAXED);
            self.enqueue(key, event::auth_error(e.code(), &e.to_string(), reference));
            return;
        }
        // Development mode: the username is the identity. The owner answers.
        let user = User::new(username, username);
        self.attach_user(key, user, Some(reference.map(<[u8]>::to_vec)));
    }

    /// Makes connection `key` speak for `user` and tells the user's owner (which answers
    /// `auth:success` for a `login`).
    pub fn attach_user(&mut self, key: usize, user: Arc<User>, login: Option<Option<Vec<u8>>>) {
        let conn = &mut self.conns[key];
        assert!(!conn.authenticated, "a connection logs in once");
        conn.user = Some(user.clone());
        conn.authenticated = true;
        self.local_users
            .entry(Arc::from(&*user.id))
            .or_insert_with(|| LocalUser {
                conns: Vec::new(),
                status: Status::Online,
                bucket: None,
            })
            .conns
            .push(key);
        let conn = self.conn_ref(key);
        self.route_user(ShardMsg::Attach { user, conn, login });
    }

    /// Takes connection `key` out of its rooms and, for a user, out of their devices.
    /// Idempotent: closing and removing a connection both call it.
    pub(super) fn disconnect(&mut self, key: usize) {
        let user = self.conns[key].authenticated_user().cloned();
        let rooms: Vec<Arc<str>> = match &user {
            Some(_) => self.conns[key]
                .rooms
                .iter()
                .filter_map(|&(rk, _)| self.rooms.get(rk).map(|r| r.name.clone()))
                .collect(),
            None => Vec::new(),
        };
        self.leave_all(key);
        let Some(user) = user else { return };
        let conn = &mut self.conns[key];
        conn.authenticated = false;
        let was_idle = std::mem::take(&mut conn.idle_reported);
        if let Some(local) = self.local_users.get_mut(&*user.id) {
            local.conns.retain(|&k| k != key);
            if local.conns.is_empty() {
                self.local_users.remove(&*user.id);
            }
        }
        let shard = self.id;
        self.route_user(ShardMsg::Detach {
            user_id: Arc::from(&*user.id),
            shard,
            was_idle,
            rooms,
        });
    }

    /// Closes (4001) every open connection whose token expired by `now` (Unix seconds), so a
    /// connection never acts for its user past the token's `exp` (and the leeway). Called
    /// by the shard's housekeeping tick.
    pub fn expire_tokens(&mut self, now: u64) {
        let leeway = self.config.jwt_leeway_secs;
        let expired: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
            .filter(|(_, c)| {
                c.token_exp
                    .is_some_and(|exp| token_expired(exp, leeway, now))
            })
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            self.stats.tokens_expired.fetch_add(1, RELAXED);
            self.close_conn(key, close::TOKEN_EXPIRED, "token expired");
        }
    }

    /// Forgets users offline for `--user-ttl-secs` by `now_ms`, at most
    /// [`USERS_EXPIRED_PER_TICK_MAX`] per call, so the directory does not keep every user
    /// that ever connected. Called by the shard's housekeeping tick.
    pub fn expire_users(&mut self, now_ms: u64) {
        let ttl_ms = self.config.user_ttl_secs.saturating_mul(1000);
        let gone = self
            .directory
            .expire_offline(now_ms, ttl_ms, USERS_EXPIRED_PER_TICK_MAX);
        if gone > 0 {
            self.stats.users_expired.fetch_add(gone as u64, RELAXED);
            self.count_users();
        }
    }

    /// A client message arrived: the device is active.
    pub(super) fn note_activity(&mut self, key: usize, now: Instant) {
        let conn = &mut self.conns[key];
        conn.last_active = now;
        if !conn.idle_reported {
            return;
        }
        conn.idle_reported = false;
        if let Some(user) = conn.authenticated_user().cloned() {
            let user_id = Arc::from(&*user.id);
            self.route_user(ShardMsg::Idle {
                user_id,
                idle: false,
            });
        }
    }

    /// Reports devices idle for `away-after-ms` to their users' owners.
    pub(super) fn report_idle_devices(&mut self, now: Instant) {
        let away = self.config.away_after();
        let mut idle = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            if conn.authenticated
                && !conn.idle_reported
                && now.saturating_duration_since(conn.last_active) >= away
            {
                conn.idle_reported = true;
                idle.push(key);
            }
        }
        for key in idle {
            let user = self.conns[key]
                .authenticated_user()
                .cloned()
                .expect("checked");
            let user_id = Arc::from(&*user.id);
            self.route_user(ShardMsg::Idle {
                user_id,
                idle: true,
            });
        }
    }

    /// The logged-in user of connection `key`; guests get `auth_required`.
    pub(super) fn user_of(&self, key: usize) -> Result<Arc<User>, AppError> {
        self.conns[key]
            .authenticated_user()
            .cloned()
            .ok_or(AppError::AuthRequired)
    }

    pub(super) fn set_status(
        &mut self,
        key: usize,
        status: &str,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let user = self.user_of(key)?;
        let status = Status::parse_settable(status).expect("validated by the parser");
        let user_id = Arc::from(&*user.id);
        self.route_user(ShardMsg::SetStatus { user_id, status });
        self.ack(key, reference);
        Ok(())
    }

    pub(super) fn direct(
        &mut self,
        key: usize,
        to: &str,
        content: Vec<u8>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let from = self.user_of(key)?;
        let id = connection_id(self.id, self.next_direct_seq);
        self.next_direct_seq += 1;
        let conn = self.conn_ref(key);
        self.route_user(ShardMsg::Direct {
            id,
            from,
            to: to.into(),
            content,
            conn,
            reference: reference.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    pub(super) fn notifications(
        &mut self,
        key: usize,
        op: NotificationOp,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let user = self.user_of(key)?;
        let conn = self.conn_ref(key);
        self.route_user(ShardMsg::Notifications {
            user_id: Arc::from(&*user.id),
            conn,
            op,
            reference: reference.map(<[u8]>::to_vec),
        });
        Ok(())
    }

    /// A frame for every connection of `user_id` on this shard.
    pub(super) fn deliver_to_local_user(&mut self, user_id: &str, frame: &Bytes) {
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

    pub(super) fn on_user_status(&mut self, user_id: &str, status: Status) {
        if let Some(local) = self.local_users.get_mut(user_id) {
            local.status = status;
        }
    }

    /// A presence change of `user`: update cached statuses and tell this shard's connections
    /// that share one of `rooms` with them, each once.
    pub(super) fn on_presence(
        &mut self,
        user: &User,
        status: Status,
        last_seen: u64,
        rooms: &[Arc<str>],
    ) {
        self.on_user_status(&user.id, status);
        let mut keys = std::mem::take(&mut self.member_scratch);
        keys.clear();
        for name in rooms {
            let Some(rk) = self.rooms.key(name) else {
                continue;
            };
            let room = self.rooms.get_mut(rk).expect("indexed");
            keys.extend(room.members.iter().map(|(_, &k)| k));
            if let Some(present) = room.owner.as_mut().and_then(|o| o.users.get_mut(&*user.id)) {
                present.status = status;
                present.last_seen = last_seen;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let frame = event::presence_update(user.json(), status.as_str(), last_seen);
        for &key in &keys {
            self.enqueue(key, frame.clone());
        }
        self.member_scratch = keys;
    }

    // ----- the user owner's side ----------------------------------------------------------

    fn announce(&mut self, user_id: &str, change: PresenceChange, extra_rooms: Vec<Arc<str>>) {
        let Some(record) = self.directory.get(user_id) else {
            return;
        };
        let user = record.user.clone();
        let mut rooms: Vec<Arc<str>> = record.rooms.iter().cloned().collect();
        for r in extra_rooms {
            if !rooms.contains(&r) {
                rooms.push(r);
            }
        }
        let rooms: Arc<[Arc<str>]> = rooms.into();
        for to in 0..self.shards {
            self.route(
                to,
                ShardMsg::Presence {
                    user: user.clone(),
                    status: change.status,
                    last_seen: change.last_seen,
                    rooms: rooms.clone(),
                },
            );
        }
    }

    pub(super) fn owner_attach(
        &mut self,
        user: Arc<User>,
        conn: ConnRef,
        login: Option<Option<Vec<u8>>>,
    ) {
        let change = self.directory.attach(&user, shard_of(conn.id), unix_ms());
        if let Some(reference) = login {
            self.deliver_to_conn(conn, event::auth_success(user.json(), reference.as_deref()));
        }
        let record = self.directory.get(&user.id).expect("attached");
        let status = record.status();
        let unread = record.notifications.unread();
        self.count_users();
        if status != Status::Online {
            let user_id = Arc::from(&*user.id);
            self.route(shard_of(conn.id), ShardMsg::UserStatus { user_id, status });
        }
        if unread > 0 {
            self.deliver_to_conn(conn, event::notification_unread(unread));
        }
        if let Some(change) = change {
            self.announce(&user.id, change, Vec::new());
        }
    }

    pub(super) fn owner_detach(
        &mut self,
        user_id: &str,
        shard: usize,
        was_idle: bool,
        rooms: Vec<Arc<str>>,
    ) {
        let change = self.directory.detach(user_id, shard, was_idle, unix_ms());
        if let Some(change) = change {
            self.announce(user_id, change, rooms);
        }
        // Offline users' records (notifications) are kept up to the directory's bound.
        if self.directory.len() > USERS_PER_SHARD_MAX
            && self
                .directory
                .get(user_id)
                .is_some_and(|r| r.connections() == 0)
        {
            self.directory.remove(user_id);
            self.stats.users_evicted.fetch_add(1, RELAXED);
        }
        self.count_users();
    }

    pub(super) fn owner_idle(&mut self, user_id: &str, idle: bool) {
        if let Some(change) = self.directory.set_idle(user_id, idle, unix_ms()) {
            self.announce(user_id, change, Vec::new());
        }
    }

    pub(super) fn owner_set_status(&mut self, user_id: &str, status: Status) {
        if let Some(change) = self.directory.set_status(user_id, status, unix_ms()) {
            self.announce(user_id, change, Vec::new());
        }
    }

    pub(super) fn owner_user_room(&mut self, user: &Arc<User>, room: Arc<str>, present: bool) {
        if present {
            // The room's owner may answer before the user's attach arrives: make the record.
            match self.directory.get_or_create(user, unix_ms()) {
                Ok(record) => {
                    record.rooms.insert(room);
                }
                Err(full) => {
                    self.stats.users_evicted.fetch_add(1, RELAXED);
                    tracing::warn!(max = full.max, "user directory full");
                }
            }
            self.count_users();
        } else if let Some(record) = self.directory.get_mut(&user.id) {
            record.rooms.remove(&room);
        }
    }

    pub(super) fn owner_direct(
        &mut self,
        id: u64,
        from: &User,
        to: &str,
        content: &[u8],
        conn: ConnRef,
        reference: Option<Vec<u8>>,
    ) {
        if self.directory.get(to).is_none() {
            let err = AppError::UnknownUser { user: to.into() };
            let frame = self.error_frame(&err, reference.as_deref());
            return self.deliver_to_conn(conn, frame);
        }
        self.send_to_devices(to, &[event::direct(id, from.json(), content, unix_ms())]);
        let title = format!("New message from {}", from.name);
        self.owner_notify(to, Some(&from.id), "direct", &title, &preview(content));
        self.deliver_to_conn(conn, event::ack_id(reference.as_deref(), id));
    }

    /// Keeps a notification for `user_id` (caused by user `from`, None: the backend) and shows
    /// it on every device of theirs.
    pub(super) fn owner_notify(
        &mut self,
        user_id: &str,
        from: Option<&str>,
        kind: &str,
        title: &str,
        body: &str,
    ) {
        let now = unix_ms();
        let user = match self.directory.get(user_id) {
            Some(r) => r.user.clone(),
            None => User::new(user_id, user_id),
        };
        let record = match self.directory.get_or_create(&user, now) {
            Ok(r) => r,
            Err(full) => {
                self.stats.users_evicted.fetch_add(1, RELAXED);
                tracing::warn!(
                    max = full.max,
                    user_id,
                    "user directory full; notification dropped"
                );
                return;
            }
        };
        let new = NewNotification {
            from,
            kind,
            title,
            body,
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
                self.stats.notifications_dropped.fetch_add(1, RELAXED);
            }
            Dropped::SendersOldest => {
                self.stats.notifications_replaced.fetch_add(1, RELAXED);
            }
        }
        self.count_users();
        let frames = [
            event::notification_new(&json),
            event::notification_unread(unread),
        ];
        self.send_to_devices(user_id, &frames);
    }

    /// Sends `frames` to every connection of user `user_id` (owned here), on every shard.
    fn send_to_devices(&mut self, user_id: &str, frames: &[Bytes]) {
        let shards: Vec<usize> = self
            .directory
            .get(user_id)
            .map(|r| r.shards().collect())
            .unwrap_or_default();
        let user_id: Arc<str> = Arc::from(user_id);
        for shard in shards {
            for frame in frames {
                let (user_id, frame) = (user_id.clone(), frame.clone());
                self.route(shard, ShardMsg::ToUser { user_id, frame });
            }
        }
    }

    pub(super) fn owner_notifications(
        &mut self,
        user_id: &str,
        conn: ConnRef,
        op: NotificationOp,
        reference: Option<Vec<u8>>,
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
                let frame = event::notification_list(
                    items.iter().map(Vec::as_slice),
                    record.notifications.unread(),
                    reference.as_deref(),
                );
                self.deliver_to_conn(conn, frame);
            }
            NotificationOp::Read(ids) => {
                record.notifications.mark_read(&ids);
                let frame = event::notification_unread(record.notifications.unread());
                self.send_to_devices(user_id, &[frame]);
                if let Some(r) = reference {
                    self.deliver_to_conn(conn, event::ack(&r));
                }
            }
        }
    }

    fn count_users(&self) {
        self.stats.users.store(self.directory.len() as u64, RELAXED);
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
