//! Locks and coordination with `std::sync`'s shapes and Go's semantics.
//!
//! [`Mutex`], [`RwLock`], [`Condvar`], [`Barrier`], [`Once`], [`OnceLock`]
//! have std's API (guards, [`LockResult`] and poisoning), so std code ports
//! by changing the import; [`Semaphore`] and [`WaitGroup`] come from Go.
//! Every wait parks the calling coroutine, leaving its OS thread to other
//! coroutines (the wait reason, "mutex", "rwlock read", ..., shows in
//! `corun::runtime::dump()`), and parks the thread when called outside
//! coroutines, so threads and coroutines can share any of these.
//!
//! `docs/sync.md` explains the algorithms and their invariants.
//!
//! ```
//! use std::sync::Arc;
//! use corun_sync::sync::{Mutex, WaitGroup};
//!
//! let total = Arc::new(Mutex::new(0u64));
//! let wg = WaitGroup::new();
//! for i in 0..100 {
//!     wg.add(1);
//!     let (wg, total) = (wg.clone(), total.clone());
//!     corun_runtime::go!(move || {
//!         *total.lock().unwrap() += i;
//!         wg.done();
//!     });
//! }
//! wg.wait();
//! assert_eq!(*total.lock().unwrap(), 4950);
//! ```

mod barrier;
mod condvar;
mod mutex;
mod once;
mod poison;
mod rwlock;
mod semaphore;
mod unwind;
mod waitgroup;
pub(crate) mod waitq;

pub use self::barrier::{Barrier, BarrierWaitResult};
pub use self::condvar::{Condvar, WaitTimeoutResult};
pub use self::mutex::{Mutex, MutexGuard};
pub use self::once::{Once, OnceLock, OnceState};
pub use self::rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use self::semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
pub use self::waitgroup::WaitGroup;
pub use crate::context::ErrGroup;
pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
