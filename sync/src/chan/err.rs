//! Error types, with the variants and `Display` texts of crossbeam-channel.

use std::error;
use std::fmt;

/// Returned by [`Sender::send`](super::Sender::send): the channel is
/// disconnected (every receiver is gone, or it was closed).
///
/// The unsent message is handed back.
///
/// ```
/// use corun_sync::chan::{bounded, SendError};
///
/// let (s, r) = bounded::<i32>(1);
/// drop(r); // with every receiver gone, senders get their message back
/// assert_eq!(s.send(1), Err(SendError(1)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// Returned by [`Sender::try_send`](super::Sender::try_send); holds the
/// unsent message.
///
/// ```
/// use corun_sync::chan::{bounded, TrySendError};
///
/// let (s, r) = bounded::<i32>(1);
/// assert_eq!(s.try_send(1), Ok(()));
/// assert_eq!(s.try_send(2), Err(TrySendError::Full(2)));
/// drop(r);
/// assert_eq!(s.try_send(3), Err(TrySendError::Disconnected(3)));
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The buffer is full, or, for a zero-capacity channel, no receiver was
    /// waiting.
    Full(T),
    /// The channel is disconnected or closed.
    Disconnected(T),
}

/// Returned by [`Sender::send_timeout`](super::Sender::send_timeout) and
/// [`Sender::send_deadline`](super::Sender::send_deadline); holds the unsent
/// message.
///
/// ```
/// use corun_sync::chan::{bounded, SendTimeoutError};
/// use std::time::Duration;
///
/// let (s, _r) = bounded::<i32>(0);
/// let err = s.send_timeout(1, Duration::from_millis(5)).unwrap_err();
/// assert!(matches!(err, SendTimeoutError::Timeout(1)), "nobody received");
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// No room (or no receiver, for a zero-capacity channel) before the
    /// timeout.
    Timeout(T),
    /// The channel is disconnected or closed.
    Disconnected(T),
}

/// Returned by [`Receiver::recv`](super::Receiver::recv): the channel is
/// empty and disconnected (every sender is gone, or it was closed).
///
/// ```
/// use corun_sync::chan::{unbounded, RecvError};
///
/// let (s, r) = unbounded::<i32>();
/// s.send(1).unwrap();
/// drop(s);
/// assert_eq!(r.recv(), Ok(1), "buffered messages are still delivered");
/// assert_eq!(r.recv(), Err(RecvError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// Returned by [`Receiver::try_recv`](super::Receiver::try_recv).
///
/// ```
/// use corun_sync::chan::{unbounded, TryRecvError};
///
/// let (s, r) = unbounded::<i32>();
/// assert_eq!(r.try_recv(), Err(TryRecvError::Empty));
/// drop(s);
/// assert_eq!(r.try_recv(), Err(TryRecvError::Disconnected));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive now (for a zero-capacity channel: no sender was
    /// waiting).
    Empty,
    /// The channel is empty and disconnected.
    Disconnected,
}

/// Returned by [`Receiver::recv_timeout`](super::Receiver::recv_timeout)
/// and [`Receiver::recv_deadline`](super::Receiver::recv_deadline).
///
/// ```
/// use corun_sync::chan::{unbounded, RecvTimeoutError};
/// use std::time::Duration;
///
/// let (s, r) = unbounded::<i32>();
/// assert_eq!(r.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
/// s.close();
/// assert_eq!(r.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Disconnected));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the timeout.
    Timeout,
    /// The channel is empty and disconnected.
    Disconnected,
}

/// Returned by [`Select::try_select`](super::Select::try_select): no
/// operation was ready.
///
/// ```
/// use corun_sync::chan::{never, Select, TrySelectError};
///
/// let r = never::<i32>();
/// let mut sel = Select::new();
/// sel.recv(&r);
/// assert_eq!(sel.try_select().unwrap_err(), TrySelectError);
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TrySelectError;

/// Returned by [`Select::select_timeout`](super::Select::select_timeout)
/// and [`Select::select_deadline`](super::Select::select_deadline): no
/// operation became ready in time.
///
/// ```
/// use corun_sync::chan::{never, Select, SelectTimeoutError};
/// use std::time::Duration;
///
/// let r = never::<i32>();
/// let mut sel = Select::new();
/// sel.recv(&r);
/// assert_eq!(sel.select_timeout(Duration::from_millis(2)).unwrap_err(), SelectTimeoutError);
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct SelectTimeoutError;

/// Returned by [`Select::try_ready`](super::Select::try_ready): no
/// operation was ready.
///
/// ```
/// use corun_sync::chan::{never, Select, TryReadyError};
///
/// let r = never::<i32>();
/// let mut sel = Select::new();
/// sel.recv(&r);
/// assert_eq!(sel.try_ready(), Err(TryReadyError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TryReadyError;

/// Returned by [`Select::ready_timeout`](super::Select::ready_timeout) and
/// [`Select::ready_deadline`](super::Select::ready_deadline): no operation
/// became ready in time.
///
/// ```
/// use corun_sync::chan::{never, ReadyTimeoutError, Select};
/// use std::time::Duration;
///
/// let r = never::<i32>();
/// let mut sel = Select::new();
/// sel.recv(&r);
/// assert_eq!(sel.ready_timeout(Duration::from_millis(2)), Err(ReadyTimeoutError));
/// ```
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct ReadyTimeoutError;

impl<T> SendError<T> {
    /// The message that was not sent.
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::unbounded();
    /// drop(r);
    /// assert_eq!(s.send(7).unwrap_err().into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}

impl<T: Send> error::Error for SendError<T> {}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    ///
    /// ```
    /// let (s, _r) = corun_sync::chan::bounded(0);
    /// assert_eq!(s.try_send("x").unwrap_err().into_inner(), "x");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// True for [`TrySendError::Full`].
    ///
    /// ```
    /// let (s, _r) = corun_sync::chan::bounded(1);
    /// s.try_send(1).unwrap();
    /// assert!(s.try_send(2).unwrap_err().is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// True for [`TrySendError::Disconnected`].
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::bounded(1);
    /// drop(r);
    /// assert!(s.try_send(1).unwrap_err().is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T: Send> error::Error for TrySendError<T> {}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Disconnected(e.0)
    }
}

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (s, _r) = corun_sync::chan::bounded(0);
    /// let err = s.send_timeout("late", Duration::from_millis(2)).unwrap_err();
    /// assert_eq!(err.into_inner(), "late");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }

    /// True for [`SendTimeoutError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (s, _r) = corun_sync::chan::bounded(0);
    /// assert!(s.send_timeout(1, Duration::from_millis(2)).unwrap_err().is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// True for [`SendTimeoutError::Disconnected`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (s, r) = corun_sync::chan::bounded(0);
    /// drop(r);
    /// assert!(s.send_timeout(1, Duration::from_millis(2)).unwrap_err().is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendTimeoutError(..)")
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T: Send> error::Error for SendTimeoutError<T> {}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Disconnected(e.0)
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}

impl error::Error for RecvError {}

impl TryRecvError {
    /// True for [`TryRecvError::Empty`].
    ///
    /// ```
    /// let (_s, r) = corun_sync::chan::unbounded::<i32>();
    /// assert!(r.try_recv().unwrap_err().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// True for [`TryRecvError::Disconnected`].
    ///
    /// ```
    /// let (s, r) = corun_sync::chan::unbounded::<i32>();
    /// drop(s);
    /// assert!(r.try_recv().unwrap_err().is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => {
                f.write_str("receiving on an empty and disconnected channel")
            }
        }
    }
}

impl error::Error for TryRecvError {}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

impl RecvTimeoutError {
    /// True for [`RecvTimeoutError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (_s, r) = corun_sync::chan::unbounded::<i32>();
    /// assert!(r.recv_timeout(Duration::from_millis(2)).unwrap_err().is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// True for [`RecvTimeoutError::Disconnected`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (s, r) = corun_sync::chan::unbounded::<i32>();
    /// drop(s);
    /// assert!(r.recv_timeout(Duration::from_millis(2)).unwrap_err().is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Disconnected => f.write_str("channel is empty and disconnected"),
        }
    }
}

impl error::Error for RecvTimeoutError {}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}

impl fmt::Display for TrySelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all operations in select would block")
    }
}

impl error::Error for TrySelectError {}

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on select")
    }
}

impl error::Error for SelectTimeoutError {}

impl fmt::Display for TryReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all operations in select would block")
    }
}

impl error::Error for TryReadyError {}

impl fmt::Display for ReadyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on ready")
    }
}

impl error::Error for ReadyTimeoutError {}
