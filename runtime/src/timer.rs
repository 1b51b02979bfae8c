//! Timers: one queue per P, fired by whichever thread looks first.
//!
//! Each P owns a queue ordered by deadline (runtime nanoseconds; a FIFO for
//! timers that arrive in deadline order plus a binary heap for the rest,
//! see `timer_queue.rs`) and publishes its earliest deadline in
//! `next_when`, so the common check "anything due?" is one atomic load.
//! Entries are added to the queue of the P the caller runs on, and fired
//! by that P's worker in its scheduling loop, by the thread blocked in the
//! poller (whose timeout is the earliest deadline of all Ps), or, as a
//! backstop when every worker is busy, by sysmon.
//!
//! Two kinds of entry exist. A wake entry unparks a coroutine parked with a
//! deadline, but only if that park is still the one it was set for (the
//! task's `park_seq`). The check and the unpark are two steps: a coroutine
//! woken otherwise that parks again between them gets a spurious wake-up,
//! which every park's caller re-checks its condition for. A callback
//! entry runs a short closure (contexts use it to cancel themselves) unless
//! it was cancelled. Stale and cancelled entries are counted and the queue is
//! rebuilt without them once they are the majority: a server that arms and
//! cancels a timeout per request does not grow its queues.
//!
//! Firing happens outside the queue's lock: due entries are popped under the
//! lock, then woken or run after it is released.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::park::Unparker;
use crate::sched::Shared;
use crate::task::TaskRef;
use crate::timer_queue::TimerQueue;

const NONE: u64 = u64::MAX;
const COMPACT_MIN: usize = 64;

pub(crate) struct Timers {
    heap: Mutex<Heap>,
    next_when: AtomicU64,
}

#[derive(Default)]
struct Heap {
    entries: TimerQueue<Kind>,
    stale: usize,
}

enum Kind {
    Wake { task: TaskRef, park_seq: u32 },
    Callback(Arc<Callback>),
}

/// Something popped from a queue, to be fired outside its lock.
pub(crate) enum Due {
    Wake(TaskRef, u32),
    Callback(Arc<Callback>),
}

impl Due {
    pub(crate) fn fire(self) {
        match self {
            Due::Wake(task, park_seq) => {
                if task.header().park_seq.load(Ordering::Relaxed) == park_seq {
                    crate::trace::event(crate::trace::Kind::Timer, task.header().id, 0);
                    Unparker::from_task(task).unpark();
                }
            }
            Due::Callback(cb) => {
                if !cb.cancelled.swap(true, Ordering::AcqRel) {
                    let f = cb.f.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(f) = f {
                        // User code on a runtime thread: a panic costs only
                        // this callback (the hook has reported it), as a
                        // panicking coroutine costs only itself.
                        if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                            crate::task::drop_caught(payload);
                        }
                    }
                }
            }
        }
    }
}

impl Kind {
    fn is_stale(&self) -> bool {
        match self {
            Kind::Wake { task, park_seq } => {
                task.header().park_seq.load(Ordering::Relaxed) != *park_seq
            }
            Kind::Callback(cb) => cb.cancelled.load(Ordering::Relaxed),
        }
    }
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: Mutex::new(Heap::default()),
            next_when: AtomicU64::new(NONE),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Heap> {
        // Heap updates cannot be left half done by a panic (no user code
        // runs under this lock), so a poisoned lock is still consistent.
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The earliest deadline, in runtime nanoseconds (`u64::MAX`: none).
    pub(crate) fn next_when(&self) -> u64 {
        self.next_when.load(Ordering::Acquire)
    }

    fn push(&self, shared: &Shared, when: u64, kind: Kind) {
        {
            let mut heap = self.lock();
            heap.entries.push(when, kind);
            if when < self.next_when.load(Ordering::Relaxed) {
                self.next_when.store(when, Ordering::Release);
            }
        }
        shared.timer_added(when);
    }

    pub(crate) fn add_wake(
        &self,
        shared: &Shared,
        deadline: Instant,
        task: TaskRef,
        park_seq: u32,
    ) {
        self.push(
            shared,
            shared.nanos_at(deadline),
            Kind::Wake { task, park_seq },
        );
    }

    pub(crate) fn add_callback(&self, shared: &Shared, deadline: Instant, cb: Arc<Callback>) {
        self.push(shared, shared.nanos_at(deadline), Kind::Callback(cb));
    }

    /// Records that an entry became useless before its deadline.
    pub(crate) fn note_stale(&self) {
        let mut heap = self.lock();
        heap.stale += 1;
        if heap.stale >= COMPACT_MIN && heap.stale * 2 > heap.entries.len() {
            heap.entries.retain(|kind| !kind.is_stale());
            heap.stale = 0;
            let next = heap.entries.next_when().unwrap_or(NONE);
            self.next_when.store(next, Ordering::Release);
        }
    }

    /// Pops every entry due at `now` into `out`; returns how many.
    pub(crate) fn take_due(&self, now: u64, out: &mut Vec<Due>) -> usize {
        if self.next_when.load(Ordering::Acquire) > now {
            return 0;
        }
        let mut heap = self.lock();
        let mut n = 0;
        while let Some(kind) = heap.entries.pop_due(now) {
            if kind.is_stale() {
                heap.stale = heap.stale.saturating_sub(1);
                continue;
            }
            n += 1;
            out.push(match kind {
                Kind::Wake { task, park_seq } => Due::Wake(task, park_seq),
                Kind::Callback(cb) => Due::Callback(cb),
            });
        }
        let next = heap.entries.next_when().unwrap_or(NONE);
        self.next_when.store(next, Ordering::Release);
        n
    }

    /// Entries in the queue, including stale ones not yet swept (they are
    /// at most about half once there are more than a few dozen).
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Empties the queue at runtime shutdown.
    ///
    /// A callback still armed moves to the global runtime's timers with its
    /// deadline: a [`Timer`] runs once at its deadline unless cancelled, and
    /// whoever waits for it (a thread blocked on a context's `done()`) must
    /// not hang because the runtime that armed it is gone. (Cancelled from
    /// then on, it stays queued there until its deadline, as nobody counts
    /// it stale; it does not run.) Wake entries belong to coroutines that
    /// shutdown abandons, and a callback whose deadline lies past the
    /// clock's range could never run: those are dropped here with what they
    /// captured, which is user code and may panic. Shutdown must go on to
    /// complete the coroutines, so each is dropped alone and a panic is
    /// swallowed (the hook has reported it).
    pub(crate) fn drain_at_shutdown(&self, shared: &Shared) {
        let entries = self.lock().entries.take_all();
        self.next_when.store(NONE, Ordering::Release);
        for (when, entry) in entries {
            match entry {
                Kind::Callback(cb) if !cb.cancelled.load(Ordering::Acquire) => {
                    match shared.instant_of(when) {
                        Some(deadline) => {
                            let global = crate::runtime::global_shared();
                            global.timers_here().add_callback(global, deadline, cb);
                        }
                        None => crate::task::drop_caught(cb),
                    }
                }
                other => crate::task::drop_caught(other),
            }
        }
    }
}

pub(crate) struct Callback {
    cancelled: AtomicBool,
    f: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// A callback run once by the runtime at a deadline, unless cancelled.
///
/// The callback runs on a runtime thread, in scheduler context: it must be
/// short and must not block (waking coroutines, sending on a channel with
/// room, cancelling a context are fine). No thread or coroutine is spent per
/// timer. A callback that panics is reported by the panic hook and costs
/// only itself, as a panicking coroutine does. If its runtime is dropped
/// first, the timer moves to the global runtime and fires there, on time.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// let timer = corun_runtime::Timer::at(Instant::now() + Duration::from_millis(5), move || {
///     tx.send(()).unwrap()
/// });
/// rx.recv().unwrap(); // the callback ran
/// assert!(!timer.cancel(), "already fired");
/// ```
pub struct Timer {
    cb: Arc<Callback>,
    shared: &'static Shared,
    heap: usize,
}

impl Timer {
    /// Arms a timer on the current runtime (the global one outside
    /// coroutines).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::{Duration, Instant};
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let start = Instant::now();
    /// let _timer = corun_runtime::Timer::at(start + Duration::from_millis(5), move || {
    ///     tx.send(Instant::now()).unwrap() // runs on a worker: keep it short
    /// });
    /// assert!(rx.recv().unwrap() >= start + Duration::from_millis(5));
    /// ```
    pub fn at<F: FnOnce() + Send + 'static>(deadline: Instant, f: F) -> Timer {
        let shared = crate::sched::current_shared();
        let heap = shared.timer_heap_index();
        let cb = Arc::new(Callback {
            cancelled: AtomicBool::new(false),
            f: Mutex::new(Some(Box::new(f))),
        });
        shared.ps[heap]
            .timers
            .add_callback(shared, deadline, cb.clone());
        Timer { cb, shared, heap }
    }

    /// Stops the timer. Returns `true` if this call prevented the callback
    /// from running, `false` if it already ran (or was cancelled).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let timer = corun_runtime::Timer::at(Instant::now() + Duration::from_secs(60), || {
    ///     unreachable!("cancelled first")
    /// });
    /// assert!(timer.cancel());
    /// assert!(!timer.cancel(), "only the first cancel stops it");
    /// ```
    pub fn cancel(&self) -> bool {
        if self.cb.cancelled.swap(true, Ordering::AcqRel) {
            return false;
        }
        drop(self.cb.f.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.shared.ps[self.heap].timers.note_stale();
        true
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("pending", &!self.cb.cancelled.load(Ordering::Relaxed))
            .finish()
    }
}
