//! `Mutex<T>`: std's shape, Go's algorithm.
//!
//! The state word packs `LOCKED`, `WOKEN` (a waiter was woken and is
//! competing, so unlock need not wake another), `STARVING` and the number of
//! waiters. Lock and unlock without contention are one CAS and one
//! `fetch_sub`. Under contention a locker spins briefly (the holder is
//! probably running on another core), then queues on a [`Sema`] and parks.
//!
//! Normal mode lets a woken waiter compete with newcomers, which keeps the
//! lock hot on one core. A waiter that has waited more than 1 ms switches
//! the mutex to starvation mode: unlock then hands ownership straight to
//! the first waiter, and newcomers queue at the back without trying. The
//! mode ends when the last waiter is served or a waiter got the lock after
//! less than 1 ms.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};
use std::time::{Duration, Instant};

use corun_runtime::{WaitReason, yield_point};

use super::poison::{self, Flag};
use super::waitq::Sema;

const LOCKED: u32 = 1;
const WOKEN: u32 = 2;
const STARVING: u32 = 4;
const WAITER_SHIFT: u32 = 3;
const ONE_WAITER: u32 = 1 << WAITER_SHIFT;

/// How long a waiter waits before it switches the mutex to hand-off.
const STARVATION_THRESHOLD: Duration = Duration::from_millis(1);
/// Spin rounds before queueing (threads), and pause instructions per round.
const SPIN_ROUNDS: u32 = 4;
const SPIN_PAUSES: u32 = 30;

/// The lock without data; also the writer lock inside `RwLock`.
pub(crate) struct RawMutex {
    state: AtomicU32,
    sema: Sema,
}

impl RawMutex {
    pub(crate) const fn new() -> RawMutex {
        RawMutex {
            state: AtomicU32::new(0),
            sema: Sema::new(),
        }
    }

    #[inline]
    pub(crate) fn lock(&self, reason: WaitReason) {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow(reason);
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let old = self.state.load(Ordering::Relaxed);
        if old & (LOCKED | STARVING) != 0 {
            return false;
        }
        self.state
            .compare_exchange(old, old | LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    pub(crate) fn unlock(&self) {
        let new = self
            .state
            .fetch_sub(LOCKED, Ordering::Release)
            .wrapping_sub(LOCKED);
        if new != 0 {
            self.unlock_slow(new);
        }
    }

    #[cold]
    fn lock_slow(&self, reason: WaitReason) {
        // Go spins only when its P has nothing else to run. A coroutine
        // usually has others queued behind it on its worker (parking lets
        // them run, and lets contention settle on one worker), so it spins
        // a single round; a thread spins four.
        let max_spins = match (multicore(), corun_runtime::is_coroutine()) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => SPIN_ROUNDS,
        };
        let mut wait_start: Option<Instant> = None;
        let mut starving = false;
        let mut awoke = false;
        let mut spins = 0;
        let mut old = self.state.load(Ordering::Relaxed);
        loop {
            // Spin while the lock is held in normal mode: the holder is
            // likely running and about to release it. Setting WOKEN tells
            // unlock not to wake a sleeper we would only compete with.
            if old & (LOCKED | STARVING) == LOCKED && spins < max_spins {
                if !awoke
                    && old & WOKEN == 0
                    && old >> WAITER_SHIFT != 0
                    && self
                        .state
                        .compare_exchange(old, old | WOKEN, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    awoke = true;
                }
                for _ in 0..SPIN_PAUSES {
                    std::hint::spin_loop();
                }
                spins += 1;
                old = self.state.load(Ordering::Relaxed);
                continue;
            }
            let mut new = old;
            // Newcomers do not take a starving mutex: it goes to the queue.
            if old & STARVING == 0 {
                new |= LOCKED;
            }
            if old & (LOCKED | STARVING) != 0 {
                new += ONE_WAITER;
            }
            // Switch to starvation mode, unless the lock was just released
            // (an unlock expects waiters in a starving mutex).
            if starving && old & LOCKED != 0 {
                new |= STARVING;
            }
            if awoke {
                debug_assert!(new & WOKEN != 0, "corun: inconsistent mutex state");
                new &= !WOKEN;
            }
            match self
                .state
                .compare_exchange(old, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    if old & (LOCKED | STARVING) == 0 {
                        return; // locked it
                    }
                    // A waiter that already waited goes back to the front.
                    let requeue = wait_start.is_some();
                    let start = *wait_start.get_or_insert_with(Instant::now);
                    self.sema.acquire(requeue, reason);
                    starving = starving || start.elapsed() > STARVATION_THRESHOLD;
                    old = self.state.load(Ordering::Relaxed);
                    if old & STARVING != 0 {
                        // Ownership was handed to us: the unlocker left LOCKED
                        // clear and our waiter count in place.
                        debug_assert!(
                            old & (LOCKED | WOKEN) == 0 && old >> WAITER_SHIFT != 0,
                            "corun: inconsistent mutex state"
                        );
                        let mut delta = LOCKED.wrapping_sub(ONE_WAITER);
                        if !starving || old >> WAITER_SHIFT == 1 {
                            // Leave starvation mode while we can: staying in
                            // it would hand the lock around forever.
                            delta = delta.wrapping_sub(STARVING);
                        }
                        self.state.fetch_add(delta, Ordering::Acquire);
                        return;
                    }
                    awoke = true;
                    spins = 0;
                }
                Err(cur) => old = cur,
            }
        }
    }

    #[cold]
    fn unlock_slow(&self, new: u32) {
        assert!(
            (new.wrapping_add(LOCKED)) & LOCKED != 0,
            "corun: unlock of an unlocked mutex"
        );
        if new & STARVING == 0 {
            let mut old = new;
            loop {
                // Nobody to wake, or someone already locked it, or a waiter
                // is already awake, or it turned to starvation mode (whose
                // unlocks hand off): nothing to do.
                if old >> WAITER_SHIFT == 0 || old & (LOCKED | WOKEN | STARVING) != 0 {
                    return;
                }
                let new = (old - ONE_WAITER) | WOKEN;
                match self
                    .state
                    .compare_exchange(old, new, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => {
                        self.sema.release(1);
                        return;
                    }
                    Err(cur) => old = cur,
                }
            }
        } else {
            // Starvation mode: hand ownership to the first waiter. LOCKED
            // stays clear, but STARVING keeps newcomers out.
            self.sema.release(1);
        }
    }
}

fn multicore() -> bool {
    use std::sync::atomic::AtomicU8;
    static CPUS: AtomicU8 = AtomicU8::new(0);
    match CPUS.load(Ordering::Relaxed) {
        0 => {
            let many = std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
            CPUS.store(if many { 2 } else { 1 }, Ordering::Relaxed);
            many
        }
        n => n > 1,
    }
}

/// A mutual-exclusion lock with `std::sync::Mutex`'s API that parks the
/// waiting coroutine (wait reason "mutex") instead of blocking its thread;
/// on a plain OS thread it parks the thread. Coroutines and threads can
/// share one lock.
///
/// Like Go's `sync.Mutex` it is not fair in the common case (a running
/// locker can barge ahead of a woken one, which is much faster), but a
/// waiter that has waited over 1 ms gets the lock handed to it directly.
///
/// Poisoning works as std's: if a guard is dropped while unwinding from a
/// panic, later `lock` calls return `Err(PoisonError)` (from which the
/// guard can still be taken).
///
/// Unlike std's, the guard is `Send`: the lock is not tied to an OS thread,
/// which is what lets a coroutine hold it across a wait during which it may
/// move to another thread.
///
/// ```
/// use std::sync::Arc;
/// use corun_sync::sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let handles: Vec<_> = (0..10)
///     .map(|_| {
///         let c = counter.clone();
///         corun_runtime::go!(move || *c.lock().unwrap() += 1)
///     })
///     .collect();
/// for h in handles {
///     h.join().unwrap();
/// }
/// assert_eq!(*counter.lock().unwrap(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawMutex,
    poison: Flag,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands out access to `T` to one holder at a time, so it
// can be sent and shared whenever `T` can be sent, as `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Proof of holding a [`Mutex`]; unlocks when dropped. Derefs to the data.
///
/// ```
/// let m = corun_sync::sync::Mutex::new(vec![1]);
/// {
///     let mut guard = m.lock().unwrap();
///     guard.push(2);
///     // A corun guard may be held across a wait.
///     corun_runtime::sleep(std::time::Duration::from_millis(1));
/// } // unlocked here
/// assert_eq!(*m.lock().unwrap(), [1, 2]);
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    lock: &'a Mutex<T>,
    panicking: bool,
    // Send iff `T: Send` and Sync iff `T: Sync`, as a `&mut T` would be.
    _marker: std::marker::PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    ///
    /// ```
    /// static COUNT: corun_sync::sync::Mutex<u32> = corun_sync::sync::Mutex::new(0);
    /// *COUNT.lock().unwrap() += 1;
    /// assert_eq!(*COUNT.lock().unwrap(), 1);
    /// ```
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            raw: RawMutex::new(),
            poison: Flag::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning the data (`Err` if poisoned, with the
    /// data inside).
    ///
    /// ```
    /// let m = corun_sync::sync::Mutex::new(String::from("owned"));
    /// assert_eq!(m.into_inner().unwrap(), "owned");
    /// ```
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        poison::map_result(poisoned, self.data.into_inner())
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks, parking the coroutine (or thread) while another holds it.
    ///
    /// A yield point. Locking a mutex the caller already holds deadlocks.
    ///
    /// # Errors
    /// `Err(PoisonError)` if a holder panicked; the error holds the guard.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use corun_sync::sync::Mutex;
    /// let n = Arc::new(Mutex::new(0));
    /// let hs: Vec<_> = (0..8)
    ///     .map(|_| {
    ///         let n = n.clone();
    ///         corun_runtime::spawn(move || {
    ///             for _ in 0..1000 {
    ///                 *n.lock().unwrap() += 1; // parks while another holds it
    ///             }
    ///         })
    ///     })
    ///     .collect();
    /// hs.into_iter().for_each(|h| h.join().unwrap());
    /// assert_eq!(*n.lock().unwrap(), 8000);
    /// ```
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        yield_point();
        self.raw.lock(WaitReason::Mutex);
        self.guard()
    }

    /// Locks if that can be done without waiting.
    ///
    /// # Errors
    /// `WouldBlock` if the lock is held, `Poisoned` if a holder panicked.
    ///
    /// ```
    /// use std::sync::TryLockError;
    /// use corun_sync::sync::Mutex;
    ///
    /// let m = Mutex::new(1);
    /// let g = m.lock().unwrap();
    /// assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
    /// drop(g);
    /// assert_eq!(*m.try_lock().unwrap(), 1);
    /// ```
    ///
    /// ```
    /// let m = corun_sync::sync::Mutex::new(1);
    /// let held = m.lock().unwrap();
    /// assert!(m.try_lock().is_err()); // WouldBlock
    /// drop(held);
    /// assert_eq!(*m.try_lock().unwrap(), 1);
    /// ```
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            self.guard().map_err(TryLockError::from)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    #[inline]
    fn guard(&self) -> LockResult<MutexGuard<'_, T>> {
        let guard = MutexGuard {
            lock: self,
            panicking: Flag::guard(),
            _marker: std::marker::PhantomData,
        };
        poison::map_result(self.poison.get(), guard)
    }

    /// True if a holder panicked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let m = Arc::new(corun_sync::sync::Mutex::new(0));
    /// let m2 = m.clone();
    /// let _ = corun_runtime::spawn(move || {
    ///     let _guard = m2.lock().unwrap();
    ///     panic!("while holding the lock");
    /// })
    /// .join();
    /// assert!(m.is_poisoned());
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poison flag.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let m = Arc::new(corun_sync::sync::Mutex::new(0));
    /// let m2 = m.clone();
    /// let _ = corun_runtime::spawn(move || {
    ///     let _guard = m2.lock().unwrap();
    ///     panic!("poison it");
    /// })
    /// .join();
    /// m.clear_poison();
    /// assert!(!m.is_poisoned());
    /// ```
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// Mutable access without locking (the borrow proves exclusivity).
    ///
    /// # Errors
    /// `Err` if poisoned; the error holds the reference.
    ///
    /// ```
    /// let mut m = corun_sync::sync::Mutex::new(1);
    /// *m.get_mut().unwrap() = 2; // no locking: `&mut` proves exclusivity
    /// assert_eq!(*m.lock().unwrap(), 2);
    /// ```
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.get();
        poison::map_result(poisoned, self.data.get_mut())
    }

    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&*e.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.get()).finish()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Releases the lock without running the poison check (`Condvar`
    /// waits keep the guard's identity across the wait).
    pub(crate) fn unlock_for_wait(self) -> &'a Mutex<T> {
        let this = std::mem::ManuallyDrop::new(self);
        this.lock.poison.done(this.panicking);
        this.lock.raw.unlock();
        this.lock
    }

    /// The guard of a mutex the caller has just locked again.
    pub(crate) fn relocked(lock: &'a Mutex<T>) -> LockResult<MutexGuard<'a, T>> {
        lock.guard()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while its holder owns the lock.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(self.panicking);
        self.lock.raw.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
