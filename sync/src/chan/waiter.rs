//! Waiters: how a blocked operation waits and how it is completed.
//!
//! Every blocked operation (a send, a receive, a whole `select`) owns one
//! [`Ctx`] on its stack and one [`Node`] per channel it waits on. A node is
//! linked into a channel's send or receive queue while the channel's lock is
//! held. Whoever completes the waiter (the *claimer*) does so in two steps:
//!
//! 1. under the channel's lock, it CASes the owner's `state` from `WAITING`
//!    to `SELECTED + index` and unlinks the node. Only one CAS can succeed,
//!    so a select waiting on many channels is completed by exactly one of
//!    them; a claimer that loses the CAS just unlinks the stale node.
//! 2. after the lock, it publishes a [`Packet`] (`DONE`, `RETRY`, `RESERVED`,
//!    or its own `Ctx` for an exchange) with a release
//!    store, unparks the owner, and last sets `released`. The owner returns
//!    (freeing its frame, which holds the `Ctx`) only after `released`, so
//!    the claimer never touches a dead context.
//!
//! The owner waits (parking, so a coroutine frees its thread) until its
//! state leaves `WAITING`, then until the packet arrives. A timed-out owner
//! CASes `WAITING -> ABORTED`; if that fails it was selected and must take
//! the packet. Afterwards it unlinks its remaining nodes under each
//! channel's lock, after which no claimer can reach them.
//!
//! Model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p corun-sync
//! --release --lib loom`): under `cfg(loom)` the atomics and parking below
//! come from loom, and the tests at the end of this file explore every
//! interleaving of owners, claimers and aborts. The intrusive queues, the
//! channel logic around them and timed parking are not modelled.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use corun_runtime::WaitReason;

use self::sys::{
    AtomicBool, AtomicPtr, AtomicUsize, FrameUnparker, park, park_deadline, spin_wait,
};

/// The atomics and parking the protocol runs on: the runtime's, or loom's
/// when model checking. The lock wait queue (`sync::waitq`) uses it too.
#[cfg(not(loom))]
pub(crate) mod sys {
    pub(crate) use corun_runtime::{
        FrameUnparker, Unparker, frame_unparker, park, park_deadline, unparker,
    };
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};

    /// One round of waiting for a flag another thread is about to set.
    pub(super) fn spin_wait(spins: &mut u32) {
        if *spins < 64 {
            std::hint::spin_loop();
            *spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(loom)]
pub(crate) mod sys {
    use std::time::Instant;

    use corun_runtime::WaitReason;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};

    /// Loom's thread handle in the runtime `Unparker`'s place.
    #[derive(Clone)]
    pub(crate) struct Unparker(loom::thread::Thread);

    impl Unparker {
        pub(crate) fn unpark(&self) {
            self.0.unpark();
        }

        /// Loom threads are never abandoned.
        pub(crate) fn is_abandoned(&self) -> bool {
            false
        }
    }

    pub(crate) fn unparker() -> Unparker {
        Unparker(loom::thread::current())
    }

    /// Loom's thread handle in the runtime `FrameUnparker`'s place.
    pub(crate) struct FrameUnparker(loom::thread::Thread);

    impl FrameUnparker {
        /// Safe here; `unsafe` only to match the runtime's signature.
        pub(crate) unsafe fn unpark(&self) {
            self.0.unpark();
        }

        /// Loom threads are never abandoned.
        pub(crate) unsafe fn is_abandoned(&self) -> bool {
            false
        }
    }

    pub(crate) fn frame_unparker() -> FrameUnparker {
        FrameUnparker(loom::thread::current())
    }

    pub(crate) fn park(_: WaitReason) {
        loom::thread::park();
    }

    /// Time is not modelled: a timed park is a park; tests abort explicitly.
    pub(crate) fn park_deadline(reason: WaitReason, _: Instant) -> bool {
        park(reason);
        false
    }

    pub(super) fn spin_wait(_: &mut u32) {
        loom::thread::yield_now();
    }
}

/// The owner still waits.
pub(crate) const WAITING: usize = 0;
/// The owner gave up (timeout, or it found an operation ready meanwhile).
pub(crate) const ABORTED: usize = 1;
/// `SELECTED + i`: node `i` of the owner was claimed.
const SELECTED: usize = 2;

/// What a claimer hands the owner of the context it completes: one of the
/// markers below, or (for an exchange) the claimer's own context. One
/// pointer word, as the owner reads it from an atomic: the markers are the
/// addresses 1-3, which no `Ctx` can have, and an exchange keeps the
/// provenance of the claimer's context (an integer would lose it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Packet(*const Ctx);

impl Packet {
    /// The claimer moved the value into or out of the owner's slot (or, for
    /// an observer, the operation became ready).
    pub(crate) const DONE: Packet = Packet(ptr::without_provenance(1));
    /// Nothing was transferred: re-run the operation (the channel was
    /// closed, or the claimer's select was abandoned).
    pub(crate) const RETRY: Packet = Packet(ptr::without_provenance(2));
    /// A buffer slot (send) or a buffered message (receive) is reserved for
    /// the owner, which completes the transfer itself.
    pub(crate) const RESERVED: Packet = Packet(ptr::without_provenance(3));

    /// The claimer's own context: it waits for the owner to move a value
    /// into or out of its slot (see [`Ctx::slot_of`]).
    pub(crate) fn exchange(claimer: &Ctx) -> Packet {
        Packet(claimer)
    }

    /// The claimer's context if this is an exchange packet.
    pub(crate) fn exchange_peer(self) -> Option<*const Ctx> {
        (self.0.addr() > Packet::RESERVED.0.addr()).then_some(self.0)
    }
}

/// The shared state of one blocked operation.
pub(crate) struct Ctx {
    state: AtomicUsize,
    /// A [`Packet`]'s word, null until published.
    packet: AtomicPtr<Ctx>,
    /// The slot (`*mut T`, holding the message for a send, to be filled for
    /// a receive) this context offers when it hands its own address to a
    /// peer as an exchange packet.
    slot: AtomicPtr<()>,
    /// Holds no reference: the owner stays in the frame holding this
    /// context until `released`, so it cannot finish before the unpark.
    unparker: FrameUnparker,
    /// Set by the claimer after its last access (the unpark): only then may
    /// the owner's frame, which holds this context, go away.
    released: AtomicBool,
}

impl Ctx {
    pub(crate) fn new() -> Ctx {
        Ctx {
            state: AtomicUsize::new(WAITING),
            packet: AtomicPtr::new(ptr::null_mut()),
            slot: AtomicPtr::new(ptr::null_mut()),
            unparker: sys::frame_unparker(),
            released: AtomicBool::new(false),
        }
    }

    /// Has nothing completed or aborted the owner's wait yet? (Asked by the
    /// owner itself, which is alive to ask.)
    #[inline]
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// Is the owner still waiting, and alive to take what it waits for?
    /// (Asked by others, about a queued node's owner.)
    #[inline]
    fn is_live_waiter(&self) -> bool {
        self.is_waiting() && !self.owner_abandoned()
    }

    /// Was the owner abandoned by its runtime's shutdown while it waited?
    /// Its frames are leaked, so this context stays readable, but it will
    /// never run again: claimers pass it by, so a value is never handed to
    /// it and nobody waits for it to supply one.
    #[inline]
    fn owner_abandoned(&self) -> bool {
        // SAFETY: the owner has not returned from the frame holding this
        // context (a claimer reaches it through a linked node, the owner
        // through `&self`), which is `is_abandoned`'s contract.
        unsafe { self.unparker.is_abandoned() }
    }

    /// Claims the owner for its node `index`. Called under the lock of the
    /// channel the node is queued on.
    #[inline]
    pub(crate) fn try_claim(&self, index: usize) -> bool {
        self.state
            .compare_exchange(
                WAITING,
                SELECTED + index,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Claims the owner of a sole node (see [`Node::sole`]) for it. A plain
    /// store: nobody else can write the state, so a locked CAS would only
    /// cost time.
    #[inline]
    pub(crate) fn claim_sole(&self, index: usize) {
        debug_assert_eq!(self.state.load(Ordering::Relaxed), WAITING);
        self.state.store(SELECTED + index, Ordering::Release);
    }

    /// Gives up waiting: `None` if aborted, `Some(i)` if node `i` was
    /// claimed first.
    pub(crate) fn abort(&self) -> Option<usize> {
        match self
            .state
            .compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => None,
            Err(s) if s >= SELECTED => Some(s - SELECTED),
            Err(_) => None,
        }
    }

    /// Waits until a node is claimed (`Some(index)`) or `deadline` passes
    /// and the wait is aborted (`None`).
    pub(crate) fn wait(&self, deadline: Option<Instant>, reason: WaitReason) -> Option<usize> {
        loop {
            let s = self.state.load(Ordering::Acquire);
            if s >= SELECTED {
                return Some(s - SELECTED);
            }
            if s == ABORTED {
                return None;
            }
            match deadline {
                None => park(reason),
                Some(d) => {
                    if park_deadline(reason, d) {
                        return self.abort();
                    }
                }
            }
        }
    }

    /// After being claimed: waits for the claimer's packet, then for the
    /// claimer to be done with this context.
    pub(crate) fn wait_packet(&self, reason: WaitReason) -> Packet {
        let p = loop {
            let p = self.packet.load(Ordering::Acquire);
            if !p.is_null() {
                break Packet(p);
            }
            park(reason);
        };
        // The claimer publishes the packet, unparks us, then releases: a
        // window of a few instructions, unless its thread was descheduled.
        let mut spins = 0u32;
        while !self.released.load(Ordering::Acquire) {
            spin_wait(&mut spins);
        }
        p
    }

    /// Offers `slot` for an exchange: a peer that gets this context's address
    /// as its packet moves the value through `slot`.
    pub(crate) fn set_slot(&self, slot: *mut ()) {
        self.slot.store(slot, Ordering::Relaxed);
    }

    /// The exchange slot of the context at `ctx` (see [`Ctx::set_slot`]).
    ///
    /// # Safety
    /// `ctx` is a live context received as an exchange packet whose owner
    /// still waits for its own packet.
    pub(crate) unsafe fn slot_of(ctx: *const Ctx) -> *mut () {
        // SAFETY: the caller guarantees `ctx` is alive.
        unsafe { (*ctx).slot.load(Ordering::Relaxed) }
    }

    /// Publishes `packet` to the owner of `ctx`, wakes it, and releases the
    /// context: the owner may free it as soon as this returns. Called
    /// without holding a channel lock.
    ///
    /// # Safety
    /// The caller claimed `ctx`'s owner (or received `ctx` as an exchange
    /// packet) and has not completed it yet, so the owner still waits for
    /// its packet and then for the release, keeping `*ctx` alive until the
    /// final store below.
    pub(crate) unsafe fn complete(ctx: *const Ctx, packet: Packet) {
        // SAFETY: alive until `released` is set, by the caller's contract.
        let c = unsafe { &*ctx };
        c.packet.store(packet.0.cast_mut(), Ordering::Release);
        // SAFETY: the owner waits in its frame for `released`, set below,
        // so its coroutine has not finished (or was abandoned by shutdown
        // there, and its task is leaked).
        unsafe { c.unparker.unpark() };
        // Last access: the owner may return and free `*ctx` after this.
        c.released.store(true, Ordering::Release);
    }
}

/// One registration of a blocked operation in one channel queue.
///
/// The links are touched only under the lock of that channel.
pub(crate) struct Node {
    prev: Cell<*const Node>,
    next: Cell<*const Node>,
    linked: Cell<bool>,
    pub(crate) ctx: *const Ctx,
    pub(crate) index: usize,
    /// The direct hand-off slot, a `*mut T`: a plain send's message, which
    /// the claimer moves out, or a plain receive's (or `select!` receive
    /// arm's) destination, which it fills. Null for other select arms and
    /// observers.
    pub(crate) slot: *mut (),
    /// Only wants to know that the operation became ready (`Select::ready`).
    pub(crate) observer: bool,
    /// The owner's only node, and the owner never aborts (a send or receive
    /// without deadline): the one claimer that pops it is the only writer
    /// of the owner's state.
    sole: bool,
}

impl Node {
    pub(crate) fn new(ctx: &Ctx, index: usize, slot: *mut (), observer: bool) -> Node {
        Node {
            prev: Cell::new(ptr::null()),
            next: Cell::new(ptr::null()),
            linked: Cell::new(false),
            ctx,
            index,
            slot,
            observer,
            sole: false,
        }
    }

    /// The only node of a plain operation that waits without deadline.
    pub(crate) fn sole(ctx: &Ctx, slot: *mut ()) -> Node {
        Node {
            sole: true,
            ..Node::new(ctx, 0, slot, false)
        }
    }

    /// Claims the owner for this node; false if it was claimed elsewhere,
    /// aborted, or abandoned by shutdown. Called by the claimer that popped
    /// the node, under the lock.
    #[inline]
    fn claim(&self) -> bool {
        // SAFETY: a linked node's context outlives it, and the node was
        // linked until the caller popped it under the same lock.
        let ctx = unsafe { &*self.ctx };
        if ctx.owner_abandoned() {
            return false;
        }
        if self.sole {
            ctx.claim_sole(self.index);
            true
        } else {
            ctx.try_claim(self.index)
        }
    }
}

/// What a claimer learns about a claimed node (copied out under the lock).
#[derive(Clone, Copy)]
pub(crate) struct Claimed {
    pub(crate) ctx: *const Ctx,
    pub(crate) slot: *mut (),
}

/// An intrusive FIFO of nodes, owned by a channel's locked state.
///
/// Invariant: every linked node is alive and does not move. Its owner
/// guarantees this by unlinking it (under the same lock) before its frame
/// ends, unless a claimer unlinked it first.
pub(crate) struct Queue {
    head: *const Node,
    tail: *const Node,
}

// SAFETY: the queue is only reachable through its channel's lock; the nodes
// it points to are designed to be touched by any thread holding that lock.
unsafe impl Send for Queue {}

impl Queue {
    pub(crate) const fn new() -> Queue {
        Queue {
            head: ptr::null(),
            tail: ptr::null(),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Links `node` at the back.
    ///
    /// # Safety
    /// `node` is not linked anywhere, and stays alive and in place until it
    /// has been unlinked (by [`Queue::remove`] or a claimer), with the
    /// owning channel's lock held for every access.
    pub(crate) unsafe fn push_back(&mut self, node: &Node) {
        node.prev.set(self.tail);
        node.next.set(ptr::null());
        node.linked.set(true);
        if self.tail.is_null() {
            self.head = node;
        } else {
            // SAFETY: linked nodes are alive (queue invariant).
            unsafe { (*self.tail).next.set(node) };
        }
        self.tail = node;
    }

    /// Unlinks `node` if it is still linked in this queue.
    pub(crate) fn remove(&mut self, node: &Node) {
        if !node.linked.get() {
            return;
        }
        node.linked.set(false);
        let prev = node.prev.get();
        let next = node.next.get();
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: linked nodes are alive (queue invariant).
            unsafe { (*prev).next.set(next) };
        }
        if next.is_null() {
            self.tail = prev;
        } else {
            // SAFETY: as above.
            unsafe { (*next).prev.set(prev) };
        }
    }

    fn pop_front(&mut self) -> Option<&Node> {
        if self.head.is_null() {
            return None;
        }
        // SAFETY: linked nodes are alive (queue invariant); the reference
        // does not outlive the lock guard that borrows `self`.
        let node = unsafe { &*self.head };
        self.remove(node);
        Some(node)
    }

    /// Pops nodes until one whose owner it can claim, and returns that one.
    /// Observers met on the way are claimed and woken; stale nodes (owner
    /// already claimed elsewhere or aborted) are dropped from the queue.
    ///
    /// Like every claim here, the node leaves the queue before its owner is
    /// claimed: a select that learns it was claimed through a node knows
    /// that node is unlinked and need not lock its channel to remove it.
    pub(crate) fn claim_first(&mut self, wakes: &mut Wakes) -> Option<Claimed> {
        while let Some(node) = self.pop_front() {
            if !node.claim() {
                continue;
            }
            if node.observer {
                // SAFETY: just claimed, not completed.
                unsafe { wakes.push(node.ctx, Packet::DONE) };
                continue;
            }
            return Some(Claimed {
                ctx: node.ctx,
                slot: node.slot,
            });
        }
        None
    }

    /// Claims every waiter and gives it `packet` (observers get `Packet::DONE`).
    pub(crate) fn claim_all(&mut self, packet: Packet, wakes: &mut Wakes) {
        while let Some(node) = self.pop_front() {
            if node.claim() {
                let p = if node.observer { Packet::DONE } else { packet };
                // SAFETY: just claimed, not completed.
                unsafe { wakes.push(node.ctx, p) };
            }
        }
    }

    /// Wakes the observers (an operation on the other side became possible)
    /// and drops stale nodes; live operations stay queued.
    pub(crate) fn wake_observers(&mut self, wakes: &mut Wakes) {
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: linked nodes are alive (queue invariant).
            let node = unsafe { &*cur };
            cur = node.next.get();
            // SAFETY: a linked node's context outlives it.
            let ctx = unsafe { &*node.ctx };
            if node.observer {
                self.remove(node);
                if node.claim() {
                    // SAFETY: just claimed, not completed.
                    unsafe { wakes.push(node.ctx, Packet::DONE) };
                }
            } else if !ctx.is_live_waiter() {
                self.remove(node);
            }
        }
    }

    /// Is an operation of another owner than `own` waiting here?
    pub(crate) fn has_live(&self, own: *const Ctx) -> bool {
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: linked nodes are alive (queue invariant).
            let node = unsafe { &*cur };
            // SAFETY: a linked node's context outlives it.
            if !node.observer && !ptr::eq(node.ctx, own) && unsafe { &*node.ctx }.is_live_waiter() {
                return true;
            }
            cur = node.next.get();
        }
        false
    }
}

/// Completions decided under a lock, carried out after it is released
/// (so the lock is never held across an unpark).
pub(crate) struct Wakes {
    first: Option<(*const Ctx, Packet)>,
    more: Vec<(*const Ctx, Packet)>,
}

impl Wakes {
    #[inline]
    pub(crate) fn new() -> Wakes {
        Wakes {
            first: None,
            more: Vec::new(),
        }
    }

    /// Schedules `Ctx::complete(ctx, packet)` for [`Wakes::wake`].
    ///
    /// # Safety
    /// As for [`Ctx::complete`]; the claimer must call `wake` before
    /// anything could make it forget this completion.
    #[inline]
    pub(crate) unsafe fn push(&mut self, ctx: *const Ctx, packet: Packet) {
        if self.first.is_none() {
            self.first = Some((ctx, packet));
        } else {
            self.more.push((ctx, packet));
        }
    }

    #[inline]
    pub(crate) fn wake(self) {
        if let Some((ctx, p)) = self.first {
            // SAFETY: `push`'s contract.
            unsafe { Ctx::complete(ctx, p) };
            if !self.more.is_empty() {
                for (ctx, p) in self.more {
                    // SAFETY: as above.
                    unsafe { Ctx::complete(ctx, p) };
                }
            }
        }
    }
}

/// Moves the message at `from` to `to`: a sender's message into a
/// receiver's memory, into or out of an exchange peer's, or out of a
/// `select!` arm's.
///
/// # Safety
/// `from` holds a `T` whose owner gives it up (a claimed sender or exchange
/// peer that has not been completed, or the caller itself); `to` is valid
/// for a write of a `T`, holds nothing to drop, and no one else touches it
/// until the move is published; the two do not overlap.
#[inline]
pub(crate) unsafe fn move_msg<T>(from: *const T, to: *mut T) {
    // SAFETY: by the caller's contract.
    unsafe { ptr::copy_nonoverlapping(from, to, 1) };
}

/// Fast per-thread xorshift for select's random choice.
pub(crate) fn rand_below(n: usize) -> usize {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u32> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            // Seed from the address of the thread-local and the clock.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            x = ((s as *const Cell<u32> as usize as u32) ^ t.rotate_left(16)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        ((x as u64 * n as u64) >> 32) as usize
    })
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! Every interleaving of the completion protocol: a claim is delivered
    //! exactly once, a wake-up is never lost (loom reports a deadlock if an
    //! owner could park forever), an abort and a claim never both win, and
    //! the owner never returns while its claimer still uses the context.

    use loom::sync::Arc;
    use loom::sync::atomic::AtomicBool as Flag;

    use super::*;

    /// What a claimer does for node `index`: claim, then complete after
    /// "the lock" (nothing else runs between, as after a real lock release).
    fn claim(ctx: &Ctx, index: usize, packet: Packet) -> bool {
        if !ctx.try_claim(index) {
            return false;
        }
        // SAFETY: claimed above and not completed; the owner keeps `ctx`
        // alive until `released` (what these tests check).
        unsafe { Ctx::complete(ctx, packet) };
        true
    }

    #[test]
    fn loom_a_sole_claim_by_store_wakes_the_owner_exactly_once() {
        // A plain send or receive without deadline: its one claimer claims
        // with a store rather than a CAS.
        loom::model(|| {
            let ctx = Arc::new(Ctx::new());
            let c = ctx.clone();
            let claimer = loom::thread::spawn(move || {
                c.claim_sole(0);
                // SAFETY: claimed above and not completed; the owner keeps
                // `ctx` alive until `released`.
                unsafe { Ctx::complete(&*c, Packet::DONE) };
            });
            assert_eq!(ctx.wait(None, WaitReason::ChanReceive), Some(0));
            assert_eq!(ctx.wait_packet(WaitReason::ChanReceive), Packet::DONE);
            assert!(ctx.released.load(Ordering::Acquire));
            claimer.join().unwrap();
        });
    }

    #[test]
    fn loom_claim_wakes_the_owner_exactly_once() {
        loom::model(|| {
            let ctx = Arc::new(Ctx::new());
            let c = ctx.clone();
            let claimer = loom::thread::spawn(move || assert!(claim(&c, 1, Packet::DONE)));
            assert_eq!(ctx.wait(None, WaitReason::ChanReceive), Some(1));
            assert_eq!(ctx.wait_packet(WaitReason::ChanReceive), Packet::DONE);
            // The owner may now free the context: the claimer is done.
            assert!(ctx.released.load(Ordering::Acquire));
            claimer.join().unwrap();
        });
    }

    /// A different packet per claimer, to tell which one won.
    const PACKETS: [Packet; 2] = [Packet::DONE, Packet::RETRY];

    #[test]
    fn loom_two_claimers_one_winner() {
        loom::model(|| {
            let ctx = Arc::new(Ctx::new());
            let claimers: Vec<_> = [0usize, 1]
                .into_iter()
                .map(|i| {
                    let c = ctx.clone();
                    loom::thread::spawn(move || claim(&c, i, PACKETS[i]))
                })
                .collect();
            let won = ctx.wait(None, WaitReason::Select).unwrap();
            assert_eq!(ctx.wait_packet(WaitReason::Select), PACKETS[won]);
            let wins: Vec<bool> = claimers.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(wins.iter().filter(|&&w| w).count(), 1);
            assert!(wins[won]);
        });
    }

    #[test]
    fn loom_abort_and_claim_never_both_win() {
        loom::model(|| {
            let ctx = Arc::new(Ctx::new());
            let c = ctx.clone();
            let claimer = loom::thread::spawn(move || claim(&c, 0, Packet::RETRY));
            // The owner's deadline passes now: it gives up, unless claimed.
            let outcome = ctx.abort();
            let claimed = match outcome {
                None => false,
                Some(i) => {
                    assert_eq!(i, 0);
                    assert_eq!(ctx.wait_packet(WaitReason::ChanSend), Packet::RETRY);
                    true
                }
            };
            assert_eq!(claimer.join().unwrap(), claimed);
        });
    }

    #[test]
    fn loom_exchange_peer_sees_the_slot() {
        // A zero-capacity exchange: the claimer hands its own context to the
        // owner, who moves a value through the claimer's slot and completes
        // it; both sides finish and the value arrives once.
        loom::model(|| {
            let owner = Arc::new(Ctx::new());
            let moved = Arc::new(Flag::new(false));
            let (o, m) = (owner.clone(), moved.clone());
            let claimer = loom::thread::spawn(move || {
                let mine = Ctx::new();
                let mut slot = 0u32;
                mine.set_slot((&raw mut slot).cast());
                assert!(o.try_claim(0));
                // SAFETY: claimed, not completed; `mine` outlives the
                // exchange (we wait for its packet and release below).
                unsafe { Ctx::complete(&*o, Packet::exchange(&mine)) };
                assert_eq!(mine.wait_packet(WaitReason::ChanReceive), Packet::DONE);
                assert!(m.load(Ordering::Acquire));
                slot
            });
            assert_eq!(owner.wait(None, WaitReason::ChanSend), Some(0));
            let packet = owner.wait_packet(WaitReason::ChanSend);
            let peer = packet.exchange_peer().expect("an exchange packet");
            // SAFETY: the peer waits for our completion, so it is alive.
            unsafe {
                move_msg(&42u32, Ctx::slot_of(peer).cast::<u32>());
                moved.store(true, Ordering::Release);
                Ctx::complete(peer, Packet::DONE);
            }
            assert_eq!(claimer.join().unwrap(), 42);
        });
    }
}
