//! An append-only buffer of encoded frames, shared within one shard by the send queues of a
//! room's members: a fan-out copies its frame in once, and each member queues a range of it.
//! Consecutive fan-outs land next to each other, so a member's queue grows by extending one
//! range instead of by one entry per message, and a write sends that range as it is.
//!
//! Invariant: bytes below `len` never change while a range of them may be held; they are
//! reused only through `&mut` (the room's handle being the only one left), and the buffer
//! never moves or grows.

use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;

pub struct FrameChunk {
    ptr: NonNull<u8>,
    capacity: usize,
    len: Cell<usize>,
}

impl FrameChunk {
    pub fn new(capacity: usize) -> Rc<Self> {
        assert!(capacity > 0, "a frame chunk holds at least one byte");
        let mut buffer = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(capacity));
        let capacity = buffer.capacity();
        Rc::new(Self {
            ptr: NonNull::new(buffer.as_mut_ptr()).expect("a Vec's buffer is never null"),
            capacity,
            len: Cell::new(0),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len.get()
    }

    /// Appends `bytes` after everything written so far and returns where they landed, or
    /// `None` when they do not fit. Ranges handed out earlier stay valid and unchanged.
    pub fn append(&self, bytes: &[u8]) -> Option<(usize, usize)> {
        let start = self.len.get();
        let end = start.checked_add(bytes.len())?;
        if end > self.capacity {
            return None;
        }
        // SAFETY: `start..end` lies within the allocation and above `len`, where no slice
        // handed out by `get` reaches; the source is a separate borrow, so no overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(start), bytes.len())
        };
        self.len.set(end);
        Some((start, end))
    }

    /// The written bytes `start..end`.
    pub fn get(&self, start: usize, end: usize) -> &[u8] {
        assert!(
            start <= end && end <= self.len.get(),
            "range {start}..{end} past the {} bytes written",
            self.len.get()
        );
        // SAFETY: the range is within the initialised prefix, which is never written again
        // while `self` is shared (see `reset`).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), end - start) }
    }

    /// Starts over from the first byte. Taking `&mut` proves no queue holds a range.
    pub fn reset(&mut self) {
        self.len.set(0);
    }
}

impl Drop for FrameChunk {
    fn drop(&mut self) {
        // SAFETY: rebuilt from the parts `new` took apart; length 0, as `u8` needs no drop.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.capacity) });
    }
}

impl std::fmt::Debug for FrameChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameChunk")
            .field("len", &self.len.get())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_until_full_and_ranges_stay_put() {
        let chunk = FrameChunk::new(8);
        let cap = chunk.capacity();
        let a = chunk.append(b"abc").unwrap();
        assert_eq!(a, (0, 3));
        let held = chunk.get(a.0, a.1);
        let b = chunk.append(b"de").unwrap();
        assert_eq!(held, b"abc");
        assert_eq!(chunk.get(0, b.1), b"abcde");
        assert!(chunk.append(&vec![b'x'; cap]).is_none());
        assert_eq!(chunk.len(), 5);
    }

    #[test]
    fn reset_only_when_unshared() {
        let mut chunk = FrameChunk::new(4);
        chunk.append(b"ab").unwrap();
        let queued = chunk.clone();
        assert!(Rc::get_mut(&mut chunk).is_none());
        drop(queued);
        Rc::get_mut(&mut chunk).unwrap().reset();
        assert_eq!(chunk.append(b"cd"), Some((0, 2)));
        assert_eq!(chunk.get(0, 2), b"cd");
    }

    #[test]
    #[should_panic(expected = "past the")]
    fn unwritten_bytes_are_not_lent() {
        let chunk = FrameChunk::new(16);
        chunk.append(b"ab").unwrap();
        chunk.get(0, 3);
    }
}
