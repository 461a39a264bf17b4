//! The seed's batching policy for one room: the first message after a quiet period goes out
//! at once; later ones within the window are held and leave together when `max` have gathered
//! or the window ends.
//!
//! Invariant: no message is held longer than one window, and no flush holds more than `max`.

use std::time::{Duration, Instant};

use bytes::Bytes;

/// A wake-up the owner must schedule: call [`Batcher::on_deadline`] with `epoch` at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    pub epoch: u64,
}

#[derive(Debug)]
pub struct Batcher {
    window: Duration,
    max: usize,
    held: Vec<Bytes>,
    open: bool,
    epoch: u64,
}

/// What to send now and what to schedule.
pub type Step = (Option<Vec<Bytes>>, Option<Deadline>);

impl Batcher {
    /// A window of zero or a `max` of 1 or less turns batching off.
    pub fn new(window: Duration, max: usize) -> Self {
        Self {
            window,
            max,
            held: Vec::new(),
            open: false,
            epoch: 0,
        }
    }

    fn enabled(&self) -> bool {
        !self.window.is_zero() && self.max > 1
    }

    fn reopen(&mut self, now: Instant) -> Deadline {
        self.open = true;
        self.epoch += 1;
        Deadline {
            at: now + self.window,
            epoch: self.epoch,
        }
    }

    /// Takes one encoded message.
    pub fn push(&mut self, now: Instant, message: Bytes) -> Step {
        if !self.enabled() {
            return (Some(vec![message]), None);
        }
        if !self.open {
            return (Some(vec![message]), Some(self.reopen(now)));
        }
        self.held.push(message);
        if self.held.len() >= self.max {
            let out = std::mem::take(&mut self.held);
            return (Some(out), Some(self.reopen(now)));
        }
        (None, None)
    }

    /// The window scheduled with `epoch` ended. Stale epochs (the window was restarted) do
    /// nothing. Held messages leave and a new window opens; an empty window goes quiet.
    pub fn on_deadline(&mut self, now: Instant, epoch: u64) -> Step {
        if !self.open || epoch != self.epoch {
            return (None, None);
        }
        if self.held.is_empty() {
            self.open = false;
            return (None, None);
        }
        let out = std::mem::take(&mut self.held);
        (Some(out), Some(self.reopen(now)))
    }

    /// Messages held for the next flush.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Quiet: nothing held and no window open, so the room may be dropped.
    pub fn is_idle(&self) -> bool {
        !self.open && self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u8) -> Bytes {
        Bytes::from(vec![i])
    }

    #[test]
    fn first_message_is_immediate_then_window_collects() {
        let t0 = Instant::now();
        let mut b = Batcher::new(Duration::from_millis(50), 10);
        let (out, d) = b.push(t0, m(0));
        assert_eq!(out, Some(vec![m(0)]));
        let d = d.unwrap();
        assert_eq!(d.at, t0 + Duration::from_millis(50));
        for i in 1..4 {
            assert_eq!(b.push(t0, m(i)), (None, None));
        }
        let (out, d2) = b.on_deadline(d.at, d.epoch);
        assert_eq!(out, Some(vec![m(1), m(2), m(3)]));
        let d2 = d2.unwrap();
        // An empty window ends the burst; the next message is immediate again.
        assert_eq!(b.on_deadline(d2.at, d2.epoch), (None, None));
        assert!(b.is_idle());
        assert!(b.push(d2.at, m(9)).0.is_some());
    }

    #[test]
    fn full_batch_leaves_early_and_restarts_the_window() {
        let t0 = Instant::now();
        let mut b = Batcher::new(Duration::from_millis(50), 3);
        let (_, d1) = b.push(t0, m(0));
        assert_eq!(b.push(t0, m(1)).0, None);
        assert_eq!(b.push(t0, m(2)).0, None);
        let (out, d2) = b.push(t0, m(3));
        assert_eq!(out, Some(vec![m(1), m(2), m(3)]));
        // The first window's wake-up is stale now.
        assert_eq!(b.on_deadline(t0, d1.unwrap().epoch), (None, None));
        assert!(!b.is_idle());
        let d2 = d2.unwrap();
        assert_eq!(b.on_deadline(d2.at, d2.epoch), (None, None));
        assert!(b.is_idle());
    }

    #[test]
    fn disabled_passes_everything_through() {
        let t0 = Instant::now();
        for mut b in [
            Batcher::new(Duration::ZERO, 10),
            Batcher::new(Duration::from_millis(5), 1),
        ] {
            for i in 0..5 {
                assert_eq!(b.push(t0, m(i)), (Some(vec![m(i)]), None));
            }
            assert!(b.is_idle());
        }
    }
}
