//! A deterministic multi-shard harness for tests: N shard cores in one thread, with no
//! sockets and no tasks. The test delivers cross-shard messages by hand (so it chooses the
//! interleaving), moves the clock, and reads what each connection's send queue holds.
//!
//! Invariant: nothing happens unless the test calls for it: a client message, the delivery
//! of one inbox message, or a clock step (which fires what came due).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::admission::Admission;
use super::context::Now;
use super::shard::Shard;
use super::shard_msg::{ConnRef, ShardMsg};
use crate::config::Config;
use crate::identity::User;
use crate::protocol::close;
use crate::runtime::{shard_of, Inbox};
use crate::stats::ShardStats;

/// Inbox slots per shard in the harness (the server's 65,536 would only cost memory here).
const HARNESS_INBOX_MESSAGES_MAX: usize = 4096;

pub struct Harness {
    pub shards: Vec<Shard>,
    peers: Arc<Vec<Inbox<ShardMsg>>>,
    admission: Arc<Admission>,
    now: Now,
}

/// A configuration for harness tests: every request budget off, the rest the defaults.
pub fn test_config() -> Config {
    Config {
        rate_limit: "off".into(),
        request_rate: "off".into(),
        user_request_rate: "off".into(),
        ip_request_rate: "off".into(),
        ..Config::default()
    }
}

impl Harness {
    pub fn new(shards: usize) -> Self {
        Self::with_config(shards, test_config())
    }

    pub fn with_config(shards: usize, mut config: Config) -> Self {
        config.shards = shards;
        let config = Arc::new(config);
        let peers: Arc<Vec<Inbox<ShardMsg>>> = Arc::new(
            (0..shards)
                .map(|_| Inbox::new(HARNESS_INBOX_MESSAGES_MAX))
                .collect(),
        );
        let stats: Arc<Vec<Arc<ShardStats>>> =
            Arc::new((0..shards).map(|_| Arc::default()).collect());
        let admission = Arc::new(Admission::new(usize::MAX));
        let made = (0..shards)
            .map(|id| {
                Shard::new(
                    id,
                    config.clone(),
                    peers.clone(),
                    stats.clone(),
                    admission.clone(),
                )
            })
            .collect();
        Self {
            shards: made,
            peers,
            admission,
            now: Now {
                mono: Instant::now(),
                unix_ms: 1_700_000_000_000,
            },
        }
    }

    pub fn now(&self) -> Now {
        self.now
    }

    /// A guest connection on `shard` (its `connection:established` is in its queue).
    pub fn connect(&mut self, shard: usize) -> ConnRef {
        self.open(shard, None)
    }

    /// A connection on `shard` of `user`, as if it came with a token.
    pub fn connect_user(&mut self, shard: usize, user: &str) -> ConnRef {
        self.open(shard, Some(User::new(user, user)))
    }

    /// A connection of `user` (None: a guest) on `shard`, as if its URL named topic `home`.
    pub fn connect_home(&mut self, shard: usize, user: Option<&str>, home: &str) -> ConnRef {
        let user = user.map(|u| User::new(u, u));
        self.open_at(shard, user, Some(home.into()))
    }

    fn open(&mut self, shard: usize, user: Option<Arc<User>>) -> ConnRef {
        self.open_at(shard, user, None)
    }

    fn open_at(
        &mut self,
        shard: usize,
        user: Option<Arc<User>>,
        home: Option<Box<str>>,
    ) -> ConnRef {
        let now = self.now;
        self.admission.try_admit().expect("no connection limit");
        let sh = &mut self.shards[shard];
        let key = sh.add_conn(-1, user, home, now);
        sh.conn_ref(key)
    }

    /// Connection `conn` sends the text message `json`.
    pub fn send(&mut self, conn: ConnRef, json: &str) {
        let now = self.now;
        let mut text = json.as_bytes().to_vec();
        self.shards[shard_of(conn.id)].on_text(conn.key, &mut text, now);
    }

    /// The peer of `conn` closes (1000); its shard then forgets it.
    pub fn close(&mut self, conn: ConnRef) {
        let now = self.now;
        let sh = &mut self.shards[shard_of(conn.id)];
        sh.on_peer_close(conn.key, Some(close::NORMAL));
        sh.remove_conn(conn.key, now);
    }

    /// Messages waiting in shard `to`'s inbox.
    pub fn pending(&self, to: usize) -> usize {
        self.peers[to].len()
    }

    /// Delivers the oldest message waiting for shard `to`; false when none waits.
    pub fn deliver(&mut self, to: usize) -> bool {
        let Some(msg) = self.peers[to].try_pop() else {
            return false;
        };
        let now = self.now;
        self.shards[to].on_shard_msg(msg, now);
        true
    }

    /// Delivers until every inbox is empty, one message per shard in turn.
    pub fn deliver_all(&mut self) {
        loop {
            let mut any = false;
            for to in 0..self.shards.len() {
                any |= self.deliver(to);
            }
            if !any {
                let waiting: usize = self.shards.iter().map(Shard::outbox_len).sum();
                assert_eq!(waiting, 0, "a test overflowed an inbox: raise its size");
                return;
            }
        }
    }

    /// Moves the clock by `by`, then fires on every shard what came due (batch windows,
    /// timers) and runs its housekeeping tick.
    pub fn advance(&mut self, by: Duration) {
        self.now.mono += by;
        self.now.unix_ms += by.as_millis() as u64;
        let now = self.now;
        for sh in &mut self.shards {
            sh.fire_due(now);
            sh.housekeeping(now);
        }
    }

    /// Takes every frame queued for `conn` and returns the JSON values of its text frames,
    /// with batches opened into their messages.
    pub fn received(&mut self, conn: ConnRef) -> Vec<serde_json::Value> {
        let sh = &mut self.shards[shard_of(conn.id)];
        let Some(c) = sh.conns.get_mut(conn.key).filter(|c| c.id == conn.id) else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        let mut scratch = Vec::new();
        loop {
            let chunk = c.queue.gather(&mut scratch, usize::MAX);
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len();
            bytes.extend_from_slice(chunk);
            c.queue.consume(n);
        }
        decode_frames(&bytes)
    }

    /// The `type`s of what `conn` received.
    pub fn types(&mut self, conn: ConnRef) -> Vec<String> {
        self.received(conn)
            .iter()
            .map(|v| v["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Runs `f` with shard `shard`'s features and a context on it, as a handler would.
    pub fn with_features<R>(
        &mut self,
        shard: usize,
        f: impl FnOnce(&mut crate::features::Features, &mut super::Ctx<'_>) -> R,
    ) -> R {
        let now = self.now;
        let sh = &mut self.shards[shard];
        let result = sh.with_features(now, f);
        sh.settle(now);
        result
    }

    /// Whether connection `conn` is still open on its shard.
    pub fn is_open(&self, conn: ConnRef) -> bool {
        self.shards[shard_of(conn.id)]
            .conns
            .get(conn.key)
            .is_some_and(|c| c.id == conn.id && c.phase == super::connection::Phase::Open)
    }
}

/// The JSON of each text frame in `bytes` (server frames: unmasked); close frames become
/// `{"type":"close","code":N}`; batches are opened.
fn decode_frames(mut bytes: &[u8]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, head) = match bytes[1] & 0x7f {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().expect("8")) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let payload = &bytes[head..head + len];
        bytes = &bytes[head + len..];
        match opcode {
            0x1 => {
                let v: serde_json::Value = serde_json::from_slice(payload).expect("JSON frames");
                if v["type"] == "batch" {
                    out.extend(v["messages"].as_array().expect("a batch").iter().cloned());
                } else {
                    out.push(v);
                }
            }
            0x8 => {
                let code = payload
                    .get(..2)
                    .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                out.push(serde_json::json!({"type": "close", "code": code}));
            }
            _ => {}
        }
    }
    out
}

/// Shorthand for a short clock step.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
