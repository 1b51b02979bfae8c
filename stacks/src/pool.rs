//! Stack pooling: a per-thread cache in front of a global pool.
//!
//! A stack lives in one of four places:
//!
//! 1. in use (a [`Stack`](crate::Stack) value exists);
//! 2. a thread cache: up to `THREAD_CACHE_MAX` per size, no lock, no syscall;
//! 3. the global pool: while the program is busy, as many stacks per size
//!    as were ever in use at once since the last idle trim (at least
//!    `GLOBAL_HOT_MAX`), so a program that runs 100k coroutines again and
//!    again reuses their faulted-in pages instead of refaulting them, as Go
//!    keeps freed stacks until its GC. Stacks arrive "dirty" (pages below
//!    the hot window may be resident);
//! 4. released: every page given back, the slot on the arena's free list.
//!
//! Acquire and release touch only the thread cache in the steady state. The
//! system calls that give memory back are batched: at most every
//! `TRIM_INTERVAL`, stacks beyond the pool's bound are released; [`trim`],
//! which the runtime calls after a quiet second (and anyone may call), also
//! trims pooled stacks to their hot window and brings the pool back down to
//! `GLOBAL_HOT_MAX`, so RSS falls after a burst. Released slots are sorted
//! so that neighbours are released by one `madvise` (guard markers survive
//! `MADV_DONTNEED`).
//!
//! `MADV_DONTNEED` rather than `MADV_FREE`: RSS falls at once, as Go chose in
//! 1.16, and a lazily freed page is not cheaper to reuse than a resident hot
//! window. `docs/stacks.md` has the measurements.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicIsize, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::arena::{self, Carved, GuardMode, SlotAllocator, guard_size};
use crate::os;

/// Bytes at the top of a pooled stack that stay resident so a recycled stack
/// starts without page faults.
///
/// ```
/// assert!(corun_stacks::HOT_WINDOW <= corun_stacks::MIN_STACK_SIZE);
/// ```
pub const HOT_WINDOW: usize = 16 * 1024;

const THREAD_CACHE_MAX: usize = 32;
const GLOBAL_HOT_MAX: usize = 1024;
const TRIM_INTERVAL: Duration = Duration::from_millis(100);

static GLOBAL_CACHED: AtomicUsize = AtomicUsize::new(0);
static LAST_TRIM_NANOS: AtomicU64 = AtomicU64::new(0);
/// Most stacks in use at once since the last [`trim`]: the busy pool bound.
static PEAK_IN_USE: AtomicUsize = AtomicUsize::new(0);

struct SizePool {
    alloc: SlotAllocator,
    /// Pooled stacks whose deep pages may be resident (newest last).
    dirty: Vec<usize>,
    /// Pooled stacks trimmed to their hot window.
    clean: Vec<usize>,
    /// Stacks beyond the pool bound, waiting to be released entirely.
    excess: Vec<usize>,
}

impl SizePool {
    fn pooled(&self) -> usize {
        self.dirty.len() + self.clean.len()
    }
}

fn global() -> MutexGuard<'static, Vec<SizePool>> {
    static GLOBAL: Mutex<Vec<SizePool>> = Mutex::new(Vec::new());
    // A panic while holding this lock cannot leave the pool inconsistent:
    // every update is a push or pop on plain vectors.
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn size_pool(pools: &mut Vec<SizePool>, size: usize) -> &mut SizePool {
    let at = match pools.iter().position(|p| p.alloc.size() == size) {
        Some(at) => at,
        None => {
            pools.push(SizePool {
                alloc: SlotAllocator::new(size),
                dirty: Vec::new(),
                clean: Vec::new(),
                excess: Vec::new(),
            });
            pools.len() - 1
        }
    };
    &mut pools[at]
}

/// Stacks in use and in thread caches, counted per shard of threads and
/// summed when read. One process-wide counter bumped by every acquire and
/// release was a cache line bouncing between the cores of a spawn-heavy
/// program. A stack acquired on one thread and released on another leaves
/// one shard +1 and the other -1, hence signed counts.
///
/// Shards 1.. are each owned by one live thread at a time (taken from
/// `FREE_SHARDS` on first use, given back when the thread's cache is
/// dropped), so their owner updates them with a plain load and store
/// instead of a locked read-modify-write: four locked instructions less per
/// coroutine. Shard 0 is shared by the threads that found none free, and
/// by exiting threads whose cache is gone, and always takes atomic adds.
struct Counts {
    in_use: AtomicIsize,
    thread_cached: AtomicIsize,
}

#[repr(align(128))]
struct PaddedCounts(Counts);

/// One bit of `FREE_SHARDS` per shard.
const COUNT_SHARDS: usize = u32::BITS as usize;

static COUNTS: [PaddedCounts; COUNT_SHARDS] = [const {
    PaddedCounts(Counts {
        in_use: AtomicIsize::new(0),
        thread_cached: AtomicIsize::new(0),
    })
}; COUNT_SHARDS];

/// Bit `i` set: shard `i` has no owner. Shard 0 is never owned.
static FREE_SHARDS: AtomicU32 = AtomicU32::new(!1);

/// The calling thread's view of its shard.
#[derive(Clone, Copy)]
struct Shard {
    counts: &'static Counts,
    owned: bool,
}

impl Shard {
    fn add(self, field: impl Fn(&Counts) -> &AtomicIsize, delta: isize) {
        let counter = field(self.counts);
        if self.owned {
            // The owner is the only writer; readers sum whatever is there.
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(delta),
                Ordering::Relaxed,
            );
        } else {
            counter.fetch_add(delta, Ordering::Relaxed);
        }
    }

    fn add_in_use(self, delta: isize) {
        self.add(|c| &c.in_use, delta);
    }

    fn add_cached(self, delta: isize) {
        self.add(|c| &c.thread_cached, delta);
    }
}

/// The shard of the thread owning `c`, taken on first use.
fn counts_here(c: &mut ThreadCache) -> Shard {
    if c.shard == usize::MAX {
        let mut free = FREE_SHARDS.load(Ordering::Relaxed);
        c.shard = loop {
            if free == 0 {
                break 0;
            }
            let i = free.trailing_zeros();
            // Acquire: the previous owner's last updates happen before ours.
            match FREE_SHARDS.compare_exchange_weak(
                free,
                free & !(1 << i),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break i as usize,
                Err(now) => free = now,
            }
        };
    }
    Shard {
        counts: &COUNTS[c.shard].0,
        owned: c.shard != 0,
    }
}

/// Exiting threads, whose cache is gone, count in the shared shard.
fn shared_shard() -> Shard {
    Shard {
        counts: &COUNTS[0].0,
        owned: false,
    }
}

fn sum(field: impl Fn(&Counts) -> &AtomicIsize) -> usize {
    let total: isize = COUNTS
        .iter()
        .map(|c| field(&c.0).load(Ordering::Relaxed))
        .sum();
    total.max(0) as usize
}

fn in_use() -> usize {
    sum(|c| &c.in_use)
}

/// Raises the busy pool bound to what is in use now. Called when a fresh
/// slot is carved, the only time the number in use can pass what was ever
/// pooled: summing the shards on every acquire would cost a miss per shard.
fn note_peak() {
    PEAK_IN_USE.fetch_max(in_use(), Ordering::Relaxed);
}

struct CachedSize {
    size: usize,
    tops: Vec<usize>,
}

struct ThreadCache {
    sizes: Vec<CachedSize>,
    /// This thread's counts shard, `usize::MAX` until first use.
    shard: usize,
}

impl ThreadCache {
    /// Inlined: a thread nearly always finds its one stack size at once.
    #[inline]
    fn entry(&mut self, size: usize) -> &mut CachedSize {
        match self.sizes.iter().position(|c| c.size == size) {
            Some(at) => &mut self.sizes[at],
            None => self.new_entry(size),
        }
    }

    #[cold]
    fn new_entry(&mut self, size: usize) -> &mut CachedSize {
        self.sizes.push(CachedSize {
            size,
            tops: Vec::with_capacity(THREAD_CACHE_MAX + 1),
        });
        self.sizes.last_mut().expect("just pushed")
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        let counts = counts_here(self);
        for cached in std::mem::take(&mut self.sizes) {
            counts.add_cached(-(cached.tops.len() as isize));
            give_to_global(cached.size, cached.tops);
        }
        if counts.owned {
            // Release: our updates happen before the next owner's.
            FREE_SHARDS.fetch_or(1 << self.shard, Ordering::Release);
        }
    }
}

thread_local! {
    static CACHE: RefCell<ThreadCache> = const {
        RefCell::new(ThreadCache { sizes: Vec::new(), shard: usize::MAX })
    };
}

/// Takes a stack of `size` usable bytes (already validated and page-rounded);
/// returns the slot top.
#[inline(never)]
pub fn acquire(size: usize) -> io::Result<usize> {
    let cached = CACHE
        .try_with(|c| {
            let mut c = c.borrow_mut();
            let counts = counts_here(&mut c);
            counts.add_in_use(1);
            let entry = c.entry(size);
            if let Some(top) = entry.tops.pop() {
                counts.add_cached(-1);
                return Some(Ok(top));
            }
            // Refill half the cache from the global pool in one lock.
            let mut pools = global();
            let pool = size_pool(&mut pools, size);
            let want = THREAD_CACHE_MAX / 2;
            let take_dirty = want.min(pool.dirty.len());
            let at = pool.dirty.len() - take_dirty;
            entry.tops.extend(pool.dirty.drain(at..));
            let take_clean = (want - take_dirty).min(pool.clean.len());
            let at = pool.clean.len() - take_clean;
            entry.tops.extend(pool.clean.drain(at..));
            let got = entry.tops.len();
            if let Some(top) = entry.tops.pop() {
                GLOBAL_CACHED.fetch_sub(got, Ordering::Relaxed);
                counts.add_cached(got as isize - 1);
                return Some(Ok(top));
            }
            let carved = pool.alloc.carve();
            drop(pools);
            let fresh = guard_carved(carved, size);
            match fresh {
                Ok(_) => note_peak(),
                Err(_) => counts.add_in_use(-1),
            }
            Some(fresh)
        })
        .ok()
        .flatten();
    match cached {
        Some(r) => r,
        // The thread is exiting and its cache is gone: use the global pool.
        None => {
            let top = take_from_global(size)?;
            shared_shard().add_in_use(1);
            Ok(top)
        }
    }
}

fn take_from_global(size: usize) -> io::Result<usize> {
    let mut pools = global();
    let pool = size_pool(&mut pools, size);
    if let Some(top) = pool.dirty.pop().or_else(|| pool.clean.pop()) {
        GLOBAL_CACHED.fetch_sub(1, Ordering::Relaxed);
        return Ok(top);
    }
    let carved = pool.alloc.carve();
    drop(pools);
    guard_carved(carved, size)
}

/// Finishes a carve outside the pool lock: a new slot gets its guard here,
/// and goes back to the allocator if that fails.
fn guard_carved(carved: io::Result<Carved>, size: usize) -> io::Result<usize> {
    let carved = carved?;
    carved.guard().inspect_err(|_| {
        size_pool(&mut global(), size)
            .alloc
            .return_unguarded(carved)
    })
}

/// Returns a stack to the calling thread's cache, spilling the older half to
/// the global pool when the cache is full.
#[inline(never)]
pub fn release(top: usize, size: usize) {
    let spilled = CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        let counts = counts_here(&mut c);
        counts.add_in_use(-1);
        let entry = c.entry(size);
        entry.tops.push(top);
        if entry.tops.len() <= THREAD_CACHE_MAX {
            counts.add_cached(1);
            return None;
        }
        let spill: Vec<usize> = entry.tops.drain(..THREAD_CACHE_MAX / 2).collect();
        counts.add_cached(1 - spill.len() as isize);
        Some(spill)
    });
    match spilled {
        Ok(None) => {}
        Ok(Some(spill)) => give_to_global(size, spill),
        Err(_) => {
            shared_shard().add_in_use(-1);
            give_to_global(size, vec![top]);
        }
    }
}

fn give_to_global(size: usize, tops: Vec<usize>) {
    {
        let mut pools = global();
        let pool = size_pool(&mut pools, size);
        GLOBAL_CACHED.fetch_add(tops.len(), Ordering::Relaxed);
        pool.dirty.extend(tops);
        let bound = GLOBAL_HOT_MAX.max(PEAK_IN_USE.load(Ordering::Relaxed));
        pool.shed_beyond(bound);
    }
    if trim_due() {
        trim_global(false);
    }
}

impl SizePool {
    /// Moves pooled stacks beyond `bound` to `excess`, to be released: the
    /// oldest trimmed ones first, then the oldest dirty ones.
    fn shed_beyond(&mut self, bound: usize) {
        let over = self.pooled().saturating_sub(bound);
        if over > 0 {
            let from_clean = over.min(self.clean.len());
            self.excess.extend(self.clean.drain(..from_clean));
            let from_dirty = over - from_clean;
            self.excess.extend(self.dirty.drain(..from_dirty));
        }
    }
}

fn trim_due() -> bool {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let now = EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    let last = LAST_TRIM_NANOS.load(Ordering::Relaxed);
    now.saturating_sub(last) >= TRIM_INTERVAL.as_nanos() as u64
        && LAST_TRIM_NANOS
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Gives memory back: the calling thread's cache moves to the global pool,
/// pooled stacks are trimmed to their hot window, and stacks beyond
/// `GLOBAL_HOT_MAX` per size are released entirely. Cheap when there is
/// nothing to do. The runtime calls it after a quiet second.
///
/// ```
/// use corun_stacks::{Stack, stats, trim};
///
/// let stacks: Vec<_> = (0..8).map(|_| Stack::new(64 * 1024).unwrap()).collect();
/// drop(stacks); // pooled in this thread's cache
/// trim(); // the cache moves to the global pool; cold pages go back to the OS
/// assert!(stats().pooled >= 8, "still pooled, with only the hot window resident");
/// ```
pub fn trim() {
    let _ = CACHE.try_with(|c| {
        let mut c = c.borrow_mut();
        let counts = counts_here(&mut c);
        let sizes = std::mem::take(&mut c.sizes);
        drop(c);
        for cached in sizes {
            counts.add_cached(-(cached.tops.len() as isize));
            let mut pools = global();
            let pool = size_pool(&mut pools, cached.size);
            GLOBAL_CACHED.fetch_add(cached.tops.len(), Ordering::Relaxed);
            pool.dirty.extend(cached.tops);
        }
    });
    {
        // The burst is over: the busy bound starts again from what is in use.
        PEAK_IN_USE.store(in_use(), Ordering::Relaxed);
        let mut pools = global();
        for pool in pools.iter_mut() {
            pool.shed_beyond(GLOBAL_HOT_MAX);
        }
    }
    trim_global(true);
}

/// Does the batched release work outside the pool lock: always the stacks
/// beyond the bound; with `deep`, also the pages of pooled stacks below
/// their hot window (one `madvise` per stack, so only when idle).
fn trim_global(deep: bool) {
    struct Work {
        size: usize,
        slot: usize,
        dirty: Vec<usize>,
        excess: Vec<usize>,
    }
    let work: Vec<Work> = {
        let mut pools = global();
        pools
            .iter_mut()
            .filter(|p| (deep && !p.dirty.is_empty()) || !p.excess.is_empty())
            .map(|p| Work {
                size: p.alloc.size(),
                slot: p.alloc.slot_size(),
                dirty: if deep {
                    std::mem::take(&mut p.dirty)
                } else {
                    Vec::new()
                },
                excess: std::mem::take(&mut p.excess),
            })
            .collect()
    };
    for mut w in work {
        for &top in &w.dirty {
            // Keep the hot window; everything below it down to the guard goes.
            os::release(top - w.size, w.size - HOT_WINDOW.min(w.size));
        }
        GLOBAL_CACHED.fetch_sub(w.excess.len(), Ordering::Relaxed);
        release_slots(&mut w.excess, w.slot);
        let mut pools = global();
        let pool = size_pool(&mut pools, w.size);
        pool.clean.append(&mut w.dirty);
        pool.alloc.free_released(w.excess);
    }
}

/// Releases every page of the given slots, one `madvise` per run of
/// neighbouring slots when guards are markers (they survive the release).
fn release_slots(tops: &mut [usize], slot: usize) {
    tops.sort_unstable();
    let guard = guard_size();
    if arena::guard_mode() == GuardMode::Mprotect {
        // Guards are separate mappings here: release each usable range alone.
        for &top in tops.iter() {
            os::release(top - slot + guard, slot - guard);
        }
        return;
    }
    let mut i = 0;
    while i < tops.len() {
        let mut j = i + 1;
        while j < tops.len() && tops[j] == tops[j - 1] + slot {
            j += 1;
        }
        let start = tops[i] - slot + guard;
        os::release(start, tops[j - 1] - start);
        i = j;
    }
}

/// Counts of stacks by where they are.
pub fn counts() -> (usize, usize, usize) {
    let free: usize = global().iter().map(|p| p.alloc.free_slots()).sum();
    (
        in_use(),
        sum(|c| &c.thread_cached) + GLOBAL_CACHED.load(Ordering::Relaxed),
        free,
    )
}
