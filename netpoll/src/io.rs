//! The blocking-style I/O core shared by every socket type and `PollFd`.
//!
//! Descriptors are always in non-blocking mode at the OS level. An
//! operation is first tried directly; only on `WouldBlock` does it wait:
//!
//! - in a coroutine, by parking on the poller ([`Direction::wait`]), the
//!   descriptor being registered on its first wait;
//! - on a plain thread, in `poll(2)` on that one descriptor, so a program
//!   without any runtime behaves exactly like std.
//!
//! Timeouts are std's: per operation, `None` waits forever; expiry is
//! `ErrorKind::TimedOut` (std reports `WouldBlock` on Unix; Go's deadline
//! error is a timeout, and that is what this is). A user who asked for
//! non-blocking mode gets `WouldBlock` back at once, as with std.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use corun_runtime::{WaitReason, is_coroutine, park_deadline, yield_point};

use crate::driver::{Direction, Source};

/// The first and the longest pause of [`Io::io_retrying`]: a receiver that
/// drains at once costs its sender ~10 us, one that stays full costs it a
/// system call every 5 ms.
const RETRY_PAUSE_MIN: Duration = Duration::from_micros(10);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(5);

/// Which way an operation goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// A non-blocking descriptor with coroutine-aware waiting.
pub(crate) struct Io<S: AsRawFd> {
    inner: S,
    source: OnceLock<Arc<Source>>,
    /// Held while registering: epoll takes a descriptor once, so of two
    /// coroutines making their first wait at the same moment the second
    /// must find the first one's registration, not an `EEXIST`.
    registering: Mutex<()>,
    /// Shared with the handles made by `try_clone`.
    options: Arc<Options>,
}

/// What std keeps in the socket (`SO_RCVTIMEO`, `SO_SNDTIMEO`) or in its
/// open file (`O_NONBLOCK`), and so shares between a handle and its
/// `try_clone` twins ("options set on one stream will be propagated to
/// the other stream"): one `Options` for all the clones of a handle.
#[derive(Default)]
struct Options {
    /// Per-operation timeouts in nanoseconds, 0 for none.
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// The user asked for non-blocking mode.
    nonblocking: AtomicBool,
}

impl<S: AsRawFd> Io<S> {
    /// Wraps `inner`, switching its descriptor to non-blocking mode.
    /// Timeouts set on the socket itself (by std's `set_read_timeout`,
    /// say) carry over: std keeps them there.
    pub(crate) fn new(inner: S) -> io::Result<Io<S>> {
        let fd = inner.as_raw_fd();
        let options = Options {
            read_timeout: AtomicU64::new(socket_timeout(fd, Dir::Read)),
            write_timeout: AtomicU64::new(socket_timeout(fd, Dir::Write)),
            ..Options::default()
        };
        Io::with_options(inner, Arc::new(options))
    }

    /// As [`Io::new`], for a socket this crate has just created, which has
    /// no timeouts to carry over: spares the two `getsockopt` calls.
    pub(crate) fn fresh(inner: S) -> io::Result<Io<S>> {
        Io::with_options(inner, Arc::default())
    }

    /// Wraps `inner`, a duplicate of this handle's descriptor (`try_clone`),
    /// sharing this handle's timeouts and non-blocking mode.
    pub(crate) fn clone_with(&self, inner: S) -> io::Result<Io<S>> {
        Io::with_options(inner, self.options.clone())
    }

    fn with_options(inner: S, options: Arc<Options>) -> io::Result<Io<S>> {
        set_nonblocking(inner.as_raw_fd(), true)?;
        Ok(Io {
            inner,
            source: OnceLock::new(),
            registering: Mutex::new(()),
            options,
        })
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The descriptor, deregistered first: the caller may replace it, and
    /// a registration left under the old number would later be deleted
    /// from epoll by number, whoever owns that number by then. The next
    /// wait registers again (`&mut self`: nobody is waiting now).
    pub(crate) fn get_mut(&mut self) -> &mut S {
        if let Some(s) = self.source.take() {
            s.deregister();
        }
        &mut self.inner
    }

    /// Gives the descriptor back in blocking mode, deregistered, with this
    /// handle's timeouts set on the socket, where std looks for them.
    pub(crate) fn into_inner(mut self) -> io::Result<S> {
        if let Some(s) = self.source.take() {
            s.deregister();
        }
        let fd = self.inner.as_raw_fd();
        for dir in [Dir::Read, Dir::Write] {
            set_socket_timeout(fd, dir, self.timeout_cell(dir).load(Ordering::Relaxed))?;
        }
        set_nonblocking(fd, false)?;
        // `Io` has a Drop impl; move the value out without running it.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so `options` is
        // moved out once and dropped here; every other field but `inner`
        // owns nothing that needs dropping once the source is taken.
        drop(unsafe { std::ptr::read(&this.options) });
        // SAFETY: as above, `inner` is moved out once.
        Ok(unsafe { std::ptr::read(&this.inner) })
    }

    pub(crate) fn set_timeout(&self, dir: Dir, t: Option<Duration>) -> io::Result<()> {
        let nanos = match t {
            Some(d) if d.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ));
            }
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            None => 0,
        };
        self.timeout_cell(dir).store(nanos, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn timeout(&self, dir: Dir) -> Option<Duration> {
        match self.timeout_cell(dir).load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    /// When an operation in `dir` starting now times out (`None`: never).
    fn deadline(&self, dir: Dir) -> Option<Instant> {
        self.timeout(dir)
            .and_then(|t| Instant::now().checked_add(t))
    }

    fn timeout_cell(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::Read => &self.options.read_timeout,
            Dir::Write => &self.options.write_timeout,
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) {
        self.options.nonblocking.store(on, Ordering::Relaxed);
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// readiness in `dir` between tries, within the direction's timeout.
    pub(crate) fn io<R>(
        &self,
        dir: Dir,
        reason: WaitReason,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let deadline = self.deadline(dir);
        self.io_until(dir, reason, deadline, op, |_| false)
    }

    /// As [`Io::io`], for a transfer of `len` bytes in all: one of none is
    /// tried at once even where the direction was found drained (see
    /// [`Io::io_stream`]).
    pub(crate) fn io_len<R>(
        &self,
        dir: Dir,
        reason: WaitReason,
        len: usize,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let deadline = self.deadline(dir);
        self.run(dir, reason, deadline, op, |_| false, len > 0)
    }

    /// A stream read or write of `len` bytes: as [`Io::io`], and a short
    /// transfer marks the direction drained (the socket buffer is empty,
    /// or full), so the next call waits for the poller instead of making a
    /// system call that would fail, as tokio does.
    pub(crate) fn io_stream(
        &self,
        dir: Dir,
        reason: WaitReason,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let deadline = self.deadline(dir);
        // A zero-length transfer needs no room and no data: the kernel
        // answers a write at once (`Ok(0)`, as std returns it even when
        // the send buffer is full), so it must not wait for the poller
        // because the direction is drained.
        self.run(dir, reason, deadline, op, |&n| n > 0 && n < len, len > 0)
    }

    /// As [`Io::io`] with an explicit deadline.
    pub(crate) fn io_until<R>(
        &self,
        dir: Dir,
        reason: WaitReason,
        deadline: Option<Instant>,
        op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        self.run(dir, reason, deadline, op, drained, true)
    }

    /// [`Io::io_until`]; `trust_drained`: an operation starting where the
    /// direction was found drained waits for the poller before it tries.
    fn run<R>(
        &self,
        dir: Dir,
        reason: WaitReason,
        deadline: Option<Instant>,
        mut op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
        trust_drained: bool,
    ) -> io::Result<R> {
        yield_point();
        let in_coroutine = is_coroutine();
        loop {
            let direction = self.source.get().map(|s| s.direction(dir));
            let since = direction.map(|d| d.snapshot());
            if in_coroutine
                && trust_drained
                && !self.options.nonblocking.load(Ordering::Relaxed)
                && let (Some(d), Some(seq)) = (direction, since)
                && !d.is_ready(seq)
            {
                // It would block and nothing has happened since: wait for
                // the poller before trying the system call again.
                self.wait_for(d, seq, reason, deadline)?;
                continue;
            }
            match op(&self.inner) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(r) => {
                    if let (Some(d), Some(seq)) = (direction, since)
                        && drained(&r)
                    {
                        d.clear_if_unchanged(seq);
                    }
                    return Ok(r);
                }
                Err(e) => return Err(e),
            }
            if self.options.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if !in_coroutine {
                self.check_deadline(deadline)?;
                poll_one(self.inner.as_raw_fd(), dir, deadline)?;
                continue;
            }
            match (direction, since) {
                (Some(d), Some(seq)) => self.wait_for(d, seq, reason, deadline)?,
                // First wait: register; registration reports the current
                // readiness as an event, so starting from 0 loses nothing.
                _ => {
                    let d = self.registered()?.direction(dir);
                    self.wait_for(d, 0, reason, deadline)?;
                }
            }
        }
    }

    /// As [`Io::io`], for a call whose readiness the kernel does not
    /// report: it retries after a growing pause instead of waiting for the
    /// poller. A Unix datagram `send_to` on an unconnected socket is one:
    /// when the receiver's queue is full it fails with `EAGAIN`, but the
    /// sender is still reported writable (its own buffer is empty), so a
    /// readiness wait returned at once and the retry loop spun a worker
    /// for as long as the receiver stayed full (measured: ~300 ms of CPU
    /// in 300 ms). Nothing tells an unconnected sender when its receiver
    /// drains, so polling is all there is.
    pub(crate) fn io_retrying<R>(
        &self,
        dir: Dir,
        reason: WaitReason,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        yield_point();
        let deadline = self.deadline(dir);
        let mut pause = RETRY_PAUSE_MIN;
        loop {
            match op(&self.inner) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            if self.options.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let now = Instant::now();
            let until = match deadline {
                Some(d) if now >= d => return Err(timed_out()),
                Some(d) => d.min(now + pause),
                None => now + pause,
            };
            // Parks a coroutine, or sleeps a plain thread. Nothing else
            // wakes this wait, so an early return only means one more try.
            park_deadline(reason, until);
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }

    fn check_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
        match deadline {
            Some(d) if Instant::now() >= d => Err(timed_out()),
            _ => Ok(()),
        }
    }

    fn wait_for(
        &self,
        d: &Direction,
        since: u64,
        reason: WaitReason,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        self.check_deadline(deadline)?;
        d.wait(since, deadline, reason)
    }

    /// The registration, made on first use.
    fn registered(&self) -> io::Result<&Arc<Source>> {
        if let Some(s) = self.source.get() {
            return Ok(s);
        }
        // Held only across one `epoll_ctl`: no park inside.
        let _registering = self.registering.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = self.source.get() {
            return Ok(s);
        }
        let s = Source::register(self.inner.as_raw_fd())?;
        Ok(self.source.get_or_init(|| s))
    }
}

impl<S: AsRawFd> Drop for Io<S> {
    fn drop(&mut self) {
        // Out of the poller before `inner` closes the descriptor.
        if let Some(s) = self.source.take() {
            s.deregister();
        }
    }
}

pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "operation timed out")
}

fn timeout_option(dir: Dir) -> libc::c_int {
    match dir {
        Dir::Read => libc::SO_RCVTIMEO,
        Dir::Write => libc::SO_SNDTIMEO,
    }
}

/// The socket's own timeout in `dir` in nanoseconds; 0 for none, and for
/// a descriptor that is not a socket.
fn socket_timeout(fd: RawFd, dir: Dir) -> u64 {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv` and `len` are live and sized for the option; an invalid
    // or non-socket `fd` is an error return, checked below.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            timeout_option(dir),
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return 0;
    }
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000)
        .saturating_add(micros * 1_000)
}

/// Sets the socket's own timeout in `dir` (0: none), rounded up to whole
/// microseconds, so never shorter than ours (the kernel then rounds to its
/// clock ticks). A descriptor that is not a socket has none to set.
fn set_socket_timeout(fd: RawFd, dir: Dir, nanos: u64) -> io::Result<()> {
    let micros = nanos.div_ceil(1_000);
    let tv = libc::timeval {
        tv_sec: (micros / 1_000_000).min(libc::time_t::MAX as u64) as libc::time_t,
        tv_usec: (micros % 1_000_000) as libc::suseconds_t,
    };
    // SAFETY: `tv` is a live timeval of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            timeout_option(dir),
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    match r {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ENOTSOCK) => Ok(()),
            e => Err(e),
        },
    }
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    if new != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks the calling thread in `poll(2)` until `fd` is ready in `dir`.
fn poll_one(fd: RawFd, dir: Dir, deadline: Option<Instant>) -> io::Result<()> {
    let events = match dir {
        Dir::Read => libc::POLLIN,
        Dir::Write => libc::POLLOUT,
    };
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                // Round up so we never wake before the deadline.
                i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
            }
        };
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
