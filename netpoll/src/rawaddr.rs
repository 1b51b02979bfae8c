//! Socket addresses as the kernel reads and writes them, converted to and
//! from std's types by hand for the transfers in `nowait` (std's own
//! `send_to` and `recv_from` cannot pass `MSG_DONTWAIT`).
//!
//! `Raw<A>` is an address structure and its length: `sockaddr_storage`
//! for IP (a `sockaddr_in` or `sockaddr_in6` at its start), `sockaddr_un`
//! for Unix sockets. Every byte of one is initialized: it starts zeroed
//! (or is built on a zeroed structure) and only this module and the
//! kernel write it, so reading it back as another plain structure is
//! sound.

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::Path;
use std::sync::OnceLock;

/// Address structures made of integers only, for which all-zero bytes are
/// a valid value.
///
/// # Safety
/// An implementor has no pointers, references or other invariants beyond
/// its integers.
pub(crate) unsafe trait SockAddr: Sized {}

// SAFETY: integers and padding bytes only.
unsafe impl SockAddr for libc::sockaddr_storage {}
// SAFETY: integers only.
unsafe impl SockAddr for libc::sockaddr_un {}

/// An address structure and its length in bytes.
///
/// Invariant: every byte of `addr` is initialized. The fields are private
/// to this module, where a `Raw` is only made zeroed (`zeroed`) or from a
/// zeroed structure (`RawAddr::new`, `RawUnixAddr::for_path`), and
/// written field by field or by the kernel (`kernel_out`). The unsafe
/// reads in `to_socket_addr` rely on it.
pub(crate) struct Raw<A> {
    addr: A,
    len: libc::socklen_t,
}

/// An IP address.
pub(crate) type RawAddr = Raw<libc::sockaddr_storage>;
/// A Unix socket address.
pub(crate) type RawUnixAddr = Raw<libc::sockaddr_un>;

impl<A: SockAddr> Raw<A> {
    /// Room for any address of the kind, for the kernel to fill.
    pub(crate) fn zeroed() -> Raw<A> {
        Raw {
            // SAFETY: all-zero is a valid `A` (`SockAddr`).
            addr: unsafe { mem::zeroed() },
            len: mem::size_of::<A>() as libc::socklen_t,
        }
    }

    /// The structure and its length, for a call that reads an address.
    /// The pointer is valid for reads of that many bytes while `self` is.
    pub(crate) fn kernel_in(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        debug_assert!(self.len as usize <= mem::size_of::<A>());
        ((&raw const self.addr).cast(), self.len)
    }

    /// No address: what the kernel reports with a receive that got none.
    pub(crate) fn set_empty(&mut self) {
        self.len = 0;
    }

    /// The structure and its length, for a call that writes an address and
    /// its real length. The pointer is valid for writes of `*len` bytes
    /// while `self` is borrowed; the kernel writes no more than that.
    pub(crate) fn kernel_out(&mut self) -> (*mut libc::sockaddr, &mut libc::socklen_t) {
        self.len = mem::size_of::<A>() as libc::socklen_t;
        ((&raw mut self.addr).cast(), &mut self.len)
    }
}

impl RawAddr {
    /// `addr` as the kernel takes it (built by `addr::sockaddr`, which
    /// zeroes the storage before writing a padding-free structure).
    pub(crate) fn new(addr: SocketAddr) -> RawAddr {
        let (storage, len) = crate::addr::sockaddr(&addr);
        Raw { addr: storage, len }
    }

    /// The address as std's type. A family other than `AF_INET` and
    /// `AF_INET6` is std's error (`InvalidInput`, "invalid argument"), as
    /// a UDP `recv_from` after a read shutdown meets; so is a length too
    /// short for its family's structure, where std asserts.
    pub(crate) fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        let at = (&raw const self.addr).cast::<u8>();
        let len = self.len as usize;
        match libc::c_int::from(self.addr.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: `addr` is large and aligned enough for a
                // `sockaddr_in`, all its bytes are initialized (the
                // invariant of `Raw`), and any initialized bytes make a
                // valid one.
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
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid argument",
            )),
        }
    }
}

/// Where `sun_path` starts in a `sockaddr_un`.
const SUN_PATH_OFFSET: usize = mem::offset_of!(libc::sockaddr_un, sun_path);

impl RawUnixAddr {
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
    /// NUL byte), or a clone of `unnamed` (no name bytes; Linux may also
    /// report a length of zero for an unnamed sender). A family other than
    /// `AF_UNIX` is std's error for it (`InvalidInput`).
    pub(crate) fn to_unix_addr(&self, unnamed: &UnixAddr) -> io::Result<UnixAddr> {
        let len = self.len as usize;
        if len == 0 {
            return Ok(unnamed.clone());
        }
        if libc::c_int::from(self.addr.sun_family) != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "file descriptor did not correspond to a Unix socket",
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
            [] => Ok(unnamed.clone()),
            [0, abstract_name @ ..] => UnixAddr::from_abstract_name(abstract_name),
            path => {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                UnixAddr::from_pathname(Path::new(OsStr::from_bytes(&path[..end])))
            }
        }
    }
}

/// An unnamed Unix socket address. std has no constructor for one, so it
/// is taken, once per process, from an unbound socket. A receiver asks for
/// it before it takes a datagram: if no socket can be made (no descriptor
/// left), the call fails without losing one.
pub(crate) fn unnamed_unix_addr() -> io::Result<&'static UnixAddr> {
    static UNNAMED: OnceLock<UnixAddr> = OnceLock::new();
    if let Some(addr) = UNNAMED.get() {
        return Ok(addr);
    }
    let addr = UnixDatagram::unbound()?.local_addr()?;
    debug_assert!(addr.is_unnamed());
    Ok(UNNAMED.get_or_init(|| addr))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let unnamed = unnamed_unix_addr().unwrap();
        assert!(unnamed.is_unnamed());
        let e = raw.to_unix_addr(unnamed).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Linux's report of an unnamed sender: no address bytes at all.
        raw.len = 0;
        assert!(raw.to_unix_addr(unnamed).unwrap().is_unnamed());
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
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Too short for its family's structure.
        let mut raw = RawAddr::new(SocketAddr::from(([127, 0, 0, 1], 9)));
        raw.len = 4;
        let e = raw.to_socket_addr().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
