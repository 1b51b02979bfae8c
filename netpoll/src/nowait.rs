//! Socket transfers that never block, whatever the descriptor's file
//! status flags say.
//!
//! `try_clone` duplicates a descriptor, and duplicates share one open file
//! and its `O_NONBLOCK` flag. When one of them is turned back into a std
//! value (`into_std`, `into_raw_fd`) the flag is cleared for all, and a
//! plain `recv` on a remaining clone would block its worker thread and
//! ignore its timeout. So the sockets' transfers pass `MSG_DONTWAIT`,
//! which makes each call non-blocking by itself. (Sends also pass
//! `MSG_NOSIGNAL`, as std's do: a peer that went away is an `EPIPE` for
//! its connection, not a `SIGPIPE` for the process.) UDP's `send_to`,
//! `recv_from` and `peek_from` are here too, and the Unix datagram
//! `send_to` and `recv_from`, with the addresses converted by `rawaddr`.
//!
//! Not covered: `accept`, because `accept4` has no per-call non-blocking
//! flag (its `SOCK_NONBLOCK` only sets the new socket's mode). A clone of a
//! listener whose twin went back to std blocks like std's in `accept` until
//! it is converted too (documented on `into_std`).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::SocketAddr as UnixAddr;

use crate::rawaddr::{Raw, RawAddr, RawUnixAddr, SockAddr, unnamed_unix_addr};

fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `recv(2)` with `MSG_DONTWAIT` and `extra` flags (`MSG_PEEK`).
fn recv_flags(fd: RawFd, buf: &mut [u8], extra: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call's
    // duration; a bad descriptor is an error, never undefined behaviour.
    check(unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | extra,
        )
    })
}

/// Receives into `buf` without blocking.
pub(crate) fn recv(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(s.as_raw_fd(), buf, 0)
}

/// Peeks into `buf` without blocking.
pub(crate) fn peek(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv_flags(s.as_raw_fd(), buf, libc::MSG_PEEK)
}

/// `recv` on a datagram socket (see [`at_read_shutdown`]).
pub(crate) fn recv_datagram(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    let fd = s.as_raw_fd();
    at_read_shutdown(fd, || recv_flags(fd, buf, 0), || Ok(0))
}

/// `peek` on a datagram socket (see [`at_read_shutdown`]).
pub(crate) fn peek_datagram(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    let fd = s.as_raw_fd();
    at_read_shutdown(fd, || recv_flags(fd, buf, libc::MSG_PEEK), || Ok(0))
}

/// A datagram receive as a blocking socket answers it. Once a datagram
/// socket is shut down for reading, a blocking receive with nothing
/// queued returns 0 bytes (no address) at once, but a non-blocking one
/// still says `EAGAIN`: the kernel's blocking wait checks the shutdown,
/// its non-blocking path does not. Taken as "wait for readiness", that
/// `EAGAIN` parked a coroutine for ever (the shutdown's event had come
/// already) and spun a plain thread in `poll(2)`, which reports the
/// socket readable. So `EAGAIN` on a socket that reports `POLLRDHUP` (the
/// read shutdown, for datagrams) is asked once more, and if still empty
/// it is the end: `eof()`. Asking again keeps a datagram that arrived
/// just before the shutdown from being reported after an end.
fn at_read_shutdown<T>(
    fd: RawFd,
    mut recv: impl FnMut() -> io::Result<T>,
    eof: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    match recv() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && read_shut_down(fd) => match recv() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => eof(),
            r => r,
        },
        r => r,
    }
}

/// Whether `fd` reports `POLLRDHUP`, asked without waiting.
fn read_shut_down(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack for the call's duration; a
    // zero timeout never waits.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & libc::POLLRDHUP != 0
}

/// Sends `buf` without blocking.
pub(crate) fn send(s: &impl AsRawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call's
    // duration.
    check(unsafe {
        libc::send(
            s.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// The most buffers one vectored call passes, as std's: the kernel fails
/// a call with more (`EMSGSIZE`), where std moves what the first
/// `UIO_MAXIOV` buffers hold.
pub(crate) const MAX_IOV: usize = libc::UIO_MAXIOV as usize;

/// Receives into `bufs` (scatter; the first [`MAX_IOV`]) without blocking.
pub(crate) fn recv_vectored(s: &impl AsRawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSliceMut` is ABI-compatible with `iovec` on Unix (its docs).
    msg.msg_iov = bufs.as_mut_ptr().cast();
    msg.msg_iovlen = bufs.len().min(MAX_IOV);
    // SAFETY: `msg` points at `msg_iovlen` (at most `bufs.len()`) iovecs,
    // each valid for writes of its length, for the call's duration.
    check(unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) })
}

/// Sends `bufs` (gather; the first [`MAX_IOV`]) without blocking.
pub(crate) fn send_vectored(s: &impl AsRawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix; `sendmsg` only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len().min(MAX_IOV);
    // SAFETY: `msg` points at `msg_iovlen` (at most `bufs.len()`) iovecs,
    // each valid for reads of its length, for the call's duration.
    check(unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// `recvfrom(2)` with `MSG_DONTWAIT` and `extra` flags (`MSG_PEEK`),
/// storing the sender in `from`.
/// A datagram socket's end (see [`at_read_shutdown`]) leaves `from`
/// empty (length 0), as the kernel does.
fn recv_from_raw<A: SockAddr>(
    fd: RawFd,
    buf: &mut [u8],
    extra: libc::c_int,
    from: &mut Raw<A>,
) -> io::Result<usize> {
    let from = std::cell::RefCell::new(from);
    at_read_shutdown(
        fd,
        || recv_from_once(fd, buf, extra, &mut from.borrow_mut()),
        || {
            from.borrow_mut().set_empty();
            Ok(0)
        },
    )
}

fn recv_from_once<A: SockAddr>(
    fd: RawFd,
    buf: &mut [u8],
    extra: libc::c_int,
    from: &mut Raw<A>,
) -> io::Result<usize> {
    let (addr, len) = from.kernel_out();
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and `addr`
    // for writes of `*len` bytes (`kernel_out`), for the call's duration;
    // the kernel writes no more than that and stores the address's real
    // length in `*len`.
    check(unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | extra,
            addr,
            len,
        )
    })
}

/// `sendto(2)` of `buf` as one datagram to `to` without blocking.
fn send_to_raw<A: SockAddr>(fd: RawFd, buf: &[u8], to: &Raw<A>) -> io::Result<usize> {
    let (addr, len) = to.kernel_in();
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes, and `addr` for
    // reads of `len` bytes (`kernel_in`), for the call's duration.
    check(unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            addr,
            len,
        )
    })
}

/// Receives one datagram into `buf`, and its sender, without blocking.
pub(crate) fn recv_from(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    let mut from = RawAddr::zeroed();
    let n = recv_from_raw(s.as_raw_fd(), buf, 0, &mut from)?;
    Ok((n, from.to_socket_addr()?))
}

/// As `recv_from`, leaving the datagram queued.
pub(crate) fn peek_from(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    let mut from = RawAddr::zeroed();
    let n = recv_from_raw(s.as_raw_fd(), buf, libc::MSG_PEEK, &mut from)?;
    Ok((n, from.to_socket_addr()?))
}

/// Sends `buf` as one datagram to `addr` without blocking.
pub(crate) fn send_to(s: &impl AsRawFd, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
    send_to_raw(s.as_raw_fd(), buf, &RawAddr::new(addr))
}

/// Receives one datagram into `buf`, and its sender, on a Unix datagram
/// socket without blocking.
pub(crate) fn recv_from_unix(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, UnixAddr)> {
    let unnamed = unnamed_unix_addr()?;
    let mut from = RawUnixAddr::zeroed();
    let n = recv_from_raw(s.as_raw_fd(), buf, 0, &mut from)?;
    Ok((n, from.to_unix_addr(unnamed)?))
}

/// Sends `buf` as one datagram to the Unix socket at `to` without blocking.
pub(crate) fn send_to_unix(s: &impl AsRawFd, buf: &[u8], to: &RawUnixAddr) -> io::Result<usize> {
    send_to_raw(s.as_raw_fd(), buf, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::UnixStream;

    #[test]
    fn transfers_do_not_block_on_a_blocking_descriptor() {
        let (a, b) = UnixStream::pair().unwrap();
        // Both ends in blocking mode: only the flag keeps these from waiting.
        let mut buf = [0u8; 8];
        assert_eq!(
            recv(&a, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(
            peek(&a, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        let mut iov = [IoSliceMut::new(&mut buf)];
        let e = recv_vectored(&a, &mut iov).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        assert_eq!(send(&b, b"hey").unwrap(), 3);
        assert_eq!(
            send_vectored(&b, &[IoSlice::new(b"12"), IoSlice::new(b"3")]).unwrap(),
            3
        );
        assert_eq!(peek(&a, &mut buf).unwrap(), 6);
        let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
        let mut iov = [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)];
        assert_eq!(recv_vectored(&a, &mut iov).unwrap(), 6);
        assert_eq!((&x, &y[..2]), (b"hey1", &b"23"[..]));

        // Fill the send buffer: the next send would block.
        let chunk = [0u8; 65536];
        let full = loop {
            match send(&b, &chunk) {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn datagram_transfers_do_not_block_and_carry_addresses() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Blocking mode: only the flag keeps these from waiting.
        let mut buf = [0u8; 8];
        let e = recv_from(&b, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let e = peek_from(&b, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        // A wrong byte order would send elsewhere or report another sender.
        assert_eq!(send_to(&a, b"dgram", b.local_addr().unwrap()).unwrap(), 5);
        let sender = a.local_addr().unwrap();
        assert_eq!(peek_from(&b, &mut buf).unwrap(), (5, sender));
        assert_eq!(recv_from(&b, &mut buf).unwrap(), (5, sender));
        assert_eq!(&buf[..5], b"dgram");
    }

    #[test]
    fn unix_datagram_transfers_do_not_block_and_carry_addresses() {
        use std::os::unix::net::UnixDatagram;
        let dir = std::env::temp_dir();
        let pid = std::process::id();
        let at = |name: &str| dir.join(format!("corun-nowait-{name}-{pid}"));
        let (to, from) = (at("to"), at("from"));
        let _ = (std::fs::remove_file(&to), std::fs::remove_file(&from));
        // Blocking mode: only the flag keeps these from waiting.
        let b = UnixDatagram::bind(&to).unwrap();
        let mut buf = [0u8; 8];
        let e = recv_from_unix(&b, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        let raw_to = RawUnixAddr::for_path(&to).unwrap();
        let abstract_name = format!("corun-nowait-abstract-{pid}");
        let senders = [
            UnixDatagram::bind(&from).unwrap(),
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(&abstract_name).unwrap())
                .unwrap(),
            UnixDatagram::unbound().unwrap(),
        ];
        for a in &senders {
            assert_eq!(send_to_unix(a, b"unix", &raw_to).unwrap(), 4);
            let (n, sender) = recv_from_unix(&b, &mut buf).unwrap();
            assert_eq!((n, &buf[..4]), (4, &b"unix"[..]));
            let ours = a.local_addr().unwrap();
            assert_eq!(sender.as_pathname(), ours.as_pathname());
            assert_eq!(sender.as_abstract_name(), ours.as_abstract_name());
            assert_eq!(sender.is_unnamed(), ours.is_unnamed());
        }
        assert_eq!(senders[0].local_addr().unwrap().as_pathname(), Some(&*from));
        assert!(senders[2].local_addr().unwrap().is_unnamed());

        // Nobody bound there: an error at once.
        let gone = RawUnixAddr::for_path(&at("nobody")).unwrap();
        assert!(send_to_unix(&senders[2], b"x", &gone).is_err());
        std::fs::remove_file(&to).unwrap();
        std::fs::remove_file(&from).unwrap();
    }

    #[test]
    fn a_send_to_a_closed_peer_is_an_error_not_a_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(a);
        assert_eq!(
            send(&b, b"x").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
