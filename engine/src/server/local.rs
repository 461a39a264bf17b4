//! The shard-local queue: messages a shard sends to itself and the core's events for the
//! features (a connection opened or closed, a topic dropped, a timer fired).
//!
//! Invariant: the queue is drained in order by `Shard::settle` after each entry point's
//! handler returns, never during one, so no handler runs inside another. It holds only what
//! one entry point's handling caused, so it is bounded by that work.

use std::sync::Arc;

use super::shard_msg::{ConnRef, ShardMsg};
use crate::features::{ConnState, FeatureId, FeatureMsg};
use crate::identity::User;

#[derive(Debug)]
pub enum Local {
    /// A message routed to this shard itself.
    Msg(ShardMsg),
    /// A connection was registered (its token's user, if any, is identified already).
    Opened(ConnRef, Option<Box<str>>),
    /// A connection closed: the core has taken it out of its topics and its user's devices.
    Closed(Box<Closed>),
    /// An owned topic was forgotten (empty and disposable, or expired).
    TopicDropped(Dropped),
    /// A feature's timer came due.
    Timer(FeatureMsg),
    /// A connection was accepted into an owned topic (after its feature's answer was sent).
    MemberJoined(Arc<str>, ConnRef),
}

/// A closed connection, as every feature sees it once.
#[derive(Debug)]
pub struct Closed {
    pub conn: ConnRef,
    /// Its user, if it was logged in.
    pub user: Option<Arc<User>>,
    /// The topics it was a member of (the owners are told already).
    pub topics: Vec<Arc<str>>,
    /// The features' state for the connection, moved out of it.
    pub state: ConnState,
}

/// An owned topic that was forgotten.
#[derive(Debug)]
pub struct Dropped {
    pub feature: FeatureId,
    pub name: Arc<str>,
    /// The topic's serial: a topic made again under the same name has another.
    pub serial: u64,
}
