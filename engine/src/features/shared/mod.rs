//! Shared state, broadcast channels and presence data, attached to a room or a document (a
//! topic another feature owns): seed 002's `useSharedState`, `useBroadcast` and `usePresence`.
//! This feature keeps its data beside the topic on the topic's owner (see `store`).
//!
//! Invariants:
//! - Only members of the topic read or write it; the owner decides every write, in one order,
//!   so last writer wins per key the same for everyone.
//! - What a topic holds goes with the topic (`on_topic_dropped`), and a connection's presence
//!   data with its membership.
//!
//! This file is the member's side; `owner.rs` is the owner's side.

mod error;
pub mod events;
pub mod limits;
mod messages;
mod msg;
mod owner;
mod store;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use simd_json::prelude::*;

pub use error::SharedError;
pub use messages::{ClientMsg, Place};
pub use msg::{SharedOp, ToShared};

use crate::features::docs::public_name;
use crate::protocol::handshake::DOC_TOPIC_PREFIX;
use crate::protocol::message::AppError;
use crate::server::Ctx;
use limits::PRESENCE_DATA_BYTES_MAX;
use store::SharedTopic;

/// The shared feature's state on one shard: what it keeps for the topics this shard owns.
#[derive(Default)]
pub struct Shared {
    topics: HashMap<Arc<str>, SharedTopic>,
    /// Bytes all of them hold, within [`limits::SHARED_BYTES_PER_SHARD_MAX`].
    bytes: usize,
}

impl Shared {
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest presence data of `user_id`'s connections in owned topic `topic` (for
    /// `presence:list`).
    pub fn user_data(&self, topic: &str, user_id: &str) -> Option<&[u8]> {
        self.topics
            .get(topic)?
            .presence
            .values()
            .filter(|(user, _, _)| &*user.id == user_id)
            .max_by_key(|(_, _, at)| *at)
            .map(|(_, data, _)| &**data)
    }

    pub fn on_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        message: ClientMsg<'_>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let topic = member_topic(ctx, key, at(&message))?;
        let conn = ctx.conn_ref(key);
        let reference = reference.map(<[u8]>::to_vec);
        let op = match message {
            ClientMsg::Get { .. } => SharedOp::Get { conn, reference },
            ClientMsg::Write {
                changes,
                if_version,
                patch,
                ..
            } => {
                ctx.checked_content(key, patch)?;
                let changes = changes
                    .into_iter()
                    .map(|(k, v)| {
                        let value = (!v.is_null()).then(|| v.encode().into_bytes().into());
                        (Box::from(k), value)
                    })
                    .collect();
                let by = ctx.speaker(key);
                SharedOp::Write {
                    conn,
                    by,
                    changes,
                    if_version,
                    reference,
                }
            }
            ClientMsg::Broadcast {
                channel, payload, ..
            } => {
                let payload = ctx.checked_content(key, payload)?;
                let from = ctx.speaker(key);
                let channel = channel.into();
                SharedOp::Broadcast {
                    conn,
                    from,
                    channel,
                    payload,
                    reference,
                }
            }
            ClientMsg::History { channel, limit, .. } => {
                let channel = channel.into();
                SharedOp::History {
                    conn,
                    channel,
                    limit,
                    reference,
                }
            }
            ClientMsg::Presence { data, .. } => {
                let data = data.encode().into_bytes();
                if data.len() > PRESENCE_DATA_BYTES_MAX {
                    let (size, max) = (data.len(), PRESENCE_DATA_BYTES_MAX);
                    return Err(AppError::ContentTooLarge { size, max });
                }
                let user = ctx.speaker(key);
                ctx.ack(key, reference.as_deref());
                SharedOp::Presence { conn, user, data }
            }
        };
        ctx.to_owner(ToShared {
            topic,
            op: Box::new(op),
        });
        Ok(())
    }
}

fn at<'v>(m: &ClientMsg<'v>) -> Place<'v> {
    match m {
        ClientMsg::Get { at }
        | ClientMsg::Write { at, .. }
        | ClientMsg::Broadcast { at, .. }
        | ClientMsg::History { at, .. }
        | ClientMsg::Presence { at, .. } => *at,
    }
}

/// The topic `at` names, if connection `key` is a member (or joining).
fn member_topic(ctx: &mut Ctx<'_>, key: usize, at: Place<'_>) -> Result<Arc<str>, AppError> {
    let topic: String = match at {
        Place::Room(r) => r.into(),
        Place::Doc(d) => format!("{DOC_TOPIC_PREFIX}{d}"),
        Place::Home => match &ctx.state(key).docs.home {
            Some(h) => h.to_string(),
            None => return Err(AppError::Shared(SharedError::NoTopic)),
        },
    };
    if !ctx.is_member(key, &topic) {
        let name = public_name(&topic).to_string();
        return Err(AppError::Shared(SharedError::NotMember { topic: name }));
    }
    Ok(ctx.topic_name(key, &topic))
}
