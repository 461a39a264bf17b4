//! Shared plain-text documents with operational transform. A document is a topic of the
//! core named `doc/{name}` (see `protocol::handshake::DOC_TOPIC_PREFIX`); its owner keeps,
//! beside the topic's membership, the text, its version, the changes kept for transform and
//! the editors (see `owner`, `document`).
//!
//! Invariants:
//! - A document lives on its owner shard only; every change is transformed and applied
//!   there, in one order, so every editor that follows the protocol converges on its text.
//! - The author of a change gets `doc:ack`; every other member gets `doc:operation`, once.
//!
//! This file is the member's side of each message; `owner.rs` is the owner's side.

mod cursor;
mod cursor_owner;
pub mod document;
mod error;
pub mod events;
pub mod limits;
mod messages;
mod msg;
pub mod op_json;
pub mod operation;
mod owner;
mod shared_doc;

#[cfg(test)]
mod ot_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

pub use cursor::Cursor;
pub use error::DocError;
pub use messages::ClientMsg;
pub use msg::{Change, DocOp, ShardMsg, ToDoc};

use crate::limits::TOPICS_PER_CONNECTION_MAX;
use crate::protocol::handshake::DOC_TOPIC_PREFIX;
use crate::protocol::message::AppError;
use crate::server::{ConnRef, Ctx};
use shared_doc::SharedDoc;

/// What the documents feature keeps per connection.
#[derive(Debug, Default)]
pub struct ConnState {
    /// The document topic the connection's URL named (`/ws/collab/{doc}`): the one a message
    /// without `doc` means.
    pub home: Option<Arc<str>>,
}

/// The documents feature's state on one shard: the documents it owns.
#[derive(Default)]
pub struct Docs {
    docs: HashMap<Arc<str>, SharedDoc>,
    /// Bytes the owned documents hold (text as JSON and kept changes), within
    /// [`limits::DOC_BYTES_PER_SHARD_MAX`].
    bytes: usize,
}

/// A document's public name: its topic's without the prefix.
pub fn public_name(topic: &str) -> &str {
    topic.strip_prefix(DOC_TOPIC_PREFIX).unwrap_or(topic)
}

impl Docs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A connection opened on `/ws/collab/{doc}`: it joins the document at once, so its first
    /// frame after `connection:established` is `doc:state`.
    pub fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnRef, home: Option<&str>) {
        let Some(topic) = home.filter(|h| h.starts_with(DOC_TOPIC_PREFIX)) else {
            return;
        };
        if !ctx.is_open(conn) {
            return;
        }
        let topic: Arc<str> = Arc::from(topic);
        ctx.state(conn.key).docs.home = Some(topic.clone());
        if ctx.user(conn.key).is_none() && !ctx.config().allow_anonymous {
            // A guest may not edit here: it logs in, then sends doc:join itself.
            ctx.refuse(conn.key, &AppError::AuthRequired, None);
            return;
        }
        if let Err(e) = join(ctx, conn.key, &topic, None) {
            ctx.refuse(conn.key, &e, None);
        }
    }

    pub fn on_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        message: ClientMsg<'_>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        match message {
            ClientMsg::Join { doc } => {
                let topic = topic_of(ctx, key, doc)?;
                join(ctx, key, &topic, reference)
            }
            ClientMsg::Leave { doc } => {
                let topic = topic_of(ctx, key, doc)?;
                if !ctx.leave_topic(key, &topic) {
                    return Err(not_in_doc(&topic));
                }
                ctx.reply(key, events::left(public_name(&topic), reference));
                Ok(())
            }
            ClientMsg::Change {
                doc,
                version,
                ops,
                client,
                seq,
            } => {
                let topic = member_topic(ctx, key, doc)?;
                let change = Change {
                    conn: ctx.conn_ref(key),
                    author: ctx.speaker(key),
                    base: version,
                    ops,
                    client: client.map(|c| (c.into(), seq.unwrap_or(0))),
                    reference: reference.map(<[u8]>::to_vec),
                };
                let op = Box::new(DocOp::Change(change));
                ctx.to_owner(ToDoc { doc: topic, op });
                Ok(())
            }
            ClientMsg::Cursor {
                doc,
                cursor,
                version,
            } => {
                let topic = member_topic(ctx, key, doc)?;
                let op = Box::new(DocOp::Cursor {
                    conn: ctx.conn_ref(key),
                    user: ctx.speaker(key),
                    cursor,
                    version,
                });
                ctx.to_owner(ToDoc { doc: topic, op });
                Ok(())
            }
            ClientMsg::Sync { doc, version } => {
                let topic = member_topic(ctx, key, doc)?;
                let conn = ctx.conn_ref(key);
                let reference = reference.map(<[u8]>::to_vec);
                let op = Box::new(DocOp::Sync {
                    conn,
                    version,
                    reference,
                });
                ctx.to_owner(ToDoc { doc: topic, op });
                Ok(())
            }
        }
    }
}

/// The topic a message means: `doc/{doc}`, or the connection's home document.
fn topic_of(ctx: &mut Ctx<'_>, key: usize, doc: Option<&str>) -> Result<Arc<str>, AppError> {
    match doc {
        Some(d) => Ok(Arc::from(format!("{DOC_TOPIC_PREFIX}{d}"))),
        None => ctx
            .state(key)
            .docs
            .home
            .clone()
            .ok_or(AppError::Doc(DocError::NoDoc)),
    }
}

/// The document's shared topic name if connection `key` edits it (or is joining).
fn member_topic(ctx: &mut Ctx<'_>, key: usize, doc: Option<&str>) -> Result<Arc<str>, AppError> {
    let topic = topic_of(ctx, key, doc)?;
    if !ctx.is_member(key, &topic) {
        return Err(not_in_doc(&topic));
    }
    Ok(ctx.topic_name(key, &topic))
}

fn not_in_doc(topic: &str) -> AppError {
    let doc = public_name(topic).into();
    AppError::Doc(DocError::NotInDoc { doc })
}

fn join(
    ctx: &mut Ctx<'_>,
    key: usize,
    topic: &str,
    reference: Option<&[u8]>,
) -> Result<(), AppError> {
    if ctx.is_member(key, topic) {
        let doc = public_name(topic).into();
        return Err(AppError::Doc(DocError::AlreadyInDoc { doc }));
    }
    if ctx.topic_count(key) >= TOPICS_PER_CONNECTION_MAX {
        let max = TOPICS_PER_CONNECTION_MAX;
        return Err(AppError::TooManyTopics { max });
    }
    let name = ctx.topic_name(key, topic);
    let op = Box::new(DocOp::Join {
        conn: ctx.conn_ref(key),
        user: ctx.speaker(key),
        reference: reference.map(<[u8]>::to_vec),
    });
    ctx.request_join(key, name.clone(), ToDoc { doc: name, op });
    Ok(())
}
