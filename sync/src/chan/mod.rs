//! Channels: Go's CSP channels with crossbeam-channel's API.
//!
//! This module is a superset of crossbeam-channel 0.5: code written for it
//! compiles and behaves the same after changing the import path (including
//! the [`select!`](crate::select) macro, reachable here as
//! `corun_sync::chan::select!`). What it adds, from Go:
//!
//! - [`Sender::close`] and [`Sender::is_closed`]: after a close, sends fail
//!   and hand the message back; receivers first drain what is buffered,
//!   then see the channel disconnected.
//! - [`bounded(0)`](bounded) is Go's unbuffered channel: a send waits for a
//!   receiver and hands the message straight to it.
//! - Blocking operations park the calling coroutine (wait reasons
//!   "chan send", "chan receive", "select"), leaving its thread to other
//!   coroutines; on a plain OS thread they park the thread. A channel can
//!   be shared between coroutines and threads in any combination.
//! - Where Go panics (send on a closed channel, closing twice) these
//!   channels return errors or `false`.
//!
//! `docs/channels.md` explains the design.
//!
//! ```
//! use corun_sync::chan::{bounded, select};
//!
//! corun_runtime::run(|| {
//!     let (tx, rx) = bounded::<u32>(0);
//!     let h = corun_runtime::go!(move || {
//!         for i in 0..3 {
//!             tx.send(i).unwrap();
//!         }
//!     });
//!     let got: Vec<u32> = rx.iter().collect();
//!     assert_eq!(got, [0, 1, 2]);
//!     h.join().unwrap();
//! });
//! ```

mod at;
#[macro_use]
mod select_macro;
mod buffer;
mod core;
mod err;
pub(crate) mod lock;
mod ring;
mod select;
mod tick;
pub(crate) mod waiter;

use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use corun_runtime::{WaitReason, park, park_deadline, yield_point};

use self::at::At;
use self::core::{Chan, UNBOUNDED};
use self::select::{Selectable, Token};
use self::tick::Tick;
use self::waiter::{Ctx, Node};

pub use self::err::{
    ReadyTimeoutError, RecvError, RecvTimeoutError, SelectTimeoutError, SendError,
    SendTimeoutError, TryReadyError, TryRecvError, TrySelectError, TrySendError,
};
#[doc(hidden)]
pub use self::select::__private;
pub use self::select::{Select, SelectedOperation};
#[doc(hidden)]
pub use crate::crossbeam_channel_internal;
pub use crate::{select, select_biased};

/// Parks until `deadline` (never returns early).
fn sleep_until(deadline: Instant, reason: WaitReason) {
    while !park_deadline(reason, deadline) {}
}

/// Parks until `deadline`, or forever without one.
fn wait_forever_or(deadline: Option<Instant>, reason: WaitReason) {
    match deadline {
        Some(d) => sleep_until(d, reason),
        None => loop {
            park(reason);
        },
    }
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A channel of unlimited capacity: sends never block.
///
/// ```
/// let (s, r) = corun_sync::chan::unbounded();
/// for i in 0..1000 {
///     s.send(i).unwrap();
/// }
/// assert_eq!(r.len(), 1000);
/// assert_eq!(r.recv(), Ok(0));
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(UNBOUNDED));
    (
        Sender { chan: chan.clone() },
        Receiver {
            flavor: Flavor::Chan(chan),
        },
    )
}

/// A channel holding at most `cap` messages; sends block while it is full.
///
/// `bounded(0)` is Go's unbuffered channel: every send waits for a
/// receiver and hands the message directly to it.
///
/// ```
/// use std::time::Duration;
/// use corun_sync::chan::{bounded, TrySendError};
///
/// let (s, r) = bounded(1);
/// s.send(1).unwrap();
/// assert_eq!(s.try_send(2), Err(TrySendError::Full(2)));
/// assert_eq!(r.recv(), Ok(1));
///
/// let (s0, r0) = bounded::<&str>(0);
/// let h = std::thread::spawn(move || r0.recv_timeout(Duration::from_secs(10)));
/// s0.send("hand-off").unwrap(); // returns once the receiver has it
/// assert_eq!(h.join().unwrap(), Ok("hand-off"));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    // A capacity of `usize::MAX` means unbounded, which is what it is.
    let chan = Arc::new(Chan::new(cap));
    (
        Sender { chan: chan.clone() },
        Receiver {
            flavor: Flavor::Chan(chan),
        },
    )
}

/// A receiver that delivers the current time once, after `duration`.
///
/// No thread or runtime timer is used: receivers and selects park with the
/// delivery time as their deadline.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let r = corun_sync::chan::after(Duration::from_millis(5));
/// let t = r.recv().unwrap();
/// assert!(t >= start + Duration::from_millis(5));
/// assert!(r.try_recv().is_err()); // only one message
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    match Instant::now().checked_add(duration) {
        Some(when) => at(when),
        None => never(),
    }
}

/// A receiver that delivers `when` once, at `when`.
///
/// ```
/// use std::time::{Duration, Instant};
/// let when = Instant::now() + Duration::from_millis(2);
/// let r = corun_sync::chan::at(when);
/// assert!(r.recv().unwrap() >= when);
/// ```
pub fn at(when: Instant) -> Receiver<Instant> {
    Receiver {
        flavor: Flavor::At(Arc::new(At::new(when)), std::convert::identity),
    }
}

/// A receiver that never delivers and is never disconnected. Useful to
/// disable a `select!` arm, as a nil channel does in Go.
///
/// ```
/// use std::time::Duration;
/// use corun_sync::chan::{never, select, unbounded};
///
/// let (s, r) = unbounded::<i32>();
/// s.send(1).unwrap();
/// let maybe = if false { r.clone() } else { never() };
/// select! {
///     recv(maybe) -> _ => panic!("never delivers"),
///     default(Duration::from_millis(1)) => {}
/// }
/// ```
pub fn never<T>() -> Receiver<T> {
    Receiver {
        flavor: Flavor::Never,
    }
}

/// A receiver that delivers the time every `duration`. Ticks that nobody
/// receives in time are dropped, not queued.
///
/// ```
/// use std::time::Duration;
///
/// let ticks = corun_sync::chan::tick(Duration::from_millis(1));
/// let a = ticks.recv().unwrap();
/// let b = ticks.recv().unwrap();
/// assert!(b >= a + Duration::from_millis(1));
/// ```
pub fn tick(duration: Duration) -> Receiver<Instant> {
    if Instant::now().checked_add(duration).is_none() {
        return never();
    }
    Receiver {
        flavor: Flavor::Tick(Arc::new(Tick::new(duration)), std::convert::identity),
    }
}

/// The sending half of a channel. Clone it for more producers.
///
/// When the last sender is dropped (or any sender calls
/// [`close`](Sender::close)), receivers drain what is buffered and then
/// see the channel as disconnected.
///
/// ```
/// use corun_sync::chan::bounded;
/// let (s, r) = bounded::<u32>(1);
/// let s2 = s.clone();
/// s.send(1).unwrap();
/// drop(s);
/// corun_runtime::spawn(move || s2.send(2).unwrap());
/// assert_eq!(r.iter().collect::<Vec<_>>(), [1, 2]); // ends when both are gone
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends without blocking: fails with `Full` if the buffer is full (for
    /// a zero-capacity channel: if no receiver is waiting).
    ///
    /// ```
    /// use corun_sync::chan::{TrySendError, bounded};
    /// let (s, _r) = bounded(1);
    /// assert!(s.try_send(1).is_ok());
    /// assert_eq!(s.try_send(2), Err(TrySendError::Full(2)));
    /// ```
    pub fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(msg)
    }

    /// Sends, waiting for room (or, at capacity 0, for a receiver). Fails
    /// only if the channel is disconnected or closed, handing `msg` back.
    ///
    /// ```
    /// use corun_sync::chan::{SendError, bounded};
    /// let (s, r) = bounded(0);
    /// let h = corun_runtime::spawn(move || r.recv().unwrap());
    /// s.send("hi").unwrap(); // waits for the receiver
    /// assert_eq!(h.join().unwrap(), "hi");
    /// // The receiver is gone: the message comes back in the error.
    /// assert_eq!(s.send("lost?"), Err(SendError("lost?")));
    /// ```
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        self.chan.send(msg, None).map_err(|e| match e {
            SendTimeoutError::Disconnected(m) => SendError(m),
            SendTimeoutError::Timeout(_) => unreachable!("no deadline"),
        })
    }

    /// Like [`send`](Sender::send), giving up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::chan::{SendTimeoutError, bounded};
    /// let (s, _r) = bounded(0); // nobody receives
    /// let e = s.send_timeout(5, Duration::from_millis(2)).unwrap_err();
    /// assert_eq!(e, SendTimeoutError::Timeout(5));
    /// ```
    pub fn send_timeout(&self, msg: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, deadline_after(timeout))
    }

    /// Like [`send`](Sender::send), giving up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (s, r) = corun_sync::chan::bounded(1);
    /// s.send_deadline(1, Instant::now() + Duration::from_millis(5)).unwrap();
    /// assert_eq!(r.recv(), Ok(1));
    /// ```
    pub fn send_deadline(&self, msg: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(msg, Some(deadline))
    }

    /// True if no message is buffered (always for capacity 0).
    ///
    /// ```
    /// let (s, _r) = corun_sync::chan::bounded(2);
    /// assert!(s.is_empty());
    /// s.send(1).unwrap();
    /// assert!(!s.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.chan.len() == 0
    }

    /// True if the buffer is full (always for capacity 0, never for
    /// unbounded channels).
    ///
    /// ```
    /// let (s, _r) = corun_sync::chan::bounded(1);
    /// s.send(1).unwrap();
    /// assert!(s.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// Number of buffered messages.
    ///
    /// ```
    /// let (s, _r) = corun_sync::chan::unbounded();
    /// s.send(1).unwrap();
    /// s.send(2).unwrap();
    /// assert_eq!(s.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// The capacity, `None` for unbounded channels.
    ///
    /// ```
    /// let (s, _r) = corun_sync::chan::bounded::<()>(8);
    /// assert_eq!(s.capacity(), Some(8));
    /// let (u, _r) = corun_sync::chan::unbounded::<()>();
    /// assert_eq!(u.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// True if both senders belong to the same channel.
    ///
    /// ```
    /// let (a, _ra) = corun_sync::chan::bounded::<()>(0);
    /// let (b, _rb) = corun_sync::chan::bounded::<()>(0);
    /// assert!(a.same_channel(&a.clone()));
    /// assert!(!a.same_channel(&b));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }

    /// Closes the channel (Go's `close`): every later send fails and hands
    /// its message back; blocked senders and receivers wake up; receivers
    /// get what is still buffered, then `Disconnected`. Returns `false` if
    /// the channel was already closed (Go would panic).
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(4);
    /// s.send(1).unwrap();
    /// assert!(s.close());
    /// assert!(s.is_closed());
    /// assert_eq!(s.send(2).unwrap_err().into_inner(), 2);
    /// assert_eq!(r.recv(), Ok(1));
    /// assert!(r.recv().is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// True if sends fail: the channel was closed, or every receiver is
    /// gone.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded::<()>(1);
    /// assert!(!s.is_closed());
    /// drop(r);
    /// assert!(s.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.is_send_closed()
    }

    fn complete_send(&self, token: Token, msg: T) -> Result<(), SendError<T>> {
        self.chan.complete_send(token, msg)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.close();
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Sender { .. }")
    }
}

impl<T> UnwindSafe for Sender<T> {}
impl<T> RefUnwindSafe for Sender<T> {}

impl<T> Selectable for Sender<T> {
    fn may_be_ready(&self) -> bool {
        self.chan.may_send()
    }
    fn try_select(&self, token: &mut Token) -> bool {
        self.chan.try_select_send(token)
    }
    fn is_ready(&self) -> bool {
        self.chan.is_send_ready()
    }
    fn deadline(&self) -> Option<Instant> {
        None
    }
    fn register(&self, node: &Node, ctx: &Ctx) -> bool {
        self.chan.register_send(node, ctx)
    }
    fn unregister(&self, node: &Node) {
        self.chan.unregister_send(node);
    }
    fn cancel(&self, token: Token) {
        self.chan.cancel(token, true);
    }
}

/// The receiving half of a channel. Clone it for more consumers: each
/// message goes to exactly one of them.
///
/// ```
/// use corun_sync::chan::bounded;
/// let (s, r) = bounded(16);
/// let consumers: Vec<_> = (0..2)
///     .map(|_| {
///         let r = r.clone();
///         corun_runtime::spawn(move || r.iter().count())
///     })
///     .collect();
/// for i in 0..100 {
///     s.send(i).unwrap();
/// }
/// drop(s);
/// let total: usize = consumers.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(total, 100); // each message went to exactly one consumer
/// ```
pub struct Receiver<T> {
    flavor: Flavor<T>,
}

enum Flavor<T> {
    Chan(Arc<Chan<T>>),
    /// Timer channels carry `Instant`s; the function is the identity,
    /// typed so that a `Receiver<Instant>` can hold them.
    At(Arc<At>, fn(Instant) -> T),
    Tick(Arc<Tick>, fn(Instant) -> T),
    Never,
}

impl<T> Receiver<T> {
    /// Receives without blocking.
    ///
    /// ```
    /// use corun_sync::chan::{TryRecvError, bounded};
    /// let (s, r) = bounded(1);
    /// assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
    /// s.send(3).unwrap();
    /// assert_eq!(r.try_recv(), Ok(3));
    /// drop(s);
    /// assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match &self.flavor {
            Flavor::Chan(c) => c.try_recv(),
            Flavor::At(a, f) => a.try_recv().map(f),
            Flavor::Tick(t, f) => t.try_recv().map(f),
            Flavor::Never => {
                yield_point();
                Err(TryRecvError::Empty)
            }
        }
    }

    /// Receives, waiting for a message. Fails once the channel is empty and
    /// disconnected (all senders gone, or closed).
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(0);
    /// corun_runtime::spawn(move || s.send("ping").unwrap());
    /// assert_eq!(r.recv(), Ok("ping"));
    /// assert!(r.recv().is_err()); // sender gone: disconnected
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_inner(None, |e| match e {
            RecvTimeoutError::Disconnected => RecvError,
            RecvTimeoutError::Timeout => unreachable!("no deadline"),
        })
    }

    /// Like [`recv`](Receiver::recv), giving up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::chan::{RecvTimeoutError, bounded};
    /// let (_s, r) = bounded::<u8>(1);
    /// assert_eq!(r.recv_timeout(Duration::from_millis(2)), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv_inner(deadline_after(timeout), |e| e)
    }

    /// Like [`recv`](Receiver::recv), giving up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (s, r) = corun_sync::chan::bounded(1);
    /// s.send(9).unwrap();
    /// assert_eq!(r.recv_deadline(Instant::now() + Duration::from_secs(1)), Ok(9));
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.recv_inner(Some(deadline), |e| e)
    }

    /// Receives until `deadline`, reporting a failure as `err` makes it.
    fn recv_inner<E>(
        &self,
        deadline: Option<Instant>,
        err: impl FnOnce(RecvTimeoutError) -> E,
    ) -> Result<T, E> {
        match &self.flavor {
            Flavor::Chan(c) => c.recv(deadline, err),
            Flavor::At(a, f) => a.recv(deadline).map(f).map_err(err),
            Flavor::Tick(t, f) => t.recv(deadline).map(f).map_err(err),
            Flavor::Never => {
                yield_point();
                wait_forever_or(deadline, WaitReason::ChanReceive);
                Err(err(RecvTimeoutError::Timeout))
            }
        }
    }

    /// True if nothing can be received now.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(1);
    /// assert!(r.is_empty());
    /// s.send(()).unwrap();
    /// assert!(!r.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the buffer is full (always for capacity 0 and `never()`).
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(1);
    /// s.send(()).unwrap();
    /// assert!(r.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.is_full(),
            Flavor::At(..) | Flavor::Tick(..) => !self.is_empty(),
            Flavor::Never => true,
        }
    }

    /// Number of messages that can be received now.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(4);
    /// s.send(1).unwrap();
    /// assert_eq!(r.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        match &self.flavor {
            Flavor::Chan(c) => c.len(),
            Flavor::At(a, _) => a.len(),
            Flavor::Tick(t, _) => usize::from(t.is_ready()),
            Flavor::Never => 0,
        }
    }

    /// The capacity: `None` for unbounded channels, `Some(1)` for timer
    /// channels, `Some(0)` for `never()`.
    ///
    /// ```
    /// let (_s, r) = corun_sync::chan::bounded::<u8>(3);
    /// assert_eq!(r.capacity(), Some(3));
    /// assert_eq!(corun_sync::chan::never::<u8>().capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        match &self.flavor {
            Flavor::Chan(c) => c.capacity(),
            Flavor::At(..) | Flavor::Tick(..) => Some(1),
            Flavor::Never => Some(0),
        }
    }

    /// A blocking iterator: yields messages until the channel is empty and
    /// disconnected.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::unbounded();
    /// corun_runtime::spawn(move || (1..=3).for_each(|i| s.send(i).unwrap()));
    /// assert_eq!(r.iter().sum::<i32>(), 6); // Go's `for v := range ch`
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// A non-blocking iterator over the messages available now.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::unbounded();
    /// s.send(1).unwrap();
    /// s.send(2).unwrap();
    /// assert_eq!(r.try_iter().collect::<Vec<_>>(), [1, 2]); // s is still open
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }

    /// True if both receivers belong to the same channel.
    ///
    /// ```
    /// let (_s, r) = corun_sync::chan::bounded::<()>(0);
    /// assert!(r.same_channel(&r.clone()));
    /// assert!(!r.same_channel(&corun_sync::chan::never()));
    /// ```
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        match (&self.flavor, &other.flavor) {
            (Flavor::Chan(a), Flavor::Chan(b)) => Arc::ptr_eq(a, b),
            (Flavor::At(a, _), Flavor::At(b, _)) => Arc::ptr_eq(a, b),
            (Flavor::Tick(a, _), Flavor::Tick(b, _)) => Arc::ptr_eq(a, b),
            (Flavor::Never, Flavor::Never) => true,
            _ => false,
        }
    }

    /// True if the channel was closed or every sender is gone: once the
    /// buffer is drained, receives fail. Timer channels never close.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(1);
    /// s.send(1).unwrap();
    /// s.close();
    /// assert!(r.is_closed());
    /// assert_eq!(r.recv(), Ok(1)); // still drains what was buffered
    /// ```
    pub fn is_closed(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.is_closed(),
            _ => false,
        }
    }

    fn complete_recv(&self, token: Token) -> Result<T, RecvError> {
        match (&self.flavor, token) {
            (Flavor::Chan(c), token) => c.complete_recv(token),
            (Flavor::At(_, f) | Flavor::Tick(_, f), Token::Instant(t)) => Ok(f(t)),
            _ => unreachable!("token does not match the receiver"),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Flavor::Chan(c) = &self.flavor
            && c.receivers.fetch_sub(1, Ordering::AcqRel) == 1
        {
            c.disconnect_receivers();
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        let flavor = match &self.flavor {
            Flavor::Chan(c) => {
                c.receivers.fetch_add(1, Ordering::Relaxed);
                Flavor::Chan(c.clone())
            }
            Flavor::At(a, f) => Flavor::At(a.clone(), *f),
            Flavor::Tick(t, f) => Flavor::Tick(t.clone(), *f),
            Flavor::Never => Flavor::Never,
        };
        Receiver { flavor }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Receiver { .. }")
    }
}

impl<T> UnwindSafe for Receiver<T> {}
impl<T> RefUnwindSafe for Receiver<T> {}

impl<T> Selectable for Receiver<T> {
    fn may_be_ready(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.may_recv(),
            // Timer channels check readiness without a lock anyway.
            Flavor::At(..) | Flavor::Tick(..) => true,
            Flavor::Never => false,
        }
    }
    fn try_select(&self, token: &mut Token) -> bool {
        let taken = match &self.flavor {
            Flavor::Chan(c) => return c.try_select_recv(token),
            Flavor::At(a, _) => a.try_take(),
            Flavor::Tick(t, _) => t.try_take(),
            Flavor::Never => None,
        };
        match taken {
            Some(t) => {
                *token = Token::Instant(t);
                true
            }
            None => false,
        }
    }
    fn is_ready(&self) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.is_recv_ready(),
            Flavor::At(a, _) => a.is_ready(),
            Flavor::Tick(t, _) => t.is_ready(),
            Flavor::Never => false,
        }
    }
    fn deadline(&self) -> Option<Instant> {
        match &self.flavor {
            Flavor::Chan(_) | Flavor::Never => None,
            Flavor::At(a, _) => a.deadline(),
            Flavor::Tick(t, _) => t.deadline(),
        }
    }
    fn register(&self, node: &Node, ctx: &Ctx) -> bool {
        match &self.flavor {
            Flavor::Chan(c) => c.register_recv(node, ctx),
            // Timer channels are not queued on: the select wakes up at
            // their deadline instead.
            _ => self.is_ready(),
        }
    }
    fn unregister(&self, node: &Node) {
        if let Flavor::Chan(c) = &self.flavor {
            c.unregister_recv(node);
        }
    }
    fn cancel(&self, token: Token) {
        match &self.flavor {
            Flavor::Chan(c) => c.cancel(token, false),
            Flavor::At(a, _) => a.untake(),
            Flavor::Tick(..) | Flavor::Never => {}
        }
    }
}

/// Blocking iterator returned by [`Receiver::iter`].
///
/// ```
/// let (s, r) = corun_sync::chan::bounded(2);
/// s.send('a').unwrap();
/// drop(s);
/// let mut it = r.iter();
/// assert_eq!(it.next(), Some('a'));
/// assert_eq!(it.next(), None);
/// ```
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> std::iter::FusedIterator for Iter<'_, T> {}

impl<T> fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Iter { .. }")
    }
}

/// Non-blocking iterator returned by [`Receiver::try_iter`].
///
/// ```
/// let (_s, r) = corun_sync::chan::bounded::<u8>(2);
/// assert_eq!(r.try_iter().next(), None); // empty now, not closed
/// ```
pub struct TryIter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

impl<T> fmt::Debug for TryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("TryIter { .. }")
    }
}

/// Owning blocking iterator (`for msg in receiver`).
///
/// ```
/// let (s, r) = corun_sync::chan::bounded(2);
/// s.send(1).unwrap();
/// drop(s);
/// for v in r {
///     assert_eq!(v, 1);
/// }
/// ```
pub struct IntoIter<T> {
    receiver: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> std::iter::FusedIterator for IntoIter<T> {}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("IntoIter { .. }")
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { receiver: self }
    }
}
