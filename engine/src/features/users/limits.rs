//! The users feature's limits: notifications kept and accepted, and the directory's upkeep.

/// Notifications kept per user; the oldest go first.
pub const NOTIFICATIONS_PER_USER_MAX: usize = 200;

/// Notifications kept per user from any one sender (direct messages, mentions); a newer one
/// replaces that sender's oldest, so one sender's flood cannot push out the others' (200
/// DMs evicted an offline user's real notifications). The backend's are not limited.
pub const NOTIFICATIONS_PER_SENDER_MAX: usize = 20;

/// Ids one `notification:read` may carry.
pub const NOTIFICATION_IDS_MAX: usize = 1000;

/// Characters of a message quoted in a notification's body.
pub const NOTIFICATION_BODY_CHARS_MAX: usize = 140;

/// Longest notification title or body accepted from `POST /api/notify`, in bytes.
pub const NOTIFICATION_TEXT_BYTES_MAX: usize = 1024;

/// Offline users one housekeeping tick forgets at most, so a mass expiry (a day after a
/// burst of connections) is spread over ticks instead of stalling the shard.
pub const USERS_EXPIRED_PER_TICK_MAX: usize = 10_000;
