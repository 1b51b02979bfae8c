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
//! between `SocketAddr` and `sockaddr_storage` themselves, and so are the
//! Unix datagram `send_to` and `recv_from`, with `sockaddr_un` (std has no
//! constructor for an unnamed Unix address: one is taken, once, from an
//! unbound socket).
//!
//! Not covered: `accept`, because `accept4` has no per-call non-blocking
//! flag (its `SOCK_NONBLOCK` only sets the new socket's mode). A clone of a
//! listener whose twin went back to std blocks like std's in `accept` until
//! it is converted too (documented on `into_std`).

use std::ffi::OsStr;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{self as unix_net, SocketAddr as UnixAddr};
use std::path::Path;
use std::sync::OnceLock;

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

/// Receives one datagram into `buf`, and its sender, on a Unix datagram
/// socket without blocking.
pub(crate) fn recv_from_unix(s: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, UnixAddr)> {
    let mut from = RawUnixAddr::zeroed();
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes, and
    // `from.addr` for writes of `from.len` bytes, for the call's duration;
    // the kernel writes no more than that and stores the address's real
    // length in `from.len`.
    let n = check(unsafe {
        libc::recvfrom(
            s.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&raw mut from.addr).cast(),
            &mut from.len,
        )
    })?;
    Ok((n, from.to_unix_addr()?))
}

/// Sends `buf` as one datagram to the Unix socket at `to` without blocking.
pub(crate) fn send_to_unix(s: &impl AsRawFd, buf: &[u8], to: &RawUnixAddr) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes, and `to.addr`
    // for reads of `to.len` bytes, for the call's duration.
    check(unsafe {
        libc::sendto(
            s.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            (&raw const to.addr).cast(),
            to.len,
        )
    })
}

/// Where `sun_path` starts in a `sockaddr_un`.
const SUN_PATH_OFFSET: usize = mem::offset_of!(libc::sockaddr_un, sun_path);

/// A Unix socket address as the kernel reads and writes it, and its
/// length. Every byte of `addr` is initialized: it starts zeroed, and only
/// `for_path` and the kernel write it.
pub(crate) struct RawUnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl RawUnixAddr {
    /// Room for any address, for the kernel to fill.
    fn zeroed() -> RawUnixAddr {
        RawUnixAddr {
            // SAFETY: all-zero is a valid `sockaddr_un` (integers only).
            addr: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        }
    }

    /// The address of the socket bound at `path`, refused as std refuses it
    /// (with std's messages): a NUL byte in the path, or a path too long
    /// for `sun_path` with its terminating NUL.
    pub(crate) fn for_path(path: &Path) -> io::Result<RawUnixAddr> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "paths must not contain interior null bytes",
            ));
        }
        let mut raw = RawUnixAddr::zeroed();
        if bytes.len() >= raw.addr.sun_path.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path must be shorter than SUN_LEN",
            ));
        }
        raw.addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (to, &from) in raw.addr.sun_path.iter_mut().zip(bytes) {
            *to = from as libc::c_char;
        }
        // The terminating NUL is counted, as std counts it.
        let nul = usize::from(!bytes.is_empty());
        raw.len = (SUN_PATH_OFFSET + bytes.len() + nul) as libc::socklen_t;
        Ok(raw)
    }

    /// The address as std's type: a pathname, an abstract name (a leading
    /// NUL byte), or unnamed (no name bytes; Linux may also report a
    /// length of zero for an unnamed sender). A family other than
    /// `AF_UNIX` is `InvalidData`.
    fn to_unix_addr(&self) -> io::Result<UnixAddr> {
        let len = self.len as usize;
        if len == 0 {
            return unnamed_unix_addr();
        }
        if libc::c_int::from(self.addr.sun_family) != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unexpected socket address: family {}, {len} bytes",
                    self.addr.sun_family
                ),
            ));
        }
        let mut name = [0u8; mem::size_of::<libc::sockaddr_un>()];
        let name_len = len
            .saturating_sub(SUN_PATH_OFFSET)
            .min(self.addr.sun_path.len());
        for (to, &from) in name.iter_mut().zip(&self.addr.sun_path[..name_len]) {
            *to = from as u8;
        }
        match &name[..name_len] {
            [] => unnamed_unix_addr(),
            [0, abstract_name @ ..] => UnixAddr::from_abstract_name(abstract_name),
            path => {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                UnixAddr::from_pathname(Path::new(OsStr::from_bytes(&path[..end])))
            }
        }
    }
}

/// An unnamed Unix socket address. std has no constructor for one, so it
/// is taken, once per process, from an unbound socket.
fn unnamed_unix_addr() -> io::Result<UnixAddr> {
    static UNNAMED: OnceLock<UnixAddr> = OnceLock::new();
    if let Some(addr) = UNNAMED.get() {
        return Ok(addr.clone());
    }
    let addr = unix_net::UnixDatagram::unbound()?.local_addr()?;
    debug_assert!(addr.is_unnamed());
    Ok(UNNAMED.get_or_init(|| addr).clone())
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
    fn a_bad_unix_path_is_refused_as_std_refuses_it() {
        let std_socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let too_long = "x".repeat(108);
        for bad in ["a\0b", too_long.as_str()] {
            let ours = RawUnixAddr::for_path(Path::new(bad)).err().unwrap();
            let stds = std_socket.send_to(b"", bad).unwrap_err();
            assert_eq!(ours.kind(), stds.kind(), "{bad:?}");
            assert_eq!(ours.to_string(), stds.to_string(), "{bad:?}");
        }
        // The longest path that fits, with its NUL.
        let fits = RawUnixAddr::for_path(Path::new(&too_long[1..])).unwrap();
        assert_eq!(fits.len as usize, mem::size_of::<libc::sockaddr_un>());
    }

    #[test]
    fn a_raw_unix_address_of_another_family_is_an_error() {
        let mut raw = RawUnixAddr::zeroed();
        raw.addr.sun_family = libc::AF_INET as libc::sa_family_t;
        let e = raw.to_unix_addr().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // Linux's report of an unnamed sender: no address bytes at all.
        raw.len = 0;
        assert!(raw.to_unix_addr().unwrap().is_unnamed());
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
