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
///
/// ```
/// use std::sync::{Condvar, Mutex};
/// use std::time::Duration;
/// use corun_runtime::{Driver, Unparker};
///
/// /// A driver whose only events are explicit notifications (the built-in
/// /// sleeper does the same); a real one waits on epoll, io_uring, ...
/// struct Notified {
///     flag: Mutex<bool>,
///     cv: Condvar,
/// }
///
/// impl Driver for Notified {
///     fn poll(&self, timeout: Option<Duration>, _wake: &mut dyn FnMut(Unparker)) {
///         let mut flag = self.flag.lock().unwrap();
///         if !*flag {
///             flag = match timeout {
///                 Some(t) => self.cv.wait_timeout(flag, t).unwrap().0,
///                 None => self.cv.wait(flag).unwrap(),
///             };
///         }
///         *flag = false;
///     }
///     fn notify(&self) {
///         *self.flag.lock().unwrap() = true;
///         self.cv.notify_one();
///     }
///     fn has_waiters(&self) -> bool {
///         false
///     }
/// }
///
/// static DRIVER: Notified = Notified { flag: Mutex::new(false), cv: Condvar::new() };
/// assert!(corun_runtime::install_driver(&DRIVER));
/// // Timers and coroutines keep working with the new driver.
/// corun_runtime::sleep(Duration::from_millis(1));
/// assert_eq!(corun_runtime::go!(|| 1).join().unwrap(), 1);
/// ```
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
///
/// ```
/// use std::time::Duration;
/// use corun_runtime::{Driver, Unparker};
///
/// /// Polls for at most 1 ms, so a notify is late by 1 ms at worst (a
/// /// sketch: a real driver blocks in the OS poller and is woken).
/// struct Napper;
/// impl Driver for Napper {
///     fn poll(&self, timeout: Option<Duration>, _: &mut dyn FnMut(Unparker)) {
///         let nap = Duration::from_millis(1);
///         std::thread::sleep(timeout.map_or(nap, |t| t.min(nap)));
///     }
///     fn notify(&self) {}
///     fn has_waiters(&self) -> bool {
///         false
///     }
/// }
///
/// static FIRST: Napper = Napper;
/// static SECOND: Napper = Napper;
/// assert!(corun_runtime::install_driver(&FIRST));
/// assert!(!corun_runtime::install_driver(&SECOND), "the first one stays");
/// ```
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
