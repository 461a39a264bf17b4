//! A room's message history: the last `max` encoded `message:new` objects, by id.
//!
//! Invariant: ids are consecutive, so the message with id `i` sits at `i - first_id`; the
//! log never holds more than `max` messages.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug)]
pub struct History {
    messages: VecDeque<Bytes>,
    /// Id of `messages[0]` (or of the next message when empty).
    first_id: u64,
    max: usize,
}

impl History {
    /// A history whose first message will have id `first_id`.
    pub fn new(first_id: u64, max: usize) -> Self {
        Self {
            messages: VecDeque::new(),
            first_id,
            max,
        }
    }

    /// Appends message `id` (the next one), dropping the oldest when full.
    pub fn push(&mut self, id: u64, message: Bytes) {
        assert_eq!(
            id,
            self.first_id + self.messages.len() as u64,
            "history ids are consecutive"
        );
        if self.max == 0 {
            self.first_id = id + 1;
            return;
        }
        if self.messages.len() == self.max {
            self.messages.pop_front();
            self.first_id += 1;
        }
        self.messages.push_back(message);
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Id of the newest message, 0 when none was ever published.
    pub fn last_id(&self) -> u64 {
        self.first_id + self.messages.len() as u64 - 1
    }

    /// Up to `n` newest messages, oldest first, leaving out the newest `skip` (those still
    /// held by the batcher, which will reach a new member with their batch).
    pub fn recent(&self, n: usize, skip: usize) -> impl Iterator<Item = &Bytes> {
        let end = self.messages.len().saturating_sub(skip);
        let start = end.saturating_sub(n);
        self.messages.range(start..end)
    }

    /// A page of up to `limit` messages older than id `before` (or the newest when None),
    /// oldest first, and whether older messages remain.
    pub fn page(&self, limit: usize, before: Option<u64>) -> (impl Iterator<Item = &Bytes>, bool) {
        let len = self.messages.len();
        let end = match before {
            None => len,
            Some(b) => (b.saturating_sub(self.first_id) as usize).min(len),
        };
        let start = end.saturating_sub(limit);
        (self.messages.range(start..end), start > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<'a>(it: impl Iterator<Item = &'a Bytes>) -> Vec<String> {
        it.map(|b| String::from_utf8(b.to_vec()).unwrap()).collect()
    }

    #[test]
    fn bounded_and_paged_by_id() {
        let mut h = History::new(1, 5);
        for id in 1..=8u64 {
            h.push(id, Bytes::from(id.to_string()));
        }
        assert_eq!(h.len(), 5);
        assert_eq!(h.last_id(), 8);
        assert_eq!(ids(h.recent(3, 0)), ["6", "7", "8"]);
        assert_eq!(ids(h.recent(3, 1)), ["5", "6", "7"]);
        let (page, more) = h.page(2, None);
        assert_eq!((ids(page), more), (vec!["7".into(), "8".into()], true));
        let (page, more) = h.page(2, Some(7));
        assert_eq!((ids(page), more), (vec!["5".into(), "6".into()], true));
        let (page, more) = h.page(2, Some(5));
        assert_eq!((ids(page), more), (vec!["4".into()], false));
        let (page, more) = h.page(10, Some(2));
        assert_eq!((ids(page).len(), more), (0, false));
    }

    #[test]
    fn zero_keeps_nothing() {
        let mut h = History::new(1, 0);
        h.push(1, Bytes::from_static(b"x"));
        h.push(2, Bytes::from_static(b"y"));
        assert!(h.is_empty());
        assert_eq!(h.last_id(), 2);
    }
}
