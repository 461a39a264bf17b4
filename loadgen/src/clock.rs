//! The run's clock: nanoseconds since one process-wide base, comparable across cores.
//!
//! Invariant: every timestamp in a marker and every latency uses this base.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the base.
pub fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// The duration until `at_ns`, zero if it passed.
pub fn until(at_ns: u64) -> Duration {
    Duration::from_nanos(at_ns.saturating_sub(now_ns()))
}

/// Initializes the base (call once before starting cores).
pub fn init() {
    let _ = base();
}
