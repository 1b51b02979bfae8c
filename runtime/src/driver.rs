//! The trait through which idle workers block, and the built-in sleeper.
//!
//! One M at a time blocks in the driver, with the earliest timer of the
//! runtime as its timeout, the way Go's `findrunnable` blocks in netpoll.
//! Without a network driver installed, the runtime blocks in a [`Sleeper`]
//! (a condition variable that only timers and `notify` end). The netpoll
//! crate installs its epoll/kqueue driver once, with [`install`]; from then
//! on every runtime's idle M blocks in it and readiness wakes coroutines
//! directly from the thread that polled.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use crate::park::Unparker;

/// A source of wake-ups that idle workers can block on.
pub trait Driver: Send + Sync + 'static {
    /// Waits up to `timeout` (`None`: until notified; zero: do not block) for
    /// events, handing the waiter of each to `wake`. Returns early on
    /// [`notify`](Driver::notify); a notify that arrives while nobody polls
    /// makes the next poll return at once.
    fn poll(&self, timeout: Option<Duration>, wake: &mut dyn FnMut(Unparker));

    /// Ends a `poll` in progress, or the next one.
    fn notify(&self);

    /// True if a poll could find anything (any waiter registered). Busy
    /// workers skip their non-blocking poll when it is false.
    fn has_waiters(&self) -> bool;
}

static INSTALLED: OnceLock<&'static dyn Driver> = OnceLock::new();

/// Installs the process-wide driver. Returns `false` if one was already
/// installed (the first stays). Idle workers blocked in the built-in sleeper
/// are woken so that they block in the new driver.
pub fn install(driver: &'static dyn Driver) -> bool {
    let ok = INSTALLED.set(driver).is_ok();
    if ok {
        crate::runtime::notify_all_pollers();
    }
    ok
}

pub(crate) fn installed() -> Option<&'static dyn Driver> {
    INSTALLED.get().copied()
}

/// The built-in driver: waits for timers and notifications only.
pub(crate) struct Sleeper {
    notified: Mutex<bool>,
    cv: Condvar,
}

impl Sleeper {
    pub(crate) fn new() -> Sleeper {
        Sleeper {
            notified: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
}

impl Driver for Sleeper {
    fn poll(&self, timeout: Option<Duration>, _wake: &mut dyn FnMut(Unparker)) {
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        if !*notified {
            notified = match timeout {
                None => self.cv.wait(notified).unwrap_or_else(|e| e.into_inner()),
                Some(d) if d.is_zero() => notified,
                Some(d) => {
                    self.cv
                        .wait_timeout(notified, d)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        *notified = false;
    }

    fn notify(&self) {
        *self.notified.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_one();
    }

    fn has_waiters(&self) -> bool {
        false
    }
}
