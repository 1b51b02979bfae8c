//! `PollFd`: any pollable descriptor (pipe, eventfd, tty, a socket from
//! another library) made to park coroutines like corun's own sockets.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use corun_runtime::WaitReason;

use crate::io::{Dir, Io};

/// Wraps a descriptor, switching it to non-blocking mode; operations that
/// would block park the coroutine until the poller reports readiness (or
/// block the thread in `poll(2)` outside coroutines).
///
/// ```
/// use std::io::{Read, Write};
/// use corun_netpoll::PollFd;
///
/// corun_runtime::run(|| {
///     let (r, w) = std::io::pipe().unwrap();
///     let mut r = PollFd::new(r).unwrap();
///     let mut w = PollFd::new(w).unwrap();
///     let reader = corun_runtime::go!(move || {
///         let mut s = String::new();
///         r.read_to_string(&mut s).unwrap(); // parks until data, then EOF
///         s
///     });
///     w.write_all(b"through a pipe").unwrap();
///     drop(w);
///     assert_eq!(reader.join().unwrap(), "through a pipe");
/// });
/// ```
pub struct PollFd<T: AsRawFd> {
    io: Io<T>,
}

impl<T: AsRawFd> PollFd<T> {
    /// Wraps `inner` and sets `O_NONBLOCK` on its descriptor (which is
    /// shared by every duplicate of it, as always with that flag).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use corun_netpoll::PollFd;
    ///
    /// let (r, mut w) = std::io::pipe().unwrap();
    /// let mut r = PollFd::new(r).unwrap();
    /// w.write_all(b"a").unwrap();
    /// let mut buf = [0; 1];
    /// r.read_exact(&mut buf).unwrap();
    /// // A regular file never reports `WouldBlock`, so it never parks:
    /// let mut f = PollFd::new(std::fs::File::open("Cargo.toml").unwrap()).unwrap();
    /// f.read_exact(&mut buf).unwrap();
    /// ```
    pub fn new(inner: T) -> io::Result<PollFd<T>> {
        Ok(PollFd {
            io: Io::new(inner)?,
        })
    }

    /// The wrapped value.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    ///
    /// let (r, _w) = std::io::pipe().unwrap();
    /// let fd = r.as_raw_fd();
    /// let r = corun_netpoll::PollFd::new(r).unwrap();
    /// assert_eq!(r.get_ref().as_raw_fd(), fd);
    /// ```
    pub fn get_ref(&self) -> &T {
        self.io.get_ref()
    }

    /// The wrapped value, mutably. Do not switch it back to blocking mode.
    /// Taking it leaves the poller (the next wait registers again), so the
    /// value may even be replaced, by another descriptor in non-blocking
    /// mode.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (r, w) = std::io::pipe().unwrap();
    /// let mut w = corun_netpoll::PollFd::new(w).unwrap();
    /// w.get_mut().write_all(b"direct").unwrap(); // a raw, non-blocking write
    /// drop(w);
    /// let mut s = String::new();
    /// corun_netpoll::PollFd::new(r).unwrap().read_to_string(&mut s).unwrap();
    /// assert_eq!(s, "direct");
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.io.get_mut()
    }

    /// Unwraps, restoring blocking mode.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (r, w) = std::io::pipe().unwrap();
    /// let r = corun_netpoll::PollFd::new(r).unwrap();
    /// let mut r = r.into_inner().unwrap(); // a plain, blocking pipe again
    /// let t = std::thread::spawn(move || { let mut w = w; w.write_all(b"!").unwrap(); });
    /// let mut buf = [0; 1];
    /// r.read_exact(&mut buf).unwrap();
    /// t.join().unwrap();
    /// ```
    pub fn into_inner(self) -> io::Result<T> {
        self.io.into_inner()
    }

    /// Runs `op` until it does not fail with `WouldBlock`, parking for
    /// read readiness in between (wait reason "io read").
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use corun_netpoll::PollFd;
    ///
    /// let (r, mut w) = std::io::pipe().unwrap();
    /// let r = PollFd::new(r).unwrap();
    /// let reader = corun_runtime::go!(move || {
    ///     let mut buf = [0; 8];
    ///     // `op` sees the raw non-blocking pipe; `WouldBlock` parks and retries.
    ///     let n = r.read_with(|mut pipe| pipe.read(&mut buf)).unwrap();
    ///     buf[..n].to_vec()
    /// });
    /// w.write_all(b"ready").unwrap();
    /// assert_eq!(reader.join().unwrap(), b"ready");
    /// ```
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.io(Dir::Read, WaitReason::IoRead, op)
    }

    /// As [`read_with`](Self::read_with), for write readiness.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use corun_netpoll::PollFd;
    ///
    /// let (mut r, w) = std::io::pipe().unwrap();
    /// let w = PollFd::new(w).unwrap();
    /// let writer = corun_runtime::go!(move || {
    ///     let chunk = [7u8; 64 * 1024];
    ///     let mut sent = 0;
    ///     while sent < 1 << 20 {
    ///         // parks whenever the pipe buffer is full
    ///         sent += w.write_with(|mut pipe| pipe.write(&chunk)).unwrap();
    ///     }
    ///     sent
    /// });
    /// let mut total = 0;
    /// let mut buf = [0; 64 * 1024];
    /// while total < 1 << 20 {
    ///     total += r.read(&mut buf).unwrap();
    /// }
    /// assert_eq!(writer.join().unwrap(), 1 << 20);
    /// ```
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.io(Dir::Write, WaitReason::IoWrite, op)
    }

    /// Sets the timeout of read operations (`TimedOut` on expiry).
    ///
    /// ```
    /// use std::io::{ErrorKind, Read};
    /// use std::time::Duration;
    ///
    /// let (r, _w) = std::io::pipe().unwrap();
    /// let r = corun_netpoll::PollFd::new(r).unwrap();
    /// r.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    /// let err = r.read_with(|mut p| p.read(&mut [0; 1])).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// ```
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(Dir::Read, dur)
    }

    /// Sets the timeout of write operations.
    ///
    /// ```
    /// use std::io::{ErrorKind, Write};
    /// use std::time::Duration;
    ///
    /// let (_r, w) = std::io::pipe().unwrap();
    /// let w = corun_netpoll::PollFd::new(w).unwrap();
    /// w.set_write_timeout(Some(Duration::from_millis(5))).unwrap();
    /// let chunk = [0u8; 4096];
    /// let err = loop {
    ///     // nobody reads: the pipe fills, then the write times out
    ///     if let Err(e) = w.write_with(|mut p| p.write(&chunk)) {
    ///         break e;
    ///     }
    /// };
    /// assert_eq!(err.kind(), ErrorKind::TimedOut);
    /// ```
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(Dir::Write, dur)
    }
}

impl<T: AsRawFd> AsRawFd for PollFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd + std::fmt::Debug> std::fmt::Debug for PollFd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PollFd").field(self.io.get_ref()).finish()
    }
}

impl<T: AsRawFd> Read for PollFd<T>
where
    for<'a> &'a T: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(|mut t| t.read(buf))
    }
}

impl<T: AsRawFd> Write for PollFd<T>
where
    for<'a> &'a T: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(|mut t| t.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_with(|mut t| t.flush())
    }
}
