//! Users: who a connection speaks for, and the state a user's owner shard keeps for them
//! (presence across devices, notifications), plus per-connection rate limits. State only; no
//! I/O, no glommio.
//!
//! Every user has an owner shard, `owner_shard(user_id)`, exactly like rooms: the one place
//! that knows all of the user's connections, their status and their notifications.

mod directory;
mod notifications;
mod presence;
mod rate_limit;
mod secret;
mod token;
mod user;

pub use directory::{Directory, DirectoryFull, PresenceChange, UserRecord};
pub use notifications::{
    preview, Dropped, NewNotification, Notification, NotificationLimits, Notifications,
};
pub use presence::Status;
pub use rate_limit::{RateLimit, TokenBucket, Verdict};
pub use secret::secrets_equal;
pub use token::{token_expired, verify_token, TokenError, Verified};
pub use user::{
    is_reserved_name, is_username_byte, valid_username, User, GUEST_ID_PREFIX, SYSTEM_USER_ID,
};
