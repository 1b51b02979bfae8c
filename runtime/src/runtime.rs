//! `Runtime`: building, the global instance, `block_on`, shutdown, and the
//! panic hook that names coroutines.

use std::io;
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use crate::sched::Shared;
use crate::tls;

static RUNTIMES: Mutex<Vec<&'static Shared>> = Mutex::new(Vec::new());
static GLOBAL: OnceLock<Runtime> = OnceLock::new();

/// Most workers a runtime accepts.
///
/// ```
/// let err = corun_runtime::Runtime::builder()
///     .workers(corun_runtime::MAX_WORKERS + 1)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// ```
pub const MAX_WORKERS: usize = 1024;
/// Default cap on a runtime's worker OS threads (Go's default is 10,000).
///
/// ```
/// assert!(corun_runtime::DEFAULT_MAX_THREADS >= 1000);
/// ```
pub const DEFAULT_MAX_THREADS: usize = 10_000;

/// A scheduler instance: Ps, worker threads, sysmon.
///
/// Most programs use the global runtime, which starts itself on first use
/// (configured by `CORUN_WORKERS`, `CORUN_STACK_SIZE`, `CORUN_MAX_THREADS`).
/// Dropping a built runtime stops its workers; coroutines that have not
/// finished are completed with an error without running further (their
/// joiners get `Err`), as goroutines simply stop when a Go program exits.
/// Its [`Timer`](crate::Timer) callbacks still armed (a `Context`'s
/// deadline) move to the global runtime, starting it if need be, and fire
/// there at their deadlines. The drop waits for each worker thread to leave the coroutine it is
/// running: one that never reaches a yield point, or sits in a long
/// `blocking()` call, holds the drop up until it switches away.
///
/// ```
/// let rt = corun_runtime::Runtime::builder().workers(2).build().unwrap();
/// // Inside, `spawn` and `go!` use this runtime.
/// let answer = rt.block_on(|| corun_runtime::spawn(|| 42).join().unwrap());
/// assert_eq!(answer, 42);
/// drop(rt); // stops its workers
/// ```
pub struct Runtime {
    shared: &'static Shared,
}

/// Configures a [`Runtime`].
///
/// ```
/// let rt = corun_runtime::Runtime::builder()
///     .name("api")
///     .workers(2)
///     .stack_size(128 * 1024)
///     .max_threads(64)
///     .build()
///     .unwrap();
/// assert_eq!(rt.workers(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct RuntimeBuilder {
    workers: Option<usize>,
    stack_size: Option<usize>,
    max_threads: Option<usize>,
    name: Option<String>,
    no_deadlock_detection: bool,
}

impl RuntimeBuilder {
    /// Number of Ps: coroutines running in parallel (Go's GOMAXPROCS).
    /// Default: `CORUN_WORKERS`, else the available parallelism.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(3).build().unwrap();
    /// assert_eq!(rt.workers(), 3);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Default stack reservation for coroutines spawned without one.
    /// Default: `CORUN_STACK_SIZE`, else `corun_stacks::DEFAULT_STACK_SIZE`.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().stack_size(1 << 20).build().unwrap();
    /// // Deep recursion fits in the larger default.
    /// fn depth(n: u64) -> u64 { if n == 0 { 0 } else { 1 + depth(n - 1) } }
    /// assert_eq!(rt.block_on(|| depth(5_000)), 5_000);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Cap on worker OS threads, which grow beyond `workers` only while
    /// coroutines block. Reaching it is a fatal error, as in Go.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(1).max_threads(8).build().unwrap();
    /// rt.block_on(|| corun_runtime::blocking(|| std::thread::sleep(std::time::Duration::from_millis(1))));
    /// ```
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = Some(n);
        self
    }

    /// A name for thread names and error messages.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().name("ingest").build().unwrap();
    /// assert!(format!("{rt:?}").contains("ingest"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Turns Go-style deadlock detection on (the default) or off.
    ///
    /// When on, a program whose coroutines are all parked with no timer,
    /// no network waiter and no other thread that could wake them, while a
    /// thread waits in [`Runtime::block_on`] or [`run`], prints
    /// `fatal error: all coroutines are asleep - deadlock!` and the
    /// coroutine dump, and exits with status 2. Detection stays silent
    /// whenever it cannot be sure (another runtime or any foreign thread
    /// exists). `CORUN_DEADLOCK_DETECTION=0` (or `false`, `off`) turns it off
    /// for every runtime.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().deadlock_detection(false).build().unwrap();
    /// rt.block_on(|| ());
    /// ```
    pub fn deadlock_detection(mut self, on: bool) -> Self {
        self.no_deadlock_detection = !on;
        self
    }

    /// Starts the runtime. Fails with `InvalidInput` on nonsense settings.
    ///
    /// ```
    /// let err = corun_runtime::Runtime::builder().workers(0).build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn build(self) -> io::Result<Runtime> {
        let workers = match self.workers {
            Some(n) => n,
            None => env_usize("CORUN_WORKERS")
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        };
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(invalid(format!(
                "corun: {workers} workers requested; from 1 to {MAX_WORKERS} are accepted"
            )));
        }
        let stack_size = match self.stack_size.or_else(|| env_usize("CORUN_STACK_SIZE")) {
            Some(s) => corun_stacks::validate_size(s)?,
            None => corun_stacks::DEFAULT_STACK_SIZE,
        };
        let max_threads = self
            .max_threads
            .or_else(|| env_usize("CORUN_MAX_THREADS"))
            .unwrap_or(DEFAULT_MAX_THREADS);
        if max_threads < workers {
            return Err(invalid(format!(
                "corun: max_threads ({max_threads}) must be at least the number of workers ({workers})"
            )));
        }
        static IDS: AtomicUsize = AtomicUsize::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let name = self.name.unwrap_or_else(|| format!("corun-{id}"));
        let detect_deadlock =
            !self.no_deadlock_detection && env_bool("CORUN_DEADLOCK_DETECTION").unwrap_or(true);
        install_panic_hook();
        crate::traceback::install();
        crate::trace::start_from_env();
        corun_stacks::install_overflow_handler();
        // Leaked on purpose: tasks and unparkers hold `&'static Shared`, and
        // may outlive the `Runtime` value (see `Drop`).
        let shared: &'static Shared = Box::leak(Box::new(Shared::new(
            id,
            workers,
            stack_size,
            max_threads,
            name,
            detect_deadlock,
        )));
        RUNTIMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(shared);
        crate::sysmon::start(shared);
        shared.start();
        Ok(Runtime { shared })
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Reads an on/off environment setting (`0`, `false`, `off`, `no` or `1`,
/// `true`, `on`, `yes`, in any case); anything else is reported and
/// ignored. (Only `0` used to mean off: `=false` silently left deadlock
/// detection on, and a program meant to idle was ended with status 2.)
fn env_bool(var: &str) -> Option<bool> {
    let raw = std::env::var(var).ok()?;
    match raw.trim().to_ascii_lowercase().as_str() {
        "0" | "false" | "off" | "no" => Some(false),
        "1" | "true" | "on" | "yes" => Some(true),
        _ => {
            eprintln!("corun: ignoring {var}={raw:?}: expected 0 or 1 (or false/true, off/on)");
            None
        }
    }
}

/// Reads a numeric environment setting; a malformed one is reported once
/// and ignored rather than silently misread.
fn env_usize(var: &str) -> Option<usize> {
    let raw = std::env::var(var).ok()?;
    let raw = raw.trim();
    let parsed = match raw.find(|c: char| !c.is_ascii_digit()) {
        None => raw.parse::<usize>().ok(),
        Some(at) => {
            let (num, unit) = raw.split_at(at);
            let mult = match unit.to_ascii_lowercase().as_str() {
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => 0,
            };
            num.parse::<usize>()
                .ok()
                .filter(|_| mult != 0)
                .and_then(|n| n.checked_mul(mult))
        }
    };
    if parsed.is_none() {
        eprintln!("corun: ignoring {var}={raw:?}: expected a number (sizes may end in K, M or G)");
    }
    parsed
}

impl Runtime {
    /// Starts configuring a runtime.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(1).build().unwrap();
    /// assert_eq!(rt.block_on(|| 1 + 1), 2);
    /// ```
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// Runs `f` as a coroutine of this runtime and waits for it (parking the
    /// calling coroutine, or the calling thread outside coroutines). A panic
    /// in `f` is resumed here.
    ///
    /// `f` may borrow from the caller, as with `std::thread::scope` or
    /// tokio's `block_on`: this returns only after `f` has returned or
    /// unwound, and the coroutines `f` spawns need `'static` values, so no
    /// borrow outlives the call.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(2).build().unwrap();
    /// let v = rt.block_on(|| {
    ///     let h = corun_runtime::spawn(|| "from a coroutine");
    ///     h.join().unwrap()
    /// });
    /// assert_eq!(v, "from a coroutine");
    ///
    /// let mut words = vec!["borrowed"];
    /// let first = rt.block_on(|| {
    ///     words.push("and changed");
    ///     &words[0]
    /// });
    /// assert_eq!(*first, "borrowed");
    /// ```
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // The result comes back through this slot rather than the task's
        // output, so that the task's types are free of the caller's
        // lifetimes.
        let mut result: Option<T> = None;
        let slot = SendPtr(&raw mut result);
        // Dropped in this order (a tuple's fields drop first to last), run
        // or not: the lender goes only once `f` and its borrows are gone.
        let parts = (f, slot, crate::pinned::Lender::for_current());
        let body: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
            // Named whole so the closure captures the tuple, not its three
            // fields (whose drop order, unrun, would be the closure's).
            let parts = parts;
            let (f, slot, lender) = parts;
            let value = f();
            // SAFETY: `result` outlives the coroutine (we wait for it below)
            // and nothing else touches it until the join has seen this
            // coroutine complete.
            unsafe { *slot.0 = Some(value) };
            drop(lender);
        });
        // SAFETY: only the lifetime changes. The body and everything it
        // borrows are used by the coroutine alone, which consumes the body
        // (dropping its captures) before completing; `join` below returns
        // only once the coroutine is complete, and the guard stops the
        // process if we were to leave any other way. A runtime cannot be
        // dropped while `&self` is borrowed here, so the coroutine cannot be
        // abandoned; if the calling coroutine is abandoned instead (its own
        // runtime dropped), its stack, and so what `f` borrows there, is
        // leaked, never freed. A pinned caller may also lend its thread's
        // thread-locals: its thread, which would exit once it is abandoned,
        // waits for the lender to drop first (`pinned::Lender`).
        let body: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(body) };
        let handle = crate::Builder::new()
            .name("main")
            .spawn_on(self.shared, body)
            .unwrap_or_else(|e| panic!("{e}"));
        // A thread waiting here counts for deadlock detection.
        struct Outside(Option<&'static Shared>);
        impl Drop for Outside {
            fn drop(&mut self) {
                if let Some(s) = self.0 {
                    s.outside_waiters.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        let _outside = Outside((!crate::is_coroutine()).then(|| {
            self.shared.outside_waiters.fetch_add(1, Ordering::SeqCst);
            self.shared
        }));
        let must_finish = AbortOnUnwind("corun: block_on stopped waiting for its coroutine");
        let joined = handle.join();
        std::mem::forget(must_finish);
        match joined {
            Ok(()) => result.expect("corun: block_on's coroutine completed without a result"),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Spawns a coroutine on this runtime.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(1).build().unwrap();
    /// // From a plain thread, onto this runtime rather than the global one.
    /// let h = rt.spawn(|| corun_runtime::is_coroutine());
    /// assert!(h.join().unwrap());
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> crate::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::Builder::new()
            .spawn_on(self.shared, f)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Number of Ps.
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(2).build().unwrap();
    /// assert_eq!(rt.workers(), 2);
    /// ```
    pub fn workers(&self) -> usize {
        self.shared.ps.len()
    }

    /// Counters of this runtime (see [`crate::stats`]).
    ///
    /// ```
    /// let rt = corun_runtime::Runtime::builder().workers(1).build().unwrap();
    /// rt.block_on(|| ());
    /// assert_eq!(rt.stats().ps, 1);
    /// ```
    pub fn stats(&self) -> crate::Stats {
        crate::introspect::stats_of(self.shared)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let shared = self.shared;
        if std::ptr::eq(tls::ctx().shared, shared) {
            // Called from one of our own threads: it cannot wait for itself.
            std::thread::spawn(move || shared.shutdown());
        } else {
            shared.shutdown();
        }
        RUNTIMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !std::ptr::eq(*s, shared));
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("name", &self.shared.name)
            .field("workers", &self.workers())
            .finish()
    }
}

/// The global runtime, started on first use.
///
/// ```
/// let rt = corun_runtime::global();
/// assert_eq!(rt.block_on(|| 7), 7);
/// ```
pub fn global() -> &'static Runtime {
    GLOBAL.get_or_init(|| match Runtime::builder().name("global").build() {
        Ok(rt) => rt,
        Err(e) => panic!("corun: the global runtime could not start: {e}"),
    })
}

pub(crate) fn global_shared() -> &'static Shared {
    global().shared
}

/// Runtimes alive in the process.
pub(crate) fn runtime_count() -> usize {
    RUNTIMES.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Every live runtime, for the traceback dump.
pub(crate) fn all() -> Vec<&'static Shared> {
    RUNTIMES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Wakes every runtime's idle poller (a driver was installed).
pub(crate) fn notify_all_pollers() {
    for s in RUNTIMES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        s.notify_sleeper();
    }
}

/// A raw pointer that may cross to the coroutine's thread (the pointee is
/// `Send`; see `block_on`).
struct SendPtr<T>(*mut Option<T>);

// SAFETY: the pointer is dereferenced by one thread at a time (the
// coroutine, then the caller after `join`), and `T: Send` lets the value it
// writes move to the caller's thread.
unsafe impl<T: Send> Send for SendPtr<T> {}

/// Stops the process if dropped: a wait that must not end by unwinding.
struct AbortOnUnwind(&'static str);

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        crate::sched::fatal(self.0)
    }
}

/// Runs `f` as the main coroutine of the global runtime and waits for it.
/// As with [`Runtime::block_on`], `f` may borrow from the caller.
///
/// ```
/// let sum = corun_runtime::run(|| {
///     let hs: Vec<_> = (0..10u64).map(|i| corun_runtime::spawn(move || i * i)).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum, 285);
/// ```
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    global().block_on(f)
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let task = tls::current_task_ptr();
            if task.is_null() {
                return previous(info);
            }
            // SAFETY: the scheduler keeps the running task alive while its
            // pointer is published.
            let header = unsafe { &*task };
            let name = header.name().map(|n| format!(" '{n}'")).unwrap_or_default();
            let msg = info.payload_as_str().unwrap_or("Box<dyn Any>");
            let at = info.location().map(|l| l.to_string()).unwrap_or_default();
            let bt = std::backtrace::Backtrace::capture();
            let tail = match bt.status() {
                std::backtrace::BacktraceStatus::Captured => format!("stack backtrace:\n{bt}"),
                _ => "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n".into(),
            };
            // One write, so concurrent panics do not interleave line by line.
            eprint!("coroutine {}{name} panicked at {at}:\n{msg}\n{tail}", header.id);
        }));
    });
}
