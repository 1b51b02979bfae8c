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
//! `recv_from` and `peek_from` are here too, converting the IP addresses
//! between `SocketAddr` and `sockaddr_storage` themselves.
//!
//! Not covered: `accept`, because `accept4` has no per-call non-blocking
//! flag (its `SOCK_NONBLOCK` only sets the new socket's mode), and the
//! Unix datagram `send_to` and `recv_from`, because std cannot build a
//! `std::os::unix::net::SocketAddr` from a raw `sockaddr_un` of every kind
//! (an unnamed sender's, for one). A clone of a listener or of a Unix
//! datagram socket whose twin went back to std blocks like std's in those
//! until it is converted too (documented on `into_std`).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

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

/// Receives into `bufs` (scatter) without blocking.
pub(crate) fn recv_vectored(s: &impl AsRawFd, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSliceMut` is ABI-compatible with `iovec` on Unix (its docs).
    msg.msg_iov = bufs.as_mut_ptr().cast();
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `bufs.len()` iovecs, each valid for writes of
    // its length, for the call's duration.
    check(unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) })
}

/// Sends `bufs` (gather) without blocking.
pub(crate) fn send_vectored(s: &impl AsRawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: all-zero is a valid `msghdr` (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix; `sendmsg` only
    // reads through the pointer.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `bufs.len()` iovecs, each valid for reads of
    // its length, for the call's duration.
    check(unsafe { libc::sendmsg(s.as_raw_fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// A socket address as the kernel reads and writes it: a `sockaddr_in` or
/// `sockaddr_in6` at the start of a `sockaddr_storage`, and its length.
/// Every byte of `storage` is initialized: it starts zeroed, and only
/// `new` (with structures that have no padding) and the kernel write it.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    /// Room for any address, for the kernel to fill.
    fn zeroed() -> RawAddr {
        RawAddr {
            // SAFETY: all-zero is a valid `sockaddr_storage` (integers and
            // padding bytes).
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// `addr` as the kernel takes it (built by `addr::sockaddr`, which
    /// zeroes the storage before writing a padding-free structure).
    fn new(addr: SocketAddr) -> RawAddr {
        let (storage, len) = crate::addr::sockaddr(&addr);
        RawAddr { storage, len }
    }

    /// The address as std's type. A family other than `AF_INET` and
    /// `AF_INET6`, or a length too short for its family's structure, is
    /// `InvalidData`.
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        let at = (&raw const self.storage).cast::<u8>();
        let len = self.len as usize;
        match libc::c_int::from(self.storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: `storage` is large and aligned enough for a
                // `sockaddr_in`, all its bytes are initialized (see the
                // type), and any initialized bytes make a valid one.
                let sin = unsafe { at.cast::<libc::sockaddr_in>().read() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Ok(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as for `sockaddr_in` above.
                let sin6 = unsafe { at.cast::<libc::sockaddr_in6>().read() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Ok(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
            }
            family => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected socket address: family {family}, {len} bytes"),
            )),
        }
    }
}

/// `recvfrom(2)` with `MSG_DONTWAIT` and `extra` flags (`MSG_PEEK`).
fn recv_from_flags(
    fd: RawFd,
    buf: &mut [u8],
    extra: libc::c_int,
) -> io::Result<(usize, SocketAddr)> {
    let mut from = RawAddr::zeroed();
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and
    // `from.storage` for writes of `from.len` bytes, for the call's
    // duration; the kernel writes no more than that and stores the
    // address's real length in `from.len`.
    let n = check(unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | extra,
            (&raw mut from.storage).cast(),
            &mut from.len,
        )
    })?;
    Ok((n, from.to_socket_addr()?))
}

/// Receives one datagram into `buf`, and its sender, without blocking.
pub(crate) fn recv_from(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    recv_from_flags(s.as_raw_fd(), buf, 0)
}

/// As `recv_from`, leaving the datagram queued.
pub(crate) fn peek_from(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    recv_from_flags(s.as_raw_fd(), buf, libc::MSG_PEEK)
}

/// Sends `buf` as one datagram to `addr` without blocking.
pub(crate) fn send_to(s: &impl AsRawFd, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
    let to = RawAddr::new(addr);
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes, and
    // `to.storage` for reads of `to.len` bytes, for the call's duration.
    check(unsafe {
        libc::sendto(
            s.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            (&raw const to.storage).cast(),
            to.len,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn addresses_survive_the_raw_form() {
        let v6 = SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4), 4321, 7, 3);
        for addr in [
            SocketAddr::from(([192, 0, 2, 1], 1234)),
            SocketAddr::from(v6),
        ] {
            assert_eq!(RawAddr::new(addr).to_socket_addr().unwrap(), addr);
        }
    }

    #[test]
    fn a_strange_raw_address_is_an_error() {
        // `AF_UNSPEC`, as if the kernel reported no address.
        let e = RawAddr::zeroed().to_socket_addr().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // Too short for its family's structure.
        let mut raw = RawAddr::new(SocketAddr::from(([127, 0, 0, 1], 9)));
        raw.len = 4;
        let e = raw.to_socket_addr().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
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
