//! A thin safe wrapper over Linux epoll, with an eventfd to interrupt a
//! wait.
//!
//! Written directly on epoll rather than through a portable poller for
//! two facts the portable ones hide: `EPOLLRDHUP`, which says the peer
//! shut its write side (so a short read that also saw the end of the
//! stream is not mistaken for a drained buffer), and `epoll_pwait2`, whose
//! nanosecond timeout spares the timerfd (two extra system calls per
//! wait) that a millisecond `epoll_wait` needs for exact timer deadlines.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Key of the eventfd's own registration; sources use smaller keys.
const NOTIFY_KEY: u64 = u64::MAX;

/// What one event says about a registered descriptor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readiness {
    pub(crate) key: u64,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer shut its write side, or the socket hung up or failed:
    /// reads will not block again.
    pub(crate) read_closed: bool,
    /// The socket hung up or failed: writes will not block again.
    pub(crate) write_closed: bool,
    /// Urgent (TCP out-of-band) data arrived: a read stops short at its
    /// mark with more data buffered behind it.
    pub(crate) urgent: bool,
}

/// Buffer for [`Epoll::wait`].
pub(crate) struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    pub(crate) fn with_capacity(n: usize) -> Events {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)],
            len: 0,
        }
    }

    /// The events of the last wait, the eventfd's left out.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Readiness> + '_ {
        self.buf[..self.len]
            .iter()
            .filter(|e| e.u64 != NOTIFY_KEY)
            .map(|e| {
                let flags = e.events as libc::c_int;
                let failed = flags & (libc::EPOLLHUP | libc::EPOLLERR) != 0;
                Readiness {
                    key: e.u64,
                    readable: flags & (libc::EPOLLIN | libc::EPOLLPRI) != 0,
                    writable: flags & libc::EPOLLOUT != 0,
                    read_closed: failed || flags & libc::EPOLLRDHUP != 0,
                    write_closed: failed,
                    urgent: flags & libc::EPOLLPRI != 0,
                }
            })
    }
}

/// An epoll instance and its wake-up eventfd.
pub(crate) struct Epoll {
    epoll: OwnedFd,
    notify: OwnedFd,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Set once `epoll_pwait2` turns out missing or refused (see `pwait2`).
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

impl Epoll {
    pub(crate) fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call; the result is checked.
        let epoll = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `epoll` is a fresh descriptor owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: plain system call; the result is checked.
        let notify = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `notify` is a fresh descriptor owned by nobody else.
        let notify = unsafe { OwnedFd::from_raw_fd(notify) };
        let e = Epoll { epoll, notify };
        // Level-triggered: stays ready until `drain_notify` reads it.
        e.ctl(
            libc::EPOLL_CTL_ADD,
            e.notify.as_raw_fd(),
            libc::EPOLLIN as u32,
            NOTIFY_KEY,
        )?;
        Ok(e)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: key };
        // SAFETY: `ev` is a valid event for the call's duration; an invalid
        // `fd` is reported as an error, never undefined behaviour.
        check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    /// Registers `fd` edge-triggered for reading, writing, urgent data and
    /// hang-ups, with `key` in its events. The caller removes it before
    /// closing it.
    pub(crate) fn add(&self, fd: RawFd, key: u64) -> io::Result<()> {
        debug_assert_ne!(key, NOTIFY_KEY);
        let interest =
            libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest as u32, key)
    }

    pub(crate) fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events (or `notify`) at most `timeout` (`None`: forever).
    /// A wait interrupted by a signal returns with no events.
    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.len = 0;
        let cap = events.buf.len().min(libc::c_int::MAX as usize) as libc::c_int;
        let buf = events.buf.as_mut_ptr();
        let n = match self.pwait2(buf, cap, timeout) {
            Some(r) => r,
            None => {
                let ms = timeout.map_or(-1, |t| {
                    // Round up: a timer must never fire early.
                    let ms = t.as_nanos().div_ceil(1_000_000);
                    ms.min(libc::c_int::MAX as u128) as libc::c_int
                });
                // SAFETY: `buf` holds `cap` writable events.
                unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), buf, cap, ms) }
            }
        };
        match check(n) {
            Ok(n) => events.len = n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if events.buf[..events.len].iter().any(|e| e.u64 == NOTIFY_KEY) {
            self.drain_notify();
        }
        Ok(())
    }

    /// `epoll_pwait2`, or `None` if the kernel lacks it.
    fn pwait2(
        &self,
        buf: *mut libc::epoll_event,
        cap: libc::c_int,
        timeout: Option<Duration>,
    ) -> Option<libc::c_int> {
        if NO_PWAIT2.load(Ordering::Relaxed) {
            return None;
        }
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as _,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `buf` holds `cap` writable events, `ts_ptr` is null or
        // points to a live timespec, and a null sigmask leaves the mask be.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                self.epoll.as_raw_fd(),
                buf,
                cap,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        // ENOSYS: a kernel before 5.11. EPERM, which the call itself never
        // returns: a seccomp profile that refuses system calls it does not
        // know (older container runtimes do) and would fail every wait.
        if n < 0
            && matches!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM)
            )
        {
            NO_PWAIT2.store(true, Ordering::Relaxed);
            return None;
        }
        Some(n as libc::c_int)
    }

    /// Interrupts a wait in progress, or makes the next one return at once.
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. It can only
        // fail with EAGAIN when the counter is near 2^64, which still leaves
        // it readable, so the result is ignored.
        let _ = unsafe {
            libc::write(
                self.notify.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    fn drain_notify(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking
        // eventfd; EAGAIN (already drained by another reader) is harmless.
        let _ = unsafe {
            libc::read(
                self.notify.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn notify_interrupts_a_wait_and_is_consumed() {
        let e = Epoll::new().unwrap();
        let mut events = Events::with_capacity(8);
        e.notify();
        let t = Instant::now();
        e.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert!(t.elapsed() < Duration::from_secs(4));
        assert_eq!(events.iter().count(), 0);
        // Drained: the next wait times out.
        let t = Instant::now();
        e.wait(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(t.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn reports_data_then_the_peer_shutting_down() {
        let e = Epoll::new().unwrap();
        let mut events = Events::with_capacity(8);
        let (a, mut b) = UnixStream::pair().unwrap();
        e.add(a.as_raw_fd(), 7).unwrap();
        e.wait(&mut events, Some(Duration::ZERO)).unwrap();
        let first: Vec<_> = events.iter().collect();
        assert_eq!(first.len(), 1);
        assert!(first[0].writable && !first[0].readable && !first[0].read_closed);
        b.write_all(b"x").unwrap();
        b.shutdown(std::net::Shutdown::Write).unwrap();
        e.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
        let ev: Vec<_> = events.iter().collect();
        assert_eq!(ev[0].key, 7);
        assert!(ev[0].readable && ev[0].read_closed && !ev[0].write_closed);
        e.delete(a.as_raw_fd()).unwrap();
    }

    #[test]
    fn waits_where_seccomp_refuses_epoll_pwait2() {
        // Older container runtimes' seccomp profiles answer system calls
        // they do not know with EPERM. A filter on this thread alone (and
        // it exits after) plays such a profile. The fallback it turns on is
        // process-wide: later waits in this binary use `epoll_wait`.
        std::thread::spawn(|| {
            refuse_with_eperm(libc::SYS_epoll_pwait2);
            let e = Epoll::new().unwrap();
            let mut events = Events::with_capacity(8);
            let (a, mut b) = UnixStream::pair().unwrap();
            e.add(a.as_raw_fd(), 3).unwrap();
            b.write_all(b"x").unwrap();
            e.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
            let ev: Vec<_> = events.iter().collect();
            assert!(ev.iter().any(|r| r.key == 3 && r.readable), "{ev:?}");
            e.delete(a.as_raw_fd()).unwrap();
        })
        .join()
        .unwrap();
    }

    /// Installs a seccomp filter on the calling thread that fails system
    /// call `nr` with EPERM and allows every other.
    fn refuse_with_eperm(nr: libc::c_long) {
        const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
        const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K
        const RET_ERRNO: u32 = 0x0005_0000;
        const RET_ALLOW: u32 = 0x7fff_0000;
        let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut prog = [
            // The system call number is the first field of seccomp_data.
            insn(LD_W_ABS, 0, 0, 0),
            insn(JEQ_K, 0, 1, nr as u32),
            insn(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
            insn(RET_K, 0, 0, RET_ALLOW),
        ];
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: plain prctl calls; `fprog` points at a live filter
        // program for the call's duration (the kernel copies it).
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &fprog as *const libc::sock_fprog
                ),
                0,
                "{}",
                io::Error::last_os_error()
            );
        }
    }

    #[test]
    fn a_timeout_is_never_short() {
        let e = Epoll::new().unwrap();
        let mut events = Events::with_capacity(8);
        for us in [1, 300, 1500] {
            let t = Instant::now();
            e.wait(&mut events, Some(Duration::from_micros(us)))
                .unwrap();
            assert!(t.elapsed() >= Duration::from_micros(us));
        }
    }
}
