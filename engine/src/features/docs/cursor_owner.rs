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
        mut cursor: Cursor,
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
        cursor.clamp(d.doc.text().len_chars());
        d.cursors.insert(conn.id, cursor);
        d.editors.entry(conn.id).or_insert(user);
        if !d.moved.contains(&conn.id) {
            d.moved.push(conn.id);
        }
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

    /// One `cursor:update` of the cursors that moved, to every member.
    fn send_cursors(&mut self, ctx: &mut Ctx<'_>, name: &str) {
        let Some(tk) = ctx.topic_key(name) else {
            return;
        };
        let Some(d) = self.docs.get_mut(name) else {
            return;
        };
        let moved = std::mem::take(&mut d.moved);
        let live: Vec<u64> = moved
            .into_iter()
            .filter(|id| d.cursors.contains_key(id))
            .collect();
        if live.is_empty() {
            return;
        }
        let entries = live.iter().map(|id| (*id, &*d.editors[id], &d.cursors[id]));
        let frame = events::cursor_update(public_name(name), entries);
        ctx.fanout_latest(tk, frame, slot(name, &live));
    }

    /// Every current cursor of `name`, for a member that just joined; None without any.
    pub(super) fn all_cursors(&self, name: &str) -> Option<bytes::Bytes> {
        let d = self.docs.get(name)?;
        if d.cursors.is_empty() {
            return None;
        }
        let entries = d
            .cursors
            .iter()
            .filter_map(|(id, c)| Some((*id, &**d.editors.get(id)?, c)));
        Some(events::cursor_update(public_name(name), entries))
    }
}

/// The latest-wins slot of a `cursor:update` of `ids` in document `name`.
fn slot(name: &str, ids: &[u64]) -> u64 {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    sorted.hash(&mut h);
    h.finish()
}
