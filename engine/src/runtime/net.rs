//! Sockets: one listening socket per shard on a shared port, and connection streams whose
//! reads land in a caller's buffer and whose writes are plain non-blocking `send` calls.
//!
//! Invariant: a [`Stream`] never holds a read or write buffer of its own; a stream moved to
//! another shard travels as a file descriptor and is rebuilt on the target's thread.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::Error;

/// Pending connections the kernel queues per listening socket.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds `count` listening sockets on one port (SO_REUSEPORT, so the kernel spreads
/// connections over the shards). Fails if another process already listens on `addr`.
pub fn bind_listeners(addr: SocketAddr, count: usize) -> Result<(SocketAddr, Vec<RawFd>), Error> {
    if addr.port() != 0 && someone_listens(addr) {
        // SO_REUSEPORT would let a second server share the port silently: refuse instead.
        // (A bind probe would also refuse a restart while the last run's connections wait
        // in TIME_WAIT on the port.)
        return Err(Error::AddrInUse { addr });
    }
    let mut bound = addr;
    let mut fds = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = listening_socket(bound).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => Error::AddrInUse { addr },
            _ => Error::Bind { addr, source },
        })?;
        bound = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound TCP socket has an address");
        fds.push(socket.into_raw_fd());
    }
    Ok((bound, fds))
}

/// How long the probe waits for a listener on the address to answer; a local one answers
/// (or refuses) at once.
const LISTEN_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// Whether something accepts connections on `addr` (for an unspecified address, on
/// loopback).
fn someone_listens(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    std::net::TcpStream::connect_timeout(&target, LISTEN_PROBE_TIMEOUT).is_ok()
}

fn listening_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

/// A shard's listening socket.
pub struct Listener {
    inner: glommio::net::TcpListener,
    fd: RawFd,
}

impl Listener {
    /// Adopts a socket from [`bind_listeners`]; call on the shard's own thread.
    pub fn from_fd(fd: RawFd) -> Self {
        // SAFETY: the fd comes from bind_listeners and is owned by nobody else.
        let inner = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
        Listener { inner, fd }
    }

    pub async fn accept(&self) -> io::Result<Stream> {
        let s = self.inner.accept().await.map_err(io::Error::from)?;
        s.set_nodelay(true).map_err(io::Error::from)?;
        Ok(Stream(s))
    }

    /// Accepts one pending connection without waiting (`WouldBlock` when there is none), as
    /// a plain non-blocking descriptor: the refusal path uses it with the spare descriptor.
    pub fn accept_now(&self) -> io::Result<RawFd> {
        // SAFETY: accept4 on our listening socket; null address pointers are allowed.
        let fd = unsafe {
            libc::accept4(
                self.fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    }
}

/// Whether `e` says the process (EMFILE) or the system (ENFILE) has no descriptor left.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The process's soft limit on open descriptors (`RLIMIT_NOFILE`); None when unlimited or
/// unreadable.
pub fn descriptor_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// One descriptor (`/dev/null`) kept in reserve. Out of descriptors, a shard releases it to
/// accept a pending connection and refuse it, then takes it back: accept-and-refuse works
/// even when every other descriptor is taken. Descriptors are per process, so another
/// shard may take the freed one first; then [`SpareFd::restore`] fails and is retried later.
#[derive(Debug)]
pub struct SpareFd(Option<RawFd>);

impl SpareFd {
    /// Opens the spare (held unless the process is already out of descriptors).
    pub fn open() -> Self {
        let mut spare = SpareFd(None);
        spare.restore();
        spare
    }

    pub fn held(&self) -> bool {
        self.0.is_some()
    }

    /// Closes the spare so its descriptor is free; false when none was held.
    pub fn release(&mut self) -> bool {
        match self.0.take() {
            Some(fd) => {
                // SAFETY: our own descriptor, closed once.
                unsafe { libc::close(fd) };
                true
            }
            None => false,
        }
    }

    /// Opens the spare again if it is not held; true when it is held afterwards.
    pub fn restore(&mut self) -> bool {
        if self.0.is_none() {
            // SAFETY: a NUL-terminated path.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd >= 0 {
                self.0 = Some(fd);
            }
        }
        self.0.is_some()
    }
}

impl Drop for SpareFd {
    fn drop(&mut self) {
        self.release();
    }
}

/// A connected TCP stream.
pub struct Stream(glommio::net::TcpStream);

impl Stream {
    /// Rebuilds a stream from a descriptor sent by another shard; call on the target's thread.
    pub fn from_fd(fd: RawFd) -> Self {
        // SAFETY: the fd was handed over by dup_fd and is owned by nobody else.
        Stream(unsafe { glommio::net::TcpStream::from_raw_fd(fd) })
    }

    /// A duplicate of the descriptor, to give the connection up (to another shard, or to
    /// the I/O loop) once the stream is dropped; the stream stays usable until then.
    pub fn dup_fd(&self) -> io::Result<RawFd> {
        // glommio's stream closes its fd on drop and has no into_raw_fd: keep a duplicate.
        // SAFETY: dup of a valid, open descriptor.
        let fd = unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Reads into `buf`; on `Pending` the task is woken when the socket is readable.
    /// `Ok(0)` is end of stream.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    /// Writes from `buf`; on `Pending` the task is woken when the socket is writable.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).await
    }

    /// Half-closes the stream (FIN after what was written).
    pub fn shutdown_write(&self) {
        // SAFETY: shutdown on a valid descriptor; errors (already closed) do not matter.
        unsafe { libc::shutdown(self.0.as_raw_fd(), libc::SHUT_WR) };
    }
}

/// One non-blocking `send` on `fd`: the flusher's write path, with no task wake-up.
/// `Ok(0)` never happens for a non-empty buffer; `WouldBlock` means the socket is full.
pub fn send_now(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is a valid slice; MSG_NOSIGNAL turns SIGPIPE into EPIPE.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The address of the peer of connected socket `fd` (None if the socket cannot tell).
pub fn peer_ip(fd: RawFd) -> Option<std::net::IpAddr> {
    // SAFETY: `fd` is an open socket for the call's duration; ManuallyDrop keeps it open.
    let socket = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    let addr = socket.peer_addr().ok()?.as_socket()?;
    Some(addr.ip())
}
