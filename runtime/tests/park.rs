//! The park/unpark primitive: no lost wake-ups, no double runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corun_runtime::{
    FrameUnparker, Runtime, Unparker, WaitReason, frame_unparker, go, park, park_deadline, unparker,
};

#[test]
fn unpark_before_park_is_kept() {
    let h = go!(|| {
        unparker().unpark();
        park(WaitReason::Park); // returns at once: the token was there
        true
    });
    assert!(h.join().unwrap());
    // Same on a plain thread.
    unparker().unpark();
    park(WaitReason::Park);
}

#[test]
fn park_deadline_times_out_and_never_early() {
    for in_coroutine in [true, false] {
        let f = || {
            let t = Instant::now();
            let deadline = t + Duration::from_millis(20);
            while !park_deadline(WaitReason::Park, deadline) {}
            assert!(Instant::now() >= deadline);
        };
        if in_coroutine {
            go!(f).join().unwrap()
        } else {
            f()
        }
    }
}

/// A flag-and-unparker handshake repeated many times between threads and
/// coroutines: every wait ends, and each coroutine runs on one thread at a
/// time (a second concurrent run would trip `inside`).
#[test]
fn ping_pong_handshakes_lose_nothing() {
    const ROUNDS: usize = 20_000;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let turn = Arc::new(AtomicUsize::new(0));
    let waiters: Arc<Mutex<[Option<corun_runtime::Unparker>; 2]>> =
        Arc::new(Mutex::new([None, None]));
    let hs: Vec<_> = (0..2)
        .map(|me| {
            let turn = turn.clone();
            let waiters = waiters.clone();
            let inside = Arc::new(AtomicBool::new(false));
            rt.spawn(move || {
                waiters.lock().unwrap()[me] = Some(unparker());
                for round in 0..ROUNDS {
                    while turn.load(Ordering::Acquire) != round * 2 + me {
                        park(WaitReason::Park);
                    }
                    assert!(
                        !inside.swap(true, Ordering::SeqCst),
                        "coroutine running twice"
                    );
                    inside.store(false, Ordering::SeqCst);
                    turn.store(round * 2 + me + 1, Ordering::Release);
                    let other = waiters.lock().unwrap()[1 - me].clone();
                    if let Some(u) = other {
                        u.unpark();
                    }
                }
            })
        })
        .collect();
    // A watchdog thread keeps unparking late registrants (the first round's
    // unpark may precede the other's registration).
    let t = Instant::now();
    while hs.iter().any(|h| !h.is_finished()) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "handshake stalled at turn {}",
            turn.load(Ordering::SeqCst)
        );
        for u in waiters.lock().unwrap().iter().flatten() {
            u.unpark();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(turn.load(Ordering::SeqCst), ROUNDS * 2);
}

/// Many outside threads unpark many coroutines concurrently; each coroutine
/// counts its wake-ups and re-parks until told to stop.
#[test]
fn concurrent_unparks_from_threads() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = (0..200)
        .map(|_| {
            let stop = stop.clone();
            let ready = ready.clone();
            rt.spawn(move || {
                ready.lock().unwrap().push(unparker());
                let mut wakes = 0u64;
                while !stop.load(Ordering::Acquire) {
                    park(WaitReason::Park);
                    wakes += 1;
                }
                wakes
            })
        })
        .collect();
    while ready.lock().unwrap().len() < 200 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let us: Vec<_> = ready.lock().unwrap().clone();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let us = us.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    for u in &us {
                        u.unpark();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    for u in &us {
        u.unpark();
    }
    let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    // Wakes collapse (at most one pending per waiter) but every coroutine
    // saw at least its final one.
    assert!((200..=200 * 801).contains(&total), "{total}");
}

#[test]
fn timer_callbacks_fire_once_and_cancel() {
    let fired = Arc::new(AtomicUsize::new(0));
    let f1 = fired.clone();
    let t1 = corun_runtime::Timer::at(Instant::now() + Duration::from_millis(5), move || {
        f1.fetch_add(1, Ordering::SeqCst);
    });
    let f2 = fired.clone();
    let t2 = corun_runtime::Timer::at(Instant::now() + Duration::from_millis(50), move || {
        f2.fetch_add(100, Ordering::SeqCst);
    });
    assert!(t2.cancel());
    assert!(!t2.cancel());
    let t = Instant::now();
    while fired.load(Ordering::SeqCst) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert!(!t1.cancel());
}

/// A callback that panics is reported (by the panic hook) and costs only
/// itself: the runtime, its other timers and its coroutines go on.
#[test]
fn a_panicking_timer_callback_does_not_stop_the_runtime() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let _boom = corun_runtime::Timer::at(Instant::now(), || panic!("timer callback boom"));
        let (tx, rx) = std::sync::mpsc::channel();
        let _after =
            corun_runtime::Timer::at(Instant::now() + Duration::from_millis(5), move || {
                tx.send(()).unwrap()
            });
        corun_runtime::sleep(Duration::from_millis(20));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the next timer fired");
    });
    assert_eq!(rt.block_on(|| corun_runtime::go!(|| 7).join().unwrap()), 7);
}

/// A callback runs in its own runtime whichever thread fires it: here the
/// only worker spins without a yield point, so sysmon fires the timer, and
/// a coroutine the callback spawns must still land on this runtime (it
/// used to land on the global one, started for the occasion).
#[test]
fn a_timer_callback_fired_by_sysmon_spawns_on_its_own_runtime() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    rt.block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let spin_stop = stop.clone();
        let spinner = corun_runtime::Builder::new()
            .name("spinner-under-timer")
            .spawn(move || {
                let t = Instant::now();
                while !spin_stop.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(10) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        let _timer =
            corun_runtime::Timer::at(Instant::now() + Duration::from_millis(1), move || {
                corun_runtime::spawn(move || {
                    let home = corun_runtime::coroutines()
                        .iter()
                        .any(|c| c.name.as_deref() == Some("spinner-under-timer"));
                    tx.send(home).unwrap();
                    stop.store(true, Ordering::SeqCst);
                });
            });
        spinner.join().unwrap();
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "the callback's coroutine ran on another runtime"
    );
}

#[test]
fn cancelled_timers_do_not_accumulate() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        let far = Instant::now() + Duration::from_secs(3600);
        for _ in 0..10_000 {
            let t = corun_runtime::Timer::at(far, || ());
            assert!(t.cancel());
        }
    });
    assert!(rt.stats().timers <= 64, "{:?}", rt.stats());
}

/// A runtime dropped with timers armed hands their callbacks to the global
/// runtime with their deadlines: one still runs at its time, never before,
/// and one cancelled after the drop never runs.
#[test]
fn timers_armed_on_a_dropped_runtime_still_fire_at_their_deadline() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let cancelled_ran = Arc::new(AtomicBool::new(false));
    let flag = cancelled_ran.clone();
    let deadline = Instant::now() + Duration::from_secs(2);
    let (kept, cancelled) = rt.block_on(move || {
        let kept = corun_runtime::Timer::at(deadline, move || tx.send(Instant::now()).unwrap());
        let cancelled =
            corun_runtime::Timer::at(deadline, move || flag.store(true, Ordering::SeqCst));
        (kept, cancelled)
    });
    drop(rt);
    // Liveness bound, so that what follows tests the hand-over and not a
    // timer the dropped runtime fired itself.
    assert!(Instant::now() < deadline, "dropping a runtime took 2 s");
    assert!(
        cancelled.cancel(),
        "a handed-over timer can still be cancelled"
    );
    let fired = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a timer of a dropped runtime never fired");
    assert!(fired >= deadline, "fired {:?} early", deadline - fired);
    assert!(!kept.cancel(), "it fired");
    // Both entries had the same deadline: the cancelled one is due too.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !cancelled_ran.load(Ordering::SeqCst),
        "a cancelled timer ran"
    );
}

/// A wake that arrives while the coroutine sits in the run queue after a
/// yield (here: between checking its condition and parking) is kept for
/// the next park, as `thread::park`'s token is: the park returns at once.
#[test]
fn a_wake_while_queued_after_a_yield_is_kept() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let kept = rt.block_on(|| {
        let slot = Arc::new(Mutex::new(None::<Unparker>));
        let waker_slot = slot.clone();
        // One P: the two take turns at each yield.
        let waker = corun_runtime::go!(move || {
            let target = loop {
                if let Some(u) = waker_slot.lock().unwrap().take() {
                    break u;
                }
                corun_runtime::yield_now();
            };
            target.unpark(); // the target is queued, not parked
        });
        let waiter = corun_runtime::go!(move || {
            *slot.lock().unwrap() = Some(unparker());
            corun_runtime::yield_now(); // the waker runs and wakes us now
            let timed_out =
                park_deadline(WaitReason::Park, Instant::now() + Duration::from_secs(5));
            !timed_out
        });
        waker.join().unwrap();
        waiter.join().unwrap()
    });
    assert!(kept, "the wake was lost: the park waited for its deadline");
}

/// What `FrameUnparker` is for: a record in the waiter's own frame that a
/// waker completes (flag, unpark, then `released`, after which the waiter
/// may leave). Coroutine waits for a thread and thread for a coroutine,
/// alternately: every wait ends, none returns before its flag.
#[test]
fn frame_unparkers_complete_records_in_the_waiters_frame() {
    struct Record {
        done: AtomicBool,
        released: AtomicBool,
        waker: FrameUnparker,
    }
    impl Record {
        fn new() -> Record {
            Record {
                done: AtomicBool::new(false),
                released: AtomicBool::new(false),
                waker: frame_unparker(),
            }
        }
        fn wait(&self) {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.done.load(Ordering::Acquire) {
                let late = park_deadline(WaitReason::Park, deadline);
                assert!(!late || self.done.load(Ordering::Acquire), "wake lost");
            }
            while !self.released.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
        }
        /// # Safety
        /// `r` points at a live record whose owner waits in `wait`.
        unsafe fn complete(r: usize) {
            // SAFETY: per the contract, alive until `released` is set.
            let r = unsafe { &*(r as *const Record) };
            r.done.store(true, Ordering::Release);
            // SAFETY: the owner stays in `wait` until `released`.
            unsafe { r.waker.unpark() };
            r.released.store(true, Ordering::Release);
        }
    }
    const ROUNDS: usize = 20_000;
    let (to_thread, thread_inbox) = std::sync::mpsc::channel::<usize>();
    let (to_coroutine, coroutine_inbox) = std::sync::mpsc::channel::<usize>();
    let h = go!(move || {
        for _ in 0..ROUNDS {
            let mine = Record::new();
            to_thread.send(&mine as *const Record as usize).unwrap();
            mine.wait();
            let theirs = loop {
                match coroutine_inbox.try_recv() {
                    Ok(r) => break r,
                    Err(_) => corun_runtime::yield_now(),
                }
            };
            // SAFETY: the thread waits on it in `wait`.
            unsafe { Record::complete(theirs) };
        }
    });
    for _ in 0..ROUNDS {
        let r = thread_inbox
            .recv_timeout(Duration::from_secs(60))
            .expect("the coroutine's record arrives");
        // SAFETY: the coroutine waits on it in `wait`.
        unsafe { Record::complete(r) };
        let mine = Record::new();
        to_coroutine.send(&mine as *const Record as usize).unwrap();
        mine.wait();
    }
    h.join().unwrap();
}

/// Counts its drops: a task's output is dropped when the task is freed.
struct Freed(Arc<AtomicUsize>);

impl Drop for Freed {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A parked task keeps its own run reference and its waker takes it back:
/// detached coroutines woken many times, by timers, by unparkers from a
/// thread and by frame unparkers from coroutines, are each freed exactly
/// once when they finish (a leaked reference would keep the output alive,
/// one too few would free it under its handle or twice).
#[test]
fn tasks_woken_many_times_are_freed_once() {
    const TASKS: usize = 200;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let freed = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel::<(Unparker, Arc<AtomicBool>)>();
    let joined: Vec<_> = (0..TASKS)
        .map(|_| {
            let (freed, tx) = (freed.clone(), tx.clone());
            rt.spawn(move || {
                for round in 0..5 {
                    corun_runtime::sleep(Duration::from_micros(50));
                    let go_on = Arc::new(AtomicBool::new(false));
                    tx.send((unparker(), go_on.clone())).unwrap();
                    while !go_on.load(Ordering::Acquire) {
                        park(WaitReason::Park);
                    }
                    if round % 2 == 0 {
                        // A frame unparker woken from another coroutine.
                        let me = frame_unparker();
                        let done = Arc::new(AtomicBool::new(false));
                        let d = done.clone();
                        let helper = go!(move || {
                            d.store(true, Ordering::Release);
                            // SAFETY: the waiter stays in this frame until
                            // `done`, and joins us before leaving it.
                            unsafe { me.unpark() };
                        });
                        while !done.load(Ordering::Acquire) {
                            park(WaitReason::Park);
                        }
                        helper.join().unwrap();
                    }
                }
                Freed(freed)
            })
        })
        .enumerate()
        .filter_map(|(i, h)| (i % 2 == 0).then_some(h))
        .collect();
    drop(tx);
    // Wake every waiter from this thread until all have finished.
    for (u, go_on) in rx.iter() {
        go_on.store(true, Ordering::Release);
        u.unpark();
    }
    let kept = joined.len();
    for h in joined {
        drop(h.join().unwrap());
    }
    // The detached half is freed by the runner as each finishes; the
    // joined half was dropped above.
    let deadline = Instant::now() + Duration::from_secs(30);
    while freed.load(Ordering::SeqCst) < TASKS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(freed.load(Ordering::SeqCst), TASKS, "{kept} were joined");
    drop(rt);
    assert_eq!(freed.load(Ordering::SeqCst), TASKS);
}

/// A runtime dropped while coroutines are parked completes them with an
/// error; the detached ones, which held only their own run reference and
/// the registry's, are released by shutdown without a double free.
#[test]
fn shutdown_completes_parked_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..100 {
        let tx = tx.clone();
        let h = rt.spawn(move || {
            tx.send(()).unwrap();
            loop {
                park(WaitReason::Park); // never woken
            }
        });
        if i % 2 == 0 {
            handles.push(h);
        }
    }
    for _ in 0..100 {
        rx.recv().unwrap();
    }
    drop(rt);
    for h in handles {
        let err = h.join().expect_err("abandoned at shutdown");
        let msg = err.downcast_ref::<String>().expect("a message");
        assert!(msg.contains("shut down"), "{msg}");
    }
}

/// A wake issued from inside `blocking()` (its P in the SYSCALL state, so
/// the waker takes the task back out of `runnext` and injects it) reaches
/// a worker while the waker is still blocked: on one worker, the woken
/// coroutine runs on the M that sysmon hands the P to.
#[test]
fn a_wake_from_inside_blocking_runs_while_the_waker_blocks() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (ran_tx, ran_rx) = std::sync::mpsc::channel::<()>();
    let (who_tx, who_rx) = std::sync::mpsc::channel::<Unparker>();
    let go_on = Arc::new(AtomicBool::new(false));
    let flag = go_on.clone();
    let sleeper = rt.spawn(move || {
        who_tx.send(unparker()).unwrap();
        while !flag.load(Ordering::Acquire) {
            park(WaitReason::Park);
        }
        ran_tx.send(()).unwrap();
    });
    let wake = who_rx.recv().unwrap();
    let waker = rt.spawn(move || {
        corun_runtime::blocking(move || {
            go_on.store(true, Ordering::Release);
            wake.unpark();
            ran_rx.recv_timeout(Duration::from_secs(20)).is_ok()
        })
    });
    assert!(waker.join().unwrap(), "the woken coroutine did not run");
    sleeper.join().unwrap();
}

/// A wake from a thread holding none of the runtime's Ps (a plain thread
/// here; sysmon or the poller firing a timer take the same path) runs
/// before a backlog of new coroutines in the global queue, not after all
/// of it: behind a spawn loop's spill, a sleeper used to wake tens of
/// milliseconds late.
#[test]
fn an_outside_wake_goes_ahead_of_a_backlog_of_new_coroutines() {
    const BACKLOG: usize = 10_000;
    let rt = Runtime::builder().workers(1).build().unwrap();
    let woken = Arc::new(AtomicBool::new(false));
    // Backlog coroutines that ran after the wake was issued.
    let ran_after = Arc::new(AtomicUsize::new(0));
    let (who_tx, who_rx) = std::sync::mpsc::channel::<Unparker>();
    let (flag, count) = (woken.clone(), ran_after.clone());
    let sleeper = rt.spawn(move || {
        who_tx.send(unparker()).unwrap();
        while !flag.load(Ordering::Acquire) {
            park(WaitReason::Park);
        }
        count.load(Ordering::SeqCst)
    });
    let wake = who_rx.recv().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let waker = std::thread::spawn({
        let woken = woken.clone();
        move || {
            go_rx.recv().unwrap();
            woken.store(true, Ordering::Release);
            wake.unpark();
        }
    });
    let (flag, count) = (woken.clone(), ran_after.clone());
    let spawner = rt.spawn(move || {
        // On one worker these fill the local queue, and the rest spill to
        // the global one.
        let backlog: Vec<_> = (0..BACKLOG)
            .map(|_| {
                let (flag, count) = (flag.clone(), count.clone());
                go!(move || {
                    if flag.load(Ordering::Acquire) {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        go_tx.send(()).unwrap();
        // Keep the worker until the wake is queued (no yield point here).
        while !flag.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        backlog
    });
    let backlog = spawner.join().unwrap();
    waker.join().unwrap();
    let before_sleeper = sleeper.join().unwrap();
    for h in backlog {
        h.join().unwrap();
    }
    assert!(
        before_sleeper < BACKLOG / 2,
        "{before_sleeper} of {BACKLOG} queued coroutines ran before the woken one"
    );
}
