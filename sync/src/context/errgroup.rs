//! `ErrGroup`: Go's `golang.org/x/sync/errgroup`.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use super::{CancelFn, Context};
use crate::sync::{Mutex, OwnedSemaphorePermit, Semaphore, WaitGroup};

struct Inner<E> {
    wg: WaitGroup,
    first: Mutex<Option<E>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    cancel: Option<CancelFn>,
    /// The limit in force and its slots, if one is set.
    limit: Mutex<Option<Limit>>,
}

/// A limit of `n` tasks at once: a task holds one of `slots` while it runs.
struct Limit {
    n: usize,
    slots: Arc<Semaphore>,
}

/// Runs a group of fallible tasks in coroutines and collects the first
/// error (Go's `errgroup.Group`).
///
/// [`go`](ErrGroup::go) starts a task; [`wait`](ErrGroup::wait) waits for
/// all of them and returns the first error. A group made by
/// [`with_context`](ErrGroup::with_context) cancels its context on the
/// first error (so the other tasks can stop early) and when `wait`
/// returns. [`set_limit`](ErrGroup::set_limit) bounds how many tasks run at
/// once; `go` then waits for a free slot. Clones share the group, so tasks
/// can start more tasks.
///
/// A task that panics is counted as finished, cancels the context, and its
/// panic is resumed by `wait` (Go's errgroup does the same).
///
/// ```
/// use corun_sync::context::{Context, ErrGroup};
///
/// let (g, ctx) = ErrGroup::<String>::with_context(&Context::background());
/// for i in 0..10 {
///     let ctx = ctx.clone();
///     g.go(move || {
///         if i == 3 {
///             return Err(format!("task {i} failed"));
///         }
///         // Others notice the cancellation and stop.
///         let _ = ctx.done().recv();
///         Ok(())
///     });
/// }
/// assert_eq!(g.wait(), Err("task 3 failed".to_string()));
/// assert!(ctx.err().is_some());
/// ```
pub struct ErrGroup<E> {
    inner: Arc<Inner<E>>,
}

impl<E> Clone for ErrGroup<E> {
    fn clone(&self) -> Self {
        ErrGroup {
            inner: self.inner.clone(),
        }
    }
}

impl<E: Send + 'static> ErrGroup<E> {
    /// A group with no context and no limit.
    ///
    /// ```
    /// use corun_sync::context::ErrGroup;
    ///
    /// let g = ErrGroup::<String>::new();
    /// g.go(|| Ok(()));
    /// g.go(|| Err("disk full".to_string()));
    /// assert_eq!(g.wait(), Err("disk full".to_string()));
    /// ```
    pub fn new() -> ErrGroup<E> {
        Self::make(None)
    }

    /// A group and a child of `ctx` that is cancelled on the group's first
    /// error or when [`wait`](ErrGroup::wait) returns.
    ///
    /// ```
    /// use corun_sync::context::{Context, ErrGroup};
    ///
    /// let (g, ctx) = ErrGroup::<&str>::with_context(&Context::background());
    /// let worker = ctx.clone();
    /// g.go(move || {
    ///     let _ = worker.done().recv(); // runs until a sibling fails
    ///     Ok(())
    /// });
    /// g.go(|| Err("failed"));
    /// assert_eq!(g.wait(), Err("failed"));
    /// assert!(ctx.err().is_some(), "the first error cancelled the context");
    /// ```
    pub fn with_context(ctx: &Context) -> (ErrGroup<E>, Context) {
        let (ctx, cancel) = ctx.with_cancel();
        (Self::make(Some(cancel)), ctx)
    }

    fn make(cancel: Option<CancelFn>) -> ErrGroup<E> {
        ErrGroup {
            inner: Arc::new(Inner {
                wg: WaitGroup::new(),
                first: Mutex::new(None),
                panic: Mutex::new(None),
                cancel,
                limit: Mutex::new(None),
            }),
        }
    }

    /// Allows at most `n` tasks to run at once (`go` waits for a slot).
    /// `n` of [`Semaphore::MAX_PERMITS`] or more removes the limit; 0 makes
    /// every `go` wait forever (and every `try_go` fail).
    ///
    /// # Panics
    /// If tasks started under the current limit are still running, as Go's
    /// `SetLimit` does. Tasks started while no limit was set do not count,
    /// so a limit can be set after them (Go allows that too).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use corun_sync::context::ErrGroup;
    ///
    /// let g = ErrGroup::<()>::new();
    /// g.set_limit(2);
    /// let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    /// for _ in 0..10 {
    ///     let (now, max) = (now.clone(), max.clone());
    ///     g.go(move || {
    ///         max.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
    ///         corun_runtime::yield_now();
    ///         now.fetch_sub(1, Ordering::SeqCst);
    ///         Ok(())
    ///     });
    /// }
    /// g.wait().unwrap();
    /// assert!(max.load(Ordering::SeqCst) <= 2);
    /// ```
    pub fn set_limit(&self, n: usize) {
        let mut limit = lock(&self.inner.limit);
        if let Some(old) = &*limit {
            let active = old.n - old.slots.available_permits();
            assert!(
                active == 0,
                "errgroup: modify limit while {active} tasks in the group are still active"
            );
        }
        *limit = (n < Semaphore::MAX_PERMITS).then(|| Limit {
            n,
            slots: Arc::new(Semaphore::new(n)),
        });
    }

    /// Starts `f` in a new coroutine, first waiting for a slot if a limit
    /// is set. The first `Err` returned by any task is kept for
    /// [`wait`](ErrGroup::wait).
    ///
    /// ```
    /// use corun_sync::context::ErrGroup;
    ///
    /// let g = ErrGroup::<std::num::ParseIntError>::new();
    /// for s in ["1", "2", "x"] {
    ///     g.go(move || s.parse::<i32>().map(drop));
    /// }
    /// assert!(g.wait().is_err(), "\"x\" is not a number");
    /// ```
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let sem = lock(&self.inner.limit).as_ref().map(|l| l.slots.clone());
        let permit = sem.map(Semaphore::acquire_owned);
        self.start(permit, f);
    }

    /// Starts `f` only if a slot is free now; returns whether it did.
    ///
    /// ```
    /// use corun_sync::context::ErrGroup;
    /// use corun_sync::chan::bounded;
    ///
    /// let g = ErrGroup::<()>::new();
    /// g.set_limit(1);
    /// let (release, wait) = bounded::<()>(0);
    /// assert!(g.try_go(move || { let _ = wait.recv(); Ok(()) }));
    /// assert!(!g.try_go(|| Ok(())), "the only slot is taken");
    /// drop(release);
    /// g.wait().unwrap();
    /// ```
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let sem = lock(&self.inner.limit).as_ref().map(|l| l.slots.clone());
        let permit = match sem {
            Some(s) => match s.try_acquire_owned() {
                Some(p) => Some(p),
                None => return false,
            },
            None => None,
        };
        self.start(permit, f);
        true
    }

    fn start<F>(&self, permit: Option<OwnedSemaphorePermit>, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        /// Frees the slot, then counts the task done, even on panic.
        struct Slot<E> {
            inner: Arc<Inner<E>>,
            permit: Option<OwnedSemaphorePermit>,
        }
        impl<E> Drop for Slot<E> {
            fn drop(&mut self) {
                drop(self.permit.take());
                self.inner.wg.done();
            }
        }
        self.inner.wg.add(1);
        let slot = Slot {
            inner: self.inner.clone(),
            permit,
        };
        drop(corun_runtime::spawn(move || {
            let slot = slot;
            let inner = &slot.inner;
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let mut first = lock(&inner.first);
                    if first.is_none() {
                        *first = Some(e);
                        drop(first);
                        if let Some(c) = &inner.cancel {
                            c.cancel();
                        }
                    }
                }
                Err(p) => {
                    lock(&inner.panic).get_or_insert(p);
                    if let Some(c) = &inner.cancel {
                        c.cancel();
                    }
                }
            }
        }));
    }

    /// Waits for every task, cancels the group's context, and returns the
    /// first error (later calls return `Ok` unless new tasks fail).
    ///
    /// # Errors
    /// The first error a task returned.
    ///
    /// # Panics
    /// Resumes the first panic of a task.
    ///
    /// ```
    /// use corun_sync::context::ErrGroup;
    ///
    /// let g = ErrGroup::<i32>::new();
    /// g.go(|| Err(1));
    /// assert_eq!(g.wait(), Err(1));
    /// assert_eq!(g.wait(), Ok(()), "the error is reported once");
    /// ```
    pub fn wait(&self) -> Result<(), E> {
        self.inner.wg.wait();
        if let Some(c) = &self.inner.cancel {
            c.cancel();
        }
        if let Some(p) = lock(&self.inner.panic).take() {
            resume_unwind(p);
        }
        match lock(&self.inner.first).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Locks ignoring poison: these locks guard plain slots and no user code
/// runs under them.
fn lock<T>(m: &Mutex<T>) -> crate::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<E: Send + 'static> Default for ErrGroup<E> {
    fn default() -> Self {
        ErrGroup::new()
    }
}

impl<E> fmt::Debug for ErrGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrGroup")
            .field("active", &self.inner.wg.count())
            .finish_non_exhaustive()
    }
}
