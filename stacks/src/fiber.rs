//! The context switch: a corosensei coroutine running on a pooled [`Stack`],
//! behind a small safe interface for the runtime.
//!
//! A [`Fiber`] is started and continued with [`Fiber::resume`]; code running
//! on it gives control back with [`suspend`], passing one word to the
//! resumer. When the fiber's function returns, `resume` reports `Finished`
//! and [`Fiber::into_stack`] hands the stack back for reuse.
//!
//! Each thread keeps a small context in a thread-local: the yielder of the
//! fiber running on it (if any) and the bounds of the stack it runs on (for
//! [`crate::grow`]). `resume` installs the fiber's context and puts the
//! previous one back afterwards, so the context always describes the code
//! running right now, on whichever thread a fiber is resumed. The
//! thread-local is read only through `#[inline(never)]` functions: a fiber
//! may stop on one thread and continue on another, and a thread-local address
//! computed before a switch must never be reused after it.
//!
//! A `Fiber` is one pointer. The coroutine's state (corosensei's handle and
//! the context) lives at the top of the fiber's own stack, just below the
//! slot's label, and the coroutine's frames start below it. A task that
//! holds a fiber so pays 8 bytes for it instead of 64, and the state shares
//! the page (and often the cache line) that a resume touches anyway. The
//! state is moved out of the stack before the stack is given back, so the
//! memory it lies in is never freed under it.
//!
//! `Fiber` is `!Send`, like corosensei's coroutine: what may sit on a
//! suspended fiber's stack is arbitrary. The runtime moves fibers between
//! threads and carries that argument itself (see `docs/safety.md`).

use std::cell::{Cell, UnsafeCell};
use std::mem::size_of;
use std::ptr::NonNull;

use corosensei::stack::StackPointer;
use corosensei::{Coroutine, CoroutineResult, Yielder};

use crate::Stack;
use crate::arena::HEADER_SIZE;

type Co = Coroutine<(), usize, (), StateAbove>;

/// A fiber's state, stored at the top of its stack (see the module docs).
struct State {
    co: Co,
    /// This fiber's context; published by address while it runs.
    ctx: UnsafeCell<Ctx>,
}

/// Bytes reserved for `State` below a slot's label; keeps the coroutine's
/// base 16-byte aligned (slot tops are page-aligned).
const STATE_SPACE: usize = size_of::<State>().next_multiple_of(16);

/// The largest function [`Fiber::new`] moves onto the new stack itself;
/// larger ones are boxed. corosensei copies the function into the stack's
/// first frame and panics above 1 KiB; this leaves room for its own words.
const MAX_INLINE_FUNCTION: usize = 512;

/// Where a fiber on the slot ending at `top` keeps its `State`.
fn state_addr(top: usize) -> usize {
    top - HEADER_SIZE - STATE_SPACE
}

/// A stack as corosensei sees it: the slot minus the label and the `State`.
struct StateAbove(Stack);

// SAFETY: `base` lies `HEADER_SIZE + STATE_SPACE` bytes below the slot top
// (16-byte aligned, see `STATE_SPACE`), inside the usable part, which is at
// least MIN_STACK_SIZE bytes; the frames below it never reach the `State`
// or the label above it. `limit` is the slot's, guard included, as the
// trait requires.
unsafe impl corosensei::stack::Stack for StateAbove {
    fn base(&self) -> StackPointer {
        StackPointer::new(state_addr(self.0.top())).expect("non-null")
    }

    fn limit(&self) -> StackPointer {
        self.0.limit()
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    yielder: *const Yielder<(), usize>,
    /// Lowest usable address of the stack running now (0: not yet known).
    pub(crate) limit: usize,
    /// Top of that stack's slot if it is one of ours (0 otherwise).
    pub(crate) top: usize,
}

impl Ctx {
    const NONE: Ctx = Ctx {
        yielder: std::ptr::null(),
        limit: 0,
        top: 0,
    };
}

thread_local! {
    /// The context of the code running on this thread: a fiber's (inside
    /// its `Fiber`) while one runs, else null, meaning `ROOT`.
    static CURRENT: Cell<*mut Ctx> = const { Cell::new(std::ptr::null_mut()) };
    /// The thread's own context, for code not running on a fiber.
    static ROOT: UnsafeCell<Ctx> = const { UnsafeCell::new(Ctx::NONE) };
    static ALTSTACK_READY: Cell<bool> = const { Cell::new(false) };
}

/// The context in force, as a pointer: the running fiber's or the thread's.
///
/// Only pointer-sized values go through the thread-local on the switch
/// path; copying the whole context in and out on every switch cost more
/// than the switch itself (store-forwarding stalls).
fn current_ptr() -> *mut Ctx {
    let p = CURRENT.with(|c| c.get());
    if p.is_null() {
        ROOT.with(|r| r.get())
    } else {
        p
    }
}

#[inline(never)]
pub(crate) fn current_ctx() -> Ctx {
    // SAFETY: `current_ptr` points to the root context of this thread or to
    // the context inside the `Fiber` being resumed on this thread, which
    // `resume` keeps borrowed (so alive and in place) while it is published.
    unsafe { *current_ptr() }
}

/// Publishes `ctx` as current for a `resume`, returning the previous one;
/// also makes sure this thread has an alternate signal stack for overflow
/// reports.
#[inline(never)]
fn enter(ctx: *mut Ctx) -> *mut Ctx {
    if !ALTSTACK_READY.with(|r| r.replace(true)) {
        crate::overflow::ensure_altstack();
    }
    CURRENT.with(|c| c.replace(ctx))
}

#[inline(never)]
fn leave(prev: *mut Ctx) {
    CURRENT.with(|c| c.set(prev));
}

/// Sets the stack bounds of the running context, keeping its yielder.
#[inline(never)]
pub(crate) fn set_bounds(limit: usize, top: usize) {
    let p = current_ptr();
    // SAFETY: see `current_ctx`; only code running in that context writes
    // it, and it is running now.
    unsafe {
        (*p).limit = limit;
        (*p).top = top;
    }
}

#[inline(never)]
fn current_yielder() -> *const Yielder<(), usize> {
    // SAFETY: as for `current_ctx`.
    unsafe { (*current_ptr()).yielder }
}

#[inline(never)]
fn set_yielder(y: *const Yielder<(), usize>) {
    let p = current_ptr();
    // SAFETY: as for `set_bounds`.
    unsafe { (*p).yielder = y };
}

/// What [`Fiber::resume`] saw.
///
/// ```
/// use corun_stacks::Stack;
/// use corun_stacks::fiber::{Fiber, Resumed, suspend};
///
/// let mut f = Fiber::new(Stack::new(64 * 1024).unwrap(), || suspend(3));
/// assert_eq!(f.resume(), Resumed::Suspended(3));
/// assert_eq!(f.resume(), Resumed::Finished);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// The fiber called [`suspend`] with this word.
    Suspended(usize),
    /// The fiber's function returned.
    Finished,
}

/// A function running on its own [`Stack`] that can stop and be continued.
///
/// ```
/// use corun_stacks::Stack;
/// use corun_stacks::fiber::{Fiber, Resumed, suspend};
///
/// // A generator: the fiber hands out Fibonacci numbers one at a time.
/// let mut fib = Fiber::new(Stack::new(64 * 1024).unwrap(), || {
///     let (mut a, mut b) = (0usize, 1usize);
///     for _ in 0..10 {
///         suspend(a);
///         (a, b) = (b, a + b);
///     }
/// });
/// let mut seen = Vec::new();
/// while let Resumed::Suspended(n) = fib.resume() {
///     seen.push(n);
/// }
/// assert_eq!(seen, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
/// ```
pub struct Fiber {
    /// The `State` at the top of the fiber's stack, owned by this `Fiber`
    /// (the stack it lies in is owned by the state's coroutine).
    state: NonNull<State>,
}

impl Fiber {
    /// Prepares `f` to run on `stack`. Nothing runs until the first
    /// [`resume`](Fiber::resume).
    ///
    /// A panic escaping `f` propagates out of `resume`; callers that must
    /// survive panics catch them inside `f`.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use corun_stacks::{Stack, fiber::Fiber};
    ///
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), move || r.set(true));
    /// assert!(!ran.get(), "nothing runs before the first resume");
    /// f.resume();
    /// assert!(ran.get());
    /// ```
    ///
    /// A function of any size is accepted: one larger than 512 bytes is
    /// boxed, because the switch code copies the function onto the new
    /// stack and refuses large objects.
    pub fn new<F: FnOnce() + 'static>(stack: Stack, f: F) -> Fiber {
        if size_of::<F>() > MAX_INLINE_FUNCTION {
            return Fiber::with_small_function(stack, Box::new(f));
        }
        Fiber::with_small_function(stack, f)
    }

    fn with_small_function<F: FnOnce() + 'static>(stack: Stack, f: F) -> Fiber {
        let ctx = Ctx {
            yielder: std::ptr::null(),
            limit: stack.bottom(),
            top: stack.top(),
        };
        let addr = state_addr(stack.top()) as *mut State;
        let co = Coroutine::with_stack(StateAbove(stack), move |y: &Yielder<(), usize>, ()| {
            set_yielder(y);
            f();
        });
        // SAFETY: `addr` is inside the slot `co` now owns, above the base it
        // was given (so no frame of it overlaps), suitably aligned (a
        // multiple of 16 below a page-aligned top), and nothing else lives
        // there: the previous fiber on this slot moved its state out before
        // giving the stack back.
        unsafe {
            addr.write(State {
                co,
                ctx: UnsafeCell::new(ctx),
            })
        };
        Fiber {
            state: NonNull::new(addr).expect("non-null"),
        }
    }

    fn state(&self) -> &State {
        // SAFETY: `state` was written by `new` and stays in place, alive,
        // until `self` is consumed (`into_stack`) or dropped.
        unsafe { self.state.as_ref() }
    }

    /// Moves the state out of the stack: the stack may then be released.
    fn take_state(self) -> State {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: as for `state`; `this` is never used or dropped again, so
        // the state is moved out exactly once.
        unsafe { this.state.as_ptr().read() }
    }

    /// Runs the fiber until it suspends or finishes.
    ///
    /// # Panics
    /// If the fiber already finished, or if its function panicked.
    ///
    /// ```
    /// use corun_stacks::{Stack, fiber::{Fiber, Resumed, suspend}};
    ///
    /// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), || {
    ///     suspend(1);
    ///     suspend(2);
    /// });
    /// assert_eq!(f.resume(), Resumed::Suspended(1));
    /// assert_eq!(f.resume(), Resumed::Suspended(2));
    /// assert_eq!(f.resume(), Resumed::Finished);
    /// ```
    #[inline(always)]
    pub fn resume(&mut self) -> Resumed {
        // SAFETY: as for `state`; `&mut self` makes this the only borrow.
        let state = unsafe { self.state.as_mut() };
        let outer = enter(state.ctx.get());
        // Put the resumer's context back even if the fiber's function panics.
        struct Restore(*mut Ctx);
        impl Drop for Restore {
            fn drop(&mut self) {
                leave(self.0);
            }
        }
        let restore = Restore(outer);
        let result = state.co.resume(());
        drop(restore);
        match result {
            CoroutineResult::Yield(word) => Resumed::Suspended(word),
            CoroutineResult::Return(()) => Resumed::Finished,
        }
    }

    /// True once the fiber's function has returned.
    ///
    /// ```
    /// use corun_stacks::{Stack, fiber::Fiber};
    ///
    /// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), || ());
    /// assert!(!f.is_finished());
    /// f.resume();
    /// assert!(f.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.state().co.done()
    }

    /// True once the fiber has been resumed at least once.
    ///
    /// ```
    /// use corun_stacks::{Stack, fiber::{Fiber, suspend}};
    ///
    /// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), || suspend(0));
    /// assert!(!f.is_started());
    /// f.resume();
    /// assert!(f.is_started() && !f.is_finished());
    /// ```
    pub fn is_started(&self) -> bool {
        self.state().co.started()
    }

    /// Takes back the stack of a finished fiber.
    ///
    /// # Panics
    /// If the fiber has not finished.
    ///
    /// ```
    /// use corun_stacks::{Stack, fiber::Fiber};
    ///
    /// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), || ());
    /// f.resume();
    /// let stack = f.into_stack(); // reuse it for the next fiber
    /// let mut g = Fiber::new(stack, || ());
    /// g.resume();
    /// ```
    pub fn into_stack(self) -> Stack {
        assert!(
            self.is_finished(),
            "corun-stacks: into_stack on a fiber that has not finished"
        );
        self.take_state().co.into_stack().0
    }
}

impl Drop for Fiber {
    fn drop(&mut self) {
        // SAFETY: as in `take_state`: `drop` runs once and `self` is not
        // used after it, so the state is moved out exactly once.
        let state = unsafe { self.state.as_ptr().read() };
        if !state.co.started() || state.co.done() {
            // No frames: the function of a fiber that never ran is dropped
            // right here, on the dropper's stack, in the dropper's context
            // (its bounds, not the fiber's, are what `grow` must see).
            drop(state.co);
            return;
        }
        // Unwinding a suspended fiber runs its destructors on its own stack:
        // give them the fiber's context (now in `state`, on this frame) so
        // nested `suspend` calls and `grow` see the right fiber.
        let outer = enter(state.ctx.get());
        drop(state.co);
        leave(outer);
    }
}

/// True when the caller runs on a fiber.
///
/// ```
/// use corun_stacks::{Stack, fiber::{Fiber, Resumed, in_fiber, suspend}};
///
/// assert!(!in_fiber());
/// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), || suspend(in_fiber() as usize));
/// assert_eq!(f.resume(), Resumed::Suspended(1));
/// ```
pub fn in_fiber() -> bool {
    !current_yielder().is_null()
}

/// Stops the running fiber and hands `word` to whoever resumed it; returns
/// when the fiber is resumed again, possibly on another thread.
///
/// # Panics
/// When called outside a fiber.
// Inlined on purpose: every call level between the caller and the stack
// switch is a return that the CPU's return-stack predictor gets wrong after
// the switch (measured: 29 ns vs 6 ns per round trip). The thread-local is
// still read through the non-inlined `current_yielder`.
///
/// ```
/// use corun_stacks::{Stack, fiber::{Fiber, Resumed, suspend}};
///
/// // The word is the fiber's message to its resumer (the runtime uses it to
/// // say why a coroutine stopped).
/// let mut f = Fiber::new(Stack::new(32 * 1024).unwrap(), || suspend(0xC0));
/// assert_eq!(f.resume(), Resumed::Suspended(0xC0));
/// ```
#[inline(always)]
pub fn suspend(word: usize) {
    let y = current_yielder();
    assert!(!y.is_null(), "corun-stacks: suspend called outside a fiber");
    // SAFETY: `y` was stored by the running fiber's entry closure and points
    // to the Yielder corosensei keeps on that fiber's stack, which lives as
    // long as the fiber runs; we are running on it now. `resume` replaces the
    // context whenever a different fiber runs on this thread.
    unsafe { (*y).suspend(word) };
}
