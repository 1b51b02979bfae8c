//! `WaitGroup`: Go's `sync.WaitGroup` as a cloneable handle.
//!
//! One 64-bit word holds the counter (high 32 bits, signed) and the number
//! of waiters (low 32 bits), so `add`/`done` are one `fetch_add` and a
//! `wait` on a zero counter one load. When the counter drops to zero with
//! waiters, the word is reset and the semaphore released once per waiter.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use corun_runtime::{WaitReason, yield_point};

use super::waitq::Sema;

struct Inner {
    state: AtomicU64,
    sema: Sema,
}

/// Waits for a collection of coroutines (or threads) to finish, with Go's
/// semantics: [`add`](WaitGroup::add) before starting work,
/// [`done`](WaitGroup::done) when each finishes, [`wait`](WaitGroup::wait)
/// until the counter is zero. Clones share the counter.
///
/// A group can be reused once every `wait` of the previous round has
/// returned; a `wait` that wakes to find a new round begun panics, as Go's
/// does, with "sync: WaitGroup is reused before previous Wait has
/// returned". A counter going negative panics with Go's message,
/// "sync: negative WaitGroup counter".
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use corun_sync::sync::WaitGroup;
///
/// let wg = WaitGroup::new();
/// let n = Arc::new(AtomicUsize::new(0));
/// for _ in 0..100 {
///     wg.add(1);
///     let (wg, n) = (wg.clone(), n.clone());
///     corun_runtime::go!(move || {
///         n.fetch_add(1, Ordering::Relaxed);
///         wg.done();
///     });
/// }
/// wg.wait();
/// assert_eq!(n.load(Ordering::Relaxed), 100);
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl WaitGroup {
    /// A group with counter zero.
    ///
    /// ```
    /// let wg = corun_sync::sync::WaitGroup::new();
    /// assert_eq!(wg.count(), 0);
    /// wg.wait(); // returns at once
    /// ```
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                state: AtomicU64::new(0),
                sema: Sema::new(),
            }),
        }
    }

    /// Adds `delta` (which may be negative) to the counter; at zero, every
    /// waiter is released.
    ///
    /// # Panics
    /// "sync: negative WaitGroup counter" if the counter goes below zero,
    /// and, as Go, if a positive `add` from zero races with a `wait`.
    ///
    /// ```
    /// let wg = corun_sync::sync::WaitGroup::new();
    /// wg.add(3);
    /// assert_eq!(wg.count(), 3);
    /// wg.add(-3);
    /// assert_eq!(wg.count(), 0);
    /// ```
    pub fn add(&self, delta: isize) {
        let delta = i32::try_from(delta).expect("sync: WaitGroup delta out of range");
        let state = &self.inner.state;
        let new = state
            .fetch_add((delta as i64 as u64) << 32, Ordering::AcqRel)
            .wrapping_add((delta as i64 as u64) << 32);
        let counter = (new >> 32) as i32;
        let waiters = new as u32;
        if counter < 0 {
            panic!("sync: negative WaitGroup counter");
        }
        if waiters != 0 && delta > 0 && counter == delta {
            panic!("sync: WaitGroup misuse: add called concurrently with wait");
        }
        if counter > 0 || waiters == 0 {
            return;
        }
        // Counter is zero with waiters: nobody may change the state now
        // (adds would be the misuse above; new waits see zero and return).
        if state.load(Ordering::Relaxed) != new {
            panic!("sync: WaitGroup misuse: add called concurrently with wait");
        }
        // Release: a late `wait` that reads this zero returns at once, and
        // must see what every `done` before it published (this thread's
        // acquire of their decrements carries it on).
        state.store(0, Ordering::Release);
        self.inner.sema.release_waiters(waiters as usize);
    }

    /// Decrements the counter by one.
    ///
    /// # Panics
    /// "sync: negative WaitGroup counter" below zero.
    ///
    /// ```
    /// let wg = corun_sync::sync::WaitGroup::new();
    /// wg.add(1);
    /// let w = wg.clone();
    /// std::thread::spawn(move || w.done()); // plain threads work too
    /// wg.wait();
    /// ```
    #[inline]
    pub fn done(&self) {
        self.add(-1);
    }

    /// Waits until the counter is zero. A yield point.
    ///
    /// # Panics
    /// If the group was reused (a positive `add` from zero) after the
    /// round this call waited for ended but before it returned.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::sync::WaitGroup;
    ///
    /// let wg = WaitGroup::new();
    /// for ms in [3, 1, 2] {
    ///     wg.go(move || corun_runtime::sleep(Duration::from_millis(ms)));
    /// }
    /// wg.wait();
    /// assert_eq!(wg.count(), 0);
    /// ```
    pub fn wait(&self) {
        yield_point();
        let state = &self.inner.state;
        let mut s = state.load(Ordering::Acquire);
        loop {
            if s >> 32 == 0 {
                return;
            }
            match state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.inner.sema.acquire(false, WaitReason::WaitGroup);
                    // The round ended with the word reset to zero before
                    // the wake; anything else is a new round begun before
                    // this wait returned, which could also have let a
                    // waiter of that round take this one's token and
                    // return early. Go panics here too.
                    if state.load(Ordering::Acquire) != 0 {
                        panic!("sync: WaitGroup is reused before previous Wait has returned");
                    }
                    return;
                }
                Err(cur) => s = cur,
            }
        }
    }

    /// Runs `f` in a new coroutine counted by this group (Go 1.25's
    /// `WaitGroup.Go`): `add(1)` now, `done()` when `f` returns or panics.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let wg = corun_sync::sync::WaitGroup::new();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// wg.go(move || r.store(true, Ordering::Relaxed));
    /// wg.wait();
    /// assert!(ran.load(Ordering::Relaxed));
    /// ```
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        struct Done(WaitGroup);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.done();
            }
        }
        self.add(1);
        let done = Done(self.clone());
        drop(corun_runtime::spawn(move || {
            let _done = done;
            f();
        }));
    }

    /// The current counter (for diagnostics).
    ///
    /// ```
    /// let wg = corun_sync::sync::WaitGroup::new();
    /// wg.add(2);
    /// wg.done();
    /// assert_eq!(wg.count(), 1);
    /// wg.done();
    /// ```
    pub fn count(&self) -> usize {
        (self.inner.state.load(Ordering::Relaxed) >> 32) as i32 as usize
    }
}

impl Default for WaitGroup {
    fn default() -> WaitGroup {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.state.load(Ordering::Relaxed);
        f.debug_struct("WaitGroup")
            .field("count", &((s >> 32) as i32))
            .field("waiters", &(s as u32))
            .finish()
    }
}
