//! Arenas: large `MAP_NORESERVE` reservations carved into equal stack slots.
//!
//! Slot layout (addresses grow to the right, the stack grows to the left):
//!
//! ```text
//! | guard (GUARD_SIZE) | usable stack ..................... | header (64 B) |
//! ^ slot base                                                               ^ slot top
//! ```
//!
//! A fiber on the slot keeps its state (64 bytes) at the top of the usable
//! part, just below the header (see `fiber.rs`).
//!
//! A chunk is one mapping holding `n` consecutive slots of one size class.
//! Slots are handed out by bumping through the newest chunk, or from the free
//! list of slots whose pages were given back. A slot's guard is installed the
//! first time the slot is handed out and never removed: `MADV_DONTNEED` keeps
//! guard markers, and released slots stay reserved for reuse.
//!
//! The registry is a fixed table of chunks that the overflow handler reads
//! without locks: entries are written once, then published by bumping
//! `CHUNK_COUNT` with release ordering.

use std::io;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::os;

/// Bytes of guard at the low end of every slot. Rust probes every page of a
/// large frame, so one guard page would do; four absorb C frames compiled
/// without stack-clash protection that skip a page or two.
///
/// On kernels with pages larger than this (64 KiB on some arm64 and ppc64
/// systems) the guard is one page instead: guards are whole pages.
///
/// ```
/// assert_eq!(corun_stacks::GUARD_SIZE % 4096, 0, "whole pages");
/// ```
pub const GUARD_SIZE: usize = 16 * 1024;

/// The guard every slot has on this kernel (see [`GUARD_SIZE`]).
pub(crate) fn guard_size() -> usize {
    guard_size_for(os::page_size())
}

fn guard_size_for(page: usize) -> usize {
    GUARD_SIZE.max(page)
}

/// Bytes at the top of every slot holding the owner's label for the overflow
/// report. The usable stack starts below it.
pub const HEADER_SIZE: usize = 64;

/// Chunks grow from this many slots, doubling up to `CHUNK_MAX_BYTES`.
const FIRST_CHUNK_SLOTS: usize = 64;
const CHUNK_MAX_BYTES: usize = 1 << 30;

/// Capacity of the lock-free registry the overflow handler reads.
const MAX_CHUNKS: usize = 8192;

/// How guard regions are made.
///
/// ```
/// use corun_stacks::{GuardMode, guard_mode};
///
/// // Linux >= 6.13 installs guards without splitting the mapping.
/// assert!(matches!(guard_mode(), GuardMode::Madvise | GuardMode::Mprotect));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardMode {
    /// `madvise(MADV_GUARD_INSTALL)`: the mapping is not split (Linux >= 6.13).
    Madvise,
    /// `mprotect(PROT_NONE)`: each guard adds two mappings, bounded by
    /// `vm.max_map_count`.
    Mprotect,
}

const MODE_UNSET: u8 = 0;
const MODE_MADVISE: u8 = 1;
const MODE_MPROTECT: u8 = 2;
static GUARD_MODE: AtomicU8 = AtomicU8::new(MODE_UNSET);

/// Mappings this process may still create for mprotect guards.
static MPROTECT_BUDGET: AtomicUsize = AtomicUsize::new(0);

/// Mappings kept free for everything else in the process (malloc arenas,
/// thread stacks, files) when counting against `vm.max_map_count`.
const MAP_HEADROOM: usize = 4096;

/// Forces a guard mode before any stack exists. `CORUN_STACK_GUARD=mprotect`
/// does the same from the environment. Returns the mode in force: a mode is
/// fixed once the first guard is installed.
///
/// ```
/// use corun_stacks::{GuardMode, Stack, set_guard_mode};
///
/// // Before the first stack: choose the portable mode.
/// assert_eq!(set_guard_mode(GuardMode::Mprotect), GuardMode::Mprotect);
/// let _s = Stack::new(32 * 1024).unwrap();
/// // Too late to change it now.
/// assert_eq!(set_guard_mode(GuardMode::Madvise), GuardMode::Mprotect);
/// ```
pub fn set_guard_mode(mode: GuardMode) -> GuardMode {
    let want = match mode {
        GuardMode::Madvise => MODE_MADVISE,
        GuardMode::Mprotect => {
            init_mprotect_budget();
            MODE_MPROTECT
        }
    };
    let _ = GUARD_MODE.compare_exchange(MODE_UNSET, want, Ordering::AcqRel, Ordering::Acquire);
    guard_mode()
}

/// The guard mode in force (decided at the first guard installation).
///
/// ```
/// let mode = corun_stacks::guard_mode();
/// assert_eq!(corun_stacks::stats().guard_mode, mode);
/// ```
pub fn guard_mode() -> GuardMode {
    match GUARD_MODE.load(Ordering::Acquire) {
        MODE_MPROTECT => GuardMode::Mprotect,
        MODE_MADVISE => GuardMode::Madvise,
        _ => {
            let forced = std::env::var("CORUN_STACK_GUARD").is_ok_and(|v| v == "mprotect");
            if forced {
                set_guard_mode(GuardMode::Mprotect)
            } else {
                GuardMode::Madvise
            }
        }
    }
}

fn init_mprotect_budget() {
    let limit = os::read_sysctl("/proc/sys/vm/max_map_count").unwrap_or(65530);
    let used = os::count_mappings();
    let budget = limit.saturating_sub(used + MAP_HEADROOM);
    MPROTECT_BUDGET.store(budget, Ordering::Release);
}

fn install_guard(base: usize) -> io::Result<()> {
    if guard_mode() == GuardMode::Madvise {
        match os::guard_install(base, guard_size()) {
            Ok(()) => {
                let _ = GUARD_MODE.compare_exchange(
                    MODE_UNSET,
                    MODE_MADVISE,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return Ok(());
            }
            // Kernels before 6.13 answer EINVAL: fall back for good.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                set_guard_mode(GuardMode::Mprotect);
                if guard_mode() == GuardMode::Madvise {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    // A guard in the middle of a mapping splits it into two more entries.
    let took =
        MPROTECT_BUDGET.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(2));
    if took.is_err() {
        let limit = os::read_sysctl("/proc/sys/vm/max_map_count").unwrap_or(65530);
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!(
                "corun: cannot guard another stack: this kernel lacks MADV_GUARD_INSTALL, so each \
                 guard costs two memory mappings and vm.max_map_count = {limit} is nearly used up \
                 ({} mappings); raise it (sysctl -w vm.max_map_count=...) or run fewer coroutines",
                os::count_mappings()
            ),
        ));
    }
    os::protect_none(base, guard_size())
}

struct ChunkEntry {
    base: AtomicUsize,
    len: AtomicUsize,
    slot: AtomicUsize,
}

static CHUNKS: [ChunkEntry; MAX_CHUNKS] = [const {
    ChunkEntry {
        base: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        slot: AtomicUsize::new(0),
    }
}; MAX_CHUNKS];
static CHUNK_COUNT: AtomicUsize = AtomicUsize::new(0);
static RESERVED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of address space reserved by all arenas.
pub fn reserved_bytes() -> usize {
    RESERVED_BYTES.load(Ordering::Relaxed)
}

/// What the overflow handler learns about a faulting address.
#[derive(Clone, Copy, Debug)]
pub struct GuardHit {
    /// Top of the slot whose guard was hit (its header sits just below).
    pub slot_top: usize,
    /// Usable bytes of that slot's stack.
    pub stack_size: usize,
}

/// Finds the slot whose guard contains `addr`. Lock-free and allocation-free:
/// callable from a signal handler.
pub fn find_guard(addr: usize) -> Option<GuardHit> {
    let n = CHUNK_COUNT.load(Ordering::Acquire).min(MAX_CHUNKS);
    for entry in &CHUNKS[..n] {
        let base = entry.base.load(Ordering::Relaxed);
        let len = entry.len.load(Ordering::Relaxed);
        if addr < base || addr >= base + len {
            continue;
        }
        let slot = entry.slot.load(Ordering::Relaxed);
        let slot_base = base + (addr - base) / slot * slot;
        let guard = guard_size();
        if addr - slot_base < guard {
            return Some(GuardHit {
                slot_top: slot_base + slot,
                stack_size: slot - guard,
            });
        }
        return None;
    }
    None
}

/// Visits every chunk as `(base, len)`; used to sample resident memory.
pub fn for_each_chunk(mut f: impl FnMut(usize, usize)) {
    let n = CHUNK_COUNT.load(Ordering::Acquire).min(MAX_CHUNKS);
    for entry in &CHUNKS[..n] {
        f(
            entry.base.load(Ordering::Relaxed),
            entry.len.load(Ordering::Relaxed),
        );
    }
}

/// A slot from [`SlotAllocator::carve`].
#[derive(Debug)]
pub enum Carved {
    /// The slot's top; its guard is in place.
    Guarded(usize),
    /// A new slot with no guard yet: its base and its top.
    Unguarded { base: usize, top: usize },
}

impl Carved {
    /// Installs the guard of an unguarded slot and returns the slot's top.
    /// Callable without the pool lock: the slot is the caller's until it is
    /// handed out. On failure the slot is still unguarded.
    pub fn guard(&self) -> io::Result<usize> {
        match *self {
            Carved::Guarded(top) => Ok(top),
            Carved::Unguarded { base, top } => install_guard(base).map(|()| top),
        }
    }
}

/// Hands out slots of one usable size. Owned by the pool under its lock.
pub struct SlotAllocator {
    size: usize,
    slot: usize,
    bump: usize,
    bump_end: usize,
    next_chunk_slots: usize,
    free: Vec<usize>,
    /// Carved slots whose guard installation failed, to be retried.
    unguarded: Vec<usize>,
}

impl SlotAllocator {
    /// An allocator for stacks of `size` usable bytes (page-rounded).
    pub fn new(size: usize) -> Self {
        SlotAllocator {
            size,
            slot: size + guard_size(),
            bump: 0,
            bump_end: 0,
            next_chunk_slots: FIRST_CHUNK_SLOTS,
            free: Vec::new(),
            unguarded: Vec::new(),
        }
    }

    /// Bytes from one slot top to the next.
    pub fn slot_size(&self) -> usize {
        self.slot
    }

    /// Slots whose pages were given back and can be handed out again.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// Takes a slot. A slot handed out before comes back with its guard in
    /// place; a new one is `Carved::Unguarded`, and the caller installs its
    /// guard with [`Carved::guard`] after dropping the pool lock (a system call of
    /// ~0.7 us that two threads taking new stacks need not take in turn).
    pub fn carve(&mut self) -> io::Result<Carved> {
        if let Some(top) = self.free.pop() {
            return Ok(Carved::Guarded(top));
        }
        if let Some(base) = self.unguarded.pop() {
            return Ok(Carved::Unguarded {
                base,
                top: base + self.slot,
            });
        }
        if self.bump == self.bump_end {
            self.new_chunk()?;
        }
        let base = self.bump;
        self.bump += self.slot;
        Ok(Carved::Unguarded {
            base,
            top: base + self.slot,
        })
    }

    /// Takes back a slot from [`carve`](Self::carve) whose guard could not
    /// be installed, so the next carve tries again.
    pub fn return_unguarded(&mut self, carved: Carved) {
        if let Carved::Unguarded { base, .. } = carved {
            self.unguarded.push(base);
        }
    }

    /// Takes back slots whose pages the caller has already released.
    pub fn free_released(&mut self, tops: impl IntoIterator<Item = usize>) {
        self.free.extend(tops);
    }

    fn new_chunk(&mut self) -> io::Result<()> {
        let max_slots = (CHUNK_MAX_BYTES / self.slot).max(1);
        let mut slots = self.next_chunk_slots.min(max_slots);
        let index = CHUNK_COUNT.load(Ordering::Acquire);
        if index >= MAX_CHUNKS {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("corun: stack arenas exhausted ({MAX_CHUNKS} chunks reserved)"),
            ));
        }
        // Chunks double in size; when the next one does not fit (a limit on
        // address space, strict overcommit) a smaller one may: refuse only
        // when not even one slot can be reserved.
        let (base, len) = loop {
            let len = slots * self.slot;
            match os::reserve(len) {
                Ok(base) => break (base, len),
                Err(_) if slots > 1 => slots /= 2,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "corun: cannot reserve {len} bytes of address space for stacks: {e}"
                        ),
                    ));
                }
            }
        };
        // Only the pool lock holder appends, so `index` is still the next entry.
        let entry = &CHUNKS[index];
        entry.base.store(base, Ordering::Relaxed);
        entry.len.store(len, Ordering::Relaxed);
        entry.slot.store(self.slot, Ordering::Relaxed);
        CHUNK_COUNT.store(index + 1, Ordering::Release);
        RESERVED_BYTES.fetch_add(len, Ordering::Relaxed);
        self.bump = base;
        self.bump_end = base + len;
        self.next_chunk_slots = (slots * 2).min(max_slots);
        Ok(())
    }

    /// Usable size of the stacks this allocator hands out.
    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_whose_guard_failed_is_carved_again_not_leaked() {
        let mut alloc = SlotAllocator::new(64 * 1024);
        let Carved::Unguarded { base, top } = alloc.carve().unwrap() else {
            panic!("a new allocator hands out new, unguarded slots");
        };
        assert_eq!(top - base, alloc.slot_size());
        // As the pool does when installing the guard failed.
        alloc.return_unguarded(Carved::Unguarded { base, top });
        match alloc.carve().unwrap() {
            Carved::Unguarded { base: again, .. } => assert_eq!(again, base),
            Carved::Guarded(_) => panic!("an unguarded slot came back as guarded"),
        }
        // A guarded slot is not the allocator's to take back this way.
        alloc.return_unguarded(Carved::Guarded(top));
        let Carved::Unguarded { base: next, .. } = alloc.carve().unwrap() else {
            panic!("a guarded slot was handed out as if returned");
        };
        assert_eq!(next, base + alloc.slot_size());
    }

    #[test]
    fn guards_are_whole_pages_on_any_page_size() {
        for page in [4096, 16 * 1024, 64 * 1024] {
            let guard = guard_size_for(page);
            assert!(guard >= GUARD_SIZE);
            assert_eq!(guard % page, 0, "{page}-byte pages");
        }
    }
}
