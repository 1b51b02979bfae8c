//! corun: Go's concurrency model for Rust.
//!
//! Stackful coroutines on guarded, lazily committed stacks, multiplexed by a
//! G/M/P work-stealing scheduler, parked cheaply on channels, locks, timers
//! and sockets. Write plain blocking code; run a million of them.
//!
//! ```
//! let h = corun::go!(|| 6 * 7);
//! assert_eq!(h.join().unwrap(), 42);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

pub use corun_runtime::{
    Builder, Coroutine, JoinHandle, LocalKey, Runtime, RuntimeBuilder, blocking, coroutine_local,
    current, go, is_coroutine, run, sleep, sleep_until, spawn, yield_now, yield_point,
};

/// Introspection and low-level runtime hooks (`corun-runtime`).
///
/// ```
/// use corun::runtime::{State, WaitReason};
///
/// let h = corun::go!(|| corun::sleep(std::time::Duration::from_millis(20)));
/// let stats = corun::runtime::stats();
/// assert!(stats.coroutines >= 1);
/// for c in corun::runtime::coroutines() {
///     if c.state == State::Waiting {
///         assert_ne!(c.wait_reason, WaitReason::None);
///     }
/// }
/// h.join().unwrap();
/// ```
pub mod runtime {
    pub use corun_runtime::{
        CoroutineGroup, CoroutineInfo, CoroutineProfile, Driver, State, Stats, Timer, Unparker,
        WaitReason, coroutine_profile, coroutines, dump, global, install_driver, metrics_text,
        park, park_deadline, stats, trace_start, trace_stop, trace_stop_to, unparker,
    };
}

/// Channels and `select!` (`corun-sync`): a superset of crossbeam-channel
/// 0.5 with Go's `close` and unbuffered hand-off; see
/// [`corun_sync::chan`].
///
/// ```
/// use corun::chan::{bounded, select};
///
/// let (s, r) = bounded::<i32>(1);
/// select! {
///     send(s, 1) -> res => res.unwrap(),
///     recv(r) -> _ => unreachable!("empty"),
/// }
/// assert_eq!(r.recv(), Ok(1));
/// ```
pub mod chan {
    pub use corun_sync::chan::*;
}

pub use corun_sync::{select, select_biased};

/// Sockets that park coroutines (`corun-netpoll`): std::net's shapes,
/// `Read`/`Write` for `T` and `&T`, timeouts as Go's deadlines, and
/// [`net::PollFd`] for any other pollable descriptor.
pub mod net {
    pub use corun_netpoll::*;
}

/// Locks and coordination (`corun-sync`): `std::sync`'s shapes, parking
/// the coroutine instead of the thread; see [`corun_sync::sync`].
///
/// ```
/// use std::sync::Arc;
/// use corun::sync::{Mutex, WaitGroup};
///
/// let n = Arc::new(Mutex::new(0));
/// let wg = WaitGroup::new();
/// for _ in 0..10 {
///     let n = n.clone();
///     wg.go(move || *n.lock().unwrap() += 1);
/// }
/// wg.wait();
/// assert_eq!(*n.lock().unwrap(), 10);
/// ```
pub mod sync {
    pub use corun_sync::sync::*;
}

/// Go's `context` package and `ErrGroup` (`corun-sync`): cancellation,
/// deadlines and values down a tree of contexts; see
/// [`corun_sync::context`].
///
/// ```
/// use std::time::Duration;
/// use corun::context::{Context, ContextError, ErrGroup};
///
/// let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(5));
/// let (g, gctx) = ErrGroup::<ContextError>::with_context(&ctx);
/// g.go(move || Err(ContextError::Canceled));
/// assert_eq!(g.wait(), Err(ContextError::Canceled));
/// assert!(gctx.done().recv().is_err(), "the group's context is cancelled");
/// cancel.cancel();
/// ```
pub mod context {
    pub use corun_sync::context::*;
}

/// Guarded, lazily committed, pooled coroutine stacks (`corun-stacks`).
///
/// ```
/// // Deep recursion without a huge reservation: grow onto a new segment
/// // when less than 32 KiB remain.
/// fn depth(n: u64) -> u64 {
///     corun::stacks::grow(32 * 1024, 256 * 1024, || if n == 0 { 0 } else { 1 + depth(n - 1) })
/// }
/// let h = corun::Builder::new().stack_size(64 * 1024).spawn(|| depth(100_000)).unwrap();
/// assert_eq!(h.join().unwrap(), 100_000);
/// ```
pub mod stacks {
    pub use corun_stacks::{
        DEFAULT_STACK_SIZE, GuardMode, MAX_STACK_SIZE, MIN_STACK_SIZE, Stats, grow,
        remaining_stack, resident_bytes, stats, trim, validate_size,
    };
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
