//! Plain HTTP answers on the WebSocket port: `GET /healthz`.
//!
//! Invariant: every response is complete (length known) and closes the connection.

use std::sync::Arc;

use crate::protocol::handshake::http_response;
use crate::stats::ShardStats;

/// `{"status":"ok","shards":N,"connections":M,"stats":{...}}`, summed over shards.
pub fn health_body(shards: usize, stats: &[Arc<ShardStats>]) -> String {
    let connections: u64 = stats
        .iter()
        .map(|s| s.connections.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    format!(
        "{{\"status\":\"ok\",\"shards\":{shards},\"connections\":{connections},\"stats\":{}}}",
        ShardStats::sum_json(stats)
    )
}

pub fn json_response(body: &str) -> Vec<u8> {
    http_response(200, "OK", "", "application/json", body.as_bytes())
}
