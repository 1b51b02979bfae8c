//! The part of a task that exists only while the coroutine can still run:
//! its fiber, its coroutine-locals and what introspection reports about it.
//! Like Go's `g` structs, run states are recycled through free lists.
//!
//! # Why a task is split in two
//!
//! A `JoinHandle` keeps its task's allocation until it is joined, so a
//! program that spawns a million coroutines and joins them afterwards holds
//! a million finished tasks. Every byte of the task is then paid a million
//! times in page faults and cache misses. So the task allocation holds only
//! what a handle, a waker or a timer may read after the coroutine finished
//! (the header, and the function or its output in one slot), and the rest
//! lives here and is recycled the moment the coroutine finishes, to serve
//! the next spawn from memory that is still in the cache. For a coroutine
//! returning a `u64` that makes 120 bytes held per unjoined task, where the
//! whole used to be 232.
//!
//! # Free lists
//!
//! Each thread keeps up to `LOCAL_MAX` free states. A thread with too many
//! moves a batch to the global list; a thread with none takes a batch from
//! it before allocating. Spawning and finishing usually happen on different
//! threads (the spawner's P and a thief's), so without the global list one
//! thread would only allocate and the other only free. The global list is
//! bounded (`GLOBAL_MAX`); beyond it states go back to the allocator, so a
//! burst of a million coroutines leaves no million-entry list behind.
//!
//! # Who may touch a run state
//!
//! The header points at its run state from spawn until the coroutine
//! finishes (`Header::retire`) or, for a task that never finished, until
//! its last reference is dropped. In between, only these read it, each for
//! a reason the pointer cannot be retired under it:
//!
//! - the thread holding the task RUNNING (it is the one that retires it);
//! - the spawner before the task is queued, and a waker that just moved it
//!   from IDLE to SCHEDULED (it cannot run, so it cannot finish, until
//!   queued);
//! - introspection, under the lock of the registry shard that still holds
//!   the task (the finisher removes the task from the registry, under that
//!   lock, before it retires the run state);
//! - the holder of the last reference.

use std::cell::{RefCell, UnsafeCell};
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use corun_stacks::fiber::Fiber;

use crate::local::LocalMap;
use crate::pinned::Home;

pub(crate) struct RunState {
    /// Coarse time (runtime nanoseconds) of the last state change seen by
    /// introspection: set at spawn and at each park.
    pub(crate) since: AtomicU64,
    pub(crate) spawn_site: &'static Location<'static>,
    pub(crate) stack_size: usize,
    /// For pinned tasks: the thread they live on.
    pub(crate) home: Option<Arc<Home>>,
    /// Owned by the thread that holds the task RUNNING.
    pub(crate) fiber: UnsafeCell<Option<Fiber>>,
    /// Coroutine-local values; touched only by the coroutine itself.
    pub(crate) locals: UnsafeCell<Option<Box<LocalMap>>>,
}

/// What a new run state starts with.
pub(crate) struct Fresh {
    pub(crate) since: u64,
    pub(crate) spawn_site: &'static Location<'static>,
    pub(crate) stack_size: usize,
    pub(crate) home: Option<Arc<Home>>,
}

/// A run state on a free list: no fiber, no locals, no home.
struct Free(Box<RunState>);

// SAFETY: what makes a `RunState` not `Send` is its fiber and its locals
// (values of one coroutine, with raw pointers); a free one holds neither
// (checked in `recycle`), and its other fields are plain data.
unsafe impl Send for Free {}

const LOCAL_MAX: usize = 256;
const BATCH: usize = LOCAL_MAX / 2;
const GLOBAL_MAX: usize = 16 * 1024;

thread_local! {
    static LOCAL: RefCell<Vec<Free>> = const { RefCell::new(Vec::new()) };
}

static GLOBAL: Mutex<Vec<Free>> = Mutex::new(Vec::new());

fn global() -> std::sync::MutexGuard<'static, Vec<Free>> {
    // Pushes and pops of whole entries: a panic cannot leave it torn.
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run state for a new task, from the free lists when they have one.
pub(crate) fn acquire(fresh: Fresh) -> NonNull<RunState> {
    let reused = LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            if local.is_empty() {
                let mut global = global();
                let keep = global.len().saturating_sub(BATCH);
                local.extend(global.drain(keep..));
            }
            local.pop()
        })
        .ok()
        .flatten();
    let state = match reused {
        Some(Free(mut state)) => {
            *state.since.get_mut() = fresh.since;
            state.spawn_site = fresh.spawn_site;
            state.stack_size = fresh.stack_size;
            state.home = fresh.home;
            state
        }
        None => Box::new(RunState {
            since: AtomicU64::new(fresh.since),
            spawn_site: fresh.spawn_site,
            stack_size: fresh.stack_size,
            home: fresh.home,
            fiber: UnsafeCell::new(None),
            locals: UnsafeCell::new(None),
        }),
    };
    NonNull::from(Box::leak(state))
}

/// Returns the run state of a finished coroutine to the free lists. One
/// that still holds a fiber or locals (the finish path never leaves any)
/// is freed instead, its destructors running here, so no list ever carries
/// a coroutine's values to another thread.
///
/// # Safety
/// `state` came from `acquire` and nothing else will touch it.
pub(crate) unsafe fn recycle(state: NonNull<RunState>) {
    // SAFETY: leaked by `acquire`, handed back once (see above).
    let mut state = unsafe { Box::from_raw(state.as_ptr()) };
    if state.fiber.get_mut().is_some() || state.locals.get_mut().is_some() {
        return;
    }
    state.home = None;
    let mut spare = Some(Free(state));
    let _ = LOCAL.try_with(|local| {
        let mut local = local.borrow_mut();
        if local.len() >= LOCAL_MAX {
            let mut global = global();
            let room = GLOBAL_MAX.saturating_sub(global.len()).min(BATCH);
            let from = local.len() - room;
            global.extend(local.drain(from..));
        }
        if local.len() < LOCAL_MAX {
            local.extend(spare.take());
        }
    });
    // No room anywhere (or the thread is exiting): free it.
    drop(spare);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn fresh() -> Fresh {
        Fresh {
            since: 1,
            spawn_site: Location::caller(),
            stack_size: 4096,
            home: None,
        }
    }

    fn global_len() -> usize {
        global().len()
    }

    #[test]
    fn a_recycled_state_serves_the_next_acquire_on_its_thread() {
        std::thread::spawn(|| {
            let a = acquire(fresh());
            // SAFETY: fresh from `acquire`: no fiber, no locals.
            unsafe { recycle(a) };
            let b = acquire(Fresh {
                since: 7,
                stack_size: 8192,
                ..fresh()
            });
            assert_eq!(a, b, "the free list handed back the same state");
            // SAFETY: as above; we hold the only pointer.
            let state = unsafe { b.as_ref() };
            assert_eq!(state.since.load(std::sync::atomic::Ordering::Relaxed), 7);
            assert_eq!(state.stack_size, 8192);
            // SAFETY: as above.
            unsafe { recycle(b) };
        })
        .join()
        .unwrap();
    }

    /// One thread only acquires, another only recycles (a spawner and a
    /// thief): the global list carries states back, within its bound.
    #[test]
    fn states_flow_back_from_a_finishing_thread_within_bounds() {
        const N: usize = 3 * GLOBAL_MAX;
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        let finisher = std::thread::spawn(move || {
            for addr in rx {
                // SAFETY: each address came from `acquire` on the other
                // thread and is handed over exactly once.
                unsafe { recycle(NonNull::new(addr as *mut RunState).unwrap()) };
                assert!(global_len() <= GLOBAL_MAX);
            }
        });
        let first: Vec<usize> = (0..N).map(|_| acquire(fresh()).as_ptr() as usize).collect();
        let seen: std::collections::HashSet<usize> = first.iter().copied().collect();
        assert_eq!(seen.len(), N, "live states are distinct");
        for addr in first {
            tx.send(addr).unwrap();
        }
        drop(tx);
        finisher.join().unwrap();
        // Other tests' threads may take a batch or two meanwhile.
        assert!(
            global_len() >= GLOBAL_MAX - 4 * BATCH,
            "the global list filled up"
        );
        let again: Vec<NonNull<RunState>> = (0..GLOBAL_MAX).map(|_| acquire(fresh())).collect();
        let reused = again
            .iter()
            .filter(|p| seen.contains(&(p.as_ptr() as usize)))
            .count();
        assert!(reused >= GLOBAL_MAX - 4 * BATCH, "reused {reused}");
        for p in again {
            // SAFETY: fresh from `acquire`.
            unsafe { recycle(p) };
        }
    }

    #[test]
    fn a_state_still_holding_locals_is_freed_not_listed() {
        std::thread::spawn(|| {
            let a = acquire(fresh());
            // SAFETY: we hold the only pointer.
            unsafe { *a.as_ref().locals.get() = Some(Box::default()) };
            // SAFETY: from `acquire`, handed back once.
            unsafe { recycle(a) };
            let b = acquire(fresh());
            // SAFETY: as above.
            assert!(unsafe { (*b.as_ref().locals.get()).is_none() });
            // SAFETY: fresh, no locals.
            unsafe { recycle(b) };
        })
        .join()
        .unwrap();
    }
}
