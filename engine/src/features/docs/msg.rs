//! The documents feature's messages for a document's owner (keyed by the document's topic,
//! so routing cannot forget the key).

use std::sync::Arc;

use super::cursor::Cursor;
use super::operation::Op;
use crate::features::{FeatureMsg, OwnedMsg};
use crate::identity::User;
use crate::server::ConnRef;

/// A message for the owner of document topic `doc` (`doc/{name}`).
#[derive(Debug)]
pub struct ToDoc {
    pub doc: Arc<str>,
    /// Boxed: a cross-shard message stays within `SHARD_MSG_BYTES_MAX`.
    pub op: Box<DocOp>,
}

#[derive(Debug)]
pub enum DocOp {
    /// Connection `conn` (speaking as `user`) joins; the owner answers through the core.
    Join {
        conn: ConnRef,
        user: Arc<User>,
        reference: Option<Vec<u8>>,
    },
    /// A change from member `conn`.
    Change(Change),
    /// Member `conn`'s cursor moved (a caret's position in document version `version`).
    Cursor {
        conn: ConnRef,
        user: Arc<User>,
        cursor: Cursor,
        version: Option<u64>,
    },
    /// `doc:sync`: the changes after `version`, or the whole state.
    Sync {
        conn: ConnRef,
        version: u64,
        reference: Option<Vec<u8>>,
    },
}

#[derive(Debug)]
pub struct Change {
    pub conn: ConnRef,
    pub author: Arc<User>,
    pub base: Option<u64>,
    pub ops: Vec<Op>,
    pub client: Option<(Box<str>, u64)>,
    pub reference: Option<Vec<u8>>,
}

impl From<ToDoc> for OwnedMsg {
    fn from(m: ToDoc) -> Self {
        OwnedMsg::Doc(m)
    }
}

/// A message for a given shard's documents feature (its timers).
#[derive(Debug)]
pub enum ShardMsg {
    /// The cursor interval of owned document `doc` ended: its moved cursors go out.
    CursorsDue { doc: Arc<str> },
}

impl From<ShardMsg> for FeatureMsg {
    fn from(m: ShardMsg) -> Self {
        FeatureMsg::Docs(m)
    }
}
