//! A document on its owner with the connections editing it.
//!
//! Invariant: `editors` holds exactly the connections the core counts as members of the
//! document's topic (added on an accepted join, removed when the member's last join goes).

use std::collections::HashMap;
use std::sync::Arc;

use super::cursor::Cursor;
use super::document::Document;
use crate::identity::User;

pub struct SharedDoc {
    /// The serial of the topic this state belongs to (a topic made again is a new document).
    pub serial: u64,
    pub doc: Document,
    /// Connection id -> who it speaks for, in no order.
    pub editors: HashMap<u64, Arc<User>>,
    /// Connection id -> its cursor (only members'; one each).
    pub cursors: HashMap<u64, Cursor>,
    /// Cursors moved since the last `cursor:update`.
    pub moved: std::collections::HashSet<u64>,
    /// A cursor timer is set for this document.
    pub cursor_timer: bool,
}

impl SharedDoc {
    pub fn new(serial: u64, max_bytes: usize) -> SharedDoc {
        SharedDoc {
            serial,
            doc: Document::with_max(max_bytes),
            editors: HashMap::new(),
            cursors: HashMap::new(),
            moved: std::collections::HashSet::new(),
            cursor_timer: false,
        }
    }
}
