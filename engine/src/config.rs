//! Server settings with their defaults; the binary fills them from the CLI, environment
//! variables and a TOML file, tests build them directly.
//!
//! Invariant: a [`Config`] that passed [`Config::validate`] starts a server whose every limit
//! is non-zero where zero would mean "unbounded".

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::identity::RateLimit;
use crate::limits::*;
use crate::protocol::handshake::valid_protocol_name;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Shards (executor threads); 0 means one per available CPU.
    pub shards: usize,
    /// Pin each shard to its own CPU (shard i on CPU i modulo the CPU count).
    pub pin: bool,
    /// Largest client message in bytes (larger ones close with 1009).
    pub max_message_bytes: usize,
    /// Bytes queued per connection before it is closed as a slow consumer (1008).
    pub send_queue_bytes: usize,
    /// Batching window in milliseconds; 0 turns batching off.
    pub batch_window_ms: u64,
    /// Most messages in one batch; 0 or 1 turns batching off.
    pub batch_max: usize,
    /// Cursors of a document go out at most this often, in milliseconds, as one frame per
    /// interval with every cursor that moved; 0 sends each move at once.
    pub cursor_interval_ms: u64,
    /// Least time between two writes to one connection, in milliseconds; 0 writes as soon as
    /// the previous write is done. Under sustained fan-out each write then carries more.
    pub write_interval_ms: u64,
    /// Time a client has to send its upgrade request, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Idle time before a ping, in milliseconds; silent for two intervals closes. 0: never.
    pub ping_interval_ms: u64,
    /// Messages kept per room for `room:joined` and `message:history`.
    pub history_messages: usize,
    /// Largest `content` of a chat or direct message, in bytes of JSON.
    pub max_content_bytes: usize,
    /// An owned room with no members is forgotten (with its history) after this long, in
    /// seconds.
    pub room_ttl_secs: u64,
    /// Whether guests (connections not logged in) may `room:create`.
    pub guests_create_rooms: bool,
    /// Bytes of history one room keeps (oldest dropped first).
    pub history_bytes_per_room: usize,
    /// Bytes of history a shard's rooms keep together (the quietest rooms' oldest dropped
    /// first).
    pub history_bytes_per_shard: usize,
    /// Messages a connection may send: `game` (240 per 2 s), `chat` (30 per minute), `off`,
    /// or `N/Ts` / `N/Tms`.
    pub rate_limit: String,
    /// Request budget of a connection in cost units (every message type has a cost): `N/Ts`,
    /// `N/Tms` or `off`.
    pub request_rate: String,
    /// Request budget of a user over all their devices on a shard.
    pub user_request_rate: String,
    /// Request budget of a source address over all its connections on a shard; `off` for
    /// load tests from one host and servers behind a proxy.
    pub ip_request_rate: String,
    /// HS256 secret for JWT tokens (`?token=` or `Authorization: Bearer`). When set,
    /// `auth:login` is disabled and bad tokens get 401.
    pub auth_secret: Option<String>,
    /// Whether connections without a user may connect (with a secret) and send (without).
    pub allow_anonymous: bool,
    /// Key for `POST /api/notify` and `/api/publish` (`Authorization: Bearer KEY` or
    /// `X-Api-Key`); without one the API is off (404).
    pub api_key: Option<String>,
    /// A user whose every device was idle this long goes `away`, in milliseconds.
    pub away_after_ms: u64,
    /// Frames (of every kind) a connection may send per second, with a second's worth as a
    /// burst; more closes it with 1008.
    pub max_frames_per_sec: u32,
    /// Time a client has to complete a frame or a fragmented message it started, in
    /// milliseconds; past it the connection is closed with 1008.
    pub message_timeout_ms: u64,
    /// Bytes a shard holds for incomplete frames and messages over all its connections; a
    /// connection that would grow it past this is closed with 1013.
    pub incomplete_bytes_per_shard: usize,
    /// WebSocket connections the server holds at once, over all shards; more are answered
    /// 503 before the upgrade. 0: the descriptor limit (`RLIMIT_NOFILE`) minus a reserve.
    pub max_connections: usize,
    /// Clock skew allowed when checking a token's `exp`, `nbf` and `iat`, in seconds; a
    /// connection is closed (4001) once its token's `exp` plus this has passed.
    pub jwt_leeway_secs: u64,
    /// An offline user's record (and notifications) is forgotten this long after their last
    /// connection closed (or, never connected, their first notification), in seconds.
    pub user_ttl_secs: u64,
    /// Subprotocols the server speaks, comma-separated; the 101 answers with the first a
    /// client offers that is in this list (none offered, or none known: no header).
    pub subprotocols: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            shards: 0,
            pin: true,
            max_message_bytes: MESSAGE_BYTES_DEFAULT,
            send_queue_bytes: SEND_QUEUE_BYTES_DEFAULT,
            batch_window_ms: BATCH_WINDOW_DEFAULT.as_millis() as u64,
            batch_max: BATCH_MESSAGES_DEFAULT,
            cursor_interval_ms: CURSOR_INTERVAL_DEFAULT.as_millis() as u64,
            write_interval_ms: 0,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_DEFAULT.as_millis() as u64,
            ping_interval_ms: PING_INTERVAL_DEFAULT.as_millis() as u64,
            history_messages: HISTORY_MESSAGES_DEFAULT,
            max_content_bytes: CONTENT_BYTES_DEFAULT,
            room_ttl_secs: ROOM_TTL_DEFAULT.as_secs(),
            guests_create_rooms: false,
            history_bytes_per_room: HISTORY_BYTES_PER_ROOM_DEFAULT,
            history_bytes_per_shard: HISTORY_BYTES_PER_SHARD_DEFAULT,
            rate_limit: "game".into(),
            request_rate: REQUEST_RATE_DEFAULT.into(),
            user_request_rate: USER_REQUEST_RATE_DEFAULT.into(),
            ip_request_rate: IP_REQUEST_RATE_DEFAULT.into(),
            auth_secret: None,
            allow_anonymous: true,
            api_key: None,
            away_after_ms: AWAY_AFTER_DEFAULT.as_millis() as u64,
            max_frames_per_sec: FRAMES_PER_SEC_DEFAULT,
            message_timeout_ms: INCOMPLETE_MESSAGE_TIMEOUT_DEFAULT.as_millis() as u64,
            incomplete_bytes_per_shard: INCOMPLETE_BYTES_PER_SHARD_DEFAULT,
            max_connections: 0,
            jwt_leeway_secs: JWT_LEEWAY_DEFAULT.as_secs(),
            user_ttl_secs: USER_TTL_DEFAULT.as_secs(),
            subprotocols: SUBPROTOCOLS_DEFAULT.into(),
        }
    }
}

impl Config {
    /// Shards to run: `shards`, or the available CPUs when 0.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    pub fn cursor_interval(&self) -> Duration {
        Duration::from_millis(self.cursor_interval_ms)
    }

    pub fn batch_window(&self) -> Duration {
        Duration::from_millis(self.batch_window_ms)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn ping_interval(&self) -> Option<Duration> {
        (self.ping_interval_ms > 0).then(|| Duration::from_millis(self.ping_interval_ms))
    }

    /// The parsed `rate-limit` (None: off). Valid after [`Config::validate`].
    pub fn rate_limit(&self) -> Option<RateLimit> {
        RateLimit::parse(&self.rate_limit).expect("validated")
    }

    pub fn room_ttl(&self) -> Duration {
        Duration::from_secs(self.room_ttl_secs)
    }

    pub fn message_timeout(&self) -> Duration {
        Duration::from_millis(self.message_timeout_ms)
    }

    /// The parsed request budgets. Valid after [`Config::validate`].
    pub fn budgets(&self) -> crate::server::Budgets {
        let parse = |s: &str| RateLimit::parse(s).expect("validated");
        crate::server::Budgets {
            connection: parse(&self.request_rate),
            user: parse(&self.user_request_rate),
            address: parse(&self.ip_request_rate),
        }
    }

    /// WebSocket connections allowed at once: `max-connections`, or by default the soft
    /// `RLIMIT_NOFILE` minus [`FDS_RESERVED`] and [`FDS_RESERVED_PER_SHARD`] per shard (at
    /// least 1), so the server refuses connections before it runs out of descriptors.
    pub fn connection_limit(&self) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        let reserve = FDS_RESERVED + FDS_RESERVED_PER_SHARD * self.shard_count();
        match crate::runtime::descriptor_limit() {
            Some(limit) => usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_sub(reserve)
                .max(1),
            None => CONNECTIONS_DEFAULT_MAX,
        }
    }

    /// The subprotocols of `subprotocols`, in order.
    pub fn subprotocol_list(&self) -> Vec<&str> {
        self.subprotocols
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }

    pub fn away_after(&self) -> Duration {
        Duration::from_millis(self.away_after_ms)
    }

    pub fn validate(&self) -> Result<(), Error> {
        let shards = self.shard_count();
        if shards == 0 || shards > SHARDS_MAX {
            return Err(Error::Shards {
                shards,
                max: SHARDS_MAX,
            });
        }
        if self.max_message_bytes < 64 || self.max_message_bytes > 64 * 1024 * 1024 {
            return setting("max-message-bytes", "must be between 64 and 64 MiB".into());
        }
        let most = [
            (
                "batch-max",
                self.batch_max as u64,
                BATCH_MESSAGES_MAX as u64,
            ),
            ("batch-window-ms", self.batch_window_ms, 10_000),
            ("cursor-interval-ms", self.cursor_interval_ms, 10_000),
            ("write-interval-ms", self.write_interval_ms, 1_000),
            (
                "history-messages",
                self.history_messages as u64,
                HISTORY_MESSAGES_MAX as u64,
            ),
            (
                "jwt-leeway-secs",
                self.jwt_leeway_secs,
                JWT_LEEWAY_MAX.as_secs(),
            ),
        ];
        if let Some((name, _, max)) = most.into_iter().find(|&(_, v, max)| v > max) {
            return setting(name, format!("must be at most {max}"));
        }
        let positive = [
            ("handshake-timeout-ms", self.handshake_timeout_ms),
            ("max-content-bytes", self.max_content_bytes as u64),
            ("away-after-ms", self.away_after_ms),
            ("room-ttl-secs", self.room_ttl_secs),
            ("max-frames-per-sec", u64::from(self.max_frames_per_sec)),
            ("message-timeout-ms", self.message_timeout_ms),
            ("user-ttl-secs", self.user_ttl_secs),
        ];
        if let Some((name, _)) = positive.into_iter().find(|&(_, v)| v == 0) {
            return setting(name, "must be positive".into());
        }
        self.validate_sizes()?;
        self.validate_words()
    }

    /// Budgets that must hold at least what they are budgets of.
    fn validate_sizes(&self) -> Result<(), Error> {
        let at_least = [
            (
                "send-queue-bytes",
                self.send_queue_bytes,
                "max-message-bytes",
                self.max_message_bytes,
            ),
            (
                "incomplete-bytes-per-shard",
                self.incomplete_bytes_per_shard,
                "max-message-bytes",
                self.max_message_bytes,
            ),
            (
                "history-bytes-per-shard",
                self.history_bytes_per_shard,
                "history-bytes-per-room",
                self.history_bytes_per_room,
            ),
        ];
        for (name, value, other, min) in at_least {
            if value < min {
                return setting(name, format!("must be at least {other} ({min})"));
            }
        }
        Ok(())
    }

    /// Settings written as words: rates, secrets, subprotocol names.
    fn validate_words(&self) -> Result<(), Error> {
        for (name, value) in [
            ("rate-limit", &self.rate_limit),
            ("request-rate", &self.request_rate),
            ("user-request-rate", &self.user_request_rate),
            ("ip-request-rate", &self.ip_request_rate),
        ] {
            if let Err(reason) = RateLimit::parse(value) {
                return setting(name, reason);
            }
        }
        if self.auth_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return setting("auth-secret", "must be at least 16 bytes".into());
        }
        if self.api_key.as_ref().is_some_and(|s| s.len() < 16) {
            return setting("api-key", "must be at least 16 bytes".into());
        }
        if let Some(bad) = self
            .subprotocol_list()
            .into_iter()
            .find(|p| !valid_protocol_name(p))
        {
            let reason = format!("`{bad}` is not a valid subprotocol name (an HTTP token)");
            return setting("subprotocols", reason);
        }
        Ok(())
    }
}

/// A refused setting.
fn setting(name: &'static str, reason: String) -> Result<(), Error> {
    Err(Error::Setting { name, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_seed() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.batch_window(), Duration::from_millis(50));
        assert_eq!(c.batch_max, 10);
        assert_eq!(c.addr.port(), 3000);
    }

    #[test]
    fn toml_uses_kebab_case_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("shards = 2\nbatch-window-ms = 0\n").unwrap();
        assert_eq!(c.shards, 2);
        assert_eq!(c.batch_window_ms, 0);
        assert!(toml::from_str::<Config>("nope = 1").is_err());
        let c: Config = toml::from_str(
            "max-connections = 5\njwt-leeway-secs = 0\nuser-ttl-secs = 60\nsubprotocols = \"a,b\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.connection_limit(), 5);
        assert_eq!((c.jwt_leeway_secs, c.user_ttl_secs), (0, 60));
        assert_eq!(c.subprotocol_list(), ["a", "b"]);
    }

    #[test]
    fn the_tuning_profiles_are_valid() {
        for name in ["latency", "throughput"] {
            let path = format!("{}/../tuning/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            let c: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            c.validate().unwrap();
        }
    }

    #[test]
    fn rate_limits_parse_or_are_refused() {
        let c = Config {
            rate_limit: "chat".into(),
            ..Config::default()
        };
        assert_eq!(c.rate_limit(), Some(RateLimit::CHAT));
        let bad = Config {
            rate_limit: "lots".into(),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let short_secret = Config {
            auth_secret: Some("short".into()),
            ..Config::default()
        };
        assert!(short_secret.validate().is_err());
    }

    #[test]
    fn the_connection_limit_stays_below_the_descriptor_limit() {
        let c = Config {
            shards: 2,
            ..Config::default()
        };
        let limit = c.connection_limit();
        if let Some(fds) = crate::runtime::descriptor_limit() {
            let reserve = FDS_RESERVED + 2 * FDS_RESERVED_PER_SHARD;
            assert!(limit as u64 + reserve as u64 <= fds.max(reserve as u64 + 1));
        }
        assert!(limit >= 1);
        let set = Config {
            max_connections: 5,
            ..Config::default()
        };
        assert_eq!(set.connection_limit(), 5);
    }

    #[test]
    fn subprotocols_are_a_list_of_tokens() {
        let c = Config::default();
        assert_eq!(c.subprotocol_list(), ["corecast.v1", "json", "v1"]);
        let none = Config {
            subprotocols: String::new(),
            ..Config::default()
        };
        none.validate().unwrap();
        assert!(none.subprotocol_list().is_empty());
        let bad = Config {
            subprotocols: "v1, a b".into(),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn rejects_unbounded_settings() {
        let c = Config {
            send_queue_bytes: 10,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            shards: 1000,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
