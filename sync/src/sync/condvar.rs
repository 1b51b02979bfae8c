//! `Condvar`: std's API over a FIFO of parked waiters.
//!
//! A waiter links itself into the condvar's queue *before* it releases the
//! mutex, so a notify issued by anyone who takes the mutex afterwards finds
//! it: no wake-up is lost. `notify_one` unlinks the first waiter, and
//! `notify_all` the whole queue, under a short spin lock, then wakes them
//! after releasing it. A timed-out waiter removes itself under that lock;
//! if a notifier unlinked it first, the notification is its own and it
//! reports no time-out.

use std::fmt;
use std::sync::LockResult;
use std::time::{Duration, Instant};

use corun_runtime::WaitReason;

use super::MutexGuard;
use super::waitq::{List, Waiter};
use crate::chan::lock::SpinLock;

/// Whether a timed wait on a [`Condvar`] ended by timing out.
///
/// ```
/// use std::time::Duration;
/// use corun_sync::sync::{Condvar, Mutex};
/// let (m, cv) = (Mutex::new(()), Condvar::new());
/// let (_g, r) = cv.wait_timeout(m.lock().unwrap(), Duration::from_millis(2)).unwrap();
/// assert!(r.timed_out());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because the time ran out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let (m, cv) = (Mutex::new(true), Condvar::new());
    /// let (_g, r) = cv
    ///     .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(1), |ready| !*ready)
    ///     .unwrap();
    /// assert!(!r.timed_out()); // the condition already held
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable with `std::sync::Condvar`'s API, for this module's
/// [`Mutex`](super::Mutex). Waiting parks the coroutine (wait reason
/// "condvar") or, outside coroutines, the thread.
///
/// Wake-ups are FIFO and never spurious from the condvar itself, but as
/// with std, wait in a loop on your condition (or use
/// [`wait_while`](Condvar::wait_while)): another holder of the mutex may
/// change it between the notify and the wake-up.
///
/// ```
/// use std::sync::Arc;
/// use corun_sync::sync::{Condvar, Mutex};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let pair2 = pair.clone();
/// corun_runtime::go!(move || {
///     let (lock, cvar) = &*pair2;
///     *lock.lock().unwrap() = true;
///     cvar.notify_one();
/// });
/// let (lock, cvar) = &*pair;
/// let ready = cvar.wait_while(lock.lock().unwrap(), |r| !*r).unwrap();
/// assert!(*ready);
/// ```
pub struct Condvar {
    waiters: SpinLock<List>,
}

impl Condvar {
    /// A condvar with no waiters.
    ///
    /// ```
    /// static READY: corun_sync::sync::Condvar = corun_sync::sync::Condvar::new();
    /// READY.notify_all(); // nobody waits: nothing happens
    /// ```
    pub const fn new() -> Condvar {
        Condvar {
            waiters: SpinLock::new(List::new()),
        }
    }

    /// Releases the guard's mutex, waits for a notification, and locks it
    /// again.
    ///
    /// # Errors
    /// `Err(PoisonError)` holding the guard if the mutex is poisoned when
    /// relocked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let p = pair.clone();
    /// corun_runtime::spawn(move || {
    ///     *p.0.lock().unwrap() = true;
    ///     p.1.notify_one();
    /// });
    /// let (lock, cv) = &*pair;
    /// let mut ready = lock.lock().unwrap();
    /// while !*ready {
    ///     ready = cv.wait(ready).unwrap(); // parks, lock released meanwhile
    /// }
    /// ```
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        let w = Waiter::new(0);
        // SAFETY: `w` is fresh and stays in this frame until woken (only a
        // notifier unlinks it here, and then wakes it).
        unsafe { self.waiters.lock().push(&w, false) };
        let mutex = guard.unlock_for_wait();
        w.wait(WaitReason::Condvar);
        mutex.raw().lock(WaitReason::Mutex);
        MutexGuard::relocked(mutex)
    }

    /// Waits while `condition` holds, then returns the guard.
    ///
    /// # Errors
    /// As [`wait`](Condvar::wait).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let pair = Arc::new((Mutex::new(0), Condvar::new()));
    /// let p = pair.clone();
    /// corun_runtime::spawn(move || {
    ///     *p.0.lock().unwrap() = 3;
    ///     p.1.notify_all();
    /// });
    /// let g = pair.1.wait_while(pair.0.lock().unwrap(), |n| *n < 3).unwrap();
    /// assert_eq!(*g, 3);
    /// ```
    pub fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`wait`](Condvar::wait), for at most `dur`.
    ///
    /// # Errors
    /// As [`wait`](Condvar::wait), with the time-out result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let (m, cv) = (Mutex::new(0), Condvar::new());
    /// let (g, r) = cv.wait_timeout(m.lock().unwrap(), Duration::from_millis(1)).unwrap();
    /// assert!(r.timed_out() && *g == 0);
    /// ```
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let deadline = Instant::now().checked_add(dur);
        let w = Waiter::new(0);
        // SAFETY: `w` stays in this frame until woken or removed below.
        unsafe { self.waiters.lock().push(&w, false) };
        let mutex = guard.unlock_for_wait();
        let timed_out = match deadline {
            None => {
                w.wait(WaitReason::Condvar);
                false
            }
            Some(d) => {
                !w.wait_until(WaitReason::Condvar, d) && {
                    let removed = self.waiters.lock().remove(&w);
                    if !removed {
                        // A notifier took us: its wake-up is on its way.
                        w.wait(WaitReason::Condvar);
                    }
                    removed
                }
            }
        };
        mutex.raw().lock(WaitReason::Mutex);
        let res = WaitTimeoutResult(timed_out);
        match MutexGuard::relocked(mutex) {
            Ok(g) => Ok((g, res)),
            Err(e) => Err(std::sync::PoisonError::new((e.into_inner(), res))),
        }
    }

    /// Waits while `condition` holds, for at most `dur` in total.
    ///
    /// # Errors
    /// As [`wait`](Condvar::wait), with the time-out result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let (m, cv) = (Mutex::new(false), Condvar::new());
    /// let (_g, r) = cv
    ///     .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(2), |done| !*done)
    ///     .unwrap();
    /// assert!(r.timed_out());
    /// ```
    pub fn wait_timeout_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let start = Instant::now();
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            let Some(left) = dur.checked_sub(start.elapsed()) else {
                return Ok((guard, WaitTimeoutResult(true)));
            };
            guard = self.wait_timeout(guard, left)?.0;
        }
    }

    /// Wakes one waiter, the longest waiting.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    /// let p = pair.clone();
    /// let waiter = corun_runtime::spawn(move || *p.1.wait_while(p.0.lock().unwrap(), |n| *n == 0).unwrap());
    /// *pair.0.lock().unwrap() = 1;
    /// pair.1.notify_one();
    /// assert_eq!(waiter.join().unwrap(), 1);
    /// ```
    pub fn notify_one(&self) {
        let w = self.waiters.lock().pop_front();
        if let Some(w) = w {
            // SAFETY: unlinked under the lock just now, woken once here.
            unsafe { Waiter::wake(w) };
        }
    }

    /// Wakes every waiter.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corun_sync::sync::{Condvar, Mutex};
    /// let pair = Arc::new((Mutex::new(false), Condvar::new()));
    /// let waiters: Vec<_> = (0..3)
    ///     .map(|_| {
    ///         let p = pair.clone();
    ///         corun_runtime::spawn(move || drop(p.1.wait_while(p.0.lock().unwrap(), |go| !*go).unwrap()))
    ///     })
    ///     .collect();
    /// *pair.0.lock().unwrap() = true;
    /// pair.1.notify_all();
    /// waiters.into_iter().for_each(|h| h.join().unwrap());
    /// ```
    pub fn notify_all(&self) {
        let chain = self.waiters.lock().take_all();
        chain.wake_all();
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}
