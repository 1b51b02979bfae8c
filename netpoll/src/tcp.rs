//! TCP: `TcpListener` and `TcpStream` with std::net's shapes.

use std::io;
use std::net::{self, Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use corun_runtime::WaitReason;

use crate::addr::{connect_tcp, each_addr};
use crate::io::{Dir, Io};
use crate::nowait;

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

fd_conversions!(
    TcpListener,
    net::TcpListener,
    "std::net::TcpListener::bind(\"127.0.0.1:0\").unwrap()"
);

impl TcpListener {
    /// Binds to the first address of `addr` that works (resolution runs
    /// under `blocking()`).
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(listener.local_addr().unwrap().port() != 0);
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        each_addr(addr, |a| TcpListener::from_std(net::TcpListener::bind(a)?))
    }

    /// Waits for a connection.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let server = corun_runtime::spawn(move || listener.accept().map(|(_, peer)| peer));
    /// let client = TcpStream::connect(addr).unwrap();
    /// assert_eq!(server.join().unwrap().unwrap(), client.local_addr().unwrap());
    /// ```
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, a) = self.io.io(Dir::Read, WaitReason::Accept, |l| l.accept())?;
        Ok((TcpStream::from_std(s)?, a))
    }

    /// An endless iterator of accepted connections.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let _a = TcpStream::connect(addr).unwrap();
    /// let _b = TcpStream::connect(addr).unwrap();
    /// assert_eq!(listener.incoming().take(2).filter(|c| c.is_ok()).count(), 2);
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The bound address.
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(listener.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// A second handle to the same socket (a new descriptor).
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let twin = listener.try_clone().unwrap();
    /// assert_eq!(twin.local_addr().unwrap(), listener.local_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: self.io.clone_with(self.io.get_ref().try_clone()?)?,
        })
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// listener.set_ttl(64).unwrap();
    /// assert_eq!(listener.ttl().unwrap(), 64);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(listener.ttl().unwrap() > 0);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of
    /// waiting, as with std.
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// listener.set_nonblocking(true).unwrap();
    /// let e = listener.accept().unwrap_err();
    /// assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let listener = corun_netpoll::TcpListener::bind("127.0.0.1:0").unwrap();
    /// assert!(listener.take_error().unwrap().is_none());
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

/// The iterator of [`TcpListener::incoming`].
///
/// ```
/// use corun_netpoll::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let _c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let mut incoming = listener.incoming();
/// assert!(incoming.next().unwrap().is_ok());
/// ```
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
///
/// ```
/// use std::io::{Read, Write};
/// use corun_netpoll::{TcpListener, TcpStream};
/// corun_runtime::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let echo = corun_runtime::spawn(move || {
///         let (mut s, _) = listener.accept().unwrap();
///         let mut buf = [0; 5];
///         s.read_exact(&mut buf).unwrap(); // parks the coroutine, not the thread
///         s.write_all(&buf).unwrap();
///     });
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"hello").unwrap();
///     let mut back = [0; 5];
///     c.read_exact(&mut back).unwrap();
///     assert_eq!(&back, b"hello");
///     echo.join().unwrap();
/// });
/// ```
pub struct TcpStream {
    io: Io<net::TcpStream>,
}

fd_conversions!(
    TcpStream,
    net::TcpStream,
    "{ let l = std::net::TcpListener::bind(\"127.0.0.1:0\").unwrap(); \
     std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap() }"
);
read_write!(TcpStream, short_reads_drain: true);

impl TcpStream {
    /// Connects to the first address of `addr` that accepts (resolution
    /// runs under `blocking()`; the connect itself parks, wait reason
    /// "connect").
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert_eq!(s.peer_addr().unwrap(), listener.local_addr().unwrap());
    /// ```
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |a| {
            Ok(TcpStream {
                io: connect_tcp(a, None)?,
            })
        })
    }

    /// Connects with a time limit; a zero timeout is `InvalidInput`, as
    /// in std.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok());
    /// ```
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
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (accepted, _) = listener.accept().unwrap();
    /// assert_eq!(accepted.peer_addr().unwrap(), s.local_addr().unwrap());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert!(s.local_addr().unwrap().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::Shutdown;
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (mut peer, _) = listener.accept().unwrap();
    /// s.shutdown(Shutdown::Write).unwrap();
    /// assert_eq!(peer.read(&mut [0; 8]).unwrap(), 0); // end of stream
    /// ```
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same connection (a new descriptor), e.g. to
    /// read in one coroutine and write in another.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// // One handle for a reading coroutine, one for a writing one.
    /// let reader = s.try_clone().unwrap();
    /// assert_eq!(reader.peer_addr().unwrap(), s.peer_addr().unwrap());
    /// ```
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: self.io.clone_with(self.io.get_ref().try_clone()?)?,
        })
    }

    /// Sets `TCP_NODELAY`.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// s.set_nodelay(true).unwrap();
    /// assert!(s.nodelay().unwrap());
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(nodelay)
    }

    /// Reads `TCP_NODELAY`.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert!(!s.nodelay().unwrap()); // Nagle is on by default, as in std
    /// ```
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// s.set_ttl(32).unwrap();
    /// assert_eq!(s.ttl().unwrap(), 32);
    /// ```
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// Reads `IP_TTL`.
    ///
    /// ```
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// assert!(s.ttl().unwrap() > 0);
    /// ```
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Receives without consuming, waiting for data like `read`.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use corun_netpoll::{TcpListener, TcpStream};
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let mut s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    /// let (mut peer, _) = listener.accept().unwrap();
    /// s.write_all(b"abc").unwrap();
    /// let mut buf = [0; 3];
    /// assert_eq!(peer.peek(&mut buf).unwrap(), 3); // parks until data, keeps it
    /// assert_eq!(peer.read(&mut buf).unwrap(), 3);
    /// assert_eq!(&buf, b"abc");
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io
            .io(Dir::Read, WaitReason::IoRead, |s| nowait::peek(s, buf))
    }

    common_socket_methods!(
        "let listener = corun_netpoll::TcpListener::bind(\"127.0.0.1:0\").unwrap();
let s = corun_netpoll::TcpStream::connect(listener.local_addr().unwrap()).unwrap();"
    );
}
