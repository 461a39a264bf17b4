//! Runs a plan, one thread per core. Each core first sets its connections up on a glommio
//! executor (connect, TLS, upgrade, join: concurrent, at the ramp rate), hands the sockets to
//! [`event_loop`] as plain descriptors, and when every core is ready all start at the same
//! instant.
//!
//! Invariant: a connection counts as a member of its room only once its join was answered, and
//! every connection that failed is counted once, by cause.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use hdrhistogram::Histogram;

use crate::accounting::Pair;
use crate::clock::{self, now_ns};
use crate::event_loop::{self, RunConn};
use crate::frame::{next_frame, write_masked, Masks, OP_CLOSE, OP_TEXT};
use crate::handshake::{self, Refusal};
use crate::protocol::Protocol;
use crate::recorder::{self, Recorder};
use crate::scenario::{ConnPlan, Plan};
use crate::tls::Tls;

/// io_uring buffer memory per core (glommio's default exceeds common memlock limits).
const IO_MEMORY_BYTES: usize = 1024 * 1024;

/// Bytes of an HTTP response head or setup frame accepted before giving up.
const SETUP_BYTES_MAX: usize = 64 * 1024;

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
    /// Frames that carried more than one message.
    pub batched_frames: u64,
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
            batched_frames: 0,
            cpu_secs: 0.0,
            wall_secs: 0.0,
        }
    }
}

struct Core {
    cfg: Arc<RunConfig>,
    shared: Arc<Shared>,
    result: RefCell<CoreResult>,
}

/// Runs core `id`'s share of the plan (connections `i` with `i % cores == id`) on the calling
/// thread: connection setup on a glommio executor (pinned to `cfg.cpus[id]` when given), then
/// the measured run in [`event_loop::run`].
pub fn run_core(id: usize, cfg: Arc<RunConfig>, shared: Arc<Shared>) -> Result<CoreResult, String> {
    let placement = match cfg.cpus.get(id) {
        Some(&cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    };
    let executor = glommio::LocalExecutorBuilder::new(placement)
        .name(&format!("loadgen-{id}"))
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .map_err(|e| e.to_string())?;
    let (conns, result) = executor.run(setup_core(id, cfg.clone(), shared.clone()));
    drop(executor);
    let result = event_loop::run(id, &cfg, &shared, conns, result);
    shared.cores_done.fetch_add(1, Relaxed);
    Ok(result)
}

/// Connects, upgrades and joins this core's connections (at the ramp rate).
async fn setup_core(
    id: usize,
    cfg: Arc<RunConfig>,
    shared: Arc<Shared>,
) -> (Vec<RunConn>, CoreResult) {
    let rooms = cfg.plan.rooms.len();
    let core = Rc::new(Core {
        cfg: cfg.clone(),
        shared,
        result: RefCell::new(CoreResult::empty(rooms)),
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
    let mut conns = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Some(c) = t.await {
            conns.push(c);
        }
    }
    let result = core.result.replace(CoreResult::empty(0));
    (conns, result)
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

/// A connection during setup.
struct Conn {
    stream: TcpStream,
    /// The TLS session of a `wss://` connection.
    tls: Option<Tls>,
    /// Plaintext bytes read but not yet used.
    partial: Vec<u8>,
    masks: Masks,
}

impl Conn {
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

/// Sets one connection up; `None` (with its cause counted) when it failed.
async fn conn_task(core: Rc<Core>, index: usize, plan: ConnPlan) -> Option<RunConn> {
    let cfg = core.cfg.clone();
    let shared = core.shared.clone();
    let room = plan.room.map(|r| cfg.plan.rooms[r].as_str());
    let setup = glommio::timer::timeout(cfg.connect_timeout, async {
        connect_and_join(&core, index, &plan, room)
            .await
            .map_err(glommio::GlommioError::IoError)
    })
    .await;
    let conn = match setup {
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
            *core.result.borrow_mut().failures.entry(cause).or_default() += 1;
            shared.failed.fetch_add(1, Relaxed);
            shared.settled.fetch_add(1, Relaxed);
            return None;
        }
    };
    // The run does not use glommio: keep a duplicate of the socket, let the stream go.
    // SAFETY: dup of an open descriptor; the duplicate is owned by the OwnedFd alone.
    let fd = unsafe { libc::dup(conn.stream.as_raw_fd()) };
    if fd < 0 {
        *core
            .result
            .borrow_mut()
            .failures
            .entry(cause_of(&io::Error::last_os_error()))
            .or_default() += 1;
        shared.failed.fetch_add(1, Relaxed);
        shared.settled.fetch_add(1, Relaxed);
        return None;
    }
    drop(conn.stream);
    let pairs = match plan.room {
        Some(r) => {
            core.result.borrow_mut().members[r] += 1;
            vec![Pair::default(); cfg.plan.room_publishers[r].len()]
        }
        None => Vec::new(),
    };
    shared.ready.fetch_add(1, Relaxed);
    shared.settled.fetch_add(1, Relaxed);
    Some(RunConn {
        // SAFETY: fd is the fresh duplicate made above.
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
        tls: conn.tls,
        partial: conn.partial,
        out: Vec::new(),
        cipher_out: Vec::new(),
        masks: conn.masks,
        pairs,
        closed: None,
        index,
        room: plan.room,
        publisher: plan.publisher,
        batched_frames: 0,
    })
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
    let stream = tcp_connect(cfg, index).await?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    let tls = match &cfg.tls {
        Some(config) => Some(Tls::new(config.clone(), &cfg.target.server_name)?),
        None => None,
    };
    let mut conn = Conn {
        stream,
        tls,
        partial: Vec::with_capacity(1024),
        masks: Masks::new(index as u64 ^ 0x5851_f42d_4c95_7f2d),
    };
    conn.tls_handshake()
        .await
        .map_err(|e| setup_failure(format!("tls: {e}")))?;
    upgrade(&mut conn, cfg, index, room).await?;
    {
        let mut result = core.result.borrow_mut();
        let us = ((now_ns() - began) / 1000).clamp(1, recorder::LATENCY_US_MAX);
        result.handshake.record(us).expect("clamped");
        result.connects_ok += 1;
    }
    core.shared.connected.fetch_add(1, Relaxed);
    if let Some(greeting) = cfg.protocol.greeting() {
        wait_for_text(&mut conn, &cfg.protocol, greeting).await?;
    }
    if let Some((hello, ack)) = cfg.protocol.hello() {
        send_text(&mut conn, hello).await?;
        wait_for_text(&mut conn, &cfg.protocol, ack).await?;
    }
    if let (Some(room), Some(_)) = (room, plan.room) {
        if let Some(join) = cfg.protocol.join(room, index) {
            send_text(&mut conn, &join).await?;
            if let Some(joined) = cfg.protocol.joined() {
                wait_for_text(&mut conn, &cfg.protocol, joined).await?;
            }
        }
    }
    Ok(conn)
}

/// A TCP connection to the target, from `--source-ip`s in turn when given.
async fn tcp_connect(cfg: &RunConfig, index: usize) -> io::Result<TcpStream> {
    if cfg.source_ips.is_empty() {
        return TcpStream::connect(cfg.target.addr)
            .await
            .map_err(io::Error::from);
    }
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
    Ok(unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) })
}

/// The WebSocket upgrade: the request, and the server's 101 checked and consumed.
async fn upgrade(
    conn: &mut Conn,
    cfg: &RunConfig,
    index: usize,
    room: Option<&str>,
) -> io::Result<()> {
    let key = handshake::key_for(index as u64);
    let path = cfg.target.path.replace("{room}", room.unwrap_or(""));
    let request = handshake::request(
        &cfg.target.host,
        &path,
        &key,
        &cfg.headers,
        &cfg.subprotocols,
    );
    conn.send_all(&request).await?;
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
    Ok(())
}

/// One masked text frame.
async fn send_text(conn: &mut Conn, text: &[u8]) -> io::Result<()> {
    let mask = conn.masks.next_mask();
    let mut frame = Vec::new();
    write_masked(&mut frame, OP_TEXT, text, mask);
    conn.send_all(&frame).await
}

/// Reads frames until a text frame containing `needle`; a close or a refusal (see
/// [`Protocol::refusal`]) fails the setup at once.
async fn wait_for_text(conn: &mut Conn, protocol: &Protocol, needle: &str) -> io::Result<()> {
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    loop {
        while let Some(f) = next_frame(&conn.partial) {
            let payload = &conn.partial[f.header_len..f.header_len + f.payload_len];
            match f.opcode {
                OP_TEXT if finder.find(payload).is_some() => {
                    conn.partial.drain(..f.header_len + f.payload_len);
                    return Ok(());
                }
                OP_TEXT => {
                    if let Some(why) = protocol.refusal(payload) {
                        return Err(setup_failure(why));
                    }
                }
                OP_CLOSE => {
                    let code = event_loop::close_code(payload);
                    return Err(setup_failure(format!("closed by server ({code})")));
                }
                _ => {}
            }
            conn.partial.drain(..f.header_len + f.payload_len);
        }
        conn.read_more().await?;
    }
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
