//! Per-shard counters: written only by their shard (relaxed atomics, no contention), read by
//! anyone (`/healthz`, tests). Every limit the engine enforces has a counter here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct ShardStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl ShardStats {
            /// `"name":value` pairs of the sum over `all`, as a JSON object.
            pub fn sum_json(all: &[std::sync::Arc<ShardStats>]) -> String {
                let mut out = String::from("{");
                let mut first = true;
                $(
                    let v: u64 = all.iter().map(|s| s.$name.load(Relaxed)).sum();
                    if !first { out.push(','); }
                    first = false;
                    out.push_str(&format!("\"{}\":{}", stringify!($name), v));
                )*
                let _ = first;
                out.push('}');
                out
            }
        }
    };
}

counters! {
    /// Open WebSocket connections now.
    connections,
    /// WebSocket connections completed since start.
    connections_total,
    /// Connections moved to their home room's shard before the handshake completed.
    handoffs,
    /// Requests refused at the handshake (4xx) or that timed out.
    handshake_failures,
    /// Plain HTTP requests answered (`/healthz`).
    http_requests,
    /// Text messages received from clients.
    messages_in,
    /// Messages published to rooms (each counted once, at the owner).
    published,
    /// Frames queued to connections (a batch counts once per recipient).
    frames_out,
    /// `send()` calls made for connections.
    send_calls,
    /// Bytes written to connections.
    bytes_out,
    /// `error` events sent to clients.
    app_errors,
    /// Connections closed for a protocol violation.
    protocol_closes,
    /// Connections closed because their send queue hit its limit (1008).
    slow_consumer_closes,
    /// Connections closed for not answering pings.
    ping_timeouts,
    /// Messages handed to other shards.
    cross_shard_sent,
    /// Times a peer shard's inbox was full and the message waited in the outbox.
    inbox_full,
    /// Times this shard stopped reading clients because its outbox was at its limit.
    reads_paused,
    /// Rooms this shard knows now (owned, or with local members).
    rooms,
    /// Users this shard's directory holds now (online, or offline with notifications).
    users,
    /// Messages refused by a rate limit or a request budget (`rate_limited`).
    rate_limited,
    /// Budget units charged after the fact for heavy work (a document change transformed
    /// against many ops): what put a client into debt.
    budget_debited,
    /// Typing, read and status repeats that changed nothing: acknowledged, sent nowhere.
    conflated,
    /// Offline users forgotten, or records refused, because the directory was full.
    users_evicted,
    /// Old notifications dropped because a user had the most kept.
    notifications_dropped,
    /// A sender's oldest notification to a user replaced by their newest, at the per-sender
    /// quota (20).
    notifications_replaced,
    /// `POST /api/*` requests accepted.
    api_requests,
    /// Bytes of history the shard's rooms keep now (within `--history-bytes-per-shard`).
    history_bytes,
    /// Messages dropped from the quietest rooms' history to keep the shard's budget.
    history_trimmed,
    /// Empty rooms forgotten after `--room-ttl-secs`.
    rooms_expired,
    /// Empty rooms forgotten early to make way in a full room table.
    rooms_evicted,
    /// Latest-wins frames (cursors) that replaced an unsent one of their slot in a reader's
    /// queue: what a slow reader was spared.
    latest_conflated,
    /// Broadcasts sent but not kept for history: the shard's shared bytes were spent.
    shared_unkept,
    /// Documents this shard owns now.
    docs,
    /// Changes applied to this shard's documents.
    doc_changes,
    /// Changes answered as duplicates of one applied already (idempotent resubmits).
    doc_resubmits,
    /// Pongs that replaced one still waiting to be sent (a ping flood costs no memory).
    pongs_conflated,
    /// Sockets reset at close because the peer left bytes unread past the close linger.
    closes_reset,
    /// Slow consumers whose 1008 close frame reached them before the socket closed.
    slow_consumer_close_sent,
    /// Connections closed for sending frames faster than `--max-frames-per-sec` (1008).
    frame_flood_closes,
    /// Connections closed for not completing a frame or message in time (1008).
    incomplete_timeouts,
    /// Connections closed because the shard's budget for incomplete input was spent (1013).
    incomplete_budget_closes,
    /// Slow consumers whose socket was reset (their close frame could not be delivered).
    slow_consumer_resets,
    /// Connections answered 503: over `--max-connections`, or out of descriptors.
    connections_refused,
    /// Accepts that failed (out of descriptors, mostly); the log warns once a second.
    accept_failures,
    /// Connections closed (4001) because their token expired.
    tokens_expired,
    /// Offline users forgotten after `--user-ttl-secs`.
    users_expired,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_over_shards() {
        let a = Arc::new(ShardStats::default());
        let b = Arc::new(ShardStats::default());
        a.connections.store(2, Relaxed);
        b.connections.store(3, Relaxed);
        let json: serde_json::Value = serde_json::from_str(&ShardStats::sum_json(&[a, b])).unwrap();
        assert_eq!(json["connections"], 5);
        assert_eq!(json["rooms"], 0);
    }
}
