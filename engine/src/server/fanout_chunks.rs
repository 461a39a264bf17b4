//! Each room's current [`FrameChunk`] on this shard: where its fan-outs copy their frames.
//!
//! Invariant: a chunk is started over only when no queue holds a range of it, and dropped
//! (by `release_unused`) only then and when its room sent nothing since the previous call; a
//! room's chunks grow by doubling up to [`FANOUT_CHUNK_BYTES_MAX`], so quiet rooms hold
//! little and busy ones allocate rarely.

use std::rc::Rc;

use bytes::Bytes;

use super::frame_chunk::FrameChunk;
use crate::limits::{FANOUT_CHUNK_BYTES_MAX, FANOUT_CHUNK_BYTES_MIN, FANOUT_FRAME_BYTES_MAX};

#[derive(Debug, Default)]
pub struct FanoutChunks {
    /// By room key: the room's current chunk, and whether a frame went into it since the
    /// last `release_unused`.
    chunks: Vec<Option<(Rc<FrameChunk>, bool)>>,
}

impl FanoutChunks {
    /// Copies `frame` into room `rk`'s chunk: the chunk and the frame's range in it, or
    /// `None` for a frame over [`FANOUT_FRAME_BYTES_MAX`], which is queued by itself.
    pub fn place(&mut self, rk: usize, frame: &Bytes) -> Option<(Rc<FrameChunk>, usize, usize)> {
        if frame.len() > FANOUT_FRAME_BYTES_MAX {
            return None;
        }
        if rk >= self.chunks.len() {
            self.chunks.resize_with(rk + 1, || None);
        }
        let slot = &mut self.chunks[rk];
        if let Some((chunk, used)) = slot {
            *used = true;
            if let Some(unshared) = Rc::get_mut(chunk) {
                // Every member wrote what it held: start over in memory that is still warm.
                unshared.reset();
            }
            if let Some((start, end)) = chunk.append(frame) {
                return Some((chunk.clone(), start, end));
            }
        }
        let capacity = slot
            .as_ref()
            .map_or(FANOUT_CHUNK_BYTES_MIN, |(c, _)| c.capacity() * 2)
            .clamp(FANOUT_CHUNK_BYTES_MIN, FANOUT_CHUNK_BYTES_MAX)
            .max(frame.len().next_power_of_two());
        let chunk = FrameChunk::new(capacity);
        let (start, end) = chunk
            .append(frame)
            .expect("a fresh chunk holds any frame up to FANOUT_FRAME_BYTES_MAX");
        *slot = Some((chunk.clone(), true));
        Some((chunk, start, end))
    }

    /// Drops the chunks of rooms that sent nothing since the last call and that no queue
    /// holds a range of (housekeeping): a room that went quiet keeps no memory and starts
    /// again from a small chunk, and a busy one keeps its warm chunk.
    pub fn release_unused(&mut self) {
        for slot in &mut self.chunks {
            match slot {
                Some((chunk, false)) if Rc::strong_count(chunk) == 1 => *slot = None,
                Some((_, used)) => *used = false,
                None => {}
            }
        }
        while self.chunks.last().is_some_and(Option::is_none) {
            self.chunks.pop();
        }
    }

    /// Bytes of chunk memory held, for tests.
    #[cfg(test)]
    pub fn capacity_bytes(&self) -> usize {
        self.chunks
            .iter()
            .flatten()
            .map(|(c, _)| c.capacity())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_a_room_land_side_by_side() {
        let mut t = FanoutChunks::default();
        let (c1, s1, e1) = t.place(3, &Bytes::from_static(b"one")).unwrap();
        let (c2, s2, e2) = t.place(3, &Bytes::from_static(b"two")).unwrap();
        assert!(Rc::ptr_eq(&c1, &c2));
        assert_eq!((s1, e1, s2, e2), (0, 3, 3, 6));
        assert_eq!(c2.get(s1, e2), b"onetwo");
        let (other, s, _) = t.place(0, &Bytes::from_static(b"x")).unwrap();
        assert!(!Rc::ptr_eq(&c1, &other));
        assert_eq!(s, 0);
    }

    #[test]
    fn a_chunk_no_queue_holds_is_reused_then_released() {
        let mut t = FanoutChunks::default();
        let (c, _, _) = t.place(0, &Bytes::from_static(b"abc")).unwrap();
        drop(c);
        let (c, start, _) = t.place(0, &Bytes::from_static(b"def")).unwrap();
        assert_eq!(start, 0, "started over");
        drop(c);
        t.release_unused();
        assert_eq!(
            t.capacity_bytes(),
            FANOUT_CHUNK_BYTES_MIN,
            "the room sent meanwhile"
        );
        let (c, _, _) = t.place(0, &Bytes::from_static(b"ghi")).unwrap();
        t.release_unused();
        t.release_unused();
        assert_eq!(
            t.capacity_bytes(),
            FANOUT_CHUNK_BYTES_MIN,
            "still held by a queue"
        );
        drop(c);
        t.release_unused();
        assert_eq!(t.capacity_bytes(), 0, "quiet and unheld");
    }

    #[test]
    fn chunks_double_while_held_and_big_frames_go_alone() {
        let mut t = FanoutChunks::default();
        let frame = Bytes::from(vec![b'x'; FANOUT_CHUNK_BYTES_MIN / 2 + 1]);
        let mut held = Vec::new();
        let mut capacities = Vec::new();
        for _ in 0..64 {
            let (c, _, _) = t.place(0, &frame).unwrap();
            if capacities.last() != Some(&c.capacity()) {
                capacities.push(c.capacity());
            }
            held.push(c);
        }
        assert_eq!(capacities.first(), Some(&FANOUT_CHUNK_BYTES_MIN));
        assert_eq!(capacities.last(), Some(&FANOUT_CHUNK_BYTES_MAX));
        assert!(capacities.windows(2).all(|w| w[1] == 2 * w[0]));
        let big = Bytes::from(vec![b'y'; FANOUT_FRAME_BYTES_MAX + 1]);
        assert!(t.place(0, &big).is_none());
    }

    #[test]
    fn a_frame_larger_than_the_next_chunk_gets_a_chunk_that_holds_it() {
        let mut t = FanoutChunks::default();
        // A quiet room's first frame, bigger than the first chunk size.
        let first = Bytes::from(vec![b'a'; FANOUT_CHUNK_BYTES_MIN * 2 + 1]);
        let (c1, s, e) = t.place(0, &first).unwrap();
        assert_eq!(c1.get(s, e), &first[..]);
        // Held, so the next chunk doubles, and a frame bigger than double still fits.
        let next = Bytes::from(vec![b'b'; FANOUT_FRAME_BYTES_MAX]);
        let (c2, s, e) = t.place(0, &next).unwrap();
        assert!(!Rc::ptr_eq(&c1, &c2));
        assert_eq!(c2.get(s, e), &next[..]);
    }
}
