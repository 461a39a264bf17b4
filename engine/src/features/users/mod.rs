//! Users: logging in, presence across devices and shards, direct messages and notifications.
//! Every user has an owner shard, `owner_shard(user_id)`, exactly like rooms: the one place
//! that knows all of the user's connections, their status and their notifications.
//!
//! Invariants:
//! - Every connection of a logged-in user is attached to the user's owner exactly once and
//!   detached exactly once (on close), so the owner's device counts are exact.
//! - A presence change is announced once, by the owner, to every shard; each shard tells each
//!   of its connections sharing a room with the user once, however many rooms they share.
//!
//! This file is the connection's side; `owner.rs` is the owner's side.

mod directory;
pub mod events;
pub mod limits;
mod messages;
mod msg;
mod notifications;
mod owner;
mod presence;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

pub use directory::{Directory, DirectoryFull, PresenceChange, UserRecord};
pub use messages::ClientMsg;
pub use msg::{user_room, Direct, NotificationOp, Notify, PresenceNews, ShardMsg, ToUser, UserOp};
pub use notifications::{
    preview, Dropped, NewNotification, Notification, NotificationLimits, Notifications,
};
pub use presence::Status;

use crate::features::users::limits::NOTIFICATION_TEXT_BYTES_MAX;
use crate::features::ApiRefusal;
use crate::identity::{is_reserved_name, valid_username, User};
use crate::limits::{USERNAME_BYTES_MAX, USERS_PER_SHARD_MAX, USER_ID_BYTES_MAX};
use crate::protocol::message::AppError;
use crate::runtime::connection_id;
use crate::server::{Closed, ConnRef, Ctx};

/// What the users feature keeps per connection.
#[derive(Debug, Default)]
pub struct ConnState {
    /// The user's owner was told of this device (so it is told of its close).
    pub attached: bool,
    /// The user's owner was told this device is idle.
    pub idle_reported: bool,
}

/// The users feature's state on one shard.
pub struct Users {
    /// Users this shard owns.
    directory: Directory,
    /// The status of each user with connections here, as their owner last said.
    local_status: HashMap<Arc<str>, Status>,
    /// Sequence of direct message ids made here (ids carry the shard like connection ids).
    next_direct_seq: u64,
}

impl Default for Users {
    fn default() -> Self {
        Self::new()
    }
}

impl Users {
    pub fn new() -> Self {
        Self {
            directory: Directory::new(USERS_PER_SHARD_MAX),
            local_status: HashMap::new(),
            next_direct_seq: 1,
        }
    }

    /// The status of `user_id`, who has a connection here, as their owner last said.
    pub fn local_status(&self, user_id: &str) -> Status {
        self.local_status
            .get(user_id)
            .copied()
            .unwrap_or(Status::Online)
    }

    /// Whether `message` changes nothing: a `presence:update` to the current status. `away`
    /// is never conflated: a user shown away because every device is idle still chooses it.
    pub fn conflated(&self, ctx: &mut Ctx<'_>, key: usize, message: &ClientMsg<'_>) -> bool {
        match message {
            ClientMsg::Presence { status } => {
                *status != Status::Away
                    && ctx
                        .user(key)
                        .is_some_and(|u| self.local_status(&u.id) == *status)
            }
            _ => false,
        }
    }

    /// `auth:login {username}`: answered with `auth:success` (by the owner) or `auth:error`.
    pub fn login(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        username: &str,
        reference: Option<&[u8]>,
    ) {
        let refused = if ctx.config().auth_secret.is_some() {
            Some(AppError::LoginDisabled)
        } else if ctx.user(key).is_some() {
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
            ctx.stats().app_errors.fetch_add(1, RELAXED);
            ctx.reply(key, events::auth_error(e.code(), &e.to_string(), reference));
            return;
        }
        // Development mode: the username is the identity. The owner answers.
        let user = User::new(username, username);
        ctx.identify(key, user.clone());
        self.attach(ctx, key, user, Some(reference.map(Into::into)));
    }

    /// Tells the user's owner of connection `key`'s device.
    fn attach(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        user: Arc<User>,
        login: Option<Option<Box<[u8]>>>,
    ) {
        self.local_status
            .entry(Arc::from(&*user.id))
            .or_insert(Status::Online);
        ctx.state(key).users.attached = true;
        let conn = ctx.conn_ref(key);
        ctx.to_owner(ToUser {
            user: Arc::from(&*user.id),
            op: UserOp::Attach { user, conn, login },
        });
    }

    /// A connection opened: one with a token's user is attached at once.
    pub fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnRef) {
        if !ctx.is_open(conn) {
            return;
        }
        if let Some(user) = ctx.user(conn.key).cloned() {
            self.attach(ctx, conn.key, user, None);
        }
    }

    /// A connection closed: its user's owner is told, with the rooms it was in.
    pub fn on_close(&mut self, ctx: &mut Ctx<'_>, closed: &Closed) {
        let Some(user) = &closed.user else { return };
        if ctx.local_devices(&user.id).is_empty() {
            self.local_status.remove(&*user.id);
        }
        if !closed.state.users.attached {
            return; // Closed before its open was handled: the owner never counted it.
        }
        ctx.to_owner(ToUser {
            user: Arc::from(&*user.id),
            op: UserOp::Detach {
                shard: ctx.shard(),
                was_idle: closed.state.users.idle_reported,
                rooms: closed.topics.clone().into(),
            },
        });
    }

    /// A client message arrived: the device is active.
    pub fn on_activity(&mut self, ctx: &mut Ctx<'_>, key: usize) {
        let state = &mut ctx.state(key).users;
        if !std::mem::take(&mut state.idle_reported) {
            return;
        }
        if let Some(user) = ctx.user(key) {
            let user = Arc::from(&*user.id);
            ctx.to_owner(ToUser {
                user,
                op: UserOp::Idle { idle: false },
            });
        }
    }

    /// Reports devices idle for `away-after-ms` to their users' owners, and forgets users
    /// offline for `--user-ttl-secs`.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let away = ctx.config().away_after();
        let now = ctx.now();
        // Guests first out: they have no presence, and most load-test connections are guests.
        let idle: Vec<(usize, Arc<str>)> = ctx
            .conn_keys()
            .filter(|(_, c)| c.authenticated && !c.features.users.idle_reported)
            .filter(|(_, c)| now.mono.saturating_duration_since(c.last_active) >= away)
            .filter_map(|(key, c)| c.authenticated_user().map(|u| (key, Arc::from(&*u.id))))
            .collect();
        for (key, user) in idle {
            ctx.state(key).users.idle_reported = true;
            ctx.to_owner(ToUser {
                user,
                op: UserOp::Idle { idle: true },
            });
        }
        self.expire_users(ctx);
    }

    pub fn on_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        message: ClientMsg<'_>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        if let ClientMsg::Direct { to, content } = message {
            // The content is checked first, as before the user: the same error precedence.
            let content = ctx.checked_content(key, content)?;
            let from = ctx.user_of(key)?;
            return self.direct(ctx, key, from, to, content, reference);
        }
        let user = ctx.user_of(key)?;
        let user_id: Arc<str> = Arc::from(&*user.id);
        let op = match message {
            ClientMsg::Login { .. } => unreachable!("handled by the registry"),
            ClientMsg::Direct { .. } => unreachable!("handled above"),
            ClientMsg::Presence { status } => {
                ctx.ack(key, reference);
                UserOp::SetStatus { status }
            }
            ClientMsg::NotificationList => notifications(ctx, key, NotificationOp::List, reference),
            ClientMsg::NotificationRead { ids } => {
                notifications(ctx, key, NotificationOp::Read(ids), reference)
            }
        };
        ctx.to_owner(ToUser { user: user_id, op });
        Ok(())
    }

    /// `message:direct`: to the recipient's owner, which delivers it and acks with its id.
    fn direct(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        from: Arc<User>,
        to: &str,
        content: Vec<u8>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let id = connection_id(ctx.shard(), self.next_direct_seq);
        self.next_direct_seq += 1;
        let direct = Direct {
            id,
            from,
            content,
            conn: ctx.conn_ref(key),
            reference: reference.map(<[u8]>::to_vec),
        };
        let op = UserOp::Direct(Box::new(direct));
        ctx.to_owner(ToUser {
            user: Arc::from(to),
            op,
        });
        Ok(())
    }
    /// A message for this shard's users feature.
    pub fn on_shard(&mut self, _ctx: &mut Ctx<'_>, msg: ShardMsg) {
        match msg {
            ShardMsg::Status { user_id, status } => {
                if let Some(s) = self.local_status.get_mut(&*user_id) {
                    *s = status;
                }
            }
            ShardMsg::Presence(_) => unreachable!("the registry gives presence to on_presence"),
        }
    }

    /// A presence change of a user: update the cached status and tell this shard's
    /// connections that share one of their rooms, each once.
    pub fn on_presence(&mut self, ctx: &mut Ctx<'_>, news: &PresenceNews) {
        if let Some(s) = self.local_status.get_mut(&*news.user.id) {
            *s = news.status;
        }
        let mut keys: Vec<usize> = news
            .rooms
            .iter()
            .flat_map(|room| ctx.local_members(room))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let frame = events::presence_update(news.user.json(), news.status.as_str(), news.last_seen);
        for key in keys {
            ctx.reply(key, frame.clone());
        }
    }
}

/// `POST /api/notify {userId, title, body}`: a notification from the backend.
pub fn api_notify(v: &serde_json::Map<String, serde_json::Value>) -> Result<ToUser, ApiRefusal> {
    let text = |field: &str, max: usize| {
        v.get(field)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty() && s.len() <= max)
    };
    let Some(user_id) = text("userId", USER_ID_BYTES_MAX) else {
        let message = format!("userId: a string of 1 to {USER_ID_BYTES_MAX} bytes");
        return Err(ApiRefusal::bad_request(message));
    };
    let (Some(title), Some(body)) = (
        text("title", NOTIFICATION_TEXT_BYTES_MAX),
        text("body", NOTIFICATION_TEXT_BYTES_MAX),
    ) else {
        let max = NOTIFICATION_TEXT_BYTES_MAX;
        let message = format!("title and body: strings of 1 to {max} bytes");
        return Err(ApiRefusal::bad_request(message));
    };
    let notify = Notify {
        from: None,
        kind: "system",
        title: title.into(),
        body: body.into(),
    };
    Ok(ToUser {
        user: Arc::from(user_id),
        op: UserOp::Notify(Box::new(notify)),
    })
}

fn notifications(
    ctx: &mut Ctx<'_>,
    key: usize,
    op: NotificationOp,
    reference: Option<&[u8]>,
) -> UserOp {
    UserOp::Notifications(Box::new(msg::Notifications {
        conn: ctx.conn_ref(key),
        op,
        reference: reference.map(<[u8]>::to_vec),
    }))
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
