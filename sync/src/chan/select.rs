//! `Select` and the engine behind `select!`.
//!
//! A selection runs in rounds:
//!
//! 1. **Try**: visit the operations in a random order (Fisher-Yates, so
//!    each ready operation is equally likely to win, as in Go) and commit
//!    the first one that can proceed now. Committing is done under that
//!    channel's lock and leaves a [`Token`] describing what was secured: a
//!    buffer reservation, a claimed peer waiter, disconnection, a timer tick.
//!    A channel whose lock-free readiness hint says "no" is skipped without
//!    locking it (a parking select thus locks each channel twice, to
//!    register and to unregister, as Go's does, not three times).
//! 2. **Register**: put one [`Node`] per operation into the channels'
//!    queues, all pointing at one shared [`Ctx`]. Each registration checks
//!    readiness under the channel's lock first; if an operation became
//!    ready meanwhile, the select aborts itself and goes back to step 1.
//! 3. **Wait**: park until a claimer CASes the shared state to
//!    `SELECTED + i` (exactly one can), or until the earliest deadline (the
//!    caller's timeout or a timer channel's delivery) passes and the select
//!    aborts itself. With no time left (`default`, `try_select`, a passed
//!    timeout) it aborts at once: a round that registered everywhere and
//!    was not claimed found nothing ready at the instant of the abort,
//!    which the try pass alone cannot promise.
//! 4. **Unregister** every node (the claimed one is already unlinked), then
//!    take the claimer's packet: a reservation, an exchange, or `Packet::RETRY`
//!    (the channel was closed or the peer gave up), which starts a new round.
//!
//! The selected operation is completed afterwards by
//! [`SelectedOperation::send`] / [`SelectedOperation::recv`], which the
//! `select!` macro calls right away.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;
use std::time::{Duration, Instant};

use corun_runtime::{WaitReason, park, park_deadline, yield_point};

use super::err::{
    ReadyTimeoutError, RecvError, SelectTimeoutError, SendError, TryReadyError, TrySelectError,
};
use super::waiter::{Claimed, Ctx, Node, Packet, rand_below};
use super::{Receiver, Sender};

/// What a committed operation secured; completed or cancelled later.
pub(crate) enum Token {
    /// Nothing (observers, or not yet selected).
    None,
    /// A buffer slot (send) or a buffered message (receive) is reserved,
    /// by the select's own try pass or (`woken`) by the waker of a blocked
    /// select.
    Reserved { woken: bool },
    /// A waiting peer was claimed (zero-capacity channels).
    Peer(Claimed),
    /// A peer claimed us and waits for us to move the value through its slot.
    Exchange(*const Ctx),
    /// The channel is disconnected: the operation fails at once.
    Disconnected,
    /// A timer channel's message.
    Instant(Instant),
    /// The claimer moved the message into the select arm's own slot (a
    /// `*mut T` of a `select!` receive arm), which holds it until the
    /// token is completed or cancelled.
    Filled(*mut ()),
}

/// The operations of one end of a channel that a select needs.
pub(crate) trait Selectable {
    /// A lock-free hint: `false` only if the operation could not proceed as
    /// of the last change this thread can see. Lets the try pass skip
    /// locking channels that are not ready; registration re-checks.
    fn may_be_ready(&self) -> bool;
    /// Commits the operation if it can proceed now.
    fn try_select(&self, token: &mut Token) -> bool;
    /// Could the operation proceed now? (No commitment.)
    fn is_ready(&self) -> bool;
    /// When the operation becomes ready by itself (timer channels).
    fn deadline(&self) -> Option<Instant>;
    /// Queues `node` unless the operation is ready (then returns true).
    fn register(&self, node: &Node, ctx: &Ctx) -> bool;
    /// Unlinks `node` if it is still queued.
    fn unregister(&self, node: &Node);
    /// Undoes a committed but never completed operation.
    fn cancel(&self, token: Token);
}

/// One operation of a selection. Used by the `select!` macro; not a stable
/// interface.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Op<'a> {
    handle: &'a dyn Selectable,
    index: usize,
    ptr: *const u8,
    /// Hand-off slot of a `select!` receive arm, or null.
    slot: *mut (),
}

impl<'a> Op<'a> {
    /// A send on `s`, reported as `index`.
    pub fn send<T>(s: &'a Sender<T>, index: usize) -> Op<'a> {
        Op {
            handle: s,
            index,
            ptr: s as *const Sender<T> as *const u8,
            slot: ptr::null_mut(),
        }
    }

    /// A receive on `r`, reported as `index`.
    pub fn recv<T>(r: &'a Receiver<T>, index: usize) -> Op<'a> {
        Op {
            handle: r,
            index,
            ptr: r as *const Receiver<T> as *const u8,
            slot: ptr::null_mut(),
        }
    }

    /// A receive arm of `select!` with its own hand-off slot, so that a
    /// sender can give it the message directly, as to a plain receiver.
    pub fn recv_arm<T>(arm: &'a RecvArm<'a, T>, index: usize) -> Op<'a> {
        Op {
            slot: arm.slot.get().cast(),
            ..Op::recv(arm.receiver, index)
        }
    }
}

/// A `select!` receive arm: the receiver and a slot for a direct hand-off.
/// Used by the macro; not a stable interface.
#[doc(hidden)]
pub struct RecvArm<'a, T> {
    receiver: &'a Receiver<T>,
    /// Filled by a claimer; the message then belongs to the `Filled` token
    /// (completing or cancelling it moves or drops the message), so this
    /// never drops what it holds.
    slot: UnsafeCell<MaybeUninit<T>>,
}

impl<'a, T> RecvArm<'a, T> {
    /// An arm receiving from `receiver`.
    pub fn new(receiver: &'a Receiver<T>) -> RecvArm<'a, T> {
        RecvArm {
            receiver,
            slot: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The receiver.
    pub fn receiver(&self) -> &'a Receiver<T> {
        self.receiver
    }
}

pub(crate) enum Timeout {
    Now,
    Never,
    At(Instant),
}

impl Timeout {
    fn after(d: Duration) -> Timeout {
        Instant::now()
            .checked_add(d)
            .map_or(Timeout::Never, Timeout::At)
    }
}

const INLINE_NODES: usize = 8;

fn node_for(ctx: &Ctx, ops: &[Op<'_>], k: usize, observe: bool) -> Node {
    if observe || k >= ops.len() {
        Node::new(ctx, k, ptr::null_mut(), observe)
    } else {
        Node::new(ctx, k, ops[k].slot, false)
    }
}

/// Runs a selection (or, with `observe`, waits for readiness only).
/// Returns the chosen operation and its token, or `None` on timeout.
pub(crate) fn run<'a>(
    ops: &mut [Op<'a>],
    timeout: Timeout,
    biased: bool,
    observe: bool,
) -> Option<(Op<'a>, Token)> {
    let n = ops.len();
    if n == 0 {
        match timeout {
            Timeout::Now => return None,
            Timeout::Never => loop {
                park(WaitReason::SelectNoCases);
            },
            Timeout::At(d) => {
                while !park_deadline(WaitReason::SelectNoCases, d) {}
                return None;
            }
        }
    }
    yield_point();
    if !biased {
        for i in (1..n).rev() {
            ops.swap(i, rand_below(i + 1));
        }
    }
    loop {
        // 1. Try. Channels whose hint says they are not ready are not
        // locked: if one became ready since, its registration (under its
        // lock) sees it and this round starts again.
        for op in ops.iter() {
            if !op.handle.may_be_ready() {
                continue;
            }
            if observe {
                if op.handle.is_ready() {
                    return Some((*op, Token::None));
                }
            } else {
                let mut token = Token::None;
                if op.handle.try_select(&mut token) {
                    return Some((*op, token));
                }
            }
        }
        // With no time left to wait, "nothing is ready" must still have
        // been true at one instant, as Go's select decides it with every
        // channel locked. The try pass above looked at one channel after
        // another: a peer may have filled one it had passed and emptied
        // one it had yet to see, with at least one ready throughout
        // (crossbeam's `linearizable_default` and `linearizable_timeout`
        // tests race exactly that). So register as a blocking select
        // would, and give up at once: a peer that made an operation ready
        // after its registration checked it has claimed us by then, and
        // the abort fails.
        let (now, mut wake_at) = match timeout {
            Timeout::Now => (true, None),
            Timeout::Never => (false, None),
            Timeout::At(d) => (Instant::now() >= d, Some(d)),
        };
        for op in ops.iter() {
            if let Some(d) = op.handle.deadline() {
                wake_at = Some(wake_at.map_or(d, |w| w.min(d)));
            }
        }

        // 2. Register.
        let ctx = Ctx::new();
        let inline: [Node; INLINE_NODES];
        let heap: Vec<Node>;
        let nodes: &[Node] = if n <= INLINE_NODES {
            inline = std::array::from_fn(|k| node_for(&ctx, ops, k, observe));
            &inline[..n]
        } else {
            heap = (0..n).map(|k| node_for(&ctx, ops, k, observe)).collect();
            &heap
        };
        let mut registered = 0;
        let mut ready = false;
        for (op, node) in ops.iter().zip(nodes) {
            if op.handle.register(node, &ctx) {
                ready = true;
                break;
            }
            registered += 1;
            if !ctx.is_waiting() {
                break;
            }
        }

        // 3. Wait.
        let selected = if ready || now {
            ctx.abort()
        } else {
            ctx.wait(wake_at, WaitReason::Select)
        };

        // 4. Unregister: afterwards no claimer can reach `nodes`. The node
        // we were claimed through is off its queue already (every claimer
        // unlinks a node before it claims the owner, under that channel's
        // lock, and we saw the claim with Acquire), so its lock is skipped.
        for (op, node) in ops.iter().zip(nodes).take(registered) {
            if selected != Some(node.index) {
                op.handle.unregister(node);
            }
        }
        let Some(k) = selected else {
            if now && !ready {
                // Nothing was ready when every node had been queued.
                return None;
            }
            continue;
        };
        let packet = ctx.wait_packet(WaitReason::Select);
        let token = if packet == Packet::RETRY {
            continue;
        } else if packet == Packet::DONE {
            // Observers, and arms with a slot that a sender filled.
            if ops[k].slot.is_null() {
                Token::None
            } else {
                Token::Filled(ops[k].slot)
            }
        } else if packet == Packet::RESERVED {
            Token::Reserved { woken: true }
        } else {
            Token::Exchange(packet.exchange_peer().expect("an exchange packet"))
        };
        return Some((ops[k], token));
    }
}

/// Selection over a set of operations, the dynamic counterpart of
/// [`select!`](crate::select).
///
/// Add operations with [`send`](Select::send) and [`recv`](Select::recv),
/// then pick one with [`select`](Select::select) (blocking),
/// [`try_select`](Select::try_select) or
/// [`select_timeout`](Select::select_timeout), and complete it with
/// [`SelectedOperation::send`] / [`SelectedOperation::recv`]. The `ready`
/// family only reports which operation could proceed.
///
/// When several operations are ready, one is chosen uniformly at random
/// (unless the selection is [`new_biased`](Select::new_biased)).
///
/// ```
/// use corun_sync::chan::{unbounded, Select};
///
/// let (s1, r1) = unbounded::<i32>();
/// let (s2, r2) = unbounded::<i32>();
/// s2.send(7).unwrap();
///
/// let mut sel = Select::new();
/// let i1 = sel.recv(&r1);
/// let i2 = sel.recv(&r2);
/// let oper = sel.select();
/// match oper.index() {
///     i if i == i1 => panic!("r1 is empty"),
///     i if i == i2 => assert_eq!(oper.recv(&r2), Ok(7)),
///     _ => unreachable!(),
/// }
/// # drop(s1);
/// ```
pub struct Select<'a> {
    ops: Vec<Op<'a>>,
    next_index: usize,
    biased: bool,
}

// SAFETY: a `Select` holds only operations made by `Op::send` and `Op::recv`
// (`select!`'s arms with slots live in the macro's own array): a shared
// reference to a `Sender` or `Receiver` used through `Selectable`, its
// address (compared, never read through) and a null slot. What `select`,
// `ready` and their kin call through `Selectable` moves no message: with a
// null slot no sender hands anything over, and messages move only in
// `SelectedOperation::send`/`recv`, which need the `Sender`/`Receiver` on
// the completing thread (and `SelectedOperation` is neither `Send` nor
// `Sync`). The channel state they do touch (queues, counts, waiters) sits
// behind the channel's lock and atomics, which every thread may use,
// whatever the message type. crossbeam-channel's `Select` is `Send` and
// `Sync` on the same grounds, and code written for it moves selections
// between threads.
unsafe impl Send for Select<'_> {}
// SAFETY: a shared `&Select` offers only `clone` (a copy of the same
// operations, sound to move as argued for `Send`) and `Debug`, which reads
// nothing.
unsafe impl Sync for Select<'_> {}

impl<'a> Select<'a> {
    /// An empty selection that picks among ready operations at random.
    ///
    /// ```
    /// use corun_sync::chan::{bounded, Select};
    ///
    /// let (s, r) = bounded::<u8>(1);
    /// s.send(1).unwrap();
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// assert_eq!(op.recv(&r), Ok(1));
    /// ```
    pub fn new() -> Select<'a> {
        Select {
            ops: Vec::with_capacity(4),
            next_index: 0,
            biased: false,
        }
    }

    /// An empty selection that prefers operations in the order they were
    /// added.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    ///
    /// let (s1, r1) = unbounded::<u8>();
    /// let (s2, r2) = unbounded::<u8>();
    /// s1.send(1).unwrap();
    /// s2.send(2).unwrap();
    /// // Both are ready: a biased selection always takes the first one added.
    /// let mut sel = Select::new_biased();
    /// let first = sel.recv(&r1);
    /// sel.recv(&r2);
    /// let op = sel.select();
    /// assert_eq!(op.index(), first);
    /// assert_eq!(op.recv(&r1), Ok(1));
    /// ```
    pub fn new_biased() -> Select<'a> {
        Select {
            biased: true,
            ..Select::new()
        }
    }

    /// Adds a send on `s`; returns the operation's index.
    ///
    /// ```
    /// use corun_sync::chan::{bounded, Select};
    ///
    /// let (s, r) = bounded::<&str>(1);
    /// let mut sel = Select::new();
    /// let i = sel.send(&s);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i);
    /// op.send(&s, "hi").unwrap();
    /// assert_eq!(r.recv(), Ok("hi"));
    /// ```
    pub fn send<T>(&mut self, s: &'a Sender<T>) -> usize {
        let i = self.next_index;
        self.ops.push(Op::send(s, i));
        self.next_index += 1;
        i
    }

    /// Adds a receive on `r`; returns the operation's index.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// corun_runtime::go!(move || s.send(5).unwrap());
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// let op = sel.select(); // parks until the coroutine sends
    /// assert_eq!(op.index(), i);
    /// assert_eq!(op.recv(&r), Ok(5));
    /// ```
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        let i = self.next_index;
        self.ops.push(Op::recv(r, i));
        self.next_index += 1;
        i
    }

    /// Removes the operation with `index`.
    ///
    /// # Panics
    /// If no operation has that index (never added, or removed already).
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    ///
    /// let (s1, r1) = unbounded::<i32>();
    /// let (s2, r2) = unbounded::<i32>();
    /// s1.send(1).unwrap();
    /// s2.send(2).unwrap();
    /// let mut sel = Select::new();
    /// let i1 = sel.recv(&r1);
    /// let i2 = sel.recv(&r2);
    /// sel.remove(i1); // r1 is no longer a candidate
    /// let op = sel.select();
    /// assert_eq!(op.index(), i2);
    /// assert_eq!(op.recv(&r2), Ok(2));
    /// ```
    pub fn remove(&mut self, index: usize) {
        assert!(
            index < self.next_index,
            "index out of bounds; {} >= {}",
            index,
            self.next_index,
        );
        let pos = self
            .ops
            .iter()
            .position(|op| op.index == index)
            .expect("no operation with this index");
        self.ops.swap_remove(pos);
    }

    /// Picks an operation that can proceed now, without blocking.
    ///
    /// ```
    /// use corun_sync::chan::{bounded, Select};
    ///
    /// let (s, r) = bounded::<i32>(0);
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert!(sel.try_select().is_err(), "nobody is sending");
    /// # drop(s);
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'a>, TrySelectError> {
        run(&mut self.ops, Timeout::Now, self.biased, false)
            .map(SelectedOperation::new)
            .ok_or(TrySelectError)
    }

    /// Blocks until an operation can proceed and picks it. With no
    /// operations, blocks forever (wait reason "select (no cases)").
    ///
    /// ```
    /// use corun_sync::chan::{after, unbounded, Select};
    /// use std::time::Duration;
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let timeout = after(Duration::from_millis(5));
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// let t = sel.recv(&timeout);
    /// let op = sel.select();
    /// assert_eq!(op.index(), t, "only the timer fires");
    /// op.recv(&timeout).unwrap();
    /// ```
    pub fn select(&mut self) -> SelectedOperation<'a> {
        let picked = run(&mut self.ops, Timeout::Never, self.biased, false);
        SelectedOperation::new(picked.expect("a selection without timeout picks"))
    }

    /// Like [`select`](Select::select), giving up after `timeout`.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    /// use std::time::Duration;
    ///
    /// let (_s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// assert!(sel.select_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn select_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        run(&mut self.ops, Timeout::after(timeout), self.biased, false)
            .map(SelectedOperation::new)
            .ok_or(SelectTimeoutError)
    }

    /// Like [`select`](Select::select), giving up at `deadline`.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    /// use std::time::{Duration, Instant};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// s.send(3).unwrap();
    /// let mut sel = Select::new();
    /// sel.recv(&r);
    /// let op = sel.select_deadline(Instant::now() + Duration::from_secs(1)).unwrap();
    /// assert_eq!(op.recv(&r), Ok(3));
    /// ```
    pub fn select_deadline(
        &mut self,
        deadline: Instant,
    ) -> Result<SelectedOperation<'a>, SelectTimeoutError> {
        run(&mut self.ops, Timeout::At(deadline), self.biased, false)
            .map(SelectedOperation::new)
            .ok_or(SelectTimeoutError)
    }

    /// The index of an operation that is ready now, without committing to
    /// it. Another thread may still take it first: check again when acting.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// assert!(sel.try_ready().is_err());
    /// s.send(1).unwrap();
    /// assert_eq!(sel.try_ready(), Ok(i));
    /// assert_eq!(r.try_recv(), Ok(1), "ready does not take the message");
    /// ```
    pub fn try_ready(&mut self) -> Result<usize, TryReadyError> {
        run(&mut self.ops, Timeout::Now, self.biased, true)
            .map(|(op, _)| op.index)
            .ok_or(TryReadyError)
    }

    /// Blocks until an operation is ready and returns its index (without
    /// committing to it; it may return spuriously, so check when acting).
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// corun_runtime::go!(move || s.send(9).unwrap());
    /// let mut sel = Select::new();
    /// let i = sel.recv(&r);
    /// assert_eq!(sel.ready(), i);
    /// assert_eq!(r.recv(), Ok(9));
    /// ```
    pub fn ready(&mut self) -> usize {
        run(&mut self.ops, Timeout::Never, self.biased, true)
            .map(|(op, _)| op.index)
            .expect("waiting without timeout returns an operation")
    }

    /// Like [`ready`](Select::ready), giving up after `timeout`.
    ///
    /// ```
    /// use corun_sync::chan::{bounded, Select};
    /// use std::time::Duration;
    ///
    /// let (s, _r) = bounded::<i32>(0);
    /// let mut sel = Select::new();
    /// sel.send(&s);
    /// assert!(sel.ready_timeout(Duration::from_millis(5)).is_err(), "no receiver");
    /// ```
    pub fn ready_timeout(&mut self, timeout: Duration) -> Result<usize, ReadyTimeoutError> {
        run(&mut self.ops, Timeout::after(timeout), self.biased, true)
            .map(|(op, _)| op.index)
            .ok_or(ReadyTimeoutError)
    }

    /// Like [`ready`](Select::ready), giving up at `deadline`.
    ///
    /// ```
    /// use corun_sync::chan::{bounded, Select};
    /// use std::time::{Duration, Instant};
    ///
    /// let (s, _r) = bounded::<i32>(1);
    /// let mut sel = Select::new();
    /// let i = sel.send(&s);
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(sel.ready_deadline(deadline), Ok(i), "there is room in the buffer");
    /// ```
    pub fn ready_deadline(&mut self, deadline: Instant) -> Result<usize, ReadyTimeoutError> {
        run(&mut self.ops, Timeout::At(deadline), self.biased, true)
            .map(|(op, _)| op.index)
            .ok_or(ReadyTimeoutError)
    }
}

impl Default for Select<'_> {
    fn default() -> Self {
        Select::new()
    }
}

impl Clone for Select<'_> {
    fn clone(&self) -> Self {
        Select {
            ops: self.ops.clone(),
            next_index: self.next_index,
            biased: self.biased,
        }
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Select { .. }")
    }
}

/// The operation a selection picked. It must be completed with
/// [`send`](SelectedOperation::send) or [`recv`](SelectedOperation::recv),
/// passing the same `Sender`/`Receiver` reference that was added.
///
/// # Panics
/// Dropping it without completing it panics (after undoing the
/// reservation, so the channel stays consistent).
///
/// ```
/// use corun_sync::chan::{bounded, Select};
///
/// let (s, r) = bounded::<i32>(1);
/// let mut sel = Select::new();
/// let send = sel.send(&s);
/// let op = sel.select();
/// assert_eq!(op.index(), send);
/// op.send(&s, 1).unwrap(); // completing it consumes it
/// assert_eq!(r.recv(), Ok(1));
/// ```
#[must_use]
pub struct SelectedOperation<'a> {
    token: Option<Token>,
    index: usize,
    ptr: *const u8,
    handle: &'a dyn Selectable,
    _marker: PhantomData<&'a ()>,
}

impl<'a> SelectedOperation<'a> {
    fn new((op, token): (Op<'a>, Token)) -> SelectedOperation<'a> {
        SelectedOperation {
            token: Some(token),
            index: op.index,
            ptr: op.ptr,
            handle: op.handle,
            _marker: PhantomData,
        }
    }

    /// The index of the picked operation.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, Select};
    ///
    /// let (s1, _r1) = unbounded::<i32>();
    /// let (_s2, r2) = unbounded::<i32>();
    /// let mut sel = Select::new();
    /// sel.recv(&r2);
    /// let i = sel.send(&s1);
    /// let op = sel.select();
    /// assert_eq!(op.index(), i, "the send can proceed, the receive cannot");
    /// op.send(&s1, 0).unwrap();
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Completes the picked send with `msg`.
    ///
    /// A selected send on a buffered channel holds a slot: if the last
    /// receiver leaves before this call, it still succeeds and `msg` is
    /// dropped with what was buffered, as in crossbeam-channel. A
    /// [`Sender::close`] in between fails it and hands `msg` back.
    ///
    /// # Panics
    /// If `s` is not the sender that was added for this operation.
    ///
    /// ```
    /// use corun_sync::chan::{bounded, Select};
    ///
    /// let (s, r) = bounded::<String>(1);
    /// drop(r);
    /// let mut sel = Select::new();
    /// sel.send(&s);
    /// let op = sel.select(); // a send on a disconnected channel is "ready"...
    /// let err = op.send(&s, "lost".to_string()).unwrap_err();
    /// assert_eq!(err.into_inner(), "lost"); // ...and hands the message back
    /// ```
    pub fn send<T>(mut self, s: &Sender<T>, msg: T) -> Result<(), SendError<T>> {
        assert!(
            ptr::eq(s as *const Sender<T> as *const u8, self.ptr),
            "passed a sender that wasn't selected",
        );
        let token = self.token.take().expect("completed once");
        s.complete_send(token, msg)
    }

    /// Completes the picked receive.
    ///
    /// # Panics
    /// If `r` is not the receiver that was added for this operation.
    ///
    /// ```
    /// use corun_sync::chan::{unbounded, RecvError, Select};
    ///
    /// let (s, r) = unbounded::<i32>();
    /// s.send(1).unwrap();
    /// drop(s);
    /// for expected in [Ok(1), Err(RecvError)] {
    ///     let mut sel = Select::new();
    ///     sel.recv(&r);
    ///     assert_eq!(sel.select().recv(&r), expected);
    /// }
    /// ```
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        assert!(
            ptr::eq(r as *const Receiver<T> as *const u8, self.ptr),
            "passed a receiver that wasn't selected",
        );
        let token = self.token.take().expect("completed once");
        r.complete_recv(token)
    }
}

impl Drop for SelectedOperation<'_> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.handle.cancel(token);
            if !std::thread::panicking() {
                panic!("dropped `SelectedOperation` without completing the operation");
            }
        }
    }
}

impl fmt::Debug for SelectedOperation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("SelectedOperation { .. }")
    }
}

/// Entry points of the `select!` macro; not a stable interface.
#[doc(hidden)]
pub mod __private {
    use std::time::Duration;

    pub use super::{Op, RecvArm, SelectedOperation};
    use super::{Timeout, run};

    /// Blocking selection.
    pub fn select<'a>(ops: &mut [Op<'a>], biased: bool) -> SelectedOperation<'a> {
        SelectedOperation::new(run(ops, Timeout::Never, biased, false).expect("no timeout"))
    }

    /// Non-blocking selection.
    pub fn try_select<'a>(ops: &mut [Op<'a>], biased: bool) -> Option<SelectedOperation<'a>> {
        run(ops, Timeout::Now, biased, false).map(SelectedOperation::new)
    }

    /// Selection with a timeout.
    pub fn select_timeout<'a>(
        ops: &mut [Op<'a>],
        timeout: Duration,
        biased: bool,
    ) -> Option<SelectedOperation<'a>> {
        run(ops, Timeout::after(timeout), biased, false).map(SelectedOperation::new)
    }
}
