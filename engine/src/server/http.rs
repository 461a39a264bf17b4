//! Plain HTTP answers on the WebSocket port: `GET /healthz`.
//!
//! Invariant: every response is complete (length known) and closes the connection.

use std::sync::Arc;

use crate::config::Config;
use crate::limits::{TOPICS_PER_SHARD_MAX, USERS_PER_SHARD_MAX};
use crate::protocol::handshake::http_response;
use crate::stats::ShardStats;

/// `{"status":"ok","shards":N,"connections":M,"auth":{...},"limits":{...},"stats":{...}}`, the
/// counters summed over shards; `auth` says how clients identify (what the chat page asks
/// for); `limits` are the memory bounds of docs/ARCHITECTURE.md ("Memory budget per shard") as
/// this server runs them.
pub fn health_body(config: &Config, shards: usize, stats: &[Arc<ShardStats>]) -> String {
    let connections: u64 = stats
        .iter()
        .map(|s| s.connections.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    format!(
        "{{\"status\":\"ok\",\"shards\":{shards},\"connections\":{connections},\
         \"auth\":{},\"limits\":{},\"stats\":{}}}",
        auth_json(config),
        limits_json(config),
        ShardStats::sum_json(stats)
    )
}

/// `{"mode":"token"|"login","guests":bool,"guestsCreateRooms":bool}`: with `token` the
/// handshake carries a JWT; with `login` a connection sends `auth:login`.
fn auth_json(c: &Config) -> String {
    let mode = if c.auth_secret.is_some() {
        "token"
    } else {
        "login"
    };
    format!(
        "{{\"mode\":\"{mode}\",\"guests\":{},\"guestsCreateRooms\":{}}}",
        c.allow_anonymous, c.guests_create_rooms
    )
}

/// The bounds on what clients can make a shard hold, as a JSON object.
fn limits_json(c: &Config) -> String {
    let rate = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"max_connections\":{},\"send_queue_bytes\":{},\"max_message_bytes\":{},\
         \"incomplete_bytes_per_shard\":{},\"history_messages\":{},\
         \"history_bytes_per_room\":{},\"history_bytes_per_shard\":{},\
         \"rooms_per_shard\":{TOPICS_PER_SHARD_MAX},\"room_ttl_secs\":{},\
         \"users_per_shard\":{USERS_PER_SHARD_MAX},\"user_ttl_secs\":{},\
         \"max_frames_per_sec\":{},\"rate_limit\":{},\"request_rate\":{},\
         \"user_request_rate\":{},\"ip_request_rate\":{}}}",
        c.connection_limit(),
        c.send_queue_bytes,
        c.max_message_bytes,
        c.incomplete_bytes_per_shard,
        c.history_messages,
        c.history_bytes_per_room,
        c.history_bytes_per_shard,
        c.room_ttl_secs,
        c.user_ttl_secs,
        c.max_frames_per_sec,
        rate(&c.rate_limit),
        rate(&c.request_rate),
        rate(&c.user_request_rate),
        rate(&c.ip_request_rate),
    )
}

pub fn json_response(body: &str) -> Vec<u8> {
    http_response(200, "OK", "", "application/json", body.as_bytes())
}
