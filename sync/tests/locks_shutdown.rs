//! Locks that outlive their coroutines' runtime. A coroutine parked on a
//! mutex, semaphore or condition variable when its runtime is dropped is
//! abandoned with its wait record still queued. The threads that keep using
//! the primitive must not hand that dead waiter a token, a permit or a
//! notification meant for them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{abandon_while_parked, within_10s};
use corun_runtime::WaitReason;
use corun_sync::sync::{Condvar, Mutex, Semaphore, WaitGroup};

#[test]
fn a_dead_semaphore_waiter_gets_no_permit() {
    let sem = Arc::new(Semaphore::new(0));
    let s = sem.clone();
    abandon_while_parked(WaitReason::Semaphore, move || s.acquire().forget());
    sem.add_permits(1);
    let permit = sem
        .try_acquire()
        .expect("the permit went to the dead waiter");
    permit.forget();
    // Queued behind a dead waiter, a live one is still served.
    let s = sem.clone();
    abandon_while_parked(WaitReason::Semaphore, move || s.acquire_many(2).forget());
    let s = sem.clone();
    let live = std::thread::spawn(move || s.acquire_many(2).forget());
    while sem.available_permits() == 0 && !live.is_finished() {
        sem.add_permits(2);
        std::thread::sleep(Duration::from_millis(1));
    }
    within_10s(move || live.join().unwrap());
}

#[test]
fn a_dead_condvar_waiter_takes_no_notification() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p = pair.clone();
    abandon_while_parked(WaitReason::Condvar, move || {
        let g = p.0.lock().unwrap();
        drop(p.1.wait(g));
    });
    let p = pair.clone();
    let waiting = Arc::new(AtomicBool::new(false));
    let w = waiting.clone();
    let live = std::thread::spawn(move || {
        let mut g = p.0.lock().unwrap();
        w.store(true, Ordering::SeqCst);
        while !*g {
            let (next, timeout) = p.1.wait_timeout(g, Duration::from_secs(10)).unwrap();
            assert!(!timeout.timed_out(), "notify_one woke the dead waiter");
            g = next;
        }
    });
    while !waiting.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // The waiter holds the lock until it waits, so this comes after.
    *pair.0.lock().unwrap() = true;
    pair.1.notify_one();
    within_10s(move || live.join().unwrap());
}

#[test]
fn a_mutex_with_a_dead_waiter_still_wakes_live_ones() {
    let m = Arc::new(Mutex::new(0u32));
    let held = m.lock().unwrap();
    let m2 = m.clone();
    abandon_while_parked(WaitReason::Mutex, move || *m2.lock().unwrap() += 1);
    drop(held);
    // Contention between threads afterwards: each unlock must wake the
    // next waiter, which a wake lost to the dead one would prevent.
    let m2 = m.clone();
    within_10s(move || {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let m = m2.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        let mut g = m.lock().unwrap();
                        *g += 1;
                        if g.is_multiple_of(64) {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    assert_eq!(*m.lock().unwrap(), 8_000);
}

#[test]
fn a_dead_semaphore_head_does_not_hold_up_free_permits() {
    let sem = Arc::new(Semaphore::new(1));
    let s = sem.clone();
    // Wants more than is free, so it stays at the head of the queue.
    abandon_while_parked(WaitReason::Semaphore, move || s.acquire_many(2).forget());
    let owned = sem
        .clone()
        .try_acquire_owned()
        .expect("the free permit, owned, past the dead head");
    drop(owned);
    let permit = sem
        .try_acquire()
        .expect("the free permit, past the dead head");
    drop(permit);
    let s = sem.clone();
    let got = within_10s(move || {
        s.acquire_timeout(Duration::from_secs(5))
            .map(|p| p.forget())
    });
    assert!(
        got.is_some(),
        "a blocking acquire waited behind the dead head"
    );
}

#[test]
fn a_dead_waitgroup_waiter_leaves_no_token_for_the_next_round() {
    let wg = WaitGroup::new();
    wg.add(1);
    let w = wg.clone();
    abandon_while_parked(WaitReason::WaitGroup, move || w.wait());
    wg.done();
    // The next round must wait for its own `done`.
    wg.add(1);
    let done = Arc::new(AtomicBool::new(false));
    let (d, w) = (done.clone(), wg.clone());
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        d.store(true, Ordering::SeqCst);
        w.done();
    });
    wg.wait();
    assert!(done.load(Ordering::SeqCst), "wait returned before done()");
    worker.join().unwrap();
}
