//! A user's identity as connections carry it: id, display name, and their JSON form.
//!
//! Invariant: `json` is always `{"userId":id,"username":name}`, valid JSON, encoded once.

use std::sync::Arc;

use crate::limits::USERNAME_BYTES_MAX;
use crate::protocol::json::push_str;

#[derive(Debug, PartialEq, Eq)]
pub struct User {
    pub id: Box<str>,
    pub name: Box<str>,
    json: Box<[u8]>,
}

impl User {
    pub fn new(id: &str, name: &str) -> Arc<User> {
        let mut json = Vec::with_capacity(28 + id.len() + name.len());
        json.extend_from_slice(b"{\"userId\":");
        push_str(&mut json, id);
        json.extend_from_slice(b",\"username\":");
        push_str(&mut json, name);
        json.push(b'}');
        Arc::new(User {
            id: id.into(),
            name: name.into(),
            json: json.into_boxed_slice(),
        })
    }

    /// A connection that did not authenticate: `guest:{connectionId}`, named `guest-{id}`.
    pub fn guest(connection_id: u64) -> Arc<User> {
        User::new(
            &format!("{GUEST_ID_PREFIX}{connection_id}"),
            &format!("guest-{connection_id}"),
        )
    }

    /// A guest (see [`User::guest`]): reserved ids make this the guests and only them.
    pub fn is_guest(&self) -> bool {
        self.id.starts_with(GUEST_ID_PREFIX)
    }

    /// `{"userId":...,"username":...}`.
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

/// A username: 1 to [`USERNAME_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_`, `.`.
/// (`@name` mentions rely on the same alphabet.)
pub fn valid_username(name: &str) -> bool {
    !name.is_empty() && name.len() <= USERNAME_BYTES_MAX && name.bytes().all(is_username_byte)
}

/// The name of the backend's own user (`POST /api/publish` messages come from it).
pub const SYSTEM_USER_ID: &str = "system";

/// The prefix of guests' user ids (`guest:{connectionId}`).
pub const GUEST_ID_PREFIX: &str = "guest:";

/// Whether `name` (a login, a token's `sub` or `name`) is reserved: `system` in any case,
/// which the server speaks as, and ids of the guest form, so nobody can pass for either.
pub fn is_reserved_name(name: &str) -> bool {
    name.eq_ignore_ascii_case(SYSTEM_USER_ID)
        || name
            .get(..GUEST_ID_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(GUEST_ID_PREFIX))
}

/// A byte of a username (and of an `@mention`).
pub fn is_username_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form() {
        let u = User::new("u\"1", "Alice");
        let v: serde_json::Value = serde_json::from_slice(u.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"userId": "u\"1", "username": "Alice"})
        );
        assert_eq!(&*User::guest(7).id, "guest:7");
    }

    #[test]
    fn usernames() {
        assert!(valid_username("alice_1.b-c"));
        assert!(!valid_username(""));
        assert!(!valid_username("a b"));
        assert!(!valid_username(&"a".repeat(USERNAME_BYTES_MAX + 1)));
    }

    #[test]
    fn reserved_names() {
        for n in ["system", "System", "SYSTEM", "guest:1", "Guest:x"] {
            assert!(is_reserved_name(n), "{n}");
        }
        for n in ["systems", "sys", "guest", "guest-1", "alice"] {
            assert!(!is_reserved_name(n), "{n}");
        }
        assert!(User::guest(3).is_guest());
        assert!(!User::new("alice", "alice").is_guest());
    }
}
