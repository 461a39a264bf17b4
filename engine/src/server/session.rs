//! A connection's session: a short task reads the upgrade request (and moves the connection to
//! its home room's shard) and completes the upgrade; from then on the shard's I/O loop reads
//! the socket when the epoll set says so and turns its bytes into frames and messages.
//!
//! Invariants:
//! - Socket reads land in the shard's scratch buffer; only an incomplete frame's bytes are kept
//!   per connection, so an idle connection holds no read buffer, and no task.
//! - A connection is read until `EAGAIN` (the set is edge-triggered), or until a short read
//!   when its event carried no news of the peer's end (a later arrival raises a new edge), or
//!   listed in `read_again` (fairness) or `paused_readers` (back-pressure) to be read later.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::api;
use super::context::Now;
use super::http;
use super::shard::{unix_ms, Shard};
use super::shard_msg::{ShardMsg, Upgrade};
use crate::identity::{verify_token, TokenBucket, User, Verdict, Verified};
use crate::limits::HANDSHAKE_REQUEST_BYTES_MAX;
use crate::protocol::close;
use crate::protocol::frame::{apply_mask, decode_header, server_frame, Header, OP_PONG};
use crate::protocol::handshake::{
    accept_response, choose_protocol, http_response, parse_request, HandshakeError, Route,
};
use crate::protocol::{Incoming, ProtocolError};
use crate::runtime::{
    self, close_fd, owner_shard, peer_ip, recv_now, reset_fd, sleep, unsent_bytes, Stream,
    EVENTS_PER_WAIT_MAX,
};
use tungstenite::protocol::frame::coding::{Control, OpCode};

use super::connection::{Phase, Reader};

/// Socket reads (of up to `READ_SCRATCH_BYTES`, 64 KiB) one connection gets per turn of the
/// I/O loop before the others have theirs: a flooding peer delays everyone else on its shard
/// by at most this much parsing per turn. With 8, four flooders of big messages held a
/// bystander's round trip at 170 ms in a debug build.
const READS_PER_POLL_MAX: usize = 1;

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
    let timeout = shard.borrow().config.handshake_timeout();
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
            count_handshake_failure(&shard);
            let _ = stream.write_all(&e.response()).await;
            stream.shutdown_write();
            return;
        }
        Head::Gone => return count_handshake_failure(&shard),
    };
    match req.route {
        Route::Health => {
            let body = {
                let sh = shard.borrow();
                sh.stats.http_requests.fetch_add(1, RELAXED);
                http::health_body(&sh.config, sh.shards, &sh.all_stats)
            };
            let _ = stream.write_all(&http::json_response(&body)).await;
            stream.shutdown_write();
        }
        Route::Asset { path } => {
            shard.borrow().stats.http_requests.fetch_add(1, RELAXED);
            let _ = stream.write_all(&super::assets::response(&path)).await;
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
        Route::WebSocket {
            key,
            home,
            token,
            protocols,
        } => {
            let ws = WebSocketRequest {
                key,
                home,
                token,
                protocols,
                leftover,
            };
            serve_websocket(shard, stream, ws).await;
        }
    }
}

fn count_handshake_failure(shard: &ShardRef) {
    shard
        .borrow()
        .stats
        .handshake_failures
        .fetch_add(1, RELAXED);
}

/// An upgrade request, read.
struct WebSocketRequest {
    key: String,
    home: Option<String>,
    token: Option<String>,
    protocols: Vec<String>,
    leftover: Vec<u8>,
}

/// Checks an upgrade request's token and the connection limit, then upgrades here or hands
/// the connection to its home topic's shard.
async fn serve_websocket(shard: ShardRef, mut stream: Stream, ws: WebSocketRequest) {
    let Some((user, token_exp)) = check_token(&shard, &mut stream, ws.token).await else {
        return;
    };
    let admitted = shard.borrow().admission.try_admit();
    if let Err(full) = admitted {
        let err = HandshakeError::TooManyConnections { max: full.max };
        return refuse(&shard, stream, &err).await;
    }
    let (protocol, shards, me) = {
        let sh = shard.borrow();
        let chosen = choose_protocol(&ws.protocols, &sh.config.subprotocol_list());
        (chosen.map(str::to_string), sh.shards, sh.id)
    };
    let up = Upgrade {
        key: ws.key,
        protocol,
        leftover: ws.leftover,
        user,
        token_exp,
        home: ws.home,
    };
    let target = up.home.as_deref().map_or(me, |r| owner_shard(r, shards));
    if target == me {
        // A task of its own: the handshake's state is freed, not carried for the
        // connection's lifetime.
        return runtime::spawn_detached(upgrade(shard, stream, up));
    }
    hand_off(shard, stream, target, up).await;
}

/// The user of the upgrade's token (and its `exp`); None once a 401 was sent.
async fn check_token(
    shard: &ShardRef,
    stream: &mut Stream,
    token: Option<String>,
) -> Option<(Option<Arc<User>>, Option<u64>)> {
    let auth = authenticate(&shard.borrow(), token.as_deref(), unix_ms() / 1000);
    match auth {
        Ok(Some(v)) => Some((Some(v.user), Some(v.exp))),
        Ok(None) => Some((None, None)),
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
            None
        }
    }
}

/// Moves an admitted connection to shard `target` (its home room's), which sends the 101.
async fn hand_off(shard: ShardRef, stream: Stream, target: usize, up: Upgrade) {
    let fd = match stream.dup_fd() {
        Ok(fd) => {
            drop(stream);
            fd
        }
        Err(e) => {
            tracing::debug!(%e, "cannot hand a connection over");
            shard.borrow().admission.release();
            return refuse(&shard, stream, &HandshakeError::NoDescriptors).await;
        }
    };
    let mut sh = shard.borrow_mut();
    sh.stats.handoffs.fetch_add(1, RELAXED);
    sh.send_to(
        target,
        ShardMsg::Adopt {
            fd,
            upgrade: Box::new(up),
        },
    );
}

/// Answers a connection the server has no room for with 503 (counted) and closes it.
async fn refuse(shard: &ShardRef, mut stream: Stream, err: &HandshakeError) {
    shard
        .borrow()
        .stats
        .connections_refused
        .fetch_add(1, RELAXED);
    let _ = stream.write_all(&err.response()).await;
    stream.shutdown_write();
}

/// The user a connection speaks for, from its token checked at `now` (Unix seconds); Err is
/// the 401's reason.
fn authenticate(sh: &Shard, token: Option<&str>, now: u64) -> Result<Option<Verified>, String> {
    let leeway = sh.config.jwt_leeway_secs;
    match (&sh.config.auth_secret, token) {
        (Some(secret), Some(token)) => verify_token(token, secret.as_bytes(), leeway, now)
            .map(Some)
            .map_err(|e| e.to_string()),
        (Some(_), None) if !sh.config.allow_anonymous => Err("a token is required".into()),
        (None, Some(_)) => Err("this server does not accept tokens (no auth secret)".into()),
        (_, None) => Ok(None),
    }
}

/// Completes the upgrade on this shard and hands the socket to the shard's I/O loop. The
/// connection holds an admission slot, given back here if the upgrade fails.
pub async fn upgrade(shard: ShardRef, mut stream: Stream, up: Upgrade) {
    // The descriptor the I/O loop will own, taken before the 101: out of descriptors, the
    // client still gets an answer (503) rather than a 101 and a dropped connection.
    let fd = match stream.dup_fd() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!(%e, "cannot take over a socket");
            shard.borrow().admission.release();
            return refuse(&shard, stream, &HandshakeError::NoDescriptors).await;
        }
    };
    let response = accept_response(&up.key, up.protocol.as_deref());
    if stream.write_all(&response).await.is_err() {
        close_fd(fd);
        shard.borrow().admission.release();
        return;
    }
    drop(stream);
    shard.borrow_mut().register(fd, up);
}

impl Shard {
    /// Adopts an upgraded socket: a connection, watched by the epoll set. `leftover`: frames
    /// the client sent right behind its request.
    pub fn register(&mut self, fd: RawFd, up: Upgrade) {
        let Upgrade {
            user,
            token_exp,
            mut leftover,
            home,
            ..
        } = up;
        let now = Now::read();
        let key = self.add_conn(fd, user, home.map(Into::into), now);
        if let Some(ip) = peer_ip(fd) {
            self.conns[key].ip = Some(ip);
            self.address_joined(ip, now.mono);
        }
        self.conns[key].token_exp = token_exp;
        let token = self.conns[key].token(key);
        if let Err(e) = self.poller.add(fd, token) {
            tracing::warn!(%e, "cannot watch a socket");
            self.conns[key].phase = Phase::Done;
            self.reap_later(key);
        } else if !leftover.is_empty() {
            self.process(key, &mut leftover);
        }
        self.settle(now);
    }

    /// One pass of the I/O loop: forget finished connections, read those left unfinished,
    /// then serve what the epoll set reports. True when more work is already waiting.
    pub fn service_io(&mut self) -> bool {
        self.reap();
        for (key, id) in std::mem::take(&mut self.read_again) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.on_readable(key, true);
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
                self.on_readable(key, r.closed);
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
            self.close_socket(key);
            self.remove_conn(key, Now::read());
        }
    }

    /// Closes connection `key`'s socket: gracefully, or with a reset when its close handshake
    /// ran out of time and the kernel still holds bytes the peer has not taken (a stalled
    /// reader), so those bytes do not stay pinned in kernel memory. Counts the outcome.
    fn close_socket(&mut self, key: usize) {
        let conn = &self.conns[key];
        let stalled = conn.reset_on_close && (!conn.queue.is_empty() || unsent_bytes(conn.fd) > 0);
        if stalled {
            self.stats.closes_reset.fetch_add(1, RELAXED);
            if conn.cut {
                self.stats.slow_consumer_resets.fetch_add(1, RELAXED);
            }
            reset_fd(conn.fd);
        } else {
            if conn.cut {
                self.stats.slow_consumer_close_sent.fetch_add(1, RELAXED);
            }
            close_fd(conn.fd);
        }
    }

    /// Closes the sockets of connections still here when the shard stops.
    pub fn close_remaining(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let fd = self.conns[key].fd;
            self.poller.remove(fd);
            self.conns[key].reset_on_close = true;
            self.close_socket(key);
            self.remove_conn(key, Now::read());
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
    ///
    /// A read shorter than the buffer emptied the socket, so unless `closing` (the event said
    /// the peer ended, which no later edge would repeat) there is nothing to look for until
    /// the next edge: that saves an `EAGAIN` read, a turn and a harvest per message.
    fn on_readable(&mut self, key: usize, closing: bool) {
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
                    (n < scratch.len() && !closing).then_some(false)
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

    /// Parses `data` (just read) into frames and handles them, and accounts for the bytes
    /// left waiting for the rest of a frame or message.
    fn process(&mut self, key: usize, data: &mut [u8]) {
        let now = Now::read();
        let held_before = self.conns[key].reader.held_bytes();
        self.read_frames(key, data, now);
        self.account_incomplete(key, held_before, now.mono);
        self.settle(now);
    }

    /// Tracks the shard's bytes of incomplete input after connection `key` read: past
    /// `--incomplete-bytes-per-shard`, the connection that grew it is closed with 1013.
    fn account_incomplete(&mut self, key: usize, held_before: usize, now: Instant) {
        let conn = &mut self.conns[key];
        let held = conn.reader.held_bytes();
        self.incomplete_bytes = self.incomplete_bytes + held - held_before;
        let incomplete = conn.reader.incomplete();
        if !incomplete {
            conn.incomplete_since = None;
        } else if conn.incomplete_since.is_none() {
            conn.incomplete_since = Some(now);
        }
        if held > held_before && self.incomplete_bytes > self.config.incomplete_bytes_per_shard {
            self.stats.incomplete_budget_closes.fetch_add(1, RELAXED);
            self.drop_input(key);
            self.close_conn(key, close::TRY_AGAIN_LATER, "server busy, try again later");
        }
    }

    /// Discards connection `key`'s incomplete input and reads nothing more from it.
    pub(super) fn drop_input(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        self.incomplete_bytes -= conn.reader.held_bytes();
        conn.reader = Reader::new(0);
        conn.reader.broken = true;
        conn.incomplete_since = None;
    }

    /// Takes a token from connection `key`'s frame budget; false (and a 1008 close) when it
    /// is spent: the peer floods frames.
    fn frame_allowed(&mut self, key: usize, now: Instant) -> bool {
        let limit = self.frame_limit;
        let bucket = self.conns[key]
            .frame_bucket
            .get_or_insert_with(|| TokenBucket::new(&limit, now));
        if !matches!(bucket.take(&limit, now), Verdict::Limited { .. }) {
            return true;
        }
        self.stats.frame_flood_closes.fetch_add(1, RELAXED);
        self.close_conn(key, close::POLICY, "too many frames");
        false
    }

    fn read_frames(&mut self, key: usize, data: &mut [u8], now: Now) {
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
                let consumed = self.frames(key, &mut reader, &mut partial, now);
                partial.drain(..consumed);
            } else {
                let consumed = self.frames(key, &mut reader, data, now);
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
    fn frames(&mut self, key: usize, reader: &mut Reader, buf: &mut [u8], now: Now) -> usize {
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
            if !self.frame_allowed(key, now.mono) {
                reader.broken = true;
                return buf.len();
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
                        self.on_text(key, text, now);
                    }
                    reader.assembler.finish_message();
                }
                Ok(Some(Incoming::Ping(p))) => {
                    if open {
                        self.enqueue_pong(key, server_frame(OP_PONG, p));
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
