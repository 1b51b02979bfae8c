//! Go's `context` package: cancellation, deadlines and request-scoped
//! values that flow down a tree of [`Context`]s, plus [`ErrGroup`].
//!
//! A context is cheap to clone (one `Arc`). [`Context::background`] is the
//! root: never cancelled, no deadline, no values. Derived contexts:
//!
//! - [`with_cancel`](Context::with_cancel) returns a [`CancelFn`];
//! - [`with_deadline`](Context::with_deadline) and
//!   [`with_timeout`](Context::with_timeout) also cancel themselves when the
//!   time comes (a runtime timer, no thread per context), with
//!   [`ContextError::DeadlineExceeded`];
//! - [`with_value`](Context::with_value) attaches a value found by type
//!   with [`value`](Context::value).
//!
//! Cancelling a context cancels all its descendants, closes its
//! [`done`](Context::done) channel (usable in [`select!`](crate::select))
//! and sets [`err`](Context::err). A cancelled or expired context stops its
//! timer and detaches from its parent, so a long-running server that makes
//! a context per request keeps no trace of finished ones, as long as each
//! is cancelled or expires. As in Go, call the `CancelFn` when the work is
//! done: a context that is never cancelled stays registered with its
//! parent until the parent is cancelled (dropping the `CancelFn` does
//! *not* cancel).
//!
//! ```
//! use std::time::Duration;
//! use corun_sync::chan::{after, select};
//! use corun_sync::context::{Context, ContextError};
//!
//! let (ctx, cancel) = Context::background().with_timeout(Duration::from_millis(10));
//! let worker = {
//!     let ctx = ctx.clone();
//!     corun_runtime::go!(move || {
//!         select! {
//!             recv(ctx.done()) -> _ => ctx.err(),
//!             recv(after(Duration::from_secs(60))) -> _ => None,
//!         }
//!     })
//! };
//! assert_eq!(worker.join().unwrap(), Some(ContextError::DeadlineExceeded));
//! cancel.cancel(); // no effect now, but always release what you create
//! assert_eq!(ctx.err().unwrap().to_string(), "context deadline exceeded");
//! ```

mod errgroup;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use corun_runtime::Timer;

use crate::chan::lock::SpinLock;
use crate::chan::{Receiver, Sender, bounded, never};

pub use self::errgroup::ErrGroup;

/// Why a context is done: Go's `context.Canceled` and
/// `context.DeadlineExceeded`.
///
/// ```
/// use std::time::Duration;
/// use corun_sync::context::{Context, ContextError};
/// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(1));
/// let _ = ctx.done().recv(); // closed at the deadline
/// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
/// assert_eq!(ContextError::DeadlineExceeded.to_string(), "context deadline exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Its `CancelFn` (or an ancestor's) was called.
    Canceled,
    /// Its deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

const ERR_NONE: u8 = 0;
const ERR_CANCELED: u8 = 1;
const ERR_DEADLINE: u8 = 2;
/// Or'ed into `err` once `done` is closed (see `Core::err`).
const ERR_PUBLISHED: u8 = 4;

fn encode(e: ContextError) -> u8 {
    match e {
        ContextError::Canceled => ERR_CANCELED,
        ContextError::DeadlineExceeded => ERR_DEADLINE,
    }
}

/// The cancellable part of a context: its done channel, error, children
/// and timer.
struct Core {
    id: u64,
    err: AtomicU8,
    done_tx: Sender<()>,
    done_rx: Receiver<()>,
    /// The nearest cancellable ancestor, to detach from it. Weak: parents
    /// own their children (to cancel them), not the other way round.
    parent: Option<Weak<Core>>,
    inner: SpinLock<Inner>,
}

#[derive(Default)]
struct Inner {
    done: bool,
    children: HashMap<u64, Arc<Core>>,
    timer: Option<Timer>,
}

impl Core {
    fn new(parent: Option<&Arc<Core>>) -> Arc<Core> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let (done_tx, done_rx) = bounded(0);
        Arc::new(Core {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            err: AtomicU8::new(ERR_NONE),
            done_tx,
            done_rx,
            parent: parent.map(Arc::downgrade),
            inner: SpinLock::new(Inner::default()),
        })
    }

    /// Go's contract both ways: once `done` is closed the error is set,
    /// and while it is not, there is none. A cancel stores the error,
    /// closes `done` and marks the error published, all under `inner`'s
    /// lock: an error seen before it is published belongs to a cancel
    /// still closing `done`, which the lock waits for.
    fn err(&self) -> Option<ContextError> {
        let mut e = self.err.load(Ordering::Acquire);
        if e == ERR_NONE {
            return None;
        }
        if e & ERR_PUBLISHED == 0 {
            drop(self.inner.lock());
            e = self.err.load(Ordering::Acquire);
        }
        match e & !ERR_PUBLISHED {
            ERR_CANCELED => Some(ContextError::Canceled),
            ERR_DEADLINE => Some(ContextError::DeadlineExceeded),
            _ => None,
        }
    }

    /// Cancels this context and its subtree. The root of the cancel (not
    /// its descendants, whose parent is going away with them) detaches from
    /// its own parent.
    fn cancel(self: &Arc<Core>, err: ContextError) {
        let mut work = vec![(self.clone(), true)];
        while let Some((core, detach)) = work.pop() {
            let (children, timer) = {
                let mut g = core.inner.lock();
                if g.done {
                    continue;
                }
                g.done = true;
                // Set before `done` closes (whoever sees it closed sees
                // the error), published after (see `Core::err`).
                core.err.store(encode(err), Ordering::Release);
                core.done_tx.close();
                core.err
                    .store(encode(err) | ERR_PUBLISHED, Ordering::Release);
                (std::mem::take(&mut g.children), g.timer.take())
            };
            if let Some(t) = timer {
                t.cancel();
            }
            if detach && let Some(parent) = core.parent.as_ref().and_then(Weak::upgrade) {
                parent.inner.lock().children.remove(&core.id);
            }
            work.extend(children.into_values().map(|c| (c, false)));
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        // Unreachable now, so nobody can be told of its deadline: stop the
        // timer rather than leave it in the heap until it fires.
        if let Some(t) = inner.timer.take() {
            t.cancel();
        }
        // Children this core alone kept alive are freed here with an
        // explicit work list: dropping them in place would recurse once
        // per level of the tree and overflow a coroutine's stack.
        let mut work: Vec<Arc<Core>> = std::mem::take(&mut inner.children).into_values().collect();
        while let Some(child) = work.pop() {
            if let Some(mut child) = Arc::into_inner(child) {
                work.extend(std::mem::take(&mut child.inner.get_mut().children).into_values());
                // `child` drops here, childless.
            }
        }
    }
}

enum Node {
    Background,
    Cancel {
        parent: Context,
        core: Arc<Core>,
        deadline: Option<Instant>,
    },
    Value {
        parent: Context,
        value: Box<dyn Any + Send + Sync>,
    },
}

impl Drop for Node {
    fn drop(&mut self) {
        // A chain of contexts is freed from the leaf up, one level per
        // iteration: dropping the parent in place would recurse once per
        // level and overflow a coroutine's stack on a long chain. Only a
        // parent this node alone holds is taken apart here; any other is
        // just released.
        let (Node::Cancel { parent, .. } | Node::Value { parent, .. }) = self else {
            return;
        };
        if Arc::strong_count(&parent.node) != 1 {
            return;
        }
        let mut next = std::mem::take(parent);
        while let Some(mut node) = Arc::into_inner(next.node) {
            match &mut node {
                Node::Background => return,
                Node::Cancel { parent, .. } | Node::Value { parent, .. } => {
                    if Arc::strong_count(&parent.node) != 1 {
                        return;
                    }
                    next = std::mem::take(parent);
                }
            }
            // `node` drops here with the background (`take`) as its parent.
        }
    }
}

/// Carries cancellation, a deadline and values across API boundaries and
/// between coroutines (Go's `context.Context`). See the
/// [module docs](self).
///
/// ```
/// use corun_sync::context::Context;
/// use corun_sync::select;
/// let (ctx, cancel) = Context::background().with_cancel();
/// let worker = {
///     let ctx = ctx.clone();
///     corun_runtime::spawn(move || {
///         let mut rounds = 0;
///         loop {
///             select! {
///                 recv(ctx.done()) -> _ => return rounds,
///                 default(std::time::Duration::from_millis(1)) => rounds += 1,
///             }
///         }
///     })
/// };
/// corun_runtime::sleep(std::time::Duration::from_millis(5));
/// cancel.cancel();
/// assert!(worker.join().unwrap() >= 1);
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

/// Cancels the context it came with (and its descendants). Idempotent and
/// cheap to clone; dropping it does not cancel.
///
/// ```
/// let (ctx, cancel) = corun_sync::context::Context::background().with_cancel();
/// drop(cancel); // dropping it does not cancel: call `cancel()`
/// assert!(ctx.err().is_none());
/// ```
#[derive(Clone)]
pub struct CancelFn {
    core: Arc<Core>,
}

impl CancelFn {
    /// Cancels with [`ContextError::Canceled`] (no effect if already done).
    ///
    /// ```
    /// use corun_sync::context::{Context, ContextError};
    /// let (parent, cancel) = Context::background().with_cancel();
    /// let (child, _c) = parent.with_cancel();
    /// cancel.cancel();
    /// cancel.cancel(); // idempotent
    /// assert_eq!(child.err(), Some(ContextError::Canceled));
    /// ```
    pub fn cancel(&self) {
        self.core.cancel(ContextError::Canceled);
    }
}

impl fmt::Debug for CancelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelFn")
            .field("done", &self.core.err().is_some())
            .finish()
    }
}

impl Context {
    /// The root context: never cancelled, no deadline, no values.
    ///
    /// ```
    /// let ctx = corun_sync::context::Context::background();
    /// assert!(ctx.err().is_none() && ctx.deadline().is_none());
    /// ```
    pub fn background() -> Context {
        static BACKGROUND: std::sync::OnceLock<Context> = std::sync::OnceLock::new();
        BACKGROUND
            .get_or_init(|| Context {
                node: Arc::new(Node::Background),
            })
            .clone()
    }

    /// A child that is cancelled when `cancel` is called or when this
    /// context is.
    ///
    /// ```
    /// use corun_sync::context::{Context, ContextError};
    ///
    /// let (parent, cancel_parent) = Context::background().with_cancel();
    /// let (child, _cancel_child) = parent.with_cancel();
    /// assert_eq!(child.err(), None);
    /// cancel_parent.cancel();
    /// assert_eq!(child.err(), Some(ContextError::Canceled));
    /// assert!(child.done().recv().is_err(), "done is closed");
    /// ```
    pub fn with_cancel(&self) -> (Context, CancelFn) {
        self.derive(None)
    }

    /// A child that is also cancelled, with
    /// [`ContextError::DeadlineExceeded`], at `deadline`. If this context's
    /// deadline is earlier, the child simply inherits it.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use corun_sync::context::Context;
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// let (parent, _a) = Context::background().with_deadline(soon);
    /// // A later deadline on the child is capped by the parent's.
    /// let (child, _b) = parent.with_deadline(soon + Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon));
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelFn) {
        match self.deadline() {
            Some(d) if d <= deadline => self.derive(None),
            _ => self.derive(Some(deadline)),
        }
    }

    /// [`with_deadline`](Context::with_deadline)`(now + timeout)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::context::{Context, ContextError};
    /// let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(2));
    /// assert!(ctx.done().recv().is_err()); // closed when it expires
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelFn) {
        match Instant::now().checked_add(timeout) {
            Some(d) => self.with_deadline(d),
            None => self.with_cancel(),
        }
    }

    /// A child carrying `value`, found by [`value::<T>`](Context::value)
    /// on it and its descendants (the nearest one of type `T` wins).
    ///
    /// ```
    /// use corun_sync::context::Context;
    ///
    /// #[derive(Debug, PartialEq)]
    /// struct RequestId(u64);
    ///
    /// let ctx = Context::background().with_value(RequestId(7));
    /// let (child, _cancel) = ctx.with_cancel();
    /// assert_eq!(child.value::<RequestId>(), Some(&RequestId(7)));
    /// assert_eq!(child.value::<String>(), None);
    /// ```
    pub fn with_value<T: Any + Send + Sync>(&self, value: T) -> Context {
        Context {
            node: Arc::new(Node::Value {
                parent: self.clone(),
                value: Box::new(value),
            }),
        }
    }

    fn derive(&self, deadline: Option<Instant>) -> (Context, CancelFn) {
        let parent_core = self.core();
        let core = Core::new(parent_core);
        if let Some(p) = parent_core {
            let mut g = p.inner.lock();
            if g.done {
                drop(g);
                core.cancel(p.err().unwrap_or(ContextError::Canceled));
            } else {
                g.children.insert(core.id, core.clone());
            }
        }
        if let Some(d) = deadline {
            if Instant::now() >= d {
                core.cancel(ContextError::DeadlineExceeded);
            } else {
                let weak = Arc::downgrade(&core);
                let timer = Timer::at(d, move || {
                    if let Some(c) = weak.upgrade() {
                        c.cancel(ContextError::DeadlineExceeded);
                    }
                });
                let mut g = core.inner.lock();
                if g.done {
                    drop(g);
                    timer.cancel();
                } else {
                    g.timer = Some(timer);
                }
            }
        }
        let ctx = Context {
            node: Arc::new(Node::Cancel {
                parent: self.clone(),
                core: core.clone(),
                deadline,
            }),
        };
        (ctx, CancelFn { core })
    }

    /// The nearest cancellable context at or above this one.
    fn core(&self) -> Option<&Arc<Core>> {
        let mut n = &*self.node;
        loop {
            match n {
                Node::Background => return None,
                Node::Cancel { core, .. } => return Some(core),
                Node::Value { parent, .. } => n = &parent.node,
            }
        }
    }

    /// A channel closed when this context is cancelled or expires, for
    /// `select!`. For a context that can never be cancelled
    /// ([`background`](Context::background) and its value children), a
    /// channel that never delivers.
    ///
    /// ```
    /// let (ctx, cancel) = corun_sync::context::Context::background().with_cancel();
    /// assert!(ctx.done().try_recv().is_err());
    /// cancel.cancel();
    /// assert!(ctx.done().recv().is_err()); // disconnected: cancelled
    /// ```
    pub fn done(&self) -> Receiver<()> {
        match self.core() {
            Some(core) => core.done_rx.clone(),
            None => never(),
        }
    }

    /// `None` while the context is live; afterwards why it ended.
    ///
    /// ```
    /// use corun_sync::context::{Context, ContextError};
    /// let (ctx, cancel) = Context::background().with_cancel();
    /// assert_eq!(ctx.err(), None);
    /// cancel.cancel();
    /// assert_eq!(ctx.err(), Some(ContextError::Canceled));
    /// ```
    pub fn err(&self) -> Option<ContextError> {
        self.core().and_then(|c| c.err())
    }

    /// When the context expires, if it (or an ancestor) has a deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use corun_sync::context::Context;
    /// let (ctx, _c) = Context::background().with_timeout(Duration::from_secs(5));
    /// assert!(ctx.deadline().is_some());
    /// assert!(Context::background().deadline().is_none());
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        let mut n = &*self.node;
        loop {
            match n {
                Node::Background => return None,
                Node::Cancel {
                    deadline: Some(d), ..
                } => return Some(*d),
                Node::Cancel { parent, .. } | Node::Value { parent, .. } => n = &parent.node,
            }
        }
    }

    /// The nearest value of type `T` attached with
    /// [`with_value`](Context::with_value).
    ///
    /// ```
    /// use corun_sync::context::Context;
    /// struct User(&'static str);
    /// let ctx = Context::background().with_value(User("ana"));
    /// let (child, _c) = ctx.with_cancel();
    /// assert_eq!(child.value::<User>().map(|u| u.0), Some("ana"));
    /// ```
    pub fn value<T: Any>(&self) -> Option<&T> {
        let mut n = &*self.node;
        loop {
            match n {
                Node::Background => return None,
                Node::Cancel { parent, .. } => n = &parent.node,
                Node::Value { parent, value } => match value.downcast_ref::<T>() {
                    Some(v) => return Some(v),
                    None => n = &parent.node,
                },
            }
        }
    }

    /// Children registered for cancellation (those not yet cancelled).
    #[cfg(test)]
    fn children(&self) -> usize {
        self.core().map_or(0, |c| c.inner.lock().children.len())
    }

    /// Whether a deadline timer is still armed here.
    #[cfg(test)]
    fn has_timer(&self) -> bool {
        self.core().is_some_and(|c| c.inner.lock().timer.is_some())
    }
}

impl Default for Context {
    fn default() -> Context {
        Context::background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's String form, e.g. "context.Background.WithCancel".
        fn walk(n: &Node, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match n {
                Node::Background => f.write_str("context.Background"),
                Node::Cancel {
                    parent, deadline, ..
                } => {
                    walk(&parent.node, f)?;
                    match deadline {
                        Some(d) => write!(
                            f,
                            ".WithDeadline({:?} left)",
                            d.saturating_duration_since(Instant::now())
                        ),
                        None => f.write_str(".WithCancel"),
                    }
                }
                Node::Value { parent, value } => {
                    walk(&parent.node, f)?;
                    write!(f, ".WithValue({:?})", (**value).type_id())
                }
            }
        }
        walk(&self.node, f)?;
        if let Some(e) = self.err() {
            write!(f, " ({e})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server-like loop: one context with a timeout per request under a
    /// long-lived root. Cancelled or expired, each leaves no child behind
    /// in the root and no armed timer.
    #[test]
    fn per_request_contexts_detach() {
        let (root, cancel_root) = Context::background().with_cancel();
        let mut kept = Vec::new();
        for i in 0..10_000 {
            let (req, cancel) = root.with_timeout(Duration::from_secs(3600));
            let (sub, _sub_cancel) = req.with_value(i).with_cancel();
            assert_eq!(root.children(), 1);
            assert!(req.has_timer());
            cancel.cancel();
            assert_eq!(sub.err(), Some(ContextError::Canceled));
            assert!(!req.has_timer(), "timer released on cancel");
            assert_eq!(req.children(), 0, "cancelled subtree dropped");
            if i % 1000 == 0 {
                kept.push(req);
            }
        }
        assert_eq!(root.children(), 0);
        // Expiry detaches too.
        let (short, _c) = root.with_timeout(Duration::from_millis(5));
        assert_eq!(root.children(), 1);
        assert!(short.done().recv().is_err());
        assert_eq!(short.err(), Some(ContextError::DeadlineExceeded));
        assert_eq!(root.children(), 0);
        assert!(!short.has_timer());
        cancel_root.cancel();
        assert!(kept.iter().all(|c| c.err() == Some(ContextError::Canceled)));
    }

    /// Cancelling a parent cancels and detaches the whole subtree at once.
    #[test]
    fn parent_cancel_empties_children() {
        let (root, cancel) = Context::background().with_cancel();
        let kids: Vec<_> = (0..100).map(|_| root.with_cancel()).collect();
        let grandkids: Vec<_> = kids.iter().map(|(k, _)| k.with_cancel()).collect();
        assert_eq!(root.children(), 100);
        assert!(kids.iter().all(|(k, _)| k.children() == 1));
        cancel.cancel();
        assert_eq!(root.children(), 0);
        assert!(kids.iter().all(|(k, _)| k.children() == 0));
        assert!(
            grandkids
                .iter()
                .all(|(g, _)| g.err() == Some(ContextError::Canceled))
        );
        // A child of a cancelled parent is born cancelled and not registered.
        let (late, _) = root.with_cancel();
        assert_eq!(late.err(), Some(ContextError::Canceled));
        assert_eq!(root.children(), 0);
    }
}
