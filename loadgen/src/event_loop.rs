//! The measured phase of one core: a plain epoll loop over the connections its setup produced,
//! publishing on schedule and accounting every message received.
//!
//! Why not the async runtime used for setup: measured with 1000 sockets on one core, per-socket
//! readiness through glommio's io_uring polls delivered reads late (p50 ~20 ms at 100k
//! deliveries/s, the client 20% busy) where epoll over the same sockets saw 0.6 ms. A load
//! generator must not add its own latency, so the loop that measures is the simplest one.
//!
//! Invariants: the clock is read once per slice of ready sockets, not per frame, and due
//! publishers are served between slices; reads land in one buffer per core; a connection
//! keeps only the bytes of an incomplete frame; publisher p of P sends message n at
//! `start + (p / P + n) / rate` and the message carries that time whenever it actually
//! leaves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::accounting::Pair;
use crate::clock::{self, now_ns};
use crate::frame::{self, next_frame, write_masked, Masks, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::marker::{self, Mark};
use crate::protocol::Protocol;
use crate::recorder::Recorder;
use crate::runner::{CoreResult, RunConfig, Shared};
use crate::tls::Tls;

/// Bytes one read takes from a socket.
const READ_SCRATCH_BYTES: usize = 256 * 1024;

/// Largest server frame a connection waits for. A header announcing more closes the
/// connection with a clear reason instead of buffering without bound: corecast's own frames
/// are at most a few hundred KiB (a history page).
const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Bytes a publisher may have waiting for the socket before it stops generating messages
/// (and falls behind its schedule instead).
const OUT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How long a publisher whose socket holds [`OUT_BYTES_MAX`] waits before trying again (ns).
const FULL_SOCKET_RETRY_NS: u64 = 1_000_000;

/// Events taken from epoll per wake-up.
const EVENTS_PER_WAIT: usize = 1024;

/// Ready sockets read between looks at the clock and the publishers' schedule. Reading 1000
/// ready sockets takes a few milliseconds; a publisher held back that long would add the
/// client's own delay to the latency it measures, and receipts would be stamped early.
const EVENTS_PER_SLICE: usize = 64;

/// How often live counters are handed to the progress display.
const REPORT_INTERVAL_NS: u64 = 100_000_000;

/// How often a waiting core looks at the start signal.
const START_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// A connection ready for the run: its socket, TLS session, and receive state.
pub struct RunConn {
    pub fd: OwnedFd,
    pub tls: Option<Tls>,
    /// Plaintext bytes read but not yet a whole frame.
    pub partial: Vec<u8>,
    /// Plaintext bytes to write (encrypted into `cipher_out` first under TLS).
    pub out: Vec<u8>,
    /// Ciphertext the socket did not take yet.
    pub cipher_out: Vec<u8>,
    pub masks: Masks,
    /// Per publisher of this connection's room, by `room_pub`.
    pub pairs: Vec<Pair>,
    pub closed: Option<String>,
    /// This connection's index in the plan.
    pub index: usize,
    pub room: Option<usize>,
    /// (global publisher id, room_pub) when this connection publishes.
    pub publisher: Option<(u32, u32)>,
    /// Frames that carried more than one message: the server batches.
    pub batched_frames: u64,
}

impl RunConn {
    /// Writes what `out` holds without waiting; keeps the rest.
    pub fn flush_out(&mut self) -> io::Result<()> {
        let wire = match self.tls.as_mut() {
            Some(tls) => {
                if !self.out.is_empty() {
                    tls.seal(&self.out, &mut self.cipher_out)?;
                    self.out.clear();
                }
                &mut self.cipher_out
            }
            None => &mut self.out,
        };
        while !wire.is_empty() {
            // SAFETY: valid buffer; MSG_NOSIGNAL turns SIGPIPE into EPIPE.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    wire.as_ptr().cast(),
                    wire.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            wire.drain(..n as usize);
        }
        Ok(())
    }

    /// Bytes waiting to be written, in any form.
    pub fn pending_out(&self) -> usize {
        self.out.len() + self.cipher_out.len()
    }
}

/// A publisher's place in its schedule: message `next` is meant for
/// `start + phase + next * interval`.
struct Schedule {
    conn: usize,
    mark: Mark,
    next: u64,
    /// This publisher's offset within one interval (ns): P publishers are spread evenly, so
    /// together they send a steady stream rather than P-message bursts.
    phase: u64,
}

/// Every publisher of one core and when each is next due.
struct Publishers {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    schedules: Vec<Schedule>,
    start: u64,
    stop: u64,
    /// Nanoseconds between two messages of one publisher.
    interval: f64,
    /// Scratch for one message's content and its envelope.
    content: Vec<u8>,
    message: Vec<u8>,
}

impl Publishers {
    fn intended(&self, phase: u64, k: u64) -> u64 {
        self.start + phase + (k as f64 * self.interval) as u64
    }

    /// When the earliest publisher is due, if any still is.
    fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|&Reverse((due, _))| due)
    }

    /// Sends every message due by `now`; returns how many.
    fn send_due(
        &mut self,
        now: u64,
        conns: &mut [RunConn],
        cfg: &RunConfig,
        recorder: &mut Recorder,
    ) -> u64 {
        let mut sent = 0;
        while let Some(&Reverse((due, s))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            let phase = self.schedules[s].phase;
            let c = &mut conns[self.schedules[s].conn];
            if c.closed.is_some() {
                continue;
            }
            let room = &cfg.plan.rooms[c.room.expect("publishers have rooms")];
            loop {
                let next = self.schedules[s].next;
                let at = self.intended(phase, next);
                if at > now || at >= self.stop || c.pending_out() >= OUT_BYTES_MAX {
                    break;
                }
                let sched = &mut self.schedules[s];
                sched.mark.seq = next;
                sched.mark.intended_ns = at;
                self.content.clear();
                marker::write(&mut self.content, &sched.mark, cfg.size);
                self.message.clear();
                cfg.protocol
                    .publish_into(&mut self.message, room, &self.content, c.index, next);
                let mask = c.masks.next_mask();
                write_masked(&mut c.out, OP_TEXT, &self.message, mask);
                recorder.on_sent(at, now);
                sched.next += 1;
                sent += 1;
            }
            if c.flush_out().is_err() {
                c.closed.get_or_insert_with(|| "connection ended".into());
                continue;
            }
            let next_at = self.intended(phase, self.schedules[s].next);
            if next_at < self.stop {
                // A full socket retries soon; otherwise at the next message's time.
                let retry = if c.pending_out() >= OUT_BYTES_MAX {
                    now + FULL_SOCKET_RETRY_NS
                } else {
                    next_at
                };
                self.heap.push(Reverse((retry, s)));
            }
        }
        sent
    }
}

/// Counts not yet published to the shared progress figures.
#[derive(Default)]
struct Live {
    sent: u64,
    received: u64,
    max_ns: u64,
}

/// Waits until the runner sets the common start; returns it.
fn wait_for_start(shared: &Shared) -> u64 {
    loop {
        let at = shared.start_at.load(Relaxed);
        if at != 0 {
            std::thread::sleep(clock::until(at));
            return at;
        }
        std::thread::sleep(START_POLL_INTERVAL);
    }
}

/// An epoll set over `conns` (readable, by index), with every publisher's first send queued.
fn register(conns: &[RunConn], publishers: &mut Publishers, publishers_n: f64) -> RawFd {
    // SAFETY: plain syscall; the fd is closed by `run`.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epoll >= 0, "epoll_create1: {}", io::Error::last_os_error());
    for (i, c) in conns.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: valid epoll and socket descriptors, valid event pointer.
        let rc = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, c.fd.as_raw_fd(), &mut ev) };
        assert_eq!(rc, 0, "epoll_ctl: {}", io::Error::last_os_error());
        if let Some((publisher, room_pub)) = c.publisher {
            let phase = (publishers.interval * publisher as f64 / publishers_n) as u64;
            let first = publishers.intended(phase, 0);
            let index = publishers.schedules.len();
            publishers.heap.push(Reverse((first, index)));
            publishers.schedules.push(Schedule {
                phase,
                conn: i,
                mark: Mark {
                    room_pub,
                    publisher,
                    seq: 0,
                    intended_ns: 0,
                },
                next: 0,
            });
        }
    }
    epoll
}

/// Waits in `epoll` until `wake` (ns) or readiness; returns the number of events.
fn wait_ready(epoll: RawFd, events: &mut [libc::epoll_event], wake: u64) -> usize {
    let wait = Duration::from_nanos(wake.saturating_sub(now_ns()));
    let timeout = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid epoll fd, event buffer and timespec.
    let n = unsafe {
        libc::epoll_pwait2(
            epoll,
            events.as_mut_ptr(),
            events.len() as i32,
            &timeout,
            std::ptr::null(),
        )
    };
    n.max(0) as usize
}

/// Adds what this core saw since the last report to the shared progress figures.
fn report_live(
    shared: &Shared,
    core: usize,
    recorder: &mut Recorder,
    live: &mut Live,
    done: &mut usize,
) {
    recorder.settle();
    let live = std::mem::take(live);
    shared.sent.fetch_add(live.sent, Relaxed);
    shared.received.fetch_add(live.received, Relaxed);
    shared.recent_max_us.fetch_max(live.max_ns / 1000, Relaxed);
    if recorder.timeline.len() > *done + 1 {
        *done = recorder.timeline.len() - 1;
        if let Some(p99) = recorder.completed_second_p99() {
            shared.core_p99_us[core].store(p99, Relaxed);
        }
    }
}

/// The run's per-publisher, per-connection and per-pair counts, into `result`.
fn tally(result: &mut CoreResult, cfg: &RunConfig, publishers: &Publishers, conns: &[RunConn]) {
    for s in &publishers.schedules {
        result.sent_by_publisher.push((s.mark.publisher, s.next));
    }
    for c in conns {
        if let Some(why) = &c.closed {
            *result.server_closes.entry(why.clone()).or_default() += 1;
        }
        result.batched_frames += c.batched_frames;
        if let Some(r) = c.room {
            for (i, pair) in c.pairs.iter().enumerate() {
                let global = cfg.plan.room_publishers[r][i];
                *result.unique_by_publisher.entry(global).or_default() += pair.unique;
                result.duplicates += pair.duplicates;
                result.out_of_order += pair.out_of_order;
                result.accounting_overflowed |= pair.overflowed;
            }
        }
    }
}

/// Waits for the common start, then runs until the end of the drain (or the hold).
pub fn run(
    core: usize,
    cfg: &RunConfig,
    shared: &Shared,
    mut conns: Vec<RunConn>,
    mut result: CoreResult,
) -> CoreResult {
    let start = wait_for_start(shared);
    let warm = start + cfg.warmup.as_nanos() as u64;
    let stop = warm + cfg.duration.as_nanos() as u64;
    let end = end_of(shared, cfg, start, stop);
    let mut recorder = Recorder::new(start, warm, stop);
    let mut publishers = Publishers {
        heap: BinaryHeap::new(),
        schedules: Vec::new(),
        start,
        stop,
        interval: 1e9 / cfg.plan.rate.max(f64::MIN_POSITIVE),
        content: Vec::with_capacity(cfg.size + 64),
        message: Vec::with_capacity(cfg.size + 256),
    };
    let epoll = register(&conns, &mut publishers, cfg.plan.publishers().max(1) as f64);
    let mut r = Reader::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    let mut last_report = now_ns();
    let mut completed_seconds = 0;
    let (cpu0, wall0) = (thread_cpu_secs(), now_ns());
    loop {
        let now = now_ns();
        if now >= end {
            break;
        }
        r.live.sent += publishers.send_due(now, &mut conns, cfg, &mut recorder);
        // Sleep until the next publish, the next report, or the end, unless sockets are ready.
        let wake = publishers
            .next_due()
            .map_or(end, |due| due.min(end))
            .min(last_report + REPORT_INTERVAL_NS);
        let n = wait_ready(epoll, &mut events, wake);
        let (now, frames) = r.read_events(
            &events[..n],
            &mut conns,
            cfg,
            &mut publishers,
            &mut recorder,
            epoll,
        );
        result.frames += frames;
        if now >= last_report + REPORT_INTERVAL_NS {
            last_report = now;
            report_live(
                shared,
                core,
                &mut recorder,
                &mut r.live,
                &mut completed_seconds,
            );
        }
    }
    shared.sent.fetch_add(r.live.sent, Relaxed);
    shared.received.fetch_add(r.live.received, Relaxed);
    result.cpu_secs = thread_cpu_secs() - cpu0;
    result.wall_secs = (now_ns() - wall0) as f64 / 1e9;
    // SAFETY: closing the epoll descriptor we created.
    unsafe { libc::close(epoll) };
    tally(&mut result, cfg, &publishers, &conns);
    recorder.settle();
    result.recorder = recorder;
    result
}

/// What a core's loop reads with, and the counts not yet reported.
struct Reader {
    scanner: marker::Scanner,
    scratch: Vec<u8>,
    plain: Vec<u8>,
    live: Live,
}

impl Reader {
    fn new() -> Reader {
        Reader {
            scanner: marker::Scanner::new(),
            scratch: vec![0u8; READ_SCRATCH_BYTES],
            plain: Vec::new(),
            live: Live::default(),
        }
    }

    /// Reads every ready socket, sending what falls due between slices of them; returns the
    /// time of the last slice and the frames read.
    fn read_events(
        &mut self,
        events: &[libc::epoll_event],
        conns: &mut [RunConn],
        cfg: &RunConfig,
        publishers: &mut Publishers,
        recorder: &mut Recorder,
        epoll: RawFd,
    ) -> (u64, u64) {
        let mut now = now_ns();
        let mut frames = 0;
        for (i, ev) in events.iter().enumerate() {
            if i > 0 && i % EVENTS_PER_SLICE == 0 {
                now = now_ns();
                self.live.sent += publishers.send_due(now, conns, cfg, recorder);
            }
            let c = &mut conns[ev.u64 as usize];
            let (f, marks, max_ns) = read_ready(
                c,
                &cfg.protocol,
                &mut self.scanner,
                &mut self.scratch,
                &mut self.plain,
                recorder,
                now,
            );
            frames += f;
            self.live.received += marks;
            self.live.max_ns = self.live.max_ns.max(max_ns);
            if c.closed.is_some() {
                forget(epoll, c);
            }
        }
        (now, frames)
    }
}

/// When this core stops: at the start if every connection failed (final: the start waits
/// for all to settle), after the hold if nothing publishes, else after the drain.
fn end_of(shared: &Shared, cfg: &RunConfig, start: u64, stop: u64) -> u64 {
    if shared.ready.load(Relaxed) == 0 {
        start
    } else if cfg.plan.publishers() == 0 {
        start + cfg.hold.as_nanos() as u64
    } else {
        stop + cfg.drain.as_nanos() as u64
    }
}

/// Takes a closed connection out of the epoll set.
fn forget(epoll: RawFd, c: &RunConn) {
    // SAFETY: removing a registered descriptor; errors (already gone) are harmless.
    unsafe {
        libc::epoll_ctl(
            epoll,
            libc::EPOLL_CTL_DEL,
            c.fd.as_raw_fd(),
            std::ptr::null_mut(),
        )
    };
}

/// Reads everything a ready socket holds: (frames, markers, highest latency ns).
fn read_ready(
    c: &mut RunConn,
    protocol: &Protocol,
    scanner: &mut marker::Scanner,
    scratch: &mut [u8],
    plain: &mut Vec<u8>,
    recorder: &mut Recorder,
    now: u64,
) -> (u64, u64, u64) {
    let mut totals = (0, 0, 0);
    loop {
        let n = match recv_into(c, scratch) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(()) => {
                c.closed.get_or_insert_with(|| "connection ended".into());
                return totals;
            }
        };
        let data: &[u8] = match c.tls.as_mut() {
            Some(tls) => {
                plain.clear();
                let opened = tls
                    .open(&scratch[..n], plain)
                    .and_then(|()| tls.drain(&mut c.cipher_out));
                if let Err(e) = opened {
                    c.closed = Some(format!("tls: {e}"));
                    return totals;
                }
                plain
            }
            None => &scratch[..n],
        };
        let mut data = data;
        let mut closed = match complete_partial(c, &mut data, scanner, protocol, recorder, now) {
            Ok(r) => {
                add(&mut totals, r);
                r.3
            }
            Err(why) => {
                c.closed = Some(why);
                return totals;
            }
        };
        if !closed && !data.is_empty() {
            let (consumed, r) = frames(scanner, protocol, data, c, recorder, now);
            c.partial.extend_from_slice(&data[consumed..]);
            add(&mut totals, r);
            closed = r.3;
        }
        if closed || n < scratch.len() {
            break;
        }
    }
    if c.pending_out() > 0 && c.flush_out().is_err() {
        c.closed.get_or_insert_with(|| "connection ended".into());
    }
    totals
}

/// One `recv` into `scratch`: the bytes read, `None` when the socket holds nothing more now,
/// or `Err` when the connection ended.
fn recv_into(c: &RunConn, scratch: &mut [u8]) -> Result<Option<usize>, ()> {
    loop {
        // SAFETY: valid buffer of scratch.len() bytes.
        let n = unsafe {
            libc::recv(
                c.fd.as_raw_fd(),
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            return Ok(Some(n as usize));
        }
        if n == 0 {
            return Err(());
        }
        match io::Error::last_os_error().kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => {}
            _ => return Err(()),
        }
    }
}

/// Completes a frame begun in an earlier read with only the bytes it still needs (taken from
/// the front of `data`), so `partial` never holds more than one frame: joining whole reads to
/// it made every connection's buffer grow to a read's size (fresh pages, a third of a
/// saturated client core) exactly when the client fell behind. Returns the completed frame's
/// counts (none if it is still incomplete), or why the connection must close.
fn complete_partial(
    c: &mut RunConn,
    data: &mut &[u8],
    scanner: &mut marker::Scanner,
    protocol: &Protocol,
    recorder: &mut Recorder,
    now: u64,
) -> Result<(u64, u64, u64, bool), String> {
    if c.partial.is_empty() {
        return Ok((0, 0, 0, false));
    }
    let mut held = std::mem::take(&mut c.partial);
    let mut need = frame::extent(&held);
    while held.len() < need && !data.is_empty() {
        if need > FRAME_BYTES_MAX {
            return Err(format!(
                "server frame of {need} bytes, over the {FRAME_BYTES_MAX}-byte limit"
            ));
        }
        let take = (need - held.len()).min(data.len());
        held.extend_from_slice(&data[..take]);
        *data = &data[take..];
        need = frame::extent(&held);
    }
    let mut r = (0, 0, 0, false);
    if held.len() == need {
        let consumed;
        (consumed, r) = frames(scanner, protocol, &held, c, recorder, now);
        debug_assert!(r.3 || consumed == held.len(), "one whole frame");
        held.clear();
    }
    c.partial = held;
    Ok(r)
}

/// Adds one call of [`frames`]' counts to a read's totals.
fn add(totals: &mut (u64, u64, u64), r: (u64, u64, u64, bool)) {
    totals.0 += r.0;
    totals.1 += r.1;
    totals.2 = totals.2.max(r.2);
}

/// Handles the whole frames at the start of `data`: (bytes consumed, (frames, markers,
/// highest latency ns, closed)).
fn frames(
    scanner: &mut marker::Scanner,
    protocol: &Protocol,
    data: &[u8],
    c: &mut RunConn,
    recorder: &mut Recorder,
    now: u64,
) -> (usize, (u64, u64, u64, bool)) {
    let mut pos = 0;
    let (mut frames, mut marks, mut max_ns) = (0u64, 0u64, 0u64);
    while let Some(f) = next_frame(&data[pos..]) {
        let payload = &data[pos + f.header_len..pos + f.header_len + f.payload_len];
        pos += f.header_len + f.payload_len;
        frames += 1;
        match f.opcode {
            OP_TEXT if protocol.pong_for(payload).is_some() => {
                let pong = protocol.pong_for(payload).expect("checked");
                let mask = c.masks.next_mask();
                write_masked(&mut c.out, OP_TEXT, pong, mask);
            }
            OP_TEXT | 0 => {
                let before = marks;
                scanner.scan(payload, |m| {
                    marks += 1;
                    if let Some(pair) = c.pairs.get_mut(m.room_pub as usize) {
                        pair.on(m.seq);
                    }
                    max_ns = max_ns.max(now.saturating_sub(m.intended_ns));
                    recorder.on_received(m.intended_ns, now);
                });
                if marks - before > 1 {
                    c.batched_frames += 1;
                }
            }
            OP_PING => {
                let mask = c.masks.next_mask();
                write_masked(&mut c.out, OP_PONG, payload, mask);
            }
            OP_CLOSE => {
                c.closed = Some(format!("closed by server ({})", close_code(payload)));
                return (pos, (frames, marks, max_ns, true));
            }
            _ => {}
        }
    }
    (pos, (frames, marks, max_ns, false))
}

/// The close code in a close frame's payload, as text.
pub fn close_code(payload: &[u8]) -> String {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]]).to_string()
    } else {
        "no code".into()
    }
}

/// CPU time of the calling thread, in seconds.
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// One connection's socket pair and everything `read_ready` reads it with.
    struct Reader {
        server: UnixStream,
        conn: RunConn,
        scanner: marker::Scanner,
        scratch: Vec<u8>,
        plain: Vec<u8>,
        recorder: Recorder,
    }

    impl Reader {
        fn new(scratch_len: usize) -> Self {
            let (client, server) = UnixStream::pair().unwrap();
            client.set_nonblocking(true).unwrap();
            Self {
                server,
                conn: RunConn {
                    fd: OwnedFd::from(client),
                    tls: None,
                    partial: Vec::new(),
                    out: Vec::new(),
                    cipher_out: Vec::new(),
                    masks: Masks::new(1),
                    pairs: vec![Pair::default()],
                    closed: None,
                    index: 0,
                    room: Some(0),
                    batched_frames: 0,
                    publisher: None,
                },
                scanner: marker::Scanner::new(),
                scratch: vec![0u8; scratch_len],
                plain: Vec::new(),
                recorder: Recorder::new(0, 0, u64::MAX),
            }
        }

        /// The server writes `piece`; the client reads what is ready: (frames, markers).
        fn feed(&mut self, piece: &[u8]) -> (u64, u64) {
            self.server.write_all(piece).unwrap();
            let (frames, marks, _) = read_ready(
                &mut self.conn,
                &Protocol::Corecast,
                &mut self.scanner,
                &mut self.scratch,
                &mut self.plain,
                &mut self.recorder,
                2_000_000,
            );
            (frames, marks)
        }
    }

    #[test]
    fn a_frame_over_the_limit_closes_the_connection_instead_of_buffering() {
        let mut r = Reader::new(64);
        let mut header = vec![0x81u8, 127];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        r.feed(&header);
        r.feed(&[b'x'; 100]);
        let why = r.conn.closed.expect("closed");
        assert!(why.contains("1099511627786 bytes"), "{why}");
        assert!(r.conn.partial.capacity() < 1024);
    }

    #[test]
    fn frames_split_across_reads_are_all_found_and_the_held_bytes_stay_within_one_frame() {
        // Frames of every header size, each with markers, sent in chunks that cut them anywhere
        // and read through scratch buffers smaller and larger than a frame. The held bytes
        // (and the buffer holding them) stay within one frame, however large the reads.
        let small: Vec<usize> = [40usize, 200, 1_500, 60, 3].repeat(40);
        for sizes in [small, vec![40, 200, 70_000, 60, 3]] {
            check_split_reads(&sizes);
        }
    }

    fn check_split_reads(sizes: &[usize]) {
        let mut stream = Vec::new();
        let mut seq = 0u64;
        let mut largest = 0;
        for &size in sizes {
            let mut payload = Vec::new();
            while payload.len() + 48 < size {
                let mark = Mark {
                    room_pub: 0,
                    publisher: 9,
                    seq,
                    intended_ns: 1_000 + seq,
                };
                marker::write(&mut payload, &mark, 48);
                seq += 1;
            }
            payload.resize(size, b'.');
            let frame = frame::server_frame(&payload);
            largest = largest.max(frame.len());
            stream.extend_from_slice(&frame);
        }
        let cuts = [(1usize, 5usize), (7, 64), (333, 1_000), (9_999, 256 * 1024)];
        for (chunk, scratch_len) in cuts {
            let mut r = Reader::new(scratch_len);
            let (mut frames_seen, mut marks) = (0, 0);
            for piece in stream.chunks(chunk) {
                let (f, m) = r.feed(piece);
                frames_seen += f;
                marks += m;
                assert!(
                    r.conn.partial.len() < largest,
                    "held {} bytes",
                    r.conn.partial.len()
                );
                assert!(
                    r.conn.partial.capacity() <= 2 * largest,
                    "{}",
                    r.conn.partial.capacity()
                );
                assert!(r.conn.closed.is_none());
            }
            assert_eq!(frames_seen, sizes.len() as u64, "chunks of {chunk}");
            assert_eq!(marks, seq, "chunks of {chunk}");
            assert!(r.conn.partial.is_empty());
            assert_eq!(r.conn.pairs[0].unique, seq);
            assert_eq!(r.conn.pairs[0].duplicates, 0);
        }
    }
}
