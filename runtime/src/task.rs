//! The G: one block per coroutine (from `task_cache`, which recycles them)
//! holding its header, its function until first run, and its output until
//! joined.
//!
//! # Layout
//!
//! A task is a `Cell<F, T>`: `#[repr(C)]`, starting with a `Prefix<T>` that
//! starts with the `Header`. Code that knows only the header (run queues,
//! the scheduler) handles `TaskRef`s, which point at the header and own one
//! reference; a `JoinHandle<T>` knows `T` and reads the output through the
//! prefix; only the vtable knows `F`. The stack is taken lazily at first run,
//! so a spawned-but-not-started coroutine costs one allocation.
//!
//! # State
//!
//! `state` holds one of IDLE (parked), SCHEDULED (not parked: in a run
//! queue, about to be, or running on a worker), RUNNING (running on its
//! pinned thread, or claimed by shutdown) and COMPLETE, plus flags (see
//! `lifecycle.rs` for why workers do not mark RUNNING):
//!
//! - NOTIFIED: an unpark arrived while the task was not parked; the next
//!   park consumes it instead of sleeping. This is how an unpark that
//!   arrives before the park is not lost.
//! - JOIN_WAITER: a joiner stored its unparker and must be woken at COMPLETE.
//!
//! `unpark` moves IDLE to SCHEDULED exactly once and only then enqueues, so
//! a task is in at most one queue, and the one thread that takes it off
//! (its *runner*) is the only one to touch its fiber until it parks again.
//! A task becomes IDLE only after its fiber has switched away, so a
//! coroutine is never run by two threads and never resumed while its stack
//! is in use. `on_cpu` (what introspection shows as running) is a hint
//! written by the runner and guards nothing.
//!
//! # Output
//!
//! A result is dropped by whoever holds it last: the joiner, or for a
//! detached coroutine the coroutine itself, on its own stack, so that a
//! destructor that waits (joins another coroutine, locks, sends) parks like
//! any coroutine code. Dropped by the worker that ran the task, it would
//! park the worker's thread with its P held: on one worker, whatever it
//! waited for could never run. For a result type with a destructor the
//! fiber stores its output and then sets OUTPUT_SET; a handle dropped
//! before COMPLETE sets DETACHED. Both are read-modify-writes of the state
//! word, so exactly one of the two sees the other's bit: a fiber that
//! finds DETACHED takes its output back and drops it, a handle that finds
//! OUTPUT_SET drops it (the fiber touches it no more). A handle dropped
//! after COMPLETE drops what is left (nothing after `join`). A result type
//! without a destructor (`()`, integers) skips all this; a panic payload
//! is dropped wherever the task is freed.
//!
//! # References
//!
//! `refs` counts the join handle, the registry's entry, unparkers, listings,
//! and one *run reference*: spawn creates it with the task, then a run
//! queue holds it while the task is SCHEDULED, the runner while it runs,
//! and the task itself while it is IDLE (parked): the runner forgets it
//! after `end_run_park` and the waker that makes the task SCHEDULED again
//! takes it over without counting (`notify`). So a park and a wake cost no
//! reference-count traffic, and a parked task cannot be freed under its
//! waker. The runner drops the run reference when the task completes;
//! shutdown's `abandon` drops that of a task it finds parked, and leaks one
//! reference for every fiber it leaks.

use std::alloc::Layout;
use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe, Location};
use std::ptr::NonNull;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

use corun_stacks::Stack;
use corun_stacks::fiber::Fiber;

use crate::local::LocalMap;
use crate::park::{self, Unparker, WaitReason};
use crate::sched::Shared;
use crate::task_cache;

use crate::lifecycle::{self, ABANDONED, JOIN_WAITER, LIFECYCLE, NOTIFIED};
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
}

pub(crate) struct Header {
    state: AtomicU32,
    refs: AtomicUsize,
    /// Bumped (by the coroutine alone) when a park ends, so a timer set for
    /// an earlier park does not wake a later one.
    pub(crate) park_seq: AtomicU32,
    wait_reason: AtomicU8,
    /// Set by the runner while the task's code runs (see "State").
    on_cpu: AtomicBool,
    pub(crate) pinned: bool,
    /// Whether `Cell::func` still holds the function: owned by the runner
    /// until the first run (or `fail`) takes it, then by the last reference.
    /// A flag here, in the header's spare byte, rather than an `Option`
    /// around the function, whose tag would cost a small task 8 bytes.
    has_func: UnsafeCell<bool>,
    vtable: &'static Vtable,
    pub(crate) shared: &'static Shared,
    pub(crate) id: u64,
    /// Boxed twice so that an unnamed task (the usual kind) pays one
    /// pointer for it, not a fat one.
    name: Option<Box<Box<str>>>,
    pub(crate) spawn_site: &'static Location<'static>,
    /// At most `MAX_STACK_SIZE` (asserted below); a `u32` packs beside the
    /// other 32-bit fields and keeps a small task in a smaller size class.
    stack_size: u32,
    /// Coarse time (runtime nanoseconds) of the last state change seen by
    /// introspection: set at spawn, park and run.
    pub(crate) since: AtomicU64,
    /// The registry slot holding this task, null once removed.
    pub(crate) registry_slot: AtomicPtr<AtomicPtr<Header>>,
    /// An address in the frame that last parked, or 0: where its stack
    /// resumes, for the waker to prefetch (`park::prefetch_stack`).
    pub(crate) parked_sp: AtomicUsize,
    /// Owned by the task's runner (see "State").
    fiber: UnsafeCell<Option<Fiber>>,
    /// Written by the joiner before it sets JOIN_WAITER, read by the
    /// completer after it sees JOIN_WAITER.
    joiner: UnsafeCell<Option<Unparker>>,
    /// Coroutine-local values; touched only by the coroutine itself.
    pub(crate) locals: UnsafeCell<Option<Box<LocalMap>>>,
    /// For pinned tasks: the thread they live on.
    pub(crate) home: Option<std::sync::Arc<crate::pinned::Home>>,
}

// A task's stack size is the runtime's default or went through
// `validate_size`: either way at most `MAX_STACK_SIZE`.
const _: () = assert!(corun_stacks::MAX_STACK_SIZE <= u32::MAX as usize);

#[repr(C)]
struct Prefix<T> {
    header: Header,
    output: UnsafeCell<Option<Output<T>>>,
}

#[repr(C)]
struct Cell<F, T> {
    prefix: Prefix<T>,
    /// Live while `Header::has_func` is set.
    func: UnsafeCell<ManuallyDrop<F>>,
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

/// A task just allocated, as its three references.
pub(crate) struct NewTask<T> {
    /// For the run queue (see "References").
    pub(crate) run: TaskRef,
    /// For `Registry::insert`.
    pub(crate) registered: TaskRef,
    pub(crate) handle: JoinHandle<T>,
}

impl<T> NewTask<T> {
    /// Allocates a task in state SCHEDULED holding three references: the
    /// run reference, the registry's and the join handle's. Counted at
    /// once rather than cloned for the registry: a locked increment less
    /// per spawn, ~6% of spawn + join.
    pub(crate) fn allocate<F>(init: TaskInit, f: F) -> NewTask<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let vtable: &'static Vtable = &Vtable {
            start: start::<F, T>,
            dealloc: dealloc::<F, T>,
            fail: fail::<F, T>,
        };
        let layout = Layout::new::<Cell<F, T>>();
        // SAFETY: a cell has a non-zero size (it starts with the header).
        let raw = unsafe { task_cache::allocate(layout) }.cast::<Cell<F, T>>();
        let Some(cell) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        let value = Cell::<F, T> {
            prefix: Prefix {
                header: Header {
                    state: AtomicU32::new(SCHEDULED),
                    refs: AtomicUsize::new(3),
                    park_seq: AtomicU32::new(0),
                    wait_reason: AtomicU8::new(WaitReason::None as u8),
                    on_cpu: AtomicBool::new(false),
                    pinned: init.home.is_some(),
                    has_func: UnsafeCell::new(true),
                    vtable,
                    shared: init.shared,
                    id: init.id,
                    name: init.name.map(Box::new),
                    spawn_site: init.spawn_site,
                    stack_size: init.stack_size as u32,
                    since: AtomicU64::new(init.shared.coarse_now()),
                    registry_slot: AtomicPtr::new(std::ptr::null_mut()),
                    parked_sp: AtomicUsize::new(0),
                    fiber: UnsafeCell::new(None),
                    joiner: UnsafeCell::new(None),
                    locals: UnsafeCell::new(None),
                    home: init.home,
                },
                output: UnsafeCell::new(None),
            },
            func: UnsafeCell::new(ManuallyDrop::new(f)),
        };
        // SAFETY: freshly allocated for this layout, not yet initialised.
        unsafe { cell.as_ptr().write(value) };
        let ptr = cell.cast::<Header>();
        NewTask {
            run: TaskRef(ptr),
            registered: TaskRef(ptr),
            handle: JoinHandle {
                task: TaskRef(ptr),
                _output: PhantomData,
            },
        }
    }
}

/// One counted reference to a task.
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: a task's function and output are `Send` (enforced by
// `NewTask::allocate`), its header is made of atomics and of cells whose
// access is serialised by the state protocol above (the fiber by its one
// runner, the joiner by JOIN_WAITER, locals by the coroutine itself,
// `has_func` by the runner and then by the last reference, which the
// count's release and acquire order after it).
// Moving a suspended fiber between threads is the runtime's central unsafe
// assumption, argued in docs/safety.md.
unsafe impl Send for TaskRef {}
// SAFETY: as for `Send`; `&TaskRef` only exposes the atomics and the
// protocol-guarded cells.
unsafe impl Sync for TaskRef {}

impl TaskRef {
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

    /// A new reference to the task at `ptr`.
    ///
    /// # Safety
    /// Some reference to that task is held elsewhere for the duration of
    /// the call (so the count cannot reach zero under us).
    pub(crate) unsafe fn clone_raw(ptr: *mut Header) -> TaskRef {
        // SAFETY: as documented, the task is alive; `ptr` is not null.
        let task = ManuallyDrop::new(unsafe { TaskRef::from_raw(ptr) });
        TaskRef::clone(&task)
    }

    pub(crate) fn as_ptr(&self) -> *const Header {
        self.0.as_ptr()
    }

    // `fiber` and `abandon` are `TaskRef`'s, not `Header`'s: they hand the
    // vtable a pointer to the whole cell, whose function and output lie
    // beyond the header, and only the pointer the allocation handed out
    // (`self.0`) may reach them. One made from a `&Header` may not (Miri's
    // Stacked Borrows reports the access past the header).

    /// The fiber, creating it (and taking a stack) on first run. `None` when
    /// no stack could be had: the task was completed with that error.
    ///
    /// # Safety
    /// The caller is the task's runner.
    // The fiber sits in an `UnsafeCell` whose exclusive owner is the task's
    // runner, which is what the safety contract states.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn fiber(&self) -> Option<&mut Fiber> {
        let header = self.header();
        // SAFETY: the runner has exclusive access to the fiber.
        let slot = unsafe { &mut *header.fiber.get() };
        if slot.is_none() {
            match Stack::new(header.stack_size()) {
                Ok(mut stack) => {
                    stack.set_label(header.id, header.name().unwrap_or(""));
                    // SAFETY: the runner, first run: the function is still there.
                    *slot = Some(unsafe { (header.vtable.start)(self.0, stack) });
                }
                Err(e) => {
                    let msg = format!("corun: coroutine {} could not get a stack: {e}", header.id);
                    // SAFETY: the runner, never started: nobody else touches the output.
                    unsafe { (header.vtable.fail)(self.0, Box::new(msg)) };
                    return None;
                }
            }
        }
        slot.as_mut()
    }

    /// Runtime shutdown: claims a task that is not running, leaks its
    /// started fiber (its code does not continue, its destructors do not
    /// run: nothing may run on another thread's behalf during shutdown), and
    /// completes it with an error so a joiner returns. A leaked fiber's
    /// frames stay where they are, and wait records in them (a channel
    /// waiter's `FrameUnparker`) still point at this header, so the header
    /// is leaked with them: it stays COMPLETE, wakes reaching it do nothing,
    /// and `is_abandoned` tells wakers to pass it by. The caller holds a
    /// reference to the task and every worker M has exited, so a SCHEDULED
    /// task is not running: a pinned thread runs one only after moving it
    /// to RUNNING by compare-and-swap (`begin_pinned_run`), which fails
    /// once this claim is made, and skips it then.
    pub(crate) fn abandon(&self) {
        let header = self.header();
        let claimed =
            header
                .state
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    match cur & LIFECYCLE {
                        IDLE | SCHEDULED => Some((cur & !(LIFECYCLE | NOTIFIED)) | RUNNING),
                        _ => None,
                    }
                });
        let Ok(prev) = claimed else {
            return;
        };
        // SAFETY: our claim made us the runner (see above).
        if let Some(fiber) = unsafe { (*header.fiber.get()).take() } {
            std::mem::forget(fiber);
            // A reference nobody will drop: the header outlives the leaked
            // frames (see above). Marked before `complete` publishes it.
            header.refs.fetch_add(1, Ordering::Relaxed);
            header.state.fetch_or(ABANDONED, Ordering::Relaxed);
        }
        let msg = format!(
            "corun: the runtime shut down before coroutine {} finished",
            header.id
        );
        // SAFETY: the runner; `fail` drops an unused function and sets the output.
        unsafe { (header.vtable.fail)(self.0, Box::new(msg)) };
        header.complete();
        if let Some(home) = &header.home {
            // Set before our claim, the shutdown flag is what its thread
            // finds when this wakes it (a thread not yet waiting finds
            // the task claimed instead).
            home.shut_down();
        }
        if prev & LIFECYCLE == IDLE {
            // A parked task held its run reference itself (see "References");
            // our claim kept any waker from taking it. The caller's own
            // reference keeps the task alive past this drop.
            drop(TaskRef(self.0));
        }
    }

    /// Wakes the task if it is parked; records the wake if it is running.
    /// Returns the reference to enqueue when the task became SCHEDULED: the
    /// run reference the task kept while it was parked (see "References"
    /// above), not a new count.
    pub(crate) fn notify(&self) -> Option<TaskRef> {
        lifecycle::notify(&self.header().state).then(|| TaskRef(self.0))
    }

    /// Leaves the run reference with the task as it parks; the waker that
    /// moves it IDLE -> SCHEDULED takes it back (`notify`). Called by the
    /// runner after `end_run_park` succeeded: from then on a waker may
    /// already hold the reference, so the caller must not touch the task.
    pub(crate) fn keep_while_parked(self) {
        std::mem::forget(self);
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        self.header().refs.fetch_add(1, Ordering::Relaxed);
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
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref().map(|n| &**n)
    }

    /// The stack reservation this task asked for (taken at first run).
    pub(crate) fn stack_size(&self) -> usize {
        self.stack_size as usize
    }

    pub(crate) fn lifecycle(&self) -> u32 {
        self.state.load(Ordering::Acquire) & LIFECYCLE
    }

    pub(crate) fn wait_reason(&self) -> WaitReason {
        WaitReason::from_u8(self.wait_reason.load(Ordering::Relaxed))
    }

    pub(crate) fn set_wait_reason(&self, reason: WaitReason) {
        self.wait_reason.store(reason as u8, Ordering::Relaxed);
    }

    /// SCHEDULED -> RUNNING, by a pinned task's thread as it takes the
    /// task; false if shutdown's `abandon` claimed it first (a task woken
    /// while the runtime shuts down is both in its home and claimable).
    pub(crate) fn begin_pinned_run(&self) -> bool {
        lifecycle::begin_run(&self.state)
    }

    /// Shown by introspection as running (a hint, see "State").
    pub(crate) fn set_on_cpu(&self, on: bool) {
        self.on_cpu.store(on, Ordering::Relaxed);
    }

    pub(crate) fn on_cpu(&self) -> bool {
        self.on_cpu.load(Ordering::Relaxed)
    }

    /// Not parked -> IDLE after a park switched away, unless a wake arrived
    /// meanwhile: then the wake is consumed and `false` says "run it again".
    pub(crate) fn end_run_park(&self) -> bool {
        lifecycle::end_run_park(&self.state)
    }

    /// Consumes a pending wake without switching; the park fast path.
    pub(crate) fn take_notified(&self) -> bool {
        lifecycle::take_notified(&self.state)
    }

    /// Returns a finished fiber's stack to the pool (on this thread's cache).
    ///
    /// # Safety
    /// The caller is the task's runner and its fiber has finished.
    pub(crate) unsafe fn release_fiber(&self) {
        // SAFETY: as for `fiber`.
        let slot = unsafe { &mut *self.fiber.get() };
        if let Some(fiber) = slot.take() {
            drop(fiber.into_stack());
        }
    }

    /// Was the task abandoned by shutdown with its fiber started (its
    /// frames leaked, never to run again)?
    #[inline]
    pub(crate) fn is_abandoned(&self) -> bool {
        self.state.load(Ordering::Acquire) & ABANDONED != 0
    }

    /// -> COMPLETE, by the runner or shutdown's claim; wakes the joiner if
    /// one waits.
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
/// `ptr` is a live `Cell<F, T>` and the caller its runner, at its first run.
unsafe fn start<F, T>(ptr: NonNull<Header>, stack: Stack) -> Fiber
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let cell = ptr.cast::<Cell<F, T>>();
    let prefix = ptr.cast::<Prefix<T>>();
    // The function is taken on the coroutine's own stack: the fiber's
    // closure stays two pointers whatever the user's closure captures.
    Fiber::new(stack, move || {
        // SAFETY: this fiber's first resume, by the task's runner: nobody
        // else touches `func` or its flag. Shutdown's `abandon` drops the
        // function instead only if this never ran (`has_func` still set).
        let f = unsafe { take_func(cell) }.expect("corun: task started twice");
        let mut out = panic::catch_unwind(AssertUnwindSafe(f));
        // Coroutine-locals die with their coroutine, on its own stack. A
        // panic in their destructors is the coroutine's, as if its function
        // had panicked (the first panic wins). What loses is dropped under
        // `catch_unwind`: a value's or a payload's destructor is user code,
        // and a panic escaping the fiber would stop the worker.
        if let Err(payload) = panic::catch_unwind(crate::local::drop_current) {
            let loser = if out.is_ok() {
                std::mem::replace(&mut out, Err(payload))
            } else {
                Err(payload)
            };
            drop_caught(loser);
        }
        // SAFETY: the running task holds a reference (the scheduler's), so
        // the cell is alive; the output is read only after COMPLETE, which
        // the scheduler sets after this fiber finished, or after OUTPUT_SET.
        let (output, header) = unsafe { (prefix.as_ref().output.get(), ptr.as_ref()) };
        // SAFETY: as above: nobody else touches the output yet.
        unsafe { *output = Some(out) };
        // See "Output": the handle may be gone, or going.
        if std::mem::needs_drop::<T>() && lifecycle::output_stored(&header.state) {
            // The handle saw no OUTPUT_SET, so it leaves the output alone,
            // and nobody joins: it is ours to drop.
            // SAFETY: as just said, nobody else touches it.
            drop_caught(unsafe { (*output).take() });
        }
    })
}

/// Drops `value`, whose destructor is user code, where a panic must not
/// escape: on a worker it would stop the runtime, in shutdown it would
/// leave the rest of the coroutines uncompleted, at a coroutine's end
/// nobody could receive it. The panic hook has reported it. A payload
/// whose own destructor panics too is leaked.
pub(crate) fn drop_caught<V>(value: V) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value)))
        && let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload)))
    {
        std::mem::forget(again);
    }
}

/// # Safety
/// The last reference to a `Cell<F, T>` was dropped.
unsafe fn dealloc<F, T>(ptr: NonNull<Header>) {
    /// Returns the memory even if dropping a field panics.
    struct Free(NonNull<u8>, Layout);
    impl Drop for Free {
        fn drop(&mut self) {
            // SAFETY: allocated in `NewTask::allocate` with this layout; the
            // value in it has been dropped (or is being unwound past).
            unsafe { task_cache::deallocate(self.0, self.1) };
        }
    }
    let cell = ptr.cast::<Cell<F, T>>();
    let _free = Free(cell.cast(), Layout::new::<Cell<F, T>>());
    // SAFETY: the last reference is gone, so we have the cell to ourselves;
    // it was initialised in `NewTask::allocate`.
    let fiber = unsafe { (*cell.as_ptr()).prefix.header.fiber.get_mut().take() };
    // Tasks are freed after they complete, so a fiber left here never
    // started or was abandoned at shutdown. A started one is leaked rather
    // than unwound on whatever thread dropped the last reference.
    if let Some(fiber) = fiber
        && fiber.is_started()
        && !fiber.is_finished()
    {
        std::mem::forget(fiber);
    }
    // The output's or the unused function's destructor is user code and
    // may panic. This may run on a worker (a detached coroutine's runner
    // drops the last reference), where a panic would stop the runtime, so
    // it is caught and dropped here wherever it runs; the panic hook has
    // reported it already.
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; dropped exactly once, here. (The function
        // comes last: if it is still there, the output is empty and the
        // header's fields do not panic, so it is not leaked by an unwind.)
        unsafe {
            std::ptr::drop_in_place(&raw mut (*cell.as_ptr()).prefix);
            drop(take_func(cell));
        }
    }));
    if let Err(payload) = dropped {
        // Its own destructor gets the same treatment.
        drop_caught(payload);
    }
}

/// # Safety
/// The caller is the task's runner (or shutdown's claim) and the task's
/// fiber never finished: it never started, or shutdown leaked it.
unsafe fn fail<F, T>(ptr: NonNull<Header>, payload: Box<dyn Any + Send>) {
    let cell = ptr.cast::<Cell<F, T>>();
    // SAFETY: as documented: exclusive access to func.
    let func = unsafe { take_func(cell) };
    // The unused function's destructor is user code and may panic. This
    // runs in shutdown (on the thread dropping the `Runtime`, where a panic
    // would escape its drop and leave the rest of the coroutines
    // uncompleted) or on a worker (where it would stop the runtime), so it
    // is caught here, as in `dealloc`.
    drop_caught(func);
    // SAFETY: as documented: exclusive access to the output.
    unsafe { *cell.as_ref().prefix.output.get() = Some(Err(payload)) };
}

/// Moves the function out, once.
///
/// # Safety
/// `cell` is live and the caller has exclusive access to its function and
/// `has_func` (the runner, or the holder of the last reference).
unsafe fn take_func<F, T>(cell: NonNull<Cell<F, T>>) -> Option<F> {
    // SAFETY: as documented.
    unsafe {
        let has_func = &mut *cell.as_ref().prefix.header.has_func.get();
        if !std::mem::replace(has_func, false) {
            return None;
        }
        Some(ManuallyDrop::take(&mut *cell.as_ref().func.get()))
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

// SAFETY: a shared `&JoinHandle` reaches only the task's header (id, name,
// the finished flag), never the output: `join` takes the handle by value.
// So sharing one between threads needs nothing of `T` beyond the `Send`
// that moving the output to the joiner already needs, as std's
// `JoinHandle<T>` is `Sync` whatever `T` is.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

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
        let prefix = self.task.0.cast::<Prefix<T>>();
        // SAFETY: COMPLETE was observed with Acquire, so the output written
        // by the finished fiber is visible; this handle is the only reader.
        let out = unsafe { (*prefix.as_ref().output.get()).take() };
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
        self.task.header().name()
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

impl<T> Drop for JoinHandle<T> {
    /// Detaches: the coroutine runs on, and drops its own result (see
    /// "Output" in the module docs).
    fn drop(&mut self) {
        if !std::mem::needs_drop::<T>() {
            return;
        }
        if lifecycle::detach(&self.task.header().state) {
            let prefix = self.task.0.cast::<Prefix<T>>();
            // SAFETY: COMPLETE or OUTPUT_SET, seen with Acquire, says the
            // fiber wrote the output and touches it no more; this handle is
            // its only other user (after `join` nothing is left).
            drop_caught(unsafe { (*prefix.as_ref().output.get()).take() });
        }
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

/// Tasks for unit tests that never run them (no fiber, no started runtime).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A runtime that is never started: in a static, as `Shared` must be,
    /// and so that Miri does not report it leaked.
    fn shared() -> &'static Shared {
        static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
        SHARED.get_or_init(|| Shared::new(0, 1, 64 * 1024, 1, String::new(), false))
    }

    /// A task of `f`, as spawn makes it: SCHEDULED, three references.
    pub(crate) fn new_task<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> NewTask<T> {
        let init = TaskInit {
            shared: shared(),
            id: 1,
            name: Some("never".into()),
            spawn_site: Location::caller(),
            stack_size: 64 * 1024,
            home: None,
        };
        NewTask::allocate(init, f)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::new_task;
    use super::*;

    #[test]
    fn a_small_task_fits_the_160_byte_class() {
        // `go!(move || i)` with `i: u64`: what spawn + join of a million
        // live handles keeps per handle. Its pages are most of that
        // workload's page faults; the next class, 192 bytes, would be 1/5
        // more.
        fn cell_of<F: FnOnce() -> u64>(_: &F) -> usize {
            std::mem::size_of::<Cell<F, u64>>()
        }
        let i = 7u64;
        let size = cell_of(&move || i);
        assert!(size <= 160, "a task of a u64 closure takes {size} bytes");
    }

    /// A task that never ran, as shutdown finds it: `abandon` drops its
    /// function and completes it with the error its joiner gets.
    #[test]
    fn an_abandoned_task_that_never_ran_joins_with_an_error() {
        let owned = String::from("captured");
        let task = new_task(move || owned.len());
        task.registered.abandon();
        drop(task.run);
        drop(task.registered);
        let payload = task.handle.join().unwrap_err();
        let msg = payload.downcast_ref::<String>().expect("a message");
        assert!(msg.contains("shut down"), "{msg}");
    }

    /// What the running task's code may take of it (`current()`,
    /// `unparker()`) is built on the pointer the scheduler publishes, and
    /// may be the task's last reference, which frees it.
    #[test]
    fn a_reference_taken_while_running_may_be_the_last() {
        let task = new_task(|| ());
        crate::tls::set_task(Some(&task.run), true);
        let me = crate::current().expect("published");
        let wake = park::unparker();
        crate::tls::set_task(None, false);
        task.registered.abandon();
        drop(task.run);
        drop(task.registered);
        assert!(task.handle.join().is_err());
        drop(wake);
        drop(me);
    }
}
