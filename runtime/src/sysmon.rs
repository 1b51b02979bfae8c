//! sysmon: the monitor thread of a runtime, like Go's.
//!
//! It wakes every 20 us while something may need it, backing off to 10 ms
//! when nothing happens, and:
//!
//! - advances the coarse clock used for "time in state";
//! - asks a coroutine that has run 10 ms without a fresh slice to yield at
//!   its next yield point, and takes the P from its M if others wait, so a
//!   coroutine spinning or calling `std::thread::sleep` outside `blocking()`
//!   cannot stall the rest;
//! - takes the P from an M that has been inside `blocking()` for ~20 us,
//!   so its queue keeps running on another M;
//! - fires timers that are overdue because every M is busy;
//! - polls the network when no M has for 10 ms (every P busy);
//! - starts a spinning M when work waits and a P is idle;
//! - returns stack memory to the OS after a quiet second;
//! - notices when every coroutine sleeps for good (`deadlock.rs`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sched::Shared;

const MIN_DELAY: Duration = Duration::from_micros(20);
const MAX_DELAY: Duration = Duration::from_millis(10);
const OVERDUE: u64 = 1_000_000;
const TRIM_AFTER: u64 = 1_000_000_000;
const NETPOLL_STALE: u64 = 10_000_000;

pub(crate) fn start(shared: &'static Shared) {
    let t = std::thread::Builder::new()
        .name(format!("corun-{}-sysmon", shared.id))
        .spawn(move || crate::sched::fatal_on_panic(|| run(shared)))
        .unwrap_or_else(|e| crate::sched::fatal(&format!("corun: could not start sysmon: {e}")));
    *shared.sysmon.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.thread().clone());
}

/// Called when a coroutine enters `blocking()`: the hand-off must come
/// within tens of microseconds, not after sysmon's idle back-off.
pub(crate) fn hurry(shared: &Shared) {
    if !shared.sysmon_fast.load(Ordering::Relaxed) {
        shared.sysmon_fast.store(true, Ordering::Relaxed);
        if let Some(t) = shared
            .sysmon
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            t.unpark();
        }
    }
}

fn run(shared: &'static Shared) {
    // Timer callbacks fired here are code of this runtime, as when an M
    // fires them: what they spawn or arm must land on it, not on the
    // global runtime that "outside every runtime" would pick.
    crate::tls::update(|c| c.shared = shared);
    let n = shared.ps.len();
    let mut last_tick = vec![(0u32, 0u64); n];
    let mut delay = MIN_DELAY;
    let mut quiet_cycles = 0u32;
    let mut due = Vec::new();
    let mut last_trim = 0u64;
    let mut last_busy = 0u64;
    let mut deadlock = crate::deadlock::Watch::default();
    while !shared.shutdown.load(Ordering::Acquire) {
        std::thread::park_timeout(delay);
        let now = shared.tick_coarse();
        let mut acted = false;
        let mut any_running = false;
        for (i, p) in shared.ps.iter().enumerate() {
            let tick = p.schedtick.load(Ordering::Relaxed);
            let state = p.state_name();
            if state == "running" || state == "syscall" {
                any_running = true;
            }
            if last_tick[i].0 != tick || state != "running" {
                last_tick[i] = (tick, now);
            }
            let stuck_since = (state == "running").then_some(last_tick[i].1);
            if shared.retake(i, now, stuck_since) {
                acted = true;
                last_tick[i] = (tick, now);
            }
        }
        let earliest = shared.earliest_timer();
        if earliest != u64::MAX && now > earliest.saturating_add(OVERDUE) {
            acted |= shared.fire_all_due(&mut due) > 0;
        }
        acted |= shared.poll_if_stale(now, NETPOLL_STALE);
        shared.kick_if_work_waits();
        if !any_running {
            deadlock.check(shared, now);
        }
        if any_running {
            last_busy = now;
        } else if now - last_busy > TRIM_AFTER && now - last_trim > TRIM_AFTER {
            corun_stacks::trim();
            last_trim = now;
        }
        let fast = shared.sysmon_fast.swap(false, Ordering::Relaxed);
        if acted || fast {
            delay = MIN_DELAY;
            quiet_cycles = 0;
        } else {
            quiet_cycles += 1;
            if quiet_cycles > 50 {
                delay = (delay * 2).min(MAX_DELAY);
            }
        }
        // Keep watching closely while someone sits in blocking().
        if shared.ps.iter().any(|p| p.state_name() == "syscall") {
            delay = MIN_DELAY;
            shared.sysmon_fast.store(true, Ordering::Relaxed);
        }
    }
}
