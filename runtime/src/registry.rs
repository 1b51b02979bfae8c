//! The registry of live coroutines: what `stats()`, `coroutines()`,
//! `dump()`, deadlock detection and shutdown enumerate.
//!
//! Every task is in it from spawn until it completes, and the registry's
//! reference keeps a coroutine that parks forever alive and visible, as Go
//! keeps a leaked goroutine.
//!
//! # Design
//!
//! A task occupies one *slot*, an `AtomicPtr` in a segment of
//! `SEGMENT_SLOTS`; segments are allocated as the number of live tasks grows
//! and kept for the runtime's life (like Go's `allgs`, the registry does not
//! shrink). The task records its slot's address, so removal is a swap on
//! that record (a second removal finds it null) and one on the slot: no
//! lock, no search.
//!
//! Free slots are recycled through a small cache per P, filled from and
//! spilled to a global pool in batches (the pool takes a lock once per
//! `BATCH` slots); callers without a P use the pool directly. A spawn on a
//! P and a completion on another thus touch only their own cache and the
//! slot itself. The earlier design, a sharded slab under mutexes, cost a
//! third of a spawn + join when the spawner and the finisher ran on
//! different cores and took turns at the same shard lock.
//!
//! # Reading while tasks complete
//!
//! `snapshot` clones a reference out of every non-empty slot, while
//! completing tasks empty their slots and drop the registry's reference,
//! possibly the last. The two are kept apart Dekker-style: a snapshot
//! raises `readers` before it scans (SeqCst); a remover empties the slot,
//! then reads `readers` (SeqCst). A remover that sees no reader knows any
//! later scan will find its slot empty, and drops its reference; one that
//! sees a reader parks the reference in `deferred` instead, which the last
//! reader to leave (or a remover that finds none left) drops.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::task::{Header, TaskRef};

/// Slots per segment.
const SEGMENT_SLOTS: usize = 1024;
/// Slots a P's cache takes from or gives back to the pool at a time.
const BATCH: usize = 64;
/// A P's cache spills a batch to the pool beyond this many.
const CACHE_MAX: usize = 2 * BATCH;

type Slot = AtomicPtr<Header>;

/// A P's free slots (owned by the P; touched by the M holding it).
#[derive(Default)]
pub(crate) struct SlotCache {
    free: Vec<&'static Slot>,
}

pub(crate) struct Registry {
    /// Every segment ever allocated, for `snapshot`.
    segments: Mutex<Vec<&'static [Slot]>>,
    /// Free slots not in any P's cache.
    pool: Mutex<Vec<&'static Slot>>,
    /// Snapshots in progress, and the references they keep from dropping.
    readers: Readers<TaskRef>,
}

/// Readers of a set whose removed items must outlive every read that may
/// still see them: `release` drops an item at once unless a reader is in,
/// else the last reader out (or a later release that finds none) does.
struct Readers<T> {
    count: AtomicUsize,
    deferred: Mutex<Vec<T>>,
}

impl<T> Readers<T> {
    fn new() -> Readers<T> {
        Readers {
            count: AtomicUsize::new(0),
            deferred: Mutex::new(Vec::new()),
        }
    }

    /// Before reading: from here on, items released stay alive.
    fn enter(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.drop_deferred();
        }
    }

    /// Drops `item`, whose removal from the set (a SeqCst write) came
    /// first, or defers the drop while a reader may hold its address.
    fn release(&self, item: T) {
        if self.count.load(Ordering::SeqCst) == 0 {
            drop(item);
            return;
        }
        lock(&self.deferred).push(item);
        // The last reader may have drained the list before our push.
        if self.count.load(Ordering::SeqCst) == 0 {
            self.drop_deferred();
        }
    }

    fn drop_deferred(&self) {
        let deferred = {
            let mut list = lock(&self.deferred);
            // Counted again under the lock: between a last reader's
            // decrement and this call a new reader may have come in and
            // seen an item released since, which must outlive it. A reader
            // entering after this check cannot see what the list holds
            // (each item left its slot before its push).
            if self.count.load(Ordering::SeqCst) != 0 {
                return;
            }
            std::mem::take(&mut *list)
        };
        drop(deferred);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a push, a pop or an append: a panic
    // cannot leave the data half changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            segments: Mutex::new(Vec::new()),
            pool: Mutex::new(Vec::new()),
            readers: Readers::new(),
        }
    }

    /// Adds `task`, whose reference the registry keeps until `remove`,
    /// taking a slot from `cache` (the caller's P) if given.
    pub(crate) fn insert(&self, task: TaskRef, cache: Option<&mut SlotCache>) {
        let slot = match cache {
            Some(cache) => match cache.free.pop() {
                Some(s) => s,
                None => {
                    self.refill(&mut cache.free);
                    cache.free.pop().expect("refilled")
                }
            },
            None => {
                let mut pool = lock(&self.pool);
                if pool.is_empty() {
                    self.grow(&mut pool);
                }
                pool.pop().expect("grown")
            }
        };
        // Recorded before the slot is published: a snapshot that finds the
        // task (shutdown's `abandon_all`) must also find where to remove it.
        task.header()
            .registry_slot
            .store(slot as *const Slot as *mut Slot, Ordering::Relaxed);
        // The registry's own reference, released by `remove`.
        slot.store(task.into_raw(), Ordering::Release);
    }

    /// Removes the task of `header` (a no-op if it was removed already),
    /// returning its slot to `cache` if given.
    pub(crate) fn remove(&self, header: &Header, cache: Option<&mut SlotCache>) {
        let slot = header
            .registry_slot
            .swap(ptr::null_mut(), Ordering::Relaxed);
        if slot.is_null() {
            return;
        }
        // SAFETY: slots live as long as the registry (segments are never
        // freed), and the registry outlives its tasks (`Shared` is leaked).
        let slot: &'static Slot = unsafe { &*slot };
        let raw = slot.swap(ptr::null_mut(), Ordering::SeqCst);
        debug_assert!(ptr::eq(raw, header), "a task's slot holds that task");
        // SAFETY: the slot held the reference `insert` made with
        // `into_raw`; the swap handed it to us alone.
        self.readers.release(unsafe { TaskRef::from_raw(raw) });
        match cache {
            Some(cache) => {
                cache.free.push(slot);
                if cache.free.len() > CACHE_MAX {
                    let spill = cache.free.len() - BATCH;
                    lock(&self.pool).extend(cache.free.drain(spill..));
                }
            }
            None => lock(&self.pool).push(slot),
        }
    }

    /// Every task in the registry.
    pub(crate) fn snapshot(&self) -> Vec<TaskRef> {
        self.readers.enter();
        let segments = lock(&self.segments).clone();
        let mut out = Vec::new();
        for segment in segments {
            for slot in segment {
                let raw = slot.load(Ordering::SeqCst);
                if !raw.is_null() {
                    // SAFETY: the slot still held the registry's reference
                    // after we became a reader, so its remover will see us
                    // and defer dropping it until we leave.
                    out.push(unsafe { TaskRef::clone_raw(raw) });
                }
            }
        }
        self.readers.leave();
        out
    }

    /// Runtime shutdown: completes every unfinished task with an error,
    /// without running the rest of its code (as a Go program's goroutines
    /// simply stop at exit), so joiners return.
    pub(crate) fn abandon_all(&self) {
        for task in self.snapshot() {
            task.abandon();
            self.remove(task.header(), None);
        }
    }

    /// Moves a batch of free slots from the pool into `free`.
    fn refill(&self, free: &mut Vec<&'static Slot>) {
        let mut pool = lock(&self.pool);
        if pool.len() < BATCH {
            self.grow(&mut pool);
        }
        let keep = pool.len() - BATCH;
        free.extend(pool.drain(keep..));
    }

    /// Adds a new segment's slots to the pool.
    fn grow(&self, pool: &mut Vec<&'static Slot>) {
        let segment: &'static [Slot] = Box::leak(
            (0..SEGMENT_SLOTS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
        );
        lock(&self.segments).push(segment);
        pool.extend(segment.iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn released_items_outlive_the_readers_in_progress() {
        let drops = Arc::new(AtomicUsize::new(0));
        let readers = Readers::new();
        readers.release(Tracked(drops.clone()));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "no reader: dropped at once"
        );
        readers.enter();
        readers.enter();
        readers.release(Tracked(drops.clone()));
        readers.release(Tracked(drops.clone()));
        readers.leave();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "a reader is still in");
        readers.leave();
        assert_eq!(drops.load(Ordering::SeqCst), 3, "the last reader out drops");
    }

    #[test]
    fn a_reader_entering_during_the_last_leave_keeps_what_it_may_see() {
        // `leave` is a decrement, then `drop_deferred`: a second reader and
        // a release may come between the two, as threads interleave them.
        let drops = Arc::new(AtomicUsize::new(0));
        let readers = Readers::new();
        readers.enter();
        assert_eq!(readers.count.fetch_sub(1, Ordering::SeqCst), 1);
        readers.enter(); // may load the item's slot before its removal
        readers.release(Tracked(drops.clone()));
        readers.drop_deferred(); // the first leave's second half
        assert_eq!(drops.load(Ordering::SeqCst), 0, "dropped under a reader");
        readers.leave();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "the last reader out drops");
    }

    #[test]
    fn releases_racing_readers_all_drop_exactly_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let readers = Arc::new(Readers::new());
        const N: usize = if cfg!(miri) { 500 } else { 20_000 };
        let reader = {
            let readers = readers.clone();
            std::thread::spawn(move || {
                for _ in 0..N {
                    readers.enter();
                    std::hint::spin_loop();
                    readers.leave();
                }
            })
        };
        for _ in 0..N {
            readers.release(Tracked(drops.clone()));
        }
        reader.join().unwrap();
        // Whatever interleaving happened, nothing is left deferred once no
        // reader is in, and nothing dropped twice.
        assert_eq!(drops.load(Ordering::SeqCst), N);
        assert!(lock(&readers.deferred).is_empty());
    }

    #[test]
    fn cache_spills_and_refills_in_batches_without_losing_slots() {
        let reg = Registry::new();
        let mut pool = lock(&reg.pool);
        reg.grow(&mut pool);
        assert_eq!(pool.len(), SEGMENT_SLOTS);
        drop(pool);
        let mut free = Vec::new();
        reg.refill(&mut free);
        assert_eq!(free.len(), BATCH);
        assert_eq!(lock(&reg.pool).len(), SEGMENT_SLOTS - BATCH);
        // Every slot is distinct.
        let mut addrs: Vec<_> = free.iter().map(|s| *s as *const Slot).collect();
        addrs.extend(lock(&reg.pool).iter().map(|s| *s as *const Slot));
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), SEGMENT_SLOTS);
    }

    #[test]
    fn inserted_tasks_are_listed_until_removed_and_released_once() {
        let reg = Registry::new();
        let mut cache = SlotCache::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let t = Tracked(dropped.clone());
                let task = crate::task::testing::new_task(move || drop(t));
                let cache = (i != 1).then_some(&mut cache);
                reg.insert(task.registered, cache);
                (task.run, task.handle)
            })
            .collect();
        let listed = reg.snapshot();
        assert_eq!(listed.len(), 3);
        for (run, _) in &tasks {
            assert!(listed.iter().any(|t| t.as_ptr() == run.as_ptr()));
        }
        drop(listed);
        // Removing twice is a no-op; the slot goes back where it is told.
        reg.remove(tasks[0].0.header(), Some(&mut cache));
        reg.remove(tasks[0].0.header(), Some(&mut cache));
        reg.remove(tasks[1].0.header(), None);
        assert_eq!(reg.snapshot().len(), 1);
        // Shutdown's way: the unfinished task is completed and removed.
        reg.abandon_all();
        assert!(reg.snapshot().is_empty());
        // The function never ran: it is dropped with each task.
        drop(tasks);
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
    }
}
