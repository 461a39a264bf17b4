//! Who is typing in a room, each entry expiring unless refreshed.
//!
//! Invariant: a user appears at most once; entries past their deadline are removed by
//! [`Typing::expire`] and never reported after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::identity::User;

#[derive(Debug, Default)]
pub struct Typing {
    users: Vec<(Arc<User>, Instant)>,
}

impl Typing {
    /// `user` is typing until `now + ttl`; true when they were not typing before.
    pub fn start(&mut self, user: &Arc<User>, now: Instant, ttl: Duration) -> bool {
        match self.users.iter_mut().find(|(u, _)| u.id == user.id) {
            Some(entry) => {
                entry.1 = now + ttl;
                false
            }
            None => {
                self.users.push((user.clone(), now + ttl));
                true
            }
        }
    }

    /// True when `user_id` was typing.
    pub fn stop(&mut self, user_id: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|(u, _)| &*u.id != user_id);
        self.users.len() != before
    }

    /// Drops expired entries; true when any was dropped.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.users.len();
        self.users.retain(|(_, until)| *until > now);
        self.users.len() != before
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// When the first entry expires, if anyone is typing.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.users.iter().map(|&(_, until)| until).min()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Typing users, earliest first.
    pub fn users(&self) -> impl Iterator<Item = &Arc<User>> {
        self.users.iter().map(|(u, _)| u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_refresh_stop_expire() {
        let mut t = Typing::default();
        let a = User::new("a", "a");
        let b = User::new("b", "b");
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        assert!(t.start(&a, t0, ttl));
        assert!(t.start(&b, t0 + Duration::from_secs(1), ttl));
        assert!(!t.start(&a, t0 + Duration::from_secs(2), ttl));
        assert!(t.expire(t0 + Duration::from_secs(4) + Duration::from_millis(1)));
        assert_eq!(t.users().map(|u| &*u.id).collect::<Vec<_>>(), ["a"]);
        assert!(t.stop("a"));
        assert!(!t.stop("a"));
        assert!(t.is_empty());
    }
}
