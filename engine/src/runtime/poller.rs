//! One epoll set per shard for all of its upgraded connections: readiness for thousands of
//! sockets through a single glommio poll, instead of an io_uring poll (and a task) per socket.
//!
//! Invariants:
//! - Sockets are registered edge-triggered: the owner of a ready socket reads (or writes) until
//!   `EAGAIN` or remembers that it stopped early.
//! - A socket is removed from the set before its descriptor is closed, so no event ever names
//!   a descriptor that was reused.

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

/// Events harvested per `epoll_wait`.
pub const EVENTS_PER_WAIT_MAX: usize = 256;

/// What a socket is ready for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub token: u64,
    /// Readable, or the peer closed or failed: a read will tell which.
    pub read: bool,
    pub write: bool,
    /// The peer closed its end (or the socket failed): a read must go on to `EAGAIN` or EOF,
    /// as no later edge will tell it again.
    pub closed: bool,
}

pub struct Poller {
    epfd: RawFd,
    events: Vec<libc::epoll_event>,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        let epfd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Poller {
            epfd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT_MAX],
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        let mut flags = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET;
        if write {
            flags |= libc::EPOLLOUT;
        }
        let mut ev = libc::epoll_event {
            events: flags as u32,
            u64: token,
        };
        check(unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }).map(|_| ())
    }

    /// Watches `fd` for reads (and writes when `write`), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, false)
    }

    /// Starts or stops watching `fd` for writability.
    pub fn set_write_interest(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, write)
    }

    /// Stops watching `fd` (before it is closed).
    pub fn remove(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // Failing means the descriptor was never added or is already gone: nothing to undo.
        unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// The sockets ready now (without waiting); at most [`EVENTS_PER_WAIT_MAX`].
    pub fn harvest(&mut self, out: &mut Vec<Ready>) -> io::Result<usize> {
        let n = loop {
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd,
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    0,
                )
            };
            match check(n) {
                Ok(n) => break n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let read_mask = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let write_mask = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        let closed_mask = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        out.extend(self.events[..n].iter().map(|e| Ready {
            token: e.u64,
            read: e.events & read_mask != 0,
            write: e.events & write_mask != 0,
            closed: e.events & closed_mask != 0,
        }));
        Ok(n)
    }

    /// A one-shot wait for the set to have events: an io_uring poll on (a duplicate of) the
    /// epoll descriptor, through glommio.
    pub fn readiness(&self) -> io::Result<Readiness> {
        let fd = check(unsafe { libc::fcntl(self.epfd, libc::F_DUPFD_CLOEXEC, 0) })?;
        // glommio arms a read poll on a stream's descriptor when it wraps it; that poll is
        // all we use (the stream is never read: an epoll descriptor is not a socket).
        Ok(Readiness(unsafe {
            glommio::net::TcpStream::from_raw_fd(fd)
        }))
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        unsafe { libc::close(self.epfd) };
    }
}

/// Completes once the epoll set had events since it was made.
pub struct Readiness(glommio::net::TcpStream);

impl Readiness {
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Pending while glommio's poll is armed; once it fired, glommio tries a `recv` on the
        // descriptor, which fails (not a socket): either way the set is ready.
        match Pin::new(&mut self.0).poll_read(cx, &mut []) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(()),
        }
    }
}

/// A non-blocking `recv` into `buf`.
pub fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Closes a connection's descriptor (after [`Poller::remove`]).
pub fn close_fd(fd: RawFd) {
    unsafe { libc::close(fd) };
}

/// Bytes the kernel still holds in the socket's send buffer (unsent or unacknowledged).
pub fn unsent_bytes(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    if r < 0 {
        0
    } else {
        n.max(0) as usize
    }
}

/// Closes a connection's descriptor abortively (`SO_LINGER` 0: the peer gets a reset), so the
/// kernel frees its send buffer at once instead of keeping it in FIN-WAIT-1 for a peer that
/// does not read.
pub fn reset_fd(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        libc::close(fd);
    }
}
