//! The G: one heap allocation per coroutine holding its header and, in one
//! slot, its function until first run and its output until joined; plus a
//! recycled run state (`run_state.rs`) while it can still run.
//!
//! # Layout
//!
//! A task is a `Cell<F, T>`: `#[repr(C)]`, starting with the `Header`. Code
//! that knows only the header (run queues, the scheduler) handles
//! `TaskRef`s, which point at the header and own one reference; only the
//! vtable knows `F` and `T`, and a `JoinHandle<T>` takes the output through
//! it. The fiber, the coroutine-locals and the introspection fields live in
//! the run state, which goes back to a free list when the coroutine
//! finishes, so an unjoined finished task holds only the header and its
//! output. The stack is taken lazily at first run.
//!
//! # State
//!
//! `state` holds one of IDLE (parked), SCHEDULED (in a run queue, or about to
//! be), RUNNING (a thread is executing it or switching away from it) and
//! COMPLETE, plus flags:
//!
//! - NOTIFIED: an unpark arrived while RUNNING; the next park consumes it
//!   instead of sleeping. This is how an unpark that arrives before the park
//!   is not lost.
//! - JOIN_WAITER: a joiner stored its unparker and must be woken at COMPLETE.
//!
//! Only the thread that moved a task to RUNNING touches its fiber, and a task
//! leaves RUNNING only after its fiber has switched away, so a coroutine is
//! never run by two threads and never resumed while its stack is in use.
//! `unpark` moves IDLE to SCHEDULED exactly once and only then enqueues, so
//! a task is in at most one queue.

use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe, Location};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use corun_stacks::Stack;
use corun_stacks::fiber::Fiber;

use crate::local::LocalMap;
use crate::park::{self, Unparker, WaitReason};
use crate::run_state::{self, RunState};
use crate::sched::Shared;

use crate::lifecycle::{self, JOIN_WAITER, LIFECYCLE, NOTIFIED};
pub(crate) use crate::lifecycle::{COMPLETE, IDLE, RUNNING, SCHEDULED};

type Output<T> = std::thread::Result<T>;

/// What the scheduler needs from a task whose types it does not know.
struct Vtable {
    /// Moves the function onto a fresh fiber on `stack`.
    start: unsafe fn(NonNull<Header>, Stack) -> Fiber,
    /// Frees the allocation.
    dealloc: unsafe fn(NonNull<Header>),
    /// Completes the task without running it (no stack could be had).
    fail: unsafe fn(NonNull<Header>, Box<dyn Any + Send>),
    /// Moves the output into the `Option<Output<T>>` the pointer points at.
    take_output: unsafe fn(NonNull<Header>, *mut ()),
}

/// Reference counts past this abort: only leaked references get there.
const MAX_REFS: u32 = u32::MAX / 2;

pub(crate) struct Header {
    state: AtomicU32,
    refs: AtomicU32,
    /// Bumped when a park ends, so a timer set for an earlier park does not
    /// wake a later one.
    pub(crate) park_seq: AtomicU32,
    wait_reason: AtomicU8,
    pub(crate) pinned: bool,
    vtable: &'static Vtable,
    pub(crate) shared: &'static Shared,
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    /// Where the registry keeps this task: shard and slot.
    pub(crate) registry_slot: AtomicU64,
    /// An address in the frame that last parked, or 0: where its stack
    /// resumes, for the waker to prefetch (`park::prefetch_stack`).
    pub(crate) parked_sp: AtomicUsize,
    /// The run state until the coroutine finishes, then null; who may
    /// follow it is listed in `run_state.rs`.
    run: AtomicPtr<RunState>,
    /// Written by the joiner before it sets JOIN_WAITER, read by the
    /// completer after it sees JOIN_WAITER.
    joiner: UnsafeCell<Option<Unparker>>,
}

#[repr(C)]
struct Cell<F, T> {
    header: Header,
    stage: UnsafeCell<Stage<F, T>>,
}

/// The function until the first run takes it, then the output until the
/// joiner takes it: never both, so they share the space.
enum Stage<F, T> {
    Pending(F),
    Running,
    Done(Output<T>),
    Taken,
}

/// What a spawner decides about a task before it exists.
pub(crate) struct TaskInit {
    pub(crate) shared: &'static Shared,
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    pub(crate) spawn_site: &'static Location<'static>,
    pub(crate) stack_size: usize,
    pub(crate) home: Option<std::sync::Arc<crate::pinned::Home>>,
}

/// One counted reference to a task.
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: a task's function and output are `Send` (enforced by `new`), its
// header is made of atomics and of cells whose access is serialised by the
// state protocol above (the fiber by RUNNING, the joiner by JOIN_WAITER,
// locals by the coroutine itself). Moving a suspended fiber between threads
// is the runtime's central unsafe assumption, argued in docs/safety.md.
unsafe impl Send for TaskRef {}
// SAFETY: as for `Send`; `&TaskRef` only exposes the atomics and the
// protocol-guarded cells.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Allocates a task in state SCHEDULED holding two references: one for
    /// the run queue and one for the join handle.
    pub(crate) fn new<F, T>(init: TaskInit, f: F) -> (TaskRef, JoinHandle<T>)
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let vtable: &'static Vtable = &Vtable {
            start: start::<F, T>,
            dealloc: dealloc::<F, T>,
            fail: fail::<F, T>,
            take_output: take_output::<F, T>,
        };
        let pinned = init.home.is_some();
        let run = run_state::acquire(run_state::Fresh {
            since: init.shared.coarse_now(),
            spawn_site: init.spawn_site,
            stack_size: init.stack_size,
            home: init.home,
        });
        let cell = Box::new(Cell::<F, T> {
            header: Header {
                state: AtomicU32::new(SCHEDULED),
                refs: AtomicU32::new(2),
                park_seq: AtomicU32::new(0),
                wait_reason: AtomicU8::new(WaitReason::None as u8),
                pinned,
                vtable,
                shared: init.shared,
                id: init.id,
                name: init.name,
                registry_slot: AtomicU64::new(u64::MAX),
                parked_sp: AtomicUsize::new(0),
                run: AtomicPtr::new(run.as_ptr()),
                joiner: UnsafeCell::new(None),
            },
            stage: UnsafeCell::new(Stage::Pending(f)),
        });
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        (
            TaskRef(ptr),
            JoinHandle {
                task: TaskRef(ptr),
                _output: PhantomData,
            },
        )
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: we own a reference, so the allocation is alive.
        unsafe { self.0.as_ref() }
    }

    pub(crate) fn into_raw(self) -> *mut Header {
        ManuallyDrop::new(self).0.as_ptr()
    }

    /// # Safety
    /// `ptr` came from `into_raw` and its reference is handed back here once.
    pub(crate) unsafe fn from_raw(ptr: *mut Header) -> TaskRef {
        // SAFETY: `into_raw` never yields null.
        TaskRef(unsafe { NonNull::new_unchecked(ptr) })
    }

    pub(crate) fn as_ptr(&self) -> *const Header {
        self.0.as_ptr()
    }

    /// Wakes the task if it is parked; records the wake if it is running.
    /// Returns the reference to enqueue when the task became SCHEDULED.
    pub(crate) fn notify(&self) -> Option<TaskRef> {
        lifecycle::notify(&self.header().state).then(|| self.clone())
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        if self.header().refs.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
            // As `Arc` does: a count this high means references are being
            // leaked, and wrapping it would free a live task.
            std::process::abort();
        }
        TaskRef(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) == 1 {
            std::sync::atomic::fence(Ordering::Acquire);
            let dealloc = self.header().vtable.dealloc;
            // SAFETY: that was the last reference.
            unsafe { dealloc(self.0) };
        }
    }
}

impl Header {
    pub(crate) fn lifecycle(&self) -> u32 {
        self.state.load(Ordering::Acquire) & LIFECYCLE
    }

    pub(crate) fn wait_reason(&self) -> WaitReason {
        WaitReason::from_u8(self.wait_reason.load(Ordering::Relaxed))
    }

    pub(crate) fn set_wait_reason(&self, reason: WaitReason) {
        self.wait_reason.store(reason as u8, Ordering::Relaxed);
    }

    /// The run state, or `None` once the coroutine finished.
    ///
    /// # Safety
    /// The caller is one of those `run_state.rs` lists (it holds the task
    /// RUNNING, or just made it SCHEDULED and has not queued it, or holds
    /// the lock of the registry shard that still holds it, or holds the
    /// last reference), so the run state cannot be retired meanwhile.
    pub(crate) unsafe fn run_state(&self) -> Option<&RunState> {
        let ptr = self.run.load(Ordering::Acquire);
        // SAFETY: non-null means not retired, and the caller's standing
        // keeps it so for the borrow.
        unsafe { ptr.as_ref() }
    }

    /// The coroutine-locals slot of the running coroutine.
    ///
    /// # Safety
    /// The caller runs as this coroutine (so holds it RUNNING), and does
    /// not hold another reference into the slot.
    pub(crate) unsafe fn locals(&self) -> *mut Option<Box<LocalMap>> {
        // SAFETY: a running coroutine has its run state.
        let run = unsafe { self.run_state() }.expect("running coroutine has a run state");
        run.locals.get()
    }

    /// SCHEDULED -> RUNNING, by the thread that took the task off a queue.
    pub(crate) fn begin_run(&self) {
        let prev = lifecycle::begin_run(&self.state);
        debug_assert_eq!(
            prev & LIFECYCLE,
            SCHEDULED,
            "corun: task run while not scheduled"
        );
    }

    /// RUNNING -> SCHEDULED, after a yield switched away.
    pub(crate) fn end_run_yield(&self) {
        // A wake during the run stays pending for the next park.
        let prev = lifecycle::end_run_yield(&self.state);
        debug_assert_eq!(prev & LIFECYCLE, RUNNING);
    }

    /// RUNNING -> IDLE after a park switched away, unless a wake arrived
    /// meanwhile: then the wake is consumed and `false` says "run it again".
    pub(crate) fn end_run_park(&self) -> bool {
        lifecycle::end_run_park(&self.state)
    }

    /// Consumes a pending wake without switching; the park fast path.
    pub(crate) fn take_notified(&self) -> bool {
        lifecycle::take_notified(&self.state)
    }

    /// The fiber, creating it (and taking a stack) on first run. `None` when
    /// no stack could be had: the task was completed with that error.
    ///
    /// # Safety
    /// The caller holds the task RUNNING.
    // The fiber sits in an `UnsafeCell` whose exclusive owner is the thread
    // holding RUNNING, which is what the safety contract states.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn fiber(&self) -> Option<&mut Fiber> {
        // SAFETY: RUNNING: the run state is there and ours to use.
        let run = unsafe { self.run_state() }.expect("running task has a run state");
        // SAFETY: RUNNING gives this thread exclusive access to the fiber.
        let slot = unsafe { &mut *run.fiber.get() };
        if slot.is_none() {
            match Stack::new(run.stack_size) {
                Ok(mut stack) => {
                    stack.set_label(self.id, self.name.as_deref().unwrap_or(""));
                    // SAFETY: RUNNING, first run: the function is still there.
                    *slot = Some(unsafe { (self.vtable.start)(NonNull::from(self), stack) });
                }
                Err(e) => {
                    let msg = format!("corun: coroutine {} could not get a stack: {e}", self.id);
                    // SAFETY: RUNNING, never started: nobody else touches the output.
                    unsafe { (self.vtable.fail)(NonNull::from(self), Box::new(msg)) };
                    return None;
                }
            }
        }
        slot.as_mut()
    }

    /// Returns a finished fiber's stack to the pool (on this thread's cache).
    ///
    /// # Safety
    /// The caller holds the task RUNNING and its fiber has finished.
    pub(crate) unsafe fn release_fiber(&self) {
        // SAFETY: as for `fiber`.
        let run = unsafe { self.run_state() }.expect("running task has a run state");
        // SAFETY: as for `fiber`.
        if let Some(fiber) = unsafe { (*run.fiber.get()).take() } {
            drop(fiber.into_stack());
        }
    }

    /// Hands the run state of a coroutine that will not run again back to
    /// the free lists.
    ///
    /// # Safety
    /// The caller holds the task RUNNING, its fiber is released (or never
    /// existed) and the task is out of the registry, so nobody else can be
    /// reading the run state.
    pub(crate) unsafe fn retire(&self) {
        let ptr = self.run.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if let Some(run) = NonNull::new(ptr) {
            // SAFETY: as stated, no other reader is left; the fiber is
            // released and the coroutine dropped its locals at its end.
            unsafe { run_state::recycle(run) };
        }
    }

    /// Runtime shutdown: claims a task that is not running, leaks its
    /// started fiber (its code does not continue, its destructors do not
    /// run: nothing may run on another thread's behalf during shutdown), and
    /// completes it with an error so a joiner returns.
    pub(crate) fn abandon(&self) {
        let claimed = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                match cur & LIFECYCLE {
                    IDLE | SCHEDULED => Some((cur & !(LIFECYCLE | NOTIFIED)) | RUNNING),
                    _ => None,
                }
            });
        if claimed.is_err() {
            return;
        }
        // SAFETY: we hold the task RUNNING.
        if let Some(run) = unsafe { self.run_state() } {
            // SAFETY: as above.
            if let Some(fiber) = unsafe { (*run.fiber.get()).take() } {
                std::mem::forget(fiber);
            }
        }
        let msg = format!(
            "corun: the runtime shut down before coroutine {} finished",
            self.id
        );
        // SAFETY: RUNNING; `fail` drops an unused function and sets the output.
        unsafe { (self.vtable.fail)(NonNull::from(self), Box::new(msg)) };
        self.complete();
    }

    /// RUNNING -> COMPLETE; wakes the joiner if one waits.
    pub(crate) fn complete(&self) {
        let prev = self.state.fetch_or(COMPLETE, Ordering::AcqRel);
        if prev & JOIN_WAITER != 0 {
            // SAFETY: the joiner wrote this before setting JOIN_WAITER
            // (Release), we saw the bit (Acquire), and it writes it only once.
            if let Some(joiner) = unsafe { (*self.joiner.get()).take() } {
                joiner.unpark();
            }
        }
    }
}

/// # Safety
/// `ptr` is a live `Cell<F, T>` held RUNNING for its first run.
unsafe fn start<F, T>(ptr: NonNull<Header>, stack: Stack) -> Fiber
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cell = ptr.cast::<Cell<F, T>>();
    // SAFETY: first run under RUNNING: nobody else touches the stage.
    let stage = unsafe { &mut *cell.as_ref().stage.get() };
    let Stage::Pending(f) = std::mem::replace(stage, Stage::Running) else {
        panic!("corun: task started twice");
    };
    Fiber::new(stack, move || {
        let out = panic::catch_unwind(AssertUnwindSafe(f));
        // Coroutine-locals die with their coroutine, on its own stack.
        crate::local::drop_current();
        // SAFETY: the running task holds a reference (the scheduler's), so
        // the cell is alive; the output is read only after COMPLETE, which
        // the scheduler sets after this fiber finished.
        unsafe { *cell.as_ref().stage.get() = Stage::Done(out) };
    })
}

/// # Safety
/// The last reference to a `Cell<F, T>` was dropped.
unsafe fn dealloc<F, T>(ptr: NonNull<Header>) {
    // SAFETY: allocated by `Box::new` in `TaskRef::new` with this type.
    let mut cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, T>>().as_ptr()) };
    // A run state left here belongs to a task that never finished: it never
    // started, or was abandoned at shutdown. A started fiber is leaked
    // rather than unwound on whatever thread dropped the last reference.
    let run = NonNull::new(*cell.header.run.get_mut());
    if let Some(run) = run {
        // SAFETY: the last reference owns the run state `acquire` leaked.
        let mut run = unsafe { Box::from_raw(run.as_ptr()) };
        if let Some(fiber) = run.fiber.get_mut().take()
            && fiber.is_started()
            && !fiber.is_finished()
        {
            std::mem::forget(fiber);
        }
    }
    drop(cell);
}

/// # Safety
/// The task is RUNNING and has never started.
unsafe fn fail<F, T>(ptr: NonNull<Header>, payload: Box<dyn Any + Send>) {
    let cell = ptr.cast::<Cell<F, T>>();
    // SAFETY: as documented: exclusive access to the stage.
    unsafe { *cell.as_ref().stage.get() = Stage::Done(Err(payload)) };
}

/// # Safety
/// The task is COMPLETE (observed with Acquire), the caller is its only
/// joiner, and `out` points at an `Option<Output<T>>`.
unsafe fn take_output<F, T>(ptr: NonNull<Header>, out: *mut ()) {
    let cell = ptr.cast::<Cell<F, T>>();
    // SAFETY: as documented: the finished fiber's write is visible and
    // nobody else touches the stage any more.
    let stage = unsafe { &mut *cell.as_ref().stage.get() };
    if let Stage::Done(output) = std::mem::replace(stage, Stage::Taken) {
        // SAFETY: `out`'s type is as documented.
        unsafe { *out.cast::<Option<Output<T>>>() = Some(output) };
    }
}

/// An owned permission to join a coroutine. Dropping it detaches the
/// coroutine, which keeps running.
///
/// ```
/// let h = corun_runtime::spawn(|| "result");
/// assert_eq!(h.join().unwrap(), "result");
/// // Dropping a handle detaches: the coroutine still runs to the end.
/// let (tx, rx) = std::sync::mpsc::channel();
/// drop(corun_runtime::spawn(move || tx.send(1).unwrap()));
/// assert_eq!(rx.recv().unwrap(), 1);
/// ```
pub struct JoinHandle<T> {
    task: TaskRef,
    _output: PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// Waits for the coroutine to finish and returns its result, or
    /// `Err(payload)` if it panicked. Parks the calling coroutine, or the
    /// calling thread outside coroutines.
    ///
    /// ```
    /// let ok = corun_runtime::spawn(|| 1);
    /// assert_eq!(ok.join().unwrap(), 1);
    /// // A panic stays in its coroutine and comes back as `Err(payload)`.
    /// let bad = corun_runtime::spawn(|| -> u32 { panic!("boom") });
    /// let payload = bad.join().unwrap_err();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// ```
    pub fn join(self) -> std::thread::Result<T> {
        let header = self.task.header();
        let state = &header.state;
        let mut cur = state.load(Ordering::Acquire);
        if cur & LIFECYCLE != COMPLETE {
            // SAFETY: only this handle writes the joiner, once, before
            // publishing JOIN_WAITER.
            unsafe { *header.joiner.get() = Some(park::unparker()) };
            loop {
                if cur & LIFECYCLE == COMPLETE {
                    break;
                }
                match state.compare_exchange_weak(
                    cur,
                    cur | JOIN_WAITER,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        while state.load(Ordering::Acquire) & LIFECYCLE != COMPLETE {
                            park::park(WaitReason::Join);
                        }
                        break;
                    }
                    Err(actual) => cur = actual,
                }
            }
        }
        let mut out: Option<Output<T>> = None;
        // SAFETY: COMPLETE was observed with Acquire, this handle is the
        // only joiner, and the task's vtable was made for this `T`.
        unsafe {
            (header.vtable.take_output)(self.task.0, (&raw mut out).cast::<()>());
        }
        out.expect("corun: a completed coroutine left no output")
    }

    /// True once the coroutine has finished (returned or panicked).
    ///
    /// ```
    /// let h = corun_runtime::spawn(|| ());
    /// while !h.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// h.join().unwrap();
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.header().lifecycle() == COMPLETE
    }

    /// The coroutine's id, unique in the process.
    ///
    /// ```
    /// let h = corun_runtime::spawn(|| corun_runtime::current().unwrap().id());
    /// let id = h.id();
    /// assert_eq!(h.join().unwrap(), id);
    /// ```
    pub fn id(&self) -> u64 {
        self.task.header().id
    }

    /// The coroutine's name, if it was given one.
    ///
    /// ```
    /// let h = corun_runtime::Builder::new().name("io").spawn(|| ()).unwrap();
    /// assert_eq!(h.name(), Some("io"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.task.header().name.as_deref()
    }

    /// A handle describing the coroutine.
    ///
    /// ```
    /// let h = corun_runtime::spawn(|| ());
    /// let c = h.coroutine();
    /// assert_eq!(c.id(), h.id());
    /// ```
    pub fn coroutine(&self) -> crate::Coroutine {
        crate::Coroutine::from_task(self.task.clone())
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// What an unjoined finished task keeps: a million handles cost this
    /// times a million. Growing the header past it moves every task into a
    /// larger allocator size class.
    #[test]
    fn a_finished_task_returning_u64_keeps_120_bytes() {
        let size = std::mem::size_of::<super::Cell<fn() -> u64, u64>>();
        assert!(size <= 120, "task is {size} bytes");
    }
}
