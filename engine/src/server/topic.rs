//! A topic as one shard sees it: its members on this shard and, on its owner, its stream
//! (ids, history, batcher) and its members on every shard. A feature's room, document or
//! match is a topic; the feature keeps its own state beside it, keyed by the topic's name.
//!
//! Invariants:
//! - `members` holds exactly the connections of this shard whose join the owner accepted and
//!   which have not left.
//! - On the owner, `TopicOwner::members` holds every member connection on every shard (with
//!   its accepted joins not yet matched by a leave), and `remote[s]` counts those on shard `s`.

use std::collections::HashMap;
use std::time::Instant;

use slab::Slab;

use crate::features::FeatureId;
use crate::runtime::shard_of;
use crate::stream::{Batcher, History};

/// State only the owner shard keeps.
#[derive(Debug)]
pub struct TopicOwner {
    /// Id of the next message; ids increase within the topic.
    pub next_id: u64,
    /// Members on each shard (this shard's entry stays 0: local members are in `members`).
    pub remote: Vec<u32>,
    pub batcher: Batcher,
    pub history: History,
    /// When the topic last kept a message, in the table's order of pushes (0: holds none in
    /// the shard's history budget). The quietest topics lose their history first.
    pub history_stamp: u64,
    /// Every member connection, by connection id, with its accepted joins not yet left.
    /// Normally 1; 2 for a moment when a connection left a join still in flight and joined
    /// again (the stale answer's leave follows).
    pub members: HashMap<u64, u32>,
    /// Since when the topic has had no member anywhere (None: it has members). Empty topics
    /// are forgotten after `--room-ttl-secs`.
    pub empty_since: Option<Instant>,
    /// Its feature asked to keep it while empty (a room made by `room:create`).
    pub keep: bool,
}

impl TopicOwner {
    pub fn new(shards: usize, batcher: Batcher, history: History) -> Self {
        Self {
            next_id: 1,
            remote: vec![0; shards],
            batcher,
            history,
            history_stamp: 0,
            members: HashMap::new(),
            empty_since: None,
            keep: false,
        }
    }

    /// The id of the newest message published (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    pub fn remote_members(&self) -> u64 {
        self.remote.iter().map(|&n| n as u64).sum()
    }

    /// Counts an accepted join of connection `conn_id` (the owner is shard `owner`). True when
    /// it was not a member yet.
    pub fn add_member(&mut self, conn_id: u64, owner: usize) -> bool {
        self.empty_since = None;
        if let Some(joins) = self.members.get_mut(&conn_id) {
            *joins += 1;
            return false;
        }
        self.members.insert(conn_id, 1);
        let shard = shard_of(conn_id);
        if shard != owner {
            self.remote[shard] += 1;
        }
        true
    }

    /// Matches one accepted join of member `conn_id` with its leave. True when that was its
    /// last: it is no longer a member.
    pub fn remove_member(&mut self, conn_id: u64, owner: usize) -> bool {
        let joins = self
            .members
            .get_mut(&conn_id)
            .unwrap_or_else(|| panic!("leave of connection {conn_id} that is not a member"));
        *joins -= 1;
        if *joins > 0 {
            return false;
        }
        self.members.remove(&conn_id);
        let shard = shard_of(conn_id);
        if shard != owner {
            assert!(self.remote[shard] > 0, "more leaves than joins");
            self.remote[shard] -= 1;
        }
        true
    }
}

#[derive(Debug)]
pub struct Topic {
    pub name: std::sync::Arc<str>,
    /// The feature whose topic it is (its name is in that feature's namespace).
    pub feature: FeatureId,
    /// Made for this name on this shard: a topic dropped and made again has a new serial.
    pub serial: u64,
    /// Connection keys of this shard's members.
    pub members: Slab<usize>,
    pub owner: Option<TopicOwner>,
}

impl Topic {
    /// Nothing left to remember: no members anywhere, no batch in flight, and (for the
    /// owner) a topic its feature did not ask to keep and nobody wrote in.
    pub fn is_disposable(&self) -> bool {
        self.members.is_empty()
            && self.owner.as_ref().is_none_or(|o| {
                o.members.is_empty() && o.batcher.is_idle() && !o.keep && o.history.is_empty()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::connection_id;
    use std::time::Duration;

    fn owner() -> TopicOwner {
        TopicOwner::new(
            2,
            Batcher::new(Duration::ZERO, 0),
            History::new(1, 10, usize::MAX),
        )
    }

    #[test]
    fn members_are_counted_per_shard() {
        let mut o = owner();
        let (c1, c2) = (connection_id(0, 1), connection_id(1, 1));
        assert!(o.add_member(c1, 0));
        assert!(o.add_member(c2, 0));
        assert_eq!((o.members.len(), o.remote_members()), (2, 1));
        assert!(o.remove_member(c2, 0));
        assert_eq!(o.remote_members(), 0);
        assert!(o.remove_member(c1, 0));
        assert!(o.members.is_empty());
    }

    #[test]
    fn a_join_answered_after_a_rejoin_is_counted_until_its_leave() {
        let mut o = owner();
        let c = connection_id(1, 1);
        assert!(o.add_member(c, 0));
        assert!(!o.add_member(c, 0));
        assert_eq!(o.remote_members(), 1);
        assert!(!o.remove_member(c, 0));
        assert_eq!(o.members.len(), 1);
        assert!(o.remove_member(c, 0));
        assert!(o.members.is_empty());
    }
}
