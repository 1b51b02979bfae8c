//! `Once` and `OnceLock<T>`: std's API.
//!
//! `Once` keeps one state byte: incomplete, running, complete, poisoned.
//! The first caller CASes incomplete to running and runs the closure; the
//! rest queue a waiter under a spin lock, after re-checking that the state
//! is still "running" under that lock. The runner publishes the final state
//! *before* taking the lock to empty the queue, so every waiter is either
//! seen in the queue or sees the final state itself.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};

use corun_runtime::WaitReason;

use super::waitq::{List, Waiter};
use crate::chan::lock::SpinLock;

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;
const POISONED: u8 = 3;

/// Runs a closure exactly once, with `std::sync::Once`'s API; callers
/// arriving while it runs park (wait reason "once") until it finishes.
///
/// If the closure panics the `Once` is poisoned: later `call_once` calls
/// panic, [`call_once_force`](Once::call_once_force) may run again.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use corun_sync::sync::Once;
///
/// static INIT: Once = Once::new();
/// static RUNS: AtomicUsize = AtomicUsize::new(0);
/// let hs: Vec<_> = (0..10)
///     .map(|_| corun_runtime::go!(|| INIT.call_once(|| { RUNS.fetch_add(1, Ordering::SeqCst); })))
///     .collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(RUNS.load(Ordering::SeqCst), 1);
/// assert!(INIT.is_completed());
/// ```
pub struct Once {
    state: AtomicU8,
    waiters: SpinLock<List>,
}

/// Passed to [`Once::call_once_force`]'s closure.
///
/// ```
/// let once = corun_sync::sync::Once::new();
/// once.call_once_force(|state| assert!(!state.is_poisoned()));
/// ```
#[derive(Debug)]
pub struct OnceState {
    poisoned: bool,
}

impl OnceState {
    /// True if an earlier closure panicked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let once = Arc::new(corun_sync::sync::Once::new());
    /// let o = once.clone();
    /// let _ = corun_runtime::spawn(move || o.call_once(|| panic!("first try fails"))).join();
    /// once.call_once_force(|state| assert!(state.is_poisoned()));
    /// assert!(once.is_completed());
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

/// Sets the final state and wakes the waiters, also when the closure
/// panics.
struct Finish<'a> {
    once: &'a Once,
    state: u8,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.once.state.store(self.state, Ordering::Release);
        let chain = self.once.waiters.lock().take_all();
        chain.wake_all();
    }
}

impl Once {
    /// A `Once` that has not run.
    ///
    /// ```
    /// static INIT: corun_sync::sync::Once = corun_sync::sync::Once::new();
    /// INIT.call_once(|| {});
    /// assert!(INIT.is_completed());
    /// ```
    pub const fn new() -> Once {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            waiters: SpinLock::new(List::new()),
        }
    }

    /// Runs `f` if no call has completed; otherwise waits for the running
    /// call, or returns at once if one completed.
    ///
    /// # Panics
    /// If the `Once` is poisoned (an earlier closure panicked).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let once = Arc::new(corun_sync::sync::Once::new());
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let hs: Vec<_> = (0..8)
    ///     .map(|_| {
    ///         let (once, runs) = (once.clone(), runs.clone());
    ///         corun_runtime::spawn(move || once.call_once(|| { runs.fetch_add(1, Ordering::SeqCst); }))
    ///     })
    ///     .collect();
    /// hs.into_iter().for_each(|h| h.join().unwrap());
    /// assert_eq!(runs.load(Ordering::SeqCst), 1);
    /// ```
    #[inline]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(false, &mut |_| (f.take().expect("called once"))());
    }

    /// Like [`call_once`](Once::call_once), but runs even if poisoned
    /// (telling the closure so).
    ///
    /// ```
    /// let once = corun_sync::sync::Once::new();
    /// once.call_once_force(|_| {});
    /// assert!(once.is_completed());
    /// ```
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(true, &mut |st| (f.take().expect("called once"))(st));
    }

    /// True once a call has completed (without panicking).
    ///
    /// ```
    /// let once = corun_sync::sync::Once::new();
    /// assert!(!once.is_completed());
    /// once.call_once(|| {});
    /// assert!(once.is_completed());
    /// ```
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// Waits until a call has completed.
    ///
    /// # Panics
    /// If the `Once` is, or becomes, poisoned.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let once = Arc::new(corun_sync::sync::Once::new());
    /// let o = once.clone();
    /// let waiter = corun_runtime::spawn(move || o.wait()); // parks until done
    /// once.call_once(|| {});
    /// waiter.join().unwrap();
    /// ```
    pub fn wait(&self) {
        loop {
            match self.state.load(Ordering::Acquire) {
                COMPLETE => return,
                POISONED => panic!("Once instance has previously been poisoned"),
                _ => self.park_while(|s| s != COMPLETE && s != POISONED),
            }
        }
    }

    #[cold]
    fn call(&self, force: bool, f: &mut dyn FnMut(&OnceState)) {
        loop {
            let s = self.state.load(Ordering::Acquire);
            match s {
                COMPLETE => return,
                POISONED if !force => panic!("Once instance has previously been poisoned"),
                INCOMPLETE | POISONED => {
                    if self
                        .state
                        .compare_exchange(s, RUNNING, Ordering::Acquire, Ordering::Acquire)
                        .is_err()
                    {
                        continue;
                    }
                    let mut finish = Finish {
                        once: self,
                        state: POISONED,
                    };
                    f(&OnceState {
                        poisoned: s == POISONED,
                    });
                    finish.state = COMPLETE;
                    return;
                }
                _ => self.park_while(|s| s == RUNNING),
            }
        }
    }

    /// Parks until woken, if `cond(state)` still holds under the lock.
    fn park_while(&self, cond: impl Fn(u8) -> bool) {
        let w = Waiter::new(0);
        {
            let mut q = self.waiters.lock();
            if !cond(self.state.load(Ordering::Acquire)) {
                return;
            }
            // SAFETY: `w` stays in this frame until woken by the runner,
            // which unlinks it under this lock first.
            unsafe { q.push(&w, false) };
        }
        w.wait(WaitReason::Once);
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

/// A cell written once, with `std::sync::OnceLock`'s API; initialisers
/// racing with the first one park until it is done.
///
/// If the initialiser panics the cell stays empty and the next caller
/// tries again.
///
/// ```
/// use corun_sync::sync::OnceLock;
///
/// static CONFIG: OnceLock<String> = OnceLock::new();
/// assert!(CONFIG.get().is_none());
/// let v = corun_runtime::go!(|| CONFIG.get_or_init(|| "ready".to_string()).len());
/// assert_eq!(v.join().unwrap(), 5);
/// assert_eq!(CONFIG.set("late".into()), Err("late".to_string()));
/// assert_eq!(CONFIG.get().map(String::as_str), Some("ready"));
/// ```
pub struct OnceLock<T> {
    once: Once,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: as `std::sync::OnceLock`: shared access hands out `&T` to any
// thread (needs `Sync`) and the value may be initialised on one thread and
// dropped on another (needs `Send`).
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: moving the cell moves the `T`.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T> OnceLock<T> {
    /// An empty cell.
    ///
    /// ```
    /// static CONFIG: corun_sync::sync::OnceLock<String> = corun_sync::sync::OnceLock::new();
    /// assert_eq!(CONFIG.get_or_init(|| "loaded".into()), "loaded");
    /// ```
    pub const fn new() -> OnceLock<T> {
        OnceLock {
            once: Once::new(),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if set.
    ///
    /// ```
    /// let cell = corun_sync::sync::OnceLock::new();
    /// assert_eq!(cell.get(), None);
    /// cell.set(3).unwrap();
    /// assert_eq!(cell.get(), Some(&3));
    /// ```
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: completion is published with release after the value
            // was written, and observed with acquire; it is never written
            // again while shared.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }

    /// Mutable access to the value, if set.
    ///
    /// ```
    /// let mut cell = corun_sync::sync::OnceLock::new();
    /// cell.set(1).unwrap();
    /// *cell.get_mut().unwrap() += 1;
    /// assert_eq!(cell.get(), Some(&2));
    /// ```
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.once.is_completed() {
            // SAFETY: initialised (completed), and `&mut self` is unique.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Waits until the value is set by someone, then returns it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let cell = Arc::new(corun_sync::sync::OnceLock::new());
    /// let c = cell.clone();
    /// let reader = corun_runtime::spawn(move || *c.wait()); // parks until set
    /// cell.set(42).unwrap();
    /// assert_eq!(reader.join().unwrap(), 42);
    /// ```
    pub fn wait(&self) -> &T {
        loop {
            if let Some(v) = self.get() {
                return v;
            }
            // Woken whenever an initialiser finishes; one that panicked
            // leaves the cell empty, so wait for the next.
            self.once.park_while(|s| s != COMPLETE);
        }
    }

    /// Sets the value if empty; otherwise returns `Err(value)`.
    ///
    /// # Errors
    /// The value back if the cell was already set.
    ///
    /// ```
    /// let cell = corun_sync::sync::OnceLock::new();
    /// assert_eq!(cell.set(1), Ok(()));
    /// assert_eq!(cell.set(2), Err(2)); // already set: the value comes back
    /// ```
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken once"));
        match value {
            None => Ok(()),
            Some(v) => Err(v),
        }
    }

    /// The value, initialised with `f` if empty. Concurrent callers park
    /// until the one running `f` is done.
    ///
    /// ```
    /// let cell = corun_sync::sync::OnceLock::new();
    /// assert_eq!(*cell.get_or_init(|| 5), 5);
    /// assert_eq!(*cell.get_or_init(|| 6), 5);
    /// ```
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        let slot = self.value.get();
        self.once.call_once_force(|_| {
            let v = f();
            // SAFETY: only the single runner of the `Once` writes, before
            // completion is published; nobody reads until then.
            unsafe { (*slot).write(v) };
        });
        self.get().expect("initialised")
    }

    /// Consumes the cell, returning the value if set.
    ///
    /// ```
    /// let cell = corun_sync::sync::OnceLock::new();
    /// cell.set("v").unwrap();
    /// assert_eq!(cell.into_inner(), Some("v"));
    /// ```
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Empties the cell, returning the value if set.
    ///
    /// ```
    /// let mut cell = corun_sync::sync::OnceLock::new();
    /// cell.set(7).unwrap();
    /// assert_eq!(cell.take(), Some(7));
    /// assert_eq!(cell.get(), None);
    /// ```
    pub fn take(&mut self) -> Option<T> {
        if self.once.is_completed() {
            self.once = Once::new();
            // SAFETY: it was initialised, and resetting `once` marks it
            // uninitialised so it is not read or dropped again.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.once.is_completed() {
            // SAFETY: initialised, and dropped only here.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> OnceLock<T> {
        let cell = OnceLock::new();
        let _ = cell.set(value);
        cell
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        match self.get() {
            Some(v) => OnceLock::from(v.clone()),
            None => OnceLock::new(),
        }
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}
