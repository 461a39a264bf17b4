//! A room's message history: the last encoded `message:new` objects, by id, within a count
//! and a byte budget.
//!
//! Invariants: ids are consecutive, so the message with id `i` sits at `i - first_id`; the
//! log never holds more than `max` messages, and never more than `max_bytes` (counting
//! [`ENTRY_OVERHEAD_BYTES`] per message) unless one message alone is larger; `bytes` is the
//! exact cost of what is kept.

use std::collections::VecDeque;

use bytes::Bytes;

/// Memory a kept message costs beyond its own bytes: its slot here, the shared buffer's
/// header and the allocator's rounding. Makes the byte budget count small messages honestly.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// What keeping `message` costs against a byte budget.
pub fn cost(message: &Bytes) -> usize {
    message.len() + ENTRY_OVERHEAD_BYTES
}

#[derive(Debug)]
pub struct History {
    messages: VecDeque<Bytes>,
    /// Id of `messages[0]` (or of the next message when empty).
    first_id: u64,
    max: usize,
    max_bytes: usize,
    bytes: usize,
}

impl History {
    /// A history whose first message will have id `first_id`, keeping at most `max` messages
    /// and `max_bytes` of them.
    pub fn new(first_id: u64, max: usize, max_bytes: usize) -> Self {
        Self {
            messages: VecDeque::new(),
            first_id,
            max,
            max_bytes,
            bytes: 0,
        }
    }

    /// Appends message `id` (the next one), dropping the oldest while over the count or the
    /// byte budget.
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
        self.bytes += cost(&message);
        self.messages.push_back(message);
        while self.messages.len() > self.max
            || (self.bytes > self.max_bytes && self.messages.len() > 1)
        {
            self.pop_oldest();
        }
    }

    /// Drops the oldest message; the bytes it freed (0 when empty).
    pub fn pop_oldest(&mut self) -> usize {
        let Some(m) = self.messages.pop_front() else {
            return 0;
        };
        self.first_id += 1;
        let freed = cost(&m);
        self.bytes -= freed;
        freed
    }

    /// What the kept messages cost against a byte budget.
    pub fn bytes(&self) -> usize {
        self.bytes
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

    /// Where a run of up to `n` messages ending before index `end` starts, so that their
    /// bytes stay within `max_bytes` (at least one message when there is one).
    fn start_within(&self, end: usize, n: usize, max_bytes: usize) -> usize {
        let mut start = end;
        let mut bytes = 0;
        while start > 0 && end - start < n {
            let len = self.messages[start - 1].len();
            if bytes + len > max_bytes && start < end {
                break;
            }
            bytes += len;
            start -= 1;
        }
        start
    }

    /// Up to `n` newest messages within `max_bytes`, oldest first, leaving out the newest
    /// `skip` (those still held by the batcher, which will reach a new member with their
    /// batch).
    pub fn recent(&self, n: usize, skip: usize, max_bytes: usize) -> impl Iterator<Item = &Bytes> {
        let end = self.messages.len().saturating_sub(skip);
        let start = self.start_within(end, n, max_bytes);
        self.messages.range(start..end)
    }

    /// A page of up to `limit` messages within `max_bytes` older than id `before` (or the
    /// newest when None), oldest first, and whether older messages remain.
    pub fn page(
        &self,
        limit: usize,
        before: Option<u64>,
        max_bytes: usize,
    ) -> (impl Iterator<Item = &Bytes>, bool) {
        let len = self.messages.len();
        let end = match before {
            None => len,
            Some(b) => (b.saturating_sub(self.first_id) as usize).min(len),
        };
        let start = self.start_within(end, limit, max_bytes);
        (self.messages.range(start..end), start > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<'a>(it: impl Iterator<Item = &'a Bytes>) -> Vec<String> {
        it.map(|b| String::from_utf8(b.to_vec()).unwrap()).collect()
    }

    const ANY: usize = usize::MAX;

    #[test]
    fn bounded_and_paged_by_id() {
        let mut h = History::new(1, 5, ANY);
        for id in 1..=8u64 {
            h.push(id, Bytes::from(id.to_string()));
        }
        assert_eq!(h.len(), 5);
        assert_eq!(h.last_id(), 8);
        assert_eq!(h.bytes(), 5 * (1 + ENTRY_OVERHEAD_BYTES));
        assert_eq!(ids(h.recent(3, 0, ANY)), ["6", "7", "8"]);
        assert_eq!(ids(h.recent(3, 1, ANY)), ["5", "6", "7"]);
        let (page, more) = h.page(2, None, ANY);
        assert_eq!((ids(page), more), (vec!["7".into(), "8".into()], true));
        let (page, more) = h.page(2, Some(7), ANY);
        assert_eq!((ids(page), more), (vec!["5".into(), "6".into()], true));
        let (page, more) = h.page(2, Some(5), ANY);
        assert_eq!((ids(page), more), (vec!["4".into()], false));
        let (page, more) = h.page(10, Some(2), ANY);
        assert_eq!((ids(page).len(), more), (0, false));
    }

    #[test]
    fn the_byte_budget_drops_the_oldest_and_pages_fit_their_bytes() {
        let big = |c: char| Bytes::from(c.to_string().repeat(100));
        let mut h = History::new(1, 100, 3 * (100 + ENTRY_OVERHEAD_BYTES));
        for (id, c) in (1..=5u64).zip(['a', 'b', 'c', 'd', 'e']) {
            h.push(id, big(c));
        }
        assert_eq!(h.len(), 3, "count allows 100, bytes allow 3");
        assert_eq!(h.bytes(), 3 * (100 + ENTRY_OVERHEAD_BYTES));
        let (page, more) = h.page(50, None, 250);
        assert_eq!(ids(page).len(), 2, "two of 100 bytes fit 250");
        assert!(more);
        assert_eq!(h.recent(50, 0, 10).count(), 1, "at least one message");
        assert_eq!(h.pop_oldest(), 100 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(h.len(), 2);
        // One message larger than the whole budget is still kept, alone.
        h.push(6, Bytes::from(vec![b'x'; 1000]));
        assert_eq!(h.len(), 1);
        assert_eq!(h.last_id(), 6);
    }

    #[test]
    fn zero_keeps_nothing() {
        let mut h = History::new(1, 0, ANY);
        h.push(1, Bytes::from_static(b"x"));
        h.push(2, Bytes::from_static(b"y"));
        assert!(h.is_empty());
        assert_eq!(h.last_id(), 2);
    }
}
