//! The task state word's transitions: the park/unpark protocol.
//!
//! The low two bits are the lifecycle (IDLE, SCHEDULED, RUNNING, COMPLETE);
//! NOTIFIED records a wake that arrived while the task was not parked
//! (running, or queued after a yield), kept for its next park as
//! `thread::park` keeps its token; JOIN_WAITER says a joiner waits;
//! ABANDONED marks a task shutdown completed with its frames leaked;
//! DETACHED and OUTPUT_SET settle who drops an output that has a destructor
//! (see `task.rs`, "Output").
//!
//! SCHEDULED means "not parked": queued, or running on a worker M. A worker
//! does not mark the tasks it runs, because any RMW on the word costs a
//! locked instruction per run and nothing needs it: one runner is already
//! guaranteed by one enqueue per wake (below), and shutdown abandons tasks
//! only after every worker has exited. RUNNING is kept for the one runner
//! that is not joined at shutdown, a pinned task's own thread, and for
//! shutdown's claim. The rules:
//!
//! - `notify`: IDLE -> SCHEDULED (the caller must queue the task: it is the
//!   only one told to), RUNNING or SCHEDULED -> the same plus NOTIFIED
//!   (written even if already set, see `notify`), anything else: no-op.
//!   So a wake is queued at most once per park and never lost, even when a
//!   yield comes between checking a condition and parking.
//! - `begin_run`: SCHEDULED -> RUNNING, by a pinned task's thread; refused
//!   (false) if shutdown claimed the task first.
//! - `end_run_park`: RUNNING or SCHEDULED -> IDLE, unless NOTIFIED, which it
//!   consumes and reports (run again instead of sleeping).
//! - `take_notified`: consumes NOTIFIED without switching (park fast path).
//! - A yield changes nothing: the task stays SCHEDULED, a pending wake stays
//!   pending for the next park.
//!
//! The functions are generic over the atomic so that loom can check them
//! (`RUSTFLAGS="--cfg loom" cargo test -p corun-runtime --release --lib
//! loom`): the models below explore every interleaving of a park with one
//! or two concurrent wakes.

use std::sync::atomic::Ordering;

pub(crate) const IDLE: u32 = 0;
pub(crate) const SCHEDULED: u32 = 1;
pub(crate) const RUNNING: u32 = 2;
pub(crate) const COMPLETE: u32 = 3;
pub(crate) const LIFECYCLE: u32 = 3;
pub(crate) const NOTIFIED: u32 = 4;
pub(crate) const JOIN_WAITER: u32 = 8;
/// Set with COMPLETE by shutdown's `abandon` when it leaks a started fiber:
/// the task's frames still exist but will never run again.
pub(crate) const ABANDONED: u32 = 16;
/// The join handle was dropped before the task completed.
pub(crate) const DETACHED: u32 = 32;
/// The finished fiber stored an output that has a destructor.
pub(crate) const OUTPUT_SET: u32 = 64;

/// The operations the transitions need from an atomic `u32`.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u32;
    fn cas_weak(&self, cur: u32, new: u32, ok: Ordering, err: Ordering) -> Result<u32, u32>;
    fn fetch_and(&self, v: u32, order: Ordering) -> u32;
    fn fetch_or(&self, v: u32, order: Ordering) -> u32;
}

macro_rules! impl_word {
    ($t:ty) => {
        impl Word for $t {
            #[inline]
            fn load(&self, order: Ordering) -> u32 {
                <$t>::load(self, order)
            }
            #[inline]
            fn cas_weak(
                &self,
                cur: u32,
                new: u32,
                ok: Ordering,
                err: Ordering,
            ) -> Result<u32, u32> {
                <$t>::compare_exchange_weak(self, cur, new, ok, err)
            }
            #[inline]
            fn fetch_and(&self, v: u32, order: Ordering) -> u32 {
                <$t>::fetch_and(self, v, order)
            }
            #[inline]
            fn fetch_or(&self, v: u32, order: Ordering) -> u32 {
                <$t>::fetch_or(self, v, order)
            }
        }
    };
}

impl_word!(std::sync::atomic::AtomicU32);
#[cfg(loom)]
impl_word!(loom::sync::atomic::AtomicU32);

/// A wake: true if the task went IDLE -> SCHEDULED and must be queued.
///
/// A wake that finds NOTIFIED already set still writes the word (the same
/// value): the pending wake may be a stale one the task is consuming right
/// now, and the task re-checks its condition after consuming. Only a write
/// the task's consuming RMW reads from makes the waker's earlier stores
/// (the condition) visible to that re-check; a bare load publishes nothing,
/// and the wake would be lost (found by the channel torture test).
#[inline]
pub(crate) fn notify(s: &impl Word) -> bool {
    let mut cur = s.load(Ordering::Acquire);
    loop {
        let next = match cur & LIFECYCLE {
            IDLE => (cur & !LIFECYCLE) | SCHEDULED,
            RUNNING | SCHEDULED => cur | NOTIFIED,
            _ => return false,
        };
        match s.cas_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return cur & LIFECYCLE == IDLE,
            Err(actual) => cur = actual,
        }
    }
}

/// SCHEDULED -> RUNNING (pinned runners); false if the task is no longer
/// SCHEDULED: shutdown's `abandon` claimed it after a waker queued it.
#[inline]
pub(crate) fn begin_run(s: &impl Word) -> bool {
    let mut cur = s.load(Ordering::Acquire);
    loop {
        if cur & LIFECYCLE != SCHEDULED {
            return false;
        }
        let next = (cur & !LIFECYCLE) | RUNNING;
        match s.cas_weak(cur, next, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// RUNNING or SCHEDULED -> IDLE after a park, unless a wake arrived: then
/// it is consumed and `false` says "run it again".
#[inline]
pub(crate) fn end_run_park(s: &impl Word) -> bool {
    let mut cur = s.load(Ordering::Acquire);
    loop {
        debug_assert!(matches!(cur & LIFECYCLE, RUNNING | SCHEDULED));
        if cur & NOTIFIED != 0 {
            s.fetch_and(!NOTIFIED, Ordering::Acquire);
            return false;
        }
        match s.cas_weak(
            cur,
            (cur & !LIFECYCLE) | IDLE,
            Ordering::Release,
            Ordering::Acquire,
        ) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// Consumes a pending wake without switching.
#[inline]
pub(crate) fn take_notified(s: &impl Word) -> bool {
    let cur = s.load(Ordering::Acquire);
    cur & NOTIFIED != 0 && {
        s.fetch_and(!NOTIFIED, Ordering::Acquire);
        true
    }
}

/// The finished fiber has stored an output that has a destructor: true if
/// the join handle is gone, and the fiber must take the output back and
/// drop it itself (see "Output" in `task.rs`).
#[inline]
pub(crate) fn output_stored(s: &impl Word) -> bool {
    s.fetch_or(OUTPUT_SET, Ordering::AcqRel) & DETACHED != 0
}

/// A join handle goes without joining: true if the output is the handle's
/// to drop (the fiber stored it and touches it no more), false if the
/// fiber will drop it (it has not stored it yet).
#[inline]
pub(crate) fn detach(s: &impl Word) -> bool {
    s.load(Ordering::Acquire) & LIFECYCLE == COMPLETE
        || s.fetch_or(DETACHED, Ordering::AcqRel) & OUTPUT_SET != 0
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU32, AtomicUsize};

    use super::*;

    /// A coroutine running as `running` (SCHEDULED on a worker, RUNNING on
    /// its pinned thread) parks (fast path, then the runner's
    /// `end_run_park`) while `wakers` threads wake it. Returns (times
    /// queued, times the park consumed a wake itself, final lifecycle).
    fn park_against(running: u32, wakers: usize) -> (usize, usize, u32) {
        let state = Arc::new(AtomicU32::new(running));
        let queued = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..wakers)
            .map(|_| {
                let (s, q) = (state.clone(), queued.clone());
                loom::thread::spawn(move || {
                    if notify(&*s) {
                        q.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // The coroutine: `park` checks for a pending wake first...
        let consumed = if take_notified(&*state) {
            1
        } else if end_run_park(&*state) {
            // ...then switches away and the M marks it IDLE, unless a wake
            // came in between.
            0
        } else {
            1
        };
        for h in handles {
            h.join().unwrap();
        }
        let q = queued.load(Ordering::SeqCst);
        (q, consumed, state.load(Ordering::SeqCst) & LIFECYCLE)
    }

    #[test]
    fn loom_one_wake_is_never_lost_nor_doubled() {
        for running in [SCHEDULED, RUNNING] {
            loom::model(move || {
                let (queued, consumed, life) = park_against(running, 1);
                assert_eq!(queued + consumed, 1, "the wake is honoured exactly once");
                match (queued, consumed) {
                    (1, 0) => assert_eq!(life, SCHEDULED),
                    (0, 1) => assert_eq!(life, running),
                    other => panic!("impossible outcome {other:?}"),
                }
            });
        }
    }

    #[test]
    fn loom_two_wakes_queue_at_most_once() {
        for running in [SCHEDULED, RUNNING] {
            loom::model(move || {
                let (queued, consumed, _) = park_against(running, 2);
                assert!(queued <= 1, "queued twice");
                assert_eq!(queued + consumed, 1, "one park is satisfied once");
            });
        }
    }

    #[test]
    fn loom_a_wake_while_queued_after_a_yield_is_kept() {
        // A worker's task yields (no transition: it stays SCHEDULED and is
        // queued), is run again and parks, while a waker races from
        // another thread: the park returns at once whenever the wake
        // landed, and the waker never queues the task (it was never IDLE
        // before its park).
        loom::model(|| {
            let state = Arc::new(AtomicU32::new(SCHEDULED));
            let s = state.clone();
            let waker = loom::thread::spawn(move || notify(&*s));
            let parked_for_good = !take_notified(&*state) && end_run_park(&*state);
            let queued = waker.join().unwrap();
            // Either the wake was seen by the park, or it came after the
            // park and queued the task itself: never neither.
            assert!(parked_for_good == queued, "wake lost or doubled");
        });
    }

    #[test]
    fn loom_a_wake_that_finds_one_pending_still_publishes_its_condition() {
        // A stale wake is pending (a timer of an earlier park fired while
        // the task ran). The waker makes the waiter's condition true, then
        // wakes; the waiter consumes the stale wake, re-checks, and parks
        // for real if the condition still looks false. A waker that only
        // looked at the word ("already notified, nothing to do") would
        // publish nothing: the waiter could consume the stale wake, miss
        // the condition and sleep with nobody left to wake it.
        for running in [SCHEDULED, RUNNING] {
            loom::model(move || {
                let state = Arc::new(AtomicU32::new(running | NOTIFIED));
                let ready = Arc::new(loom::sync::atomic::AtomicBool::new(false));
                let (s, r) = (state.clone(), ready.clone());
                let waker = loom::thread::spawn(move || {
                    r.store(true, Ordering::Release);
                    notify(&*s)
                });
                let mut seen = false;
                let mut parked_for_good = false;
                while !seen {
                    if take_notified(&*state) {
                        seen = ready.load(Ordering::Acquire);
                        continue;
                    }
                    if end_run_park(&*state) {
                        parked_for_good = true;
                        break;
                    }
                    seen = ready.load(Ordering::Acquire);
                    assert!(
                        seen,
                        "woken by nobody but the waker, yet its write is invisible"
                    );
                }
                let queued = waker.join().unwrap();
                assert!(seen || (parked_for_good && queued), "the wake was lost");
            });
        }
    }

    #[test]
    fn loom_queued_task_has_one_runner() {
        // A parked task woken by two racing threads: only one is told to
        // queue it, so it has one runner (a worker leaves it SCHEDULED, a
        // pinned thread marks it RUNNING), and the late wake is kept for
        // its next park.
        for pinned in [false, true] {
            loom::model(move || {
                let state = Arc::new(AtomicU32::new(IDLE));
                let runs = Arc::new(AtomicUsize::new(0));
                let wakers: Vec<_> = (0..2)
                    .map(|_| {
                        let (s, r) = (state.clone(), runs.clone());
                        loom::thread::spawn(move || {
                            if notify(&*s) {
                                if pinned {
                                    assert!(begin_run(&*s));
                                }
                                r.fetch_add(1, Ordering::SeqCst);
                            }
                        })
                    })
                    .collect();
                for w in wakers {
                    w.join().unwrap();
                }
                assert_eq!(runs.load(Ordering::SeqCst), 1);
                let s = state.load(Ordering::SeqCst);
                let running = if pinned { RUNNING } else { SCHEDULED };
                assert_eq!(s & LIFECYCLE, running);
            });
        }
    }

    #[test]
    fn loom_a_detached_output_is_dropped_exactly_once() {
        // The fiber stores its output and the runner completes the task,
        // while its handle is dropped: whichever way they interleave, the
        // output is taken once, by one side, and never touched by both at
        // once (loom's cell reports a concurrent access).
        loom::model(|| {
            let state = Arc::new(AtomicU32::new(SCHEDULED));
            let output = Arc::new(loom::cell::UnsafeCell::new(None::<u32>));
            let (s, out) = (state.clone(), output.clone());
            let fiber = loom::thread::spawn(move || {
                // SAFETY (model): before `output_stored` nobody else looks.
                out.with_mut(|o| unsafe { *o = Some(7) });
                let mine = output_stored(&*s);
                let taken = if mine {
                    // SAFETY (model): the handle saw no OUTPUT_SET.
                    out.with_mut(|o| unsafe { (*o).take() })
                } else {
                    None
                };
                s.fetch_or(COMPLETE, Ordering::AcqRel);
                taken
            });
            let by_handle = if detach(&*state) {
                // SAFETY (model): the fiber stored it and is done with it.
                output.with_mut(|o| unsafe { (*o).take() })
            } else {
                None
            };
            let by_fiber = fiber.join().unwrap();
            assert_eq!(
                by_handle.is_some() as u32 + by_fiber.is_some() as u32,
                1,
                "dropped by both or by neither"
            );
        });
    }
}
