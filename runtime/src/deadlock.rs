//! Deadlock detection, as Go's `checkdead`: when every coroutine of a
//! runtime waits and nothing could ever wake one, the program cannot make
//! progress; say so with a dump and exit with status 2 instead of hanging.
//!
//! "Nothing could wake one" means all of this holds, twice, 100 ms apart,
//! with no switch or spawn in between (sysmon's view is not atomic):
//!
//! - this is the only runtime in the process, with detection on;
//! - a thread outside the runtime waits in `run`/`block_on` for it;
//! - no coroutine runs, is queued or sits in `blocking()`, and every Ps
//!   run queue and the global queue are empty;
//! - no timer is armed (sleeps, deadlines, `Timer::at`) and the network
//!   driver has no waiter;
//! - the process has no thread besides the runtime's own (its Ms, sysmon,
//!   pinned coroutines' threads, the traceback watcher) and those waiting
//!   in `block_on`. Any other thread might hold a `Sender` or an
//!   `Unparker`, so its mere existence turns detection off: Go can assume
//!   no foreign threads, we cannot. This errs only towards silence.

use std::sync::atomic::Ordering;

use crate::sched::Shared;

/// How long the dead state must hold before it is believed.
const CONFIRM_NANOS: u64 = 100_000_000;

/// sysmon's memory between two looks.
#[derive(Default)]
pub(crate) struct Watch {
    /// (switches + spawned, when first seen dead).
    candidate: Option<(u64, u64)>,
}

impl Watch {
    /// Called by sysmon when no P is running; exits the process if the
    /// runtime is dead.
    pub(crate) fn check(&mut self, shared: &'static Shared, now: u64) {
        let Some(progress) = dead_snapshot(shared) else {
            self.candidate = None;
            return;
        };
        match self.candidate {
            Some((p, since)) if p == progress => {
                if now.saturating_sub(since) >= CONFIRM_NANOS {
                    report_and_exit(shared);
                }
            }
            _ => self.candidate = Some((progress, now)),
        }
    }
}

/// `Some(progress counter)` if the runtime looks dead right now.
fn dead_snapshot(shared: &'static Shared) -> Option<u64> {
    if !shared.detect_deadlock || crate::runtime::runtime_count() != 1 {
        return None;
    }
    let outside = shared.outside_waiters.load(Ordering::SeqCst);
    if outside == 0 {
        return None;
    }
    // Cheap signs of life first: the census below walks every coroutine
    // under the registry locks, which a million sleepers would pay for on
    // every sysmon round.
    if shared.npidle() != shared.ps.len()
        || shared.work_queued()
        || shared.ps.iter().any(|p| p.timers.len() > 0)
        || crate::driver::installed().is_some_and(|d| d.has_waiters())
    {
        return None;
    }
    let stats = crate::introspect::stats_of(shared);
    let quiet = stats.running == 0
        && stats.runnable == 0
        && stats.syscall == 0
        && stats.global_queue == 0
        && stats.timers == 0
        && !shared.work_queued();
    if !quiet {
        return None;
    }
    let ours = shared.nm.load(Ordering::SeqCst)
        + 1 // sysmon
        + crate::pinned::live_threads()
        + crate::traceback::watcher_threads()
        + outside;
    if process_threads()? != ours {
        return None;
    }
    Some(stats.switches + stats.spawned)
}

/// Threads of this process, where the OS tells us.
fn process_threads() -> Option<usize> {
    if cfg!(target_os = "linux") {
        Some(std::fs::read_dir("/proc/self/task").ok()?.count())
    } else {
        None
    }
}

fn report_and_exit(shared: &'static Shared) -> ! {
    let dump = crate::introspect::dump_of(shared);
    eprint!("fatal error: all coroutines are asleep - deadlock!\n\n{dump}");
    std::process::exit(2);
}
