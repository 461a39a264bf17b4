//! A connection's outgoing frames: its own `Bytes` and ranges of rooms' fan-out chunks, in
//! order, bounded in bytes. Nothing is copied per recipient; several entries are copied into
//! one buffer only to leave in one write, and a lone entry is written as it is.
//!
//! Invariants: `bytes` is the exact number of unsent bytes queued; data frames and pongs never
//! push it past `max` (a push that would is refused so the caller can apply the slow-consumer
//! policy); at most one pong waits unsent (a newer ping's pong replaces it, RFC 6455 5.5.3),
//! so a ping flood cannot grow the queue; a latest-wins frame (cursors) replaces the unsent one
//! of its slot, so a reader behind on cursors holds only the newest.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Buf, Bytes};

use super::frame_chunk::FrameChunk;

/// One queued frame (or run of frames) and what of it is still unwritten.
#[derive(Debug)]
enum Queued {
    /// Queued for this connection alone; advanced in place as it is written.
    Own(Bytes),
    /// Fan-out frames in a room's shared chunk: bytes `start..end` are unwritten.
    Chunk {
        chunk: Rc<FrameChunk>,
        start: usize,
        end: usize,
    },
}

impl Queued {
    fn unwritten(&self) -> &[u8] {
        match self {
            Queued::Own(b) => b,
            Queued::Chunk { chunk, start, end } => chunk.get(*start, *end),
        }
    }

    fn len(&self) -> usize {
        self.unwritten().len()
    }

    fn advance(&mut self, n: usize) {
        match self {
            Queued::Own(b) => b.advance(n),
            Queued::Chunk { start, .. } => *start += n,
        }
    }
}

/// Latest-wins slots a queue tracks at once; past it a new slot's frame is queued plainly
/// (still bounded by the queue's bytes), so the record stays small.
pub const LATEST_SLOTS_MAX: usize = 16;

#[derive(Debug)]
pub struct QueueFull {
    pub queued: usize,
    pub max: usize,
}

#[derive(Debug)]
pub struct SendQueue {
    frames: VecDeque<Queued>,
    bytes: usize,
    max: usize,
    /// The front frame was partly written: it must be finished before anything else.
    front_started: bool,
    /// Entries ever removed from the front: `frames[i]` is entry number `popped + i`.
    popped: u64,
    /// Entries ever appended (a range that extends the last entry is not a new one).
    pushed: u64,
    /// Entry number of the pong waiting unsent, if one does.
    pong: Option<u64>,
    /// (slot, entry number) of latest-wins frames that may still be unsent.
    latest: Vec<(u64, u64)>,
}

impl SendQueue {
    pub fn new(max: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            bytes: 0,
            max,
            front_started: false,
            popped: 0,
            pushed: 0,
            pong: None,
            latest: Vec::new(),
        }
    }

    fn push_entry(&mut self, entry: Queued) {
        self.bytes += entry.len();
        self.frames.push_back(entry);
        self.pushed += 1;
    }

    fn pop_entry(&mut self) -> Option<Queued> {
        let entry = self.frames.pop_front()?;
        self.popped += 1;
        if self.pong.is_some_and(|p| p < self.popped) {
            self.pong = None;
        }
        Some(entry)
    }

    /// Queues a pong, counted against the limit like data. A pong still waiting unsent is
    /// replaced in place (only the newest ping needs an answer): true when this happened.
    pub fn push_pong(&mut self, frame: Bytes) -> Result<bool, QueueFull> {
        if let Some(at) = self.pong {
            let index = (at - self.popped) as usize;
            let started = index == 0 && self.front_started;
            if !started {
                let old = std::mem::replace(&mut self.frames[index], Queued::Own(frame));
                self.bytes = self.bytes - old.len() + self.frames[index].len();
                return Ok(true);
            }
        }
        if self.bytes + frame.len() > self.max {
            return Err(QueueFull {
                queued: self.bytes,
                max: self.max,
            });
        }
        self.pong = Some(self.pushed);
        self.push_entry(Queued::Own(frame));
        Ok(false)
    }

    /// Queues a latest-wins frame of `slot`: one of the same slot still unsent (and not
    /// started) is replaced in place, true when this happened; otherwise it is queued like
    /// data, refused past the limit.
    pub fn push_latest(&mut self, slot: u64, frame: Bytes) -> Result<bool, QueueFull> {
        let popped = self.popped;
        self.latest.retain(|&(_, at)| at >= popped);
        if let Some(&(_, at)) = self.latest.iter().find(|(s, _)| *s == slot) {
            let index = (at - self.popped) as usize;
            let grown = self.bytes - self.frames[index].len() + frame.len();
            if !(index == 0 && self.front_started) && grown <= self.max {
                let old = std::mem::replace(&mut self.frames[index], Queued::Own(frame));
                self.bytes = self.bytes - old.len() + self.frames[index].len();
                return Ok(true);
            }
        }
        self.push(frame)?;
        self.latest.retain(|(s, _)| *s != slot);
        if self.latest.len() < LATEST_SLOTS_MAX {
            self.latest.push((slot, self.pushed - 1));
        }
        Ok(false)
    }

    /// Queues a data frame, or refuses it when the queue would exceed its limit.
    pub fn push(&mut self, frame: Bytes) -> Result<(), QueueFull> {
        if self.bytes + frame.len() > self.max {
            return Err(QueueFull {
                queued: self.bytes,
                max: self.max,
            });
        }
        self.push_entry(Queued::Own(frame));
        Ok(())
    }

    /// Queues bytes `start..end` of a room's chunk (one or more fan-out frames), or refuses
    /// them when the queue would exceed its limit. Bytes right after the last queued range
    /// of the same chunk extend that range.
    pub fn push_chunk(
        &mut self,
        chunk: &Rc<FrameChunk>,
        start: usize,
        end: usize,
    ) -> Result<(), QueueFull> {
        let len = end - start;
        if self.bytes + len > self.max {
            return Err(QueueFull {
                queued: self.bytes,
                max: self.max,
            });
        }
        if let Some(Queued::Chunk {
            chunk: last,
            end: last_end,
            ..
        }) = self.frames.back_mut()
        {
            if *last_end == start && Rc::ptr_eq(last, chunk) {
                *last_end = end;
                self.bytes += len;
                return Ok(());
            }
        }
        self.push_entry(Queued::Chunk {
            chunk: chunk.clone(),
            start,
            end,
        });
        Ok(())
    }

    /// Queues a frame of the server's own (its ping, its close): at most 127 bytes, allowed
    /// past the limit so a close can always be sent. The server sends at most one ping per
    /// interval and one close, so these cannot pile up; pongs go through [`Self::push_pong`].
    pub fn push_control(&mut self, frame: Bytes) {
        self.push_entry(Queued::Own(frame));
    }

    /// Drops everything queued except the rest of a partly written entry, so the stream stays
    /// well-formed for a close frame (a connection being cut off). An entry is one frame, or a
    /// run of whole fan-out frames in one chunk; all of that run is kept.
    pub fn clear(&mut self) {
        let keep = if self.front_started {
            self.frames.pop_front()
        } else {
            None
        };
        self.frames = VecDeque::new();
        self.bytes = 0;
        self.pong = None;
        if let Some(rest) = keep {
            self.bytes = rest.len();
            self.frames.push_back(rest);
        }
        // Renumber: what is left are the last entries appended.
        self.popped = self.pushed - self.frames.len() as u64;
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The next bytes to write, at most `max` (more only if the first frame alone is larger
    /// than `max`, then just its first `max` bytes). One frame is lent as is; several are
    /// copied into `scratch`, so a write carries everything queued.
    pub fn gather<'a>(&'a self, scratch: &'a mut Vec<u8>, max: usize) -> &'a [u8] {
        let Some(first) = self.frames.front() else {
            return &[];
        };
        let first = first.unwritten();
        if self.frames.len() == 1 || first.len() >= max {
            return &first[..first.len().min(max)];
        }
        scratch.clear();
        for f in &self.frames {
            let room = max - scratch.len();
            if room == 0 {
                break;
            }
            let f = f.unwritten();
            scratch.extend_from_slice(&f[..f.len().min(room)]);
        }
        scratch
    }

    /// Marks `n` bytes from the front as written.
    pub fn consume(&mut self, mut n: usize) {
        assert!(n <= self.bytes, "consumed more than was queued");
        self.bytes -= n;
        while n > 0 {
            let front = self.frames.front_mut().expect("bytes counted but no frame");
            if front.len() <= n {
                n -= front.len();
                self.pop_entry();
                self.front_started = false;
            } else {
                front.advance(n);
                self.front_started = true;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ranges_extend_and_are_written_like_own_frames() {
        let mut q = SendQueue::new(12);
        let mut scratch = Vec::new();
        let chunk = FrameChunk::new(64);
        q.push(Bytes::from_static(b"own")).unwrap();
        let (s, e) = chunk.append(b"sha").unwrap();
        q.push_chunk(&chunk, s, e).unwrap();
        let (s, e) = chunk.append(b"red").unwrap();
        q.push_chunk(&chunk, s, e).unwrap();
        assert_eq!(
            Rc::strong_count(&chunk),
            2,
            "the second range extends the first"
        );
        let (s, e) = chunk.append(b"!!!!").unwrap();
        let err = q.push_chunk(&chunk, s, e).unwrap_err();
        assert_eq!((err.queued, err.max), (9, 12));
        assert_eq!(q.gather(&mut scratch, 64), b"ownshared");
        q.consume(5);
        assert_eq!(q.gather(&mut scratch, 64), b"ared");
        // A range that does not follow the last one is a new entry.
        let (s, e) = chunk.append(b"x").unwrap();
        q.push_chunk(&chunk, s, e).unwrap();
        assert_eq!(Rc::strong_count(&chunk), 3);
        assert_eq!(q.gather(&mut scratch, 64), b"aredx");
        // Cutting off keeps the rest of a range already partly on the wire.
        q.consume(1);
        q.clear();
        assert_eq!(q.gather(&mut scratch, 64), b"red");
        q.consume(3);
        assert!(q.is_empty());
        assert_eq!(Rc::strong_count(&chunk), 1);
    }

    #[test]
    fn bounded_but_control_frames_pass() {
        let mut q = SendQueue::new(10);
        q.push(Bytes::from_static(b"12345678")).unwrap();
        let err = q.push(Bytes::from_static(b"abc")).unwrap_err();
        assert_eq!((err.queued, err.max), (8, 10));
        q.push_control(Bytes::from_static(b"close"));
        assert_eq!(q.bytes(), 13);
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_latest_wins_frame_replaces_its_unsent_slot_only() {
        let mut q = SendQueue::new(64);
        let mut scratch = Vec::new();
        assert!(!q.push_latest(7, Bytes::from_static(b"c1")).unwrap());
        q.push(Bytes::from_static(b"op")).unwrap();
        assert!(q.push_latest(7, Bytes::from_static(b"c2")).unwrap());
        assert!(!q.push_latest(8, Bytes::from_static(b"x1")).unwrap());
        assert_eq!(q.bytes(), 6);
        assert_eq!(
            q.gather(&mut scratch, 64),
            b"c2opx1",
            "replaced in its place"
        );
        // Started: finished as it is; the next of its slot queues behind.
        q.consume(1);
        assert!(!q.push_latest(7, Bytes::from_static(b"c3")).unwrap());
        q.consume(5);
        assert!(q.push_latest(7, Bytes::from_static(b"c4")).unwrap());
        assert_eq!(q.gather(&mut scratch, 64), b"c4");
        q.consume(2);
        // Sent: a new one is queued again, and the limit holds.
        assert!(!q.push_latest(7, Bytes::from(vec![b'z'; 64])).unwrap());
        assert!(q.push_latest(9, Bytes::from_static(b"y")).is_err());
        for slot in 100..100 + 2 * LATEST_SLOTS_MAX as u64 {
            q.consume(q.bytes());
            let _ = q.push_latest(slot, Bytes::from_static(b"s"));
        }
        assert!(q.latest.len() <= LATEST_SLOTS_MAX);
    }

    #[test]
    fn a_waiting_pong_is_replaced_and_pongs_count_against_the_limit() {
        let mut q = SendQueue::new(20);
        let mut scratch = Vec::new();
        q.push(Bytes::from_static(b"data")).unwrap();
        assert!(!q.push_pong(Bytes::from_static(b"p1")).unwrap());
        for _ in 0..1000 {
            assert!(q.push_pong(Bytes::from_static(b"p2")).unwrap());
        }
        assert_eq!(q.bytes(), 6);
        q.push(Bytes::from_static(b"more")).unwrap();
        assert_eq!(q.gather(&mut scratch, 64), b"datap2more");
        // A pong partly written is finished as it is; the next one queues behind it.
        q.consume(5);
        assert!(!q.push_pong(Bytes::from_static(b"p3")).unwrap());
        assert!(q.push_pong(Bytes::from_static(b"p4")).unwrap());
        assert_eq!(q.gather(&mut scratch, 64), b"2morep4");
        q.consume(7);
        assert!(q.is_empty());
        // Written pongs are gone: the next one is new, and a full queue refuses it.
        q.push(Bytes::from(vec![b'x'; 19])).unwrap();
        let err = q.push_pong(Bytes::from_static(b"p5")).unwrap_err();
        assert_eq!((err.queued, err.max), (19, 20));
        q.clear();
        assert!(!q.push_pong(Bytes::from_static(b"p6")).unwrap());
    }

    #[test]
    fn gather_coalesces_and_consume_handles_partial_writes() {
        let mut q = SendQueue::new(1000);
        let mut scratch = Vec::new();
        q.push(Bytes::from_static(b"aaa")).unwrap();
        assert_eq!(q.gather(&mut scratch, 64), b"aaa");
        q.push(Bytes::from_static(b"bbbb")).unwrap();
        q.push(Bytes::from_static(b"cc")).unwrap();
        assert_eq!(q.gather(&mut scratch, 64), b"aaabbbbcc");
        assert_eq!(q.gather(&mut scratch, 5), b"aaabb");
        q.consume(5);
        assert_eq!(q.bytes(), 4);
        assert_eq!(q.gather(&mut scratch, 64), b"bbcc");
        q.consume(4);
        assert!(q.is_empty());
        // Cutting off keeps the rest of a frame already partly on the wire.
        q.push(Bytes::from_static(b"part")).unwrap();
        q.push(Bytes::from_static(b"next")).unwrap();
        q.consume(2);
        q.clear();
        assert_eq!(q.gather(&mut scratch, 64), b"rt");
        q.consume(2);
        q.push(Bytes::from_static(b"z")).unwrap();
        q.clear();
        assert!(q.is_empty());
        q.push(Bytes::from(vec![b'x'; 100])).unwrap();
        q.push(Bytes::from_static(b"y")).unwrap();
        assert_eq!(q.gather(&mut scratch, 10).len(), 10);
    }
}
