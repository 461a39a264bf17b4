//! A connection's session task: reads the upgrade request (and moves the connection to its
//! home room's shard), then reads frames and writes whatever the flusher could not.
//!
//! Invariants:
//! - Socket reads land in the shard's scratch buffer; only an incomplete frame's bytes are kept
//!   per connection, so an idle connection holds no read buffer.
//! - The flusher writes a connection's queue unless `write_blocked` is set; then only this task
//!   writes, woken by the socket becoming writable, until the queue is empty.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use super::api;
use super::http;
use super::shard::Shard;
use super::shard_msg::ShardMsg;
use crate::limits::{HANDSHAKE_REQUEST_BYTES_MAX, WRITE_BYTES_MAX};
use crate::protocol::frame::{apply_mask, decode_header, server_frame, OP_PONG};
use crate::protocol::handshake::{
    accept_response, http_response, parse_request, HandshakeError, Route,
};
use crate::protocol::{Assembler, Incoming};
use crate::runtime::{self, owner_shard, sleep, Stream};
use crate::users::{verify_token, User};

use super::connection::Phase;

/// Reads per poll before the session lets other tasks run.
const READS_PER_POLL_MAX: usize = 8;

/// Bytes kept for an incomplete frame beyond which the buffer is released once empty.
const PARTIAL_KEEP_BYTES_MAX: usize = 4096;

type ShardRef = Rc<RefCell<Shard>>;

enum Head {
    Request(crate::protocol::handshake::Request, Vec<u8>),
    Refused(HandshakeError),
    Gone,
}

async fn read_head(stream: &mut Stream) -> Head {
    let mut buf = vec![0u8; HANDSHAKE_REQUEST_BYTES_MAX];
    let mut len = 0;
    loop {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return Head::Gone,
            Ok(n) => len += n,
        }
        match parse_request(&buf[..len]) {
            Ok(Some(req)) => {
                buf.truncate(len);
                return Head::Request(req, buf);
            }
            Ok(None) if len < buf.len() => {}
            Ok(None) => {
                return Head::Refused(HandshakeError::TooLarge {
                    max: HANDSHAKE_REQUEST_BYTES_MAX,
                })
            }
            Err(e) => return Head::Refused(e),
        }
    }
}

/// Serves a freshly accepted socket: HTTP endpoints, refusals, hand-off or upgrade.
pub async fn serve_accepted(shard: ShardRef, mut stream: Stream) {
    let (timeout, shards, me) = {
        let sh = shard.borrow();
        (sh.config.handshake_timeout(), sh.shards, sh.id)
    };
    let head = futures_lite::future::or(read_head(&mut stream), async {
        sleep(timeout).await;
        Head::Gone
    })
    .await;
    let (req, leftover) = match head {
        // Keep only bytes after the request head: the 8 KiB read buffer must not live on in
        // this task for the connection's lifetime.
        Head::Request(req, buf) => {
            let leftover = buf[req.head_len..].to_vec();
            (req, leftover)
        }
        Head::Refused(e) => {
            shard
                .borrow()
                .stats
                .handshake_failures
                .fetch_add(1, RELAXED);
            let _ = stream.write_all(&e.response()).await;
            stream.shutdown_write();
            return;
        }
        Head::Gone => {
            shard
                .borrow()
                .stats
                .handshake_failures
                .fetch_add(1, RELAXED);
            return;
        }
    };
    match req.route {
        Route::Health => {
            let body = {
                let sh = shard.borrow();
                sh.stats.http_requests.fetch_add(1, RELAXED);
                http::health_body(sh.shards, &sh.all_stats)
            };
            let _ = stream.write_all(&http::json_response(&body)).await;
            stream.shutdown_write();
        }
        Route::Api {
            endpoint,
            api_key,
            content_length,
        } => {
            api::serve(shard, stream, endpoint, api_key, content_length, leftover).await;
        }
        Route::WebSocket { key, room, token } => {
            let auth = authenticate(&shard.borrow(), token.as_deref());
            let user = match auth {
                Ok(user) => user,
                Err(reason) => {
                    shard
                        .borrow()
                        .stats
                        .handshake_failures
                        .fetch_add(1, RELAXED);
                    let response = http_response(
                        401,
                        "Unauthorized",
                        "WWW-Authenticate: Bearer\r\n",
                        "text/plain",
                        reason.as_bytes(),
                    );
                    let _ = stream.write_all(&response).await;
                    stream.shutdown_write();
                    return;
                }
            };
            let target = room.as_deref().map_or(me, |r| owner_shard(r, shards));
            if target == me {
                // A task of its own: the handshake's state is freed, not carried for the
                // connection's lifetime.
                return runtime::spawn_detached(upgrade(shard, stream, key, leftover, user));
            }
            let fd = match stream.into_fd() {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::warn!(%e, "cannot hand a connection over");
                    return;
                }
            };
            let mut sh = shard.borrow_mut();
            sh.stats.handoffs.fetch_add(1, RELAXED);
            sh.send_to(
                target,
                ShardMsg::Adopt {
                    fd,
                    key,
                    leftover,
                    user,
                },
            );
        }
    }
}

/// The user a connection speaks for, from its token; Err is the 401's reason.
fn authenticate(sh: &Shard, token: Option<&str>) -> Result<Option<Arc<User>>, String> {
    match (&sh.config.auth_secret, token) {
        (Some(secret), Some(token)) => verify_token(token, secret.as_bytes())
            .map(Some)
            .map_err(|e| e.to_string()),
        (Some(_), None) if !sh.config.allow_anonymous => Err("a token is required".into()),
        (None, Some(_)) => Err("this server does not accept tokens (no auth secret)".into()),
        (_, None) => Ok(None),
    }
}

/// Completes the upgrade on this shard and runs the connection until it ends.
pub async fn upgrade(
    shard: ShardRef,
    mut stream: Stream,
    key: String,
    leftover: Vec<u8>,
    user: Option<Arc<User>>,
) {
    if stream.write_all(&accept_response(&key)).await.is_err() {
        return;
    }
    drop(key);
    let conn_key = shard.borrow_mut().add_conn(stream.fd(), user);
    let max_message = shard.borrow().config.max_message_bytes;
    let mut session = Session {
        shard: shard.clone(),
        stream,
        key: conn_key,
        assembler: Assembler::new(max_message),
        partial: leftover,
        broken: false,
    };
    if !session.partial.is_empty() {
        // Frames sent right behind the request: process them before reading more.
        let mut data = std::mem::take(&mut session.partial);
        let mut sh = shard.borrow_mut();
        session.process(&mut sh, &mut data);
    }
    std::future::poll_fn(|cx| session.poll(cx)).await;
    shard.borrow_mut().remove_conn(conn_key);
    // The stream drops here, after the shard forgot the connection's descriptor.
}

struct Session {
    shard: ShardRef,
    stream: Stream,
    key: usize,
    assembler: Assembler,
    /// Bytes of a frame that has not fully arrived.
    partial: Vec<u8>,
    /// A protocol error made the byte stream meaningless: discard input until the end.
    broken: bool,
}

impl Session {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let shard = self.shard.clone();
        let mut sh = shard.borrow_mut();
        let sh = &mut *sh;
        {
            let conn = &mut sh.conns[self.key];
            if !conn.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                conn.waker = Some(cx.waker().clone());
            }
        }
        for _ in 0..READS_PER_POLL_MAX {
            if sh.conns[self.key].write_blocked && !self.write_blocked(sh, cx) {
                sh.conns[self.key].phase = Phase::Done;
            }
            if sh.conns[self.key].phase == Phase::Done {
                return Poll::Ready(());
            }
            if sh.reading_paused && sh.conns[self.key].phase == Phase::Open {
                let conn = &mut sh.conns[self.key];
                if !conn.read_paused {
                    conn.read_paused = true;
                    sh.paused_readers.push(self.key);
                }
                return Poll::Pending;
            }
            let mut scratch = std::mem::take(&mut sh.read_scratch);
            let read = self.stream.poll_read(cx, &mut scratch);
            let result = match read {
                Poll::Pending => None,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Some(0),
                Poll::Ready(Ok(n)) => {
                    let conn = &mut sh.conns[self.key];
                    conn.last_rx = Instant::now();
                    conn.ping_sent = None;
                    self.process(sh, &mut scratch[..n]);
                    Some(n)
                }
            };
            sh.read_scratch = scratch;
            match result {
                None => return Poll::Pending,
                Some(0) => {
                    // End of stream: whatever phase we were in, the connection is over.
                    return Poll::Ready(());
                }
                Some(_) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes the queue the flusher could not finish. False when the peer is gone.
    fn write_blocked(&mut self, sh: &mut Shard, cx: &mut Context<'_>) -> bool {
        let conn = &mut sh.conns[self.key];
        loop {
            let chunk = conn.queue.gather(&mut sh.write_scratch, WRITE_BYTES_MAX);
            if chunk.is_empty() {
                conn.write_blocked = false;
                break;
            }
            match self.stream.poll_write(cx, chunk) {
                Poll::Ready(Ok(n)) => {
                    sh.stats.send_calls.fetch_add(1, RELAXED);
                    sh.stats.bytes_out.fetch_add(n as u64, RELAXED);
                    conn.queue.consume(n);
                }
                Poll::Ready(Err(_)) => return false,
                Poll::Pending => return true,
            }
        }
        sh.after_blocked_write(self.key);
        true
    }

    /// Parses `data` (just read) into frames and hands them to the shard.
    fn process(&mut self, sh: &mut Shard, data: &mut [u8]) {
        if self.broken {
            return;
        }
        let from_partial = !self.partial.is_empty();
        if from_partial {
            self.partial.extend_from_slice(data);
        }
        let mut partial = std::mem::take(&mut self.partial);
        if from_partial {
            let consumed = self.frames(sh, &mut partial);
            partial.drain(..consumed);
        } else {
            let consumed = self.frames(sh, data);
            partial.extend_from_slice(&data[consumed..]);
        }
        if self.broken {
            partial.clear();
        }
        if partial.is_empty() && partial.capacity() > PARTIAL_KEEP_BYTES_MAX {
            partial = Vec::new();
        }
        self.partial = partial;
    }

    /// Handles every complete frame at the start of `buf`; returns the bytes consumed.
    fn frames(&mut self, sh: &mut Shard, buf: &mut [u8]) -> usize {
        let key = self.key;
        let mut pos = 0;
        loop {
            let header = match decode_header(&buf[pos..], self.assembler.frame_payload_max()) {
                Ok(Some(h)) => h,
                Ok(None) => return pos,
                Err(e) => {
                    self.broken = true;
                    sh.protocol_error(key, &e);
                    return buf.len();
                }
            };
            if buf.len() - pos < header.frame_len() {
                return pos;
            }
            let payload = &mut buf[pos + header.header_len..pos + header.frame_len()];
            pos += header.frame_len();
            apply_mask(payload, header.mask);
            let open = sh.conns[key].phase == Phase::Open;
            match self.assembler.on_frame(&header, payload) {
                Err(e) => {
                    self.broken = true;
                    sh.protocol_error(key, &e);
                    return buf.len();
                }
                Ok(None) | Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Text(text))) => {
                    if open {
                        sh.on_text(key, text);
                    }
                    self.assembler.finish_message();
                }
                Ok(Some(Incoming::Ping(p))) => {
                    if open {
                        sh.enqueue_control(key, server_frame(OP_PONG, p));
                    }
                }
                Ok(Some(Incoming::Close { code, .. })) => {
                    sh.on_peer_close(key, code);
                    self.broken = true;
                    return buf.len();
                }
            }
        }
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
