//! A shard's inbox: a bounded lock-free queue that other shards push into, with a doorbell.
//!
//! Invariant: a pushed message is never lost and is seen by the owning shard after the next
//! [`Inbox::ring`]; the owner never blocks its thread and uses no CPU while the inbox is empty
//! (consumer: pop, register waker, pop again; producer: push, then wake).

use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

pub struct Inbox<T> {
    queue: ArrayQueue<T>,
    doorbell: AtomicWaker,
}

impl<T> Inbox<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: ArrayQueue::new(capacity),
            doorbell: AtomicWaker::new(),
        }
    }

    /// Pushes without waking the owner; returns the message when the inbox is full.
    pub fn push(&self, msg: T) -> Result<(), T> {
        self.queue.push(msg)
    }

    /// Wakes the owner. Producers ring once after a burst of pushes.
    pub fn ring(&self) {
        self.doorbell.wake();
    }

    /// Owner side: the next message, or `Pending` with the doorbell armed.
    pub fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(m) = self.queue.pop() {
            return Poll::Ready(m);
        }
        self.doorbell.register(cx.waker());
        match self.queue.pop() {
            Some(m) => Poll::Ready(m),
            None => Poll::Pending,
        }
    }

    /// Owner side: the next message if one is there.
    pub fn try_pop(&self) -> Option<T> {
        self.queue.pop()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn full_inbox_hands_the_message_back() {
        let inbox = Inbox::new(2);
        assert!(inbox.push(1).is_ok());
        assert!(inbox.push(2).is_ok());
        assert_eq!(inbox.push(3), Err(3));
        assert_eq!(inbox.try_pop(), Some(1));
    }

    #[test]
    fn wakes_across_threads_and_keeps_order() {
        let inbox = Arc::new(Inbox::new(1024));
        let producer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                for i in 0..100_000u32 {
                    let mut m = i;
                    while let Err(back) = inbox.push(m) {
                        m = back;
                        std::thread::yield_now();
                    }
                    inbox.ring();
                }
            })
        };
        let mut next = 0u32;
        futures_lite::future::block_on(std::future::poll_fn(|cx| {
            while let Poll::Ready(m) = inbox.poll_pop(cx) {
                assert_eq!(m, next);
                next += 1;
                if next == 100_000 {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        }));
        producer.join().unwrap();
    }
}
