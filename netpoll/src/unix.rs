//! Unix domain sockets with std::os::unix::net's shapes.

use std::io;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;

use corun_runtime::WaitReason;

use crate::io::{Dir, Io};
use crate::{nowait, rawaddr};

/// A Unix stream server socket.
///
/// ```
/// use std::io::{Read, Write};
/// use corun_netpoll::{UnixListener, UnixStream};
///
/// corun_runtime::run(|| {
///     let dir = std::env::temp_dir().join(format!("corun-doc-{}", std::process::id()));
///     let _ = std::fs::remove_file(&dir);
///     let listener = UnixListener::bind(&dir).unwrap();
///     let h = corun_runtime::go!(move || {
///         let (mut s, _) = listener.accept().unwrap();
///         s.write_all(b"hi").unwrap();
///     });
///     let mut c = UnixStream::connect(&dir).unwrap();
///     let mut buf = String::new();
///     c.read_to_string(&mut buf).unwrap();
///     assert_eq!(buf, "hi");
///     h.join().unwrap();
///     std::fs::remove_file(&dir).unwrap();
/// });
/// ```
pub struct UnixListener {
    io: Io<net::UnixListener>,
}

fd_conversions!(
    UnixListener,
    net::UnixListener,
    "{ use std::os::linux::net::SocketAddrExt; \
     let name = format!(\"corun-doc-{:?}\", std::time::Instant::now()); \
     let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap(); \
     std::os::unix::net::UnixListener::bind_addr(&addr).unwrap() }"
);

impl UnixListener {
    /// Binds to `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("corun-doc-bind-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = corun_netpoll::UnixListener::bind(&path).unwrap();
    /// assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(net::UnixListener::bind(path)?)
    }

    /// Waits for a connection.
    ///
    /// ```
    /// use corun_netpoll::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-accept-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let client = corun_runtime::go!({
    ///     let path = path.clone();
    ///     move || UnixStream::connect(path).unwrap()
    /// });
    /// let (server_side, _peer) = listener.accept().unwrap(); // parks until a client comes
    /// let client_side = client.join().unwrap();
    /// assert_eq!(server_side.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// drop(client_side);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.io.io(Dir::Read, WaitReason::Accept, |l| l.accept())?;
        Ok((UnixStream::from_std(s)?, a))
    }

    /// An endless iterator of accepted connections.
    ///
    /// ```
    /// use std::io::Write;
    /// use corun_netpoll::{UnixListener, UnixStream};
    ///
    /// let (path, pid) = (std::env::temp_dir(), std::process::id());
    /// let path = path.join(format!("corun-doc-incoming-{pid}"));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let clients: Vec<_> = (0..3).map(|_| UnixStream::connect(&path).unwrap()).collect();
    /// for conn in listener.incoming().take(3) {
    ///     conn.unwrap().write_all(b"welcome").unwrap();
    /// }
    /// drop(clients);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The bound address.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("corun-doc-laddr-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = corun_netpoll::UnixListener::bind(&path).unwrap();
    /// assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// A second handle to the same socket (a new descriptor).
    ///
    /// ```
    /// use corun_netpoll::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-lclone-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = UnixListener::bind(&path).unwrap();
    /// let other = listener.try_clone().unwrap();
    /// let _c = UnixStream::connect(&path).unwrap();
    /// other.accept().unwrap(); // either handle accepts from the same queue
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            io: self.io.clone_with(self.io.get_ref().try_clone()?)?,
        })
    }

    /// In non-blocking mode `accept` returns `WouldBlock` instead of
    /// waiting, as with std.
    ///
    /// ```
    /// use std::io::ErrorKind;
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-nonblock-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = corun_netpoll::UnixListener::bind(&path).unwrap();
    /// listener.set_nonblocking(true).unwrap();
    /// assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.io.set_nonblocking(nonblocking);
        Ok(())
    }

    /// Takes the pending socket error (`SO_ERROR`).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("corun-doc-soerr-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let listener = corun_netpoll::UnixListener::bind(&path).unwrap();
    /// assert!(listener.take_error().unwrap().is_none());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

/// The iterator of [`UnixListener::incoming`].
///
/// ```
/// use std::io::Read;
/// use corun_netpoll::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("corun-doc-iter-{}", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path).unwrap();
/// let mut c = UnixStream::connect(&path).unwrap();
/// let mut incoming = listener.incoming(); // never ends: one item per accept
/// drop(incoming.next().unwrap().unwrap());
/// assert_eq!(c.read(&mut [0; 4]).unwrap(), 0, "the server side was dropped");
/// std::fs::remove_file(&path).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;
    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A Unix stream connection; `Read`/`Write` for `T` and `&T`.
///
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use corun_netpoll::UnixStream;
///
/// let (a, b) = UnixStream::pair().unwrap();
/// let echo = corun_runtime::go!(move || {
///     let mut line = String::new();
///     BufReader::new(&b).read_line(&mut line).unwrap();
///     (&b).write_all(line.as_bytes()).unwrap();
/// });
/// (&a).write_all(b"ping\n").unwrap();
/// let mut back = String::new();
/// BufReader::new(&a).read_line(&mut back).unwrap();
/// assert_eq!(back, "ping\n");
/// echo.join().unwrap();
/// ```
pub struct UnixStream {
    io: Io<net::UnixStream>,
}

fd_conversions!(
    UnixStream,
    net::UnixStream,
    "std::os::unix::net::UnixStream::pair().unwrap().0"
);
read_write!(UnixStream, short_reads_drain: false);

impl UnixStream {
    /// Connects to the socket at `path`. A Unix connect completes or fails
    /// at once, except with a full backlog, where std's connect blocks the
    /// thread; corun runs it under `blocking()` so the others keep running.
    ///
    /// ```
    /// use corun_netpoll::{UnixListener, UnixStream};
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-connect-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let _listener = UnixListener::bind(&path).unwrap();
    /// let c = UnixStream::connect(&path).unwrap();
    /// assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// assert!(UnixStream::connect("/nonexistent/corun.sock").is_err());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let s = corun_runtime::blocking(|| net::UnixStream::connect(path))?;
        UnixStream::from_std(s)
    }

    /// A connected pair.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (mut a, mut b) = corun_netpoll::UnixStream::pair().unwrap();
    /// a.write_all(b"x").unwrap();
    /// let mut buf = [0; 1];
    /// b.read_exact(&mut buf).unwrap();
    /// assert_eq!(&buf, b"x");
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// The local address.
    ///
    /// ```
    /// let (a, _b) = corun_netpoll::UnixStream::pair().unwrap();
    /// assert!(a.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    ///
    /// ```
    /// let (a, _b) = corun_netpoll::UnixStream::pair().unwrap();
    /// assert!(a.peer_addr().unwrap().is_unnamed());
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::net::Shutdown;
    ///
    /// let (a, mut b) = corun_netpoll::UnixStream::pair().unwrap();
    /// a.shutdown(Shutdown::Write).unwrap();
    /// assert_eq!(b.read(&mut [0; 8]).unwrap(), 0, "end of stream");
    /// ```
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same connection (a new descriptor).
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (a, mut b) = corun_netpoll::UnixStream::pair().unwrap();
    /// let mut writer = a.try_clone().unwrap();
    /// writer.write_all(b"via the clone").unwrap();
    /// drop((a, writer));
    /// let mut s = String::new();
    /// b.read_to_string(&mut s).unwrap();
    /// assert_eq!(s, "via the clone");
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: self.io.clone_with(self.io.get_ref().try_clone()?)?,
        })
    }

    common_socket_methods!("let (s, _peer) = corun_netpoll::UnixStream::pair().unwrap();");
}

/// A Unix datagram socket.
///
/// ```
/// use corun_netpoll::UnixDatagram;
///
/// let (a, b) = UnixDatagram::pair().unwrap();
/// let reader = corun_runtime::go!(move || {
///     let mut buf = [0; 16];
///     let n = b.recv(&mut buf).unwrap(); // parks until a datagram arrives
///     buf[..n].to_vec()
/// });
/// a.send(b"one datagram").unwrap();
/// assert_eq!(reader.join().unwrap(), b"one datagram");
/// ```
pub struct UnixDatagram {
    io: Io<net::UnixDatagram>,
}

fd_conversions!(
    UnixDatagram,
    net::UnixDatagram,
    "std::os::unix::net::UnixDatagram::unbound().unwrap()"
);

impl UnixDatagram {
    /// Binds to `path`.
    ///
    /// ```
    /// use corun_netpoll::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-dgram-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path).unwrap();
    /// UnixDatagram::unbound().unwrap().send_to(b"hello", &path).unwrap();
    /// let mut buf = [0; 8];
    /// assert_eq!(server.recv(&mut buf).unwrap(), 5);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no address.
    ///
    /// ```
    /// let s = corun_netpoll::UnixDatagram::unbound().unwrap();
    /// assert!(s.local_addr().unwrap().is_unnamed());
    /// ```
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(net::UnixDatagram::unbound()?)
    }

    /// A connected pair.
    ///
    /// ```
    /// let (a, b) = corun_netpoll::UnixDatagram::pair().unwrap();
    /// a.send(b"1").unwrap();
    /// a.send(b"22").unwrap();
    /// let mut buf = [0; 4];
    /// assert_eq!(b.recv(&mut buf).unwrap(), 1, "message boundaries are kept");
    /// assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// ```
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Sets the default peer.
    ///
    /// ```
    /// use corun_netpoll::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-dconnect-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path).unwrap();
    /// let client = UnixDatagram::unbound().unwrap();
    /// client.connect(&path).unwrap();
    /// client.send(b"hi").unwrap();
    /// assert_eq!(server.recv(&mut [0; 4]).unwrap(), 2);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.io.get_ref().connect(path)
    }

    /// Sends to the connected peer.
    ///
    /// ```
    /// let (a, b) = corun_netpoll::UnixDatagram::pair().unwrap();
    /// assert_eq!(a.send(b"abc").unwrap(), 3);
    /// drop(b);
    /// assert!(a.send(b"abc").is_err(), "the peer is gone");
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .io(Dir::Write, WaitReason::IoWrite, |s| nowait::send(s, buf))
    }

    /// Receives from the connected peer.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (_a, b) = corun_netpoll::UnixDatagram::pair().unwrap();
    /// b.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    /// let err = b.recv(&mut [0; 4]).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| {
            nowait::recv_datagram(s, buf)
        })
    }

    /// Sends one datagram to `path`.
    ///
    /// If `path`'s queue is full this waits by retrying, after pauses that
    /// grow from 10 us to 5 ms, within the write timeout: Linux does not
    /// tell an unconnected sender when a receiver drains. A connected
    /// socket's [`send`](Self::send) waits for the poller instead.
    ///
    /// ```
    /// use corun_netpoll::UnixDatagram;
    ///
    /// let path = std::env::temp_dir().join(format!("corun-doc-sendto-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let server = UnixDatagram::bind(&path).unwrap();
    /// let client = UnixDatagram::unbound().unwrap();
    /// assert_eq!(client.send_to(b"to a path", &path).unwrap(), 9);
    /// assert_eq!(server.recv(&mut [0; 16]).unwrap(), 9);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let to = rawaddr::RawUnixAddr::for_path(path.as_ref())?;
        self.io.io_retrying(Dir::Write, WaitReason::IoWrite, |s| {
            nowait::send_to_unix(s, buf, &to)
        })
    }

    /// Receives one datagram and its sender.
    ///
    /// ```
    /// use corun_netpoll::UnixDatagram;
    ///
    /// let pid = std::process::id();
    /// let path_a = std::env::temp_dir().join(format!("corun-doc-from-a-{pid}"));
    /// let path_b = std::env::temp_dir().join(format!("corun-doc-from-b-{pid}"));
    /// let _ = (std::fs::remove_file(&path_a), std::fs::remove_file(&path_b));
    /// let a = UnixDatagram::bind(&path_a).unwrap();
    /// let b = UnixDatagram::bind(&path_b).unwrap();
    /// a.send_to(b"hey", &path_b).unwrap();
    /// let mut buf = [0; 8];
    /// let (n, from) = b.recv_from(&mut buf).unwrap();
    /// assert_eq!((n, from.as_pathname()), (3, Some(path_a.as_path())));
    /// std::fs::remove_file(&path_a).unwrap();
    /// std::fs::remove_file(&path_b).unwrap();
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| {
            nowait::recv_from_unix(s, buf)
        })
    }

    /// The local address.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("corun-doc-dladdr-{}", std::process::id()));
    /// let _ = std::fs::remove_file(&path);
    /// let s = corun_netpoll::UnixDatagram::bind(&path).unwrap();
    /// assert_eq!(s.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    ///
    /// ```
    /// let s = corun_netpoll::UnixDatagram::unbound().unwrap();
    /// assert!(s.peer_addr().is_err(), "not connected");
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    ///
    /// ```
    /// use std::net::Shutdown;
    ///
    /// let (a, _b) = corun_netpoll::UnixDatagram::pair().unwrap();
    /// a.shutdown(Shutdown::Write).unwrap();
    /// assert!(a.send(b"x").is_err());
    /// ```
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same socket (a new descriptor).
    ///
    /// ```
    /// let (a, b) = corun_netpoll::UnixDatagram::pair().unwrap();
    /// let a2 = a.try_clone().unwrap();
    /// a2.send(b"!").unwrap();
    /// assert_eq!(b.recv(&mut [0; 2]).unwrap(), 1);
    /// drop(a);
    /// ```
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: self.io.clone_with(self.io.get_ref().try_clone()?)?,
        })
    }

    common_socket_methods!("let s = corun_netpoll::UnixDatagram::unbound().unwrap();");
}
