//! Runs a plan: one glommio executor per core, a task per connection. Connections connect,
//! upgrade and join; when all are ready every core starts at the same instant; publishers send
//! on an open-loop schedule; receivers account every message until the drain ends.
//!
//! Invariants:
//! - Socket reads land in one scratch buffer per core; a connection keeps only the bytes of an
//!   incomplete frame. The clock is read once per read, not per frame.
//! - A message counts as sent only once it is handed to the socket buffer (or queued behind
//!   bytes that will be); a publisher that cannot keep up falls behind its schedule (reported
//!   as schedule lag) rather than dropping messages.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use hdrhistogram::Histogram;

use crate::accounting::Pair;
use crate::clock::{self, now_ns};
use crate::frame::{next_frame, write_masked, Masks, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::handshake::{self, Refusal};
use crate::marker::{self, Mark};
use crate::protocol::Protocol;
use crate::recorder::{self, Recorder};
use crate::scenario::{ConnPlan, Plan};
use crate::tls::Tls;

/// Bytes one read takes from a socket.
const READ_SCRATCH_BYTES: usize = 256 * 1024;

/// Bytes a publisher may have waiting for the socket before it stops generating messages
/// (and falls behind its schedule instead).
const OUT_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Bytes of an HTTP response head or setup frame accepted before giving up.
const SETUP_BYTES_MAX: usize = 64 * 1024;

/// How often waiting connections look at the start signal.
const START_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Everything a run needs.
#[derive(Clone)]
pub struct RunConfig {
    /// Where to connect; `{room}` in the path is replaced by the connection's room.
    pub target: Target,
    /// TLS settings, for `wss://` targets.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub protocol: Protocol,
    pub plan: Plan,
    /// Content bytes per message (the marker padded).
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub cores: usize,
    /// CPUs to pin the cores to, in order; empty: unbound.
    pub cpus: Vec<usize>,
    pub connect_timeout: Duration,
    /// New connections per second over all cores; 0: as fast as possible.
    pub ramp: f64,
    pub headers: Vec<String>,
    pub subprotocols: Vec<String>,
    pub source_ips: Vec<IpAddr>,
    /// The server does not deliver a publisher's message back to it.
    pub exclude_self: bool,
    /// For `connect`: how long to hold the connections once all are up.
    pub hold: Duration,
}

impl RunConfig {
    /// A run of `plan` against `target` with the CLI's defaults: 32-byte content, 1 s warm-up,
    /// 10 s measured, 2 s drain, one unpinned core, 10 s to connect, all at once. TLS (with
    /// Mozilla's roots) is set up for `wss://` targets.
    pub fn new(target: Target, protocol: Protocol, plan: Plan) -> Self {
        let tls = target.secure.then(|| crate::tls::client_config(false));
        RunConfig {
            target,
            tls,
            protocol,
            plan,
            size: 32,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            drain: Duration::from_secs(2),
            cores: 1,
            cpus: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            ramp: 0.0,
            headers: Vec::new(),
            subprotocols: Vec::new(),
            source_ips: Vec::new(),
            exclude_self: false,
            hold: Duration::from_secs(5),
        }
    }
}

/// Where to connect, from a `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` as written (the Host header).
    pub host: String,
    /// The host alone (TLS server name).
    pub server_name: String,
    pub addr: SocketAddr,
    pub path: String,
    pub secure: bool,
}

impl Target {
    /// Parses `ws://host[:port]/path` or `wss://host[:port]/path`.
    pub fn parse(url: &str) -> Result<Target, crate::error::Error> {
        let bad = || crate::error::Error::Url { url: url.into() };
        let (secure, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return Err(bad()),
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (server_name, with_port) = match hostport.rsplit_once(':') {
            Some((h, _)) if !hostport.ends_with(']') => (h.to_string(), hostport.to_string()),
            _ => (
                hostport.to_string(),
                format!("{hostport}:{}", if secure { 443 } else { 80 }),
            ),
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Target {
            host: hostport.to_string(),
            server_name: server_name.trim_matches(['[', ']']).to_string(),
            addr,
            path: path.to_string(),
            secure,
        })
    }
}

/// Live counters the progress display reads.
#[derive(Debug, Default)]
pub struct Shared {
    /// Per core: p99 latency (µs) of its last complete second of the run.
    pub core_p99_us: Vec<AtomicU64>,
    pub connected: AtomicUsize,
    pub ready: AtomicUsize,
    /// Connections whose setup ended, well or not.
    pub settled: AtomicUsize,
    pub failed: AtomicUsize,
    /// Start instant (clock ns); 0 until every connection settled.
    pub start_at: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Highest latency seen since the display last looked (µs).
    pub recent_max_us: AtomicU64,
    /// Cores that finished their share.
    pub cores_done: AtomicUsize,
}

/// What one core measured.
#[derive(Debug)]
pub struct CoreResult {
    pub recorder: Recorder,
    pub handshake: Histogram<u64>,
    pub connects_ok: u64,
    pub failures: BTreeMap<String, u64>,
    pub server_closes: BTreeMap<String, u64>,
    /// (global publisher, messages sent).
    pub sent_by_publisher: Vec<(u32, u64)>,
    /// Unique messages received, by global publisher.
    pub unique_by_publisher: BTreeMap<u32, u64>,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub accounting_overflowed: bool,
    /// Ready members per room index.
    pub members: Vec<u64>,
    pub frames: u64,
    /// CPU seconds this core used between the start and the end of the run.
    pub cpu_secs: f64,
    pub wall_secs: f64,
}

impl Shared {
    pub fn new(cores: usize) -> Self {
        Shared {
            core_p99_us: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            ..Shared::default()
        }
    }

    /// The highest per-core p99 of the last complete second (µs).
    pub fn current_p99_us(&self) -> u64 {
        self.core_p99_us
            .iter()
            .map(|a| a.load(Relaxed))
            .max()
            .unwrap_or(0)
    }
}

impl CoreResult {
    fn empty(rooms: usize) -> Self {
        CoreResult {
            recorder: Recorder::new(0, 0, 0),
            handshake: recorder::histogram(),
            connects_ok: 0,
            failures: BTreeMap::new(),
            server_closes: BTreeMap::new(),
            sent_by_publisher: Vec::new(),
            unique_by_publisher: BTreeMap::new(),
            duplicates: 0,
            out_of_order: 0,
            accounting_overflowed: false,
            members: vec![0; rooms],
            frames: 0,
            cpu_secs: 0.0,
            wall_secs: 0.0,
        }
    }
}

struct Core {
    id: usize,
    cfg: Arc<RunConfig>,
    shared: Arc<Shared>,
    state: RefCell<CoreState>,
}

impl Core {
    /// Installs the recorder for the run starting at `start` (whichever task sees it first).
    fn ensure_recorder(&self, start: u64) {
        let mut st = self.state.borrow_mut();
        if st.recorder.is_none() {
            let warm = start + self.cfg.warmup.as_nanos() as u64;
            st.recorder = Some(Recorder::new(
                start,
                warm,
                warm + self.cfg.duration.as_nanos() as u64,
            ));
        }
    }
}

struct CoreState {
    scratch: Vec<u8>,
    /// Decrypted bytes of the last read, for TLS connections.
    plain: Vec<u8>,
    finder: memchr::memmem::Finder<'static>,
    recorder: Option<Recorder>,
    result: CoreResult,
}

/// Runs core `id`'s share of the plan (connections `i` with `i % cores == id`).
pub async fn run_core(id: usize, cfg: Arc<RunConfig>, shared: Arc<Shared>) -> CoreResult {
    let rooms = cfg.plan.rooms.len();
    let core = Rc::new(Core {
        id,
        cfg: cfg.clone(),
        shared: shared.clone(),
        state: RefCell::new(CoreState {
            scratch: vec![0; READ_SCRATCH_BYTES],
            plain: Vec::new(),
            finder: marker::finder(),
            recorder: None,
            result: CoreResult::empty(rooms),
        }),
    });
    let mine: Vec<(usize, ConnPlan)> = cfg
        .plan
        .conns
        .iter()
        .enumerate()
        .filter(|(i, _)| i % cfg.cores == id)
        .map(|(i, c)| (i, c.clone()))
        .collect();
    let per_core_ramp = cfg.ramp / cfg.cores as f64;
    let began = now_ns();
    let mut tasks = Vec::with_capacity(mine.len());
    for (n, (index, plan)) in mine.into_iter().enumerate() {
        if per_core_ramp > 0.0 {
            let at = began + (n as f64 / per_core_ramp * 1e9) as u64;
            glommio::timer::sleep(clock::until(at)).await;
        }
        tasks.push(glommio::spawn_local(conn_task(core.clone(), index, plan)));
    }
    let start = wait_start(&shared).await;
    core.ensure_recorder(start);
    let cpu0 = thread_cpu_secs();
    let wall0 = now_ns();
    for t in tasks {
        t.await;
    }
    let mut st = core.state.borrow_mut();
    st.result.cpu_secs = thread_cpu_secs() - cpu0;
    st.result.wall_secs = (now_ns() - wall0) as f64 / 1e9;
    st.result.recorder = st.recorder.take().expect("set at start");
    let r = std::mem::replace(&mut st.result, CoreResult::empty(0));
    shared.cores_done.fetch_add(1, Relaxed);
    r
}

async fn wait_start(shared: &Shared) -> u64 {
    loop {
        let at = shared.start_at.load(Relaxed);
        if at != 0 {
            glommio::timer::sleep(clock::until(at)).await;
            return at;
        }
        glommio::timer::sleep(START_POLL_INTERVAL).await;
    }
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Why a connection did not make it to the run.
fn cause_of(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout".into(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset".into(),
        io::ErrorKind::UnexpectedEof => "closed during setup".into(),
        _ if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) => {
            "out of file descriptors".into()
        }
        _ if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
            "no local port free (add --source-ips)".into()
        }
        _ => format!("io: {e}"),
    }
}

struct Conn {
    stream: TcpStream,
    /// The TLS session of a `wss://` connection.
    tls: Option<Tls>,
    /// Plaintext bytes read but not yet a whole frame.
    partial: Vec<u8>,
    /// Plaintext bytes to write (encrypted into `cipher_out` first under TLS).
    out: Vec<u8>,
    /// Ciphertext the socket did not take yet.
    cipher_out: Vec<u8>,
    masks: Masks,
    pairs: Vec<Pair>,
    closed: Option<String>,
}

impl Conn {
    /// Writes what `out` holds without waiting; keeps the rest.
    fn flush_out(&mut self) -> io::Result<()> {
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
            // SAFETY: valid buffer; MSG_NOSIGNAL avoids SIGPIPE.
            let n = unsafe {
                libc::send(
                    self.stream.as_raw_fd(),
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
    fn pending_out(&self) -> usize {
        self.out.len() + self.cipher_out.len()
    }

    /// Setup phase: writes `plain` completely (encrypted under TLS).
    async fn send_all(&mut self, plain: &[u8]) -> io::Result<()> {
        match self.tls.as_mut() {
            Some(tls) => {
                let mut cipher = Vec::with_capacity(plain.len() + 64);
                tls.seal(plain, &mut cipher)?;
                self.stream.write_all(&cipher).await
            }
            None => self.stream.write_all(plain).await,
        }
    }

    /// Setup phase: reads once more into `partial` (decrypted under TLS).
    async fn read_more(&mut self) -> io::Result<()> {
        if self.partial.len() >= SETUP_BYTES_MAX {
            return Err(setup_failure("setup response too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        match self.tls.as_mut() {
            Some(tls) => {
                tls.open(&chunk[..n], &mut self.partial)?;
                let mut reply = Vec::new();
                tls.drain(&mut reply)?;
                if !reply.is_empty() {
                    self.stream.write_all(&reply).await?;
                }
            }
            None => self.partial.extend_from_slice(&chunk[..n]),
        }
        Ok(())
    }

    /// Runs the TLS handshake to completion.
    async fn tls_handshake(&mut self) -> io::Result<()> {
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Ok(());
            };
            let mut out = Vec::new();
            tls.drain(&mut out)?;
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
            }
            if !self.tls.as_ref().is_some_and(Tls::is_handshaking) {
                return Ok(());
            }
            self.read_more().await?;
        }
    }
}

async fn conn_task(core: Rc<Core>, index: usize, plan: ConnPlan) {
    let cfg = core.cfg.clone();
    let shared = core.shared.clone();
    let room = plan.room.map(|r| cfg.plan.rooms[r].as_str());
    let setup = glommio::timer::timeout(cfg.connect_timeout, async {
        connect_and_join(&core, index, &plan, room)
            .await
            .map_err(glommio::GlommioError::IoError)
    })
    .await;
    let mut conn = match setup {
        Ok(c) => c,
        Err(e) => {
            let cause = match e {
                glommio::GlommioError::IoError(io) => match io.get_ref() {
                    Some(inner) if inner.is::<SetupFailure>() => inner.to_string(),
                    _ => cause_of(&io),
                },
                glommio::GlommioError::TimedOut(_) => "timeout".into(),
                other => other.to_string(),
            };
            *core
                .state
                .borrow_mut()
                .result
                .failures
                .entry(cause)
                .or_default() += 1;
            shared.failed.fetch_add(1, Relaxed);
            shared.settled.fetch_add(1, Relaxed);
            return;
        }
    };
    if let Some(r) = plan.room {
        core.state.borrow_mut().result.members[r] += 1;
        conn.pairs = vec![Pair::default(); cfg.plan.room_publishers[r].len()];
    }
    shared.ready.fetch_add(1, Relaxed);
    shared.settled.fetch_add(1, Relaxed);

    let start = wait_start(&shared).await;
    core.ensure_recorder(start);
    let stop = start + (cfg.warmup + cfg.duration).as_nanos() as u64;
    let end = if cfg.plan.publishers() == 0 {
        start + cfg.hold.as_nanos() as u64
    } else {
        stop + cfg.drain.as_nanos() as u64
    };
    let conn = Rc::new(RefCell::new(conn));
    let publisher = plan.publisher.map(|(global, room_pub)| {
        glommio::spawn_local(publish(
            core.clone(),
            conn.clone(),
            index,
            room.unwrap_or("").to_string(),
            Mark {
                room_pub,
                publisher: global,
                seq: 0,
                intended_ns: 0,
            },
            start,
            stop,
        ))
    });
    futures_lite::future::or(receive(&core, &conn), async {
        glommio::timer::sleep(clock::until(end)).await;
    })
    .await;
    if let Some(p) = publisher {
        p.await;
    }
    let conn = conn.borrow();
    let mut st = core.state.borrow_mut();
    if let Some(code) = &conn.closed {
        *st.result.server_closes.entry(code.clone()).or_default() += 1;
    }
    if let Some(r) = plan.room {
        for (i, pair) in conn.pairs.iter().enumerate() {
            let global = cfg.plan.room_publishers[r][i];
            *st.result.unique_by_publisher.entry(global).or_default() += pair.unique;
            st.result.duplicates += pair.duplicates;
            st.result.out_of_order += pair.out_of_order;
            st.result.accounting_overflowed |= pair.overflowed;
        }
    }
}

/// A setup step the server refused (shown as the failure's cause).
#[derive(Debug)]
struct SetupFailure(String);

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupFailure {}

fn setup_failure(s: impl Into<String>) -> io::Error {
    io::Error::other(SetupFailure(s.into()))
}

async fn connect_and_join(
    core: &Core,
    index: usize,
    plan: &ConnPlan,
    room: Option<&str>,
) -> io::Result<Conn> {
    let cfg = &core.cfg;
    let began = now_ns();
    let stream = if cfg.source_ips.is_empty() {
        TcpStream::connect(cfg.target.addr)
            .await
            .map_err(io::Error::from)?
    } else {
        let ip = cfg.source_ips[index % cfg.source_ips.len()];
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(cfg.target.addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.bind(&SocketAddr::new(ip, 0).into())?;
        // Loopback connects complete at once; a blocking connect keeps this simple.
        socket.connect_timeout(&cfg.target.addr.into(), cfg.connect_timeout)?;
        // SAFETY: a connected socket owned by nobody else.
        unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) }
    };
    stream.set_nodelay(true).map_err(io::Error::from)?;
    let tls = match &cfg.tls {
        Some(config) => Some(Tls::new(config.clone(), &cfg.target.server_name)?),
        None => None,
    };
    let mut conn = Conn {
        stream,
        tls,
        partial: Vec::with_capacity(1024),
        out: Vec::new(),
        cipher_out: Vec::new(),
        masks: Masks::new(index as u64 ^ 0x5851_f42d_4c95_7f2d),
        pairs: Vec::new(),
        closed: None,
    };
    conn.tls_handshake()
        .await
        .map_err(|e| setup_failure(format!("tls: {e}")))?;
    let key = handshake::key_for(index as u64);
    let path = cfg.target.path.replace("{room}", room.unwrap_or(""));
    conn.send_all(&handshake::request(
        &cfg.target.host,
        &path,
        &key,
        &cfg.headers,
        &cfg.subprotocols,
    ))
    .await?;
    let head_len = loop {
        conn.read_more().await?;
        match handshake::response(&conn.partial, &key) {
            Ok(Some(n)) => break n,
            Ok(None) => {}
            Err(Refusal::Status(line)) => return Err(setup_failure(line)),
            Err(Refusal::Invalid(why)) => return Err(setup_failure(why)),
        }
    };
    conn.partial.drain(..head_len);
    {
        let mut st = core.state.borrow_mut();
        let us = ((now_ns() - began) / 1000).clamp(1, recorder::LATENCY_US_MAX);
        st.result.handshake.record(us).expect("clamped");
        st.result.connects_ok += 1;
    }
    core.shared.connected.fetch_add(1, Relaxed);
    if let Some(greeting) = cfg.protocol.greeting() {
        wait_for_text(&mut conn, greeting).await?;
    }
    if let Some((hello, ack)) = cfg.protocol.hello() {
        let mask = conn.masks.next_mask();
        let mut frame = Vec::new();
        write_masked(&mut frame, OP_TEXT, hello, mask);
        conn.send_all(&frame).await?;
        wait_for_text(&mut conn, ack).await?;
    }
    if let (Some(room), Some(_)) = (room, plan.room) {
        if let Some(join) = cfg.protocol.join(room, index) {
            let mask = conn.masks.next_mask();
            let mut frame = Vec::new();
            write_masked(&mut frame, OP_TEXT, &join, mask);
            conn.send_all(&frame).await?;
            if let Some(joined) = cfg.protocol.joined() {
                wait_for_text(&mut conn, joined).await?;
            }
        }
    }
    Ok(conn)
}

/// Reads frames until a text frame containing `needle`; a close fails the setup.
async fn wait_for_text(conn: &mut Conn, needle: &str) -> io::Result<()> {
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    loop {
        while let Some(f) = next_frame(&conn.partial) {
            let payload = &conn.partial[f.header_len..f.header_len + f.payload_len];
            match f.opcode {
                OP_TEXT if finder.find(payload).is_some() => {
                    conn.partial.drain(..f.header_len + f.payload_len);
                    return Ok(());
                }
                OP_CLOSE => {
                    let code = close_code(payload);
                    return Err(setup_failure(format!("closed by server ({code})")));
                }
                _ => {}
            }
            conn.partial.drain(..f.header_len + f.payload_len);
        }
        conn.read_more().await?;
    }
}

fn close_code(payload: &[u8]) -> String {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]]).to_string()
    } else {
        "no code".into()
    }
}

/// Reads until the stream ends (or the caller stops waiting), accounting every marker.
async fn receive(core: &Core, conn: &RefCell<Conn>) {
    std::future::poll_fn(|cx| {
        let mut st = core.state.borrow_mut();
        let st = &mut *st;
        let mut c = conn.borrow_mut();
        loop {
            let read = Pin::new(&mut c.stream).poll_read(cx, &mut st.scratch);
            let n = match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    if c.closed.is_none() {
                        c.closed = Some("connection ended".into());
                    }
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => n,
            };
            let now = now_ns();
            let c = &mut *c;
            let data: &[u8] = match c.tls.as_mut() {
                Some(tls) => {
                    st.plain.clear();
                    let opened = tls
                        .open(&st.scratch[..n], &mut st.plain)
                        .and_then(|()| tls.drain(&mut c.cipher_out));
                    if let Err(e) = opened {
                        c.closed = Some(format!("tls: {e}"));
                        return Poll::Ready(());
                    }
                    &st.plain
                }
                None => &st.scratch[..n],
            };
            let recorder = st.recorder.as_mut().expect("set at start");
            let (frames, marks, max_us, closed) = if c.partial.is_empty() {
                let (consumed, r) = frames(&st.finder, &core.cfg.protocol, data, c, recorder, now);
                c.partial = data[consumed..].to_vec();
                r
            } else {
                let mut buf = std::mem::take(&mut c.partial);
                buf.extend_from_slice(data);
                let (consumed, r) = frames(&st.finder, &core.cfg.protocol, &buf, c, recorder, now);
                buf.drain(..consumed);
                c.partial = buf;
                r
            };
            st.result.frames += frames;
            if let Some(p99) = st
                .recorder
                .as_ref()
                .and_then(Recorder::completed_second_p99)
            {
                core.shared.core_p99_us[core.id].store(p99, Relaxed);
            }
            core.shared.received.fetch_add(marks, Relaxed);
            core.shared.recent_max_us.fetch_max(max_us, Relaxed);
            if c.pending_out() > 0 && c.flush_out().is_err() {
                return Poll::Ready(());
            }
            if closed {
                return Poll::Ready(());
            }
        }
    })
    .await
}

/// Handles the whole frames at the start of `data`: (bytes consumed, (frames, markers,
/// highest latency µs, closed)).
fn frames(
    finder: &memchr::memmem::Finder<'_>,
    protocol: &Protocol,
    data: &[u8],
    c: &mut Conn,
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
            OP_TEXT | 0 => marker::scan(finder, payload, |m| {
                marks += 1;
                if let Some(pair) = c.pairs.get_mut(m.room_pub as usize) {
                    pair.on(m.seq);
                }
                max_ns = max_ns.max(now.saturating_sub(m.intended_ns));
                recorder.on_received(m.intended_ns, now);
            }),
            OP_PING => {
                let mask = c.masks.next_mask();
                write_masked(&mut c.out, OP_PONG, payload, mask);
            }
            OP_CLOSE => {
                c.closed = Some(format!("closed by server ({})", close_code(payload)));
                return (pos, (frames, marks, max_ns / 1000, true));
            }
            _ => {}
        }
    }
    (pos, (frames, marks, max_ns / 1000, false))
}

enum Step {
    Continue,
    /// The socket is full: wait before generating more.
    Backoff,
    Stop,
}

/// Encodes and writes every message due by now (never borrowing across an await).
#[allow(clippy::too_many_arguments)]
fn publish_due(
    core: &Core,
    conn: &RefCell<Conn>,
    room: &str,
    index: usize,
    mark: &mut Mark,
    k: &mut u64,
    intended: &dyn Fn(u64) -> u64,
    stop: u64,
    (content, message): &mut (Vec<u8>, Vec<u8>),
) -> Step {
    let cfg = &core.cfg;
    let now = now_ns();
    let mut c = conn.borrow_mut();
    if c.closed.is_some() {
        return Step::Stop;
    }
    let mut sent = 0;
    {
        let mut st = core.state.borrow_mut();
        let recorder = st.recorder.as_mut().expect("set at start");
        while intended(*k) <= now && intended(*k) < stop && c.pending_out() < OUT_BYTES_MAX {
            mark.seq = *k;
            mark.intended_ns = intended(*k);
            content.clear();
            marker::write(content, mark, cfg.size);
            message.clear();
            cfg.protocol.publish_into(message, room, content, index, *k);
            let mask = c.masks.next_mask();
            write_masked(&mut c.out, OP_TEXT, message, mask);
            recorder.on_sent(mark.intended_ns, now);
            *k += 1;
            sent += 1;
        }
    }
    core.shared.sent.fetch_add(sent, Relaxed);
    if c.flush_out().is_err() {
        c.closed.get_or_insert_with(|| "connection ended".into());
        return Step::Stop;
    }
    if c.pending_out() >= OUT_BYTES_MAX {
        Step::Backoff
    } else {
        Step::Continue
    }
}

/// Tries to write what is left; true while bytes remain on an open connection.
fn flush_pending(conn: &RefCell<Conn>) -> bool {
    let mut c = conn.borrow_mut();
    !(c.pending_out() == 0 || c.closed.is_some() || c.flush_out().is_err() || c.pending_out() == 0)
}

/// Sends on an open-loop schedule: message k is meant for `start + k / rate`; late messages
/// carry their intended time, so the delay counts as latency.
async fn publish(
    core: Rc<Core>,
    conn: Rc<RefCell<Conn>>,
    index: usize,
    room: String,
    mut mark: Mark,
    start: u64,
    stop: u64,
) {
    let cfg = core.cfg.clone();
    let interval = 1e9 / cfg.plan.rate;
    let intended = |k: u64| start + (k as f64 * interval) as u64;
    let mut k: u64 = 0;
    let mut bufs = (
        Vec::with_capacity(cfg.size + 64),
        Vec::with_capacity(cfg.size + 256),
    );
    loop {
        let next = intended(k);
        if next >= stop {
            break;
        }
        let wait = clock::until(next);
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        let step = publish_due(
            &core, &conn, &room, index, &mut mark, &mut k, &intended, stop, &mut bufs,
        );
        match step {
            Step::Stop => break,
            Step::Backoff => glommio::timer::sleep(Duration::from_millis(1)).await,
            Step::Continue => {}
        }
    }
    // Let what is still queued leave.
    while flush_pending(&conn) {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    core.state
        .borrow_mut()
        .result
        .sent_by_publisher
        .push((mark.publisher, k));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://127.0.0.1:3000/ws/room/{room}").unwrap();
        assert_eq!(t.host, "127.0.0.1:3000");
        assert_eq!(t.server_name, "127.0.0.1");
        assert_eq!(t.addr.port(), 3000);
        assert_eq!(t.path, "/ws/room/{room}");
        assert!(!t.secure);
        let t = Target::parse("wss://localhost").unwrap();
        assert!(t.secure);
        assert_eq!(t.addr.port(), 443);
        assert_eq!(t.server_name, "localhost");
        assert_eq!(t.path, "/");
        let t = Target::parse("ws://[::1]:9/x").unwrap();
        assert_eq!(t.server_name, "::1");
        assert!(Target::parse("http://x/").is_err());
    }
}
