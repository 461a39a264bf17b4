//! Features' timers: a message to this shard's features at a given time.
//!
//! Invariant: at most [`TIMERS_PER_SHARD_MAX`] timers wait; a timer fires once, no earlier
//! than its time, and timers due at the same time fire in the order they were set.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::features::FeatureMsg;

/// Timers one shard keeps. Features set a timer per room or match, not per message, so this
/// is far above what they use; past it, setting a timer fails and the feature falls back.
pub const TIMERS_PER_SHARD_MAX: usize = 65_536;

/// The timer table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{max} timers wait on this shard already")]
pub struct TimersFull {
    pub max: usize,
}

#[derive(Debug)]
struct Timer {
    at: Instant,
    seq: u64,
    msg: FeatureMsg,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
}

impl Timers {
    /// Sets a timer that delivers `msg` at `at`.
    pub fn set(&mut self, at: Instant, msg: FeatureMsg) -> Result<(), TimersFull> {
        if self.heap.len() >= TIMERS_PER_SHARD_MAX {
            return Err(TimersFull {
                max: TIMERS_PER_SHARD_MAX,
            });
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.heap.push(Reverse(Timer { at, seq, msg }));
        Ok(())
    }

    /// When the earliest timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// The earliest timer's message if it is due by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<FeatureMsg> {
        if self.next_due()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(t)| t.msg)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
