//! The views built on the registry of live coroutines (`registry.rs`):
//! `stats()`, `coroutines()`, `dump()`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::park::WaitReason;
use crate::sched::Shared;
use crate::task::{self, Header, TaskRef};

/// A coroutine's scheduling state.
///
/// ```
/// use corun_runtime::{State, coroutines};
///
/// corun_runtime::run(|| {
///     let me = corun_runtime::current().unwrap().id();
///     let info = coroutines().into_iter().find(|c| c.id == me).unwrap();
///     assert_eq!(info.state, State::Running, "we are looking at ourselves");
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Running on a worker.
    Running,
    /// Ready, waiting for a worker.
    Runnable,
    /// Parked; see the wait reason.
    Waiting,
    /// Running inside `blocking()`.
    Syscall,
}

impl State {
    /// Go's name for the state.
    ///
    /// ```
    /// assert_eq!(corun_runtime::State::Waiting.as_str(), "waiting");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Runnable => "runnable",
            State::Waiting => "waiting",
            State::Syscall => "syscall",
        }
    }
}

/// One live coroutine, as seen by [`coroutines`].
///
/// ```
/// use std::time::Duration;
/// use corun_runtime::{Builder, WaitReason, coroutines};
///
/// corun_runtime::run(|| {
///     let (tx, rx) = std::sync::mpsc::channel::<()>();
///     let h = Builder::new()
///         .name("sleeper")
///         .spawn(move || while rx.try_recv().is_err() { corun_runtime::sleep(Duration::from_millis(1)) })
///         .unwrap();
///     corun_runtime::sleep(Duration::from_millis(1));
///     let info = coroutines().into_iter().find(|c| c.id == h.id()).unwrap();
///     assert_eq!(info.name.as_deref(), Some("sleeper"));
///     assert!(info.spawn_site.file().ends_with(".rs"));
///     assert!(matches!(info.wait_reason, WaitReason::Sleep | WaitReason::None));
///     tx.send(()).unwrap();
///     h.join().unwrap();
/// });
/// ```
#[derive(Clone, Debug)]
pub struct CoroutineInfo {
    /// Unique id.
    pub id: u64,
    /// Name given at spawn, if any.
    pub name: Option<String>,
    /// Scheduling state.
    pub state: State,
    /// What it waits for (`WaitReason::None` unless waiting or in a syscall).
    pub wait_reason: WaitReason,
    /// Where it was spawned (`file:line:column`).
    pub spawn_site: &'static std::panic::Location<'static>,
    /// How long it has been in its state (coarse: sysmon's clock).
    pub time_in_state: Duration,
    /// True for `Builder::pinned(true)` coroutines.
    pub pinned: bool,
    /// Reserved stack bytes.
    pub stack_size: usize,
}

/// What introspection shows for a task; `None` once it has completed.
fn state_of(h: &Header, reason: WaitReason) -> Option<State> {
    Some(match h.lifecycle() {
        task::IDLE => State::Waiting,
        // Workers leave a running task SCHEDULED (see `lifecycle.rs`).
        task::SCHEDULED if !h.on_cpu() => State::Runnable,
        task::SCHEDULED | task::RUNNING if reason == WaitReason::Blocking => State::Syscall,
        task::SCHEDULED | task::RUNNING => State::Running,
        _ => return None,
    })
}

fn info(shared: &Shared, t: &TaskRef, now: u64) -> Option<CoroutineInfo> {
    let h = t.header();
    let reason = h.wait_reason();
    let state = state_of(h, reason)?;
    let since = h.since.load(Ordering::Relaxed);
    Some(CoroutineInfo {
        id: h.id,
        name: h.name().map(str::to_owned),
        state,
        wait_reason: if matches!(state, State::Waiting | State::Syscall) {
            reason
        } else {
            WaitReason::None
        },
        spawn_site: h.spawn_site,
        time_in_state: Duration::from_nanos(now.saturating_sub(since)),
        pinned: h.pinned,
        stack_size: h.stack_size(),
    })
    .filter(|_| std::ptr::eq(h.shared, shared))
}

/// Every live coroutine of the current runtime (the global one outside
/// coroutines), ordered by id.
///
/// ```
/// corun_runtime::run(|| {
///     let hs: Vec<_> = (0..3).map(|_| corun_runtime::go!(|| corun_runtime::yield_now())).collect();
///     let live = corun_runtime::coroutines();
///     assert!(live.len() >= 1, "at least the caller");
///     assert!(live.windows(2).all(|w| w[0].id < w[1].id), "ordered by id");
///     for h in hs {
///         h.join().unwrap();
///     }
/// });
/// ```
pub fn coroutines() -> Vec<CoroutineInfo> {
    coroutines_of(crate::sched::current_shared())
}

pub(crate) fn coroutines_of(shared: &Shared) -> Vec<CoroutineInfo> {
    let now = shared.tick_coarse();
    let mut v: Vec<_> = shared
        .registry
        .snapshot()
        .iter()
        .filter_map(|t| info(shared, t, now))
        .collect();
    v.sort_by_key(|c| c.id);
    v
}

/// A listing of every live coroutine in the format of Go's goroutine dump:
///
/// ```text
/// coroutine 7 "worker" [chan receive, 2 minutes]:
/// created at src/main.rs:12:5
/// ```
pub fn dump() -> String {
    dump_of(crate::sched::current_shared())
}

pub(crate) fn dump_of(shared: &Shared) -> String {
    let mut out = String::new();
    for c in coroutines_of(shared) {
        let name = c
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let what = match c.state {
            State::Waiting => c.wait_reason.as_str(),
            s => s.as_str(),
        };
        let mins = c.time_in_state.as_secs() / 60;
        let age = if mins > 0 {
            format!(", {mins} minutes")
        } else {
            String::new()
        };
        let pinned = if c.pinned { ", locked to thread" } else { "" };
        let _ = writeln!(out, "coroutine {}{name} [{what}{age}{pinned}]:", c.id);
        let _ = writeln!(out, "created at {}\n", c.spawn_site);
    }
    out
}

/// Counters and gauges of the current runtime.
///
/// ```
/// corun_runtime::run(|| {
///     let before = corun_runtime::stats();
///     corun_runtime::go!(|| ()).join().unwrap();
///     let after = corun_runtime::stats();
///     assert!(after.spawned > before.spawned);
///     assert!(after.ps >= 1 && after.ms >= 1);
///     assert!(after.coroutines >= 1, "the caller itself");
/// });
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Live coroutines (spawned, not finished).
    pub coroutines: usize,
    /// ... of which running on a worker.
    pub running: usize,
    /// ... ready and queued.
    pub runnable: usize,
    /// ... parked.
    pub waiting: usize,
    /// ... inside `blocking()`.
    pub syscall: usize,
    /// Processors (the `workers` setting).
    pub ps: usize,
    /// Idle processors now.
    pub idle_ps: usize,
    /// Worker OS threads alive (Ms).
    pub ms: usize,
    /// Ms sleeping in the idle list.
    pub idle_ms: usize,
    /// Ms spinning in search of work.
    pub spinning_ms: usize,
    /// Coroutines spawned since start.
    pub spawned: u64,
    /// Switches back to the scheduler (parks, yields, finishes).
    pub switches: u64,
    /// Successful steals from another P's queue.
    pub steals: u64,
    /// Ps taken from a blocked or stuck M and handed to another.
    pub handoffs: u64,
    /// Timer heap entries: armed timers, plus cancelled ones not yet swept
    /// (sweeping keeps those below about half).
    pub timers: usize,
    /// Coroutines waiting in the global queues (new work and off-P wakes).
    pub global_queue: usize,
    /// Coroutine stacks in use (all runtimes).
    pub stacks_in_use: usize,
    /// Stacks pooled for reuse (all runtimes).
    pub stacks_pooled: usize,
    /// Address space reserved for stacks (all runtimes).
    pub stack_bytes_reserved: usize,
    /// Memory carved for task structures (all runtimes); kept at its peak
    /// for reuse, as Go keeps its Gs.
    pub task_bytes_retained: usize,
    /// Times a worker polled the network driver.
    pub netpoll_polls: u64,
    /// Coroutines (or threads) the network driver woke.
    pub netpoll_woken: u64,
}

/// A snapshot of the current runtime's counters. Scans the registry, so it
/// costs O(live coroutines).
///
/// ```
/// let s = corun_runtime::stats();
/// assert_eq!(s.coroutines, s.running + s.runnable + s.waiting + s.syscall);
/// assert!(s.idle_ps <= s.ps);
/// ```
pub fn stats() -> Stats {
    stats_of(crate::sched::current_shared())
}

pub(crate) fn stats_of(shared: &Shared) -> Stats {
    let mut s = Stats {
        ps: shared.ps.len(),
        ..Stats::default()
    };
    for t in shared.registry.snapshot() {
        let h = t.header();
        let Some(state) = state_of(h, h.wait_reason()) else {
            continue;
        };
        s.coroutines += 1;
        match state {
            State::Waiting => s.waiting += 1,
            State::Runnable => s.runnable += 1,
            State::Syscall => s.syscall += 1,
            State::Running => s.running += 1,
        }
    }
    s.idle_ps = shared.npidle();
    s.ms = shared.nm.load(Ordering::Relaxed);
    s.idle_ms = shared.idle_ms();
    s.spinning_ms = shared.nmspinning();
    for p in shared.ps.iter() {
        s.spawned += p.spawned.load(Ordering::Relaxed);
        s.switches += p.switches.load(Ordering::Relaxed);
        s.steals += p.steals.load(Ordering::Relaxed);
        s.timers += p.timers.len();
    }
    s.spawned += shared.spawned_off_p.load(Ordering::Relaxed);
    s.handoffs = shared.handoffs.load(Ordering::Relaxed);
    s.global_queue = shared.injector_len();
    let st = corun_stacks::stats();
    s.stacks_in_use = st.in_use;
    s.stacks_pooled = st.pooled;
    s.stack_bytes_reserved = st.reserved_bytes;
    s.task_bytes_retained = crate::task_cache::retained_bytes();
    s.netpoll_polls = shared.netpoll_polls.load(Ordering::Relaxed);
    s.netpoll_woken = shared.netpoll_woken.load(Ordering::Relaxed);
    s
}
