//! The runtime's per-thread context, read only through `#[inline(never)]`
//! accessors.
//!
//! A coroutine may stop on one OS thread and continue on another. If the
//! compiler computed the address of a thread-local before such a switch and
//! reused it after, the coroutine would read the old thread's context. Every
//! accessor here is a real call that looks the thread-local up afresh, and
//! none of them returns a reference into it.

use std::cell::Cell;
use std::ptr;

use crate::sched::{P, Shared};
use crate::task::{Header, TaskRef};

/// Marks "this thread holds no P".
pub(crate) const NO_P: usize = usize::MAX;

#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    /// The runtime this thread works for (null outside runtime threads).
    pub(crate) shared: *const Shared,
    /// The P this thread holds, or `NO_P`.
    pub(crate) p: usize,
    /// The same P by address (null with `NO_P`), for the yield-point check.
    pub(crate) p_ref: *const P,
    /// The P's epoch when this thread acquired it.
    pub(crate) epoch: u64,
    /// The task running on this thread (null in scheduler code).
    pub(crate) task: *const Header,
    /// True while a coroutine runs: P operations must claim the P first.
    pub(crate) user: bool,
}

impl Ctx {
    const NONE: Ctx = Ctx {
        shared: ptr::null(),
        p: NO_P,
        p_ref: ptr::null(),
        epoch: 0,
        task: ptr::null(),
        user: false,
    };

    pub(crate) fn shared(&self) -> Option<&'static Shared> {
        // SAFETY: `Shared` values are leaked when a runtime is built, so a
        // non-null pointer stays valid for the rest of the process.
        unsafe { self.shared.as_ref() }
    }

    pub(crate) fn task(&self) -> Option<&Header> {
        // SAFETY: the scheduler sets `task` while it holds a reference to
        // the running task and clears it before dropping that reference.
        unsafe { self.task.as_ref() }
    }
}

thread_local! {
    static CTX: Cell<Ctx> = const { Cell::new(Ctx::NONE) };
}

#[inline(never)]
pub(crate) fn ctx() -> Ctx {
    CTX.with(|c| c.get())
}

#[inline(never)]
pub(crate) fn update(f: impl FnOnce(&mut Ctx)) {
    CTX.with(|c| {
        let mut ctx = c.get();
        f(&mut ctx);
        c.set(ctx);
    })
}

/// The P a running coroutine's thread holds and the epoch it acquired it
/// at; `None` in scheduler code, outside coroutines, or without a P.
#[inline(never)]
pub(crate) fn running_p() -> Option<(&'static P, u64)> {
    CTX.with(|c| {
        let c = c.get();
        if c.task.is_null() {
            return None;
        }
        // SAFETY: Ps live in a `Shared`, which is leaked when a runtime is
        // built, so the address stays valid for the rest of the process.
        unsafe { c.p_ref.as_ref() }.map(|p| (p, c.epoch))
    })
}

#[inline(never)]
pub(crate) fn current_task_ptr() -> *const Header {
    CTX.with(|c| c.get().task)
}

/// Publishes the task this thread runs (`None` in scheduler code). Taken
/// as a `TaskRef`, not a `&Header`: what the task's code builds on the
/// published pointer (`current()`, `unparker()`) may end up its last
/// reference and free it, which only a pointer to the whole allocation may
/// do; one made from a `&Header` covers the header alone.
#[inline(never)]
pub(crate) fn set_task(task: Option<&TaskRef>, user: bool) {
    CTX.with(|c| {
        let mut ctx = c.get();
        ctx.task = task.map_or(ptr::null(), TaskRef::as_ptr);
        ctx.user = user;
        c.set(ctx);
    })
}

#[inline(never)]
pub(crate) fn set_user(user: bool) {
    CTX.with(|c| {
        let mut ctx = c.get();
        ctx.user = user;
        c.set(ctx);
    })
}
