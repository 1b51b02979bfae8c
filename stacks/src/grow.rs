//! Segmented growth beyond a stack's reservation, for deep recursion.
//!
//! [`grow`] compares the stack pointer with the limit of the stack the caller
//! runs on (a coroutine's slot, an earlier segment, or the thread's own
//! stack) and, when less than `red_zone` bytes remain, runs the closure on a
//! fresh segment taken from the pool. Segments are ordinary pooled stacks
//! with guards, so an overflow inside one is reported like any other.

use crate::fiber::{current_ctx, set_bounds};
use crate::label::Label;
use crate::{MAX_STACK_SIZE, MIN_STACK_SIZE, Stack};

/// Bytes left on the current stack below the caller's frame, if known.
///
/// Known on fibers, on segments and on threads whose bounds `pthread` reports.
///
/// ```
/// use corun_stacks::{Stack, fiber::Fiber, remaining_stack};
///
/// let mut f = Fiber::new(Stack::new(64 * 1024).unwrap(), || {
///     let left = remaining_stack().unwrap();
///     assert!(left > 32 * 1024 && left < 64 * 1024);
/// });
/// f.resume();
/// assert!(remaining_stack().is_some(), "the main thread's bounds are known too");
/// ```
#[inline(never)]
pub fn remaining_stack() -> Option<usize> {
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    let limit = match current_ctx().limit {
        0 => {
            let limit = thread_stack_limit()?;
            set_bounds(limit, 0);
            limit
        }
        limit => limit,
    };
    Some(sp.saturating_sub(limit))
}

/// Runs `f` on a fresh segment of `segment_size` bytes when less than
/// `red_zone` bytes remain on the current stack, otherwise runs it in place.
///
/// Works on coroutine stacks and on plain threads. Panics in `f` propagate.
/// Call it at the top of a recursive function (as rustc does through
/// `stacker`) so that every recursion step checks once:
///
/// ```
/// fn depth(n: u64) -> u64 {
///     corun_stacks::grow(64 * 1024, 1 << 20, || if n == 0 { 0 } else { 1 + depth(n - 1) })
/// }
/// assert_eq!(depth(100_000), 100_000);
/// ```
///
/// # Panics
/// If `red_zone` is not smaller than `segment_size`, if `segment_size` is
/// outside 16 KiB..=1 GiB, or if no segment can be mapped.
pub fn grow<R, F: FnOnce() -> R>(red_zone: usize, segment_size: usize, f: F) -> R {
    // Checked on every call, not only when a segment is taken: a bad size
    // must show up where the stack is shallow too (in tests), not only
    // deep in a recursion.
    assert!(
        red_zone < segment_size && (MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&segment_size),
        "corun: grow(red_zone = {red_zone}, segment_size = {segment_size}): the red zone must be \
         smaller than the segment, and segments from 16 KiB to 1 GiB"
    );
    match remaining_stack() {
        Some(left) if left >= red_zone => f(),
        _ => on_segment(segment_size, f),
    }
}

#[inline(never)]
fn on_segment<R, F: FnOnce() -> R>(segment_size: usize, f: F) -> R {
    let mut segment = Stack::new(segment_size).unwrap_or_else(|e| {
        panic!("corun: grow could not take a {segment_size}-byte segment: {e}")
    });
    let outer = current_ctx();
    // Label the segment after the stack it extends, for the overflow report.
    let owner = if outer.top != 0 {
        // SAFETY: `outer.top` is the top of a live slot of ours when non-zero.
        unsafe { Label::read(outer.top) }
    } else {
        None
    };
    let (id, name) = owner.as_ref().map_or((0, ""), |l| (l.id, l.name()));
    // SAFETY: we own `segment`.
    unsafe { Label::write(segment.top(), id, name, true) };

    // Restore the outer bounds on whichever thread `f` finishes (a coroutine
    // may migrate while running on the segment), even when it panics.
    struct Restore(usize, usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_bounds(self.0, self.1);
        }
    }
    let _restore = Restore(outer.limit, outer.top);
    set_bounds(segment.bottom(), segment.top());
    corosensei::on_stack(&mut segment, f)
}

/// The lowest usable address of the calling thread's own stack.
fn thread_stack_limit() -> Option<usize> {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; we read
    // it back with pthread_attr_getstack and destroy it.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        // Keep one page in hand for the guard glibc may place at the bottom.
        ok.then(|| addr as usize + crate::os::page_size())
    }
}
