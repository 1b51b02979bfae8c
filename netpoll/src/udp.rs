//! UDP with std::net's shape.

use std::io;
use std::net::{self, SocketAddr, ToSocketAddrs};

use corun_runtime::WaitReason;

use crate::addr::{each_addr, resolve};
use crate::io::{Dir, Io};
use crate::nowait;

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

fd_conversions!(
    UdpSocket,
    net::UdpSocket,
    "std::net::UdpSocket::bind(\"127.0.0.1:0\").unwrap()"
);

impl UdpSocket {
    /// Binds to the first address of `addr` that works.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert_ne!(s.local_addr().unwrap().port(), 0, "the kernel picked a port");
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        each_addr(addr, |a| UdpSocket::from_std(net::UdpSocket::bind(a)?))
    }

    /// Receives one datagram and its sender.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let addr = server.local_addr().unwrap();
    /// let client = corun_runtime::go!(move || {
    ///     let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     c.send_to(b"hello", addr).unwrap();
    ///     c.local_addr().unwrap()
    /// });
    /// let mut buf = [0; 16];
    /// let (n, from) = server.recv_from(&mut buf).unwrap(); // parks until it arrives
    /// assert_eq!((&buf[..n], from), (&b"hello"[..], client.join().unwrap()));
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .io(Dir::Read, WaitReason::IoRead, |s| nowait::recv_from(s, buf))
    }

    /// As `recv_from`, leaving the datagram queued.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.send_to(b"twice", b.local_addr().unwrap()).unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(b.peek_from(&mut buf).unwrap().0, 5);
    /// assert_eq!(b.recv_from(&mut buf).unwrap().0, 5, "still queued after the peek");
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .io(Dir::Read, WaitReason::IoRead, |s| nowait::peek_from(s, buf))
    }

    /// Sends one datagram to the first address `addr` resolves to.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let to = format!("localhost:{}", b.local_addr().unwrap().port());
    /// assert_eq!(a.send_to(b"resolved", to).unwrap(), 8);
    /// assert_eq!(b.recv_from(&mut [0; 16]).unwrap().0, 8);
    /// ```
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(addr)?[0];
        self.io.io(Dir::Write, WaitReason::IoWrite, |s| {
            nowait::send_to(s, buf, to)
        })
    }

    /// Sets the default peer for `send` and the only one `recv` accepts.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |a| self.io.get_ref().connect(a))
    }

    /// Sends to the connected peer.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(a.send(b"x").is_err(), "no peer connected");
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// assert_eq!(a.send(b"x").unwrap(), 1);
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .io(Dir::Write, WaitReason::IoWrite, |s| nowait::send(s, buf))
    }

    /// Receives from the connected peer.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// b.connect(a.local_addr().unwrap()).unwrap();
    /// a.send_to(b"from a", b.local_addr().unwrap()).unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 6);
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| {
            nowait::recv_datagram(s, buf)
        })
    }

    /// As `recv`, leaving the datagram queued.
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// a.connect(b.local_addr().unwrap()).unwrap();
    /// b.connect(a.local_addr().unwrap()).unwrap();
    /// a.send(b"abc").unwrap();
    /// let mut buf = [0; 4];
    /// assert_eq!(b.peek(&mut buf).unwrap(), 3);
    /// assert_eq!(b.recv(&mut buf).unwrap(), 3);
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| {
            nowait::peek_datagram(s, buf)
        })
    }

    /// The local address.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.peer_addr().is_err(), "not connected");
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// A second handle to the same socket (a new descriptor).
    ///
    /// ```
    /// use corun_netpoll::UdpSocket;
    ///
    /// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    /// let a2 = a.try_clone().unwrap();
    /// assert_eq!(a2.local_addr().unwrap(), a.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            io: self.io.clone_with(self.io.get_ref().try_clone()?)?,
        })
    }

    /// Sets `SO_BROADCAST`.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_broadcast(true).unwrap();
    /// assert!(s.broadcast().unwrap());
    /// ```
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// Reads `SO_BROADCAST`.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(!s.broadcast().unwrap(), "off by default");
    /// ```
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// s.set_ttl(8).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 8);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// ```
    /// let s = corun_netpoll::UdpSocket::bind("127.0.0.1:0").unwrap();
    /// assert!(s.ttl().unwrap() > 0);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    common_socket_methods!("let s = corun_netpoll::UdpSocket::bind(\"127.0.0.1:0\").unwrap();");
}
