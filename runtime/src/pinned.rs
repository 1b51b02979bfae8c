//! Pinned coroutines: `Builder::pinned(true)`.
//!
//! A pinned coroutine runs on an OS thread of its own and never leaves it,
//! as Go's `runtime.LockOSThread` wires a goroutine to its M. Its waits still
//! park (the thread sleeps on its own futex; timers and wakers find it
//! through its `Home`), so it can use every corun primitive; `!Send` state
//! and thread-local addresses stay valid across them. It does not hold a P:
//! it does not count against `workers` and cannot be preempted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};

use corun_stacks::fiber::Resumed;

use crate::sched::{SUSPEND_PARK, Shared};
use crate::task::TaskRef;
use crate::tls;

/// Where a pinned task is delivered when it becomes runnable.
pub(crate) struct Home {
    ready: Mutex<Option<TaskRef>>,
    thread: OnceLock<Thread>,
    /// `block_on` coroutines whose closures may borrow from this thread
    /// (its thread-locals) and have not finished: see [`Lender`].
    lent: AtomicUsize,
}

impl Home {
    pub(crate) fn new() -> Home {
        Home {
            ready: Mutex::new(None),
            thread: OnceLock::new(),
            lent: AtomicUsize::new(0),
        }
    }

    pub(crate) fn wake(&self, task: TaskRef) {
        *self.ready.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Runtime shutdown claimed the task: its thread, parked in `wait`
    /// while the task was parked, must look at the shutdown flag and
    /// exit, or it would sleep for the rest of the process.
    pub(crate) fn shut_down(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Before the thread exits: waits until no `block_on` coroutine still
    /// borrows from it (see [`Lender`]).
    fn wait_until_unlent(&self) {
        while self.lent.load(Ordering::Acquire) != 0 {
            thread::park();
        }
    }

    fn wait(&self, shared: &Shared) -> Option<TaskRef> {
        loop {
            if let Some(t) = self.ready.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Some(t);
            }
            if shared.shutdown.load(Ordering::Acquire) {
                return None;
            }
            thread::park();
        }
    }
}

/// Held by a `block_on` coroutine started from a pinned coroutine, until
/// its closure (and so every borrow it holds) is gone.
///
/// A pinned coroutine may keep references into its thread's thread-locals
/// across waits, and so may lend them to `block_on`. If its runtime shuts
/// down while it waits there, it is abandoned: its stack is leaked, but its
/// thread would exit and destroy its thread-locals (and a runtime kept in
/// one would be dropped under the waiting `block_on`) while the other
/// coroutine still uses them. The thread waits for every lender to drop
/// first.
pub(crate) struct Lender(Arc<Home>);

impl Lender {
    /// A lender for the calling coroutine's thread, if it is pinned.
    pub(crate) fn for_current() -> Option<Lender> {
        let task = tls::current_task_ptr();
        if task.is_null() {
            return None;
        }
        // SAFETY: the scheduler keeps the running task alive while its
        // pointer is published, and `home` is immutable.
        let home = unsafe { &*task }.home.clone()?;
        home.lent.fetch_add(1, Ordering::Relaxed);
        Some(Lender(home))
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        // Release: what the borrower did happens before the thread exits.
        self.0.lent.fetch_sub(1, Ordering::Release);
        if let Some(t) = self.0.thread.get() {
            t.unpark();
        }
    }
}

/// Threads started for pinned coroutines and not yet finished (counted
/// from before their start to the end of their work, so never too low).
static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn live_threads() -> usize {
    LIVE_THREADS.load(Ordering::SeqCst)
}

/// Starts the thread a pinned task lives on; `task` is its queue reference.
pub(crate) fn start(shared: &'static Shared, task: TaskRef) -> std::io::Result<()> {
    let home = task.header().home.clone().expect("pinned task has a home");
    let name = format!("corun-pinned-{}", task.header().id);
    LIVE_THREADS.fetch_add(1, Ordering::SeqCst);
    struct Live;
    impl Drop for Live {
        fn drop(&mut self) {
            LIVE_THREADS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let live = Live;
    thread::Builder::new().name(name).spawn(move || {
        let _live = live;
        crate::sched::fatal_on_panic(|| serve(shared, &home, task));
    })?;
    Ok(())
}

/// A pinned thread's life: runs its task whenever it is woken, until it
/// finishes or the runtime shuts down.
fn serve(shared: &'static Shared, home: &Home, task: TaskRef) {
    let _ = home.thread.set(thread::current());
    tls::update(|c| c.shared = shared);
    corun_stacks::ensure_altstack();
    let mut next = Some(task);
    loop {
        let Some(task) = next.take().or_else(|| home.wait(shared)) else {
            break;
        };
        if run(shared, task) {
            break;
        }
    }
    // An abandoned task may have left a `block_on` coroutine borrowing
    // this thread's thread-locals: they must outlive it.
    home.wait_until_unlent();
    tls::update(|c| c.shared = std::ptr::null());
}

/// Runs the task until it parks (false) or finishes (true).
fn run(shared: &Shared, task: TaskRef) -> bool {
    let header = task.header();
    if !header.begin_pinned_run() {
        // Abandoned by shutdown after a waker put it here: completed
        // already; only this run reference is ours to drop.
        return true;
    }
    loop {
        // SAFETY: we took the task from its home: we are its runner.
        let Some(fiber) = (unsafe { task.fiber() }) else {
            header.complete();
            shared.registry.remove(header, None);
            return true;
        };
        tls::set_task(Some(&task), true);
        let resumed = fiber.resume();
        tls::set_task(None, false);
        match resumed {
            Resumed::Finished => {
                // SAFETY: the runner, and finished.
                unsafe { header.release_fiber() };
                header.complete();
                shared.registry.remove(header, None);
                return true;
            }
            Resumed::Suspended(SUSPEND_PARK) => {
                // Once parked, the task's run reference is no longer ours:
                // a shutdown claim may drop it, and with the registry entry
                // and the handle gone the task would be freed under the
                // lines below. This one keeps it alive until we return.
                let _alive = task.clone();
                if header.end_run_park() {
                    // Shutdown's `abandon_all` passes over a task that is
                    // running; one that parks once shutdown has begun is
                    // abandoned here (by whichever claim comes first), or
                    // its joiner would wait for good. Its run reference is
                    // then dropped by the claim, or by this thread when it
                    // finds it in its home.
                    if shared.shutdown.load(Ordering::SeqCst) {
                        task.abandon();
                        shared.registry.remove(header, None);
                    }
                    // A waker may hold it already: hands off.
                    task.keep_while_parked();
                    return false;
                }
            }
            // A yield: nothing else runs on this thread, but let the OS run
            // other threads before continuing.
            Resumed::Suspended(_) => thread::yield_now(),
        }
    }
}
