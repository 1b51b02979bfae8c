//! Park and unpark: the one waiting primitive everything else is built on.
//!
//! Inside a coroutine, [`park`] switches away and leaves the OS thread to
//! other coroutines; outside one it parks the OS thread. An [`Unparker`]
//! taken with [`unparker`] wakes whichever it was taken from, from any
//! thread or coroutine.
//!
//! The contract is std's `thread::park`: each waiter has one wake token. An
//! unpark that arrives before the park is kept and makes the park return at
//! once; several unparks before a park collapse into one; `park` may return
//! without an unpark (rarely), so callers wait in a loop on their own
//! condition. Upper crates keep their waiter queues so that an unpark is
//! issued once per wake-up they mean; a coroutine is resumed at most once per
//! wake and never by two threads.

use std::fmt;
use std::time::{Duration, Instant};

use crate::task::{Header, TaskRef};
use crate::{sched, tls};

/// Why a coroutine waits; shown by `runtime::coroutines()` and `dump()`.
///
/// ```
/// use corun_runtime::{Builder, WaitReason, coroutines, park, unparker};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// let h = Builder::new()
///     .name("idle")
///     .spawn(move || {
///         tx.send(unparker()).unwrap();
///         park(WaitReason::Semaphore) // any reason may be given; may return spuriously
///     })
///     .unwrap();
/// let wake = rx.recv().unwrap();
/// let reason = loop {
///     let me = coroutines().into_iter().find(|c| c.name.as_deref() == Some("idle"));
///     match me {
///         Some(c) if c.wait_reason != WaitReason::None => break c.wait_reason,
///         Some(_) => std::thread::yield_now(),
///         None => break WaitReason::None, // a spurious return ended it already
///     }
/// };
/// assert!(matches!(reason, WaitReason::Semaphore | WaitReason::None));
/// wake.unpark();
/// h.join().unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum WaitReason {
    /// Not waiting.
    None = 0,
    /// Joining another coroutine.
    Join,
    /// In `sleep`.
    Sleep,
    /// Sending on a channel.
    ChanSend,
    /// Receiving from a channel.
    ChanReceive,
    /// In `select!` or `Select`.
    Select,
    /// In a select with no operations (`never()`).
    SelectNoCases,
    /// Locking a mutex.
    Mutex,
    /// Read-locking an RwLock.
    RwLockRead,
    /// Write-locking an RwLock.
    RwLockWrite,
    /// Waiting on a condition variable.
    Condvar,
    /// In `WaitGroup::wait`.
    WaitGroup,
    /// Acquiring a semaphore.
    Semaphore,
    /// Waiting at a barrier.
    Barrier,
    /// Waiting for a `Once` to finish elsewhere.
    Once,
    /// Waiting for a socket or fd to become readable.
    IoRead,
    /// Waiting for a socket or fd to become writable.
    IoWrite,
    /// Waiting in `accept`.
    Accept,
    /// Waiting for `connect` to complete.
    Connect,
    /// Running a blocking call in `blocking()` (Go's "syscall").
    Blocking,
    /// Parked by other code.
    Park,
}

impl WaitReason {
    const ALL: [WaitReason; 21] = [
        WaitReason::None,
        WaitReason::Join,
        WaitReason::Sleep,
        WaitReason::ChanSend,
        WaitReason::ChanReceive,
        WaitReason::Select,
        WaitReason::SelectNoCases,
        WaitReason::Mutex,
        WaitReason::RwLockRead,
        WaitReason::RwLockWrite,
        WaitReason::Condvar,
        WaitReason::WaitGroup,
        WaitReason::Semaphore,
        WaitReason::Barrier,
        WaitReason::Once,
        WaitReason::IoRead,
        WaitReason::IoWrite,
        WaitReason::Accept,
        WaitReason::Connect,
        WaitReason::Blocking,
        WaitReason::Park,
    ];

    pub(crate) fn from_u8(v: u8) -> WaitReason {
        WaitReason::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(WaitReason::Park)
    }

    /// The text Go's goroutine dump would show.
    ///
    /// ```
    /// use corun_runtime::WaitReason;
    ///
    /// assert_eq!(WaitReason::ChanReceive.as_str(), "chan receive");
    /// assert_eq!(WaitReason::IoRead.to_string(), "io read");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::None => "",
            WaitReason::Join => "join",
            WaitReason::Sleep => "sleep",
            WaitReason::ChanSend => "chan send",
            WaitReason::ChanReceive => "chan receive",
            WaitReason::Select => "select",
            WaitReason::SelectNoCases => "select (no cases)",
            WaitReason::Mutex => "mutex",
            WaitReason::RwLockRead => "rwlock read",
            WaitReason::RwLockWrite => "rwlock write",
            WaitReason::Condvar => "condvar",
            WaitReason::WaitGroup => "waitgroup",
            WaitReason::Semaphore => "semaphore",
            WaitReason::Barrier => "barrier",
            WaitReason::Once => "once",
            WaitReason::IoRead => "io read",
            WaitReason::IoWrite => "io write",
            WaitReason::Accept => "accept",
            WaitReason::Connect => "connect",
            WaitReason::Blocking => "syscall",
            WaitReason::Park => "park",
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Wakes one parked coroutine or thread. Cheap to clone.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use corun_runtime::{WaitReason, park, unparker};
///
/// // A one-shot event built on park/unpark: the waiter loops on its condition.
/// let ready = Arc::new(AtomicBool::new(false));
/// let waiter = unparker(); // this thread (outside coroutines) is the waiter
/// let flag = ready.clone();
/// corun_runtime::go!(move || {
///     flag.store(true, Ordering::Release);
///     waiter.unpark();
/// });
/// while !ready.load(Ordering::Acquire) {
///     park(WaitReason::Park);
/// }
/// ```
#[derive(Clone)]
pub struct Unparker(Target);

#[derive(Clone)]
enum Target {
    Task(TaskRef),
    Thread(std::thread::Thread),
}

impl Unparker {
    /// Makes the waiter's current or next `park` return.
    ///
    /// ```
    /// use corun_runtime::{WaitReason, park, unparker};
    ///
    /// let me = unparker();
    /// me.unpark(); // a wake-up that comes first is kept...
    /// park(WaitReason::Park); // ...so this returns at once
    /// ```
    pub fn unpark(&self) {
        match &self.0 {
            Target::Task(task) => {
                if let Some(scheduled) = task.notify() {
                    sched::enqueue_woken(scheduled);
                }
            }
            Target::Thread(thread) => thread.unpark(),
        }
    }

    /// True if both wake the same coroutine or thread.
    ///
    /// ```
    /// use corun_runtime::unparker;
    ///
    /// let a = unparker();
    /// let b = unparker();
    /// assert!(a.same_waiter(&b), "both wake this thread");
    /// let other = corun_runtime::go!(unparker).join().unwrap();
    /// assert!(!a.same_waiter(&other));
    /// ```
    pub fn same_waiter(&self, other: &Unparker) -> bool {
        match (&self.0, &other.0) {
            (Target::Task(a), Target::Task(b)) => a.as_ptr() == b.as_ptr(),
            (Target::Thread(a), Target::Thread(b)) => a.id() == b.id(),
            _ => false,
        }
    }

    /// Whether the coroutine was abandoned by its runtime's shutdown while
    /// it had started and not finished: it will never run again, so a waker
    /// choosing among waiters should pass it by (a lock or semaphore hands
    /// it nothing). Always false for a thread.
    ///
    /// ```
    /// use corun_runtime::unparker;
    ///
    /// assert!(!unparker().is_abandoned());
    /// assert!(!corun_runtime::go!(|| unparker().is_abandoned()).join().unwrap());
    /// ```
    pub fn is_abandoned(&self) -> bool {
        match &self.0 {
            Target::Task(task) => task.header().is_abandoned(),
            Target::Thread(_) => false,
        }
    }

    /// True if this wakes a coroutine (not an OS thread).
    ///
    /// ```
    /// use corun_runtime::unparker;
    ///
    /// assert!(!unparker().is_coroutine(), "the main thread is not a coroutine");
    /// assert!(corun_runtime::go!(|| unparker().is_coroutine()).join().unwrap());
    /// ```
    pub fn is_coroutine(&self) -> bool {
        matches!(self.0, Target::Task(_))
    }

    pub(crate) fn from_task(task: TaskRef) -> Unparker {
        Unparker(Target::Task(task))
    }
}

impl fmt::Debug for Unparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Target::Task(t) => write!(f, "Unparker(coroutine {})", t.header().id),
            Target::Thread(t) => write!(f, "Unparker(thread {:?})", t.id()),
        }
    }
}

/// Wakes the coroutine or thread that made it, like [`Unparker`], but
/// holds no reference to a coroutine: for wait records that live in the
/// waiter's own frame and are completed by a waker while the waiter is
/// still inside that frame (channel operations). It spares the two atomic
/// reference-count updates an `Unparker` costs per wait.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use corun_runtime::{WaitReason, frame_unparker, park};
///
/// let h = corun_runtime::go!(|| {
///     // The record a waker reaches: it lives in this frame.
///     let woken = AtomicBool::new(false);
///     let me = frame_unparker();
///     std::thread::scope(|s| {
///         s.spawn(|| {
///             woken.store(true, Ordering::Release);
///             // SAFETY: the coroutine cannot leave this scope (and so
///             // cannot finish) before this thread has returned.
///             unsafe { me.unpark() };
///         });
///         while !woken.load(Ordering::Acquire) {
///             park(WaitReason::Park);
///         }
///     });
/// });
/// h.join().unwrap();
/// ```
pub struct FrameUnparker(FrameTarget);

enum FrameTarget {
    Task(std::ptr::NonNull<Header>),
    Thread(std::thread::Thread),
}

// SAFETY: `unpark` only reaches the task's atomic state word and its run
// queue hand-off, both made for use from any thread; keeping the task
// alive meanwhile is `unpark`'s contract.
unsafe impl Send for FrameUnparker {}
// SAFETY: as for `Send`: `&self` allows only `unpark`.
unsafe impl Sync for FrameUnparker {}

impl FrameUnparker {
    /// Makes the waiter's current or next `park` return.
    ///
    /// # Safety
    /// If this was made inside a coroutine, that coroutine has not finished:
    /// the caller knows it is still running or parked, for instance because
    /// it does not leave the frame holding this value before the call has
    /// returned. A coroutine abandoned by runtime shutdown inside that frame
    /// counts as not finished: its frames and its task are leaked, never
    /// freed, and the wake does nothing (see [`is_abandoned`]).
    ///
    /// [`is_abandoned`]: FrameUnparker::is_abandoned
    ///
    /// ```
    /// use corun_runtime::{WaitReason, frame_unparker, park};
    ///
    /// corun_runtime::go!(|| {
    ///     let me = frame_unparker();
    ///     // SAFETY: this coroutine is running, so it has not finished.
    ///     unsafe { me.unpark() }; // a wake-up that comes first is kept...
    ///     park(WaitReason::Park); // ...so this returns at once
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    pub unsafe fn unpark(&self) {
        match &self.0 {
            FrameTarget::Task(header) => {
                // SAFETY: the caller guarantees the coroutine has not
                // finished, so the task is alive (it holds its run
                // reference until it completes, and the registry one; an
                // abandoned one is leaked).
                let task =
                    std::mem::ManuallyDrop::new(unsafe { TaskRef::from_raw(header.as_ptr()) });
                if let Some(scheduled) = task.notify() {
                    sched::enqueue_woken(scheduled);
                }
            }
            FrameTarget::Thread(thread) => thread.unpark(),
        }
    }

    /// Whether the coroutine was abandoned by its runtime's shutdown while
    /// waiting: it will never run again, so a waker should hand it nothing
    /// (a channel passes such a waiter by). Always false for a thread.
    ///
    /// # Safety
    /// As for [`unpark`](FrameUnparker::unpark).
    ///
    /// ```
    /// use corun_runtime::frame_unparker;
    ///
    /// corun_runtime::go!(|| {
    ///     let me = frame_unparker();
    ///     // SAFETY: this coroutine is running, so it has not finished.
    ///     assert!(!unsafe { me.is_abandoned() });
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    #[inline]
    pub unsafe fn is_abandoned(&self) -> bool {
        match &self.0 {
            // SAFETY: by the caller's contract the task is alive: running,
            // parked, or abandoned and leaked.
            FrameTarget::Task(header) => unsafe { header.as_ref() }.is_abandoned(),
            FrameTarget::Thread(_) => false,
        }
    }
}

impl fmt::Debug for FrameUnparker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            FrameTarget::Task(t) => write!(f, "FrameUnparker(coroutine at {:p})", t.as_ptr()),
            FrameTarget::Thread(t) => write!(f, "FrameUnparker(thread {:?})", t.id()),
        }
    }
}

/// A [`FrameUnparker`] for the calling coroutine, or the calling thread
/// outside coroutines.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use corun_runtime::{WaitReason, frame_unparker, park};
///
/// // Outside coroutines it wakes this thread; another thread sets the flag
/// // that lives in this frame, then wakes us.
/// let done = AtomicBool::new(false);
/// let me = frame_unparker();
/// let (done_ref, me_ref) = (&done, &me);
/// std::thread::scope(|s| {
///     s.spawn(move || {
///         done_ref.store(true, Ordering::Release);
///         // SAFETY: a thread waker: there is no coroutine to outlive.
///         unsafe { me_ref.unpark() };
///     });
///     while !done.load(Ordering::Acquire) {
///         park(WaitReason::Park);
///     }
/// });
/// ```
pub fn frame_unparker() -> FrameUnparker {
    match std::ptr::NonNull::new(tls::current_task_ptr().cast_mut()) {
        Some(task) => FrameUnparker(FrameTarget::Task(task)),
        None => FrameUnparker(FrameTarget::Thread(std::thread::current())),
    }
}

/// An unparker for the calling coroutine, or the calling thread outside
/// coroutines.
///
/// ```
/// use std::sync::mpsc;
/// use corun_runtime::{WaitReason, park, unparker};
///
/// let (tx, rx) = mpsc::channel();
/// let h = corun_runtime::go!(move || {
///     let (reply, answer) = mpsc::channel();
///     tx.send((unparker(), reply)).unwrap();
///     loop {
///         if let Ok(v) = answer.try_recv() {
///             break v;
///         }
///         park(WaitReason::Park); // frees the worker thread meanwhile
///     }
/// });
/// let (wake, reply) = rx.recv().unwrap();
/// reply.send(42).unwrap();
/// wake.unpark();
/// assert_eq!(h.join().unwrap(), 42);
/// ```
pub fn unparker() -> Unparker {
    match current_task() {
        Some(task) => Unparker(Target::Task(task)),
        None => Unparker(Target::Thread(std::thread::current())),
    }
}

fn current_task() -> Option<TaskRef> {
    let ptr = tls::current_task_ptr();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the scheduler keeps a reference to the running task for as
    // long as `ptr` is published; we add our own.
    let borrowed = std::mem::ManuallyDrop::new(unsafe { TaskRef::from_raw(ptr.cast_mut()) });
    Some((*borrowed).clone())
}

/// Waits until unparked (see the module docs for the exact contract).
/// `reason` is what introspection shows meanwhile.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use corun_runtime::{WaitReason, park, unparker};
///
/// let count = Arc::new(AtomicUsize::new(0));
/// let me = unparker();
/// for _ in 0..4 {
///     let (count, me) = (count.clone(), me.clone());
///     corun_runtime::go!(move || {
///         count.fetch_add(1, Ordering::SeqCst);
///         me.unpark();
///     });
/// }
/// // Several unparks may collapse into one wake-up: check the condition.
/// while count.load(Ordering::SeqCst) < 4 {
///     park(WaitReason::Park);
/// }
/// ```
pub fn park(reason: WaitReason) {
    let task = tls::current_task_ptr();
    if task.is_null() {
        std::thread::park();
        return;
    }
    // SAFETY: see `current_task`; the reference is held while we run.
    park_task(unsafe { &*task }, reason);
}

/// Like [`park`], but returns by `deadline` at the latest. Returns `true`
/// if the deadline has passed.
///
/// ```
/// use std::time::{Duration, Instant};
/// use corun_runtime::{WaitReason, park_deadline};
///
/// let h = corun_runtime::go!(|| {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     // Nobody unparks us: loop until the deadline has passed.
///     while !park_deadline(WaitReason::Park, deadline) {}
///     Instant::now() >= deadline
/// });
/// assert!(h.join().unwrap());
/// ```
pub fn park_deadline(reason: WaitReason, deadline: Instant) -> bool {
    park_deadline_from(reason, Instant::now(), deadline)
}

/// [`park_deadline`] for a caller that has just read the clock (`now`):
/// `sleep` computes its deadline from it, and a reading costs ~2% of a
/// sleeper.
pub(crate) fn park_deadline_from(reason: WaitReason, now: Instant, deadline: Instant) -> bool {
    if now >= deadline {
        return true;
    }
    let task = tls::current_task_ptr();
    if task.is_null() {
        std::thread::park_timeout(deadline - now);
        return Instant::now() >= deadline;
    }
    // SAFETY: as in `park`.
    let header = unsafe { &*task };
    let seq = header.park_seq.load(std::sync::atomic::Ordering::Relaxed);
    let timers = header.shared.timers_here();
    timers.add_wake(
        header.shared,
        deadline,
        current_task().expect("running task"),
        seq,
    );
    park_task(header, reason);
    let expired = Instant::now() >= deadline;
    if !expired {
        timers.note_stale();
    }
    expired
}

/// Cache lines below and above a parked coroutine's marker that its resume
/// touches: the registers the switch saved just below, then the frames of
/// the park path it returns through (channel, lock or I/O wait).
const PREFETCH_BELOW: usize = 4;
const PREFETCH_ABOVE: usize = 12;

/// Starts loading the stack lines a woken coroutine will touch first.
///
/// With thousands of coroutines their stacks fall out of the cache while
/// parked, and resuming one costs a miss per frame it returns through (the
/// ring benchmark: ~6 last-level misses per hop). The waker queues the task
/// tens to hundreds of nanoseconds before it runs, so prefetching here
/// overlaps those misses with the waker's own work. A prefetch is only a
/// hint: it never faults and never changes memory, whatever the address.
#[inline]
pub(crate) fn prefetch_stack(header: &Header) {
    let sp = header.parked_sp.load(std::sync::atomic::Ordering::Relaxed);
    if sp == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let first = (sp & !63).wrapping_sub(PREFETCH_BELOW * 64);
        for line in 0..PREFETCH_BELOW + PREFETCH_ABOVE {
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch
            // has no effect on memory or control flow (see above).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(line * 64) as *const i8) };
        }
    }
}

#[inline(never)]
fn park_task(header: &Header, reason: WaitReason) {
    if header.take_notified() {
        end_park(header);
        crate::yield_point();
        return;
    }
    if std::thread::panicking() && !header.pinned {
        park_unwinding(header, reason);
        return;
    }
    header.set_wait_reason(reason);
    crate::trace::event(crate::trace::Kind::Park, header.id, reason as u32);
    header.since.store(
        header.shared.coarse_now(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let marker = 0u8;
    header.parked_sp.store(
        std::hint::black_box(&marker) as *const u8 as usize,
        std::sync::atomic::Ordering::Relaxed,
    );
    corun_stacks::fiber::suspend(sched::SUSPEND_PARK);
    header.set_wait_reason(WaitReason::None);
    end_park(header);
}

/// A park while the coroutine unwinds (a destructor that locks or waits
/// during a panic). std counts the panics in progress per OS thread: a
/// switch would leave this one counted on this worker for the coroutines
/// that run next (`thread::panicking()` true for them, so locks they hold
/// get poisoned by nobody's panic) and missing on the thread the coroutine
/// finishes unwinding on. So it keeps its thread and waits without
/// switching: a wake finds it not parked and leaves NOTIFIED, which it
/// polls, napping 20 us to 1 ms between looks. Its P stays with it; sysmon
/// hands the P on after 10 ms if others wait, as for any coroutine that
/// holds its thread. Pinned coroutines have a thread of their own and park
/// as usual.
#[cold]
fn park_unwinding(header: &Header, reason: WaitReason) {
    header.set_wait_reason(reason);
    let mut nap = Duration::from_micros(20);
    while !header.take_notified() {
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(1));
    }
    header.set_wait_reason(WaitReason::None);
    end_park(header);
}

/// Moves `park_seq` past the park that just ended. Only the coroutine
/// itself writes it (timers only read it), so a load and a store do what a
/// locked read-modify-write would.
#[inline]
fn end_park(header: &Header) {
    use std::sync::atomic::Ordering::Relaxed;
    let seq = header.park_seq.load(Relaxed);
    header.park_seq.store(seq.wrapping_add(1), Relaxed);
}
