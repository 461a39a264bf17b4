//! Streams: what a topic's owner keeps to publish into it, message ids, the history kept for
//! late joiners and the batcher that groups messages into frames. State only; no I/O.
//!
//! Invariant: ids of one stream increase by one per published message, and its history holds
//! a suffix of them within its count and byte limits.

mod batcher;
pub mod history;

pub use batcher::{Batcher, Deadline, Step};
pub use history::History;
