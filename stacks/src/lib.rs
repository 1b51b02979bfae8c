//! corun-stacks: the stacks coroutines run on, and the switch between them.
//!
//! # Design
//!
//! A coroutine stack is a slot in a large `MAP_NORESERVE` arena. Reserving
//! address space costs nothing physical: the kernel commits a page the first
//! time it is touched, so a stack "grows" up to its reservation with no
//! copying, the growth Go gets by copying stacks, obtained from the MMU. A
//! parked coroutine that used 3 KiB of stack costs one resident page.
//!
//! Every slot has a guard at its low end. On Linux >= 6.13 the guard is
//! installed with `madvise(MADV_GUARD_INSTALL)`, which marks page-table
//! entries instead of splitting the mapping: a million guarded stacks cost a
//! handful of mappings. Older kernels fall back to `mprotect(PROT_NONE)`,
//! where each guard costs two mappings, so the arena counts them against
//! `vm.max_map_count` and refuses with a clear error before the kernel would.
//!
//! A fault in a guard is caught by a SIGSEGV/SIGBUS handler on an alternate
//! signal stack, which prints which coroutine overflowed (from a label in the
//! slot's header) and aborts. Faults elsewhere go to the previous handler.
//!
//! Finished stacks return to a per-thread cache, then a bounded global pool;
//! pages below a hot window at the top are given back in batches so RSS falls
//! after a burst while recycled stacks start without page faults.
//!
//! [`grow`] runs a closure on a fresh segment when the current stack runs
//! low, for recursion deeper than any sensible reservation.
//!
//! [`fiber`] is the context switch: corosensei coroutines on these stacks.
//!
//! # Invariants
//!
//! - A slot is owned by at most one [`Stack`] value at a time; the pool holds
//!   slots only while no `Stack` for them exists.
//! - A slot's guard is installed before the slot is first handed out and is
//!   never removed.
//! - Pages are released only for slots in the pool, never for a slot in use.
//!
//! ```
//! use corun_stacks::{Stack, fiber::{Fiber, Resumed, suspend}};
//!
//! let stack = Stack::new(64 * 1024).unwrap(); // guarded, lazily committed
//! let mut fiber = Fiber::new(stack, || {
//!     suspend(1);
//!     suspend(2);
//! });
//! assert_eq!(fiber.resume(), Resumed::Suspended(1));
//! assert_eq!(fiber.resume(), Resumed::Suspended(2));
//! assert_eq!(fiber.resume(), Resumed::Finished);
//! drop(fiber.into_stack()); // back to the pool
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod arena;
pub mod fiber;
mod grow;
mod label;
mod os;
mod overflow;
mod pool;

use std::io;

pub use arena::{GUARD_SIZE, GuardMode, guard_mode, set_guard_mode};
pub use grow::{grow, remaining_stack};
pub use overflow::{ensure_altstack, install as install_overflow_handler};
pub use pool::{HOT_WINDOW, trim};

/// Smallest accepted stack size.
///
/// ```
/// use corun_stacks::{MIN_STACK_SIZE, validate_size};
///
/// assert!(validate_size(MIN_STACK_SIZE).is_ok());
/// assert!(validate_size(MIN_STACK_SIZE - 1).is_err());
/// ```
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Largest accepted stack size.
///
/// ```
/// use corun_stacks::{MAX_STACK_SIZE, validate_size};
///
/// let err = validate_size(MAX_STACK_SIZE + 1).unwrap_err();
/// assert!(err.to_string().contains("not accepted"), "{err}");
/// ```
pub const MAX_STACK_SIZE: usize = 1 << 30;
/// The default stack reservation; `docs/stacks.md` explains the choice.
///
/// ```
/// // Reserved address space, not memory: pages are committed as touched.
/// let stack = corun_stacks::Stack::new(corun_stacks::DEFAULT_STACK_SIZE).unwrap();
/// assert_eq!(stack.size(), corun_stacks::DEFAULT_STACK_SIZE);
/// ```
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Checks a requested stack size and rounds it up to whole pages.
///
/// ```
/// assert_eq!(corun_stacks::validate_size(20_000).unwrap(), 20_480);
/// assert!(corun_stacks::validate_size(1024).is_err());
/// ```
pub fn validate_size(size: usize) -> io::Result<usize> {
    if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "corun: a stack size of {size} bytes is not accepted: sizes from 16 KiB to 1 GiB \
                 are (set with corun::Builder::stack_size or CORUN_STACK_SIZE)"
            ),
        ));
    }
    let page = os::page_size();
    Ok(size.div_ceil(page) * page)
}

/// A guarded, lazily committed stack from the pool. Dropping it returns it.
///
/// ```
/// use corun_stacks::Stack;
///
/// let a = Stack::new(64 * 1024).unwrap();
/// let top = a.top();
/// drop(a); // back to this thread's cache...
/// let b = Stack::new(64 * 1024).unwrap();
/// assert_eq!(b.top(), top, "...and reused by the next request of that size");
/// ```
#[derive(Debug)]
pub struct Stack {
    top: usize,
    size: usize,
}

impl Stack {
    /// Takes a stack with at least `size` usable bytes (see
    /// [`validate_size`]), from the calling thread's cache when it can.
    ///
    /// ```
    /// let s = corun_stacks::Stack::new(20_000).unwrap();
    /// assert_eq!(s.size(), 20_480, "rounded up to whole pages");
    /// assert!(corun_stacks::Stack::new(1 << 40).is_err(), "refused with a message");
    /// ```
    pub fn new(size: usize) -> io::Result<Stack> {
        let size = validate_size(size)?;
        overflow::install();
        let top = pool::acquire(size)?;
        Ok(Stack { top, size })
    }

    /// Usable bytes (page-rounded, excluding the guard).
    ///
    /// ```
    /// let s = corun_stacks::Stack::new(128 * 1024).unwrap();
    /// assert_eq!(s.size(), s.top() - s.bottom());
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// One past the highest byte of the slot.
    ///
    /// ```
    /// let s = corun_stacks::Stack::new(32 * 1024).unwrap();
    /// assert_eq!(s.top() % 4096, 0, "slot tops are page-aligned");
    /// ```
    pub fn top(&self) -> usize {
        self.top
    }

    /// The lowest usable byte, just above the guard.
    ///
    /// ```
    /// let s = corun_stacks::Stack::new(32 * 1024).unwrap();
    /// assert!(s.bottom() < s.top());
    /// // The guard (GUARD_SIZE bytes, or a page where pages are larger)
    /// // lies just below `bottom`.
    /// assert_eq!(s.bottom() % 4096, 0);
    /// ```
    pub fn bottom(&self) -> usize {
        self.top - self.size
    }

    /// Records the owner named in the overflow report.
    ///
    /// ```
    /// let mut s = corun_stacks::Stack::new(32 * 1024).unwrap();
    /// // An overflow on this stack will now be reported as
    /// // "coroutine 7 "parser" has overflowed its stack".
    /// s.set_label(7, "parser");
    /// ```
    pub fn set_label(&mut self, id: u64, name: &str) {
        // SAFETY: we own the slot while this `Stack` exists.
        unsafe { label::Label::write(self.top, id, name, false) };
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: we still own the slot; a stale label must not name the
        // next owner's overflow.
        unsafe { label::Label::clear(self.top) };
        pool::release(self.top, self.size);
    }
}

// SAFETY: `base` is the slot top minus the header, 16-byte aligned because
// slot tops are page-aligned and the header is 64 bytes. `limit` is the slot
// base, which includes the guard, as the trait requires; the usable part is
// at least MIN_STACK_SIZE bytes.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top - arena::HEADER_SIZE).expect("non-null")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top - self.size - arena::guard_size())
            .expect("non-null")
    }
}

/// Counts and bytes of the stack pools.
///
/// ```
/// let before = corun_stacks::stats();
/// let s = corun_stacks::Stack::new(48 * 1024).unwrap();
/// let during = corun_stacks::stats();
/// assert!(during.reserved_bytes >= 48 * 1024);
/// drop(s);
/// assert_eq!(before.guard_mode, during.guard_mode);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Stacks held by a `Stack` value (running, parked or otherwise in use).
    pub in_use: usize,
    /// Stacks in the thread caches and the global pool, ready for reuse.
    pub pooled: usize,
    /// Slots whose pages were all given back, ready for reuse.
    pub free_slots: usize,
    /// Address space reserved by the arenas (virtual, not resident).
    pub reserved_bytes: usize,
    /// How guards are installed.
    pub guard_mode: GuardMode,
}

/// Current counts. Cheap: a few atomic loads and one short lock.
///
/// ```
/// let s = corun_stacks::Stack::new(32 * 1024).unwrap();
/// assert!(corun_stacks::stats().in_use >= 1);
/// drop(s);
/// ```
pub fn stats() -> Stats {
    let (in_use, pooled, free_slots) = pool::counts();
    Stats {
        in_use,
        pooled,
        free_slots,
        reserved_bytes: arena::reserved_bytes(),
        guard_mode: guard_mode(),
    }
}

/// Resident bytes of all stack arenas, sampled now with `mincore(2)`: exact
/// at the time of the call, and it costs a system call per 16 MiB reserved.
///
/// ```
/// use corun_stacks::{Stack, resident_bytes};
///
/// let s = Stack::new(1 << 20).unwrap();
/// let fiber = corun_stacks::fiber::Fiber::new(s, || {
///     let big = [1u8; 256 * 1024]; // touch 256 KiB of the stack
///     std::hint::black_box(&big);
/// });
/// let mut fiber = fiber;
/// fiber.resume();
/// // Resident memory is counted page by page (mincore), not estimated.
/// assert!(resident_bytes().unwrap() >= 256 * 1024);
/// ```
pub fn resident_bytes() -> io::Result<usize> {
    let mut pages = 0;
    let mut err = None;
    arena::for_each_chunk(|base, len| match os::resident_pages(base, len) {
        Ok(n) => pages += n,
        Err(e) => err = Some(e),
    });
    match err {
        Some(e) => Err(e),
        None => Ok(pages * os::page_size()),
    }
}
