//! Wait queues: the one parking structure under every lock in this module.
//!
//! A [`Waiter`] lives on the stack of the coroutine or thread that waits
//! (a coroutine's stack does not move while it is parked, so its address is
//! stable) and is linked into an intrusive FIFO [`List`] guarded by a short
//! spin lock owned by the primitive (mutex semaphore, condvar, ...).
//!
//! The hand-over protocol, which every user of this module follows:
//!
//! 1. A waker unlinks a waiter *under the list's lock* ([`List::pop_front`]
//!    or [`List::take_all`]); the waiter is then no longer reachable by
//!    anyone else.
//! 2. After releasing the lock, the waker calls [`Waiter::wake`]: it clones
//!    the waiter's `Unparker`, publishes `WOKEN` with a release store, and
//!    only then unparks through the clone. The store is its last access to
//!    the waiter, so the waiter may return (and free its frame) as soon as
//!    it sees `WOKEN`.
//! 3. A waiter returns only after it saw `WOKEN` ([`Waiter::wait`]) or after
//!    unlinking itself under the lock ([`List::remove`], for time-outs). If
//!    it finds itself already unlinked, a waker owns it and `WOKEN` is
//!    coming: it waits for it.
//!
//! A waiter whose coroutine was abandoned by runtime shutdown stays linked
//! (its frame is leaked, never freed) until a waker meets it at the head:
//! [`List::front`] and [`List::pop_front`] unlink it without waking it, so
//! tokens and notifications go to live waiters only. [`Sema::release`]
//! keeps a token it finds no live waiter for (the mutex relies on it);
//! [`Sema::release_waiters`] lets each dead waiter take its token with it
//! (a wait group counts its waiters, the dead ones included).
//!
//! Model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p
//! corun-sync --release --lib loom`): the hand-off to a waiter and the
//! time-out race, with the list under a loom mutex (the spin locks of the
//! primitives themselves are not modelled).

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use corun_runtime::WaitReason;

// The runtime's atomics and parking, or loom's when model checking.
use crate::chan::waiter::sys::{AtomicBool, Unparker, park, park_deadline, unparker};

use crate::chan::lock::SpinLock;

struct Links {
    prev: *const Waiter,
    next: *const Waiter,
    linked: bool,
}

/// One blocked operation. Must not move while linked (it lives in the frame
/// of the function that waits, which does not return before it is unlinked).
pub(crate) struct Waiter {
    woken: AtomicBool,
    unparker: Unparker,
    /// Read and written only under the lock of the list it is queued on.
    links: UnsafeCell<Links>,
    /// What the waiter asks for (a semaphore's permit count); fixed before
    /// it is linked.
    pub(crate) want: usize,
}

// SAFETY: `woken` is atomic, `unparker` is `Send + Sync`, and `links` is only
// touched by whoever holds the lock of the list the waiter is on (the module
// protocol), which serialises those accesses across threads.
unsafe impl Sync for Waiter {}
// SAFETY: as above; nothing in a waiter is tied to the thread that made it.
unsafe impl Send for Waiter {}

impl Waiter {
    /// A waiter for the calling coroutine or thread.
    pub(crate) fn new(want: usize) -> Waiter {
        Waiter {
            woken: AtomicBool::new(false),
            unparker: unparker(),
            links: UnsafeCell::new(Links {
                prev: ptr::null(),
                next: ptr::null(),
                linked: false,
            }),
            want,
        }
    }

    /// True once a waker has finished with this waiter.
    #[inline]
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// Parks until woken.
    pub(crate) fn wait(&self, reason: WaitReason) {
        while !self.is_woken() {
            park(reason);
        }
    }

    /// Parks until woken (`true`) or until `deadline` passes (`false`).
    /// After `false` the caller must still settle the race with a waker
    /// through [`List::remove`].
    pub(crate) fn wait_until(&self, reason: WaitReason, deadline: Instant) -> bool {
        loop {
            if self.is_woken() {
                return true;
            }
            if park_deadline(reason, deadline) {
                return self.is_woken();
            }
        }
    }

    /// Wakes an unlinked waiter (step 2 of the module protocol).
    ///
    /// # Safety
    /// `w` was unlinked from its list by the caller, under that list's lock,
    /// and has not been woken since: it is still waiting, so it is alive,
    /// and only the caller may wake it.
    pub(crate) unsafe fn wake(w: *const Waiter) {
        // SAFETY: per the contract the waiter is alive until `woken` is set.
        let w = unsafe { &*w };
        let unparker = w.unparker.clone();
        w.woken.store(true, Ordering::Release);
        // `w` may be gone from here on.
        unparker.unpark();
    }
}

/// An intrusive FIFO of waiters. Lives inside a `SpinLock`; every method
/// is called with that lock held.
pub(crate) struct List {
    head: *const Waiter,
    tail: *const Waiter,
    len: usize,
}

// SAFETY: the list only holds pointers to `Sync` waiters, and is only used
// under its owner's lock.
unsafe impl Send for List {}

impl List {
    pub(crate) const fn new() -> List {
        List {
            head: ptr::null(),
            tail: ptr::null(),
            len: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first waiter, still linked.
    pub(crate) fn front(&mut self) -> Option<&Waiter> {
        self.drop_abandoned_head();
        // SAFETY: linked waiters are alive (they do not return while linked).
        unsafe { self.head.as_ref() }
    }

    /// Unlinks waiters at the head whose coroutine was abandoned by its
    /// runtime's shutdown, and returns how many: their frames are leaked,
    /// so they are alive but will never run, and a token or notification
    /// handed to one would be lost for the live waiters behind it.
    pub(crate) fn drop_abandoned_head(&mut self) -> usize {
        let mut dropped = 0;
        // SAFETY: linked waiters are alive (a leaked frame included).
        while let Some(w) = unsafe { self.head.as_ref() }
            && w.unparker.is_abandoned()
        {
            // SAFETY: `w` is the linked head; we hold the lock.
            unsafe { self.unlink(w) };
            dropped += 1;
        }
        dropped
    }

    /// Links `w` at the back (or the front with `front`).
    ///
    /// # Safety
    /// `w` is not linked anywhere and stays at its address until it is
    /// unlinked (by a waker or by [`List::remove`]).
    pub(crate) unsafe fn push(&mut self, w: &Waiter, front: bool) {
        let p: *const Waiter = w;
        // SAFETY: we hold the list lock; `w` is ours to link.
        let l = unsafe { &mut *w.links.get() };
        debug_assert!(!l.linked);
        l.linked = true;
        if front {
            l.prev = ptr::null();
            l.next = self.head;
            match self.head.is_null() {
                true => self.tail = p,
                // SAFETY: `head` is a linked, live waiter; we hold the lock.
                false => unsafe { (*(*self.head).links.get()).prev = p },
            }
            self.head = p;
        } else {
            l.next = ptr::null();
            l.prev = self.tail;
            match self.tail.is_null() {
                true => self.head = p,
                // SAFETY: as above for `tail`.
                false => unsafe { (*(*self.tail).links.get()).next = p },
            }
            self.tail = p;
        }
        self.len += 1;
    }

    /// Unlinks and returns the first waiter; wake it with [`Waiter::wake`]
    /// after releasing the lock.
    pub(crate) fn pop_front(&mut self) -> Option<*const Waiter> {
        self.drop_abandoned_head();
        self.unlink_head()
    }

    /// Unlinks and returns the head as it is, abandoned or not: for a
    /// caller that chose it through [`List::front`] under this same lock
    /// (its coroutine may have been abandoned since, but the caller has
    /// already counted on this waiter, not the next).
    pub(crate) fn unlink_head(&mut self) -> Option<*const Waiter> {
        let p = self.head;
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` is linked, hence alive; we hold the lock.
        unsafe { self.unlink(p) };
        Some(p)
    }

    /// Unlinks every waiter, returning them as a chain to pass to
    /// [`wake_all`] after releasing the lock.
    pub(crate) fn take_all(&mut self) -> Chain {
        let head = self.head;
        let mut p = head;
        while !p.is_null() {
            // SAFETY: every node in the list is linked and alive; we hold the
            // lock. `next` stays valid as the chain's own link.
            let l = unsafe { &mut *(*p).links.get() };
            l.linked = false;
            p = l.next;
        }
        self.head = ptr::null();
        self.tail = ptr::null();
        self.len = 0;
        Chain(head)
    }

    /// Unlinks `w` if it is still linked (`true`): the time-out path. If it
    /// returns `false`, a waker took `w` and will set `woken`.
    pub(crate) fn remove(&mut self, w: &Waiter) -> bool {
        // SAFETY: we hold the list lock.
        if !unsafe { (*w.links.get()).linked } {
            return false;
        }
        // SAFETY: `w` is linked in this list and alive (it is borrowed).
        unsafe { self.unlink(w) };
        true
    }

    /// # Safety
    /// `p` is linked in this list; the caller holds the lock.
    unsafe fn unlink(&mut self, p: *const Waiter) {
        // SAFETY: per the contract.
        let l = unsafe { &mut *(*p).links.get() };
        match l.prev.is_null() {
            true => self.head = l.next,
            // SAFETY: neighbours of a linked node are linked and alive.
            false => unsafe { (*(*l.prev).links.get()).next = l.next },
        }
        match l.next.is_null() {
            true => self.tail = l.prev,
            // SAFETY: as above.
            false => unsafe { (*(*l.next).links.get()).prev = l.prev },
        }
        l.linked = false;
        l.prev = ptr::null();
        l.next = ptr::null();
        self.len -= 1;
    }
}

/// Waiters unlinked together by [`List::take_all`], still owed a wake-up.
pub(crate) struct Chain(*const Waiter);

impl Chain {
    /// Wakes every waiter of the chain, in queue order.
    pub(crate) fn wake_all(self) {
        let mut p = self.0;
        while !p.is_null() {
            // SAFETY: chained waiters are unlinked but not yet woken, so they
            // are alive and their `next` is ours to read (nobody links or
            // unlinks them: they are in no list). Read `next` before the
            // wake-up, after which the waiter may be gone.
            let next = unsafe { (*(*p).links.get()).next };
            // SAFETY: unlinked by `take_all` under the lock, woken once here.
            unsafe { Waiter::wake(p) };
            p = next;
        }
    }
}

/// Go's runtime semaphore: a count of tokens and a FIFO of waiters. A
/// release hands its token straight to the first waiter, so a newcomer can
/// never take it from under a woken one.
pub(crate) struct Sema {
    inner: SpinLock<SemaInner>,
}

struct SemaInner {
    count: usize,
    waiters: List,
}

impl Sema {
    pub(crate) const fn new() -> Sema {
        Sema {
            inner: SpinLock::new(SemaInner {
                count: 0,
                waiters: List::new(),
            }),
        }
    }

    /// Takes a token, waiting for one if none is there. `lifo` queues at
    /// the front (Go's mutex does so for a waiter that already waited).
    pub(crate) fn acquire(&self, lifo: bool, reason: WaitReason) {
        let w = Waiter::new(1);
        {
            let mut g = self.inner.lock();
            if g.count > 0 {
                g.count -= 1;
                return;
            }
            // SAFETY: `w` is fresh and stays in this frame until woken
            // (tokens are only handed to linked waiters, which are then
            // woken); nobody removes it otherwise.
            unsafe { g.waiters.push(&w, lifo) };
        }
        w.wait(reason);
    }

    /// Adds `n` tokens, handing them to waiters first. A token meant for
    /// a waiter abandoned by shutdown goes to the next one, or is kept: the
    /// mutex counts such a waiter as woken, and the kept token is what
    /// lets a later waiter clear that mark.
    pub(crate) fn release(&self, n: usize) {
        self.release_to(n, false);
    }

    /// Wakes `n` waiters, each of which may be queued already or about to
    /// queue. An abandoned waiter met at the head takes its token with it:
    /// for a wait group, whose count of waiters includes it, a kept token
    /// would let the next round's waiter return before its count is zero.
    pub(crate) fn release_waiters(&self, n: usize) {
        self.release_to(n, true);
    }

    fn release_to(&self, n: usize, abandoned_take_tokens: bool) {
        let mut woken = [ptr::null::<Waiter>(); 8];
        let mut left = n;
        while left > 0 {
            let mut k = 0;
            {
                let mut g = self.inner.lock();
                while left > 0 && k < woken.len() {
                    let dropped = g.waiters.drop_abandoned_head();
                    if abandoned_take_tokens {
                        left = left.saturating_sub(dropped);
                        if left == 0 {
                            break;
                        }
                    }
                    match g.waiters.unlink_head() {
                        Some(w) => {
                            woken[k] = w;
                            k += 1;
                            left -= 1;
                        }
                        None => {
                            g.count += left;
                            left = 0;
                        }
                    }
                }
            }
            for &w in &woken[..k] {
                // SAFETY: unlinked under the lock just now, woken once.
                unsafe { Waiter::wake(w) };
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::{Arc, Mutex};

    use super::*;

    struct Shared(Mutex<List>);
    // SAFETY: the list is only touched under the mutex; the waiters it
    // points to are `Sync` (the module protocol).
    unsafe impl Sync for Shared {}
    // SAFETY: as above.
    unsafe impl Send for Shared {}

    /// A waiter queues itself; a waker pops and wakes it (a mutex unlock
    /// handing the lock over). With `timeout`, the waiter gives up at the
    /// same time. Exactly one side wins; a woken waiter is never lost.
    fn hand_off(timeout: bool) {
        loom::model(move || {
            let list = Arc::new(Shared(Mutex::new(List::new())));
            let w = Waiter::new(1);
            // SAFETY: `w` stays in this frame until it is unlinked (by the
            // waker or by `remove`) and, if the waker took it, woken.
            unsafe { list.0.lock().unwrap().push(&w, false) };
            let l = list.clone();
            let waker = loom::thread::spawn(move || {
                let popped = l.0.lock().unwrap().pop_front();
                match popped {
                    Some(p) => {
                        // SAFETY: unlinked by us under the lock, not woken.
                        unsafe { Waiter::wake(p) };
                        true
                    }
                    None => false,
                }
            });
            let handed = if timeout {
                // The deadline passed: settle the race under the lock.
                let removed = list.0.lock().unwrap().remove(&w);
                if !removed {
                    w.wait(WaitReason::Mutex); // the waker owns us: WOKEN is coming
                }
                !removed
            } else {
                w.wait(WaitReason::Mutex);
                true
            };
            assert_eq!(waker.join().unwrap(), handed, "exactly one side wins");
            assert_eq!(w.is_woken(), handed);
            assert!(list.0.lock().unwrap().is_empty());
        });
    }

    #[test]
    fn loom_hand_off_wakes_the_waiter() {
        hand_off(false);
    }

    #[test]
    fn loom_time_out_races_the_hand_off() {
        hand_off(true);
    }
}
