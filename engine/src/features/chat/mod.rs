//! Chat: rooms (create, join, leave, list), messages with history and read marks, typing,
//! presence lists and mentions. A room is a topic of the core; this feature keeps, beside it
//! on the owner, the room's settings, users, read marks and typing (see `room`).
//!
//! Invariants:
//! - The owner decides every join (password, `maxUsers`, limits) and publishes a message only
//!   from a connection the core counts as a member.
//! - A member sees every message published after its join was accepted, exactly once, in
//!   the owner's order: either in `room:joined`'s recent messages or live, never both.
//!
//! This file is the member's side of each message; `owner.rs` is the owner's side.

mod conversation;
pub mod events;
pub mod limits;
mod list;
mod messages;
mod msg;
mod owner;
mod room;
mod typing;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use conversation::Conversation;
pub use messages::ClientMsg;
pub use msg::{Create, Join, Publish, RoomOp, RoomQuery, ShardMsg, ToRoom};
pub use room::{ChatRoom, RoomInfo, RoomUser};
pub use typing::Typing;

use super::users::{PresenceNews, Status, Users};
use crate::config::Config;
use crate::features::chat::limits::ROOMS_CREATED_PER_CONNECTION_MAX;
use crate::features::ApiRefusal;
use crate::identity::User;
use crate::limits::TOPICS_PER_CONNECTION_MAX;
use crate::protocol::message::{valid_room_name, AppError};
use crate::server::{Ctx, Dropped};

/// What chat keeps per connection.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Last typing state and read mark per room, for conflation.
    pub conversation: Conversation,
    /// Rooms this connection asked to make (`room:create`), for its quota.
    pub rooms_created: u32,
}

/// The chat feature's state on one shard.
pub struct Chat {
    /// Owned rooms' chat state, by name (the topic holds members, ids and history).
    rooms: HashMap<Arc<str>, ChatRoom>,
    /// Rooms each creator has made here and not yet expired (their `room:create` quota).
    rooms_created: HashMap<Arc<str>, u32>,
    /// Owned rooms whose typing timer could not be set (the timer table was full); swept by
    /// the tick instead.
    typing_unarmed: HashSet<Arc<str>>,
    /// The sender of messages posted with `POST /api/publish`.
    system_user: Arc<User>,
}

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

impl Chat {
    pub fn new() -> Self {
        Self {
            rooms: HashMap::new(),
            rooms_created: HashMap::new(),
            typing_unarmed: HashSet::new(),
            system_user: User::new(
                crate::identity::SYSTEM_USER_ID,
                crate::identity::SYSTEM_USER_ID,
            ),
        }
    }

    /// Whether `message` changes nothing the room does not know already.
    pub fn conflated(&self, ctx: &mut Ctx<'_>, key: usize, message: &ClientMsg<'_>) -> bool {
        let now = ctx.now().mono;
        let conv = &ctx.state(key).chat.conversation;
        match *message {
            ClientMsg::Typing { room, on } => conv.typing_redundant(room, on, now),
            ClientMsg::Read { room, up_to } => conv.read_redundant(room, up_to),
            _ => false,
        }
    }

    pub fn on_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        users: &Users,
        key: usize,
        message: ClientMsg<'_>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let now = ctx.now().mono;
        let conv = &mut ctx.state(key).chat.conversation;
        match message {
            ClientMsg::Typing { room, on } => conv.note_typing(room, on, now),
            ClientMsg::Read { room, up_to } => conv.note_read(room, up_to),
            ClientMsg::Send { room, .. } => conv.sent_message(room),
            _ => {}
        }
        let refer = || reference.map(<[u8]>::to_vec);
        match message {
            ClientMsg::Create {
                room,
                description,
                password,
                max_users,
            } => {
                let by = self.may_create(ctx, key)?;
                let create = Create {
                    description: description.unwrap_or("").into(),
                    password: password.map(Into::into),
                    max_users,
                    by,
                    conn: ctx.conn_ref(key),
                    reference: refer(),
                };
                ctx.to_owner(ToRoom {
                    room: Arc::from(room),
                    op: RoomOp::Create(Box::new(create)),
                });
                Ok(())
            }
            ClientMsg::List => self.list(ctx, key, reference),
            ClientMsg::Join { room, password } => join(ctx, users, key, room, password, reference),
            ClientMsg::Leave { room } => {
                if !ctx.leave_topic(key, room) {
                    return Err(AppError::NotInRoom { room: room.into() });
                }
                ctx.reply(key, events::left(room));
                ctx.ack(key, reference);
                Ok(())
            }
            ClientMsg::Send { room, content } => {
                let content = ctx.checked_content(key, content)?;
                let name = member_room(ctx, key, room)?;
                let publish = Publish {
                    conn: ctx.conn_ref(key),
                    from: ctx.speaker(key),
                    content,
                    reference: refer(),
                };
                ctx.to_owner(ToRoom {
                    room: name,
                    op: RoomOp::Publish(Box::new(publish)),
                });
                Ok(())
            }
            ClientMsg::History {
                room,
                limit,
                before,
            } => query(
                ctx,
                key,
                room,
                RoomQuery::History { limit, before },
                reference,
            ),
            ClientMsg::PresenceList { room } => {
                query(ctx, key, room, RoomQuery::Presence, reference)
            }
            ClientMsg::Read { room, up_to } => {
                user_request(ctx, key, room, reference, |conn, user| RoomOp::Read {
                    conn,
                    user,
                    up_to,
                })
            }
            ClientMsg::Typing { room, on } => {
                user_request(ctx, key, room, reference, |conn, user| RoomOp::Typing {
                    conn,
                    user,
                    on,
                })
            }
        }
    }

    /// Connection `key` may make a room: a user (or a guest where allowed) within the
    /// connection's quota. Returns who makes it.
    fn may_create(&mut self, ctx: &mut Ctx<'_>, key: usize) -> Result<Arc<User>, AppError> {
        if ctx.user(key).is_none() && !ctx.config().guests_create_rooms {
            return Err(AppError::GuestsCannotCreate);
        }
        let state = &mut ctx.state(key).chat;
        if state.rooms_created >= ROOMS_CREATED_PER_CONNECTION_MAX {
            return Err(AppError::RoomQuota {
                by: "connection",
                max: ROOMS_CREATED_PER_CONNECTION_MAX,
            });
        }
        state.rooms_created += 1;
        Ok(ctx.speaker(key))
    }

    /// A message for this shard's chat.
    pub fn on_shard(&mut self, ctx: &mut Ctx<'_>, msg: ShardMsg) {
        match msg {
            ShardMsg::ListRooms { gather, user_id } => self.list_part(ctx, gather, user_id),
            ShardMsg::TypingDue { room } => self.typing_due(ctx, &room),
        }
    }

    /// A presence change of a user: the owned rooms here that show them update their status.
    pub fn on_presence(&mut self, news: &PresenceNews) {
        for name in news.rooms.iter() {
            let present = self
                .rooms
                .get_mut(name)
                .and_then(|r| r.users.get_mut(&*news.user.id));
            if let Some(present) = present {
                present.status = news.status;
                present.last_seen = news.last_seen;
            }
        }
    }

    /// Owned topic `dropped` was forgotten: its chat state goes, and its creator's quota
    /// comes back.
    pub fn on_topic_dropped(&mut self, _ctx: &mut Ctx<'_>, dropped: &Dropped) {
        let Some(room) = self.rooms.get(&dropped.name) else {
            return;
        };
        if room.serial != dropped.serial {
            return; // Made again since: that state belongs to the new room.
        }
        self.forget_room(&dropped.name);
    }

    /// Forgets owned room `name`'s chat state, giving its creator's quota back.
    fn forget_room(&mut self, name: &str) {
        let Some(room) = self.rooms.remove(name) else {
            return;
        };
        self.typing_unarmed.remove(name);
        if let Some(by) = room.created_by {
            if let Some(n) = self.rooms_created.get_mut(&by) {
                *n -= 1;
                if *n == 0 {
                    self.rooms_created.remove(&by);
                }
            }
        }
    }
}

/// `POST /api/publish {room, content}`: a message from the `system` user.
pub fn api_publish(
    v: &serde_json::Map<String, serde_json::Value>,
    config: &Config,
) -> Result<ToRoom, ApiRefusal> {
    let Some(room) = v
        .get("room")
        .and_then(|r| r.as_str())
        .filter(|r| valid_room_name(r))
    else {
        return Err(ApiRefusal::bad_request("room: a valid room name".into()));
    };
    let Some(content) = v.get("content") else {
        return Err(ApiRefusal::bad_request("content: any JSON value".into()));
    };
    let content = serde_json::to_vec(content).expect("a Value encodes");
    if content.len() > config.max_content_bytes {
        return Err(ApiRefusal {
            status: 413,
            reason: "Content Too Large",
            code: "content_too_large",
            message: format!("content is at most {} bytes", config.max_content_bytes),
        });
    }
    Ok(ToRoom {
        room: Arc::from(room),
        op: RoomOp::ApiPublish { content },
    })
}

/// The room's shared name if connection `key` is a member (or joining).
fn member_room(ctx: &Ctx<'_>, key: usize, room: &str) -> Result<Arc<str>, AppError> {
    if !ctx.is_member(key, room) {
        return Err(AppError::NotInRoom { room: room.into() });
    }
    Ok(ctx.topic_name(key, room))
}

fn join(
    ctx: &mut Ctx<'_>,
    users: &Users,
    key: usize,
    room: &str,
    password: Option<&str>,
    reference: Option<&[u8]>,
) -> Result<(), AppError> {
    if ctx.is_member(key, room) {
        return Err(AppError::AlreadyInRoom { room: room.into() });
    }
    if ctx.topic_count(key) >= TOPICS_PER_CONNECTION_MAX {
        return Err(AppError::TooManyTopics {
            max: TOPICS_PER_CONNECTION_MAX,
        });
    }
    let name = ctx.topic_name(key, room);
    let user = ctx.user(key).cloned();
    let status = user
        .as_ref()
        .map_or(Status::Online, |u| users.local_status(&u.id));
    let join = Join {
        conn: ctx.conn_ref(key),
        user,
        status,
        password: password.map(Into::into),
        reference: reference.map(<[u8]>::to_vec),
    };
    let msg = ToRoom {
        room: name.clone(),
        op: RoomOp::Join(Box::new(join)),
    };
    ctx.request_join(key, name, msg);
    Ok(())
}

fn query(
    ctx: &mut Ctx<'_>,
    key: usize,
    room: &str,
    query: RoomQuery,
    reference: Option<&[u8]>,
) -> Result<(), AppError> {
    let name = member_room(ctx, key, room)?;
    let conn = ctx.conn_ref(key);
    let query = msg::Query {
        conn,
        query,
        reference: reference.map(<[u8]>::to_vec),
    };
    ctx.to_owner(ToRoom {
        room: name,
        op: RoomOp::Query(Box::new(query)),
    });
    Ok(())
}

/// A logged-in member's request about `room`, sent to the room's owner and acked.
fn user_request(
    ctx: &mut Ctx<'_>,
    key: usize,
    room: &str,
    reference: Option<&[u8]>,
    make: impl FnOnce(crate::server::ConnRef, Arc<User>) -> RoomOp,
) -> Result<(), AppError> {
    let user = ctx.user_of(key)?;
    let name = member_room(ctx, key, room)?;
    let conn = ctx.conn_ref(key);
    ctx.to_owner(ToRoom {
        room: name,
        op: make(conn, user),
    });
    ctx.ack(key, reference);
    Ok(())
}
