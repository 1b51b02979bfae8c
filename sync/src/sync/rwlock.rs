//! `RwLock<T>`: std's shape, Go's `sync.RWMutex` algorithm.
//!
//! `readers` counts active readers. A writer first takes the writer mutex
//! (one writer at a time), then subtracts `MAX_READERS` from `readers`:
//! from that moment new readers see a negative count and queue on
//! `reader_sem`, so a stream of readers cannot starve the writer. The
//! writer then waits on `writer_sem` for the readers it found (`departing`
//! counts them down; the last one releases it). Unlocking adds
//! `MAX_READERS` back and releases exactly the readers that queued
//! meanwhile, then the writer mutex. Read lock and unlock are one
//! `fetch_add` each.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{LockResult, TryLockError, TryLockResult};

use corun_runtime::{WaitReason, yield_point};

use super::mutex::RawMutex;
use super::poison::{self, Flag};
use super::waitq::Sema;

const MAX_READERS: i32 = 1 << 30;

struct RawRwLock {
    writer: RawMutex,
    writer_sem: Sema,
    reader_sem: Sema,
    readers: AtomicI32,
    departing: AtomicI32,
}

impl RawRwLock {
    const fn new() -> RawRwLock {
        RawRwLock {
            writer: RawMutex::new(),
            writer_sem: Sema::new(),
            reader_sem: Sema::new(),
            readers: AtomicI32::new(0),
            departing: AtomicI32::new(0),
        }
    }

    #[inline]
    fn read(&self) {
        if self.readers.fetch_add(1, Ordering::AcqRel) < 0 {
            // A writer is pending or active; it releases us when done.
            self.reader_sem.acquire(false, WaitReason::RwLockRead);
        }
    }

    #[inline]
    fn try_read(&self) -> bool {
        let mut c = self.readers.load(Ordering::Relaxed);
        loop {
            if c < 0 {
                return false;
            }
            assert!(c < MAX_READERS - 1, "corun: too many readers");
            match self
                .readers
                .compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(cur) => c = cur,
            }
        }
    }

    #[inline]
    fn read_unlock(&self) {
        let r = self.readers.fetch_sub(1, Ordering::AcqRel) - 1;
        if r < 0 {
            self.read_unlock_slow(r);
        }
    }

    #[cold]
    fn read_unlock_slow(&self, r: i32) {
        assert!(
            r + 1 != 0 && r + 1 != -MAX_READERS,
            "corun: read unlock of an unlocked RwLock"
        );
        // A writer waits for the readers it found; the last one lets it in.
        if self.departing.fetch_sub(1, Ordering::AcqRel) - 1 == 0 {
            self.writer_sem.release(1);
        }
    }

    fn write(&self) {
        self.writer.lock(WaitReason::RwLockWrite);
        // Announce the writer: new readers now queue.
        let r = self.readers.fetch_add(-MAX_READERS, Ordering::AcqRel);
        if r != 0 && self.departing.fetch_add(r, Ordering::AcqRel) + r != 0 {
            self.writer_sem.acquire(false, WaitReason::RwLockWrite);
        }
    }

    fn try_write(&self) -> bool {
        if !self.writer.try_lock() {
            return false;
        }
        if self
            .readers
            .compare_exchange(0, -MAX_READERS, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            self.writer.unlock();
            return false;
        }
        true
    }

    fn write_unlock(&self) {
        let r = self.readers.fetch_add(MAX_READERS, Ordering::AcqRel) + MAX_READERS;
        assert!(r < MAX_READERS, "corun: write unlock of an unlocked RwLock");
        // Let in the readers that queued while we held it.
        self.reader_sem.release(r as usize);
        self.writer.unlock();
    }
}

/// A reader-writer lock with `std::sync::RwLock`'s API that parks waiting
/// coroutines (wait reasons "rwlock read", "rwlock write") or threads.
///
/// Writers are not starved: once a writer waits, new readers queue behind
/// it. As with std, a reader that read-locks again while a writer waits
/// deadlocks. Write guards poison the lock when dropped during a panic;
/// read guards do not.
///
/// ```
/// use corun_sync::sync::RwLock;
///
/// let lock = RwLock::new(5);
/// {
///     let r1 = lock.read().unwrap();
///     let r2 = lock.read().unwrap();
///     assert_eq!(*r1 + *r2, 10);
///     assert!(lock.try_write().is_err());
/// }
/// *lock.write().unwrap() += 1;
/// assert_eq!(*lock.read().unwrap(), 6);
/// ```
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    poison: Flag,
    data: UnsafeCell<T>,
}

// SAFETY: as `std::sync::RwLock`: moving the lock moves the `T`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers share `&T` across threads (needs `T: Sync`), a writer gets
// `&mut T` on any thread (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Shared access to an [`RwLock`]'s data; unlocks when dropped.
///
/// ```
/// let lock = corun_sync::sync::RwLock::new(1);
/// let (a, b) = (lock.read().unwrap(), lock.read().unwrap()); // readers share
/// assert_eq!(*a + *b, 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    _marker: PhantomData<&'a T>,
}

/// Exclusive access to an [`RwLock`]'s data; unlocks when dropped.
///
/// ```
/// let lock = corun_sync::sync::RwLock::new(1);
/// *lock.write().unwrap() += 1; // exclusive
/// assert_eq!(*lock.read().unwrap(), 2);
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    panicking: bool,
    _marker: PhantomData<&'a mut T>,
}

impl<T> RwLock<T> {
    /// A new unlocked lock.
    ///
    /// ```
    /// static TABLE: corun_sync::sync::RwLock<Vec<u8>> = corun_sync::sync::RwLock::new(Vec::new());
    /// TABLE.write().unwrap().push(1);
    /// assert_eq!(TABLE.read().unwrap().len(), 1);
    /// ```
    pub const fn new(value: T) -> RwLock<T> {
        RwLock {
            raw: RawRwLock::new(),
            poison: Flag::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock, returning the data (`Err` if poisoned).
    ///
    /// ```
    /// let lock = corun_sync::sync::RwLock::new("data");
    /// assert_eq!(lock.into_inner().unwrap(), "data");
    /// ```
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        poison::map_result(poisoned, self.data.into_inner())
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Locks for reading, waiting while a writer holds or waits for it.
    /// A yield point.
    ///
    /// # Errors
    /// `Err(PoisonError)` holding the guard if a writer panicked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(corun_sync::sync::RwLock::new(5));
    /// let readers: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let lock = lock.clone();
    ///         corun_runtime::spawn(move || *lock.read().unwrap())
    ///     })
    ///     .collect();
    /// assert_eq!(readers.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 20);
    /// ```
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        yield_point();
        self.raw.read();
        poison::map_result(self.poison.get(), self.read_guard())
    }

    /// Locks for reading if no writer holds or waits for it.
    ///
    /// # Errors
    /// `WouldBlock` or `Poisoned`.
    ///
    /// ```
    /// let lock = corun_sync::sync::RwLock::new(0);
    /// let w = lock.write().unwrap();
    /// assert!(lock.try_read().is_err());
    /// drop(w);
    /// assert!(lock.try_read().is_ok());
    /// ```
    #[inline]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        if !self.raw.try_read() {
            return Err(TryLockError::WouldBlock);
        }
        poison::map_result(self.poison.get(), self.read_guard()).map_err(TryLockError::from)
    }

    /// Locks for writing, waiting for the current readers and writer.
    /// A yield point.
    ///
    /// # Errors
    /// `Err(PoisonError)` holding the guard if a writer panicked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(corun_sync::sync::RwLock::new(0));
    /// let writers: Vec<_> = (0..4)
    ///     .map(|_| {
    ///         let lock = lock.clone();
    ///         corun_runtime::spawn(move || *lock.write().unwrap() += 1)
    ///     })
    ///     .collect();
    /// writers.into_iter().for_each(|h| h.join().unwrap());
    /// assert_eq!(*lock.read().unwrap(), 4);
    /// ```
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        yield_point();
        self.raw.write();
        poison::map_result(self.poison.get(), self.write_guard())
    }

    /// Locks for writing if nobody holds it.
    ///
    /// # Errors
    /// `WouldBlock` or `Poisoned`.
    ///
    /// ```
    /// let lock = corun_sync::sync::RwLock::new(0);
    /// let r = lock.read().unwrap();
    /// assert!(lock.try_write().is_err());
    /// drop(r);
    /// assert!(lock.try_write().is_ok());
    /// ```
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if !self.raw.try_write() {
            return Err(TryLockError::WouldBlock);
        }
        poison::map_result(self.poison.get(), self.write_guard()).map_err(TryLockError::from)
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, T> {
        RwLockReadGuard {
            lock: self,
            _marker: PhantomData,
        }
    }

    fn write_guard(&self) -> RwLockWriteGuard<'_, T> {
        RwLockWriteGuard {
            lock: self,
            panicking: Flag::guard(),
            _marker: PhantomData,
        }
    }

    /// True if a writer panicked.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(corun_sync::sync::RwLock::new(0));
    /// let l = lock.clone();
    /// let _ = corun_runtime::spawn(move || {
    ///     let _w = l.write().unwrap();
    ///     panic!("while writing");
    /// })
    /// .join();
    /// assert!(lock.is_poisoned());
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poison flag.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let lock = Arc::new(corun_sync::sync::RwLock::new(0));
    /// let l = lock.clone();
    /// let _ = corun_runtime::spawn(move || {
    ///     let _w = l.write().unwrap();
    ///     panic!("poison it");
    /// })
    /// .join();
    /// lock.clear_poison();
    /// assert!(!lock.is_poisoned());
    /// ```
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// Mutable access without locking.
    ///
    /// # Errors
    /// `Err` holding the reference if poisoned.
    ///
    /// ```
    /// let mut lock = corun_sync::sync::RwLock::new(1);
    /// *lock.get_mut().unwrap() = 9;
    /// assert_eq!(*lock.read().unwrap(), 9);
    /// ```
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.get();
        poison::map_result(poisoned, self.data.get_mut())
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> RwLock<T> {
        RwLock::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&*e.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.poison.get()).finish()
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while its holder has read access,
        // during which nobody has `&mut T`.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.read_unlock();
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: a write guard exists only while its holder has exclusive
        // access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(self.panicking);
        self.lock.raw.write_unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
