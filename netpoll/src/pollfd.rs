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
    pub fn new(inner: T) -> io::Result<PollFd<T>> {
        Ok(PollFd {
            io: Io::new(inner)?,
        })
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        self.io.get_ref()
    }

    /// The wrapped value, mutably. Do not switch it back to blocking mode.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.get_mut()
    }

    /// Unwraps, restoring blocking mode.
    pub fn into_inner(self) -> io::Result<T> {
        self.io.into_inner()
    }

    /// Runs `op` until it does not fail with `WouldBlock`, parking for
    /// read readiness in between (wait reason "io read").
    pub fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.io(Dir::Read, WaitReason::IoRead, op)
    }

    /// As [`read_with`](Self::read_with), for write readiness.
    pub fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io.io(Dir::Write, WaitReason::IoWrite, op)
    }

    /// Sets the timeout of read operations (`TimedOut` on expiry).
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.io.set_timeout(Dir::Read, dur)
    }

    /// Sets the timeout of write operations.
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
