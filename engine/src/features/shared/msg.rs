//! The shared feature's messages for a topic's owner (keyed by the topic).

use std::sync::Arc;

use super::store::StateChange;
use crate::features::OwnedMsg;
use crate::identity::User;
use crate::server::ConnRef;

#[derive(Debug)]
pub struct ToShared {
    pub topic: Arc<str>,
    /// Boxed: a cross-shard message stays within `SHARD_MSG_BYTES_MAX`.
    pub op: Box<SharedOp>,
}

#[derive(Debug)]
pub enum SharedOp {
    Get {
        conn: ConnRef,
        reference: Option<Vec<u8>>,
    },
    Write {
        conn: ConnRef,
        by: Arc<User>,
        changes: Vec<StateChange>,
        if_version: Option<u64>,
        reference: Option<Vec<u8>>,
    },
    Broadcast {
        conn: ConnRef,
        from: Arc<User>,
        channel: Box<str>,
        payload: Vec<u8>,
        reference: Option<Vec<u8>>,
    },
    History {
        conn: ConnRef,
        channel: Box<str>,
        limit: usize,
        reference: Option<Vec<u8>>,
    },
    Presence {
        conn: ConnRef,
        user: Arc<User>,
        data: Vec<u8>,
    },
}

impl From<ToShared> for OwnedMsg {
    fn from(m: ToShared) -> Self {
        OwnedMsg::Shared(m)
    }
}
