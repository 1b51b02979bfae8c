//! `Semaphore`: a counting semaphore with FIFO waiters.
//!
//! The state word is `permits << 1 | HAS_WAITERS`. With nobody queued,
//! acquire and release are one CAS each. `HAS_WAITERS` is set and cleared
//! only under the queue lock; while it is set every acquire and release
//! goes through the lock, where releases hand permits to the queue in
//! order (a waiter wanting many blocks those behind it: strict FIFO, no
//! starvation of large requests).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corun_runtime::{WaitReason, yield_point};

use super::waitq::{List, Waiter};
use crate::chan::lock::SpinLock;

const HAS_WAITERS: usize = 1;
const SHIFT: u32 = 1;

/// A counting semaphore (Go's `semaphore.Weighted`, tokio's API shape).
/// Waiting parks the coroutine (wait reason "semaphore") or the thread.
///
/// ```
/// use corun_sync::sync::Semaphore;
///
/// let sem = Semaphore::new(2);
/// let a = sem.acquire();
/// let _b = sem.try_acquire().expect("one left");
/// assert!(sem.try_acquire().is_none());
/// drop(a);
/// assert_eq!(sem.available_permits(), 1);
/// ```
pub struct Semaphore {
    state: AtomicUsize,
    waiters: SpinLock<List>,
}

/// Permits taken from a [`Semaphore`]; given back when dropped.
///
/// ```
/// let sem = corun_sync::sync::Semaphore::new(1);
/// {
///     let _permit = sem.acquire();
///     assert_eq!(sem.available_permits(), 0);
/// } // returned on drop
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

/// Permits taken from a [`Semaphore`] in an `Arc`; given back when dropped.
///
/// ```
/// use std::sync::Arc;
/// let sem = Arc::new(corun_sync::sync::Semaphore::new(2));
/// let permit = sem.clone().acquire_owned();
/// // An owned permit can move into a coroutine.
/// corun_runtime::spawn(move || drop(permit)).join().unwrap();
/// assert_eq!(sem.available_permits(), 2);
/// ```
#[must_use = "dropping the permit releases it at once"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    n: usize,
}

impl Semaphore {
    /// The largest number of permits a semaphore can hold.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(corun_sync::sync::Semaphore::MAX_PERMITS);
    /// assert_eq!(sem.available_permits(), corun_sync::sync::Semaphore::MAX_PERMITS);
    /// ```
    pub const MAX_PERMITS: usize = usize::MAX >> 2;

    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// static LIMIT: corun_sync::sync::Semaphore = corun_sync::sync::Semaphore::new(4);
    /// assert_eq!(LIMIT.available_permits(), 4);
    /// ```
    pub const fn new(permits: usize) -> Semaphore {
        assert!(permits <= Self::MAX_PERMITS, "corun: too many permits");
        Semaphore {
            state: AtomicUsize::new(permits << SHIFT),
            waiters: SpinLock::new(List::new()),
        }
    }

    /// Permits available now.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(3);
    /// let _two = sem.acquire_many(2);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        self.state.load(Ordering::Acquire) >> SHIFT
    }

    /// Takes one permit, waiting for it. A yield point.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use corun_sync::sync::Semaphore;
    /// // At most 2 of 10 coroutines inside at once.
    /// let sem = Arc::new(Semaphore::new(2));
    /// let inside = Arc::new(AtomicUsize::new(0));
    /// let hs: Vec<_> = (0..10)
    ///     .map(|_| {
    ///         let (sem, inside) = (sem.clone(), inside.clone());
    ///         corun_runtime::spawn(move || {
    ///             let _p = sem.acquire();
    ///             assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
    ///             corun_runtime::yield_now();
    ///             inside.fetch_sub(1, Ordering::SeqCst);
    ///         })
    ///     })
    ///     .collect();
    /// hs.into_iter().for_each(|h| h.join().unwrap());
    /// ```
    pub fn acquire(&self) -> SemaphorePermit<'_> {
        self.acquire_many(1)
    }

    /// Takes `n` permits at once, waiting for them (behind earlier
    /// waiters: FIFO).
    ///
    /// # Panics
    /// If `n` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(5);
    /// let p = sem.acquire_many(3);
    /// assert_eq!(p.num_permits(), 3);
    /// ```
    pub fn acquire_many(&self, n: usize) -> SemaphorePermit<'_> {
        yield_point();
        self.acquire_raw(n, None);
        SemaphorePermit { sem: self, n }
    }

    /// Takes one permit, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let sem = corun_sync::sync::Semaphore::new(1);
    /// let _held = sem.acquire();
    /// assert!(sem.acquire_timeout(Duration::from_millis(2)).is_none());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphorePermit<'_>> {
        yield_point();
        let deadline = Instant::now().checked_add(timeout);
        self.acquire_raw(1, deadline)
            .then(|| SemaphorePermit { sem: self, n: 1 })
    }

    /// Takes one permit if one is free and nobody is queued.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(1);
    /// let p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(p);
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphorePermit<'_>> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits if they are free and nobody is queued.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(2);
    /// assert!(sem.try_acquire_many(3).is_none());
    /// assert!(sem.try_acquire_many(2).is_some());
    /// ```
    pub fn try_acquire_many(&self, n: usize) -> Option<SemaphorePermit<'_>> {
        (self.try_fast(n) || self.try_behind_abandoned(n)).then(|| SemaphorePermit { sem: self, n })
    }

    /// Like [`acquire`](Semaphore::acquire), for a semaphore in an `Arc`:
    /// the permit owns a reference and can outlive the borrow.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(corun_sync::sync::Semaphore::new(1));
    /// let p = sem.clone().acquire_owned();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(p);
    /// ```
    pub fn acquire_owned(self: Arc<Self>) -> OwnedSemaphorePermit {
        yield_point();
        self.acquire_raw(1, None);
        OwnedSemaphorePermit { sem: self, n: 1 }
    }

    /// Like [`try_acquire`](Semaphore::try_acquire), for a semaphore in an
    /// `Arc`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(corun_sync::sync::Semaphore::new(0));
    /// assert!(sem.try_acquire_owned().is_none());
    /// ```
    pub fn try_acquire_owned(self: Arc<Self>) -> Option<OwnedSemaphorePermit> {
        (self.try_fast(1) || self.try_behind_abandoned(1))
            .then(|| OwnedSemaphorePermit { sem: self, n: 1 })
    }

    /// Adds `n` permits (waking waiters they satisfy).
    ///
    /// # Panics
    /// If the total would exceed [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, n: usize) {
        self.release(n);
    }

    /// Removes up to `n` free permits; returns how many were removed.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(3);
    /// assert_eq!(sem.forget_permits(5), 3); // only the free ones
    /// assert_eq!(sem.available_permits(), 0);
    /// ```
    pub fn forget_permits(&self, n: usize) -> usize {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let k = n.min(s >> SHIFT);
            if k == 0 {
                return 0;
            }
            match self.state.compare_exchange_weak(
                s,
                s - (k << SHIFT),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return k,
                Err(cur) => s = cur,
            }
        }
    }

    #[inline]
    fn try_fast(&self, n: usize) -> bool {
        assert!(n <= Self::MAX_PERMITS, "corun: too many permits");
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & HAS_WAITERS != 0 || s >> SHIFT < n {
                return false;
            }
            match self.state.compare_exchange_weak(
                s,
                s - (n << SHIFT),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(cur) => s = cur,
            }
        }
    }

    /// `try_fast` refused because waiters are queued: if they are only
    /// coroutines abandoned by runtime shutdown (which a release would
    /// drop), drops them and takes the permits. Rare, so it locks.
    #[cold]
    fn try_behind_abandoned(&self, n: usize) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        if s & HAS_WAITERS == 0 || s >> SHIFT < n {
            return false;
        }
        let mut q = self.waiters.lock();
        let woken = self.grant_behind_abandoned(&mut q);
        let taken = q.is_empty() && self.take_unqueued(n);
        drop(q);
        wake(woken);
        taken
    }

    /// Under the queue lock with the queue empty: takes `n` permits if
    /// they are there (and clears the waiters flag with them).
    fn take_unqueued(&self, n: usize) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s >> SHIFT >= n {
            match self.state.compare_exchange(
                s,
                (s - (n << SHIFT)) & !HAS_WAITERS,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(cur) => s = cur,
            }
        }
        false
    }

    /// Under the queue lock: drops waiters abandoned by shutdown from the
    /// head and serves the live ones that were stuck behind them (a dead
    /// head that wanted more than is free would hold up the queue until
    /// the next release). Returns whom to wake after the lock.
    fn grant_behind_abandoned(&self, q: &mut List) -> Vec<*const Waiter> {
        if q.drop_abandoned_head() == 0 {
            return Vec::new();
        }
        self.grant(q)
    }

    /// Takes `n` permits, waiting until `deadline`; false on time-out.
    fn acquire_raw(&self, n: usize, deadline: Option<Instant>) -> bool {
        if self.try_fast(n) {
            return true;
        }
        let w = Waiter::new(n);
        let (took, unblocked) = {
            let mut q = self.waiters.lock();
            let unblocked = self.grant_behind_abandoned(&mut q);
            // Take the permits if nobody is queued, else announce a waiter
            // (the flag sends fast paths here) and queue, retrying if
            // permits came back meanwhile.
            let took = loop {
                if q.is_empty() && self.take_unqueued(n) {
                    break true;
                }
                let s = self.state.load(Ordering::Relaxed);
                if q.is_empty() && s >> SHIFT >= n {
                    continue;
                }
                if s & HAS_WAITERS != 0
                    || self
                        .state
                        .compare_exchange(s, s | HAS_WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    // SAFETY: `w` stays in this frame until woken, or until
                    // removed under this lock on time-out.
                    unsafe { q.push(&w, false) };
                    break false;
                }
            };
            (took, unblocked)
        };
        wake(unblocked);
        if took {
            return true;
        }
        match deadline {
            None => {
                w.wait(WaitReason::Semaphore);
                true
            }
            Some(d) => {
                if w.wait_until(WaitReason::Semaphore, d) {
                    return true;
                }
                let mut q = self.waiters.lock();
                if !q.remove(&w) {
                    drop(q);
                    // Granted just before the time-out: keep the permits.
                    w.wait(WaitReason::Semaphore);
                    return true;
                }
                // Leaving may unblock those behind us.
                let woken = self.grant(&mut q);
                drop(q);
                wake(woken);
                false
            }
        }
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut s = self.state.load(Ordering::Relaxed);
        while s & HAS_WAITERS == 0 {
            check_room(s, n);
            match self.state.compare_exchange_weak(
                s,
                s + (n << SHIFT),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(cur) => s = cur,
            }
        }
        let mut q = self.waiters.lock();
        let s = self.state.load(Ordering::Relaxed);
        check_room(s, n);
        self.state.fetch_add(n << SHIFT, Ordering::Release);
        let woken = self.grant(&mut q);
        drop(q);
        wake(woken);
    }

    /// Hands free permits to the queue in order; clears `HAS_WAITERS` when
    /// it empties. Called under the queue lock.
    fn grant(&self, q: &mut List) -> Vec<*const Waiter> {
        let mut woken = Vec::new();
        while let Some(front) = q.front() {
            let want = front.want;
            let s = self.state.load(Ordering::Relaxed);
            if s >> SHIFT < want {
                break;
            }
            // Only this lock's holder changes the count while HAS_WAITERS is
            // set (fast paths see the flag and come here), except
            // `forget_permits`, which only lowers it: hence the CAS.
            if self
                .state
                .compare_exchange(s, s - (want << SHIFT), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // The waiter `front` chose, even if shutdown abandoned it
                // since: its permits were just taken for it.
                woken.extend(q.unlink_head());
            }
        }
        if q.is_empty() {
            self.state.fetch_and(!HAS_WAITERS, Ordering::Release);
        }
        woken
    }
}

fn check_room(s: usize, n: usize) {
    assert!(
        n <= Semaphore::MAX_PERMITS - (s >> SHIFT),
        "corun: semaphore permit count overflow"
    );
}

fn wake(woken: Vec<*const Waiter>) {
    for w in woken {
        // SAFETY: each was unlinked under the queue lock by `grant`, and is
        // woken once here.
        unsafe { Waiter::wake(w) };
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Semaphore")
            .field("permits", &(s >> SHIFT))
            .field("waiters", &(s & HAS_WAITERS != 0))
            .finish()
    }
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(4);
    /// assert_eq!(sem.acquire_many(4).num_permits(), 4);
    /// ```
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Drops the permit without giving it back.
    ///
    /// ```
    /// let sem = corun_sync::sync::Semaphore::new(2);
    /// sem.acquire().forget(); // not returned: the semaphore shrinks
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.n);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

impl OwnedSemaphorePermit {
    /// How many permits this holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(corun_sync::sync::Semaphore::new(2));
    /// assert_eq!(sem.clone().acquire_owned().num_permits(), 1);
    /// ```
    pub fn num_permits(&self) -> usize {
        self.n
    }

    /// Drops the permit without giving it back.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let sem = Arc::new(corun_sync::sync::Semaphore::new(2));
    /// sem.clone().acquire_owned().forget();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.n);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}
