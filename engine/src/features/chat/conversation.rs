//! What one connection last told each room of the conflatable messages (typing, read marks),
//! so that repeats that change nothing are conflated: free, acknowledged, sent nowhere.
//!
//! Invariant: at most [`CONVERSATION_TRACKED_ROOMS_MAX`] rooms are tracked per connection; the
//! oldest is forgotten first (forgetting only makes a repeat cost its normal price).

use std::time::Instant;

use crate::features::chat::limits::{CONVERSATION_TRACKED_ROOMS_MAX, TYPING_REFRESH_MIN};

/// What one connection last sent of the conflatable messages, per room it talks in.
#[derive(Debug, Default)]
pub struct Conversation {
    /// (room, typing, when a `typing:start` was last forwarded).
    typing: Vec<(Box<str>, bool, Instant)>,
    /// (room, newest id marked read).
    read: Vec<(Box<str>, u64)>,
}

impl Conversation {
    /// Whether `typing:{start|stop}` in `room` changes nothing the room does not know: a stop
    /// when not typing, or a start refreshed less than [`TYPING_REFRESH_MIN`] ago.
    pub fn typing_redundant(&self, room: &str, on: bool, now: Instant) -> bool {
        match self.typing.iter().find(|(r, ..)| &**r == room) {
            Some(&(_, was_on, at)) if on => was_on && now.duration_since(at) < TYPING_REFRESH_MIN,
            Some(&(_, was_on, _)) => !was_on,
            None => !on,
        }
    }

    pub fn note_typing(&mut self, room: &str, on: bool, now: Instant) {
        match self.typing.iter_mut().find(|(r, ..)| &**r == room) {
            Some(entry) => *entry = (entry.0.clone(), on, now),
            None => push_bounded(&mut self.typing, (room.into(), on, now)),
        }
    }

    /// Sending a message ends typing in its room (the owner does the same).
    pub fn sent_message(&mut self, room: &str) {
        if let Some(entry) = self.typing.iter_mut().find(|(r, ..)| &**r == room) {
            entry.1 = false;
        }
    }

    pub fn read_redundant(&self, room: &str, up_to: u64) -> bool {
        self.read
            .iter()
            .any(|(r, mark)| &**r == room && *mark >= up_to)
    }

    pub fn note_read(&mut self, room: &str, up_to: u64) {
        match self.read.iter_mut().find(|(r, _)| &**r == room) {
            Some(entry) => entry.1 = up_to,
            None => push_bounded(&mut self.read, (room.into(), up_to)),
        }
    }
}

/// Appends to a list of at most [`CONVERSATION_TRACKED_ROOMS_MAX`], forgetting the oldest.
fn push_bounded<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= CONVERSATION_TRACKED_ROOMS_MAX {
        list.remove(0);
    }
    list.push(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn typing_and_read_repeats_are_redundant() {
        let t0 = Instant::now();
        let mut c = Conversation::default();
        assert!(c.typing_redundant("r", false, t0), "stop without start");
        assert!(!c.typing_redundant("r", true, t0));
        c.note_typing("r", true, t0);
        assert!(c.typing_redundant("r", true, t0 + Duration::from_millis(100)));
        assert!(!c.typing_redundant("r", true, t0 + TYPING_REFRESH_MIN));
        assert!(!c.typing_redundant("r", false, t0));
        c.sent_message("r");
        assert!(!c.typing_redundant("r", true, t0), "a message ended typing");
        assert!(!c.read_redundant("r", 5));
        c.note_read("r", 5);
        assert!(c.read_redundant("r", 5));
        assert!(c.read_redundant("r", 3));
        assert!(!c.read_redundant("r", 6));
        for i in 0..CONVERSATION_TRACKED_ROOMS_MAX + 5 {
            c.note_read(&format!("room-{i}"), 1);
        }
        assert_eq!(c.read.len(), CONVERSATION_TRACKED_ROOMS_MAX);
    }
}
