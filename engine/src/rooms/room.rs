//! One room as one shard sees it: its local members, and ownership state if this shard owns it.
//!
//! Invariant: `members` holds exactly the connections of this shard that joined and did not
//! leave; the owner's `remote[s]` counts the joins minus leaves shard `s` reported.

use std::sync::Arc;

use slab::Slab;

use super::Batcher;

/// State only the owner shard keeps.
#[derive(Debug)]
pub struct Ownership {
    /// Id of the next message; ids increase within the room.
    pub next_id: u64,
    /// Members on each shard (this shard's entry stays 0: local members are in `members`).
    pub remote: Vec<u32>,
    pub batcher: Batcher,
}

impl Ownership {
    pub fn new(shards: usize, batcher: Batcher) -> Self {
        Self {
            next_id: 1,
            remote: vec![0; shards],
            batcher,
        }
    }

    pub fn remote_members(&self) -> u64 {
        self.remote.iter().map(|&n| n as u64).sum()
    }
}

#[derive(Debug)]
pub struct Room {
    pub name: Arc<str>,
    /// Connection keys of this shard's members.
    pub members: Slab<usize>,
    pub owner: Option<Ownership>,
}

impl Room {
    pub fn new(name: Arc<str>, owner: Option<Ownership>) -> Self {
        Self {
            name,
            members: Slab::new(),
            owner,
        }
    }

    /// Members on every shard; only the owner knows it.
    pub fn total_members(&self) -> u64 {
        self.members.len() as u64 + self.owner.as_ref().map_or(0, |o| o.remote_members())
    }

    /// Nothing left to remember: no members anywhere, no batch in flight.
    pub fn is_disposable(&self) -> bool {
        self.members.is_empty()
            && self
                .owner
                .as_ref()
                .is_none_or(|o| o.remote_members() == 0 && o.batcher.is_idle())
    }
}
