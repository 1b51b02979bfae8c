//! The G/M/P scheduler.
//!
//! # Model
//!
//! - A **G** is a coroutine (`task::Header`): its stack, state and identity.
//! - A **P** is a processor: the right to run Gs. A runtime has a fixed
//!   number of Ps (`workers`). Each owns a FIFO run queue (a crossbeam-deque
//!   `Worker`, stolen from through its `Stealer`) of at most 256 Gs, whose
//!   older half spills to the global injector when it is full, a `runnext`
//!   slot for the newest ready G, and a timer heap.
//! - An **M** is an OS thread. It runs Gs only while it holds a P. Ms without
//!   a P either block in the poller (one at a time) or sleep on their own
//!   futex in the idle list.
//!
//! # Finding work
//!
//! An M with a P looks, in order: due timers of its P; every 61st round one
//! G from the global queues (so a busy local queue cannot starve them);
//! `runnext`; the local queue; the global queues; a non-blocking poll of the
//! network driver; then, if not too many Ms are already spinning (at most
//! half the busy Ps), it steals half of a random victim's queue, four
//! rounds over all Ps; in the last round it also takes a victim's
//! `runnext`, from a running P only after a 3 us grace (Go's rule: its G
//! usually blocks at once and runs it there; a spawner that keeps running
//! would hold it a whole slice). Finding nothing, it puts its P on the idle
//! list, re-checks every queue (a producer either sees the idle P and wakes
//! someone, or its work is seen here), and stops: in the poller if no
//! other M is there (with the earliest timer as timeout, like Go's
//! findrunnable), else in the idle list.
//!
//! There are two global queues. The injector takes new Gs spawned off any
//! P, preempted Gs and local queues' spills. Gs woken by a thread holding
//! none of our Ps (sysmon or the poller firing timers, a plain thread
//! sending on a channel) go to the woken queue, which is served first: a
//! spawn loop's spills can leave tens of thousands of new Gs in the
//! injector, and a woken G behind them waited for all of them (a 10 ms
//! sleep woke up to 85 ms late). The 61st-round check alternates which of
//! the two it tries first, so neither starves the other.
//!
//! Producers call `wakep` when there are idle Ps and no spinning M: it starts
//! one spinning M (an idle one, the poller by notifying it, or a new thread).
//! A woken G goes to its waker's `runnext` and inherits the time slice, so a
//! send/receive pair runs back to back on one P; that wake does not call
//! `wakep` unless the P has other queued work (sysmon wakes an idle P for
//! work left waiting).
//!
//! # P ownership and hand-off
//!
//! `P::status` packs an epoch (bumped each time the P changes hands) and a
//! state: IDLE, SCHED (its M is in scheduler code), USER (its M runs a
//! coroutine) or SYSCALL (its M runs a coroutine inside `blocking()`).
//! sysmon may take a P from an M in USER (stuck for 10 ms without reaching a
//! yield point while others wait) or SYSCALL (blocked for ~20 us): it CASes
//! the status to a new epoch and hands the P to another M. The old M keeps
//! its coroutine; every P access it makes from coroutine code first CASes
//! USER -> SCHED under its own epoch, which fails once the P is gone, and
//! then uses a global queue instead. The exception is a wake into `runnext`,
//! an atomic any thread may swap: the waker swaps first and checks the
//! status after (sysmon checks for work after its CAS), so a task landing
//! on a P taken meanwhile is taken back and injected. When its coroutine
//! next switches back, the M notices the loss, gives the coroutine to an idle P or the injector,
//! and goes idle. Scheduler code (state SCHED) cannot lose its P, so the
//! local queue, which is single-owner, is only ever used by the P's owner.
//!
//! # Invariants
//!
//! - A task is in at most one queue, and is run by at most one M (see
//!   `task.rs`).
//! - A P is held by at most one M; its local queue is touched only by that
//!   M, in SCHED state.
//! - Every pushed G is eventually seen: pushes are followed by a `wakep`
//!   check, idle Ms re-check queues after publishing their idle P, and sysmon
//!   re-checks periodically.

use std::cell::UnsafeCell;
use std::io::Write as _;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use corun_stacks::fiber::Resumed;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::driver::{self, Driver, Sleeper};
use crate::park::Unparker;
use crate::registry::{Registry, SlotCache};
use crate::task::{Header, TaskRef};
use crate::timer::{Due, Timers};
use crate::tls::{self, NO_P};
use crate::trace;

/// Words a fiber passes to the scheduler when it switches away.
pub(crate) const SUSPEND_PARK: usize = 1;
pub(crate) const SUSPEND_YIELD: usize = 2;
pub(crate) const SUSPEND_PREEMPT: usize = 3;
pub(crate) const SUSPEND_LOST_P: usize = 4;

const P_IDLE: u64 = 0;
const P_SCHED: u64 = 1;
const P_USER: u64 = 2;
const P_SYSCALL: u64 = 3;

fn status(epoch: u64, state: u64) -> u64 {
    epoch << 2 | state
}

/// How long a G may run before yield points give way.
pub(crate) const TIME_SLICE: Duration = Duration::from_millis(10);

/// How long a thief leaves a running P's `runnext` to its owner (Go: 3 us).
const RUNNEXT_GRACE: Duration = Duration::from_micros(3);

/// How long an M needed at the thread cap may take to turn up (an M
/// between releasing its P and listing itself idle) before the cap is
/// reported as fatal.
const CAP_GRACE: Duration = Duration::from_secs(1);

/// Why `new_m` started no thread.
enum NewMError {
    /// `max_threads` reached.
    Cap(String),
    /// The OS refused a thread.
    Spawn(String),
    /// The runtime is shutting down: no M may start.
    Shutdown,
}

/// Tasks a local queue holds before it spills half to the injector (Go's
/// `runq` is a ring of this size).
const LOCAL_QUEUE_CAP: usize = 256;

/// Spins for `RUNNEXT_GRACE` while `victim` keeps a task in `runnext`;
/// true if the task is still there.
fn runnext_outlives_grace(victim: &P) -> bool {
    let start = Instant::now();
    while victim.has_runnext() {
        if start.elapsed() >= RUNNEXT_GRACE {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

pub(crate) struct P {
    pub(crate) idx: usize,
    status: AtomicU64,
    runnext: AtomicPtr<Header>,
    /// Single-owner end of the run queue; see the module docs.
    local: UnsafeCell<Worker<TaskRef>>,
    stealer: Stealer<TaskRef>,
    /// A hint that `local` may hold tasks, for coroutine code that cannot
    /// ask the queue (only the holder may, and `Stealer::is_empty` costs a
    /// fence). The holder sets it whenever it adds to the queue and clears
    /// it when its own pop finds nothing; a thief emptying the queue leaves
    /// it set, so it errs towards "may hold".
    maybe_queued: AtomicBool,
    /// Free registry slots, for spawns and completions on this P.
    registry_slots: UnsafeCell<SlotCache>,
    pub(crate) timers: Timers,
    /// Bumped for each G run with a fresh time slice; sysmon watches it.
    pub(crate) schedtick: AtomicU32,
    /// When the P entered SYSCALL (runtime nanoseconds).
    syscall_since: AtomicU64,
    pub(crate) preempt: AtomicBool,
    pub(crate) switches: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) spawned: AtomicU64,
}

// SAFETY: every field is atomic or `Sync` except `local` and
// `registry_slots`, which only the M holding the P (state SCHED, its own
// epoch) touches, as the module docs argue; both are `Send`, so handing
// them from M to M with the P is fine.
unsafe impl Sync for P {}

impl P {
    fn new(idx: usize) -> P {
        let local = Worker::new_fifo();
        let stealer = local.stealer();
        P {
            idx,
            status: AtomicU64::new(status(0, P_IDLE)),
            runnext: AtomicPtr::new(std::ptr::null_mut()),
            local: UnsafeCell::new(local),
            stealer,
            maybe_queued: AtomicBool::new(false),
            registry_slots: UnsafeCell::new(SlotCache::default()),
            timers: Timers::new(),
            schedtick: AtomicU32::new(0),
            syscall_since: AtomicU64::new(0),
            preempt: AtomicBool::new(false),
            switches: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
        }
    }

    /// # Safety
    /// The caller's M holds this P in SCHED state.
    unsafe fn local(&self) -> &Worker<TaskRef> {
        // SAFETY: as documented.
        unsafe { &*self.local.get() }
    }

    /// # Safety
    /// As for `local`; the borrow must end before the P is released.
    #[allow(clippy::mut_from_ref)]
    unsafe fn registry_slots(&self) -> &mut SlotCache {
        // SAFETY: as documented: only the holding M gets here, one borrow
        // at a time.
        unsafe { &mut *self.registry_slots.get() }
    }

    /// Starts a fresh time slice: sysmon measures a slice from the last
    /// change of `schedtick`, and a pending preemption request is dropped.
    fn new_slice(&self) {
        self.schedtick.store(
            self.schedtick.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        self.preempt.store(false, Ordering::Relaxed);
    }

    fn has_work(&self) -> bool {
        // SeqCst: pairs with `enqueue_woken`'s swap and status load (after
        // `retake`'s CAS, this sees a task swapped in by the P's old holder).
        !self.runnext.load(Ordering::SeqCst).is_null() || !self.stealer.is_empty()
    }

    /// Sets the `maybe_queued` hint, writing only a change: it may share
    /// a cache line with `status` and `runnext`, which spinning thieves
    /// read, so a push that finds it set leaves that line alone.
    fn note_queued(&self, queued: bool) {
        if self.maybe_queued.load(Ordering::Relaxed) != queued {
            self.maybe_queued.store(queued, Ordering::Relaxed);
        }
    }

    fn has_runnext(&self) -> bool {
        !self.runnext.load(Ordering::Relaxed).is_null()
    }

    fn take_runnext(&self) -> Option<TaskRef> {
        if self.runnext.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let ptr = self.runnext.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: runnext holds a reference made by `into_raw`, taken once
        // by whoever swaps it out.
        (!ptr.is_null()).then(|| unsafe { TaskRef::from_raw(ptr) })
    }

    /// Puts `task` in `runnext`, moving the previous one to the queue.
    /// Returns true if the queue is non-empty afterwards.
    ///
    /// # Safety
    /// As for `local`.
    unsafe fn push_next(&self, task: TaskRef, injector: &Injector<TaskRef>) -> bool {
        // SeqCst: a push and the `wakep` after it read `npidle` and
        // `nmspinning`, which Ms going idle or stopping spinning write
        // before they look here (`has_work`): one of the two must see the
        // other.
        let old = self.runnext.swap(task.into_raw(), Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: see `take_runnext`; the caller holds the P.
            unsafe { self.push_local(TaskRef::from_raw(old), injector) };
        }
        // SAFETY: as documented.
        !unsafe { self.local() }.is_empty()
    }

    /// Pushes `task` at the back of the local queue. A full queue first
    /// moves its older half to the injector, as Go's `runqputslow` does: the
    /// local queue then holds the newest work, so a spawn-heavy tree runs
    /// subtrees to completion (and recycles their stacks) instead of
    /// starting every node breadth-first.
    ///
    /// # Safety
    /// As for `local`.
    unsafe fn push_local(&self, task: TaskRef, injector: &Injector<TaskRef>) {
        // SAFETY: as documented.
        let local = unsafe { self.local() };
        self.note_queued(true);
        if local.len() >= LOCAL_QUEUE_CAP {
            for _ in 0..LOCAL_QUEUE_CAP / 2 {
                match local.pop() {
                    Some(t) => injector.push(t),
                    None => break,
                }
            }
        }
        local.push(task);
    }

    pub(crate) fn state_name(&self) -> &'static str {
        match self.status.load(Ordering::Relaxed) & 3 {
            P_IDLE => "idle",
            P_SCHED => "scheduling",
            P_USER => "running",
            _ => "syscall",
        }
    }
}

/// An M as seen by others: how to wake it and what it is handed.
pub(crate) struct MHandle {
    thread: Thread,
    woken: AtomicBool,
    /// The P handed over with the wake-up, plus one (0: none).
    next_p: AtomicUsize,
    next_spinning: AtomicBool,
}

impl MHandle {
    fn give(&self, p: Option<usize>, spinning: bool) {
        self.next_p.store(p.map_or(0, |p| p + 1), Ordering::Relaxed);
        self.next_spinning.store(spinning, Ordering::Relaxed);
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Everything the Ms, sysmon and wakers of one runtime share. Leaked when
/// the runtime is built: tasks and unparkers keep `&'static` pointers to it.
pub(crate) struct Shared {
    pub(crate) id: usize,
    pub(crate) ps: Box<[P]>,
    injector: Injector<TaskRef>,
    /// Tasks woken by a thread holding none of our Ps (sysmon or the poller
    /// firing timers, a plain OS thread sending on a channel). Served
    /// before `injector`: behind a backlog of new work there, a wake could
    /// wait for the whole backlog to run.
    woken: Injector<TaskRef>,
    idle_ps: Mutex<Vec<usize>>,
    npidle: AtomicUsize,
    nmspinning: AtomicUsize,
    idle_ms: Mutex<Vec<Arc<MHandle>>>,
    /// Worker threads alive.
    pub(crate) nm: AtomicUsize,
    pub(crate) max_threads: usize,
    /// An M is in the poll path (the poller token).
    poller_held: AtomicBool,
    /// ... and blocked there until `poll_until` unless notified.
    poller_blocked: AtomicBool,
    poll_until: AtomicU64,
    sleeper: Sleeper,
    start: Instant,
    coarse: AtomicU64,
    pub(crate) default_stack: usize,
    pub(crate) shutdown: AtomicBool,
    pub(crate) registry: Registry,
    pub(crate) handoffs: AtomicU64,
    pub(crate) spawned_off_p: AtomicU64,
    pub(crate) sysmon: Mutex<Option<Thread>>,
    pub(crate) sysmon_fast: AtomicBool,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    pub(crate) name: String,
    /// Exit with a dump when every coroutine is asleep for good.
    pub(crate) detect_deadlock: bool,
    /// Threads outside the runtime waiting in `block_on`.
    pub(crate) outside_waiters: AtomicUsize,
    /// Times an M polled the network driver (blocking or not).
    pub(crate) netpoll_polls: AtomicU64,
    /// Coroutines and threads the driver woke.
    pub(crate) netpoll_woken: AtomicU64,
    /// `nanos()` when the last poll ended.
    last_poll: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The scheduler's own locks guard plain pushes and pops; a panic cannot
    // interrupt one half way, so poisoning carries no information.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(
        id: usize,
        workers: usize,
        default_stack: usize,
        max_threads: usize,
        name: String,
        detect_deadlock: bool,
    ) -> Shared {
        Shared {
            id,
            ps: (0..workers).map(P::new).collect(),
            injector: Injector::new(),
            woken: Injector::new(),
            idle_ps: Mutex::new((0..workers).rev().collect()),
            npidle: AtomicUsize::new(workers),
            nmspinning: AtomicUsize::new(0),
            idle_ms: Mutex::new(Vec::new()),
            nm: AtomicUsize::new(0),
            max_threads,
            poller_held: AtomicBool::new(false),
            poller_blocked: AtomicBool::new(false),
            poll_until: AtomicU64::new(u64::MAX),
            sleeper: Sleeper::new(),
            start: Instant::now(),
            coarse: AtomicU64::new(0),
            default_stack,
            shutdown: AtomicBool::new(false),
            registry: Registry::new(),
            handoffs: AtomicU64::new(0),
            spawned_off_p: AtomicU64::new(0),
            sysmon: Mutex::new(None),
            sysmon_fast: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            name,
            detect_deadlock,
            outside_waiters: AtomicUsize::new(0),
            netpoll_polls: AtomicU64::new(0),
            netpoll_woken: AtomicU64::new(0),
            last_poll: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the runtime started.
    pub(crate) fn nanos(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// `deadline` in runtime nanoseconds, rounded up so a timer never fires
    /// before its deadline. One 585 years or more after the start saturates
    /// (never fires): truncating it would wrap it into the past, and a
    /// waiter with such a deadline would be woken again at once every time
    /// it parked, spinning its worker.
    pub(crate) fn nanos_at(&self, deadline: Instant) -> u64 {
        let d = deadline.saturating_duration_since(self.start);
        u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    /// The deadline that `nanos_at` made `when`, plus the nanosecond it
    /// rounded up by (so never earlier); `None` for the saturated "never".
    pub(crate) fn instant_of(&self, when: u64) -> Option<Instant> {
        (when != u64::MAX)
            .then(|| self.start.checked_add(Duration::from_nanos(when)))
            .flatten()
    }

    /// A clock sysmon advances on every tick: cheap, for introspection.
    pub(crate) fn coarse_now(&self) -> u64 {
        self.coarse.load(Ordering::Relaxed)
    }

    pub(crate) fn tick_coarse(&self) -> u64 {
        let now = self.nanos();
        self.coarse.store(now, Ordering::Relaxed);
        now
    }

    fn driver(&self) -> &dyn Driver {
        match driver::installed() {
            Some(d) => d,
            None => &self.sleeper,
        }
    }

    /// Index of the timer heap a caller on this thread should use.
    pub(crate) fn timer_heap_index(&self) -> usize {
        let ctx = tls::ctx();
        if std::ptr::eq(ctx.shared, self) && ctx.p != NO_P {
            return ctx.p;
        }
        // Off-P callers (outside threads, pinned coroutines) spread over the
        // heaps by thread.
        thread_hash() % self.ps.len()
    }

    pub(crate) fn timers_here(&self) -> &Timers {
        &self.ps[self.timer_heap_index()].timers
    }

    /// A timer was armed for `when`: a poller sleeping past it must wake.
    pub(crate) fn timer_added(&self, when: u64) {
        // Pairs with the fence in `stop`: either the poller's scan of the
        // heaps sees this timer, or we see it blocked and notify it.
        fence(Ordering::SeqCst);
        if when < self.poll_until.load(Ordering::SeqCst)
            && self.poller_blocked.load(Ordering::SeqCst)
        {
            self.driver().notify();
        }
    }

    pub(crate) fn earliest_timer(&self) -> u64 {
        self.ps
            .iter()
            .map(|p| p.timers.next_when())
            .min()
            .unwrap_or(u64::MAX)
    }

    /// True if a P no M holds has a timer pending. Ordered after the
    /// caller's earlier stores (the poller token, an idle-list push) by a
    /// fence, so of a poller leaving and an M going idle one sees the other.
    fn idle_p_has_timers(&self) -> bool {
        fence(Ordering::SeqCst);
        self.ps.iter().any(|p| {
            p.status.load(Ordering::SeqCst) & 3 == P_IDLE && p.timers.next_when() != u64::MAX
        })
    }

    /// Fires every due timer of every P. Wakes go wherever `enqueue_woken`
    /// sends them from this thread.
    pub(crate) fn fire_all_due(&self, buf: &mut Vec<Due>) -> usize {
        let now = self.nanos();
        let mut n = 0;
        for p in self.ps.iter() {
            n += p.timers.take_due(now, buf);
        }
        for due in buf.drain(..) {
            due.fire();
        }
        n
    }

    pub(crate) fn inject(&self, task: TaskRef) {
        if self.shutdown.load(Ordering::Acquire) {
            return;
        }
        self.injector.push(task);
        self.wakep();
    }

    /// Queues a woken task from a thread holding none of our Ps.
    pub(crate) fn inject_woken(&self, task: TaskRef) {
        if self.shutdown.load(Ordering::Acquire) {
            return;
        }
        self.woken.push(task);
        self.wakep();
    }

    /// One task from the global queues, the woken one first if
    /// `woken_first`.
    fn steal_global_one(&self, woken_first: bool) -> Option<TaskRef> {
        let (first, second) = if woken_first {
            (&self.woken, &self.injector)
        } else {
            (&self.injector, &self.woken)
        };
        [first, second].into_iter().find_map(|q| {
            std::iter::repeat_with(|| q.steal())
                .find(|s| !s.is_retry())?
                .success()
        })
    }

    /// Work waits in a global queue.
    fn global_has_work(&self) -> bool {
        !self.woken.is_empty() || !self.injector.is_empty()
    }

    fn pidleget(&self) -> Option<usize> {
        let mut idle = lock(&self.idle_ps);
        let p = idle.pop()?;
        self.npidle.fetch_sub(1, Ordering::SeqCst);
        Some(p)
    }

    fn pidleput(&self, p: usize) {
        let mut idle = lock(&self.idle_ps);
        idle.push(p);
        self.npidle.fetch_add(1, Ordering::SeqCst);
    }

    /// Any runnable G waiting in a queue?
    pub(crate) fn work_queued(&self) -> bool {
        self.global_has_work() || self.ps.iter().any(P::has_work)
    }

    /// Starts a spinning M if there are idle Ps and nobody spins.
    pub(crate) fn wakep(&self) {
        if self.npidle.load(Ordering::SeqCst) == 0 || self.shutdown.load(Ordering::Relaxed) {
            return;
        }
        if self.nmspinning.load(Ordering::SeqCst) != 0
            || self
                .nmspinning
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        let idle_m = lock(&self.idle_ms).pop();
        if let Some(m) = idle_m {
            match self.pidleget() {
                Some(p) => m.give(Some(p), true),
                None => {
                    lock(&self.idle_ms).push(m);
                    self.nmspinning.fetch_sub(1, Ordering::SeqCst);
                }
            }
            return;
        }
        if self.poller_blocked.load(Ordering::SeqCst) {
            // The M in the poller takes an idle P itself when it returns.
            self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            self.driver().notify();
            return;
        }
        match self.pidleget() {
            Some(p) => self.new_m_or_wait(p, true),
            None => {
                self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Gives `p` to an idle M or a new one. Used when a P must run now.
    fn startm(&'static self, p: usize) {
        let idle_m = lock(&self.idle_ms).pop();
        match idle_m {
            Some(m) => m.give(Some(p), false),
            None => self.new_m_or_wait(p, false),
        }
    }

    /// Starts a new M for `p`, which the caller took off the idle list
    /// (and for which it counted a spinner if `spinning`). At the thread
    /// cap this is not yet a hang: an M that has just released its P, and
    /// not yet listed itself idle or entered the poller, re-checks the
    /// queues and then stops where we can find it (with `max_threads ==
    /// workers` that window alone made a plain spawn loop fatal). So wait
    /// for such an M, or for the work to be taken, and call the cap fatal
    /// only when neither comes: then every M without a P is stuck (in
    /// `blocking()`, say) and the work would wait for good. A cold path:
    /// it runs only at the cap.
    fn new_m_or_wait(&self, p: usize, spinning: bool) {
        let Err(err) = self.new_m(Some(p), spinning) else {
            return;
        };
        let give_back = |notify_poller: bool| {
            self.pidleput(p);
            if spinning {
                self.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
            if notify_poller {
                self.driver().notify();
            }
        };
        let msg = match err {
            NewMError::Spawn(msg) => fatal(&msg),
            NewMError::Cap(msg) => msg,
            NewMError::Shutdown => return give_back(false),
        };
        let deadline = Instant::now() + CAP_GRACE;
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                return give_back(false);
            }
            if let Some(m) = lock(&self.idle_ms).pop() {
                return m.give(Some(p), spinning);
            }
            if self.poller_blocked.load(Ordering::SeqCst) {
                // It takes an idle P itself once notified.
                return give_back(true);
            }
            if !self.work_queued() {
                // Taken by an M that holds a P: nothing needs one more.
                return give_back(false);
            }
            match self.new_m(Some(p), spinning) {
                Ok(()) => return,
                Err(NewMError::Spawn(msg)) => fatal(&msg),
                Err(NewMError::Cap(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_micros(50));
                }
                Err(NewMError::Cap(_)) => fatal(&msg),
                Err(NewMError::Shutdown) => return give_back(false),
            }
        }
    }

    fn new_m(&self, p: Option<usize>, spinning: bool) -> Result<(), NewMError> {
        let n = self.nm.fetch_add(1, Ordering::SeqCst);
        if n >= self.max_threads {
            self.nm.fetch_sub(1, Ordering::SeqCst);
            return Err(NewMError::Cap(format!(
                "corun: runtime '{}' needs more than {} OS threads (coroutines blocked in \
                 blocking() or stuck without yield points hold them); raise the limit with \
                 Runtime::builder().max_threads(n) or CORUN_MAX_THREADS",
                self.name, self.max_threads
            )));
        }
        // SAFETY: every `Shared` is leaked at creation (see `Runtime`), so
        // extending the lifetime only states a fact.
        let shared: &'static Shared = unsafe { &*(self as *const Shared) };
        // Checked and pushed under the list's lock: `shutdown` sets its flag
        // before it first takes the lock, so an M is either refused here or
        // listed before shutdown's last look, which then joins it. Started
        // after that look, it would run unjoined, on a P that shutdown
        // empties believing every M gone.
        let mut threads = lock(&self.threads);
        if self.shutdown.load(Ordering::SeqCst) {
            self.nm.fetch_sub(1, Ordering::SeqCst);
            return Err(NewMError::Shutdown);
        }
        let builder = thread::Builder::new().name(format!("corun-{}-m{}", self.id, n));
        let handle = builder.spawn(move || fatal_on_panic(|| m_main(shared, p, spinning)));
        match handle {
            Ok(h) => {
                threads.push(h);
                Ok(())
            }
            Err(e) => {
                self.nm.fetch_sub(1, Ordering::SeqCst);
                Err(NewMError::Spawn(format!(
                    "corun: could not start a worker thread: {e}"
                )))
            }
        }
    }

    /// Starts the first M (the others start on demand).
    pub(crate) fn start(&'static self) {
        if let Some(p) = self.pidleget()
            && let Err(NewMError::Cap(msg) | NewMError::Spawn(msg)) = self.new_m(Some(p), false)
        {
            fatal(&msg);
        }
    }

    /// Hands a P taken from a stuck M to another M, or parks it.
    pub(crate) fn handoff(&'static self, p: usize) {
        self.handoffs.fetch_add(1, Ordering::Relaxed);
        let timers = self.ps[p].timers.next_when() != u64::MAX;
        // Work, or timers nobody watches: the P needs an M now (one with
        // nothing to run becomes the poller, with the timers as timeout).
        if self.ps[p].has_work()
            || self.global_has_work()
            || (timers && !self.poller_held.load(Ordering::SeqCst))
        {
            self.startm(p);
            return;
        }
        self.pidleput(p);
        if self.poller_blocked.load(Ordering::SeqCst) {
            // Its timers may be earlier than the poller's timeout.
            self.driver().notify();
        }
    }

    /// Wakes an idle M without a P so it becomes the poller.
    fn wake_idle_m_for_poll(&self) {
        if self.poller_held.load(Ordering::SeqCst) {
            return;
        }
        if let Some(m) = lock(&self.idle_ms).pop() {
            m.give(None, false);
        }
    }

    /// sysmon's view of one P: try to take it from its M.
    pub(crate) fn retake(&'static self, p: usize, now: u64, stuck_since: Option<u64>) -> bool {
        let pp = &self.ps[p];
        let s = pp.status.load(Ordering::Acquire);
        let (epoch, state) = (s >> 2, s & 3);
        let others_wait = pp.has_work() || self.global_has_work();
        let take = match state {
            P_SYSCALL => {
                let in_call = now.saturating_sub(pp.syscall_since.load(Ordering::Relaxed));
                in_call >= 20_000
                    && (others_wait || pp.timers.next_when() != u64::MAX || in_call >= 10_000_000)
            }
            // After one slice the coroutine is asked to yield at its next
            // yield point; after two without one, its M loses the P.
            P_USER => match stuck_since.map(|since| now.saturating_sub(since)) {
                Some(ran) if ran >= TIME_SLICE.as_nanos() as u64 => {
                    pp.preempt.store(true, Ordering::Release);
                    ran >= 2 * TIME_SLICE.as_nanos() as u64
                        && (others_wait || pp.timers.next_when() != u64::MAX)
                }
                _ => false,
            },
            _ => false,
        };
        if !take {
            return false;
        }
        if pp
            .status
            .compare_exchange(
                s,
                status(epoch + 1, P_IDLE),
                Ordering::SeqCst,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        trace::event(trace::Kind::Handoff, 0, p as u32);
        self.handoff(p);
        true
    }

    /// For sysmon, as Go's: if no M has polled the network for `stale`
    /// nanoseconds (every P busy with a long queue), poll it without
    /// blocking and queue what it woke, so I/O waiters are not starved.
    pub(crate) fn poll_if_stale(&self, now: u64, stale: u64) -> bool {
        let Some(driver) = driver::installed() else {
            return false;
        };
        if !driver.has_waiters()
            || now.saturating_sub(self.last_poll.load(Ordering::Relaxed)) < stale
            || self.poller_held.load(Ordering::Relaxed)
            || self.poller_held.swap(true, Ordering::Acquire)
        {
            return false;
        }
        let mut woken = Vec::new();
        driver.poll(Some(Duration::ZERO), &mut |u| woken.push(u));
        self.poller_held.store(false, Ordering::Release);
        self.last_poll.store(self.nanos(), Ordering::Relaxed);
        self.netpoll_polls.fetch_add(1, Ordering::Relaxed);
        self.netpoll_woken
            .fetch_add(woken.len() as u64, Ordering::Relaxed);
        let any = !woken.is_empty();
        for u in woken {
            u.unpark();
        }
        any
    }

    /// For sysmon: idle Ps while work waits and nobody spins.
    pub(crate) fn kick_if_work_waits(&self) {
        if self.npidle.load(Ordering::SeqCst) > 0
            && self.nmspinning.load(Ordering::SeqCst) == 0
            && self.work_queued()
        {
            self.wakep();
        }
    }

    /// One line of scheduler state for the SIGQUIT traceback, like Go's
    /// `SCHED` line: idle and spinning counts, the global queues, and each
    /// P's state and queues. Read without a pause: a snapshot for a human,
    /// which may catch an M between a hand-off and its wake-up.
    pub(crate) fn sched_line(&self) -> String {
        let mut out = format!(
            "SCHED: idleprocs={} spinningthreads={} threads={} idlethreads={} \
             poller_held={} poller_blocked={} woken={} injector={}",
            self.npidle.load(Ordering::SeqCst),
            self.nmspinning.load(Ordering::SeqCst),
            self.nm.load(Ordering::SeqCst),
            lock(&self.idle_ms).len(),
            self.poller_held.load(Ordering::SeqCst),
            self.poller_blocked.load(Ordering::SeqCst),
            self.woken.len(),
            self.injector.len(),
        );
        for p in self.ps.iter() {
            out.push_str(&format!(
                " [P{} {} runnext={} local={}]",
                p.idx,
                p.state_name(),
                p.has_runnext(),
                p.stealer.len(),
            ));
        }
        out
    }

    pub(crate) fn npidle(&self) -> usize {
        self.npidle.load(Ordering::Relaxed)
    }

    pub(crate) fn nmspinning(&self) -> usize {
        self.nmspinning.load(Ordering::Relaxed)
    }

    pub(crate) fn idle_ms(&self) -> usize {
        lock(&self.idle_ms).len()
    }

    pub(crate) fn injector_len(&self) -> usize {
        self.injector.len() + self.woken.len()
    }

    pub(crate) fn notify_sleeper(&self) {
        self.sleeper.notify();
    }

    /// Stops every M and drops what is queued. Called once, by `Runtime`'s
    /// drop, from outside the runtime.
    pub(crate) fn shutdown(&'static self) {
        self.shutdown.store(true, Ordering::SeqCst);
        loop {
            for m in lock(&self.idle_ms).drain(..) {
                m.give(None, false);
            }
            self.driver().notify();
            self.sleeper.notify();
            let handle = lock(&self.threads).pop();
            match handle {
                Some(h) => {
                    let _ = h.join();
                }
                None => break,
            }
        }
        if let Some(t) = lock(&self.sysmon).as_ref() {
            t.unpark();
        }
        while let Steal::Success(_) | Steal::Retry = self.injector.steal() {}
        while let Steal::Success(_) | Steal::Retry = self.woken.steal() {}
        for p in self.ps.iter() {
            drop(p.take_runnext());
            // SAFETY: every M has exited; nobody else holds any P.
            while unsafe { p.local() }.pop().is_some() {}
            p.timers.drain_at_shutdown(self);
        }
        self.registry.abandon_all();
    }
}

fn thread_hash() -> usize {
    thread_local! {
        static HASH: usize = {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(thread::current().id()) as usize
        };
    }
    HASH.with(|h| *h)
}

/// Adds one to a counter only the P's owner writes: a plain load and store,
/// not a locked read-modify-write, on the scheduling hot path.
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Prints a runtime failure that cannot be returned to anyone, and aborts.
pub(crate) fn fatal(msg: &str) -> ! {
    // Straight to the stderr handle, not `eprintln!`: the test harness
    // captures that macro's output and loses it when the process aborts.
    let _ = writeln!(std::io::stderr(), "fatal error: {msg}");
    std::process::abort();
}

/// Runs the body of one of the runtime's own threads. User code's panics
/// are caught where it runs (a coroutine's function and its locals'
/// destructors inside its fiber, its output's and unused function's
/// destructors where the task is freed, a timer callback where it fires),
/// so a panic here is corun's own
/// failure; a thread that died with it would leave its P, its coroutines
/// and their joiners hanging, so the process stops with the message.
pub(crate) fn fatal_on_panic<R>(body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a non-string payload");
            let thread = thread::current();
            fatal(&format!(
                "corun: runtime thread '{}' panicked: {what}",
                thread.name().unwrap_or("unnamed")
            ))
        }
    }
}

/// The runtime of the calling coroutine or worker, else the global one.
pub(crate) fn current_shared() -> &'static Shared {
    match tls::ctx().shared() {
        Some(s) => s,
        None => crate::runtime::global_shared(),
    }
}

/// Runs `f` on the caller's P if it holds one of `shared`'s Ps; from
/// coroutine code the P is claimed first so sysmon cannot take it meanwhile.
fn with_own_p<R>(shared: &Shared, f: impl FnOnce(&P) -> R) -> Option<R> {
    let ctx = tls::ctx();
    if ctx.p == NO_P || !std::ptr::eq(ctx.shared, shared) {
        return None;
    }
    let p = &shared.ps[ctx.p];
    if !ctx.user {
        return Some(f(p));
    }
    let user = status(ctx.epoch, P_USER);
    if p.status
        .compare_exchange(
            user,
            status(ctx.epoch, P_SCHED),
            Ordering::Acquire,
            Ordering::Relaxed,
        )
        .is_err()
    {
        return None;
    }
    tls::set_user(false);
    let r = f(p);
    tls::set_user(true);
    p.status.store(user, Ordering::Release);
    Some(r)
}

/// Queues a task that `notify` just made SCHEDULED.
pub(crate) fn enqueue_woken(task: TaskRef) {
    let header = task.header();
    crate::park::prefetch_stack(header);
    trace::event(trace::Kind::Wake, header.id, 0);
    if let Some(home) = header.home.clone() {
        home.wake(task);
        return;
    }
    let shared = header.shared;
    let ctx = tls::ctx();
    if ctx.user && ctx.p != NO_P && std::ptr::eq(ctx.shared, shared) {
        if let Some(displaced) = swap_into_runnext(shared, &ctx, task) {
            queue_locally(shared, displaced);
        }
        return;
    }
    let mut task = Some(task);
    let queued = with_own_p(shared, |p| {
        // SAFETY: `with_own_p` runs us with the P held in SCHED state.
        let busy = unsafe { p.push_next(task.take().expect("once"), &shared.injector) };
        if busy {
            shared.wakep();
        }
    });
    if queued.is_none() {
        shared.inject_woken(task.take().expect("not queued"));
    }
}

/// From coroutine code: puts `task` in our P's `runnext` without claiming
/// the P (a locked instruction), since `runnext` is an atomic any thread may
/// swap. Returns the task it displaced, which still needs queueing.
fn swap_into_runnext(shared: &Shared, ctx: &tls::Ctx, task: TaskRef) -> Option<TaskRef> {
    let p = &shared.ps[ctx.p];
    let old = p.runnext.swap(task.into_raw(), Ordering::SeqCst);
    if p.status.load(Ordering::SeqCst) != status(ctx.epoch, P_USER) {
        // The P was taken before our swap, so its new holder may have
        // checked for work already: queue the task globally instead. (Taken
        // after our status load, the P is handed on with its runnext seen:
        // `retake` checks for work after its own CAS.)
        if let Some(t) = p.take_runnext() {
            shared.inject_woken(t);
        }
    } else if old.is_null()
        && shared.npidle.load(Ordering::Relaxed) != 0
        && p.maybe_queued.load(Ordering::Relaxed)
    {
        // As for `push_next`: more work than runnext, and a P to run it on.
        // The hint, not `Stealer::is_empty`, whose fence costs 3% of a
        // ping-pong round trip. The P is still ours (checked above), and
        // its holder's writes to the hint come from this thread; only a
        // thief can make it stale, towards a spare `wakep`.
        shared.wakep();
    }
    // SAFETY: runnext's reference, swapped out once, by us.
    (!old.is_null()).then(|| unsafe { TaskRef::from_raw(old) })
}

/// Pushes `task` on our P's local queue, which only the P's holder may do:
/// claims the P for it, or injects the task if the P is gone.
fn queue_locally(shared: &Shared, task: TaskRef) {
    let mut task = Some(task);
    let queued = with_own_p(shared, |p| {
        // SAFETY: `with_own_p` runs us with the P held in SCHED state.
        unsafe { p.push_local(task.take().expect("once"), &shared.injector) };
        shared.wakep();
    });
    if queued.is_none() {
        shared.inject_woken(task.take().expect("not queued"));
    }
}

/// Traces the end of a run slice (and the finish).
#[cold]
fn trace_stop(id: u64, resumed: &Resumed) {
    let why = match resumed {
        Resumed::Finished => trace::STOP_FINISH,
        Resumed::Suspended(SUSPEND_PARK) => trace::STOP_PARK,
        Resumed::Suspended(SUSPEND_YIELD) => trace::STOP_YIELD,
        Resumed::Suspended(_) => trace::STOP_PREEMPT,
    };
    trace::event(trace::Kind::Stop, id, why);
    if why == trace::STOP_FINISH {
        trace::event(trace::Kind::Finish, id, 0);
    }
}

/// Queues a newly spawned task (its run reference) and registers it (with
/// the registry's reference).
pub(crate) fn enqueue_new(shared: &Shared, task: TaskRef, registered: TaskRef) {
    let mut refs = Some((task, registered));
    let queued = with_own_p(shared, |p| {
        bump(&p.spawned);
        let (task, registered) = refs.take().expect("once");
        // SAFETY: `with_own_p` runs us with the P held in SCHED state.
        shared
            .registry
            .insert(registered, Some(unsafe { p.registry_slots() }));
        // SAFETY: as in `enqueue_woken`.
        unsafe { p.push_next(task, &shared.injector) };
        shared.wakep();
    });
    if queued.is_none() {
        let (task, registered) = refs.take().expect("not queued");
        shared.registry.insert(registered, None);
        shared.spawned_off_p.fetch_add(1, Ordering::Relaxed);
        shared.inject(task);
    }
}

/// True when the running coroutine should give way at a yield point: its
/// time slice is over or its M lost the P.
pub(crate) fn should_yield() -> bool {
    let Some((p, epoch)) = tls::running_p() else {
        return false;
    };
    p.preempt.load(Ordering::Relaxed) || p.status.load(Ordering::Relaxed) >> 2 != epoch
}

/// Runs `f` marked as a blocking call so sysmon can hand the P on.
pub(crate) fn in_syscall<R>(f: impl FnOnce() -> R) -> R {
    let ctx = tls::ctx();
    let (Some(shared), Some(task)) = (ctx.shared(), ctx.task()) else {
        return f();
    };
    if ctx.p == NO_P || !ctx.user {
        return f();
    }
    let p = &shared.ps[ctx.p];
    let user = status(ctx.epoch, P_USER);
    p.syscall_since.store(shared.nanos(), Ordering::Relaxed);
    if p.status
        .compare_exchange(
            user,
            status(ctx.epoch, P_SYSCALL),
            Ordering::AcqRel,
            Ordering::Relaxed,
        )
        .is_err()
    {
        // The P is already gone; the next yield point switches away.
        return f();
    }
    task.set_wait_reason(crate::WaitReason::Blocking);
    crate::sysmon::hurry(shared);
    struct Exit<'a> {
        p: &'a P,
        index: usize,
        task: &'a Header,
        epoch: u64,
    }
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            self.task.set_wait_reason(crate::WaitReason::None);
            let now = tls::ctx();
            if now.p != self.index || now.epoch != self.epoch {
                // `f` parked or yielded, and the coroutine runs on another
                // P (or under another epoch) now: the M it left kept or
                // lost the old P then (`execute`), and the status of that
                // P is no longer ours to change.
                return;
            }
            let user = status(self.epoch, P_USER);
            let kept = self
                .p
                .status
                .compare_exchange(
                    status(self.epoch, P_SYSCALL),
                    user,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
                // Parked and resumed on the same P and epoch: running.
                || self.p.status.load(Ordering::Acquire) == user;
            // While unwinding the coroutine keeps its thread (see
            // `park::park_unwinding`); its next yield point after that
            // finds the P gone and switches away.
            if !kept && !std::thread::panicking() {
                // sysmon gave the P away while we were blocked: let our M
                // find us a P again.
                corun_stacks::fiber::suspend(SUSPEND_LOST_P);
            }
        }
    }
    let _exit = Exit {
        p,
        index: ctx.p,
        task,
        epoch: ctx.epoch,
    };
    f()
}

/// An M: one OS thread's scheduling loop.
struct M {
    shared: &'static Shared,
    handle: Arc<MHandle>,
    p: Option<usize>,
    epoch: u64,
    spinning: bool,
    tick: u32,
    rng: u64,
    due: Vec<Due>,
    woken: Vec<Unparker>,
}

fn m_main(shared: &'static Shared, p: Option<usize>, spinning: bool) {
    let handle = Arc::new(MHandle {
        thread: thread::current(),
        woken: AtomicBool::new(false),
        next_p: AtomicUsize::new(0),
        next_spinning: AtomicBool::new(false),
    });
    tls::update(|c| c.shared = shared);
    corun_stacks::ensure_altstack();
    let mut m = M {
        shared,
        handle,
        p: None,
        epoch: 0,
        spinning,
        tick: 0,
        rng: (thread_hash() as u64) | 1,
        due: Vec::new(),
        woken: Vec::new(),
    };
    if let Some(p) = p {
        m.acquire(p);
    }
    while !shared.shutdown.load(Ordering::Acquire) {
        if m.p.is_none() {
            m.stop();
            continue;
        }
        if let Some((task, inherit)) = m.find_runnable() {
            m.stop_spinning();
            m.execute(task, inherit);
        }
    }
    if let Some(p) = m.p.take() {
        m.release(p);
    }
    if m.spinning {
        shared.nmspinning.fetch_sub(1, Ordering::SeqCst);
    }
    shared.nm.fetch_sub(1, Ordering::SeqCst);
}

impl M {
    fn pp(&self) -> &'static P {
        &self.shared.ps[self.p.expect("M holds a P")]
    }

    fn acquire(&mut self, p: usize) {
        let pp = &self.shared.ps[p];
        let epoch = (pp.status.load(Ordering::Acquire) >> 2) + 1;
        pp.status.store(status(epoch, P_SCHED), Ordering::SeqCst);
        self.p = Some(p);
        self.epoch = epoch;
        tls::update(|c| {
            c.p = p;
            c.p_ref = pp;
            c.epoch = epoch;
        });
    }

    /// Drops the P without putting it on the idle list.
    fn forget_p(&mut self) {
        self.p = None;
        tls::update(|c| {
            c.p = NO_P;
            c.p_ref = std::ptr::null();
        });
    }

    fn release(&mut self, p: usize) {
        let pp = &self.shared.ps[p];
        pp.status
            .store(status(self.epoch, P_IDLE), Ordering::SeqCst);
        self.forget_p();
        self.shared.pidleput(p);
    }

    fn stop_spinning(&mut self) {
        if self.spinning {
            self.spinning = false;
            // The last spinner found work: if more is queued and a P is
            // idle, start another so a burst spreads. (Go starts one either
            // way; for one task woken from a plain thread it only wakes and
            // parks again.) Work pushed after our look finds no spinner: a
            // push to a global queue or one that displaces a `runnext` is
            // followed by its producer's own `wakep`, ordered against our
            // decrement by its locked CAS or swap; a lone wake into
            // `runnext` starts no M by design (see the module header) and
            // waits for its P's holder, as it would with no spinner at all.
            if self.shared.nmspinning.fetch_sub(1, Ordering::SeqCst) == 1
                && self.shared.npidle.load(Ordering::SeqCst) != 0
                && self.shared.work_queued()
            {
                self.shared.wakep();
            }
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64: victim choice only needs to be cheap and spread out.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Takes a share of a global queue into `p`'s local queue, woken tasks
    /// first, and returns one to run.
    fn steal_global(&mut self, p: &P) -> Option<TaskRef> {
        let n = self.shared.ps.len();
        // SAFETY: this M holds `p` in SCHED state (we are in scheduler code).
        let local = unsafe { p.local() };
        for queue in [&self.shared.woken, &self.shared.injector] {
            if queue.is_empty() {
                continue;
            }
            let limit = (queue.len() / n + 1).min(128);
            loop {
                match queue.steal_batch_with_limit_and_pop(local, limit) {
                    Steal::Success(t) => {
                        p.note_queued(true);
                        return Some(t);
                    }
                    Steal::Empty => break,
                    Steal::Retry => continue,
                }
            }
        }
        None
    }

    /// The next task for this M's P. `only_runnable` repeats the checks
    /// that come before the local queue, in this order, for a task that
    /// just yielded: a new check here belongs there too.
    fn find_runnable(&mut self) -> Option<(TaskRef, bool)> {
        let shared = self.shared;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return None;
            }
            let p = self.pp();
            if p.timers.next_when() != u64::MAX {
                let now = shared.nanos();
                if p.timers.take_due(now, &mut self.due) > 0 {
                    for due in self.due.drain(..) {
                        due.fire();
                    }
                }
            }
            self.tick = self.tick.wrapping_add(1);
            // One task, not a batch, as Go's `globrunqget(pp, 1)`: a batch
            // would land behind a full local queue and spill straight back.
            // The two global queues take turns to go first, so neither can
            // starve the other.
            if self.tick.is_multiple_of(61)
                && let Some(t) = shared.steal_global_one(self.tick.is_multiple_of(122))
            {
                return Some((t, false));
            }
            if let Some(t) = p.take_runnext() {
                return Some((t, true));
            }
            // SAFETY: scheduler code holding `p`.
            if let Some(t) = unsafe { p.local() }.pop() {
                return Some((t, false));
            }
            p.note_queued(false);
            if let Some(t) = self.steal_global(p) {
                return Some((t, false));
            }
            if self.poll_network(Some(Duration::ZERO)) {
                continue;
            }
            let busy = shared.ps.len() - shared.npidle.load(Ordering::SeqCst);
            if self.spinning || 2 * shared.nmspinning.load(Ordering::SeqCst) < busy {
                if !self.spinning {
                    self.spinning = true;
                    shared.nmspinning.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(t) = self.steal_work(p) {
                    return Some((t, false));
                }
            }
            // Nothing anywhere: give the P up, then look once more so a
            // producer that missed our idle P is not missed by us either.
            let idx = p.idx;
            self.release(idx);
            let was_spinning = std::mem::take(&mut self.spinning);
            if was_spinning {
                shared.nmspinning.fetch_sub(1, Ordering::SeqCst);
            }
            if shared.work_queued()
                && let Some(p) = shared.pidleget()
            {
                self.acquire(p);
                if was_spinning {
                    self.spinning = true;
                    shared.nmspinning.fetch_add(1, Ordering::SeqCst);
                }
                continue;
            }
            return None;
        }
    }

    fn steal_work(&mut self, p: &P) -> Option<TaskRef> {
        let n = self.shared.ps.len();
        if n == 1 {
            return None;
        }
        // SAFETY: scheduler code holding `p`.
        let local = unsafe { p.local() };
        for round in 0..4 {
            let start = self.next_rand() as usize % n;
            for i in 0..n {
                let victim = &self.shared.ps[(start + i) % n];
                if victim.idx == p.idx {
                    continue;
                }
                loop {
                    match victim
                        .stealer
                        .steal_batch_with_limit_and_pop(local, usize::MAX)
                    {
                        Steal::Success(t) => {
                            p.note_queued(true);
                            bump(&p.steals);
                            trace::event(trace::Kind::Steal, t.header().id, victim.idx as u32);
                            return Some(t);
                        }
                        Steal::Retry => continue,
                        Steal::Empty => break,
                    }
                }
                // A running victim usually runs its runnext itself within a
                // microsecond (its G woke it and is about to block: a
                // channel hand-off), so leave it a grace period, as Go
                // does; after that its G is still running (a spawner that
                // keeps working) and the task would wait for its whole
                // time slice.
                if round == 3
                    && victim.has_runnext()
                    && (victim.status.load(Ordering::Relaxed) & 3 != P_USER
                        || runnext_outlives_grace(victim))
                    && let Some(t) = victim.take_runnext()
                {
                    p.steals.fetch_add(1, Ordering::Relaxed);
                    trace::event(trace::Kind::Steal, t.header().id, victim.idx as u32);
                    return Some(t);
                }
            }
        }
        None
    }

    /// Polls the network driver, queueing the woken on our P (or globally
    /// without one). Returns true if anything was woken.
    fn poll_network(&mut self, timeout: Option<Duration>) -> bool {
        let Some(driver) = driver::installed() else {
            return false;
        };
        if !driver.has_waiters()
            || self.shared.poller_held.load(Ordering::Relaxed)
            || self.shared.poller_held.swap(true, Ordering::Acquire)
        {
            return false;
        }
        let woken = &mut self.woken;
        trace::event(trace::Kind::PollBegin, 0, 1);
        driver.poll(timeout, &mut |u| woken.push(u));
        trace::event(trace::Kind::PollEnd, 0, self.woken.len() as u32);
        self.shared.poller_held.store(false, Ordering::Release);
        self.count_poll();
        let any = !self.woken.is_empty();
        for u in self.woken.drain(..) {
            u.unpark();
        }
        any
    }

    /// Counts one driver poll and what it woke (only with a network driver:
    /// the built-in sleeper is not a poller).
    fn count_poll(&self) {
        self.shared
            .last_poll
            .store(self.shared.nanos(), Ordering::Relaxed);
        if driver::installed().is_some() {
            // Polls end after the poller token is released: two Ms may
            // count at once, so a real read-modify-write.
            self.shared.netpoll_polls.fetch_add(1, Ordering::Relaxed);
            if !self.woken.is_empty() {
                self.shared
                    .netpoll_woken
                    .fetch_add(self.woken.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// No P: become the poller if nobody is, else sleep in the idle list.
    fn stop(&mut self) {
        let shared = self.shared;
        if !shared.poller_held.load(Ordering::Relaxed)
            && !shared.poller_held.swap(true, Ordering::Acquire)
        {
            // Publish that we are about to block before scanning the timer
            // heaps: a timer armed after the scan sees `poller_blocked` and
            // notifies us (see `timer_added`). Until `poll_until` is set,
            // every new timer notifies.
            shared.poller_blocked.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let until = shared.earliest_timer();
            shared.poll_until.store(until, Ordering::SeqCst);
            // A producer that pushed before seeing `poller_blocked` is seen
            // here; one that pushes after it will notify us.
            // (Queued work with no idle P is for the Ms holding the Ps.)
            let runnable_here = shared.npidle.load(Ordering::SeqCst) > 0 && shared.work_queued();
            let timeout = if runnable_here || shared.shutdown.load(Ordering::SeqCst) {
                Some(Duration::ZERO)
            } else if until == u64::MAX {
                None
            } else {
                Some(Duration::from_nanos(until.saturating_sub(shared.nanos())))
            };
            let woken = &mut self.woken;
            trace::event(
                trace::Kind::PollBegin,
                0,
                driver::installed().is_some().into(),
            );
            shared.driver().poll(timeout, &mut |u| woken.push(u));
            trace::event(trace::Kind::PollEnd, 0, self.woken.len() as u32);
            shared.poller_blocked.store(false, Ordering::SeqCst);
            shared.poll_until.store(u64::MAX, Ordering::SeqCst);
            shared.poller_held.store(false, Ordering::SeqCst);
            self.count_poll();
            let holds_p = match shared.pidleget() {
                Some(p) => {
                    self.acquire(p);
                    true
                }
                None => false,
            };
            for u in self.woken.drain(..) {
                u.unpark();
            }
            shared.fire_all_due(&mut self.due);
            // We leave the poller for a P. Timers of the Ps nobody holds now
            // need another watcher; those of held Ps are their Ms' to check.
            // (Waking one for any timer at all costs a thread wake-up per
            // timer fired, and on two cores that wake-up competes for the
            // CPU with whatever the fired timer started.)
            if holds_p && shared.idle_p_has_timers() {
                shared.wake_idle_m_for_poll();
            }
            return;
        }
        lock(&shared.idle_ms).push(self.handle.clone());
        // The poller may have left between our look at the token and our
        // push, seeing neither us to wake nor (if we had not released it
        // yet) our idle P's timers: if those now go unwatched, take our
        // entry back and become the poller ourselves.
        if !shared.poller_held.load(Ordering::SeqCst) && shared.idle_p_has_timers() {
            let mut idle = lock(&shared.idle_ms);
            if let Some(i) = idle.iter().position(|m| Arc::ptr_eq(m, &self.handle)) {
                idle.swap_remove(i);
                return;
            }
        }
        while !self.handle.woken.swap(false, Ordering::Acquire) {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            thread::park();
        }
        let next = self.handle.next_p.swap(0, Ordering::Relaxed);
        if next != 0 {
            self.acquire(next - 1);
            self.spinning = self.handle.next_spinning.load(Ordering::Relaxed);
        }
    }

    /// Runs `task` until it parks, yields, finishes or its M loses the P.
    fn execute(&mut self, task: TaskRef, inherit: bool) {
        let shared = self.shared;
        let pp = self.pp();
        if !inherit {
            pp.new_slice();
        }
        let header = task.header();
        let user = status(self.epoch, P_USER);
        let sched = status(self.epoch, P_SCHED);
        loop {
            // SAFETY: we took the task off a queue: we are its runner.
            let Some(fiber) = (unsafe { task.fiber() }) else {
                header.complete();
                // SAFETY: scheduler code holding `pp`.
                shared
                    .registry
                    .remove(header, Some(unsafe { pp.registry_slots() }));
                return;
            };
            tls::set_task(Some(&task), true);
            header.set_on_cpu(true);
            pp.status.store(user, Ordering::Release);
            trace::event(trace::Kind::Run, header.id, 0);
            let resumed = fiber.resume();
            header.set_on_cpu(false);
            tls::set_task(None, false);
            if trace::ON.load(Ordering::Relaxed) {
                trace_stop(header.id, &resumed);
            }
            // A park or yield inside `blocking()` switches away with the P
            // in SYSCALL under our epoch: unless sysmon took it (a new
            // epoch), it is still ours.
            let kept = pp
                .status
                .compare_exchange(user, sched, Ordering::AcqRel, Ordering::Relaxed)
                .or_else(|_| {
                    pp.status.compare_exchange(
                        status(self.epoch, P_SYSCALL),
                        sched,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                })
                .is_ok();
            bump(&pp.switches);
            match resumed {
                Resumed::Finished => {
                    // SAFETY: the runner, and finished.
                    unsafe { header.release_fiber() };
                    if !kept {
                        self.forget_p();
                    }
                    header.complete();
                    // SAFETY: scheduler code, holding `pp` if `kept`.
                    let slots = kept.then(|| unsafe { pp.registry_slots() });
                    shared.registry.remove(header, slots);
                    return;
                }
                Resumed::Suspended(SUSPEND_PARK) => {
                    if header.end_run_park() {
                        if !kept {
                            self.forget_p();
                        }
                        // A waker may hold it already: hands off.
                        task.keep_while_parked();
                        return;
                    }
                    // Woken before it was even off the CPU: run it again.
                    if !kept {
                        self.lost(task);
                        return;
                    }
                }
                Resumed::Suspended(SUSPEND_YIELD) if kept && self.only_runnable(pp) => {
                    // `find_runnable` would hand this task straight back:
                    // run it again without the trip through the queue (and
                    // the state word), as a new slice as it would get.
                    self.tick = self.tick.wrapping_add(1);
                    pp.new_slice();
                }
                Resumed::Suspended(word) => {
                    if !kept {
                        self.lost(task);
                    } else if word == SUSPEND_YIELD {
                        // SAFETY: scheduler code holding the P.
                        unsafe { pp.push_local(task, &shared.injector) };
                    } else {
                        // Preempted: to the back of the global queue, as Go
                        // does, so it cannot retake this P at once.
                        shared.inject(task);
                    }
                    return;
                }
            }
        }
    }

    /// True when the task that just yielded on `p` is what `find_runnable`
    /// would pick next anyway: its checks, in its order, all come up empty
    /// (no shutdown, no due timer, no global-queue turn with work waiting, no
    /// runnext, an empty local queue).
    fn only_runnable(&self, p: &P) -> bool {
        let shared = self.shared;
        if shared.shutdown.load(Ordering::Acquire) {
            return false;
        }
        let timer = p.timers.next_when();
        if timer != u64::MAX && timer <= shared.nanos() {
            return false;
        }
        if self.tick.wrapping_add(1).is_multiple_of(61) && shared.global_has_work() {
            return false;
        }
        // SAFETY: scheduler code holding `p`.
        p.runnext.load(Ordering::Relaxed).is_null() && unsafe { p.local() }.is_empty()
    }

    /// Our P was taken while `task` ran; `task` is SCHEDULED and needs one.
    fn lost(&mut self, task: TaskRef) {
        self.forget_p();
        match self.shared.pidleget() {
            Some(p) => {
                self.acquire(p);
                // SAFETY: scheduler code, the P was just acquired.
                unsafe { self.pp().push_next(task, &self.shared.injector) };
            }
            None => self.shared.inject(task),
        }
    }
}

impl Drop for M {
    fn drop(&mut self) {
        tls::update(|c| {
            c.shared = std::ptr::null();
            c.p = NO_P;
            c.p_ref = std::ptr::null();
        });
    }
}
