//! The backend's HTTP API on the WebSocket port: `POST /api/notify {userId, title, body}` and
//! `POST /api/publish {room, content}`, guarded by the `api-key` setting.
//!
//! Invariant: a request is acted on only with the right key and a body that is complete,
//! within [`API_BODY_BYTES_MAX`] and valid; every other request gets a 4xx with a reason and
//! changes nothing.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::context::Now;
use super::shard::Shard;
use crate::features;
use crate::limits::API_BODY_BYTES_MAX;
use crate::protocol::handshake::{http_response, ApiEndpoint};
use crate::runtime::{sleep, Stream};

/// An answer: status, reason phrase, JSON body.
type Answer = (u16, &'static str, String);

fn error(status: u16, reason: &'static str, code: &str, message: &str) -> Answer {
    let body = serde_json::json!({"error": code, "message": message}).to_string();
    (status, reason, body)
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
fn same_key(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body: the `leftover` bytes that came with the head, then reads until `len` bytes are
/// in (a body may arrive in any number of segments, long after its head).
async fn read_body(stream: &mut Stream, mut body: Vec<u8>, len: usize) -> Option<Vec<u8>> {
    assert!(len <= API_BODY_BYTES_MAX, "checked with the head");
    body.truncate(len);
    let mut have = body.len();
    body.resize(len, 0);
    while have < len {
        match stream.read(&mut body[have..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => have += n,
        }
    }
    Some(body)
}

/// Serves one API request; `leftover` holds the body bytes read with the head. The whole
/// request must be in by `deadline` (the handshake timeout, counted from the accept).
pub async fn serve(
    shard: Rc<RefCell<Shard>>,
    mut stream: Stream,
    endpoint: ApiEndpoint,
    api_key: Option<String>,
    content_length: usize,
    leftover: Vec<u8>,
    deadline: Instant,
) {
    let expected = shard.borrow().config.api_key.clone();
    let timeout = deadline.saturating_duration_since(Instant::now());
    let answer = match (&expected, &api_key) {
        (None, _) => error(404, "Not Found", "api_disabled", "no api-key is set"),
        (Some(e), Some(k)) if same_key(k, e) => {
            let body =
                futures_lite::future::or(read_body(&mut stream, leftover, content_length), async {
                    sleep(timeout).await;
                    None
                })
                .await;
            match body {
                None => return, // Gone or too slow: nobody to answer.
                Some(body) => act(&mut shard.borrow_mut(), endpoint, &body),
            }
        }
        _ => error(
            401,
            "Unauthorized",
            "unauthorized",
            "missing or wrong API key",
        ),
    };
    let (status, reason, body) = answer;
    let extra = if status == 401 {
        "WWW-Authenticate: Bearer\r\n"
    } else {
        ""
    };
    let response = http_response(status, reason, extra, "application/json", body.as_bytes());
    let _ = stream.write_all(&response).await;
    stream.shutdown_write();
}

fn act(sh: &mut Shard, endpoint: ApiEndpoint, body: &[u8]) -> Answer {
    let Ok(serde_json::Value::Object(v)) = serde_json::from_slice(body) else {
        return error(
            400,
            "Bad Request",
            "bad_request",
            "the body must be a JSON object",
        );
    };
    match features::api_message(endpoint, &v, &sh.config) {
        Ok(msg) => sh.route_owned(msg),
        Err(r) => return error(r.status, r.reason, r.code, &r.message),
    }
    sh.settle(Now::read());
    sh.stats
        .api_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (202, "Accepted", r#"{"accepted":true}"#.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_exactly() {
        assert!(same_key("abcdef0123456789", "abcdef0123456789"));
        assert!(!same_key("abcdef0123456789", "abcdef0123456780"));
        assert!(!same_key("abc", "abcdef0123456789"));
    }
}
