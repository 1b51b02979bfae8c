//! Unwind safety, as std's primitives have it.
//!
//! Their internal state (wait queues, counters, flags) is never left half
//! updated by a panic: no user code runs while it is inconsistent. What a
//! panic can break is the data a lock guards, and poisoning reports that,
//! as in std. So, like std's, these types may cross `catch_unwind`.

use std::panic::{RefUnwindSafe, UnwindSafe};

use super::{
    Barrier, Condvar, Mutex, MutexGuard, Once, OnceLock, RwLock, RwLockWriteGuard, Semaphore,
    WaitGroup,
};

impl<T: ?Sized> UnwindSafe for Mutex<T> {}
impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}
impl<T: ?Sized> UnwindSafe for RwLock<T> {}
impl<T: ?Sized> RefUnwindSafe for RwLock<T> {}
impl UnwindSafe for Condvar {}
impl RefUnwindSafe for Condvar {}
impl UnwindSafe for Barrier {}
impl RefUnwindSafe for Barrier {}
impl UnwindSafe for Once {}
impl RefUnwindSafe for Once {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}
impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl UnwindSafe for Semaphore {}
impl RefUnwindSafe for Semaphore {}
impl UnwindSafe for WaitGroup {}
impl RefUnwindSafe for WaitGroup {}
// The exclusive guards too, for every `T` (their `&mut T` marker would
// otherwise make them neither): a panic while one is held poisons the lock.
// A read guard stays as unwind safe as the `&T` it stands for, as std's.
impl<T: ?Sized> UnwindSafe for MutexGuard<'_, T> {}
impl<T: ?Sized> RefUnwindSafe for MutexGuard<'_, T> {}
impl<T: ?Sized> UnwindSafe for RwLockWriteGuard<'_, T> {}
impl<T: ?Sized> RefUnwindSafe for RwLockWriteGuard<'_, T> {}
