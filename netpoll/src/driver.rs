//! The poller: one epoll (kqueue on BSD/macOS, through `polling`) for the
//! process, blocked in by idle workers through `corun_runtime::Driver`.
//!
//! Each registered descriptor has a [`Source`] with two [`Direction`]s,
//! read and write, so one coroutine can read while another writes.
//! Descriptors are registered edge-triggered for both directions, once,
//! on the first wait; nothing is re-armed afterwards.
//!
//! Invariant of a direction: `ready` is set by every readiness event and
//! cleared only by a waiter that is about to retry its operation. A
//! waiter checks `ready` and queues its `Unparker` under the same lock the
//! event takes, so an event that lands between a failed (`EAGAIN`)
//! attempt and the park is never lost: either the waiter sees `ready`, or
//! the event sees the waiter and wakes it. Each event wakes every queued
//! waiter exactly once (it takes them out of the queue).
//!
//! Events carry a key that is never reused, looked up in a map: an event
//! for a descriptor deregistered meanwhile finds nothing, never a stranger.
//!
//! `polling` lets one thread wait at a time. A second runtime's idle
//! worker that finds the poller busy waits on a condition variable for at
//! most 1 ms and tries again, so a notify meant for it can never be lost
//! for longer than that.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use corun_runtime::{Driver, Unparker, WaitReason, park, park_deadline, unparker};
use polling::{Event, Events, PollMode, Poller};

/// Longest wait of a worker that found another one in the poller.
const SIDE_WAIT: Duration = Duration::from_millis(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections are pushes, pops and flag writes: a panic cannot
    // leave them half done, so poisoning says nothing.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One direction (read or write) of a registered descriptor.
#[derive(Default)]
pub(crate) struct Direction {
    state: Mutex<DirState>,
}

#[derive(Default)]
struct DirState {
    ready: bool,
    waiters: Vec<Unparker>,
}

impl Direction {
    /// A readiness event: remember it and hand every waiter to `wake`.
    fn fire(&self, wake: &mut dyn FnMut(Unparker)) {
        let mut s = lock(&self.state);
        s.ready = true;
        for u in s.waiters.drain(..) {
            driver().waiting.fetch_sub(1, Ordering::Relaxed);
            wake(u);
        }
    }

    /// Waits for readiness after an operation failed with `WouldBlock`.
    /// Returns `Err(TimedOut)` once `deadline` passes.
    pub(crate) fn wait(&self, deadline: Option<Instant>, reason: WaitReason) -> io::Result<()> {
        let me = unparker();
        {
            let mut s = lock(&self.state);
            if std::mem::take(&mut s.ready) {
                return Ok(());
            }
            s.waiters.push(me.clone());
            driver().waiting.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            let timed_out = match deadline {
                Some(d) => park_deadline(reason, d),
                None => {
                    park(reason);
                    false
                }
            };
            let mut s = lock(&self.state);
            let queued = s.waiters.iter().position(|u| u.same_waiter(&me));
            if queued.is_none() {
                // An event took us out of the queue: it fired.
                s.ready = false;
                return Ok(());
            }
            if timed_out {
                s.waiters.swap_remove(queued.expect("queued"));
                driver().waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "operation timed out",
                ));
            }
        }
    }
}

/// A descriptor registered with the poller.
pub(crate) struct Source {
    key: u64,
    fd: RawFd,
    pub(crate) read: Direction,
    pub(crate) write: Direction,
}

impl Source {
    /// Registers `fd` (edge-triggered, both directions).
    pub(crate) fn register(fd: RawFd) -> io::Result<Arc<Source>> {
        let d = driver();
        let key = d.next_key.fetch_add(1, Ordering::Relaxed);
        let source = Arc::new(Source {
            key,
            fd,
            read: Direction::default(),
            write: Direction::default(),
        });
        lock(&d.sources).insert(key, source.clone());
        // SAFETY: the owner of `fd` deregisters it (Drop of `Registration`)
        // before closing it.
        let added = unsafe {
            d.poller
                .add_with_mode(fd, Event::all(key as usize), PollMode::Edge)
        };
        if let Err(e) = added {
            lock(&d.sources).remove(&key);
            return Err(e);
        }
        Ok(source)
    }

    /// Removes the descriptor from the poller; call before closing it.
    pub(crate) fn deregister(&self) {
        let d = driver();
        // SAFETY: the descriptor is still open: we are called before close.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        // A descriptor closed elsewhere first is already gone from epoll.
        let _ = d.poller.delete(fd);
        lock(&d.sources).remove(&self.key);
    }
}

/// The process-wide driver.
pub(crate) struct NetDriver {
    poller: Poller,
    sources: Mutex<HashMap<u64, Arc<Source>>>,
    next_key: AtomicU64,
    /// Parties parked on some direction.
    waiting: AtomicUsize,
    /// Held by the one thread inside `poller.wait`.
    polling: Mutex<()>,
    /// For workers that found the poller busy.
    side: Mutex<bool>,
    side_cv: Condvar,
}

thread_local! {
    static EVENTS: RefCell<Option<Events>> = const { RefCell::new(None) };
}

impl Driver for NetDriver {
    fn poll(&self, timeout: Option<Duration>, wake: &mut dyn FnMut(Unparker)) {
        let Ok(_polling) = self.polling.try_lock() else {
            self.side_wait(timeout);
            return;
        };
        EVENTS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let events = cell.get_or_insert_with(|| {
                Events::with_capacity(NonZeroUsize::new(256).expect("non-zero"))
            });
            events.clear();
            if self.poller.wait(events, timeout).is_err() {
                return;
            }
            let sources = lock(&self.sources);
            for ev in events.iter() {
                let Some(s) = sources.get(&(ev.key as u64)) else {
                    continue;
                };
                // Errors and hang-ups wake both sides: the retried
                // operation reports what happened.
                if ev.readable {
                    s.read.fire(wake);
                }
                if ev.writable {
                    s.write.fire(wake);
                }
            }
        });
    }

    fn notify(&self) {
        let _ = self.poller.notify();
        *lock(&self.side) = true;
        self.side_cv.notify_all();
    }

    fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }
}

impl NetDriver {
    fn side_wait(&self, timeout: Option<Duration>) {
        let limit = timeout.map_or(SIDE_WAIT, |t| t.min(SIDE_WAIT));
        let mut notified = lock(&self.side);
        if !*notified && !limit.is_zero() {
            notified = self
                .side_cv
                .wait_timeout(notified, limit)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *notified = false;
    }
}

/// The driver, created and installed in the runtime on first use.
pub(crate) fn driver() -> &'static NetDriver {
    static DRIVER: OnceLock<&'static NetDriver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let poller = Poller::new().unwrap_or_else(|e| {
            panic!("corun-netpoll: cannot create the poller (epoll/kqueue): {e}")
        });
        let d: &'static NetDriver = Box::leak(Box::new(NetDriver {
            poller,
            sources: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            polling: Mutex::new(()),
            side: Mutex::new(false),
            side_cv: Condvar::new(),
        }));
        corun_runtime::install_driver(d);
        d
    })
}
