//! Task memory: size-classed blocks carved from large chunks, recycled
//! through per-thread free lists and a global pool of batches.
//!
//! Every spawn allocates a task (a few hundred bytes) and every finished,
//! released coroutine frees one, often on another thread. Through glibc's
//! allocator that pair costs ~400 instructions, and with hundreds of
//! thousands of tasks live its per-thread arenas grow and trim their heaps
//! page by page (tens of thousands of `mprotect` calls in one skynet run).
//! Go keeps dead Gs on free lists for reuse; this does the same for task
//! memory.
//!
//! Blocks come in size classes of `CLASS_BYTES`, up to `MAX_CACHED`
//! (larger or over-aligned tasks use the global allocator). A thread takes
//! blocks from its own free list, else a batch from the global pool, else
//! from its current chunk (a bump pointer), else a fresh `CHUNK_BYTES`
//! chunk. A freed block goes onto the freeing thread's list; beyond
//! `LOCAL_MAX` a batch of `BATCH` moves to the global pool (one lock per
//! batch). A thread's lists and unused chunk tail go to the pool when it
//! exits.
//!
//! A chunk's pages are committed 64 KiB at a time as the bump pointer
//! reaches them (`commit_ahead`), cheaper than a page fault each.
//!
//! Chunks are never returned: task memory stays at its peak for reuse, as
//! Go keeps its G structures. A program that once held a million tasks
//! keeps their ~250 MB (the stacks, the big part, are trimmed by the stack
//! pool). [`retained_bytes`] reports it.
//!
//! Invariant: a free block is owned by exactly one list (one thread's or
//! one batch in the pool) and its first word links it to the next block of
//! that list; a block handed out is owned by its task until deallocated.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ptr::{self, NonNull};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

const CLASS_BYTES: usize = 32;
const CLASSES: usize = 32;
/// Largest task served from chunks.
const MAX_CACHED: usize = CLASS_BYTES * CLASSES;
/// Alignment of every block (classes are multiples of it).
const ALIGN: usize = 16;
const CHUNK_BYTES: usize = 256 * 1024;
/// Chunk bytes committed at once ahead of the bump pointer: enough to
/// amortise the system call (16 KiB windows gained nothing), little enough
/// that a thread which carves a few tasks of a class commits 64 KiB, not
/// the whole chunk.
const COMMIT_BYTES: usize = 64 * 1024;
const LOCAL_MAX: usize = 256;
const BATCH: usize = 128;

static RETAINED: AtomicUsize = AtomicUsize::new(0);

/// Bytes of chunks carved for task memory so far (never returned).
pub(crate) fn retained_bytes() -> usize {
    RETAINED.load(Ordering::Relaxed)
}

/// A free block's link to the next block of its list.
struct Free {
    next: *mut Free,
}

/// A singly linked list of free blocks of one class.
struct List {
    head: *mut Free,
    len: usize,
}

// SAFETY: a list owns its blocks exclusively (module invariant); moving it
// to another thread moves that ownership.
unsafe impl Send for List {}

impl List {
    const EMPTY: List = List {
        head: ptr::null_mut(),
        len: 0,
    };

    /// # Safety
    /// `block` is a free block of this list's class, owned by the caller.
    unsafe fn push(&mut self, block: NonNull<u8>) {
        let free = block.cast::<Free>().as_ptr();
        // SAFETY: blocks are at least `CLASS_BYTES` long and `ALIGN`ed, so
        // the link fits; the caller hands the block over.
        unsafe { free.write(Free { next: self.head }) };
        self.head = free;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<NonNull<u8>> {
        let free = NonNull::new(self.head)?;
        // SAFETY: blocks in the list are free and hold their link.
        self.head = unsafe { free.as_ref().next };
        self.len -= 1;
        Some(free.cast())
    }

    /// Detaches `n` blocks (or all) from the front as a list of their own.
    fn split_off(&mut self, n: usize) -> List {
        let mut out = List::EMPTY;
        while out.len < n {
            match self.pop() {
                // SAFETY: moved from one list of the class to another.
                Some(b) => unsafe { out.push(b) },
                None => break,
            }
        }
        out
    }
}

/// The unused tail of a thread's current chunk for one class: offsets
/// into the chunk, whose pointer every block is derived from (so a block
/// keeps the chunk's provenance, and Miri can check accesses to it).
#[derive(Clone, Copy)]
struct Bump {
    chunk: *mut u8,
    next: usize,
    end: usize,
    /// Up to here the chunk's pages are committed (see `commit_ahead`).
    committed: usize,
}

/// Commits the pages of `[addr, addr + len)`, part of a chunk about to be
/// carved into blocks, with one system call instead of a page fault each:
/// a million live tasks fill ~60k pages, and on a VM a fault costs
/// 1.8-2.3 us a page against 1.3 us populated 64 KiB at a time (C loops
/// on the Intel VM the reports first ran on; 1.2-1.35 against 1.15-1.2
/// on the AMD one they run on now). Best effort: an older kernel that
/// refuses leaves the pages to fault in as before. Skipped under Miri,
/// which cannot run `madvise`; the hint changes no byte, so nothing it
/// checks is lost.
fn commit_ahead(addr: *mut u8, len: usize) {
    #[cfg(all(target_os = "linux", not(miri)))]
    // SAFETY: the range lies inside a chunk this thread allocated and has
    // not handed out yet; `MADV_POPULATE_WRITE` only faults its pages in
    // (as writes of nothing), it does not change any byte.
    unsafe {
        libc::madvise(addr.cast(), len, libc::MADV_POPULATE_WRITE);
    }
    #[cfg(any(not(target_os = "linux"), miri))]
    let _ = (addr, len);
}

static POOL: [Mutex<Vec<List>>; CLASSES] = [const { Mutex::new(Vec::new()) }; CLASSES];

fn give_to_pool(class: usize, list: List) {
    // Pushing a list cannot leave the vector half updated, so a poisoned
    // lock is still consistent.
    let mut pool = POOL[class].lock().unwrap_or_else(|e| e.into_inner());
    pool.push(list);
}

fn take_from_pool(class: usize) -> Option<List> {
    POOL[class].lock().unwrap_or_else(|e| e.into_inner()).pop()
}

struct Local {
    lists: [List; CLASSES],
    bumps: [Bump; CLASSES],
}

impl Local {
    const EMPTY: Local = Local {
        lists: [const { List::EMPTY }; CLASSES],
        bumps: [Bump {
            chunk: ptr::null_mut(),
            next: 0,
            end: 0,
            committed: 0,
        }; CLASSES],
    };

    fn allocate(&mut self, class: usize) -> Option<NonNull<u8>> {
        if let Some(b) = self.lists[class].pop() {
            return Some(b);
        }
        if let Some(batch) = take_from_pool(class) {
            self.lists[class] = batch;
            return self.lists[class].pop();
        }
        let size = (class + 1) * CLASS_BYTES;
        let bump = &mut self.bumps[class];
        if bump.end - bump.next < size {
            let layout = Layout::from_size_align(CHUNK_BYTES, 4096).expect("chunk layout");
            // SAFETY: the layout has a non-zero size.
            let chunk = unsafe { alloc::alloc(layout) };
            if chunk.is_null() {
                return None;
            }
            RETAINED.fetch_add(CHUNK_BYTES, Ordering::Relaxed);
            // The old tail (smaller than one block) is given up.
            *bump = Bump {
                chunk,
                next: 0,
                end: CHUNK_BYTES,
                committed: 0,
            };
        }
        // SAFETY: `next + size <= end`, the chunk's size: in bounds.
        let block = unsafe { bump.chunk.add(bump.next) };
        bump.next += size;
        if bump.next > bump.committed {
            // A block is far smaller than a window, so one window covers it.
            let to = (bump.committed + COMMIT_BYTES).min(bump.end);
            // SAFETY: `committed < next <= end`: in bounds.
            commit_ahead(
                unsafe { bump.chunk.add(bump.committed) },
                to - bump.committed,
            );
            bump.committed = to;
        }
        NonNull::new(block)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        for class in 0..CLASSES {
            let mut list = std::mem::replace(&mut self.lists[class], List::EMPTY);
            let size = (class + 1) * CLASS_BYTES;
            let bump = &mut self.bumps[class];
            while bump.end - bump.next >= size {
                // SAFETY: an unused, aligned block of this class in a chunk
                // only this thread carves from (in bounds: `next + size <=
                // end`, so the chunk is not null either).
                unsafe { list.push(NonNull::new_unchecked(bump.chunk.add(bump.next))) };
                bump.next += size;
            }
            if list.len > 0 {
                give_to_pool(class, list);
            }
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local::EMPTY) };
}

fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() > 0 && layout.size() <= MAX_CACHED && layout.align() <= ALIGN)
        .then(|| layout.size().div_ceil(CLASS_BYTES) - 1)
}

/// Allocates memory for a task of `layout`; null if out of memory.
///
/// # Safety
/// As for [`std::alloc::alloc`]: `layout` has a non-zero size.
// Not inlined, like every accessor of the runtime's thread-locals (see
// `tls`): no switch happens inside, so the thread's cache cannot change
// under it.
#[inline(never)]
pub(crate) unsafe fn allocate(layout: Layout) -> *mut u8 {
    let Some(class) = class_of(layout) else {
        // SAFETY: the caller's contract.
        return unsafe { alloc::alloc(layout) };
    };
    let block = LOCAL
        .try_with(|l| l.borrow_mut().allocate(class))
        .unwrap_or_else(|_| {
            // This thread is exiting and its cache is gone: take a batch
            // from the pool, or carve from a chunk of our own (its tail goes
            // to the pool when this temporary cache is dropped).
            let mut temporary = Local::EMPTY;
            temporary.allocate(class)
        });
    block.map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// Frees memory from [`allocate`] for reuse.
///
/// # Safety
/// `ptr` came from [`allocate`] with the same `layout` and is not used
/// again.
#[inline(never)]
pub(crate) unsafe fn deallocate(ptr: NonNull<u8>, layout: Layout) {
    let Some(class) = class_of(layout) else {
        // SAFETY: allocated directly with this layout, per the contract.
        unsafe { alloc::dealloc(ptr.as_ptr(), layout) };
        return;
    };
    let kept = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let list = &mut l.lists[class];
        // SAFETY: a block of this class, handed back by its owner.
        unsafe { list.push(ptr) };
        if list.len > LOCAL_MAX {
            let batch = list.split_off(BATCH);
            drop(l);
            give_to_pool(class, batch);
        }
    });
    if kept.is_err() {
        // The thread is exiting and its cache is gone: pool the block.
        let mut one = List::EMPTY;
        // SAFETY: as above.
        unsafe { one.push(ptr) };
        give_to_pool(class, one);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    // Each test uses a size class no task of the other tests running in
    // parallel falls into, so the blocks it sees are its own.

    /// Blocks as pointers, not addresses, so that Miri checks what is done
    /// with them; owned by whoever holds the vector.
    struct Blocks(Vec<NonNull<u8>>);

    // SAFETY: the blocks are plain memory owned by the vector's holder.
    unsafe impl Send for Blocks {}

    fn alloc_n(layout: Layout, n: usize) -> Blocks {
        // SAFETY: non-zero sizes; callers free every block once.
        Blocks(
            (0..n)
                .map(|_| NonNull::new(unsafe { allocate(layout) }).expect("allocated"))
                .collect(),
        )
    }

    fn free_all(layout: Layout, blocks: Blocks) {
        for p in blocks.0 {
            // SAFETY: allocated by `alloc_n` with this layout, freed once.
            unsafe { deallocate(p, layout) };
        }
    }

    /// As many new blocks as were freed all come from the freed ones.
    fn assert_served_from(layout: Layout, freed: &HashSet<usize>) {
        let again = alloc_n(layout, freed.len());
        assert!(
            again.0.iter().all(|p| freed.contains(&p.addr().get())),
            "freed blocks are reused"
        );
        free_all(layout, again);
    }

    #[test]
    fn blocks_do_not_overlap_and_are_reused() {
        let layout = Layout::from_size_align(1000, 8).unwrap();
        let a = alloc_n(layout, if cfg!(miri) { 20 } else { 2000 });
        let mut sorted: Vec<usize> = a.0.iter().map(|p| p.addr().get()).collect();
        sorted.sort_unstable();
        assert!(
            sorted.windows(2).all(|w| w[1] - w[0] >= 1024),
            "blocks overlap"
        );
        for (i, p) in a.0.iter().enumerate() {
            assert_eq!(p.addr().get() % ALIGN, 0);
            // SAFETY: a writable block of at least 1000 bytes.
            unsafe { ptr::write_bytes(p.as_ptr(), i as u8, 1000) };
        }
        for (i, p) in a.0.iter().enumerate() {
            // SAFETY: as above, written just before.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 1000) };
            assert!(
                bytes.iter().all(|b| *b == i as u8),
                "block {i} was overwritten"
            );
        }
        let freed = sorted.into_iter().collect();
        free_all(layout, a);
        assert_served_from(layout, &freed);
    }

    #[test]
    fn blocks_freed_on_an_exiting_thread_come_back() {
        let layout = Layout::from_size_align(900, 16).unwrap();
        // Enough to overflow a thread's list (`LOCAL_MAX`) into the pool.
        let blocks = alloc_n(layout, if cfg!(miri) { 300 } else { 5000 });
        let freed: HashSet<_> = blocks.0.iter().map(|p| p.addr().get()).collect();
        std::thread::spawn(move || free_all(layout, blocks))
            .join()
            .unwrap();
        // The other thread pooled what overflowed its list, and the rest
        // when it exited.
        assert_served_from(layout, &freed);
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[cfg_attr(miri, ignore = "calls mincore, and Miri skips the madvise it checks")]
    fn a_fresh_chunk_is_committed_a_window_ahead() {
        // A new thread has no list or chunk of this class: its first block
        // starts a chunk, and the window after it is committed at once.
        // (Checked before the thread exits: exiting links up the chunk's
        // unused tail, which touches it.)
        let (block, resident) = std::thread::spawn(|| {
            let layout = Layout::from_size_align(800, 16).unwrap();
            let blocks = alloc_n(layout, 1);
            let block = blocks.0[0].as_ptr();
            let mut resident = vec![0u8; COMMIT_BYTES / 4096];
            // SAFETY: the range is inside the chunk just carved (256 KiB,
            // never returned), and the vector has a byte per page of it.
            let r = unsafe { libc::mincore(block.cast(), COMMIT_BYTES, resident.as_mut_ptr()) };
            assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
            free_all(layout, blocks);
            (block.addr(), resident)
        })
        .join()
        .unwrap();
        assert_eq!(block % 4096, 0, "a chunk starts on a page");
        assert!(
            resident.iter().all(|b| b & 1 != 0),
            "every page of the window is resident: {resident:?}"
        );
    }

    #[test]
    fn big_and_over_aligned_tasks_use_the_allocator() {
        assert_eq!(
            class_of(Layout::from_size_align(MAX_CACHED + 1, 8).unwrap()),
            None
        );
        assert_eq!(class_of(Layout::from_size_align(64, 64).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(33, 8).unwrap()), Some(1));
        let layout = Layout::from_size_align(4096, 8).unwrap();
        free_all(layout, alloc_n(layout, 3));
    }
}
