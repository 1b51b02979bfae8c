//! Poisoning as std does it: a guard dropped while its thread (or
//! coroutine) unwinds marks the lock poisoned.

use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct Flag(AtomicBool);

impl Flag {
    pub(crate) const fn new() -> Flag {
        Flag(AtomicBool::new(false))
    }

    /// Taken when a guard is created: was the caller already unwinding?
    #[inline]
    pub(crate) fn guard() -> bool {
        std::thread::panicking()
    }

    /// Called when the guard is dropped.
    #[inline]
    pub(crate) fn done(&self, was_panicking: bool) {
        if !was_panicking && std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// `Ok(guard)` or, if poisoned, `Err(PoisonError(guard))`.
pub(crate) fn map_result<G>(poisoned: bool, guard: G) -> std::sync::LockResult<G> {
    if poisoned {
        Err(std::sync::PoisonError::new(guard))
    } else {
        Ok(guard)
    }
}
