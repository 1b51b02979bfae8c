//! UDP with std::net's shape.

use std::io;
use std::net::{self, SocketAddr, ToSocketAddrs};

use corun_runtime::WaitReason;

use crate::addr::{each_addr, resolve};
use crate::io::{Dir, Io};

/// A UDP socket. Receives park the coroutine until a datagram arrives;
/// sends park only while the socket buffer is full.
///
/// ```
/// use corun_netpoll::UdpSocket;
///
/// corun_runtime::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// });
/// ```
pub struct UdpSocket {
    io: Io<net::UdpSocket>,
}

fd_conversions!(UdpSocket, net::UdpSocket);

impl UdpSocket {
    /// Binds to the first address of `addr` that works.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| UdpSocket::from_std(net::UdpSocket::bind(a)?))
    }

    /// Receives one datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .io(Dir::Read, WaitReason::IoRead, |s| s.recv_from(buf))
    }

    /// As `recv_from`, leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .io(Dir::Read, WaitReason::IoRead, |s| s.peek_from(buf))
    }

    /// Sends one datagram to the first address `addr` resolves to.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(addr)?[0];
        self.io
            .io(Dir::Write, WaitReason::IoWrite, |s| s.send_to(buf, to))
    }

    /// Sets the default peer for `send` and the only one `recv` accepts.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.io.get_ref().connect(a))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.io(Dir::Write, WaitReason::IoWrite, |s| s.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| s.recv(buf))
    }

    /// As `recv`, leaving the datagram queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| s.peek(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// A second handle to the same socket (a new descriptor).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        UdpSocket::from_std(self.io.get_ref().try_clone()?)
    }

    /// Sets `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    common_socket_methods!();
}
