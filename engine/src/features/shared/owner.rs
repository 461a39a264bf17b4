//! The shared feature on a topic's owner: state reads and writes, broadcasts and their
//! history, presence data, and what happens when members join or leave or the topic goes.

use std::sync::Arc;

use super::error::SharedError;
use super::events;
use super::limits::{PRESENCE_REPLAYED_MAX, SHARED_BYTES_PER_SHARD_MAX};
use super::msg::{SharedOp, ToShared};

use super::store::SharedTopic;
use super::Shared;
use crate::identity::User;
use crate::protocol::message::AppError;
use crate::server::{ConnRef, Ctx, Dropped};

impl Shared {
    pub fn on_owned(&mut self, ctx: &mut Ctx<'_>, msg: ToShared) {
        let ToShared { topic, op } = msg;
        let conn = match &*op {
            SharedOp::Get { conn, .. }
            | SharedOp::Write { conn, .. }
            | SharedOp::Broadcast { conn, .. }
            | SharedOp::History { conn, .. }
            | SharedOp::Presence { conn, .. } => *conn,
        };
        let Some(tk) = ctx.member_of_owned(&topic, conn.id) else {
            let name = crate::features::docs::public_name(&topic).to_string();
            return refuse(ctx, conn, SharedError::NotMember { topic: name }, None);
        };
        let name = ctx.topic(tk).name.clone();
        let serial = ctx.topic(tk).serial;
        if self.topics.get(&name).is_some_and(|t| t.serial != serial) {
            // Left from a topic of this name whose drop event is still queued.
            let old = self.topics.remove(&name).expect("checked");
            self.bytes -= old.bytes();
        }
        let over = self.bytes >= SHARED_BYTES_PER_SHARD_MAX;
        let t = self
            .topics
            .entry(name.clone())
            .or_insert_with(|| SharedTopic::new(serial));
        let before = t.bytes();
        let at = Here {
            tk,
            name: &name,
            conn,
            over,
        };
        if let Err((e, reference)) = apply(ctx, t, &at, *op) {
            refuse(ctx, conn, e, reference.as_deref());
        }
        self.settle_bytes(&name, before);
    }

    /// Keeps the shard's byte count exact after topic `name` changed from `before` bytes.
    fn settle_bytes(&mut self, name: &str, before: usize) {
        if let Some(t) = self.topics.get(name) {
            self.bytes = self.bytes + t.bytes() - before;
        }
    }

    /// Member `conn` joined owned topic `topic`: it gets the shared state (when there is one)
    /// and the others' presence data.
    pub fn on_member_joined(&mut self, ctx: &mut Ctx<'_>, topic: &str, conn: ConnRef) {
        let Some(t) = self.topics.get(topic) else {
            return;
        };
        if t.version > 0 {
            ctx.to_conn(conn, events::sync(topic, &t.state, t.version, None));
        }
        let others = t.presence.iter().filter(|(id, _)| **id != conn.id);
        for (id, (user, data, at)) in others.take(PRESENCE_REPLAYED_MAX) {
            ctx.to_conn(conn, events::presence(topic, *id, user.json(), data, *at));
        }
    }

    /// A member left owned topic `tk`: its presence data goes (the others get it as null).
    pub fn on_member_left(&mut self, ctx: &mut Ctx<'_>, tk: usize, conn_id: u64, gone: bool) {
        if !gone {
            return;
        }
        let name = ctx.topic(tk).name.clone();
        let Some(t) = self.topics.get_mut(&name) else {
            return;
        };
        let before = t.bytes();
        let user = t.presence.get(&conn_id).map(|(u, _, _)| u.clone());
        if t.clear_presence(conn_id) {
            let user = user.expect("had presence");
            let now = ctx.now().unix_ms;
            ctx.fanout(
                tk,
                events::presence(&name, conn_id, user.json(), b"null", now),
            );
        }
        self.settle_bytes(&name, before);
    }

    /// A topic was forgotten: so is what this feature kept for it.
    pub fn on_topic_dropped(&mut self, _ctx: &mut Ctx<'_>, dropped: &Dropped) {
        let current = self
            .topics
            .get(&dropped.name)
            .is_some_and(|t| t.serial == dropped.serial);
        if current {
            let t = self.topics.remove(&dropped.name).expect("checked");
            self.bytes -= t.bytes();
        }
    }
}

/// Where an owned request applies: the topic (key and name) and the asking member.
struct Here<'a> {
    tk: usize,
    name: &'a str,
    conn: ConnRef,
    /// The shard's shared bytes are spent.
    over: bool,
}

type Refusal = (SharedError, Option<Vec<u8>>);

fn apply(
    ctx: &mut Ctx<'_>,
    t: &mut SharedTopic,
    at: &Here<'_>,
    op: SharedOp,
) -> Result<(), Refusal> {
    let (tk, name, conn) = (at.tk, at.name, at.conn);
    match op {
        SharedOp::Get { reference, .. } => {
            ctx.to_conn(
                conn,
                events::sync(name, &t.state, t.version, reference.as_deref()),
            );
        }
        SharedOp::Write {
            by,
            changes,
            if_version,
            reference,
            ..
        } => {
            if at.over {
                let max = SHARED_BYTES_PER_SHARD_MAX;
                return Err((SharedError::ShardFull { max }, reference));
            }
            let version = t
                .write(&changes, if_version)
                .map_err(|e| (e, reference.clone()))?;
            ctx.fanout(tk, events::update(name, version, &changes, by.json()));
            if reference.is_some() {
                ctx.to_conn(conn, events::ack(reference.as_deref(), b"version", version));
            }
        }
        SharedOp::Broadcast {
            from,
            channel,
            payload,
            reference,
            ..
        } => broadcast(ctx, t, at, (from, channel, payload, reference))?,
        SharedOp::History {
            channel,
            limit,
            reference,
            ..
        } => {
            let kept = t.channels.get(&*channel).map(|c| &c.kept);
            let skip = kept.map_or(0, |k| k.len().saturating_sub(limit));
            let bodies = kept.into_iter().flatten().skip(skip).map(Vec::as_slice);
            ctx.to_conn(
                conn,
                events::history(name, &channel, bodies, reference.as_deref()),
            );
        }
        SharedOp::Presence { user, data, .. } => {
            if at.over {
                let max = SHARED_BYTES_PER_SHARD_MAX;
                return Err((SharedError::ShardFull { max }, None));
            }
            let now = ctx.now().unix_ms;
            let frame = events::presence(name, conn.id, user.json(), &data, now);
            t.set_presence(conn.id, user, data.into(), now);
            ctx.fanout(tk, frame);
        }
    }
    Ok(())
}

fn broadcast(
    ctx: &mut Ctx<'_>,
    t: &mut SharedTopic,
    at: &Here<'_>,
    (from, channel, payload, reference): (Arc<User>, Box<str>, Vec<u8>, Option<Vec<u8>>),
) -> Result<(), Refusal> {
    let (tk, name, conn) = (at.tk, at.name, at.conn);
    let id = t.next_id(&channel).map_err(|e| (e, reference.clone()))?;
    let ts = ctx.now().unix_ms;
    let body = events::message_body(name, &channel, id, &payload, from.json(), ts);
    ctx.fanout_except(tk, events::message(&body), conn.id);
    if at.over {
        ctx.stats().shared_unkept.fetch_add(1, RELAXED);
    } else {
        t.keep(&channel, body);
    }
    if reference.is_some() {
        ctx.to_conn(conn, events::ack(reference.as_deref(), b"id", id));
    }
    Ok(())
}

fn refuse(ctx: &mut Ctx<'_>, conn: ConnRef, e: SharedError, reference: Option<&[u8]>) {
    ctx.stats().app_errors.fetch_add(1, RELAXED);
    ctx.refuse_conn(conn, &AppError::Shared(e), reference);
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
