//! The rooms a shard knows: owned ones and those of other shards with local members.
//!
//! Invariant: `index` and `rooms` always agree: each room is reachable by name and by key.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use super::Room;

#[derive(Debug, Default)]
pub struct RoomTable {
    rooms: Slab<Room>,
    index: HashMap<Arc<str>, usize>,
}

impl RoomTable {
    pub fn key(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn get(&self, key: usize) -> Option<&Room> {
        self.rooms.get(key)
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut Room> {
        self.rooms.get_mut(key)
    }

    /// The key of `name`, creating the room with `make` when it is not there.
    pub fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce(Arc<str>) -> Room) -> usize {
        if let Some(&k) = self.index.get(name) {
            return k;
        }
        let name: Arc<str> = Arc::from(name);
        let key = self.rooms.insert(make(name.clone()));
        self.index.insert(name, key);
        key
    }

    /// Drops the room at `key` if nothing refers to it any more.
    pub fn remove_if_disposable(&mut self, key: usize) {
        if self.rooms.get(key).is_some_and(Room::is_disposable) {
            let room = self.rooms.remove(key);
            self.index.remove(&room.name);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Room> {
        self.rooms.iter().map(|(_, r)| r)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove() {
        let mut t = RoomTable::default();
        let k = t.get_or_insert_with("a", |n| Room::new(n, None));
        assert_eq!(t.get_or_insert_with("a", |_| unreachable!()), k);
        assert_eq!(t.key("a"), Some(k));
        let slot = t.get_mut(k).unwrap().members.insert(7);
        t.remove_if_disposable(k);
        assert_eq!(t.len(), 1);
        t.get_mut(k).unwrap().members.remove(slot);
        t.remove_if_disposable(k);
        assert!(t.is_empty());
        assert_eq!(t.key("a"), None);
    }
}
