//! TCP: `TcpListener` and `TcpStream` with std::net's shapes.

use std::io;
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use corun_runtime::WaitReason;

use crate::addr::{connect_tcp, each_addr};
use crate::io::{Dir, Io};

/// A TCP server socket. `accept` parks the coroutine until a peer arrives
/// (wait reason "accept"); on a plain thread it blocks like std's.
///
/// ```
/// use std::io::{Read, Write};
/// use corun_netpoll::{TcpListener, TcpStream};
///
/// corun_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = corun_runtime::go!(move || {
///         let (mut s, _) = listener.accept().unwrap();
///         let mut buf = [0; 5];
///         s.read_exact(&mut buf).unwrap();
///         s.write_all(&buf).unwrap();
///     });
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"hello").unwrap();
///     let mut back = [0; 5];
///     c.read_exact(&mut back).unwrap();
///     assert_eq!(&back, b"hello");
///     server.join().unwrap();
/// });
/// ```
pub struct TcpListener {
    io: Io<net::TcpListener>,
}

fd_conversions!(TcpListener, net::TcpListener);

impl TcpListener {
    /// Binds to the first address of `addr` that works (resolution runs
    /// under `blocking()`).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| TcpListener::from_std(net::TcpListener::bind(a)?))
    }

    /// Waits for a connection.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self.io.io(Dir::Read, WaitReason::Accept, |l| l.accept())?;
        Ok((TcpStream::from_std(s)?, a))
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// A second handle to the same socket (a new descriptor).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        TcpListener::from_std(self.io.get_ref().try_clone()?)
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of
    /// waiting, as with std.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection. Reads and writes park the coroutine (wait reasons
/// "io read", "io write"); `Read` and `Write` are implemented for `&TcpStream`
/// too, so one coroutine can read while another writes.
pub struct TcpStream {
    io: Io<net::TcpStream>,
}

fd_conversions!(TcpStream, net::TcpStream);
read_write!(TcpStream);

impl TcpStream {
    /// Connects to the first address of `addr` that accepts (resolution
    /// runs under `blocking()`; the connect itself parks, wait reason
    /// "connect").
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| {
            Ok(TcpStream {
                io: connect_tcp(a, None)?,
            })
        })
    }

    /// Connects with a time limit; a zero timeout is `InvalidInput`, as
    /// in std.
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let deadline = Instant::now().checked_add(timeout);
        Ok(TcpStream {
            io: connect_tcp(addr, deadline)?,
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same connection (a new descriptor), e.g. to
    /// read in one coroutine and write in another.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        TcpStream::from_std(self.io.get_ref().try_clone()?)
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Receives without consuming, waiting for data like `read`.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| s.peek(buf))
    }

    common_socket_methods!();
}
