//! What the shared feature keeps for one topic on its owner: the shared state (a JSON object,
//! last writer wins per key, one version per write), the broadcast channels' recent messages,
//! and each member connection's presence data.
//!
//! Invariants: `state_bytes` is the exact size of keys and values held, within
//! [`STATE_BYTES_MAX`] and [`STATE_KEYS_MAX`]; a channel keeps at most
//! [`CHANNEL_HISTORY_MAX`] messages and [`CHANNEL_HISTORY_BYTES_MAX`] bytes, oldest out
//! first; a write refused changes nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::error::SharedError;
use super::limits::{
    CHANNELS_PER_TOPIC_MAX, CHANNEL_HISTORY_BYTES_MAX, CHANNEL_HISTORY_MAX, STATE_BYTES_MAX,
    STATE_KEYS_MAX,
};
use crate::identity::User;

/// A key's new value (JSON), or `None`: the key goes.
pub type StateChange = (Box<str>, Option<Box<[u8]>>);

/// A connection's presence data: its user, the data as JSON, when it was set (Unix ms).
pub type PresenceEntry = (Arc<User>, Box<[u8]>, u64);

#[derive(Default)]
pub struct Channel {
    next_id: u64,
    /// Encoded `broadcast:message` payload objects, oldest first.
    pub kept: VecDeque<Vec<u8>>,
    bytes: usize,
}

#[derive(Default)]
pub struct SharedTopic {
    /// The serial of the topic this belongs to (a topic made again starts afresh).
    pub serial: u64,
    pub state: BTreeMap<Box<str>, Box<[u8]>>,
    state_bytes: usize,
    pub version: u64,
    pub channels: HashMap<Box<str>, Channel>,
    /// Connection id -> its presence data.
    pub presence: HashMap<u64, PresenceEntry>,
    presence_bytes: usize,
}

impl SharedTopic {
    pub fn new(serial: u64) -> SharedTopic {
        SharedTopic {
            serial,
            ..SharedTopic::default()
        }
    }

    /// Applies `changes` (each key once) as one write (version + 1), if `if_version` (when
    /// given) is the current version and the result fits.
    pub fn write(
        &mut self,
        changes: &[StateChange],
        if_version: Option<u64>,
    ) -> Result<u64, SharedError> {
        if let Some(expected) = if_version.filter(|v| *v != self.version) {
            let current = self.version;
            return Err(SharedError::VersionConflict { expected, current });
        }
        let (mut size, mut keys) = (self.state_bytes as isize, self.state.len() as isize);
        for (k, v) in changes {
            let old = self.state.get(k).map(|o| k.len() + o.len());
            size -= old.unwrap_or(0) as isize;
            keys -= old.is_some() as isize;
            if let Some(v) = v {
                size += (k.len() + v.len()) as isize;
                keys += 1;
            }
        }
        if size as usize > STATE_BYTES_MAX || keys as usize > STATE_KEYS_MAX {
            let (size, keys) = (size.max(0) as usize, keys.max(0) as usize);
            let (max, max_keys) = (STATE_BYTES_MAX, STATE_KEYS_MAX);
            return Err(SharedError::StateTooLarge {
                size,
                keys,
                max,
                max_keys,
            });
        }
        for (k, v) in changes {
            if let Some(old) = self.state.remove(k) {
                self.state_bytes -= k.len() + old.len();
            }
            if let Some(v) = v {
                self.state_bytes += k.len() + v.len();
                self.state.insert(k.clone(), v.clone());
            }
        }
        self.version += 1;
        Ok(self.version)
    }

    /// Bytes held: state, kept channel messages and presence data.
    pub fn bytes(&self) -> usize {
        let channels: usize = self.channels.values().map(|c| c.bytes).sum();
        self.state_bytes + channels + self.presence_bytes
    }

    /// Sets connection `conn_id`'s presence data.
    pub fn set_presence(&mut self, conn_id: u64, user: Arc<User>, data: Box<[u8]>, now_ms: u64) {
        self.presence_bytes += data.len();
        if let Some((_, old, _)) = self.presence.insert(conn_id, (user, data, now_ms)) {
            self.presence_bytes -= old.len();
        }
    }

    /// Forgets connection `conn_id`'s presence data; true when it had some.
    pub fn clear_presence(&mut self, conn_id: u64) -> bool {
        match self.presence.remove(&conn_id) {
            Some((_, old, _)) => {
                self.presence_bytes -= old.len();
                true
            }
            None => false,
        }
    }

    /// The next id of `channel` (made if new), or why not.
    pub fn next_id(&mut self, channel: &str) -> Result<u64, SharedError> {
        if !self.channels.contains_key(channel) && self.channels.len() >= CHANNELS_PER_TOPIC_MAX {
            let max = CHANNELS_PER_TOPIC_MAX;
            return Err(SharedError::TooManyChannels { max });
        }
        let c = self.channels.entry(channel.into()).or_default();
        c.next_id += 1;
        Ok(c.next_id)
    }

    /// Keeps an encoded message of `channel` for its history.
    pub fn keep(&mut self, channel: &str, message: Vec<u8>) {
        let c = self.channels.get_mut(channel).expect("an id was taken");
        c.bytes += message.len();
        c.kept.push_back(message);
        while c.kept.len() > CHANNEL_HISTORY_MAX || c.bytes > CHANNEL_HISTORY_BYTES_MAX {
            let Some(gone) = c.kept.pop_front() else {
                break;
            };
            c.bytes -= gone.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(k: &str, v: Option<&str>) -> StateChange {
        (k.into(), v.map(|v| v.as_bytes().into()))
    }

    #[test]
    fn writes_are_versioned_compare_and_set_and_bounded() {
        let mut t = SharedTopic::default();
        assert_eq!(t.write(&[change("title", Some("\"Plan\""))], None), Ok(1));
        assert_eq!(
            t.write(&[change("title", Some("\"X\""))], Some(0)),
            Err(SharedError::VersionConflict {
                expected: 0,
                current: 1
            })
        );
        assert_eq!(
            t.write(&[change("title", None), change("n", Some("1"))], Some(1)),
            Ok(2)
        );
        assert_eq!(t.state.len(), 1);
        assert_eq!(t.state_bytes, 2);
        let big = "x".repeat(STATE_BYTES_MAX);
        let e = t.write(&[change("big", Some(&big))], None).unwrap_err();
        assert!(matches!(e, SharedError::StateTooLarge { .. }), "{e:?}");
        assert_eq!(t.version, 2, "a refused write changes nothing");
    }

    #[test]
    fn channels_keep_a_bounded_history_and_are_bounded_in_number() {
        let mut t = SharedTopic::default();
        for i in 0..CHANNEL_HISTORY_MAX + 5 {
            assert_eq!(t.next_id("strokes"), Ok(i as u64 + 1));
            t.keep("strokes", vec![b'x'; 10]);
        }
        assert_eq!(t.channels["strokes"].kept.len(), CHANNEL_HISTORY_MAX);
        for i in 1..CHANNELS_PER_TOPIC_MAX {
            t.next_id(&format!("c{i}")).unwrap();
        }
        assert!(matches!(
            t.next_id("one-more"),
            Err(SharedError::TooManyChannels { .. })
        ));
    }
}
