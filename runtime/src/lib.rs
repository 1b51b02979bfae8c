//! corun-runtime: Go's G/M/P scheduler for stackful coroutines.
//!
//! Coroutines ("G"s) run on guarded, lazily committed stacks from
//! `corun-stacks`. A fixed number of processors ("P"s, the `workers`
//! setting) each own a run queue; OS threads ("M"s) run coroutines while
//! holding a P, steal from each other when idle, and block in the network
//! driver or on a futex when there is nothing to do. A monitor thread
//! (sysmon) preempts coroutines at yield points after a 10 ms slice and hands
//! the P of a thread stuck in a blocking call to another thread.
//!
//! `sched.rs` explains the scheduler and its invariants, `task.rs` the
//! coroutine state machine, `park.rs` the waiting primitive the channel,
//! lock and socket crates are built on, `timer.rs` the timers. The rules
//! users must keep (thread-locals, `!Send` values across waits) are in
//! `docs/safety.md`.
//!
//! ```
//! use std::time::Duration;
//!
//! let h = corun_runtime::spawn(|| {
//!     corun_runtime::sleep(Duration::from_millis(1));
//!     6 * 7
//! });
//! assert_eq!(h.join().unwrap(), 42);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod deadlock;
mod driver;
mod introspect;
mod lifecycle;
mod local;
mod metrics;
mod park;
mod pinned;
mod registry;
mod runtime;
mod sched;
mod sysmon;
mod task;
mod task_cache;
mod timer;
mod timer_queue;
mod tls;
mod trace;
mod traceback;

use std::io;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use driver::{Driver, install as install_driver};
pub use introspect::{CoroutineInfo, State, Stats, coroutines, dump, stats};
pub use local::LocalKey;
pub use metrics::{CoroutineGroup, CoroutineProfile, coroutine_profile, metrics_text};
pub use park::{
    FrameUnparker, Unparker, WaitReason, frame_unparker, park, park_deadline, unparker,
};
pub use runtime::{DEFAULT_MAX_THREADS, MAX_WORKERS, Runtime, RuntimeBuilder, global, run};
pub use task::JoinHandle;
pub use timer::Timer;
pub use trace::{trace_start, trace_stop, trace_stop_to};

use sched::Shared;
use task::{NewTask, TaskInit, TaskRef};

/// Spawns a coroutine: `go!(f)`, or `go!(builder, f)` with a [`Builder`].
///
/// The first form returns a [`JoinHandle`]; the second returns
/// `io::Result<JoinHandle>` (the builder's settings are checked).
///
/// ```
/// use corun_runtime::{go, Builder};
///
/// let a = go!(|| 1 + 1);
/// let b = go!(Builder::new().name("worker").stack_size(1 << 20), || 40).unwrap();
/// assert_eq!(a.join().unwrap() + b.join().unwrap(), 42);
/// ```
#[macro_export]
macro_rules! go {
    ($f:expr $(,)?) => {
        $crate::spawn($f)
    };
    ($builder:expr, $f:expr $(,)?) => {
        $crate::Builder::spawn($builder, $f)
    };
}

/// Spawns a coroutine on the current runtime (the global one outside
/// coroutines) and returns its handle. Dropping the handle detaches it.
///
/// # Panics
/// Only if a pinned coroutine's thread cannot be started; use
/// [`Builder::spawn`] to get that as an error.
///
/// ```
/// corun_runtime::run(|| {
///     let h = corun_runtime::spawn(|| 6 * 7);
///     assert_eq!(h.join().unwrap(), 42);
/// });
/// ```
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).unwrap_or_else(|e| panic!("{e}"))
}

/// Settings for one coroutine.
///
/// ```
/// let h = corun_runtime::Builder::new()
///     .name("worker")
///     .stack_size(64 * 1024)
///     .spawn(|| corun_runtime::current().unwrap().name().map(String::from))
///     .unwrap();
/// assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    pinned: bool,
}

impl Builder {
    /// Default settings: no name, the runtime's stack size, not pinned.
    ///
    /// ```
    /// let h = corun_runtime::Builder::new().spawn(|| 1).unwrap();
    /// assert_eq!(h.join().unwrap(), 1);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine (shown in panics, overflow reports and dumps).
    ///
    /// ```
    /// let h = corun_runtime::Builder::new().name("fetcher").spawn(|| ()).unwrap();
    /// assert_eq!(h.name(), Some("fetcher"));
    /// h.join().unwrap();
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Reserves `bytes` of stack (16 KiB to 1 GiB, rounded up to pages).
    /// Pages are committed only when touched.
    ///
    /// ```
    /// use corun_runtime::Builder;
    /// // 1 MiB for deep recursion; out-of-range sizes are refused, not clamped.
    /// let h = Builder::new().stack_size(1 << 20).spawn(|| ()).unwrap();
    /// h.join().unwrap();
    /// let err = Builder::new().stack_size(1 << 40).spawn(|| ()).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs the coroutine on an OS thread of its own that it never leaves
    /// (Go's `LockOSThread`): for code that keeps `!Send` state or
    /// thread-local addresses across waits, or calls thread-affine APIs.
    ///
    /// ```
    /// use std::rc::Rc;
    /// // A pinned coroutine may keep an `Rc` (or a thread-affine handle)
    /// // across waits: it never changes threads.
    /// let h = corun_runtime::Builder::new()
    ///     .pinned(true)
    ///     .spawn(|| {
    ///         let here = std::thread::current().id();
    ///         let shared = Rc::new(5);
    ///         corun_runtime::sleep(std::time::Duration::from_millis(1));
    ///         assert_eq!(std::thread::current().id(), here);
    ///         *shared
    ///     })
    ///     .unwrap();
    /// assert_eq!(h.join().unwrap(), 5);
    /// ```
    pub fn pinned(mut self, pinned: bool) -> Builder {
        self.pinned = pinned;
        self
    }

    /// Spawns the coroutine on the current runtime. Fails with
    /// `InvalidInput` for a stack size out of range, or if a pinned
    /// coroutine's thread cannot be started.
    ///
    /// ```
    /// let h = corun_runtime::Builder::new().name("one").spawn(|| "done").unwrap();
    /// assert_eq!(h.join().unwrap(), "done");
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_on(sched::current_shared(), f)
    }

    #[track_caller]
    pub(crate) fn spawn_on<F, T>(self, shared: &'static Shared, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let spawn_site = Location::caller();
        let stack_size = match self.stack_size {
            Some(s) => corun_stacks::validate_size(s)?,
            None => shared.default_stack,
        };
        let home = self.pinned.then(|| Arc::new(pinned::Home::new()));
        let init = TaskInit {
            shared,
            id: next_id(),
            name: self.name.map(String::into_boxed_str),
            spawn_site,
            stack_size,
            home,
        };
        let NewTask {
            run: task,
            registered,
            handle,
        } = NewTask::allocate(init, f);
        trace::event(trace::Kind::Spawn, task.header().id, 0);
        if task.header().pinned {
            shared.registry.insert(registered, None);
            let header_ptr = task.as_ptr();
            if let Err(e) = pinned::start(shared, task) {
                // SAFETY: the handle keeps the task alive.
                shared.registry.remove(unsafe { &*header_ptr }, None);
                return Err(io::Error::new(
                    e.kind(),
                    format!("corun: could not start a pinned coroutine's thread: {e}"),
                ));
            }
        } else {
            // Registers it too, with the spawning P's free slots.
            sched::enqueue_new(shared, task, registered);
            // A spawn loop is a loop like any other: give way when its slice
            // is over.
            yield_point();
        }
        Ok(handle)
    }
}

/// Process-unique coroutine ids, handed out in blocks per thread so that
/// spawning on many threads does not contend on one counter.
fn next_id() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    const BLOCK: u64 = 1024;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    RANGE.with(|r| {
        let (mut next, mut end) = r.get();
        if next == end {
            next = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        r.set((next + 1, end));
        next
    })
}

/// A handle on a running coroutine, from [`current`] or
/// [`JoinHandle::coroutine`].
///
/// ```
/// let h = corun_runtime::spawn(|| corun_runtime::current().unwrap().id());
/// let id = h.id();
/// assert_eq!(h.join().unwrap(), id);
/// ```
#[derive(Clone)]
pub struct Coroutine {
    task: TaskRef,
}

impl Coroutine {
    pub(crate) fn from_task(task: TaskRef) -> Coroutine {
        Coroutine { task }
    }

    /// Unique id.
    ///
    /// ```
    /// let a = corun_runtime::spawn(|| ());
    /// let b = corun_runtime::spawn(|| ());
    /// assert_ne!(a.coroutine().id(), b.coroutine().id());
    /// ```
    pub fn id(&self) -> u64 {
        self.task.header().id
    }

    /// Name given at spawn.
    ///
    /// ```
    /// let h = corun_runtime::Builder::new().name("named").spawn(|| ()).unwrap();
    /// assert_eq!(h.coroutine().name(), Some("named"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.task.header().name()
    }
}

// As std's `Thread`: a `Coroutine` exposes only its id and name, which a
// panic cannot leave half-updated.
impl std::panic::UnwindSafe for Coroutine {}
impl std::panic::RefUnwindSafe for Coroutine {}

impl std::fmt::Debug for Coroutine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coroutine")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

/// The calling coroutine, or `None` on a plain thread.
///
/// ```
/// assert!(corun_runtime::current().is_none()); // a plain thread
/// let h = corun_runtime::spawn(|| corun_runtime::current().is_some());
/// assert!(h.join().unwrap());
/// ```
pub fn current() -> Option<Coroutine> {
    let ptr = tls::current_task_ptr();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the running task is kept alive by the scheduler while
    // published; we take our own reference.
    let borrowed = std::mem::ManuallyDrop::new(unsafe { TaskRef::from_raw(ptr.cast_mut()) });
    Some(Coroutine {
        task: (*borrowed).clone(),
    })
}

/// True when called from a coroutine.
///
/// ```
/// assert!(!corun_runtime::is_coroutine());
/// assert!(corun_runtime::spawn(corun_runtime::is_coroutine).join().unwrap());
/// ```
pub fn is_coroutine() -> bool {
    !tls::current_task_ptr().is_null()
}

/// Lets other coroutines run; the caller goes to the back of its worker's
/// queue. On a plain thread, yields the thread.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let turns = Arc::new(AtomicUsize::new(0));
/// let hs: Vec<_> = (0..2)
///     .map(|_| {
///         let turns = turns.clone();
///         corun_runtime::spawn(move || {
///             for _ in 0..100 {
///                 turns.fetch_add(1, Ordering::Relaxed);
///                 corun_runtime::yield_now();
///             }
///         })
///     })
///     .collect();
/// hs.into_iter().for_each(|h| h.join().unwrap());
/// assert_eq!(turns.load(Ordering::Relaxed), 200);
/// ```
pub fn yield_now() {
    // No switch while unwinding: see `park::park_unwinding`.
    if is_coroutine() && !std::thread::panicking() {
        corun_stacks::fiber::suspend(sched::SUSPEND_YIELD);
    } else {
        std::thread::yield_now();
    }
}

/// A yield point: gives way if the coroutine's 10 ms time slice is over (or
/// its worker thread was taken for others). Every channel, lock, timer and
/// I/O operation calls it; call it in long loops without such operations.
///
/// ```
/// // A CPU-bound loop with no channel, lock or I/O: let others run.
/// let h = corun_runtime::spawn(|| {
///     let mut x = 0u64;
///     for i in 0..1_000_000u64 {
///         x = x.wrapping_mul(31).wrapping_add(i);
///         if i % 1024 == 0 {
///             corun_runtime::yield_point();
///         }
///     }
///     x
/// });
/// h.join().unwrap();
/// ```
#[inline]
pub fn yield_point() {
    // No switch while unwinding: see `park::park_unwinding`.
    if sched::should_yield() && !std::thread::panicking() {
        corun_stacks::fiber::suspend(sched::SUSPEND_PREEMPT);
    }
}

/// Waits at least `d`. Parks the coroutine (the thread is free for others),
/// or sleeps the thread outside coroutines. Never returns early.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// corun_runtime::spawn(|| corun_runtime::sleep(Duration::from_millis(5)))
///     .join()
///     .unwrap();
/// assert!(start.elapsed() >= Duration::from_millis(5));
/// ```
pub fn sleep(d: Duration) {
    let now = Instant::now();
    match now.checked_add(d) {
        Some(deadline) => {
            if !park::park_deadline_from(WaitReason::Sleep, now, deadline) {
                sleep_until(deadline);
            }
        }
        // Past the end of `Instant`: sleep in century steps, so a timer
        // stays armed as Go's does for a sleep past its clock's end, and
        // deadlock detection does not take the sleeper for stuck.
        None => loop {
            sleep(A_CENTURY);
        },
    }
}

const A_CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Waits until `deadline`. Never returns early.
///
/// ```
/// use std::time::{Duration, Instant};
/// let deadline = Instant::now() + Duration::from_millis(3);
/// corun_runtime::sleep_until(deadline); // also works on a plain thread
/// assert!(Instant::now() >= deadline);
/// ```
pub fn sleep_until(deadline: Instant) {
    while !park_deadline(WaitReason::Sleep, deadline) {}
}

/// Runs a blocking call (a system call, a C library, `std::fs`, DNS)
/// without stalling other coroutines: if `f` takes more than ~20 us, sysmon
/// hands this worker's processor to another thread, as Go does for system
/// calls. Outside coroutines it just calls `f`.
///
/// ```
/// // A blocking read from the file system, without stalling other
/// // coroutines on this worker.
/// let h = corun_runtime::spawn(|| {
///     corun_runtime::blocking(|| std::fs::read_to_string("/proc/self/status"))
/// });
/// assert!(h.join().unwrap().unwrap().contains("Pid:"));
/// ```
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    sched::in_syscall(f)
}
