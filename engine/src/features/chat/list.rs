//! `room:list`: a scatter-gather over every shard, each listing the rooms it owns.
//!
//! Invariant: the answer holds at most [`ROOM_LIST_MAX`] rooms, sorted, and says when some
//! were left out.

use std::sync::Arc;

use super::events;
use super::msg::ShardMsg;
use super::Chat;
use crate::features::chat::limits::ROOM_LIST_MAX;
use crate::features::FeatureId;
use crate::protocol::message::AppError;
use crate::server::{Ctx, GatherRef, Gathered};

impl Chat {
    /// Asks every shard for its rooms on behalf of connection `key`.
    pub(super) fn list(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: usize,
        reference: Option<&[u8]>,
    ) -> Result<(), AppError> {
        let user_id: Option<Arc<str>> = ctx.user(key).map(|u| Arc::from(&*u.id));
        ctx.scatter(key, FeatureId::Chat, "room:list", reference, |gather| {
            let user_id = user_id.clone();
            ShardMsg::ListRooms { gather, user_id }.into()
        })
    }

    /// This shard's part of a `room:list`: the rooms it owns.
    pub(super) fn list_part(
        &mut self,
        ctx: &mut Ctx<'_>,
        gather: GatherRef,
        user_id: Option<Arc<str>>,
    ) {
        let mut entries = Vec::new();
        let mut truncated = false;
        for (name, room) in &self.rooms {
            let Some(tk) = ctx.topic_key(name) else {
                continue;
            };
            if entries.len() == ROOM_LIST_MAX {
                truncated = true;
                break;
            }
            let o = ctx.topic_owner(tk);
            let mut entry = Vec::new();
            events::room_entry(
                &mut entry,
                name,
                &room.info.description,
                o.members.len() as u64,
                room.info.password.is_some(),
                room.info.max_users,
                user_id
                    .as_deref()
                    .map_or(0, |u| room.unread(u, o.last_id())),
            );
            entries.push(entry);
        }
        ctx.gather_part(gather, entries, truncated);
    }

    /// Every shard's rooms arrived: answer the asker.
    pub fn on_gathered(&mut self, ctx: &mut Ctx<'_>, mut g: Gathered) {
        g.entries.sort_unstable();
        if g.entries.len() > ROOM_LIST_MAX {
            g.entries.truncate(ROOM_LIST_MAX);
            g.truncated = true;
        }
        let frame = events::room_list(
            g.entries.iter().map(Vec::as_slice),
            g.truncated,
            g.reference.as_deref(),
        );
        ctx.to_conn(g.conn, frame);
    }
}
