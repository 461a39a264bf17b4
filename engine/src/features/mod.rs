//! The features, and the one place they are registered. A feature is a folder here that owns
//! its state, its client message types, its cross-shard messages, its events, its limits and
//! its tests; it reaches the shard core only through a [`Ctx`].
//!
//! Invariants:
//! - Dispatch is static: every client message type, cross-shard message and core event is
//!   matched here to the one feature that handles it (or, for events, to each in turn).
//! - A message for a key's owner names its key by its type ([`OwnedMsg::owner_key`]), so one
//!   without a routing key does not compile.
//!
//! Adding a feature: a folder with a `mod.rs` that defines its state, `ClientMsg`, messages
//! and handlers, then one variant in each enum below and one arm in each `match`
//! (see docs/ARCHITECTURE.md, "Adding a feature").

pub mod chat;
pub mod docs;
pub mod heartbeat;
pub mod shared;
pub mod users;

use crate::config::Config;
use crate::limits::REQUEST_COST_BYTES;
use crate::protocol::handshake::ApiEndpoint;
use crate::protocol::message::{unknown_type, AppError, Fields};
use crate::server::ConnRef;
use crate::server::{Closed, Ctx, Dropped, Gathered};

/// Features that own topics (a topic's name lives in its feature's namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureId {
    Chat,
    Docs,
}

/// Messages for the owner of a key, by feature.
#[derive(Debug)]
pub enum OwnedMsg {
    Room(chat::ToRoom),
    User(users::ToUser),
    Doc(docs::ToDoc),
    Shared(shared::ToShared),
}

impl OwnedMsg {
    /// The key whose owner shard handles the message.
    pub fn owner_key(&self) -> &str {
        match self {
            OwnedMsg::Room(m) => &m.room,
            OwnedMsg::User(m) => &m.user,
            OwnedMsg::Doc(m) => &m.doc,
            OwnedMsg::Shared(m) => &m.topic,
        }
    }
}

/// Messages for a given shard's features (and features' timers).
#[derive(Debug)]
pub enum FeatureMsg {
    Chat(chat::ShardMsg),
    Users(users::ShardMsg),
    Docs(docs::ShardMsg),
}

/// A client message, parsed by the feature its `type` belongs to.
#[derive(Debug, PartialEq)]
pub enum ClientMsg<'v> {
    Chat(chat::ClientMsg<'v>),
    Users(users::ClientMsg<'v>),
    Docs(docs::ClientMsg<'v>),
    Shared(shared::ClientMsg<'v>),
    Heartbeat(heartbeat::ClientMsg),
}

/// What every feature keeps per connection.
#[derive(Debug, Default)]
pub struct ConnState {
    pub chat: chat::ConnState,
    pub users: users::ConnState,
    pub docs: docs::ConnState,
}

/// The budget cost of a message that did not parse: it still took parsing.
pub const MALFORMED_COST: u32 = 1;

/// The part of a message's cost that grows with its size: one unit per
/// [`REQUEST_COST_BYTES`] of text.
pub fn size_cost(text_bytes: usize) -> u32 {
    (text_bytes / REQUEST_COST_BYTES) as u32
}

/// Parses a client message of type `kind` with the feature that owns the type.
pub fn parse<'v>(kind: &str, fields: &Fields<'v>) -> Result<ClientMsg<'v>, AppError> {
    // Chat first: its messages are most of the traffic.
    if let Some(m) = chat::ClientMsg::parse(kind, fields) {
        return m.map(ClientMsg::Chat);
    }
    if let Some(m) = users::ClientMsg::parse(kind, fields) {
        return m.map(ClientMsg::Users);
    }
    if let Some(m) = docs::ClientMsg::parse(kind, fields) {
        return m.map(ClientMsg::Docs);
    }
    if let Some(m) = shared::ClientMsg::parse(kind, fields) {
        return m.map(ClientMsg::Shared);
    }
    if let Some(m) = heartbeat::ClientMsg::parse(kind, fields) {
        return m.map(ClientMsg::Heartbeat);
    }
    Err(unknown_type(kind))
}

impl ClientMsg<'_> {
    /// Budget units, by type (before the size part).
    pub fn cost(&self) -> u32 {
        match self {
            ClientMsg::Chat(m) => m.cost(),
            ClientMsg::Users(m) => m.cost(),
            ClientMsg::Docs(m) => m.cost(),
            ClientMsg::Shared(m) => m.cost(),
            ClientMsg::Heartbeat(m) => m.cost(),
        }
    }
}

/// Why an HTTP API request was refused: its status, reason phrase, `error` code and message.
#[derive(Debug)]
pub struct ApiRefusal {
    pub status: u16,
    pub reason: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl ApiRefusal {
    /// 400 with `message`.
    pub fn bad_request(message: String) -> Self {
        Self {
            status: 400,
            reason: "Bad Request",
            code: "bad_request",
            message,
        }
    }
}

/// The message an HTTP API request (its JSON body `v`) asks for, built by its feature.
pub fn api_message(
    endpoint: ApiEndpoint,
    v: &serde_json::Map<String, serde_json::Value>,
    config: &Config,
) -> Result<OwnedMsg, ApiRefusal> {
    match endpoint {
        ApiEndpoint::Notify => users::api_notify(v).map(OwnedMsg::User),
        ApiEndpoint::Publish => chat::api_publish(v, config).map(OwnedMsg::Room),
    }
}

/// Every feature's state on one shard.
#[derive(Default)]
pub struct Features {
    pub chat: chat::Chat,
    pub users: users::Users,
    pub docs: docs::Docs,
    pub shared: shared::Shared,
}

impl Features {
    pub fn new() -> Self {
        Self {
            chat: chat::Chat::new(),
            users: users::Users::new(),
            docs: docs::Docs::new(),
            shared: shared::Shared::new(),
        }
    }

    /// A client message from connection `key` (its envelope read already): parsed, charged
    /// (unless it changes nothing: conflated, acknowledged and dropped), then handled.
    pub fn on_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        envelope: Result<(&str, Fields<'_>), AppError>,
        text_len: usize,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let parsed = envelope.and_then(|(kind, fields)| parse(kind, &fields));
        let message = match parsed {
            Ok(m) => m,
            Err(e) => {
                ctx.charge(key, MALFORMED_COST + size_cost(text_len))?;
                return Err(e);
            }
        };
        if self.conflated(ctx, key, &message) {
            ctx.stats().conflated.fetch_add(1, RELAXED);
            ctx.ack(key, reference);
            return Ok(());
        }
        ctx.charge(key, message.cost() + size_cost(text_len))?;
        self.on_client(ctx, key, message, reference)
    }

    fn conflated(&self, ctx: &mut Ctx<'_>, key: usize, message: &ClientMsg<'_>) -> bool {
        match message {
            ClientMsg::Chat(m) => self.chat.conflated(ctx, key, m),
            ClientMsg::Users(m) => self.users.conflated(ctx, key, m),
            ClientMsg::Docs(_) | ClientMsg::Shared(_) | ClientMsg::Heartbeat(_) => false,
        }
    }

    fn on_client(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        message: ClientMsg<'_>,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        if let ClientMsg::Users(users::ClientMsg::Login { username }) = message {
            self.users.login(ctx, key, username, reference);
            return Ok(());
        }
        if let ClientMsg::Heartbeat(m) = message {
            // Before the login check: a guest's connection is alive too.
            heartbeat::on_client(ctx, key, m, reference);
            return Ok(());
        }
        if ctx.user(key).is_none() && !ctx.config().allow_anonymous {
            return Err(AppError::AuthRequired);
        }
        match message {
            ClientMsg::Chat(m) => self.chat.on_client(ctx, &self.users, key, m, reference),
            ClientMsg::Users(m) => self.users.on_client(ctx, key, m, reference),
            ClientMsg::Docs(m) => self.docs.on_client(ctx, key, m, reference),
            ClientMsg::Shared(m) => self.shared.on_client(ctx, key, m, reference),
            ClientMsg::Heartbeat(_) => unreachable!("answered above"),
        }
    }

    /// A message for the owner of its key.
    pub fn on_owned(&mut self, ctx: &mut Ctx<'_>, msg: OwnedMsg) {
        match msg {
            OwnedMsg::Room(m) => self.chat.on_owned(ctx, &self.shared, m),
            OwnedMsg::User(m) => self.users.on_owned(ctx, m),
            OwnedMsg::Doc(m) => self.docs.on_owned(ctx, m),
            OwnedMsg::Shared(m) => self.shared.on_owned(ctx, m),
        }
    }

    /// A message for this shard (or a timer that came due).
    pub fn on_shard(&mut self, ctx: &mut Ctx<'_>, msg: FeatureMsg) {
        match msg {
            FeatureMsg::Chat(m) => self.chat.on_shard(ctx, m),
            FeatureMsg::Users(users::ShardMsg::Presence(p)) => {
                self.users.on_presence(ctx, &p);
                self.chat.on_presence(&p);
            }
            FeatureMsg::Users(m) => self.users.on_shard(ctx, m),
            FeatureMsg::Docs(m) => self.docs.on_shard(ctx, m),
        }
    }

    /// A client message arrived from connection `key` (before it is parsed).
    pub fn on_activity(&mut self, ctx: &mut Ctx<'_>, key: usize) {
        self.users.on_activity(ctx, key);
    }

    /// Connection `conn` was registered; `home`: the topic its URL named.
    pub fn on_open(&mut self, ctx: &mut Ctx<'_>, conn: ConnRef, home: Option<&str>) {
        self.users.on_open(ctx, conn);
        self.docs.on_open(ctx, conn, home);
    }

    /// A connection closed; each feature that keeps state for connections sees it once
    /// (chat keeps none: the core has taken the connection out of its rooms already).
    pub fn on_close(&mut self, ctx: &mut Ctx<'_>, closed: &Closed) {
        self.users.on_close(ctx, closed);
    }

    /// A member left owned topic `tk` of `feature` (`gone`: its last accepted join).
    pub fn on_member_left(
        &mut self,
        ctx: &mut Ctx<'_>,
        feature: FeatureId,
        tk: usize,
        conn_id: u64,
        gone: bool,
    ) {
        match feature {
            FeatureId::Chat => self.chat.on_member_left(ctx, tk, conn_id, gone),
            FeatureId::Docs => self.docs.on_member_left(ctx, tk, conn_id, gone),
        }
        // Whatever the topic's feature, shared state may ride on it.
        self.shared.on_member_left(ctx, tk, conn_id, gone);
    }

    /// Member `conn` was accepted into owned topic `topic` (after its feature's answer).
    pub fn on_member_joined(&mut self, ctx: &mut Ctx<'_>, topic: &str, conn: ConnRef) {
        self.shared.on_member_joined(ctx, topic, conn);
    }

    /// An owned topic was forgotten.
    pub fn on_topic_dropped(&mut self, ctx: &mut Ctx<'_>, dropped: &Dropped) {
        match dropped.feature {
            FeatureId::Chat => self.chat.on_topic_dropped(ctx, dropped),
            FeatureId::Docs => self.docs.on_topic_dropped(ctx, dropped),
        }
        self.shared.on_topic_dropped(ctx, dropped);
    }

    /// Every shard's part of a gather arrived.
    pub fn on_gathered(&mut self, ctx: &mut Ctx<'_>, feature: FeatureId, gathered: Gathered) {
        match feature {
            FeatureId::Chat => self.chat.on_gathered(ctx, gathered),
            FeatureId::Docs => unreachable!("documents scatter no gathers"),
        }
    }

    /// The shard's housekeeping tick.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.users.tick(ctx);
        self.chat.tick(ctx);
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
