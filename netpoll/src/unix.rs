//! Unix domain sockets with std::os::unix::net's shapes.

use std::io;
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;

use corun_runtime::WaitReason;

use crate::io::{Dir, Io};

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

fd_conversions!(UnixListener, net::UnixListener);

impl UnixListener {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        UnixListener::from_std(net::UnixListener::bind(path)?)
    }

    /// Waits for a connection.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, a) = self.io.io(Dir::Read, WaitReason::Accept, |l| l.accept())?;
        Ok((UnixStream::from_std(s)?, a))
    }

    /// An endless iterator of accepted connections.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// A second handle to the same socket (a new descriptor).
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        UnixListener::from_std(self.io.get_ref().try_clone()?)
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

/// The iterator of [`UnixListener::incoming`].
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
pub struct UnixStream {
    io: Io<net::UnixStream>,
}

fd_conversions!(UnixStream, net::UnixStream);
read_write!(UnixStream);

impl UnixStream {
    /// Connects to the socket at `path`. A Unix connect completes or fails
    /// at once, except with a full backlog, where std's connect blocks the
    /// thread; corun runs it under `blocking()` so the others keep running.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let s = corun_runtime::blocking(|| net::UnixStream::connect(path))?;
        UnixStream::from_std(s)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same connection (a new descriptor).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        UnixStream::from_std(self.io.get_ref().try_clone()?)
    }

    common_socket_methods!();
}

/// A Unix datagram socket.
pub struct UnixDatagram {
    io: Io<net::UnixDatagram>,
}

fd_conversions!(UnixDatagram, net::UnixDatagram);

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(net::UnixDatagram::bind(path)?)
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(net::UnixDatagram::unbound()?)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Sets the default peer.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.io.get_ref().connect(path)
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.io(Dir::Write, WaitReason::IoWrite, |s| s.send(buf))
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Dir::Read, WaitReason::IoRead, |s| s.recv(buf))
    }

    /// Sends one datagram to `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.io
            .io(Dir::Write, WaitReason::IoWrite, |s| s.send_to(buf, path))
    }

    /// Receives one datagram and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io
            .io(Dir::Read, WaitReason::IoRead, |s| s.recv_from(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read half, the write half, or both.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// A second handle to the same socket (a new descriptor).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(self.io.get_ref().try_clone()?)
    }

    common_socket_methods!();
}
