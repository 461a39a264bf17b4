//! A connection's session: a short task reads the upgrade request (and moves the connection to
//! its home room's shard) and completes the upgrade; from then on the shard's I/O loop reads
//! the socket when the epoll set says so and turns its bytes into frames and messages.
//!
//! Invariants:
//! - Socket reads land in the shard's scratch buffer; only an incomplete frame's bytes are kept
//!   per connection, so an idle connection holds no read buffer, and no task.
//! - A connection is read until `EAGAIN` (the set is edge-triggered), or listed in
//!   `read_again` (fairness) or `paused_readers` (back-pressure) to be read later.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::api;
use super::http;
use super::shard::Shard;
use super::shard_msg::ShardMsg;
use crate::limits::HANDSHAKE_REQUEST_BYTES_MAX;
use crate::protocol::frame::{apply_mask, decode_header, server_frame, Header, OP_PONG};
use crate::protocol::handshake::{
    accept_response, http_response, parse_request, HandshakeError, Route,
};
use crate::protocol::{Incoming, ProtocolError};
use crate::runtime::{self, close_fd, owner_shard, recv_now, sleep, Stream, EVENTS_PER_WAIT_MAX};
use crate::users::{verify_token, User};
use tungstenite::protocol::frame::coding::{Control, OpCode};

use super::connection::{Phase, Reader};

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
    let deadline = Instant::now() + timeout;
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
            let (key, len) = (api_key, content_length);
            api::serve(shard, stream, endpoint, key, len, leftover, deadline).await;
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

/// Completes the upgrade on this shard and hands the socket to the shard's I/O loop.
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
    let fd = match stream.into_fd() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(%e, "cannot take over an upgraded socket");
            return;
        }
    };
    shard.borrow_mut().register(fd, user, leftover);
}

impl Shard {
    /// Adopts an upgraded socket: a connection, watched by the epoll set. `leftover`: frames
    /// the client sent right behind its request.
    pub fn register(&mut self, fd: RawFd, user: Option<Arc<User>>, mut leftover: Vec<u8>) {
        let key = self.add_conn(fd, user);
        let token = self.conns[key].token(key);
        if let Err(e) = self.poller.add(fd, token) {
            tracing::warn!(%e, "cannot watch a socket");
            self.conns[key].phase = Phase::Done;
            self.reap_later(key);
            return;
        }
        if !leftover.is_empty() {
            self.process(key, &mut leftover);
        }
    }

    /// One pass of the I/O loop: forget finished connections, read those left unfinished,
    /// then serve what the epoll set reports. True when more work is already waiting.
    pub fn service_io(&mut self) -> bool {
        self.reap();
        for (key, id) in std::mem::take(&mut self.read_again) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.on_readable(key);
            }
        }
        let mut ready = std::mem::take(&mut self.ready_scratch);
        ready.clear();
        let harvested = match self.poller.harvest(&mut ready) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(%e, "epoll_wait failed");
                0
            }
        };
        for r in &ready {
            let key = (r.token & 0xffff_ffff) as usize;
            if self.conns.get(key).is_none_or(|c| c.token(key) != r.token) {
                continue; // Forgotten since: its socket left the set before closing.
            }
            if r.write {
                self.on_writable(key);
            }
            if r.read {
                self.on_readable(key);
            }
        }
        self.ready_scratch = ready;
        self.reap();
        harvested == EVENTS_PER_WAIT_MAX || !self.read_again.is_empty()
    }

    /// Whether the I/O loop has work without waiting for the epoll set.
    pub fn io_pending(&self) -> bool {
        !self.done.is_empty() || !self.read_again.is_empty()
    }

    /// Forgets finished connections and closes their sockets.
    fn reap(&mut self) {
        while let Some((key, id)) = self.done.pop() {
            let Some(conn) = self.conns.get(key).filter(|c| c.id == id) else {
                continue;
            };
            debug_assert_eq!(conn.phase, Phase::Done);
            let fd = conn.fd;
            self.poller.remove(fd);
            self.remove_conn(key);
            close_fd(fd);
        }
    }

    /// Closes the sockets of connections still here when the shard stops.
    pub fn close_remaining(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let fd = self.conns[key].fd;
            self.poller.remove(fd);
            self.remove_conn(key);
            close_fd(fd);
        }
    }

    /// The peer closed its end or the socket failed: the connection is over, whatever its
    /// phase.
    fn peer_gone(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.phase == Phase::Done {
            return;
        }
        conn.queue.clear();
        conn.phase = Phase::Done;
        self.reap_later(key);
    }

    /// Connection `key`'s socket has bytes (or news of its end): read until `EAGAIN`, at
    /// most [`READS_PER_POLL_MAX`] times before letting the others have a turn.
    fn on_readable(&mut self, key: usize) {
        for _ in 0..READS_PER_POLL_MAX {
            let conn = &mut self.conns[key];
            if conn.phase == Phase::Done {
                return;
            }
            if self.reading_paused && conn.phase == Phase::Open {
                if !conn.read_paused {
                    conn.read_paused = true;
                    self.paused_readers.push(key);
                }
                return;
            }
            let fd = conn.fd;
            let mut scratch = std::mem::take(&mut self.read_scratch);
            let result = recv_now(fd, &mut scratch);
            let outcome = match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                Ok(0) | Err(_) => Some(true),
                Ok(n) => {
                    let conn = &mut self.conns[key];
                    conn.last_rx = Instant::now();
                    conn.ping_sent = None;
                    self.process(key, &mut scratch[..n]);
                    None
                }
            };
            self.read_scratch = scratch;
            match outcome {
                Some(true) => return self.peer_gone(key),
                Some(false) => return,
                None => {}
            }
        }
        let id = self.conns[key].id;
        self.read_again.push((key, id));
    }

    /// Parses `data` (just read) into frames and handles them.
    fn process(&mut self, key: usize, data: &mut [u8]) {
        let max = self.config.max_message_bytes;
        let mut reader = std::mem::replace(&mut self.conns[key].reader, Reader::new(max));
        if !reader.broken {
            let skipped = reader.skip.min(data.len());
            reader.skip -= skipped;
            let data = &mut data[skipped..];
            let from_partial = !reader.partial.is_empty();
            let mut partial = std::mem::take(&mut reader.partial);
            if from_partial {
                partial.extend_from_slice(data);
                let consumed = self.frames(key, &mut reader, &mut partial);
                partial.drain(..consumed);
            } else {
                let consumed = self.frames(key, &mut reader, data);
                partial.extend_from_slice(&data[consumed..]);
            }
            if reader.broken {
                partial.clear();
            }
            if partial.is_empty() && partial.capacity() > PARTIAL_KEEP_BYTES_MAX {
                partial = Vec::new();
            }
            reader.partial = partial;
        }
        self.conns[key].reader = reader;
    }

    /// Handles every complete frame at the start of `buf`; returns the bytes consumed.
    fn frames(&mut self, key: usize, reader: &mut Reader, buf: &mut [u8]) -> usize {
        let mut pos = 0;
        loop {
            let max = if reader.draining {
                usize::MAX // Skipped, never buffered.
            } else {
                reader.assembler.frame_payload_max()
            };
            let header = match decode_header(&buf[pos..], max) {
                Ok(Some(h)) => h,
                Ok(None) => return pos,
                Err(e) if matches!(e, ProtocolError::MessageTooLarge { .. }) => {
                    // Too large, yet a well-formed header: the frame can be skipped.
                    reader.draining = true;
                    self.protocol_error(key, &e);
                    continue;
                }
                Err(e) => {
                    reader.broken = true;
                    if !reader.draining {
                        self.protocol_error(key, &e);
                    }
                    return buf.len();
                }
            };
            if reader.draining {
                let (consumed, more) = self.drain_frame(key, reader, &header, buf.len() - pos);
                pos += consumed;
                if !more {
                    return pos;
                }
                continue;
            }
            if buf.len() - pos < header.frame_len() {
                return pos;
            }
            let payload = &mut buf[pos + header.header_len..pos + header.frame_len()];
            pos += header.frame_len();
            apply_mask(payload, header.mask);
            let open = self.conns[key].phase == Phase::Open;
            match reader.assembler.on_frame(&header, payload) {
                Err(e) => {
                    // This frame was well-formed, so the next one's start is known.
                    reader.draining = true;
                    self.protocol_error(key, &e);
                }
                Ok(None) | Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Text(text))) => {
                    if open {
                        self.on_text(key, text);
                    }
                    reader.assembler.finish_message();
                }
                Ok(Some(Incoming::Ping(p))) => {
                    if open {
                        self.enqueue_control(key, server_frame(OP_PONG, p));
                    }
                }
                Ok(Some(Incoming::Close { code, .. })) => {
                    self.on_peer_close(key, code);
                    reader.broken = true;
                    return buf.len();
                }
            }
        }
    }

    /// While draining, the frame `header` with `have` bytes of it at hand: skips it, or ends
    /// the connection at the peer's close. Returns the bytes consumed and whether to go on
    /// with the next frame.
    fn drain_frame(
        &mut self,
        key: usize,
        reader: &mut Reader,
        header: &Header,
        have: usize,
    ) -> (usize, bool) {
        let whole = have >= header.frame_len();
        if header.opcode != OpCode::Control(Control::Close) {
            if whole {
                return (header.frame_len(), true);
            }
            reader.skip = header.frame_len() - have;
            return (have, false);
        }
        if !whole {
            return (0, false); // At most 131 bytes: wait for all of it.
        }
        // The peer's answer to our close: the close handshake is complete.
        self.on_peer_close(key, None);
        reader.broken = true;
        (have, false)
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
