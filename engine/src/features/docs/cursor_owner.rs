//! Cursors on a document's owner: each member's latest cursor, sent to the members at most
//! once per `--cursor-interval-ms` as one `cursor:update` of every cursor that moved,
//! latest-wins in each reader's queue.
//!
//! Invariant: a `cursor:update` replaces an unsent one in a reader's queue only when both
//! hold the same cursors (its slot is the document and that set), so no move is lost to a
//! replacement, only superseded.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::cursor::Cursor;
use super::error::DocError;
use super::events;
use super::limits::CURSORS_PER_FRAME_MAX;
use super::msg::ShardMsg;
use super::{public_name, Docs};
use crate::identity::User;
use crate::protocol::message::AppError;
use crate::server::{ConnRef, Ctx};

impl Docs {
    /// Member `conn`'s cursor moved.
    pub(super) fn cursor(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        conn: ConnRef,
        user: Arc<User>,
        (mut cursor, version): (Cursor, Option<u64>),
    ) {
        if ctx.member_of_owned(name, conn.id).is_none() {
            let doc = public_name(name).into();
            let e = AppError::Doc(DocError::NotInDoc { doc });
            return ctx.refuse_conn(conn, &e, None);
        }
        let interval = ctx.config().cursor_interval();
        let d = self
            .docs
            .get_mut(name)
            .expect("a member's document is owned");
        // A caret placed in an older version moves through the changes since (when kept).
        if let Some(since) = version.and_then(|v| d.doc.changes_since(v)) {
            since.for_each(|c| cursor.follow(&c.ops));
        }
        cursor.clamp(d.doc.text().len_chars());
        d.cursors.insert(conn.id, cursor);
        d.editors.entry(conn.id).or_insert(user);
        d.moved.insert(conn.id);
        if interval.is_zero() || d.cursor_timer {
            if interval.is_zero() {
                self.send_cursors(ctx, name);
            }
            return;
        }
        let at = ctx.now().mono + interval;
        let doc: Arc<str> = ctx.topic(ctx.topic_key(name).expect("owned")).name.clone();
        if ctx.set_timer(at, ShardMsg::CursorsDue { doc }).is_ok() {
            d.cursor_timer = true;
        } else {
            self.send_cursors(ctx, name);
        }
    }

    pub fn on_shard(&mut self, ctx: &mut Ctx<'_>, msg: ShardMsg) {
        match msg {
            ShardMsg::CursorsDue { doc } => {
                if let Some(d) = self.docs.get_mut(&doc) {
                    d.cursor_timer = false;
                    self.send_cursors(ctx, &doc);
                }
            }
        }
    }

    /// `cursor:update`s of the cursors that moved, to every member (a frame per
    /// [`CURSORS_PER_FRAME_MAX`] of them).
    fn send_cursors(&mut self, ctx: &mut Ctx<'_>, name: &str) {
        let Some(tk) = ctx.topic_key(name) else {
            return;
        };
        let Some(d) = self.docs.get_mut(name) else {
            return;
        };
        let moved = std::mem::take(&mut d.moved);
        let mut live: Vec<u64> = moved
            .into_iter()
            .filter(|id| d.cursors.contains_key(id))
            .collect();
        live.sort_unstable();
        let version = d.doc.version();
        for ids in live.chunks(CURSORS_PER_FRAME_MAX) {
            let entries = ids.iter().map(|id| (*id, &*d.editors[id], &d.cursors[id]));
            let frame = events::cursor_update(public_name(name), version, entries);
            ctx.fanout_latest(tk, frame, slot(name, ids));
        }
    }

    /// Every current cursor of `name`, for a member that just joined (a frame per
    /// [`CURSORS_PER_FRAME_MAX`]).
    pub(super) fn all_cursors(&self, name: &str) -> Vec<bytes::Bytes> {
        let Some(d) = self.docs.get(name) else {
            return Vec::new();
        };
        let ids: Vec<u64> = d
            .cursors
            .keys()
            .copied()
            .filter(|id| d.editors.contains_key(id))
            .collect();
        ids.chunks(CURSORS_PER_FRAME_MAX)
            .map(|chunk| {
                let entries = chunk
                    .iter()
                    .map(|id| (*id, &*d.editors[id], &d.cursors[id]));
                events::cursor_update(public_name(name), d.doc.version(), entries)
            })
            .collect()
    }
}

/// The latest-wins slot of a `cursor:update` of `ids` (sorted) in document `name`.
fn slot(name: &str, ids: &[u64]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    ids.hash(&mut h);
    h.finish()
}
