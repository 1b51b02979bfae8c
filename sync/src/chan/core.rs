//! The message-carrying channel: bounded (`cap > 0`), unbounded
//! (`cap == usize::MAX`) and zero-capacity (`cap == 0`, Go's unbuffered
//! channel) share one structure, Go's `hchan`: a buffer and two waiter
//! queues behind one short spin lock.
//!
//! Invariants (outside the lock):
//! - a live receiver (one whose owner is still `WAITING`) is queued only
//!   while no unreserved message is buffered (`buf.len() <= res_recv`);
//! - a live sender is queued only while the buffer has no free slot
//!   (`buf.len() + res_send >= cap`); for `cap == 0`, live senders and live
//!   receivers of different owners are never queued at the same time;
//! - after `closed`, no waiter is queued except observers of other owners'
//!   selects being registered (they re-check under the lock).
//!
//! A sender that finds a live receiver hands the message straight into the
//! receiver's slot (no copy through the buffer); a receiver that frees a
//! slot moves the first blocked sender's message into the buffer. Select
//! arms have no slot: they are given a reservation (`Packet::RESERVED`) on
//! buffered channels, and on zero-capacity ones the claimer hands them its
//! own context so they move the value through its slot (an exchange).
//!
//! Messages move by pointer (`*_from` and `*_into`): a send's message stays
//! where `send` put it until a receiver or the buffer takes it, a receive
//! writes into the memory `recv` returns from, and the slots above are
//! those two places. The by-value functions are thin wrappers around them.
//! So a large message costs one copy on each side's stack, not one per
//! step (see docs/channels.md, "Large messages").
//!
//! Once a select has used a channel, every unlock publishes a readiness
//! hint (`Chan::hint`) computed from the state it leaves: whether a receive
//! or a send could proceed. A select's first pass reads the hints without
//! locking and locks only the channels whose hint says "maybe". The hint
//! errs only towards "maybe" (it counts queued waiters without checking
//! they are live, and says "maybe" until a select turned it on), and it is
//! exact about the state as of the last unlock; a select that must not
//! miss readiness (its registration) re-checks under the lock anyway.
//! Channels no select touches pay one test per unlock for this.

use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::Instant;

use corun_runtime::{WaitReason, yield_point};

use super::buffer::Buffer;
use super::err::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use super::lock::{Guard, SpinLock};
use super::select::Token;
use super::waiter::{Claimed, Ctx, Node, Packet, Queue, Wakes, move_msg};

/// `cap` of an unbounded channel.
pub(crate) const UNBOUNDED: usize = usize::MAX;

pub(crate) struct Chan<T> {
    inner: SpinLock<Inner<T>>,
    cap: usize,
    pub(crate) senders: AtomicUsize,
    pub(crate) receivers: AtomicUsize,
    /// Mirrors `Inner::closed` for lock-free `is_closed`.
    closed: AtomicBool,
    /// `HINTED | RECV_MAYBE | SEND_MAYBE` as of the last unlock once
    /// `Inner::hinted`, 0 before (see the module doc).
    hint: AtomicU8,
}

/// A receive might proceed: a message is buffered, a sender waits, or the
/// channel is closed.
const RECV_MAYBE: u8 = 1;
/// A send might proceed: buffer room, a waiting receiver, or disconnection.
const SEND_MAYBE: u8 = 2;
/// The other two bits are maintained.
const HINTED: u8 = 4;

/// The channel's lock held; publishes the readiness hint as it unlocks.
struct Locked<'a, T> {
    chan: &'a Chan<T>,
    guard: Guard<'a, Inner<T>>,
}

impl<T> Deref for Locked<'_, T> {
    type Target = Inner<T>;
    fn deref(&self) -> &Inner<T> {
        &self.guard
    }
}

impl<T> DerefMut for Locked<'_, T> {
    fn deref_mut(&mut self) -> &mut Inner<T> {
        &mut self.guard
    }
}

impl<T> Drop for Locked<'_, T> {
    fn drop(&mut self) {
        if !self.guard.hinted {
            return;
        }
        // Before the guard's release store (fields drop after this), so a
        // thread that takes the lock next, or synchronises with one that
        // did, reads this hint or a newer one.
        let hint = self.chan.hint_of(&self.guard);
        if self.chan.hint.load(Ordering::Relaxed) != hint {
            self.chan.hint.store(hint, Ordering::Relaxed);
        }
    }
}

struct Inner<T> {
    buf: Buffer<T>,
    /// Free slots promised to selected send operations not yet completed.
    res_send: usize,
    /// Buffered messages promised to selected receive operations.
    res_recv: usize,
    /// Of `res_recv`, those a waker made for a blocked select (rather than
    /// the select's own try pass): `len` counts such a message until its
    /// receiver takes it (see `Chan::len`).
    woken_recv: usize,
    /// Closed by `Sender::close` or by the last sender going away.
    closed: bool,
    /// Every receiver is gone.
    rx_gone: bool,
    /// A select has used the channel: unlocks publish `Chan::hint`.
    hinted: bool,
    recvq: Queue,
    sendq: Queue,
}

/// How a send began. Only `Sent` took the message from the sender's memory.
enum SendStart {
    Sent,
    Full,
    Disconnected,
    /// A slot-less select arm was claimed; it takes the message from us.
    Exchange(*const Ctx),
}

/// How a receive began. Only `Got` wrote a message to the receiver's memory.
enum RecvStart {
    Got,
    Empty,
    Disconnected,
    /// A slot-less select arm was claimed; it gives us the message.
    Exchange(*const Ctx),
}

/// Why a send failed; the message is still in the sender's memory.
enum SendFailed {
    Full,
    Disconnected,
    Timeout,
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        Chan {
            inner: SpinLock::new(Inner {
                buf: Buffer::new(cap),
                res_send: 0,
                res_recv: 0,
                woken_recv: 0,
                closed: false,
                rx_gone: false,
                hinted: false,
                recvq: Queue::new(),
                sendq: Queue::new(),
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
            closed: AtomicBool::new(false),
            hint: AtomicU8::new(0),
        }
    }

    /// Every access to the state goes through here, so that every unlock
    /// publishes the hint.
    #[inline]
    fn lock(&self) -> Locked<'_, T> {
        Locked {
            chan: self,
            guard: self.inner.lock(),
        }
    }

    /// What `g` allows, erring towards "maybe" (see the module doc).
    #[inline]
    fn hint_of(&self, g: &Inner<T>) -> u8 {
        // Non-short-circuit `|`: this runs at every unlock of a hinted
        // channel, and a few flag computations cost less than as many
        // branches. The buffer terms are always false for `cap == 0`.
        let gone = g.closed | g.rx_gone;
        let (recv, send) = if self.cap == 0 {
            (g.closed | !g.sendq.is_empty(), gone | !g.recvq.is_empty())
        } else {
            let len = g.buf.len();
            (
                (len > g.res_recv) | g.closed | !g.sendq.is_empty(),
                gone | !g.recvq.is_empty() | (len + g.res_send < self.cap),
            )
        };
        HINTED | (recv as u8 * RECV_MAYBE) | (send as u8 * SEND_MAYBE)
    }

    /// Could a receive proceed? A lock-free hint: `false` means it could
    /// not as of the last unlock this thread can see.
    #[inline]
    pub(crate) fn may_recv(&self) -> bool {
        self.hint.load(Ordering::Relaxed) & (HINTED | RECV_MAYBE) != HINTED
    }

    /// Could a send proceed? A hint, as [`Chan::may_recv`].
    #[inline]
    pub(crate) fn may_send(&self) -> bool {
        self.hint.load(Ordering::Relaxed) & (HINTED | SEND_MAYBE) != HINTED
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        (self.cap != UNBOUNDED).then_some(self.cap)
    }

    /// Messages sent and not yet received, as crossbeam counts them: a
    /// slot reserved for a selected send counts, as in crossbeam, whose
    /// selection holds its slot from the moment `select` returns (and
    /// `try_send` fails for it here too, so `len` agrees with `is_full`).
    /// A message its try pass reserved for its receive does not (crossbeam
    /// claims it at once), but one reserved for a blocked select that the
    /// channel woke counts until taken, as crossbeam's woken selects, which
    /// claim only when they run, are seen. Otherwise `len()` could say 0
    /// while no send can proceed (see docs/channels.md,
    /// `select::fairness2`). Never above the capacity:
    /// a send that finds a blocked select hands it its message (as Go's
    /// does) even while the buffer holds messages reserved for selects woken
    /// before, so the woken reservations alone can outnumber the slots.
    pub(crate) fn len(&self) -> usize {
        let g = self.lock();
        let len = g.buf.len() + g.res_send - (g.res_recv - g.woken_recv);
        len.min(self.cap)
    }

    /// Whether `try_send` would find no free slot (it may still succeed by
    /// handing the message to a waiting receiver).
    pub(crate) fn is_full(&self) -> bool {
        match self.cap {
            0 => true,
            UNBOUNDED => false,
            cap => {
                let g = self.lock();
                g.buf.len() + g.res_send >= cap
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_send_closed(&self) -> bool {
        let g = self.lock();
        g.closed || g.rx_gone
    }

    /// # Safety
    /// `msg` holds a message the caller owns. If this returns `Sent`, the
    /// message was moved out and the caller must neither use nor drop it;
    /// otherwise it is still there.
    unsafe fn start_send(&self, g: &mut Inner<T>, msg: *const T, wakes: &mut Wakes) -> SendStart {
        if g.closed || g.rx_gone {
            return SendStart::Disconnected;
        }
        if !g.recvq.is_empty()
            && let Some(c) = g.recvq.claim_first(wakes)
        {
            // SAFETY: the caller's contract.
            return unsafe { self.give_to_receiver(g, c, msg, wakes) };
        }
        if g.buf.len() + g.res_send < self.cap {
            // SAFETY: the caller's contract; we report `Sent`.
            unsafe { g.buf.push_from(msg) };
            SendStart::Sent
        } else {
            SendStart::Full
        }
    }

    /// Hands the message at `msg` to the claimed receiver `c`.
    ///
    /// # Safety
    /// As for [`Chan::start_send`].
    unsafe fn give_to_receiver(
        &self,
        g: &mut Inner<T>,
        c: Claimed,
        msg: *const T,
        wakes: &mut Wakes,
    ) -> SendStart {
        if !c.slot.is_null() {
            // SAFETY: `c` was claimed by us and not completed: its slot is
            // ours to fill until the packet is published. The message is
            // the caller's to give (we report `Sent`).
            unsafe { move_msg(msg, c.slot.cast::<T>()) };
            // SAFETY: claimed, not completed.
            unsafe { wakes.push(c.ctx, Packet::DONE) };
            SendStart::Sent
        } else if self.cap > 0 {
            // A select arm: keep the message buffered for it.
            // SAFETY: the caller's contract; we report `Sent`.
            unsafe { g.buf.push_from(msg) };
            g.res_recv += 1;
            g.woken_recv += 1;
            // SAFETY: claimed, not completed.
            unsafe { wakes.push(c.ctx, Packet::RESERVED) };
            SendStart::Sent
        } else {
            SendStart::Exchange(c.ctx)
        }
    }

    /// # Safety
    /// `out` is valid for a write of a `T` and holds nothing to drop. If
    /// this returns `Got`, it holds a message the caller now owns.
    unsafe fn start_recv(&self, g: &mut Inner<T>, out: *mut T, wakes: &mut Wakes) -> RecvStart {
        if g.buf.len() > g.res_recv {
            // SAFETY: the caller's contract.
            let took = unsafe { g.buf.pop_into(out) };
            assert!(took, "an unreserved message is buffered");
            if !g.sendq.is_empty() {
                self.refill(g, wakes);
            }
            return RecvStart::Got;
        }
        if self.cap == 0
            && !g.sendq.is_empty()
            && let Some(c) = g.sendq.claim_first(wakes)
        {
            if c.slot.is_null() {
                return RecvStart::Exchange(c.ctx);
            }
            // SAFETY: claimed, not completed: the blocked sender's slot
            // holds its message, ours to take until the packet is
            // published; `out` by the caller's contract.
            unsafe { move_msg(c.slot.cast::<T>(), out) };
            // SAFETY: claimed, not completed.
            unsafe { wakes.push(c.ctx, Packet::DONE) };
            return RecvStart::Got;
        }
        if g.closed {
            RecvStart::Disconnected
        } else {
            RecvStart::Empty
        }
    }

    /// Buffer slots are free: let waiting senders in.
    fn refill(&self, g: &mut Inner<T>, wakes: &mut Wakes) -> bool {
        let mut progress = false;
        while g.buf.len() + g.res_send < self.cap && !g.sendq.is_empty() {
            let Some(c) = g.sendq.claim_first(wakes) else {
                break;
            };
            progress = true;
            if c.slot.is_null() {
                g.res_send += 1;
                // SAFETY: claimed, not completed.
                unsafe { wakes.push(c.ctx, Packet::RESERVED) };
            } else {
                // SAFETY: claimed, not completed: the blocked sender's slot
                // holds its message, ours to take until the packet is
                // published.
                unsafe { g.buf.push_from(c.slot.cast::<T>()) };
                // SAFETY: claimed, not completed.
                unsafe { wakes.push(c.ctx, Packet::DONE) };
            }
        }
        progress
    }

    /// Unreserved messages are buffered: hand them to waiting receivers.
    fn feed(&self, g: &mut Inner<T>, wakes: &mut Wakes) -> bool {
        let mut progress = false;
        while g.buf.len() > g.res_recv && !g.recvq.is_empty() {
            let Some(c) = g.recvq.claim_first(wakes) else {
                break;
            };
            progress = true;
            if c.slot.is_null() {
                g.res_recv += 1;
                g.woken_recv += 1;
                // SAFETY: claimed, not completed.
                unsafe { wakes.push(c.ctx, Packet::RESERVED) };
            } else {
                // SAFETY: claimed, not completed: the receiver's slot is
                // ours to fill until the packet is published.
                let took = unsafe { g.buf.pop_into(c.slot.cast::<T>()) };
                assert!(took, "an unreserved message is buffered");
                // SAFETY: claimed, not completed.
                unsafe { wakes.push(c.ctx, Packet::DONE) };
            }
        }
        progress
    }

    /// Restores the invariants after reservations changed.
    fn pump(&self, g: &mut Inner<T>, wakes: &mut Wakes) {
        if self.cap == 0 {
            return;
        }
        while self.refill(g, wakes) | self.feed(g, wakes) {}
    }

    pub(crate) fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        // SAFETY: `try_send_from` moves the message out only when it
        // succeeds (its contract).
        unsafe {
            send_in_place(
                msg,
                |m| self.try_send_from(m),
                |e, m| match e {
                    SendFailed::Full | SendFailed::Timeout => TrySendError::Full(m),
                    SendFailed::Disconnected => TrySendError::Disconnected(m),
                },
            )
        }
    }

    /// # Safety
    /// `msg` holds a message the caller gives up if this succeeds: on `Ok`
    /// it was moved out; on `Err` it is still there.
    unsafe fn try_send_from(&self, msg: *const T) -> Result<(), SendFailed> {
        yield_point();
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        // SAFETY: the caller's contract.
        let r = unsafe { self.start_send(&mut g, msg, &mut wakes) };
        drop(g);
        wakes.wake();
        match r {
            SendStart::Sent => Ok(()),
            SendStart::Full => Err(SendFailed::Full),
            SendStart::Disconnected => Err(SendFailed::Disconnected),
            // SAFETY: the caller's contract.
            SendStart::Exchange(peer) => match unsafe { exchange_send(peer, msg) } {
                true => Ok(()),
                false => Err(SendFailed::Full),
            },
        }
    }

    pub(crate) fn send(
        &self,
        msg: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        // SAFETY: as in `try_send`, for `send_from`.
        unsafe {
            send_in_place(
                msg,
                |m| self.send_from(m, deadline),
                |e, m| match e {
                    SendFailed::Full | SendFailed::Timeout => SendTimeoutError::Timeout(m),
                    SendFailed::Disconnected => SendTimeoutError::Disconnected(m),
                },
            )
        }
    }

    /// Sends the message at `msg`, waiting for room (or a receiver) until
    /// `deadline`. The message stays in the caller's memory until a
    /// receiver or the buffer takes it: a blocked sender's node points at
    /// it, so no frame here holds a copy.
    ///
    /// # Safety
    /// As for [`Chan::try_send_from`].
    unsafe fn send_from(&self, msg: *const T, deadline: Option<Instant>) -> Result<(), SendFailed> {
        loop {
            let mut wakes = Wakes::new();
            let mut g = self.lock();
            // SAFETY: the caller's contract.
            match unsafe { self.start_send(&mut g, msg, &mut wakes) } {
                SendStart::Full => {}
                r => {
                    drop(g);
                    wakes.wake();
                    // Done without parking: still a yield point (a park
                    // would have been one).
                    yield_point();
                    match r {
                        SendStart::Sent => return Ok(()),
                        SendStart::Disconnected => return Err(SendFailed::Disconnected),
                        // SAFETY: the caller's contract.
                        SendStart::Exchange(peer) => match unsafe { exchange_send(peer, msg) } {
                            true => return Ok(()),
                            false => continue,
                        },
                        SendStart::Full => unreachable!(),
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                drop(g);
                wakes.wake();
                yield_point();
                return Err(SendFailed::Timeout);
            }
            let ctx = Ctx::new();
            let slot = msg.cast_mut().cast::<()>();
            let node = match deadline {
                None => Node::sole(&ctx, slot),
                Some(_) => Node::new(&ctx, 0, slot, false),
            };
            // SAFETY: `node` and `ctx` stay in this frame, unmoved, and the
            // message at `msg` stays put (the caller's contract), until the
            // node is unlinked (by a claimer or `remove` below) and the
            // claimer's packet has been consumed.
            unsafe { g.sendq.push_back(&node) };
            if self.cap == 0 && !g.recvq.is_empty() {
                g.recvq.wake_observers(&mut wakes);
            }
            drop(g);
            wakes.wake();
            if ctx.wait(deadline, WaitReason::ChanSend).is_none() {
                self.lock().sendq.remove(&node);
                return Err(SendFailed::Timeout);
            }
            if ctx.wait_packet(WaitReason::ChanSend) == Packet::DONE {
                return Ok(());
            }
            // Packet::RETRY: closed, or the claimer's select was abandoned; the
            // message was not taken.
        }
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut out = MaybeUninit::uninit();
        // SAFETY: `out` is ours to fill; initialised exactly on `Ok`.
        match unsafe { self.try_recv_into(out.as_mut_ptr()) } {
            // SAFETY: filled on `Ok`.
            Ok(()) => Ok(unsafe { out.assume_init() }),
            Err(e) => Err(e),
        }
    }

    /// # Safety
    /// `out` is valid for a write of a `T` and holds nothing to drop; on
    /// `Ok` it holds a message the caller now owns.
    unsafe fn try_recv_into(&self, out: *mut T) -> Result<(), TryRecvError> {
        yield_point();
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        // SAFETY: the caller's contract.
        let r = unsafe { self.start_recv(&mut g, out, &mut wakes) };
        drop(g);
        wakes.wake();
        match r {
            RecvStart::Got => Ok(()),
            RecvStart::Empty => Err(TryRecvError::Empty),
            RecvStart::Disconnected => Err(TryRecvError::Disconnected),
            // SAFETY: the caller's contract.
            RecvStart::Exchange(peer) => match unsafe { exchange_recv(peer, out) } {
                true => Ok(()),
                false => Err(TryRecvError::Empty),
            },
        }
    }

    /// Receives, waiting until `deadline`; a failure is reported as `err`
    /// makes it (so that the message goes straight into the caller's
    /// result, rather than through a second result it is converted from).
    #[inline]
    pub(crate) fn recv<E>(
        &self,
        deadline: Option<Instant>,
        err: impl FnOnce(RecvTimeoutError) -> E,
    ) -> Result<T, E> {
        let mut out = MaybeUninit::uninit();
        // SAFETY: as in `try_recv`.
        match unsafe { self.recv_into(out.as_mut_ptr(), deadline) } {
            // SAFETY: filled on `Ok`.
            Ok(()) => Ok(unsafe { out.assume_init() }),
            Err(e) => Err(err(e)),
        }
    }

    /// Receives into `out`, waiting until `deadline`. A blocked receiver's
    /// node points at `out`, so the sender or the buffer moves the message
    /// straight there.
    ///
    /// # Safety
    /// As for [`Chan::try_recv_into`].
    unsafe fn recv_into(
        &self,
        out: *mut T,
        deadline: Option<Instant>,
    ) -> Result<(), RecvTimeoutError> {
        loop {
            let mut wakes = Wakes::new();
            let mut g = self.lock();
            // SAFETY: the caller's contract.
            match unsafe { self.start_recv(&mut g, out, &mut wakes) } {
                RecvStart::Empty => {}
                r => {
                    drop(g);
                    wakes.wake();
                    // As in `send_from`.
                    yield_point();
                    match r {
                        RecvStart::Got => return Ok(()),
                        RecvStart::Disconnected => return Err(RecvTimeoutError::Disconnected),
                        // SAFETY: the caller's contract.
                        RecvStart::Exchange(peer) => match unsafe { exchange_recv(peer, out) } {
                            true => return Ok(()),
                            false => continue,
                        },
                        RecvStart::Empty => unreachable!(),
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                drop(g);
                wakes.wake();
                yield_point();
                return Err(RecvTimeoutError::Timeout);
            }
            let ctx = Ctx::new();
            let node = match deadline {
                None => Node::sole(&ctx, out.cast()),
                Some(_) => Node::new(&ctx, 0, out.cast(), false),
            };
            // SAFETY: as in `send_from`, with `out` in place of the
            // message, writable by the caller's contract.
            unsafe { g.recvq.push_back(&node) };
            if self.cap == 0 && !g.sendq.is_empty() {
                g.sendq.wake_observers(&mut wakes);
            }
            drop(g);
            wakes.wake();
            if ctx.wait(deadline, WaitReason::ChanReceive).is_none() {
                self.lock().recvq.remove(&node);
                return Err(RecvTimeoutError::Timeout);
            }
            if ctx.wait_packet(WaitReason::ChanReceive) == Packet::DONE {
                return Ok(());
            }
            // Packet::RETRY: closed; look again.
        }
    }

    /// Closes the channel; false if it already was.
    pub(crate) fn close(&self) -> bool {
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        if g.closed {
            return false;
        }
        g.closed = true;
        self.closed.store(true, Ordering::Release);
        g.recvq.claim_all(Packet::RETRY, &mut wakes);
        g.sendq.claim_all(Packet::RETRY, &mut wakes);
        drop(g);
        wakes.wake();
        true
    }

    /// The last receiver is gone: drop what is buffered, fail the senders.
    pub(crate) fn disconnect_receivers(&self) {
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        g.rx_gone = true;
        let buf = std::mem::replace(&mut g.buf, Buffer::new(0));
        // Reservations of buffered messages go with them: none can be
        // completed or cancelled now (a selected receive borrows a
        // receiver), but one leaked with `mem::forget` would otherwise
        // outnumber the empty buffer and underflow `len`.
        g.res_recv = 0;
        g.woken_recv = 0;
        g.sendq.claim_all(Packet::RETRY, &mut wakes);
        g.recvq.claim_all(Packet::RETRY, &mut wakes);
        drop(g);
        wakes.wake();
        // Oldest first, outside the lock (see `Buffer`'s drop).
        drop(buf);
    }

    // ---- select support ----

    pub(crate) fn try_select_send(&self, token: &mut Token) -> bool {
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        let ok = if g.closed || g.rx_gone {
            *token = Token::Disconnected;
            true
        } else if self.cap == 0 {
            match g.recvq.claim_first(&mut wakes) {
                Some(c) => {
                    *token = Token::Peer(c);
                    true
                }
                None => false,
            }
        } else if g.buf.len() + g.res_send < self.cap {
            g.res_send += 1;
            *token = Token::Reserved { woken: false };
            true
        } else {
            false
        };
        drop(g);
        wakes.wake();
        ok
    }

    pub(crate) fn try_select_recv(&self, token: &mut Token) -> bool {
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        let ok = if g.buf.len() > g.res_recv {
            g.res_recv += 1;
            *token = Token::Reserved { woken: false };
            true
        } else if let Some(c) = (self.cap == 0 && !g.sendq.is_empty())
            .then(|| g.sendq.claim_first(&mut wakes))
            .flatten()
        {
            *token = Token::Peer(c);
            true
        } else if g.closed {
            *token = Token::Disconnected;
            true
        } else {
            false
        };
        drop(g);
        wakes.wake();
        ok
    }

    fn send_ready(&self, g: &Inner<T>, own: *const Ctx) -> bool {
        g.closed
            || g.rx_gone
            || if self.cap == 0 {
                g.recvq.has_live(own)
            } else {
                g.buf.len() + g.res_send < self.cap
            }
    }

    fn recv_ready(&self, g: &Inner<T>, own: *const Ctx) -> bool {
        g.buf.len() > g.res_recv || g.closed || (self.cap == 0 && g.sendq.has_live(own))
    }

    pub(crate) fn is_send_ready(&self) -> bool {
        self.send_ready(&self.lock(), std::ptr::null())
    }

    pub(crate) fn is_recv_ready(&self) -> bool {
        self.recv_ready(&self.lock(), std::ptr::null())
    }

    /// Queues a select arm's `node` unless the send is ready (then true).
    pub(crate) fn register_send(&self, node: &Node, ctx: &Ctx) -> bool {
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        // Selects block on this channel: from now on its unlocks keep the
        // readiness hint for their try passes.
        g.hinted = true;
        if self.send_ready(&g, ctx) {
            return true;
        }
        // SAFETY: the select keeps `node` and `ctx` alive and in place
        // until it has unregistered every node (see `select::run`).
        unsafe { g.sendq.push_back(node) };
        if self.cap == 0 && !node.observer && !g.recvq.is_empty() {
            g.recvq.wake_observers(&mut wakes);
        }
        drop(g);
        wakes.wake();
        false
    }

    /// Queues a select arm's `node` unless the receive is ready (then true).
    pub(crate) fn register_recv(&self, node: &Node, ctx: &Ctx) -> bool {
        let mut wakes = Wakes::new();
        let mut g = self.lock();
        g.hinted = true; // as in `register_send`
        if self.recv_ready(&g, ctx) {
            return true;
        }
        // SAFETY: as in `register_send`.
        unsafe { g.recvq.push_back(node) };
        if self.cap == 0 && !node.observer && !g.sendq.is_empty() {
            g.sendq.wake_observers(&mut wakes);
        }
        drop(g);
        wakes.wake();
        false
    }

    pub(crate) fn unregister_send(&self, node: &Node) {
        self.lock().sendq.remove(node);
    }

    pub(crate) fn unregister_recv(&self, node: &Node) {
        self.lock().recvq.remove(node);
    }

    /// Completes a selected send.
    pub(crate) fn complete_send(&self, token: Token, msg: T) -> Result<(), SendError<T>> {
        // SAFETY: as in `try_send`, for `complete_send_from`.
        unsafe {
            send_in_place(
                msg,
                |m| self.complete_send_from(token, m),
                |_, m| SendError(m),
            )
        }
    }

    /// # Safety
    /// As for [`Chan::try_send_from`]; `token` came from this channel's
    /// send operation.
    unsafe fn complete_send_from(&self, token: Token, msg: *const T) -> Result<(), SendFailed> {
        match token {
            Token::Reserved { .. } => {
                let mut wakes = Wakes::new();
                let mut g = self.lock();
                g.res_send -= 1;
                let mut discarded = None;
                let r = if g.closed {
                    self.pump(&mut g, &mut wakes);
                    Err(SendFailed::Disconnected)
                } else if g.rx_gone {
                    // The slot was promised: as in crossbeam, the send
                    // succeeds and its message goes the way of what was
                    // buffered when the receivers left.
                    // SAFETY: the caller's contract; we report `Ok`, so the
                    // message is ours, read once.
                    discarded = Some(unsafe { msg.read() });
                    Ok(())
                } else {
                    match g.recvq.claim_first(&mut wakes) {
                        Some(c) => {
                            // SAFETY: the caller's contract; every outcome
                            // of a hand-off takes the message (`Exchange`
                            // is only for zero capacity).
                            let _ = unsafe { self.give_to_receiver(&mut g, c, msg, &mut wakes) };
                        }
                        // The slot was reserved for us: push even if a
                        // select arm's hand-off overfilled the buffer.
                        // SAFETY: the caller's contract; we report `Ok`.
                        None => unsafe { g.buf.push_from(msg) },
                    }
                    // A direct hand-off leaves our reserved slot free:
                    // let a blocked sender have it, or it would wait while
                    // receivers wait on an empty buffer.
                    self.pump(&mut g, &mut wakes);
                    Ok(())
                };
                drop(g);
                wakes.wake();
                // Outside the lock: its destructor may use the channel.
                drop(discarded);
                r
            }
            Token::Peer(c) => {
                if c.slot.is_null() {
                    // SAFETY: the caller's contract.
                    if unsafe { exchange_send(c.ctx, msg) } {
                        Ok(())
                    } else {
                        // The peer abandoned its select: send normally.
                        // SAFETY: the caller's contract.
                        unsafe { self.send_from(msg, None) }
                    }
                } else {
                    // SAFETY: claimed by our select, not completed: its slot
                    // is ours to fill; the message is the caller's to give.
                    unsafe { move_msg(msg, c.slot.cast::<T>()) };
                    // SAFETY: as above.
                    unsafe { Ctx::complete(c.ctx, Packet::DONE) };
                    Ok(())
                }
            }
            Token::Exchange(peer) => {
                // SAFETY: `peer` handed us its context and waits for us to
                // fill its slot; the message is the caller's to give.
                unsafe { move_msg(msg, Ctx::slot_of(peer).cast::<T>()) };
                // SAFETY: as above.
                unsafe { Ctx::complete(peer, Packet::DONE) };
                Ok(())
            }
            Token::Disconnected => Err(SendFailed::Disconnected),
            Token::None | Token::Instant(_) | Token::Filled(_) => unreachable!("not a send token"),
        }
    }

    /// Completes a selected receive.
    pub(crate) fn complete_recv(&self, token: Token) -> Result<T, RecvError> {
        let mut out = MaybeUninit::uninit();
        // SAFETY: as in `try_recv`.
        match unsafe { self.complete_recv_into(token, out.as_mut_ptr()) } {
            // SAFETY: filled on `Ok`.
            Ok(()) => Ok(unsafe { out.assume_init() }),
            Err(e) => Err(e),
        }
    }

    /// # Safety
    /// As for [`Chan::try_recv_into`]; `token` came from this channel's
    /// receive operation.
    unsafe fn complete_recv_into(&self, token: Token, out: *mut T) -> Result<(), RecvError> {
        match token {
            Token::Reserved { woken } => {
                let mut wakes = Wakes::new();
                let mut g = self.lock();
                g.res_recv -= 1;
                g.woken_recv -= woken as usize;
                // SAFETY: the caller's contract.
                let took = unsafe { g.buf.pop_into(out) };
                assert!(took, "a reserved message is buffered");
                self.pump(&mut g, &mut wakes);
                drop(g);
                wakes.wake();
                Ok(())
            }
            Token::Peer(c) => {
                if c.slot.is_null() {
                    // SAFETY: the caller's contract.
                    if unsafe { exchange_recv(c.ctx, out) } {
                        Ok(())
                    } else {
                        // The peer abandoned its select: receive normally.
                        // SAFETY: the caller's contract.
                        unsafe { self.recv_into(out, None) }.map_err(|_| RecvError)
                    }
                } else {
                    // SAFETY: claimed by our select, not completed: the
                    // blocked sender's slot holds its message, ours to take.
                    unsafe { move_msg(c.slot.cast::<T>(), out) };
                    // SAFETY: as above.
                    unsafe { Ctx::complete(c.ctx, Packet::DONE) };
                    Ok(())
                }
            }
            Token::Exchange(peer) => {
                // SAFETY: `peer` handed us its context and waits for us to
                // empty its slot, which holds its message.
                unsafe { move_msg(Ctx::slot_of(peer).cast::<T>(), out) };
                // SAFETY: as above.
                unsafe { Ctx::complete(peer, Packet::DONE) };
                Ok(())
            }
            Token::Filled(slot) => {
                // SAFETY: the claimer filled our arm's slot before
                // publishing `Packet::DONE`; nobody else touches it any more.
                unsafe { move_msg(slot.cast::<T>(), out) };
                Ok(())
            }
            Token::Disconnected => Err(RecvError),
            Token::None | Token::Instant(_) => unreachable!("not a receive token"),
        }
    }

    /// Undoes a selected operation that is dropped without being completed.
    pub(crate) fn cancel(&self, token: Token, send: bool) {
        match token {
            Token::Reserved { woken } => {
                let mut wakes = Wakes::new();
                let mut g = self.lock();
                if send {
                    g.res_send -= 1;
                } else {
                    g.res_recv -= 1;
                    g.woken_recv -= woken as usize;
                }
                self.pump(&mut g, &mut wakes);
                drop(g);
                wakes.wake();
            }
            Token::Peer(Claimed { ctx, .. }) | Token::Exchange(ctx) => {
                // SAFETY: claimed by us (or handed to us) and not completed.
                unsafe { Ctx::complete(ctx, Packet::RETRY) };
            }
            // A filled arm slot is only produced for `select!`, which
            // completes at once; should it not, the message is dropped
            // here (the arm's slot does not drop what it holds).
            Token::Filled(slot) => {
                // SAFETY: the claimer filled the arm's slot before
                // publishing `Packet::DONE`, and this token, the only way to the
                // message, is being consumed.
                unsafe { std::ptr::drop_in_place(slot.cast::<T>()) };
            }
            Token::Disconnected | Token::None | Token::Instant(_) => {}
        }
    }
}

/// Sends `msg` from where it lies with `send`, which is given its address;
/// if that fails, `err` makes the error that hands the message back.
///
/// # Safety
/// `send` moves the message out of the address it is given only when it
/// returns `Ok`.
#[inline(always)]
unsafe fn send_in_place<T, E>(
    msg: T,
    send: impl FnOnce(*const T) -> Result<(), SendFailed>,
    err: impl FnOnce(SendFailed, T) -> E,
) -> Result<(), E> {
    let msg = MaybeUninit::new(msg);
    match send(msg.as_ptr()) {
        Ok(()) => Ok(()),
        Err(e) => {
            // SAFETY: a failed send leaves the message where it was
            // (the caller's contract), and `msg` is not read again.
            Err(err(e, unsafe { msg.assume_init() }))
        }
    }
}

/// We claimed `peer`, a slot-less select arm: it takes the message from
/// `msg`. False, with the message still there, if the peer abandoned its
/// select.
///
/// # Safety
/// We claimed `peer` and have not completed it; `msg` holds a message the
/// caller gives up if this returns true.
unsafe fn exchange_send<T>(peer: *const Ctx, msg: *const T) -> bool {
    let ctx = Ctx::new();
    ctx.set_slot(msg.cast_mut().cast());
    // SAFETY: the caller's contract; our context and the message stay in
    // place until the peer completes us (we wait for that below).
    unsafe { Ctx::complete(peer, Packet::exchange(&ctx)) };
    ctx.wait_packet(WaitReason::ChanSend) == Packet::DONE
}

/// We claimed `peer`, a slot-less select arm: it puts its message into
/// `out`. False, with `out` untouched, if the peer abandoned its select.
///
/// # Safety
/// We claimed `peer` and have not completed it; `out` is valid for a write
/// of a `T` and holds nothing to drop.
unsafe fn exchange_recv<T>(peer: *const Ctx, out: *mut T) -> bool {
    let ctx = Ctx::new();
    ctx.set_slot(out.cast());
    // SAFETY: as in `exchange_send`.
    unsafe { Ctx::complete(peer, Packet::exchange(&ctx)) };
    ctx.wait_packet(WaitReason::ChanReceive) == Packet::DONE
}

#[cfg(test)]
mod tests {
    use crate::chan::{Select, bounded, unbounded};

    /// A selected receive that is leaked (`mem::forget` is safe) keeps its
    /// reservation; once the last receiver leaves, the reserved message is
    /// dropped with the rest of the buffer, and `len` must not count the
    /// reservation against a buffer that no longer holds it.
    #[test]
    fn len_is_zero_once_the_receivers_left_despite_a_leaked_selected_receive() {
        for (s, r) in [bounded::<u32>(4), unbounded()] {
            s.send(1).unwrap();
            let mut sel = Select::new();
            sel.recv(&r);
            std::mem::forget(sel.select());
            drop(sel);
            drop(r);
            assert_eq!(s.len(), 0);
            assert!(s.is_empty());
        }
    }
}
