//! Identity: who a connection speaks for (a user or a guest), how a token proves it, and the
//! token buckets that budget what a connection sends. State only; no I/O, no glommio.
//!
//! Invariant: a [`User`] is immutable once made and shared by `Arc`: every shard and feature
//! that names a user holds the same id and name.

mod rate_limit;
mod secret;
mod token;
mod user;

pub use rate_limit::{RateLimit, TokenBucket, Verdict};
pub use secret::secrets_equal;
pub use token::{token_expired, verify_token, TokenError, Verified};
pub use user::{
    is_reserved_name, is_username_byte, valid_username, User, GUEST_ID_PREFIX, SYSTEM_USER_ID,
};
