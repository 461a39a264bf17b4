//! The documents feature on a document's owner: joins, changes (transform, apply, ack, fan
//! out), catch-up, members leaving and documents forgotten.

use std::sync::Arc;

use bytes::Bytes;

use super::document::{Outcome, Submit};
use super::error::DocError;
use super::events;
use super::limits::{
    DOC_BYTES_PER_SHARD_MAX, DOC_EDITORS_MAX, DOC_USERS_LISTED_MAX, TRANSFORM_PAIRS_PER_UNIT,
};
use super::msg::{Change, DocOp, ToDoc};
use super::shared_doc::SharedDoc;
use super::{public_name, Docs};
use crate::features::FeatureId;
use crate::identity::User;
use crate::protocol::event;
use crate::protocol::message::AppError;
use crate::server::{ConnRef, Ctx, Dropped};

impl Docs {
    pub fn on_owned(&mut self, ctx: &mut Ctx<'_>, msg: ToDoc) {
        let ToDoc { doc, op } = msg;
        match *op {
            DocOp::Join {
                conn,
                user,
                reference,
            } => {
                let result = self.admit(ctx, &doc, conn, user, reference.as_deref());
                let admitted = result.is_ok();
                let result = result.map_err(|e| {
                    ctx.stats().app_errors.fetch_add(1, RELAXED);
                    event::error(e.code(), &e.to_string(), reference.as_deref())
                });
                ctx.answer_join(doc.clone(), FeatureId::Docs, conn, result, None);
                if admitted {
                    for frame in self.all_cursors(&doc) {
                        ctx.to_conn(conn, frame);
                    }
                }
            }
            DocOp::Change(c) => self.change(ctx, &doc, c),
            DocOp::Cursor {
                conn,
                user,
                cursor,
                version,
            } => self.cursor(ctx, &doc, conn, user, (cursor, version)),
            DocOp::Sync {
                conn,
                version,
                reference,
            } => self.sync(ctx, &doc, conn, version, reference.as_deref()),
        }
    }

    /// The owned document `name`: its topic key, with its state made when new. How many a
    /// shard holds is the topic table's limit, whose eviction of the longest-empty topic
    /// lets no one lock names out; their bytes are [`DOC_BYTES_PER_SHARD_MAX`]'s.
    fn owned(&mut self, ctx: &mut Ctx<'_>, name: &str) -> Result<usize, AppError> {
        let (tk, serial) = ctx.own_topic(name, FeatureId::Docs)?;
        if self.docs.get(name).is_none_or(|d| d.serial != serial) {
            // State of a dropped topic of this name whose drop event is still queued.
            self.forget(name);
            let shared = ctx.topic(tk).name.clone();
            let max = self.doc_bytes_max(ctx);
            self.docs.insert(shared, SharedDoc::new(serial, max));
            ctx.stats().docs.store(self.docs.len() as u64, RELAXED);
            ctx.keep_topic(tk, true);
        }
        Ok(tk)
    }

    /// A document's text as JSON may take this many bytes: so that `doc:state` always fits
    /// a reader's send queue, at most half of it.
    fn doc_bytes_max(&self, ctx: &Ctx<'_>) -> usize {
        super::limits::DOC_BYTES_MAX.min(ctx.config().send_queue_bytes / 2)
    }

    fn admit(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        conn: ConnRef,
        user: Arc<User>,
        reference: Option<&[u8]>,
    ) -> Result<Bytes, AppError> {
        let tk = self.owned(ctx, name)?;
        let d = self.docs.get_mut(name).expect("owned");
        if !d.editors.contains_key(&conn.id) && d.editors.len() >= DOC_EDITORS_MAX {
            let (doc, max) = (public_name(name).into(), DOC_EDITORS_MAX);
            return Err(AppError::Doc(DocError::DocFull { doc, max }));
        }
        if ctx.add_member(tk, conn) {
            ctx.fanout(
                tk,
                events::user_moved(true, public_name(name), conn.id, &user),
            );
            d.editors.insert(conn.id, user);
        }
        Ok(state_frame(name, d, reference))
    }

    fn change(&mut self, ctx: &mut Ctx<'_>, name: &str, c: Change) {
        let reference = c.reference.as_deref();
        let Some(tk) = ctx.member_of_owned(name, c.conn.id) else {
            let doc = public_name(name).into();
            return refuse(ctx, c.conn, DocError::NotInDoc { doc }, reference);
        };
        let d = self
            .docs
            .get_mut(name)
            .expect("a member's document is owned");
        let client = c.client.as_ref().map(|(id, seq)| (&**id, *seq));
        // The most a change can add: its inserts escaped, its kept record. A resubmit of an
        // applied change adds nothing and is always answered.
        let growth: usize = c.ops.iter().map(grows_by).sum();
        if !d.doc.is_duplicate(client) && self.bytes + growth > DOC_BYTES_PER_SHARD_MAX {
            let max = DOC_BYTES_PER_SHARD_MAX;
            return refuse(ctx, c.conn, DocError::ShardFull { max }, reference);
        }
        let before = d.doc.bytes();
        let seq = client.map(|(_, seq)| seq);
        let submitted = d.doc.submit(Submit {
            base: c.base,
            ops: c.ops,
            client,
            author: c.author.clone(),
        });
        self.bytes = self.bytes + d.doc.bytes() - before;
        let doc = public_name(name);
        match submitted {
            Ok(Outcome::Applied {
                version,
                ops,
                pairs,
            }) => {
                ctx.stats().doc_changes.fetch_add(1, RELAXED);
                // A change far behind costs its transform: the author pays it from its budget.
                let units = (pairs / TRANSFORM_PAIRS_PER_UNIT).min(u32::MAX as usize) as u32;
                if units > 0 {
                    ctx.debit(c.conn, units);
                }
                // Carets stay on their characters; clients move their copies the same way.
                d.cursors.values_mut().for_each(|c| c.follow(&ops));
                ctx.to_conn(c.conn, events::ack(doc, version, seq, reference));
                let frame = events::operation(doc, version, &ops, &c.author);
                ctx.fanout_except(tk, frame, c.conn.id);
            }
            Ok(Outcome::Duplicate { version }) => {
                ctx.stats().doc_resubmits.fetch_add(1, RELAXED);
                ctx.to_conn(c.conn, events::ack(doc, version, seq, reference));
            }
            Err(e) => refuse(ctx, c.conn, e.into(), reference),
        }
    }

    /// `doc:sync`: the changes after `version` when they are kept and fit a reply, else the
    /// whole state.
    fn sync(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        conn: ConnRef,
        version: u64,
        reference: Option<&[u8]>,
    ) {
        if ctx.member_of_owned(name, conn.id).is_none() {
            let doc = public_name(name).into();
            return refuse(ctx, conn, DocError::NotInDoc { doc }, reference);
        }
        let d = &self.docs[name];
        let room = ctx.config().send_queue_bytes / 4;
        let frame = changes_frame(name, d, version, room, reference)
            .unwrap_or_else(|| state_frame(name, d, reference));
        ctx.to_conn(conn, frame);
    }

    /// A member left owned document `tk` (`gone`: its last accepted join).
    pub fn on_member_left(&mut self, ctx: &mut Ctx<'_>, tk: usize, conn_id: u64, gone: bool) {
        if !gone {
            return;
        }
        let name = ctx.topic(tk).name.clone();
        let Some(d) = self.docs.get_mut(&name) else {
            return;
        };
        if d.cursors.remove(&conn_id).is_some() {
            d.moved.remove(&conn_id);
            ctx.fanout(tk, events::cursor_remove(public_name(&name), conn_id));
        }
        if let Some(user) = d.editors.remove(&conn_id) {
            let frame = events::user_moved(false, public_name(&name), conn_id, &user);
            ctx.fanout(tk, frame);
        }
    }

    /// Owned topic `dropped` was forgotten: so is its document.
    pub fn on_topic_dropped(&mut self, ctx: &mut Ctx<'_>, dropped: &Dropped) {
        if self
            .docs
            .get(&dropped.name)
            .is_some_and(|d| d.serial == dropped.serial)
        {
            self.forget(&dropped.name);
            ctx.stats().docs.store(self.docs.len() as u64, RELAXED);
        }
    }

    fn forget(&mut self, name: &str) {
        if let Some(d) = self.docs.remove(name) {
            self.bytes -= d.doc.bytes();
        }
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;

/// The most bytes `op` can add to the shard's documents.
fn grows_by(op: &super::operation::Op) -> usize {
    use super::operation::Op;
    let text = match op {
        Op::Insert { chars, .. } => 6 * chars,
        Op::Delete { .. } => 0,
    };
    text + op.bytes() + super::limits::CHANGE_OVERHEAD_BYTES
}

fn refuse(ctx: &mut Ctx<'_>, conn: ConnRef, e: DocError, reference: Option<&[u8]>) {
    ctx.stats().app_errors.fetch_add(1, RELAXED);
    ctx.refuse_conn(conn, &AppError::Doc(e), reference);
}

fn state_frame(name: &str, d: &SharedDoc, reference: Option<&[u8]>) -> Bytes {
    let editors = d
        .editors
        .iter()
        .take(DOC_USERS_LISTED_MAX)
        .map(|(id, u)| (*id, &**u));
    let more = d.editors.len().saturating_sub(DOC_USERS_LISTED_MAX);
    let doc = public_name(name);
    events::state(doc, d.doc.text(), d.doc.version(), editors, more, reference)
}

/// `doc:operations` after `version`, if those changes are kept and take at most `max` bytes.
fn changes_frame(
    name: &str,
    d: &SharedDoc,
    version: u64,
    max: usize,
    reference: Option<&[u8]>,
) -> Option<Bytes> {
    let mut body = Vec::new();
    for (i, c) in d.doc.changes_since(version)?.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        events::push_change(&mut body, c);
        if body.len() > max {
            return None;
        }
    }
    Some(events::operations(
        public_name(name),
        version,
        &body,
        reference,
    ))
}
